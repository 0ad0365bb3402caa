//! The evidence checks: each reads the one [`Evidence`] gathered for a report and answers a
//! status, the facts it rests on and, when it fails, what to do. Controls (`controls.rs`) are
//! judged on one or more of these.

use chrono::{DateTime, Duration, Utc};
use hush_api::wire::reports::ControlStatus;

use super::evidence::Evidence;
use super::tokens::{TokenInfo, LISTED};
use crate::core::audit::history::AuditAction;
use crate::core::audit::inspect::{ChainCheck, Sink};

/// The active key term is stale after this long (a cryptoperiod of one year).
pub const MAX_KEY_AGE: Duration = Duration::days(365);
/// Key shares an unseal must need at least (no one person can unseal alone).
pub const MIN_UNSEAL_THRESHOLD: u8 = 2;
/// The lockout must lock an identity after at most this many failures (PCI DSS 8.3.4)...
pub const MAX_LOCKOUT_THRESHOLD: u32 = 10;
/// ... for at least this long (PCI DSS 8.3.4).
pub const MIN_LOCKOUT_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// One evidence check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    EncryptionAtRest,
    KeyTermAge,
    UnsealThreshold,
    TransportTls,
    AuditDevices,
    AuditIntegrity,
    AuditContinuity,
    AccessAccountability,
    TokenExpiry,
    LeastPrivilege,
    LoginLockout,
    DormantIdentities,
    SecretRotation,
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ControlStatus,
    pub evidence: Vec<String>,
    pub remediation: Vec<String>,
}

impl Outcome {
    fn pass(evidence: Vec<String>) -> Self {
        Outcome {
            status: ControlStatus::Pass,
            evidence,
            remediation: Vec::new(),
        }
    }

    fn fail(evidence: Vec<String>, remediation: Vec<String>) -> Self {
        Outcome {
            status: ControlStatus::Fail,
            evidence,
            remediation,
        }
    }

    fn not_applicable(evidence: Vec<String>) -> Self {
        Outcome {
            status: ControlStatus::NotApplicable,
            evidence,
            remediation: Vec::new(),
        }
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn span(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 7200 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{} ms", d.num_milliseconds().max(s * 1000)),
    }
}

/// `N` items named, then "and M more".
fn listed(items: impl IntoIterator<Item = String>, total: usize) -> Vec<String> {
    let mut out: Vec<String> = items.into_iter().take(LISTED).collect();
    if total > out.len() {
        out.push(format!("... and {} more", total - out.len()));
    }
    out
}

fn tokens_listed(tokens: &[TokenInfo]) -> Vec<String> {
    listed(tokens.iter().map(|t| t.describe()), tokens.len())
}

impl Check {
    /// The check's name, as the report and the README's table spell it.
    pub fn name(self) -> &'static str {
        match self {
            Check::EncryptionAtRest => "encryption_at_rest",
            Check::KeyTermAge => "key_term_age",
            Check::UnsealThreshold => "unseal_threshold",
            Check::TransportTls => "transport_tls",
            Check::AuditDevices => "audit_devices",
            Check::AuditIntegrity => "audit_integrity",
            Check::AuditContinuity => "audit_continuity",
            Check::AccessAccountability => "access_accountability",
            Check::TokenExpiry => "token_expiry",
            Check::LeastPrivilege => "least_privilege",
            Check::LoginLockout => "login_lockout",
            Check::DormantIdentities => "dormant_identities",
            Check::SecretRotation => "secret_rotation",
        }
    }

    pub fn evaluate(self, ev: &Evidence) -> Outcome {
        match self {
            Check::EncryptionAtRest => encryption_at_rest(ev),
            Check::KeyTermAge => key_term_age(ev),
            Check::UnsealThreshold => unseal_threshold(ev),
            Check::TransportTls => transport_tls(ev),
            Check::AuditDevices => audit_devices(ev),
            Check::AuditIntegrity => audit_integrity(ev),
            Check::AuditContinuity => audit_continuity(ev),
            Check::AccessAccountability => access_accountability(ev),
            Check::TokenExpiry => token_expiry(ev),
            Check::LeastPrivilege => least_privilege(ev),
            Check::LoginLockout => login_lockout(ev),
            Check::DormantIdentities => dormant_identities(ev),
            Check::SecretRotation => secret_rotation(ev),
        }
    }
}

