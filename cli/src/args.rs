//! Command-line grammar (clap derive). Flags are spelled as in the vault CLI; single-dash
//! long flags (`-format=json`, `-key-shares 5`) are rewritten to clap's `--` form by
//! [`normalise`] before parsing.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hush",
    version = hush_api::build_info::VERSION,
    about = "Operate hushd and read and write its secrets",
    long_about = "Operate hushd and read and write its secrets.\n\n\
        The server address comes from -address, else HUSH_ADDR, else VAULT_ADDR; the token from \
        HUSH_TOKEN, else VAULT_TOKEN; a CA file from -ca-cert, else HUSH_CACERT, else \
        VAULT_CACERT. Flags take one dash or two: -format=json and --format json are the same.\n\n\
        New here? `hush dev` starts a throwaway server and walks through the commands.\n\n\
        Exit status: 0 success, 1 error, 2 usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Address of hushd, e.g. https://127.0.0.1:8200 [env: HUSH_ADDR, VAULT_ADDR]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub address: Option<String>,
    /// PEM file of the CA that signed hushd's certificate [env: HUSH_CACERT, VAULT_CACERT]
    #[arg(
        long = "ca-cert",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub ca_cert: Option<PathBuf>,
    /// Output format
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = Format::Table,
        help_heading = "Global options"
    )]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables
    Table,
    /// JSON on stdout
    Json,
    /// One self-contained HTML page (hush report only)
    Html,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Initialise, unseal, seal and rotate the server
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Read and write secrets in a KV version 2 engine
    #[command(subcommand)]
    Kv(KvCmd),
    /// Manage ACL policies
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Create, inspect, renew and revoke tokens
    #[command(subcommand)]
    Token(TokenCmd),
    /// Enable, list and disable audit devices; verify audit logs
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The fleet of agents: who reports, who read a secret, who holds an old version
    #[command(
        subcommand,
        long_about = "The fleet of agents: who reports, who read a secret, who holds an old \
        version.\n\n\
        hush-agent ships its access events (each open of a secret file: pid, uid, executable, \
        container) and its state (the versions it holds) to hushd's sys/agents/report. These \
        commands read that view. They need a token whose policy may read it, for example:\n\n\
        path \"sys/agents\" { capabilities = [\"list\"] }\n\
        path \"sys/agents/*\" { capabilities = [\"read\", \"list\"] }"
    )]
    Agents(AgentsCmd),
    /// Compliance reports on what hushd can prove about itself
    #[command(subcommand)]
    Report(ReportCmd),
    /// Start a throwaway dev server and agent and take a short tour
    #[command(
        long_about = "Start a throwaway dev server and agent and take a short tour.\n\n\
        Runs `hushd --dev` (in memory, unsealed, kv v2 at secret/, plain HTTP on loopback) with a \
        random root token, then runs a few hush commands against it, printing each command and \
        its output: KV versions and metadata, a read-only policy and a token scoped by it, a file \
        audit device and `hush audit verify`. Then hush-agent, with the scoped token, renders the \
        demo secret as files on tmpfs (/dev/shm) and follows a new version live. Then it prints \
        the HUSH_ADDR/HUSH_TOKEN (and VAULT_ADDR/VAULT_TOKEN) exports for other shells and waits \
        until Ctrl-C, which stops the agent and hushd. Nothing is kept. hushd and hush-agent are \
        looked for next to the hush executable, then on PATH."
    )]
    Dev(DevArgs),
}

