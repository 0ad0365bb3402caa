//! `sys/agents` helpers: an agent's report, and the fleet view ([`crate::wire::agents`]).

use super::{data_of, Client};
use crate::error::ClientError;
use crate::wire::agents::{AccessList, AgentInfo, AgentList, Report, ReportAck, StaleList};

const REPORT: &str = "sys/agents/report";

impl Client {
    /// `PUT sys/agents/report`: one batch; `stored: false` when hushd had stored it before.
    pub async fn agents_report(&self, report: &Report) -> Result<ReportAck, ClientError> {
        let resp = self.write(REPORT, report).await?;
        data_of(REPORT, resp)
    }

    /// `PUT sys/agents/report` of a report already encoded as JSON (a shipper encodes a
    /// batch once and sends the same bytes on every retry).
    pub async fn agents_report_encoded(
        &self,
        json: bytes::Bytes,
    ) -> Result<ReportAck, ClientError> {
        let resp = self.write_encoded(REPORT, json).await?;
        data_of(REPORT, resp)
    }

    /// `LIST sys/agents`: every agent that ever reported (empty when none).
    pub async fn agents_list(&self) -> Result<AgentList, ClientError> {
        match self.list("sys/agents").await? {
            None => Ok(AgentList::default()),
            some => data_of("sys/agents", some),
        }
    }

    /// `GET sys/agents/:id`; `None` when no agent has that id.
    pub async fn agents_show(&self, id: &str) -> Result<Option<AgentInfo>, ClientError> {
        let path = format!("sys/agents/{id}");
        match self.read(&path).await? {
            None => Ok(None),
            some => data_of(&path, some).map(Some),
        }
    }

    /// `GET sys/agents/access?path=&since=`: accesses of API path `path` (`secret/data/a`),
    /// oldest first; `since` a duration (`1h`) or an RFC 3339 time, hushd's default 24h.
    pub async fn agents_access(
        &self,
        path: &str,
        since: Option<&str>,
    ) -> Result<AccessList, ClientError> {
        let mut query = vec![("path", path)];
        if let Some(since) = since {
            query.push(("since", since));
        }
        let resp = self.read_with_query("sys/agents/access", &query).await?;
        data_of("sys/agents/access", resp)
    }

    /// `GET sys/agents/stale?path=`: agents whose last report holds an older version of
    /// `path` than the current one.
    pub async fn agents_stale(&self, path: &str) -> Result<StaleList, ClientError> {
        let resp = self
            .read_with_query("sys/agents/stale", &[("path", path)])
            .await?;
        data_of("sys/agents/stale", resp)
    }
}