fn encryption_at_rest(ev: &Evidence) -> Outcome {
    let k = &ev.keys;
    Outcome::pass(vec![format!(
        "every stored entry is encrypted with {} under key term {} (its storage key \
         authenticated as associated data); the keyring is encrypted by the root key, which \
         the Shamir key shares protect",
        k.cipher, k.active_term
    )])
}

fn key_term_age(ev: &Evidence) -> Outcome {
    let k = &ev.keys;
    let age = ev.now - k.active_installed;
    let facts = vec![
        format!(
            "active key term {} installed {} ({} ago; limit {} days)",
            k.active_term,
            day(k.active_installed),
            span(age),
            MAX_KEY_AGE.num_days()
        ),
        format!(
            "{} key term(s) in the keyring, {} retired",
            k.terms, k.retired
        ),
    ];
    if age <= MAX_KEY_AGE {
        Outcome::pass(facts)
    } else {
        Outcome::fail(
            facts,
            vec![
                "hush operator rotate   (a new key term; the background rewrap then moves every \
                 entry to it: follow it with hush operator key-status)"
                    .into(),
            ],
        )
    }
}

fn unseal_threshold(ev: &Evidence) -> Outcome {
    let k = &ev.keys;
    let facts = vec![format!(
        "unsealing needs {} of {} Shamir key shares (at least {} required: no one holder can \
         unseal alone)",
        k.threshold, k.shares, MIN_UNSEAL_THRESHOLD
    )];
    if k.threshold >= MIN_UNSEAL_THRESHOLD {
        Outcome::pass(facts)
    } else {
        Outcome::fail(
            facts,
            vec![
                "rekey to a threshold of at least 2: hush operator rekey -init -key-shares 5 \
                 -key-threshold 3, then each current holder: hush operator rekey"
                    .into(),
                "give each new share to a different holder".into(),
            ],
        )
    }
}

fn transport_tls(ev: &Evidence) -> Outcome {
    match ev.listener {
        None => Outcome::not_applicable(vec![
            "this core was not started by hushd's listener (embedded): the transport is not \
             known"
                .into(),
        ]),
        Some(l) if l.tls => Outcome::pass(vec![format!(
            "the API is served over TLS (rustls) on {}; certificates reload from disk when \
             they change",
            l.addr
        )]),
        Some(l) => Outcome::fail(
            vec![format!(
                "the API is served as plain HTTP on {} (--insecure-no-tls)",
                l.addr
            )],
            vec![
                "restart hushd with --tls-cert FILE --tls-key FILE (or tls_cert/tls_key in its \
                 config file) instead of --insecure-no-tls"
                    .into(),
            ],
        ),
    }
}

fn sink_name(sink: &Sink) -> String {
    match sink {
        Sink::File(p) => p.display().to_string(),
        Sink::Stdout => "stdout".into(),
        Sink::Discard => "discard".into(),
    }
}

const ENABLE_AUDIT: &str = "hush audit enable file file_path=/var/log/hush/audit.log";

fn audit_devices(ev: &Evidence) -> Outcome {
    let devices = &ev.audit.devices;
    let facts: Vec<String> = devices
        .iter()
        .map(|d| format!("audit device {} writes to {}", d.path, sink_name(&d.sink)))
        .collect();
    if devices.is_empty() {
        return Outcome::fail(
            vec!["no audit device is enabled: requests are not recorded".into()],
            vec![ENABLE_AUDIT.into()],
        );
    }
    if devices.iter().all(|d| d.sink == Sink::Discard) {
        let mut facts = facts;
        facts.push("every enabled device discards its entries".into());
        return Outcome::fail(facts, vec![ENABLE_AUDIT.into()]);
    }
    Outcome::pass(facts)
}

