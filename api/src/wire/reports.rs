//! Hush's own compliance report (`GET sys/reports/compliance?standard=S&since=D`): what hushd
//! answers under `data`, and what `hush report compliance` renders as JSON or HTML.
//!
//! Every string in a report is evidence an auditor may keep: numbers, names, dates, token
//! accessors and policy names, never a token or a secret value.

use serde::{Deserialize, Serialize};

/// The standards a report can be asked for (`standard=`), with their display names.
pub const STANDARDS: &[(&str, &str)] = &[
    ("soc2", "SOC 2 (AICPA Trust Services Criteria 2017)"),
    ("pci-dss", "PCI DSS v4.0"),
    ("hipaa", "HIPAA Security Rule, 45 CFR 164.312"),
    ("gdpr", "GDPR Article 32"),
    ("iso27001", "ISO/IEC 27001:2022 Annex A"),
];

/// The window a report looks back over when `since` is not given.
pub const DEFAULT_SINCE: &str = "90d";

/// How a control stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    Pass,
    Fail,
    /// hushd cannot prove it either way here (the evidence says why).
    NotApplicable,
}

impl ControlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Pass => "pass",
            ControlStatus::Fail => "fail",
            ControlStatus::NotApplicable => "not_applicable",
        }
    }
}

/// One control of a standard, judged on hushd's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The standard's own id, e.g. `CC6.1`, `10.2`, `164.312(b)`, `A.8.15`.
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    /// What hushd found, one fact a line.
    pub evidence: Vec<String>,
    /// What to do about a failure (empty when it passes), exact commands where there are.
    pub remediation: Vec<String>,
    /// The evidence checks this control is judged on (names as in the README's table).
    pub checks: Vec<String>,
}

/// Controls by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub pass: usize,
    pub fail: usize,
    pub not_applicable: usize,
}

impl Summary {
    pub fn of(controls: &[Control]) -> Summary {
        let count = |s| controls.iter().filter(|c| c.status == s).count();
        Summary {
            total: controls.len(),
            pass: count(ControlStatus::Pass),
            fail: count(ControlStatus::Fail),
            not_applicable: count(ControlStatus::NotApplicable),
        }
    }
}

/// `data` of `GET sys/reports/compliance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// As asked: `soc2`, `pci-dss`, `hipaa`, `gdpr`, `iso27001`.
    pub standard: String,
    /// Its display name, e.g. `PCI DSS v4.0`.
    pub standard_name: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// The window as asked, e.g. `90d`.
    pub since: String,
    /// Its start, RFC 3339, UTC.
    pub window_start: String,
    pub summary: Summary,
    pub controls: Vec<Control>,
}

/// The display name of `standard`, `None` when it is not one of [`STANDARDS`].
pub fn standard_name(standard: &str) -> Option<&'static str> {
    STANDARDS
        .iter()
        .find(|(id, _)| *id == standard)
        .map(|(_, name)| *name)
}

/// `soc2, pci-dss, hipaa, gdpr, iso27001`: for messages.
pub fn standard_ids() -> String {
    STANDARDS
        .iter()
        .map(|(id, _)| *id)
        .collect::<Vec<_>>()
        .join(", ")
}