/// `hush dev` flags.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address for hushd (loopback); port 0 picks a free one [default: 127.0.0.1:8200, or a
    /// free port when 8200 is taken]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Stop hushd and exit after the tour instead of waiting for Ctrl-C
    #[arg(long = "no-wait")]
    pub no_wait: bool,
    /// The hushd executable [default: next to hush, else on PATH]
    #[arg(long, value_name = "FILE")]
    pub hushd: Option<PathBuf>,
    /// The hush-agent executable [default: next to hush, else on PATH]
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,
    /// Log format of the hushd and hush-agent it starts (their logs go to files in its
    /// temporary directory): text or json
    #[arg(long, value_name = "text|json", default_value = "text", env = hush_api::LOG_FORMAT_ENV)]
    pub log_format: hush_api::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Initialise a new server: prints the unseal key shares and the initial root token
    Init {
        /// Number of key shares to split the root key into
        #[arg(long = "key-shares", default_value_t = 5, value_name = "N")]
        key_shares: u32,
        /// Number of shares needed to unseal
        #[arg(long = "key-threshold", default_value_t = 3, value_name = "N")]
        key_threshold: u32,
    },
    /// Enter one unseal key share (prompted for, or read from stdin, when omitted)
    Unseal {
        /// The key share; omit it to be prompted (safer: it stays out of shell history)
        key: Option<String>,
        /// Forget the shares entered so far
        #[arg(long)]
        reset: bool,
    },
    /// Seal the server: it stops serving until unsealed again
    Seal,
    /// Show whether the server is initialised and sealed
    #[command(name = "seal-status")]
    SealStatus,
    /// Rotate the encryption key (start a new key term)
    Rotate,
    /// Show the current key term and when it was installed
    #[command(name = "key-status")]
    KeyStatus,
    /// Mint a new root token from a quorum of unseal key holders (as `vault operator
    /// generate-root`): -init starts (with -otp, or the server makes the OTP), each holder then
    /// enters a key share with -nonce, and -decode turns the encoded token into the token
    #[command(name = "generate-root")]
    GenerateRoot(GenerateRootArgs),
    /// Replace the unseal keys, from a quorum of the current ones (as `vault operator rekey`):
    /// -init starts with the new -key-shares and -key-threshold, each holder then enters a
    /// current key share; the last one prints the new keys. The old keys stop unsealing.
    Rekey(RekeyArgs),
    /// Save, restore or check a snapshot of the whole store (its encrypted entries and a
    /// manifest), as `vault operator raft snapshot`
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Save a consistent snapshot of the store to FILE (root or sudo on sys/storage/snapshot)
    Save {
        /// Where to write it (written beside as FILE.part, renamed once complete and checked)
        file: std::path::PathBuf,
    },
    /// Replace the whole store with the snapshot in FILE; the store is then sealed and
    /// unseals with the snapshot's keys and root token
    Restore {
        /// Restore a snapshot made by a store with other keys: only its integrity (SHA-256,
        /// structure, counts) can then be checked, not who made it
        #[arg(long)]
        force: bool,
        file: std::path::PathBuf,
    },
    /// Check FILE offline (structure, order, counts, SHA-256); with HUSH_ADDR and HUSH_TOKEN of
    /// a store holding the snapshot's keys, also its authentication
    Inspect { file: std::path::PathBuf },
}

/// `hush operator rekey` flags. `Debug` leaves out the key.
#[derive(Args)]
pub struct RekeyArgs {
    /// A current unseal key share; omit it to be prompted (it stays out of shell history)
    pub key: Option<String>,
    /// Start a rekey
    #[arg(long, conflicts_with_all = ["cancel", "status"])]
    pub init: bool,
    /// With -init: number of new key shares
    #[arg(long = "key-shares", default_value_t = 5, value_name = "N")]
    pub key_shares: u32,
    /// With -init: number of new shares needed to unseal
    #[arg(long = "key-threshold", default_value_t = 3, value_name = "N")]
    pub key_threshold: u32,
    /// With -init: the new keys take effect only once a quorum of them is entered back. Without:
    /// enter a new key share (or, with -status / -cancel, show / restart the verification)
    #[arg(long)]
    pub verify: bool,
    /// The rekey's nonce (or the verification's, with -verify; shown by -init and -status);
    /// read from the server when omitted
    #[arg(long, value_name = "NONCE")]
    pub nonce: Option<String>,
    /// Cancel the rekey in progress (with -verify: restart its verification)
    #[arg(long, conflicts_with = "status")]
    pub cancel: bool,
    /// Show the rekey in progress (with -verify: its verification)
    #[arg(long)]
    pub status: bool,
}

impl std::fmt::Debug for RekeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyArgs")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("init", &self.init)
            .field("key_shares", &self.key_shares)
            .field("key_threshold", &self.key_threshold)
            .field("verify", &self.verify)
            .field("nonce", &self.nonce)
            .field("cancel", &self.cancel)
            .field("status", &self.status)
            .finish()
    }
}