fn audit_integrity(ev: &Evidence) -> Outcome {
    let devices = &ev.audit.devices;
    if devices.is_empty() {
        return Outcome::fail(
            vec!["no audit device is enabled: there is no log to verify".into()],
            vec![ENABLE_AUDIT.into()],
        );
    }
    let mut facts = Vec::new();
    let (mut verified, mut broken) = (0, 0);
    for d in devices {
        facts.push(match &d.chain {
            ChainCheck::Verified { lines } => {
                verified += 1;
                format!(
                    "{} ({}): hash chain verified over {lines} lines up to the head hushd holds",
                    d.path,
                    sink_name(&d.sink)
                )
            }
            ChainCheck::Broken(why) => {
                broken += 1;
                format!("{}: hash chain BROKEN: {why}", d.path)
            }
            ChainCheck::NotVerifiable(why) => format!("{}: not verified by hushd: {why}", d.path),
        });
    }
    if broken > 0 {
        return Outcome::fail(
            facts,
            vec![
                "keep the damaged file as evidence; find the first bad line with hush audit \
                 verify FILE"
                    .into(),
                "start a new chain without a gap: move the file away, then send SIGHUP to hushd \
                 (it reopens the path as a new file)"
                    .into(),
            ],
        );
    }
    if verified == 0 {
        return Outcome::not_applicable(facts);
    }
    Outcome::pass(facts)
}

fn audit_continuity(ev: &Evidence) -> Outcome {
    let a = &ev.audit;
    let Some(history) = &a.history else {
        return Outcome::not_applicable(vec![
            "hushd holds no history of audit device changes on this store".into(),
        ]);
    };
    let changes = history
        .events
        .iter()
        .filter(|e| e.time >= ev.window_start)
        .map(|e| {
            let what = match e.action {
                AuditAction::Enable => "enabled",
                AuditAction::Disable => "disabled",
            };
            format!("{} audit device {} {what}", day(e.time), e.path)
        });
    let mut facts: Vec<String> = Vec::new();
    if !a.gaps.is_empty() {
        for g in &a.gaps {
            facts.push(match g.until {
                Some(until) => format!(
                    "no audit device was enabled from {} to {} ({}): requests in between went \
                     unaudited",
                    day(g.from),
                    day(until),
                    span(until - g.from)
                ),
                None => format!("no audit device has been enabled since {}", day(g.from)),
            });
        }
        facts.extend(changes);
        return Outcome::fail(
            facts,
            vec![
                "keep at least one device enabled at all times: enable the new device before \
                 disabling the old one (hush audit enable -path=file2 file file_path=NEW, then \
                 hush audit disable file)"
                    .into(),
                "rotate files with SIGHUP (hushd reopens the path), not by disabling the device"
                    .into(),
            ],
        );
    }
    if let Some(from) = a.known_from {
        facts.push(format!(
            "audit device changes are recorded since {} only (the store is older): coverage \
             before cannot be proven",
            day(from)
        ));
        return Outcome::not_applicable(facts);
    }
    let start = ev.window_start.max(history.started);
    facts.push(format!(
        "at least one audit device was enabled at all times from {} to {}",
        day(a.setup.map_or(start, |(_, first)| first.max(start))),
        day(ev.now)
    ));
    if let Some((init, first)) = a.setup {
        if first > ev.window_start {
            facts.push(format!(
                "store setup not counted: initialised {}, first audit device enabled {} ({} \
                 later, within the {}-minute allowance)",
                day(init),
                day(first),
                span(first - init),
                super::audit::SETUP_ALLOWANCE.num_minutes()
            ));
        }
    }
    facts.extend(changes);
    Outcome::pass(facts)
}

