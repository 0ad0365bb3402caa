//! hush-agent's config file as written: plain strings and options, unknown keys refused
//! (`deny_unknown_fields`). The agent parses its TOML file into [`RawConfig`], folds its
//! flags into the same shape, and validates the whole into its typed config (every value
//! checked, one exact message per mistake). Whatever writes agent config without the agent
//! crate (the Kubernetes injector) builds these types and serializes them: unset options and
//! empty lists are left out, so what it writes parses back to the same value.
//!
//! ```toml
//! [server]
//! addr = "https://127.0.0.1:8200"
//! ca_cert = "/etc/hush/ca.pem"
//! token_file = "/var/run/hush/token"
//! request_timeout = "30s"     # one request to the store, reply included
//!
//! [auth]                      # instead of server.token_file: log in by workload identity
//! method = "kubernetes"       # kubernetes | jwt | gcp | approle | aws
//! mount = "kubernetes"        # default: the method's name
//! role = "web"                # kubernetes, jwt, gcp and aws
//! jwt_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # re-read at each login
//! # role_id_file = "/etc/hush/role-id"       # approle
//! # secret_id_file = "/etc/hush/secret-id"   # approle (optional with bind_secret_id=false)
//! # gcp_metadata_host = "metadata.google.internal"  # gcp (default: $GCE_METADATA_HOST or this)
//! # aws_region = "eu-west-1"                  # aws: signing region (default: AWS_REGION)
//! # aws_server_id = "hushd.example.com"       # aws: X-Vault-AWS-IAM-Server-ID value
//! # aws_sts_endpoint = "https://sts.eu-west-1.amazonaws.com"  # aws (default: AWS_ENDPOINT_URL_STS)
//!
//! [agent]
//! refresh_interval = "60s"    # how often KV metadata is checked for a new version
//! backoff_max = "5m"          # cap of the retry backoff during outages
//! on_forbidden = "keep"       # or "remove": what a 403 does to already rendered files
//! revoke_on_exit = false
//! lease_grace = "30s"         # replaced dynamic credentials stay valid this long, then revoked
//! revoke_leases_on_exit = true
//! metrics_listen = "127.0.0.1:9102"
//! once_deadline = "2m"        # --once exits 1 after this long, naming the last error
//! push = true                 # events from hushd: a change is on disk in milliseconds
//! # id = "web/web-7d9f"       # default: $HUSH_AGENT_ID, NAMESPACE/POD, else HOST:DESTINATION
//! report = true               # ship access events and state to hushd (sys/agents/report)
//! report_interval = "10s"     # a state report at least this often; accesses batched as often
//! report_spool = 10000        # access events kept in memory while hushd is unreachable
//! # report_spool_file = "/run/hush/spool.jsonl"   # more on tmpfs (bounded), then counted drops
//!
//! [destination]
//! path = "/run/secrets/app"
//! allow_disk = false
//! mount_tmpfs = false
//! tmpfs_size = "16m"
//! # fuse = true              # serve through a read-only FUSE mount instead (no tmpfs)
//! # fuse_cache = "audited"   # or "fast"
//! # access_log = "/var/log/hush/access.log"   # default: stdout
//!
//! [secrets]                   # name -> API path, read once however many files use it
//! db = "secret/data/app/db"
//! # pg = { path = "database/creds/app", lazy = true }   # FUSE: leased at the first open
//!
//! [[file]]
//! name = "db.password"
//! secret = "db"
//! format = "raw"              # raw | json | dotenv | template
//! field = "password"
//! mode = "0400"
//! uid = 1000
//! gid = 1000
//! # uids = [1000]             # FUSE mode: only these uids may open it (on top of the mode)
//!
//! [[file]]
//! name = "app.conf"
//! format = "template"
//! template = "user={{ secrets.db.user }}\n"   # or template_file = "/etc/hush/app.conf.j2"
//!
//! [notify]
//! command = ["/usr/bin/reload-app"]
//! timeout = "30s"
//! signal = "SIGHUP"
//! pid_file = "/run/app.pid"   # or process = "app"
//!
//! [exec]
//! command = ["/usr/bin/app", "--serve"]
//! env = { DB_PASSWORD = "db.password" }       # env var -> rendered file
//! on_change = "signal:SIGHUP"                  # or "restart"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Signals the agent will send (to a pid, a process name or its child): `[notify] signal`,
/// `--notify-signal`, the injector's `hush.dev/notify-signal`.
pub const SIGNALS: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGWINCH",
];

