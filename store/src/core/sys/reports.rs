//! `sys/reports/compliance` (hush's own API): a compliance report for one standard over a
//! window, `?standard=soc2|pci-dss|hipaa|gdpr|iso27001&since=90d`. A `read` of the path in a
//! policy allows it; no `sudo` (the report holds no secret and changes nothing).

use serde_json::Value;

use crate::core::compliance;
use crate::core::state::{Core, Unsealed};
use crate::logical::{LogicalError, Request, Response};

pub async fn compliance(
    core: &Core,
    st: &Unsealed,
    req: &Request,
) -> Result<Response, LogicalError> {
    let field = |name: &str| match req.data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(LogicalError::invalid(format!("{name} must be a string"))),
    };
    let query = compliance::parse_query(field("standard")?, field("since")?)?;
    let report = compliance::report(core, st, &query).await?;
    tracing::info!(
        standard = query.standard,
        since = %query.since,
        pass = report.summary.pass,
        fail = report.summary.fail,
        not_applicable = report.summary.not_applicable,
        "compliance report"
    );
    let data = serde_json::to_value(&report)
        .map_err(|e| LogicalError::Internal(format!("cannot encode the report: {e}")))?;
    Ok(Response::data(data))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::json;

    use crate::logical::{Operation, Request};

    #[tokio::test]
    async fn a_dev_store_report_and_its_bad_queries() {
        let core = crate::core::test_support::dev_core().await;
        let call = |query: serde_json::Value| {
            let mut req = Request::new(Operation::Read, "sys/reports/compliance").with_data(query);
            req.client_token = Some(SecretString::from("root"));
            core.handle(req)
        };
        let resp = call(json!({"standard": "pci-dss", "since": "30d"}))
            .await
            .unwrap();
        let data = serde_json::Value::Object(resp.data.unwrap());
        assert_eq!(data["standard"], "pci-dss");
        assert_eq!(data["since"], "30d");
        let ids: Vec<&str> = data["controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["3.6", "3.7", "4.2", "7.2", "8.2", "8.3", "10.2", "10.3", "10.5"]
        );
        // A dev store: 1-of-1 unseal, a root token, no audit device.
        let status = |id: &str| {
            data["controls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(status("3.6"), "fail");
        assert_eq!(status("10.2"), "fail");
        // Embedded: the transport is unknown.
        assert_eq!(status("4.2"), "not_applicable");
        assert_eq!(data["summary"]["total"], 9);

        for (query, needle) in [
            (json!({}), "standard is required"),
            (
                json!({"standard": "sox"}),
                "soc2, pci-dss, hipaa, gdpr, iso27001",
            ),
            (
                json!({"standard": "soc2", "since": "ninety"}),
                "invalid since",
            ),
            (json!({"standard": "soc2", "since": "0s"}), "invalid since"),
            (
                json!({"standard": "soc2", "since": "99999d"}),
                "invalid since",
            ),
            (json!({"standard": 7}), "standard must be a string"),
        ] {
            let err = call(query.clone()).await.unwrap_err();
            assert_eq!(err.status(), 400, "{query}");
            assert!(err.to_string().contains(needle), "{query}: {err}");
        }
    }
}
