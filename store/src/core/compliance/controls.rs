//! The mapping, as a table: each standard's controls and the evidence checks each is judged
//! on. A control fails when any of its checks fails, passes when none fails and at least one
//! passes, and is `not_applicable` when none could be judged. The README's compliance section
//! prints the same table.

use super::checks::Check::{self, *};

/// One row: standard, control id, title, checks.
#[derive(Debug, Clone, Copy)]
pub struct ControlSpec {
    pub standard: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub checks: &'static [Check],
}

const fn c(
    standard: &'static str,
    id: &'static str,
    title: &'static str,
    checks: &'static [Check],
) -> ControlSpec {
    ControlSpec {
        standard,
        id,
        title,
        checks,
    }
}

#[rustfmt::skip]
pub const CONTROLS: &[ControlSpec] = &[
    c("soc2", "CC6.1", "Logical access security over protected information assets",
      &[EncryptionAtRest, KeyTermAge, UnsealThreshold, LeastPrivilege, SecretRotation]),
    c("soc2", "CC6.2", "Credentials are issued, reviewed and removed",
      &[TokenExpiry, DormantIdentities]),
    c("soc2", "CC6.6", "Protection against threats from outside the system boundaries",
      &[TransportTls, LoginLockout]),
    c("soc2", "CC7.2", "System components are monitored for anomalies",
      &[AuditDevices, AuditIntegrity, AuditContinuity, AccessAccountability]),

    c("pci-dss", "3.6", "Cryptographic keys used to protect stored data are secured",
      &[EncryptionAtRest, UnsealThreshold]),
    c("pci-dss", "3.7", "Key management: cryptoperiods, key changes and retirement",
      &[KeyTermAge, SecretRotation]),
    c("pci-dss", "4.2", "Strong cryptography protects data in transmission",
      &[TransportTls]),
    c("pci-dss", "7.2", "Access is assigned by least privilege",
      &[LeastPrivilege]),
    c("pci-dss", "8.2", "User identification and accounts are managed",
      &[TokenExpiry, DormantIdentities]),
    c("pci-dss", "8.3", "Strong authentication: lockout after failed attempts, credentials that expire",
      &[LoginLockout, TokenExpiry]),
    c("pci-dss", "10.2", "Audit logs record user activity",
      &[AuditDevices, AccessAccountability]),
    c("pci-dss", "10.3", "Audit logs are protected from modification",
      &[AuditIntegrity]),
    c("pci-dss", "10.5", "Audit log history is retained without interruption",
      &[AuditContinuity]),

    c("hipaa", "164.312(a)", "Access control: unique identification, least privilege, encryption",
      &[TokenExpiry, LeastPrivilege, DormantIdentities, EncryptionAtRest, SecretRotation]),
    c("hipaa", "164.312(b)", "Audit controls: activity is recorded and can be examined",
      &[AuditDevices, AuditContinuity, AccessAccountability]),
    c("hipaa", "164.312(c)", "Integrity: data and records are protected from improper alteration",
      &[EncryptionAtRest, AuditIntegrity]),
    c("hipaa", "164.312(d)", "Person or entity authentication",
      &[LoginLockout]),
    c("hipaa", "164.312(e)", "Transmission security",
      &[TransportTls]),

    c("gdpr", "Art. 32(1)(a)", "Encryption of personal data",
      &[EncryptionAtRest, KeyTermAge, TransportTls]),
    c("gdpr", "Art. 32(1)(b)", "Ongoing confidentiality and integrity of processing systems",
      &[LeastPrivilege, TokenExpiry, DormantIdentities, LoginLockout, UnsealThreshold, SecretRotation]),
    c("gdpr", "Art. 32(1)(d)", "Regular testing and evaluation of the security measures",
      &[AuditDevices, AuditIntegrity, AuditContinuity, AccessAccountability]),

    c("iso27001", "A.5.15", "Access control",
      &[LeastPrivilege, TokenExpiry]),
    c("iso27001", "A.5.18", "Access rights are reviewed and removed",
      &[DormantIdentities]),
    c("iso27001", "A.8.5", "Secure authentication",
      &[LoginLockout, UnsealThreshold]),
    c("iso27001", "A.8.15", "Logging",
      &[AuditDevices, AuditIntegrity, AuditContinuity, AccessAccountability]),
    c("iso27001", "A.8.24", "Use of cryptography",
      &[EncryptionAtRest, KeyTermAge, TransportTls, SecretRotation]),
];

/// The controls of `standard`, in table order.
pub fn of(standard: &str) -> impl Iterator<Item = &'static ControlSpec> + '_ {
    CONTROLS.iter().filter(move |c| c.standard == standard)
}

#[cfg(test)]
mod tests {
    use hush_api::wire::reports::STANDARDS;

    #[test]
    fn every_standard_has_controls_and_every_control_a_known_standard() {
        for (id, _) in STANDARDS {
            assert!(super::of(id).count() >= 3, "{id}");
        }
        for c in super::CONTROLS {
            assert!(STANDARDS.iter().any(|(s, _)| *s == c.standard), "{}", c.id);
            assert!(!c.checks.is_empty(), "{}", c.id);
        }
    }
}