/// `HUP`, `sighup`, `SIGHUP` -> `SIGHUP`.
pub fn signal_name(text: &str) -> Option<&'static str> {
    let up = text.trim().to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    SIGNALS.iter().copied().find(|s| *s == full)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub destination: RawDestination,
    /// Secret name -> API path (`secret/data/app/db`), or a table with options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, RawSecret>,
    /// Secrets named by `--lazy` (names, or `--secret` paths).
    #[serde(skip)]
    pub lazy: Vec<String>,
    #[serde(default, rename = "file", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<RawFile>,
    #[serde(default)]
    pub notify: RawNotify,
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<RawExec>,
}

/// A `[secrets]` entry: the API path, or `{ path = "...", lazy = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a [secrets] entry is an API path (\"secret/data/app/db\") or a table { path = \"...\", lazy = true }"
)]
pub enum RawSecret {
    Path(String),
    Table(RawSecretTable),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretTable {
    pub path: String,
    /// FUSE mode: leased at the first open of a file that reads it, not at start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
}

impl RawSecret {
    pub fn path(&self) -> &str {
        match self {
            RawSecret::Path(p) => p,
            RawSecret::Table(t) => &t.path,
        }
    }

    pub fn lazy(&self) -> bool {
        matches!(self, RawSecret::Table(t) if t.lazy)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// How long one request to the store may take, reply included (default `30s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

/// `[auth]`: workload-identity login (paths only; the credentials stay in their files).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcp_metadata_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_server_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_sts_endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_forbidden: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_on_exit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_grace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_leases_on_exit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub once: Option<bool>,
    /// `--once` gives up after this long (a login that keeps failing, an unreachable store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub once_deadline: Option<String>,
    /// Subscribe to hushd's events and re-read a secret as soon as it changes (default true);
    /// the metadata poll stays as the safety net either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<bool>,
    /// The agent's id in hushd's fleet view (`sys/agents`); default `HUSH_AGENT_ID`, else
    /// `NAMESPACE/POD` from the downward API env, else `HOST:DESTINATION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Ship access events and state reports to hushd (`sys/agents/report`; default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<bool>,
    /// How often accesses are shipped and, at the least, a state report is sent (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_interval: Option<String>,
    /// Access events kept in memory while they wait to be shipped (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_spool: Option<u64>,
    /// A file on the agent's tmpfs for the events beyond `report_spool` (bounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_spool_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_disk: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_tmpfs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse_cache: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<PathBuf>,
}

/// One file of the destination.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub name: String,
    /// Name in `[secrets]` (or, from flags, the API path itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_file: Option<PathBuf>,
    /// Octal, as a string (`"0440"`) or an integer written in octal digits (`440`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RawMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// FUSE mode: uids allowed to open the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawMode {
    Text(String),
    Digits(u64),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// argv of a command run after each change (no shell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub command: Vec<String>,
    /// Environment variable -> rendered file whose content it gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_change: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_and_unset_options_are_not_written() {
        let e =
            serde_json::from_value::<RawConfig>(serde_json::json!({"agent": {"refresh": "1s"}}))
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `refresh`"), "{e}");
        let raw = RawConfig {
            agent: RawAgent {
                once: Some(true),
                ..RawAgent::default()
            },
            ..RawConfig::default()
        };
        let v = serde_json::to_value(&raw).unwrap();
        assert_eq!(v["agent"], serde_json::json!({"once": true}));
        assert!(v.get("file").is_none() && v.get("exec").is_none(), "{v}");
        let back: RawConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back.agent.once, Some(true));
    }
}
