//! A config read again on `SIGHUP`: what may change while the agent runs, and what is kept.
//!
//! Applied live: the secrets, the files (names, formats, templates, modes, owners), the refresh
//! interval, the backoff cap, `on_forbidden`, the lease grace, the notify command and signal,
//! and the revoke-at-exit settings. Kept from the running agent (each one named in the log when
//! the new file changes it; a restart applies it): the server address, CA and credential (the
//! token and the leases hang on them), the destination (its path, tmpfs and FUSE settings),
//! the metrics listener, `once`, the supervised command, `push` (the subscriber starts
//! with the agent), and the agent id and report settings (the shipper and its spool start with
//! the agent).

use super::Config;

/// Settings that a reload cannot change, by the name the log shows.
pub const FIXED: [&str; 11] = [
    "server.addr",
    "server.ca_cert",
    "the credential (token_file / auth)",
    "destination",
    "metrics_listen",
    "once",
    "exec (the supervised command)",
    "destination.fuse",
    "agent.push",
    "agent.id",
    "agent.report (report, report_interval, report_spool, report_spool_file)",
];

/// `new` with the settings a reload cannot change taken from `old`; and the names of those
/// that `new` wanted to change (for the log).
pub fn merge(old: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let mut kept = Vec::new();
    if new.server.addr != old.server.addr {
        kept.push(FIXED[0]);
    }
    if new.server.ca_cert != old.server.ca_cert {
        kept.push(FIXED[1]);
    }
    if new.server.credential != old.server.credential {
        kept.push(FIXED[2]);
    }
    new.server = old.server.clone();
    let (od, nd) = (&old.destination, &new.destination);
    if nd.path != od.path || nd.allow_disk != od.allow_disk || nd.mount_tmpfs != od.mount_tmpfs {
        kept.push(FIXED[3]);
    }
    if nd.fuse != od.fuse {
        kept.push(FIXED[7]);
    }
    new.destination = old.destination.clone();
    if new.metrics_listen != old.metrics_listen {
        kept.push(FIXED[4]);
        new.metrics_listen = old.metrics_listen;
    }
    if new.once != old.once {
        kept.push(FIXED[5]);
        new.once = old.once;
    }
    if new.push != old.push {
        kept.push(FIXED[8]);
        new.push = old.push;
    }
    // A derived id follows the destination, which is already named when it changed.
    if new.identity != old.identity {
        if !kept.contains(&FIXED[3]) {
            kept.push(FIXED[9]);
        }
        new.identity = old.identity.clone();
    }
    if new.report != old.report {
        kept.push(FIXED[10]);
        new.report = old.report.clone();
    }
    let exec_key = |c: &Config| {
        c.exec
            .as_ref()
            .map(|e| (e.argv.clone(), e.env.clone(), e.on_change.clone()))
    };
    if exec_key(&new) != exec_key(old) {
        kept.push(FIXED[6]);
    }
    new.exec = old.exec.clone();
    (new, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_text;

    fn config(text: &str) -> Config {
        Config::from_raw(parse_text("test", text).unwrap()).unwrap()
    }

    const BASE: &str = r#"
[agent]
refresh_interval = "60s"
[server]
addr = "https://127.0.0.1:8200"
token_file = "/run/token"
[destination]
path = "/run/hush/app"
[secrets]
db = "secret/data/app/db"
[[file]]
name = "password"
secret = "db"
field = "password"
"#;

    #[test]
    fn files_and_refresh_change_fixed_settings_stay() {
        let old = config(BASE);
        let text = BASE
            .replace("60s", "5s")
            .replace("127.0.0.1:8200", "127.0.0.2:8200")
            .replace("/run/hush/app", "/run/hush/other")
            .replace("\"password\"\nsecret", "\"pw\"\nsecret");
        let (merged, kept) = merge(&old, config(&text));
        assert_eq!(merged.refresh_interval, std::time::Duration::from_secs(5));
        assert_eq!(merged.files[0].name, "pw");
        assert_eq!(merged.server.addr, "https://127.0.0.1:8200");
        assert_eq!(merged.destination.path, old.destination.path);
        assert_eq!(kept, vec!["server.addr", "destination"]);
    }

    #[test]
    fn agent_id_and_report_settings_stay() {
        let old = config(BASE);
        let text = BASE.replace(
            "refresh_interval = \"60s\"",
            "refresh_interval = \"60s\"\nid = \"other\"\nreport_interval = \"1s\"",
        );
        let (merged, kept) = merge(&old, config(&text));
        assert_eq!(merged.identity, old.identity);
        assert_eq!(merged.report, old.report);
        assert_eq!(kept, vec![FIXED[9], FIXED[10]]);
    }

    #[test]
    fn the_same_file_keeps_nothing_back() {
        let (_, kept) = merge(&config(BASE), config(BASE));
        assert!(kept.is_empty(), "{kept:?}");
    }
}
