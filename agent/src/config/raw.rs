//! The config file as written: plain strings and options, unknown keys refused. Flags are
//! folded into the same shape (see [`super::flags`]) so one validation serves both.
//!
//! ```toml
//! [server]
//! addr = "https://127.0.0.1:8200"
//! ca_cert = "/etc/hush/ca.pem"
//! token_file = "/var/run/hush/token"
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

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
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
    #[serde(default)]
    pub secrets: BTreeMap<String, RawSecret>,
    /// Secrets named by `--lazy` (names, or `--secret` paths).
    #[serde(skip)]
    pub lazy: Vec<String>,
    #[serde(default, rename = "file")]
    pub files: Vec<RawFile>,
    #[serde(default)]
    pub notify: RawNotify,
    #[serde(default)]
    pub exec: Option<RawExec>,
}

/// A `[secrets]` entry: the API path, or `{ path = "...", lazy = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a [secrets] entry is an API path (\"secret/data/app/db\") or a table { path = \"...\", lazy = true }"
)]
pub enum RawSecret {
    Path(String),
    Table(RawSecretTable),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretTable {
    pub path: String,
    /// FUSE mode: leased at the first open of a file that reads it, not at start.
    #[serde(default)]
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub addr: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// `[auth]`: workload-identity login (paths only; the credentials stay in their files).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub method: Option<String>,
    pub mount: Option<String>,
    pub role: Option<String>,
    pub jwt_file: Option<PathBuf>,
    pub role_id_file: Option<PathBuf>,
    pub secret_id_file: Option<PathBuf>,
    pub gcp_metadata_host: Option<String>,
    pub aws_region: Option<String>,
    pub aws_server_id: Option<String>,
    pub aws_sts_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub refresh_interval: Option<String>,
    pub backoff_max: Option<String>,
    pub on_forbidden: Option<String>,
    pub revoke_on_exit: Option<bool>,
    pub lease_grace: Option<String>,
    pub revoke_leases_on_exit: Option<bool>,
    pub metrics_listen: Option<String>,
    pub once: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub path: Option<PathBuf>,
    pub allow_disk: Option<bool>,
    pub mount_tmpfs: Option<bool>,
    pub tmpfs_size: Option<String>,
    pub fuse: Option<bool>,
    pub fuse_cache: Option<String>,
    pub access_log: Option<PathBuf>,
}

/// One file of the destination.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub name: String,
    /// Name in `[secrets]` (or, from flags, the API path itself).
    pub secret: Option<String>,
    pub format: Option<String>,
    pub field: Option<String>,
    pub template: Option<String>,
    pub template_file: Option<PathBuf>,
    /// Octal, as a string (`"0440"`) or an integer written in octal digits (`440`).
    pub mode: Option<RawMode>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// FUSE mode: uids allowed to open the file.
    pub uids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMode {
    Text(String),
    Digits(u64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// argv of a command run after each change (no shell).
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub signal: Option<String>,
    pub pid_file: Option<PathBuf>,
    pub process: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub command: Vec<String>,
    /// Environment variable -> rendered file whose content it gets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub on_change: Option<String>,
}
