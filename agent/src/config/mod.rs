//! Configuration: flags and the TOML file, parsed raw (into [`RawConfig`], from
//! `hush_api::agent_config`, shared with whatever writes agent config), then validated into a
//! typed [`Config`].
//!
//! Everything is checked here, before the agent binds a port or reads a secret: an invalid
//! config is one [`ConfigError`] with one exact message, and the binary exits 64.

mod aws;
mod credential;
pub mod flags;
pub mod reload;
pub mod report;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use flags::{Flags, ServerFlags};
pub use hush_api::agent_config::RawConfig;
/// Duration strings (in hush-api, shared with hush-injector).
pub use hush_api::duration;
pub use report::{Identity, ReportSettings};

/// An invalid configuration, with the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    /// One entry per distinct API path.
    pub sources: Vec<Source>,
    pub files: Vec<FileSpec>,
    pub destination: Destination,
    /// How often non-leased secrets are checked for a new version.
    pub refresh_interval: Duration,
    /// Cap of the retry backoff.
    pub backoff_max: Duration,
    pub on_forbidden: OnForbidden,
    pub once: bool,
    /// How long `--once` may take before it gives up (naming the last error).
    pub once_deadline: Duration,
    pub revoke_on_exit: bool,
    /// Keep `.hush-leases.json` current beside the files while running, so an agent
    /// restarted after a crash adopts the leases instead of leasing anew (on, except for
    /// `--once` and the Docker volume plugin, whose volumes must not hold it).
    pub lease_record: bool,
    /// How long replaced dynamic credentials stay valid before their lease is revoked.
    pub lease_grace: Duration,
    /// Revoke held leases at exit (never with `once`: they are handed over).
    pub revoke_leases_on_exit: bool,
    pub metrics_listen: Option<SocketAddr>,
    /// Subscribe to hushd's events (`[agent] push`, `--no-push`); never with `once`.
    pub push: bool,
    /// Who the agent is in hushd's fleet view (`[agent] id`, `--agent-id`).
    pub identity: Identity,
    /// Shipping access events and state to hushd; `None`: off (`--no-report`, `--once`).
    pub report: Option<ReportSettings>,
    pub notify: Notify,
    pub exec: Option<Exec>,
}

impl Config {
    /// The lazy sources file `file` reads: its own secret's, or for a template every lazy
    /// one (a template sees every secret). Empty: the file is rendered from the start.
    pub fn lazy_sources(&self, file: usize) -> Vec<usize> {
        let lazy = |s: &usize| self.sources.get(*s).is_some_and(|src| src.lazy);
        match self.files.get(file).map(|f| &f.format) {
            Some(Format::Template { .. }) => (0..self.sources.len()).filter(lazy).collect(),
            Some(f) => f.source().filter(lazy).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

impl Config {
    /// The API paths file `file` is made from: its secret's, or for a template those of the
    /// secrets it names (`secrets.NAME`, `secrets["NAME"]`), every one when it names none
    /// that way. What access reports say a file holds.
    pub fn file_paths(&self, file: usize) -> Vec<String> {
        let Some(spec) = self.files.get(file) else {
            return Vec::new();
        };
        match &spec.format {
            Format::Template { source_text } => {
                let named = |n: &str| {
                    [
                        format!("secrets.{n}"),
                        format!("secrets[\"{n}\"]"),
                        format!("secrets['{n}']"),
                    ]
                    .iter()
                    .any(|pat| {
                        source_text.match_indices(pat.as_str()).any(|(i, _)| {
                            let after = source_text[i + pat.len()..].chars().next();
                            !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        })
                    })
                };
                let mut paths: Vec<String> = self
                    .sources
                    .iter()
                    .filter(|s| s.names.iter().any(|n| named(n)))
                    .map(|s| s.path.clone())
                    .collect();
                if paths.is_empty() {
                    paths = self.sources.iter().map(|s| s.path.clone()).collect();
                }
                paths
            }
            f => f
                .source()
                .and_then(|i| self.sources.get(i))
                .map(|s| vec![s.path.clone()])
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub addr: String,
    pub ca_cert: Option<PathBuf>,
    /// One request to the store, reply included (read at start).
    pub request_timeout: Duration,
    /// Where the token comes from: a file, or a login.
    pub credential: Credential,
}

/// The agent's token: exactly one of a token file or a workload-identity login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    TokenFile(PathBuf),
    Login(LoginSpec),
}

/// How the agent logs in (paths only: the credentials are read from them at each login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSpec {
    /// Mount path without slashes, e.g. `kubernetes` (login at `auth/<mount>/login`).
    pub mount: String,
    pub method: LoginMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    /// `{role, jwt}` with the JWT read from `jwt_file` (kubernetes and jwt methods).
    Jwt {
        kind: JwtKind,
        role: String,
        jwt_file: PathBuf,
    },
    /// `{role_id, secret_id}`.
    AppRole {
        role_id_file: PathBuf,
        secret_id_file: Option<PathBuf>,
    },
    /// `{role, jwt}` with a GCE identity token fetched from the metadata server (plain HTTP,
    /// as on every GCE instance) at each login.
    Gcp {
        role: String,
        /// `host` or `host:port` of the metadata server.
        metadata_host: String,
    },
    /// A signed STS GetCallerIdentity request, with credentials from the standard chain
    /// (read again at each login).
    Aws(AwsLogin),
}

/// `--auth aws`: what to sign with; unset values come from the environment at each login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLogin {
    pub role: String,
    /// Signing region [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1].
    pub region: Option<String>,
    /// The `X-Vault-AWS-IAM-Server-ID` header value, when hushd requires one.
    pub server_id: Option<String>,
    /// STS endpoint [default: AWS_ENDPOINT_URL_STS, https://sts.amazonaws.com].
    pub sts_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtKind {
    Kubernetes,
    Jwt,
}

impl LoginSpec {
    /// `kubernetes`, `jwt`, `gcp` or `approle`.
    pub fn method_name(&self) -> &'static str {
        match &self.method {
            LoginMethod::Jwt {
                kind: JwtKind::Kubernetes,
                ..
            } => "kubernetes",
            LoginMethod::Jwt {
                kind: JwtKind::Jwt, ..
            } => "jwt",
            LoginMethod::AppRole { .. } => "approle",
            LoginMethod::Gcp { .. } => "gcp",
            LoginMethod::Aws(_) => "aws",
        }
    }
}

/// Where kubelet projects the service-account token.
pub const DEFAULT_K8S_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The GCE metadata server, unless `--gcp-metadata-host` or `GCE_METADATA_HOST` says otherwise.
pub const DEFAULT_GCE_METADATA_HOST: &str = "metadata.google.internal";

/// A secret to read: one API path, however many names and files refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The names that refer to it (in `[secrets]`, or the path for `--secret`).
    pub names: Vec<String>,
    /// The API path, e.g. `secret/data/app/db`.
    pub path: String,
    pub kind: SourceKind,
    /// FUSE mode: leased (read) at the first open of a file that reads it, not at start.
    pub lazy: bool,
}

impl Source {
    /// The name shown in messages: the first name, and the path when it differs.
    pub fn label(&self) -> String {
        match self.names.first() {
            Some(n) if *n != self.path => format!("{n:?} ({})", self.path),
            _ => format!("{:?}", self.path),
        }
    }
}

/// How new versions of a source are noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `MOUNT/data/PATH`: a cheap `MOUNT/metadata/PATH` check, data re-read on a new version.
    KvV2 { mount: String, path: String },
    /// Any other path: read again every refresh interval.
    Generic,
}