fn access_accountability(ev: &Evidence) -> Outcome {
    let a = &ev.audit;
    let mut facts = Vec::new();
    for d in &a.devices {
        if let Sink::File(file) = &d.sink {
            let s = &d.stats;
            facts.push(format!(
                "{} ({}): {} requests by {} distinct token accessors over {} paths since {}; {} \
                 failed logins",
                d.path,
                file.display(),
                s.requests,
                s.identities,
                s.paths,
                day(ev.window_start),
                s.failed_logins
            ));
        }
    }
    let f = &ev.fleet;
    facts.push(format!(
        "fleet index (sys/agents): {} agents report secret-file opens (pid, uid, executable); \
         {} reported within the window, {} report batches received",
        f.agents, f.reporting, f.batches
    ));
    if !f.silent.is_empty() {
        facts.push(format!(
            "agents silent since before the window: {}",
            listed(f.silent.iter().cloned(), f.silent.len()).join(", ")
        ));
    }
    let keeps = a.devices.iter().any(|d| d.sink != Sink::Discard);
    if keeps {
        Outcome::pass(facts)
    } else {
        facts.insert(
            0,
            "no audit device keeps entries: who accessed what is not recorded".into(),
        );
        Outcome::fail(facts, vec![ENABLE_AUDIT.into()])
    }
}

fn token_expiry(ev: &Evidence) -> Outcome {
    let t = &ev.tokens;
    if t.non_expiring.is_empty() {
        return Outcome::pass(vec![format!(
            "all {} live tokens expire (none without a TTL, no root token)",
            t.total
        )]);
    }
    let roots = t.non_expiring.iter().filter(|x| x.root).count();
    let mut facts = vec![format!(
        "{} of {} live tokens never expire ({roots} of them root tokens):",
        t.non_expiring.len(),
        t.total
    )];
    facts.extend(tokens_listed(&t.non_expiring));
    let mut fix: Vec<String> = t
        .non_expiring
        .iter()
        .take(LISTED)
        .map(|x| format!("hush token revoke -accessor {}", x.accessor))
        .collect();
    fix.push(
        "give people and machines tokens with a TTL instead: hush token create -policy=NAME \
         -ttl=8h (or an auth method's role with token_ttl)"
            .into(),
    );
    if roots > 0 {
        fix.push(
            "keep no standing root token: generate one with hush operator generate-root when \
             needed and revoke it right after"
                .into(),
        );
    }
    Outcome::fail(facts, fix)
}

fn least_privilege(ev: &Evidence) -> Outcome {
    let p = &ev.policies;
    let mut facts = vec![format!(
        "{} stored policies: {}",
        p.names.len(),
        p.names.join(", ")
    )];
    let everything = p.everything.iter().map(|g| g.describe());
    let broad = p.broad_sudo.iter().map(|g| g.describe());
    if p.everything.is_empty() && p.broad_sudo.is_empty() {
        facts.push("no policy grants every path, and none grants sudo on a glob".into());
        facts.extend(
            p.exact_sudo
                .iter()
                .map(|g| format!("{} (exact path)", g.describe())),
        );
        return Outcome::pass(facts);
    }
    facts.extend(everything.map(|d| format!("{d}: every path")));
    facts.extend(broad.map(|d| format!("{d}: sudo on a glob")));
    let mut names: Vec<&str> = p
        .everything
        .iter()
        .chain(&p.broad_sudo)
        .map(|g| g.policy.as_str())
        .collect();
    names.dedup();
    Outcome::fail(
        facts,
        names
            .into_iter()
            .map(|n| {
                format!(
                    "narrow policy {n} to the paths it needs, sudo only on exact sys/ paths: \
                     hush policy read {n} > {n}.hcl; edit; hush policy write {n} {n}.hcl"
                )
            })
            .collect(),
    )
}

