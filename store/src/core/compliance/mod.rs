//! Compliance reports (`GET sys/reports/compliance?standard=S&since=D`): the evidence hushd
//! can prove about itself, gathered once per report into one [`Evidence`], then each control of
//! the standard judged on it.
//!
//! # Layout
//!
//! - one module per concern, each gathering its part of the evidence: `keys` (cipher, key
//!   terms, unseal threshold), `tokens` (never-expiring and old tokens), `policies` (every-path
//!   and sudo grants), `audit` (devices, chains, gaps, what the lines record), `fleet` (agents'
//!   access reports), `rotation` (secrets past their schedule: not wired yet);
//! - `checks`: the evidence checks, each a status, facts and remediation;
//! - `controls`: the table of standards, controls and the checks they are judged on;
//! - `evidence`: [`Evidence`], gathered once per report from the concerns above;
//! - this file: the query, judging each control, [`report`].

mod audit;
mod checks;
mod controls;
mod evidence;
mod fleet;
mod keys;
mod policies;
mod rotation;
mod tokens;

use chrono::{DateTime, SecondsFormat, Utc};
use hush_api::wire::reports::{
    standard_ids, standard_name, ComplianceReport, Control, ControlStatus, Summary, DEFAULT_SINCE,
};

pub use evidence::Evidence;

use crate::core::state::{Core, Unsealed};
use crate::logical::LogicalError;

/// The longest window a report looks back over.
const MAX_SINCE: std::time::Duration = std::time::Duration::from_secs(10 * 366 * 86_400);

/// A report's query, checked.
#[derive(Debug, Clone)]
pub struct Query {
    pub standard: &'static str,
    pub standard_name: &'static str,
    pub since: String,
    pub window: std::time::Duration,
}

/// Check `standard` and `since` (`None`: [`DEFAULT_SINCE`]); a 400 names the valid values.
pub fn parse_query(standard: Option<&str>, since: Option<&str>) -> Result<Query, LogicalError> {
    let given = standard.unwrap_or("").trim();
    let (id, name) = hush_api::wire::reports::STANDARDS
        .iter()
        .find(|(id, _)| *id == given)
        .copied()
        .ok_or_else(|| {
            LogicalError::invalid(match given {
                "" => format!("standard is required: one of {}", standard_ids()),
                s => format!("unknown standard {s:?}: use one of {}", standard_ids()),
            })
        })?;
    debug_assert_eq!(standard_name(id), Some(name));
    let since = since.unwrap_or(DEFAULT_SINCE).trim();
    let window = hush_api::duration::parse(since)
        .filter(|d| *d >= std::time::Duration::from_secs(1) && *d <= MAX_SINCE)
        .ok_or_else(|| {
            LogicalError::invalid(format!(
                "invalid since {since:?}: a duration from 1s to 3660d such as 90d, 720h or 30m \
                 (units: s, m, h, d)"
            ))
        })?;
    Ok(Query {
        standard: id,
        standard_name: name,
        since: since.to_string(),
        window,
    })
}

/// Judge each control of `query.standard` on `ev`.
pub fn judge(query: &Query, ev: &Evidence) -> ComplianceReport {
    let controls: Vec<Control> = controls::of(query.standard)
        .map(|spec| {
            let outcomes: Vec<_> = spec.checks.iter().map(|c| c.evaluate(ev)).collect();
            let has = |s| outcomes.iter().any(|o| o.status == s);
            let status = if has(ControlStatus::Fail) {
                ControlStatus::Fail
            } else if has(ControlStatus::Pass) {
                ControlStatus::Pass
            } else {
                ControlStatus::NotApplicable
            };
            let mut evidence = Vec::new();
            let mut remediation = Vec::new();
            for o in &outcomes {
                for line in &o.evidence {
                    if !evidence.contains(line) {
                        evidence.push(line.clone());
                    }
                }
                for line in &o.remediation {
                    if !remediation.contains(line) {
                        remediation.push(line.clone());
                    }
                }
            }
            Control {
                id: spec.id.to_string(),
                title: spec.title.to_string(),
                status,
                evidence,
                remediation,
                checks: spec.checks.iter().map(|c| c.name().to_string()).collect(),
            }
        })
        .collect();
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    ComplianceReport {
        standard: query.standard.to_string(),
        standard_name: query.standard_name.to_string(),
        generated_at: rfc(ev.now),
        since: query.since.clone(),
        window_start: rfc(ev.window_start),
        summary: Summary::of(&controls),
        controls,
    }
}

/// The report for `query`, on evidence gathered now.
pub async fn report(
    core: &Core,
    st: &Unsealed,
    query: &Query,
) -> Result<ComplianceReport, LogicalError> {
    let ev = evidence::gather(core, st, query.window).await?;
    Ok(judge(query, &ev))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hush_api::wire::reports::{ControlStatus, STANDARDS};

    use super::{evidence, judge, parse_query};

    fn failing(r: &hush_api::wire::reports::ComplianceReport) -> BTreeSet<String> {
        r.controls
            .iter()
            .filter(|c| c.status == ControlStatus::Fail)
            .map(|c| c.id.clone())
            .collect()
    }

    /// The rotation hook: once `overdue_rotations` answers `Some`, an overdue secret fails a
    /// control in every standard, and an empty list passes where "not configured" was n/a.
    #[tokio::test]
    async fn overdue_rotations_fail_a_control_in_every_standard() {
        let core = crate::core::test_support::dev_core().await;
        let st = core.unsealed().unwrap();
        let window = std::time::Duration::from_secs(90 * 86_400);
        let mut ev = evidence::gather(&core, &st, window).await.unwrap();
        assert_eq!(ev.overdue_rotations, None);
        let mut before = Vec::new();
        for (standard, _) in STANDARDS {
            before.push(failing(&judge(
                &parse_query(Some(standard), None).unwrap(),
                &ev,
            )));
        }
        ev.overdue_rotations = Some(vec!["secret/app/db".into()]);
        let expected: [&[&str]; 5] = [
            &["CC6.1"],
            &["3.7"],
            &["164.312(a)"],
            &["Art. 32(1)(b)"],
            &["A.8.24"],
        ];
        for (((standard, _), before), added) in STANDARDS.iter().zip(&before).zip(expected) {
            let r = judge(&parse_query(Some(standard), None).unwrap(), &ev);
            let now = failing(&r);
            let want: BTreeSet<String> = before
                .iter()
                .cloned()
                .chain(added.iter().map(|s| s.to_string()))
                .collect();
            assert_eq!(now, want, "{standard}");
            let c = r.controls.iter().find(|c| c.id == added[0]).unwrap();
            assert!(c.evidence.iter().any(|e| e == "secret/app/db"), "{c:?}");
            assert!(
                c.remediation
                    .iter()
                    .any(|f| f.contains("sys/rotation/rotate/secret/app/db")),
                "{c:?}"
            );
        }
        ev.overdue_rotations = Some(Vec::new());
        let r = judge(&parse_query(Some("pci-dss"), None).unwrap(), &ev);
        let c = r.controls.iter().find(|c| c.id == "3.7").unwrap();
        assert!(c.evidence.iter().any(|e| e.contains("rotated on time")));
    }
}
