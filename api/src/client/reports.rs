//! `sys/reports/compliance`: a compliance report ([`crate::wire::reports`]).

use super::{data_of, Client};
use crate::error::ClientError;
use crate::wire::reports::ComplianceReport;

const COMPLIANCE: &str = "sys/reports/compliance";

impl Client {
    /// `GET sys/reports/compliance?standard=&since=`; `since` a duration (`90d`), hushd's
    /// default 90d.
    pub async fn report_compliance(
        &self,
        standard: &str,
        since: Option<&str>,
    ) -> Result<ComplianceReport, ClientError> {
        let mut query = vec![("standard", standard)];
        if let Some(since) = since {
            query.push(("since", since));
        }
        let resp = self.read_with_query(COMPLIANCE, &query).await?;
        data_of(COMPLIANCE, resp)
    }
}