/// `hush operator generate-root` flags. `Debug` leaves out the key and the OTP.
#[derive(Args)]
pub struct GenerateRootArgs {
    /// The unseal key share; omit it to be prompted (it stays out of shell history)
    pub key: Option<String>,
    /// Start a root token generation
    #[arg(long, conflicts_with_all = ["cancel", "status", "decode"])]
    pub init: bool,
    /// With -init: the one-time pad (28 base62 characters); without, the server makes one.
    /// With -decode: the OTP the token was encoded with
    #[arg(long, value_name = "OTP")]
    pub otp: Option<String>,
    /// The attempt's nonce (shown by -init and -status); read from the server when omitted
    #[arg(long, value_name = "NONCE")]
    pub nonce: Option<String>,
    /// Decode an encoded root token with -otp ("-": read it from stdin)
    #[arg(long, value_name = "ENCODED", requires = "otp", conflicts_with_all = ["cancel", "status"])]
    pub decode: Option<String>,
    /// Cancel the attempt in progress
    #[arg(long, conflicts_with = "status")]
    pub cancel: bool,
    /// Show the attempt in progress
    #[arg(long)]
    pub status: bool,
}

impl std::fmt::Debug for GenerateRootArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateRootArgs")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("init", &self.init)
            .field("otp", &self.otp.as_ref().map(|_| "[redacted]"))
            .field("nonce", &self.nonce)
            .field("decode", &self.decode.is_some())
            .field("cancel", &self.cancel)
            .field("status", &self.status)
            .finish()
    }
}