fn login_lockout(ev: &Evidence) -> Outcome {
    let l = ev.login;
    let failed: u64 = ev
        .audit
        .devices
        .iter()
        .map(|d| d.stats.failed_logins)
        .max()
        .unwrap_or(0);
    let mins = |d: std::time::Duration| d.as_secs() / 60;
    let mut facts = vec![if l.lockout_threshold == 0 {
        "the failed-login lockout is off (login_lockout_threshold = 0)".to_string()
    } else {
        format!(
            "an identity is locked after {} failed logins within {} minutes, for {} minutes",
            l.lockout_threshold,
            mins(l.lockout_counter_reset),
            mins(l.lockout_duration)
        )
    }];
    facts.push(format!(
        "{failed} failed logins recorded in the audit log since {}",
        day(ev.window_start)
    ));
    let ok = (1..=MAX_LOCKOUT_THRESHOLD).contains(&l.lockout_threshold)
        && l.lockout_duration >= MIN_LOCKOUT_DURATION;
    if ok {
        return Outcome::pass(facts);
    }
    facts.push(format!(
        "required: lock after at most {MAX_LOCKOUT_THRESHOLD} failures, for at least {} minutes",
        mins(MIN_LOCKOUT_DURATION)
    ));
    Outcome::fail(
        facts,
        vec![
            "in hushd's config file: login_lockout_threshold = 5 and login_lockout_duration_secs \
             = 1800, then restart hushd"
                .into(),
        ],
    )
}

fn dormant_identities(ev: &Evidence) -> Outcome {
    let old = &ev.tokens.older_than_window;
    if old.is_empty() {
        return Outcome::pass(vec![format!(
            "no live token was created before {}: none can have gone unused for the whole window",
            day(ev.window_start)
        )]);
    }
    let covering: Vec<_> = ev
        .audit
        .devices
        .iter()
        .filter(|d| matches!(d.chain, ChainCheck::Verified { .. }))
        .filter(|d| d.stats.first_line.is_some_and(|t| t <= ev.window_start))
        .collect();
    if covering.is_empty() || !ev.audit.gaps.is_empty() {
        return Outcome::not_applicable(vec![format!(
            "{} live tokens are older than the window, and no verified audit file reaches back \
             without a gap to {}: their use cannot be proven either way",
            old.len(),
            day(ev.window_start)
        )]);
    }
    let unused: Vec<TokenInfo> = old
        .iter()
        .filter(|t| !covering.iter().any(|d| d.stats.seen.contains(&t.accessor)))
        .cloned()
        .collect();
    let basis = format!(
        "{} live tokens are older than the window; audit log {} covers it",
        old.len(),
        covering[0].path
    );
    if unused.is_empty() {
        return Outcome::pass(vec![
            basis,
            "each of them made a request in the window".into(),
        ]);
    }
    let mut facts = vec![
        basis,
        format!(
            "{} made no request since {}:",
            unused.len(),
            day(ev.window_start)
        ),
    ];
    facts.extend(tokens_listed(&unused));
    Outcome::fail(
        facts,
        unused
            .iter()
            .take(LISTED)
            .map(|t| format!("hush token revoke -accessor {}", t.accessor))
            .collect(),
    )
}

fn secret_rotation(ev: &Evidence) -> Outcome {
    match &ev.overdue_rotations {
        None => Outcome::not_applicable(vec![
            "rotation not configured: no secret has a rotation schedule (sys/rotation)".into(),
        ]),
        Some(overdue) if overdue.is_empty() => Outcome::pass(vec![
            "every secret with a rotation schedule was rotated on time".into(),
        ]),
        Some(overdue) => {
            let mut facts = vec![format!(
                "{} secrets are past their rotation schedule:",
                overdue.len()
            )];
            facts.extend(listed(overdue.iter().cloned(), overdue.len()));
            Outcome::fail(
                facts,
                overdue
                    .iter()
                    .take(LISTED)
                    .map(|p| {
                        format!(
                            "rotate now: PUT sys/rotation/rotate/{p}, then read \
                             sys/rotation/status/{p} for the outcome"
                        )
                    })
                    .collect(),
            )
        }
    }
}