/// One file of the destination.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// FUSE mode only: the uids allowed to open the file, on top of its mode bits.
    pub uids: Option<Vec<u32>>,
    pub format: Format,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One field's value: strings as they are, other values as JSON.
    Raw { source: usize, field: String },
    /// The secret's data as a JSON object.
    Json { source: usize },
    /// `KEY='value'` lines, one per field.
    Dotenv { source: usize },
    /// A minijinja template over every secret (`secrets.NAME.FIELD`).
    Template { source_text: String },
}

impl Format {
    /// The source a non-template file reads.
    pub fn source(&self) -> Option<usize> {
        match self {
            Format::Raw { source, .. } | Format::Json { source } | Format::Dotenv { source } => {
                Some(*source)
            }
            Format::Template { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub path: PathBuf,
    pub allow_disk: bool,
    /// Mount a tmpfs of this many bytes on the destination first.
    pub mount_tmpfs: Option<u64>,
    /// Serve the files through a read-only FUSE mount on the destination instead of writing
    /// them (see [`crate::sink::fuse`]).
    pub fuse: Option<FuseSettings>,
}

/// FUSE mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseSettings {
    pub cache: FuseCache,
    /// Where the access log goes; `None`: stdout.
    pub access_log: Option<PathBuf>,
}

/// How much the kernel may cache in FUSE mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuseCache {
    /// Every open reaches the agent: checked, logged, and the handle keeps its version.
    Audited,
    /// The kernel answers opens from its caches; accesses are logged per lookup.
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnForbidden {
    Keep,
    Remove,
}

/// What to run or signal after a change.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    pub command: Option<Vec<String>>,
    pub timeout: Duration,
    /// Signal name, e.g. `SIGHUP`, and whom to send it to.
    pub signal: Option<(String, SignalTarget)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalTarget {
    PidFile(PathBuf),
    ProcessName(String),
}

/// A supervised child (`-- CMD ARGS`).
#[derive(Debug, Clone)]
pub struct Exec {
    pub argv: Vec<String>,
    /// Environment variable -> rendered file name.
    pub env: Vec<(String, String)>,
    pub on_change: ChildOnChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildOnChange {
    Signal(String),
    Restart,
}

pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// One request to the store, reply included, unless `server.request_timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const DEFAULT_ONCE_DEADLINE: Duration = Duration::from_secs(120);
/// How long replaced dynamic credentials stay valid before their lease is revoked.
pub const DEFAULT_LEASE_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TMPFS_SIZE: u64 = 16 << 20;
pub const DEFAULT_MODE: u32 = 0o400;

impl Config {
    /// Read `--config` (or `--config-text`, `HUSH_AGENT_CONFIG`) if given, fold the flags
    /// onto it and validate.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let mut raw = flags.server.read_config()?;
        flags.apply(&mut raw)?;
        validate::validate(raw)
    }

    /// Validate an already parsed raw config.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        validate::validate(raw)
    }
}

/// Parse the TOML file (unknown keys are errors).
pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "could not read config file {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    parse_toml(path, &text)
}

/// Parse config text; `path` only names it in messages.
pub fn parse_toml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    parse_text(&format!("file {}", path.display()), text)
}

/// Parse config text; `source` names it in messages (`file PATH`, `HUSH_AGENT_CONFIG`).
pub fn parse_text(source: &str, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim_end();
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        match line {
            Some(line) => ConfigError(format!("invalid config {source} line {line}: {msg}")),
            None => ConfigError(format!("invalid config {source}: {msg}")),
        }
    })
}

/// An io error without the "(os error N)" suffix.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