/// Where a KV secret is: `MOUNT/PATH`, or `-mount=MOUNT PATH`.
#[derive(Debug, Clone, Args)]
pub struct KvTarget {
    /// Secret path: MOUNT/PATH (e.g. secret/app/db), or PATH with -mount
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Mount of the KV v2 engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KvCmd {
    /// Write a new version of a secret
    ///
    /// DATA is k=v pairs, k=@file (the value from a file), k=- (the value from stdin),
    /// @file.json or - (a JSON object from a file or stdin). The whole secret is replaced: use
    /// `hush kv patch` to change some fields only.
    Put {
        #[command(flatten)]
        target: KvTarget,
        /// Check-and-set: write only if the current version is this one (0: must not exist)
        #[arg(long, value_name = "VERSION")]
        cas: Option<u64>,
        /// Data: k=v, k=@file, k=-, @file.json or -
        #[arg(value_name = "DATA", required = true)]
        data: Vec<String>,
    },
    /// Read a secret
    Get {
        #[command(flatten)]
        target: KvTarget,
        /// Version to read (default: latest)
        #[arg(long)]
        version: Option<u64>,
        /// Print only this field's value
        #[arg(long)]
        field: Option<String>,
    },
    /// Change some fields of the latest version, keeping the others
    Patch {
        #[command(flatten)]
        target: KvTarget,
        /// Check-and-set: patch only if the current version is this one
        #[arg(long, value_name = "VERSION")]
        cas: Option<u64>,
        /// Data: k=v, k=@file, k=-, @file.json or -
        #[arg(value_name = "DATA", required = true)]
        data: Vec<String>,
    },
    /// List the keys below a path (folders end in /)
    List {
        #[command(flatten)]
        target: KvTarget,
    },
    /// Soft-delete the latest version, or the given versions (restorable with undelete)
    Delete {
        #[command(flatten)]
        target: KvTarget,
        /// Versions to delete, comma-separated (default: latest)
        #[arg(long, value_delimiter = ',', value_name = "N,...")]
        versions: Vec<u64>,
    },
    /// Restore soft-deleted versions
    Undelete {
        #[command(flatten)]
        target: KvTarget,
        /// Versions to restore, comma-separated
        #[arg(long, value_delimiter = ',', required = true, value_name = "N,...")]
        versions: Vec<u64>,
    },
    /// Destroy versions for good (their data cannot be restored)
    Destroy {
        #[command(flatten)]
        target: KvTarget,
        /// Versions to destroy, comma-separated
        #[arg(long, value_delimiter = ',', required = true, value_name = "N,...")]
        versions: Vec<u64>,
    },
    /// Make an older version current again (Vault's `kv rollback`)
    ///
    /// Writes version N's data as a new version, with check-and-set on the current version
    /// so a concurrent write is not overwritten; the history keeps every version.
    Rollback {
        #[command(flatten)]
        target: KvTarget,
        /// The version to roll back to
        #[arg(long, value_name = "N")]
        version: u64,
    },
    /// Read or change a secret's metadata (versions kept, custom metadata)
    #[command(subcommand)]
    Metadata(KvMetadataCmd),
}

#[derive(Debug, Subcommand)]
pub enum KvMetadataCmd {
    /// Show the metadata and version history
    Get {
        #[command(flatten)]
        target: KvTarget,
    },
    /// Change metadata settings
    Put {
        #[command(flatten)]
        target: KvTarget,
        /// Versions to keep (0: the engine's default)
        #[arg(long = "max-versions")]
        max_versions: Option<u64>,
        /// Require check-and-set on every write
        #[arg(long = "cas-required", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        cas_required: Option<bool>,
        /// Delete versions this long after they are written (e.g. 720h; 0s: never)
        #[arg(long = "delete-version-after", value_name = "DURATION")]
        delete_version_after: Option<String>,
        /// Custom metadata key=value; repeat for more
        #[arg(long = "custom-metadata", value_name = "K=V")]
        custom_metadata: Vec<String>,
    },
    /// Delete the metadata and all versions of a secret
    Delete {
        #[command(flatten)]
        target: KvTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Upload a policy from a file, or from stdin with -
    Write {
        /// Policy name
        name: String,
        /// HCL policy file, or - for stdin
        file: String,
    },
    /// Print a policy
    Read {
        /// Policy name
        name: String,
    },
    /// List policy names
    List,
    /// Delete a policy
    Delete {
        /// Policy name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a child token of the current one (or an orphan with -orphan)
    Create(TokenCreateArgs),
    /// Show a token's properties (the current token when none is given)
    Lookup {
        /// Token to look up, or - to read it from stdin; with -accessor, an accessor
        token: Option<String>,
        /// TOKEN is an accessor
        #[arg(long)]
        accessor: bool,
        /// Print only this field's value
        #[arg(long)]
        field: Option<String>,
    },
    /// Extend a token's lease (the current token when none is given)
    Renew {
        /// Token to renew, or - to read it from stdin; with -accessor, an accessor
        token: Option<String>,
        /// Requested extension, e.g. 1h (the server may grant less)
        #[arg(long, value_name = "DURATION")]
        increment: Option<String>,
        /// TOKEN is an accessor
        #[arg(long)]
        accessor: bool,
    },
    /// Revoke a token and its children
    Revoke {
        /// Token to revoke, or - to read it from stdin; with -accessor, an accessor
        token: Option<String>,
        /// Revoke the current token
        #[arg(long = "self", conflicts_with_all = ["token", "accessor"])]
        self_: bool,
        /// TOKEN is an accessor
        #[arg(long)]
        accessor: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Policy to attach; repeat for more
    #[arg(long = "policy", value_name = "NAME")]
    pub policies: Vec<String>,
    /// Time to live, e.g. 1h or 30m
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Hard limit on the token's life, renewals included
    #[arg(long = "explicit-max-ttl", value_name = "DURATION")]
    pub explicit_max_ttl: Option<String>,
    /// Make a periodic token that lives as long as it is renewed within this period
    #[arg(long, value_name = "DURATION")]
    pub period: Option<String>,
    /// Number of uses before the token is revoked (0: unlimited)
    #[arg(long = "use-limit", value_name = "N")]
    pub use_limit: Option<u64>,
    /// Create a token with no parent (needs root or sudo)
    #[arg(long)]
    pub orphan: bool,
    /// Name shown in audit logs and lookups
    #[arg(long = "display-name", value_name = "NAME")]
    pub display_name: Option<String>,
    /// Whether the token can be renewed
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub renewable: Option<bool>,
    /// Metadata key=value; repeat for more
    #[arg(long, value_name = "K=V")]
    pub metadata: Vec<String>,
    /// Do not attach the default policy
    #[arg(long = "no-default-policy")]
    pub no_default_policy: bool,
    /// Deliver the token wrapped: print a single-use wrapping token valid this long (e.g. 5m)
    /// that `sys/wrapping/unwrap` exchanges for the new token
    #[arg(long = "wrap-ttl", value_name = "DURATION")]
    pub wrap_ttl: Option<String>,
    /// Print only this field (e.g. token, token_accessor)
    #[arg(long)]
    pub field: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Enable an audit device
    ///
    /// For example `hush audit enable file file_path=/var/log/hush/audit.log`. Each request
    /// and response becomes one hash-chained JSON line with secrets HMAC'd. Once any device is
    /// enabled, requests fail when no device can record them.
    Enable {
        /// Device type (hushd has `file`)
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Options as key=value: file_path (a file, or stdout), mode (octal, e.g. 0600),
        /// hmac_accessor, format, log_raw
        #[arg(value_name = "K=V")]
        options: Vec<String>,
        /// Where to mount the device (default: the type, e.g. file/)
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        /// Human-readable description
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List the enabled audit devices
    List {
        /// Also show options and each device's hash chain head (for `audit verify -last-hash`)
        #[arg(long)]
        detailed: bool,
    },
    /// Disable an audit device (its log file is kept)
    Disable {
        /// Path of the device, e.g. file/
        path: String,
    },
    /// Check the hash chain of an audit log file, offline
    ///
    /// Exit 0 when intact, 1 naming the first bad line otherwise. The file alone cannot show a
    /// removed or edited last line: for that, pass the device's chain head (`hush audit list
    /// -detailed`, Last Hash) with -last-hash.
    Verify {
        /// Audit log file written by a hushd file audit device
        file: PathBuf,
        /// A chain head hushd reported (sha256:...): the file must reach that line; lines
        /// written after it are fine
        #[arg(long = "last-hash", value_name = "HASH")]
        last_hash: Option<String>,
    },
    /// Per API path: requests answered, successful, failed, and by identity, from a log file
    ///
    /// Reads a file audit device's log offline (streamed: memory grows with the paths, not the
    /// lines). Each request counts once, from its response entry; it failed when the entry has
    /// an error or a status of 400 or more. The identity is the token's display name as
    /// logged (root, token-NAME, approle...), else its entity id, else its accessor (HMAC'd
    /// unless the device logs it in clear). -format=json prints {PATH: {total, successful,
    /// failed, by_identity: {ID: {total, successful, failed}}}}.
    Stats {
        /// Audit log file written by a hushd file audit device
        file: PathBuf,
        /// Only paths starting with this prefix, or matching it as a glob when it holds `*`
        /// (`secret/data/app/*`; `*` also matches `/`)
        #[arg(long, value_name = "PREFIX|GLOB")]
        path: Option<String>,
        /// Only requests logged since: a duration back from now (90m, 24h, 7d) or an RFC 3339
        /// time
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// List every agent that ever reported, with last report time and staleness
    ///
    /// An agent is stale when its last report holds an older KV version of some path than the
    /// current one (hushd looks the current version up itself). Agents that stopped reporting
    /// stay listed with their last state.
    List,
    /// Show one agent: identity, token, files, the versions and leases it holds, errors
    Show {
        /// The agent's id, e.g. NAMESPACE/POD or HOST:DESTINATION (see `hush agents list`)
        id: String,
    },
    /// Which processes read a secret: the agents' access events for an API path
    ///
    /// For example `hush agents who-read secret/data/app/db -since 2h`. PATH is the API
    /// path the agents read (with `data/` for KV version 2); oldest first.
    #[command(name = "who-read")]
    WhoRead {
        /// API path, e.g. secret/data/app/db
        path: String,
        /// How far back: a duration (30m, 24h, 7d) or an RFC 3339 time
        #[arg(long, value_name = "DURATION|TIME", default_value = "24h")]
        since: String,
    },
    /// Agents whose last report holds an older version of PATH than the current one
    ///
    /// Includes agents that stopped reporting (their last report counts), and agents whose
    /// token can no longer read the new version.
    Stale {
        /// API path of a KV version 2 secret, e.g. secret/data/app/db
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// A compliance report for one standard: each control pass, fail or not applicable, with
    /// the evidence and what to do
    ///
    /// For example `hush report compliance -standard pci-dss -format html -output report.html`.
    /// -format table (the default) prints a summary, json the report as hushd answers it
    /// (`sys/reports/compliance`), html one self-contained page. The token needs `read` on
    /// sys/reports/compliance. Exit status 0 whatever the controls' status.
    Compliance {
        /// soc2, pci-dss, hipaa, gdpr or iso27001
        #[arg(long, value_name = "STANDARD")]
        standard: String,
        /// How far back the report looks, e.g. 90d (hushd's default), 30d, 720h
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Write the report to this file instead of stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Every long flag name the grammar knows, in all subcommands.
fn long_flags() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.push(long.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = vec!["help".to_string(), "version".to_string()];
    walk(&Cli::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// Rewrite vault-style `-flag` / `-flag=value` into `--flag` / `--flag=value` for flags the
/// grammar knows. Anything else (values like `-`, `k=v`, text after `--`) is left alone.
pub fn normalise(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let known = long_flags();
    let mut out = Vec::new();
    let mut rest_verbatim = false;
    for arg in args {
        if rest_verbatim {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        let rewritten = s
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-'))
            .and_then(|r| {
                let name = r.split_once('=').map_or(r, |(n, _)| n);
                (name.len() > 1 && known.iter().any(|k| k == name)).then(|| format!("--{r}"))
            });
        out.push(rewritten.map_or(arg, OsString::from));
    }
    out
}

/// Parse the process arguments (program name first).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(normalise(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, clap::Error> {
        parse(
            std::iter::once("hush")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_and_double_dash_flags_are_the_same() {
        for args in [
            &["kv", "get", "-format=json", "secret/app"][..],
            &["kv", "get", "--format", "json", "secret/app"],
            &["kv", "get", "-format", "json", "secret/app"],
            &["-format=json", "kv", "get", "secret/app"],
        ] {
            let cli = p(args).unwrap();
            assert_eq!(cli.global.format, Format::Json, "{args:?}");
        }
        assert_eq!(
            p(&["kv", "get", "secret/app"]).unwrap().global.format,
            Format::Table
        );
    }

    #[test]
    fn operator_init_flags() {
        let cli = p(&["operator", "init", "-key-shares", "3", "-key-threshold=2"]).unwrap();
        match cli.command {
            Command::Operator(OperatorCmd::Init {
                key_shares,
                key_threshold,
            }) => {
                assert_eq!((key_shares, key_threshold), (3, 2));
            }
            other => panic!("{other:?}"),
        }
        let cli = p(&["operator", "init"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::Init {
                key_shares: 5,
                key_threshold: 3
            })
        ));
        assert!(p(&["operator", "init", "-key-shares=lots"]).is_err());
    }

    #[test]
    fn snapshot_commands() {
        let cli = p(&["operator", "snapshot", "restore", "-force", "a.snap"]).unwrap();
        match cli.command {
            Command::Operator(OperatorCmd::Snapshot(SnapshotCmd::Restore { force, file })) => {
                assert!(force);
                assert_eq!(file, std::path::Path::new("a.snap"));
            }
            other => panic!("{other:?}"),
        }
        let cli = p(&["operator", "snapshot", "restore", "a.snap"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::Snapshot(SnapshotCmd::Restore {
                force: false,
                ..
            }))
        ));
        assert!(
            p(&["operator", "snapshot", "save"]).is_err(),
            "FILE is required"
        );
        assert!(p(&["operator", "snapshot", "inspect", "x"]).is_ok());
    }

    #[test]
    fn rekey_flags() {
        let cli = p(&[
            "operator",
            "rekey",
            "-init",
            "-key-shares=3",
            "-key-threshold",
            "2",
        ])
        .unwrap();
        match cli.command {
            Command::Operator(OperatorCmd::Rekey(a)) => {
                assert!(a.init && a.key.is_none());
                assert_eq!((a.key_shares, a.key_threshold), (3, 2));
            }
            other => panic!("{other:?}"),
        }
        let cli = p(&["operator", "rekey", "-nonce", "n1", "KEY"]).unwrap();
        match cli.command {
            Command::Operator(OperatorCmd::Rekey(a)) => {
                assert_eq!(a.nonce.as_deref(), Some("n1"));
                assert!(!format!("{a:?}").contains("KEY"), "{a:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["operator", "rekey", "-init", "-cancel"]).is_err());
        assert!(p(&["operator", "rekey", "-cancel", "-status"]).is_err());
        assert!(p(&["operator", "rekey", "-status"]).is_ok());
        let cli = p(&["operator", "rekey", "-verify", "-cancel"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::Rekey(RekeyArgs {
                verify: true,
                cancel: true,
                ..
            }))
        ));
    }

    #[test]
    fn generate_root_flags() {
        let cli = p(&["operator", "generate-root", "-init", "-otp=abc"]).unwrap();
        match cli.command {
            Command::Operator(OperatorCmd::GenerateRoot(a)) => {
                assert!(a.init && a.otp.as_deref() == Some("abc") && a.key.is_none());
            }
            other => panic!("{other:?}"),
        }
        let cli = p(&["operator", "generate-root", "-nonce", "n1", "KEY"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::GenerateRoot(GenerateRootArgs {
                key: Some(_),
                ..
            }))
        ));
        assert!(
            p(&["operator", "generate-root", "-decode=x"]).is_err(),
            "needs -otp"
        );
        assert!(p(&["operator", "generate-root", "-init", "-cancel"]).is_err());
    }

    #[test]
    fn unseal_key_is_optional() {
        let cli = p(&["operator", "unseal"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::Unseal { key: None, .. })
        ));
        let cli = p(&["operator", "unseal", "abcd"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operator(OperatorCmd::Unseal { key: Some(_), .. })
        ));
    }

    #[test]
    fn kv_put_keeps_data_and_stdin_dash() {
        let cli = p(&["kv", "put", "-cas=0", "secret/app", "a=1", "b=@f", "-"]).unwrap();
        match cli.command {
            Command::Kv(KvCmd::Put { target, cas, data }) => {
                assert_eq!(target.path, "secret/app");
                assert_eq!(cas, Some(0));
                assert_eq!(data, ["a=1", "b=@f", "-"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["kv", "put", "secret/app"]).is_err(), "data is required");
    }

    #[test]
    fn kv_versions_are_comma_separated() {
        let cli = p(&["kv", "destroy", "-versions=1,3", "secret/app"]).unwrap();
        match cli.command {
            Command::Kv(KvCmd::Destroy { versions, .. }) => assert_eq!(versions, [1, 3]),
            other => panic!("{other:?}"),
        }
        assert!(
            p(&["kv", "undelete", "secret/app"]).is_err(),
            "versions are required"
        );
        let cli = p(&["kv", "delete", "secret/app"]).unwrap();
        assert!(
            matches!(cli.command, Command::Kv(KvCmd::Delete { versions, .. }) if versions.is_empty())
        );
    }

    #[test]
    fn kv_get_field_version_and_mount() {
        let cli = p(&["kv", "get", "-version=2", "-field=pw", "-mount=kv", "app"]).unwrap();
        match cli.command {
            Command::Kv(KvCmd::Get {
                target,
                version,
                field,
            }) => {
                assert_eq!(target.mount.as_deref(), Some("kv"));
                assert_eq!(version, Some(2));
                assert_eq!(field.as_deref(), Some("pw"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kv_metadata_subcommands() {
        let cli = p(&[
            "kv",
            "metadata",
            "put",
            "-max-versions=4",
            "-cas-required",
            "secret/a",
        ])
        .unwrap();
        match cli.command {
            Command::Kv(KvCmd::Metadata(KvMetadataCmd::Put {
                max_versions,
                cas_required,
                ..
            })) => {
                assert_eq!(max_versions, Some(4));
                assert_eq!(cas_required, Some(true));
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["kv", "metadata", "get", "secret/a"]).is_ok());
        assert!(p(&["kv", "metadata", "delete", "secret/a"]).is_ok());
    }

    #[test]
    fn token_create_flags() {
        let cli = p(&[
            "token",
            "create",
            "-policy=a",
            "-policy",
            "b",
            "-ttl=1h",
            "-period=24h",
            "-use-limit=3",
            "-orphan",
            "-display-name=ci",
            "-renewable=false",
            "-metadata=k=v",
            "-wrap-ttl=5m",
        ])
        .unwrap();
        let Command::Token(TokenCmd::Create(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.wrap_ttl.as_deref(), Some("5m"));
        assert_eq!(a.policies, ["a", "b"]);
        assert_eq!(a.ttl.as_deref(), Some("1h"));
        assert_eq!(a.period.as_deref(), Some("24h"));
        assert_eq!(a.use_limit, Some(3));
        assert!(a.orphan);
        assert_eq!(a.display_name.as_deref(), Some("ci"));
        assert_eq!(a.renewable, Some(false));
        assert_eq!(a.metadata, ["k=v"]);
    }

    #[test]
    fn token_revoke_self_conflicts_with_a_token() {
        assert!(p(&["token", "revoke", "-self"]).is_ok());
        assert!(p(&["token", "revoke", "-self", "hvs.x"]).is_err());
        let cli = p(&["token", "revoke", "-accessor", "acc1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Token(TokenCmd::Revoke {
                accessor: true,
                self_: false,
                ..
            })
        ));
        let cli = p(&["token", "renew", "-increment=1h"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Token(TokenCmd::Renew { token: None, .. })
        ));
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = p(&[
            "policy",
            "list",
            "-address=https://h:8200",
            "-ca-cert",
            "/tmp/ca.pem",
        ])
        .unwrap();
        assert_eq!(cli.global.address.as_deref(), Some("https://h:8200"));
        assert_eq!(cli.global.ca_cert.unwrap(), PathBuf::from("/tmp/ca.pem"));
    }

    #[test]
    fn audit_verify_args() {
        let cli = p(&["audit", "verify", "/var/log/a.log", "-last-hash=sha256:ab"]).unwrap();
        let Command::Audit(AuditCmd::Verify { file, last_hash }) = cli.command else {
            panic!()
        };
        assert_eq!(file, PathBuf::from("/var/log/a.log"));
        assert_eq!(last_hash.as_deref(), Some("sha256:ab"));
    }

    #[test]
    fn audit_enable_list_disable_args() {
        let cli = p(&[
            "audit",
            "enable",
            "-path=ops",
            "file",
            "file_path=/var/log/a.log",
            "mode=0600",
        ])
        .unwrap();
        let Command::Audit(AuditCmd::Enable {
            kind,
            options,
            path,
            description,
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(kind, "file");
        assert_eq!(options, ["file_path=/var/log/a.log", "mode=0600"]);
        assert_eq!(path.as_deref(), Some("ops"));
        assert_eq!(description, None);
        assert!(p(&["audit", "enable"]).is_err(), "the type is required");
        let cli = p(&["audit", "list", "-detailed"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCmd::List { detailed: true })
        ));
        assert!(p(&["audit", "disable"]).is_err(), "the path is required");
    }

    #[test]
    fn dev_flags() {
        let cli = p(&[
            "dev",
            "-listen=127.0.0.1:0",
            "-no-wait",
            "-hushd",
            "/opt/hushd",
        ])
        .unwrap();
        let Command::Dev(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.listen.as_deref(), Some("127.0.0.1:0"));
        assert!(a.no_wait);
        assert_eq!(a.hushd, Some(PathBuf::from("/opt/hushd")));
        let Command::Dev(a) = p(&["dev"]).unwrap().command else {
            panic!()
        };
        assert!(a.listen.is_none() && !a.no_wait && a.hushd.is_none());
        assert!(p(&["dev", "extra"]).is_err());
    }

    #[test]
    fn normalise_leaves_values_alone() {
        let out = normalise(
            [
                "hush",
                "kv",
                "put",
                "secret/a",
                "-",
                "k=-v",
                "-unknownflag",
                "--",
                "-format",
            ]
            .map(OsString::from),
        );
        let out: Vec<_> = out.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            out,
            [
                "hush",
                "kv",
                "put",
                "secret/a",
                "-",
                "k=-v",
                "-unknownflag",
                "--",
                "-format"
            ]
        );
        let out = normalise(["hush", "-h", "-help", "-version"].map(OsString::from));
        let out: Vec<_> = out.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(out, ["hush", "-h", "--help", "--version"]);
    }

    #[test]
    fn unknown_commands_and_flags_are_usage_errors() {
        let err = p(&["frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = p(&["kv", "get", "-bogus", "secret/a"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(p(&["-format=yaml", "policy", "list"]).is_err());
    }
}
