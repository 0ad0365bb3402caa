//! Command-line flags. They are folded onto the config file's raw form (a flag wins over the
//! file; `--secret` and `--env` add to it), then validated together.

use std::path::PathBuf;

use clap::Parser;

use super::ConfigError;
use hush_api::agent_config::{RawConfig, RawExec, RawFile, RawMode, RawSecret};

/// The environment variable holding the config's TOML text (`--config-text`).
pub const CONFIG_ENV: &str = "HUSH_AGENT_CONFIG";

/// hush-agent: renders secrets from hushd into files on tmpfs and keeps them current.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "hush-agent",
    version = hush_api::build_info::VERSION,
    about,
    max_term_width = 100,
    after_help = "The Docker volume plugin: hush-agent docker-plugin --help"
)]
pub struct Flags {
    /// Where the store is and how to log in (shared with `hush-agent docker-plugin`).
    #[command(flatten)]
    pub server: ServerFlags,
    /// A file NAME in the destination from the secret at API PATH (e.g. secret/data/app/db):
    /// with #FIELD that field's raw value, without it the JSON of the data. Repeatable.
    #[arg(long = "secret", value_name = "NAME=PATH[#FIELD]")]
    pub secrets: Vec<String>,
    /// Mode of the files given with --secret (octal).
    #[arg(long, value_name = "OCTAL")]
    pub file_mode: Option<String>,
    /// Owner uid of the files given with --secret.
    #[arg(long, value_name = "UID")]
    pub file_uid: Option<u32>,
    /// Owner gid of the files given with --secret.
    #[arg(long, value_name = "GID")]
    pub file_gid: Option<u32>,
    /// Destination directory: on tmpfs (unless --allow-disk), or the mount point with --fuse.
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// How often to check for new versions of non-leased secrets [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub refresh_interval: Option<String>,
    /// Cap of the retry backoff while hushd is unreachable [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub backoff_max: Option<String>,
    /// Render every file once and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: give up after this long (a login that keeps failing, an unreachable
    /// store) and exit 1 naming the last error [default: 2m].
    #[arg(long, value_name = "DURATION")]
    pub once_deadline: Option<String>,
    /// Do not subscribe to hushd's events: only the refresh interval's metadata poll finds
    /// new versions.
    #[arg(long)]
    pub no_push: bool,
    /// This agent's id in hushd's fleet view [default: $HUSH_AGENT_ID, else
    /// $HUSH_POD_NAMESPACE/$HUSH_POD_NAME, else HOST:DEST].
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Do not ship access events and state reports to hushd (sys/agents/report).
    #[arg(long)]
    pub no_report: bool,
    /// Ship accesses, and a state report at the least, this often [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub report_interval: Option<String>,
    /// Access events kept in memory while hushd is unreachable [default: 10000].
    #[arg(long, value_name = "EVENTS")]
    pub report_spool: Option<u64>,
    /// A file on tmpfs for the access events beyond --report-spool (bounded; on a disk only
    /// with --allow-disk).
    #[arg(long, value_name = "FILE")]
    pub report_spool_file: Option<PathBuf>,
    /// Serve /healthz, /readyz and /metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Allow a destination that is not tmpfs (secrets then reach the disk).
    #[arg(long)]
    pub allow_disk: bool,
    /// Mount a tmpfs on the destination first (needs CAP_SYS_ADMIN).
    #[arg(long)]
    pub mount_tmpfs: bool,
    /// Size of the tmpfs mounted by --mount-tmpfs, e.g. 16m [default: 16m].
    #[arg(long, value_name = "SIZE")]
    pub tmpfs_size: Option<String>,
    /// Serve the files through a read-only FUSE filesystem mounted on --dest (from memory, no
    /// tmpfs), logging every open.
    #[arg(long)]
    pub fuse: bool,
    /// FUSE cache mode: audited (every open reaches the agent and is logged) or fast (the
    /// kernel answers opens; logged per lookup) [default: audited].
    #[arg(long, value_name = "audited|fast")]
    pub fuse_cache: Option<String>,
    /// FUSE mode: lease this secret (a [secrets] name, or the PATH of a --secret) at the first
    /// open of a file that reads it, not at start. Repeatable.
    #[arg(long = "lazy", value_name = "SECRET")]
    pub lazy: Vec<String>,
    /// FUSE access log: one JSON line per open [default: stdout].
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Revoke the agent's token when it exits.
    #[arg(long)]
    pub revoke_on_exit: bool,
    /// How long replaced dynamic credentials stay valid (for the app to move over) before the
    /// agent revokes their lease [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub lease_grace: Option<String>,
    /// At exit, leave leases to run out instead of revoking them (--once always does: it hands
    /// them to the long-running agent).
    #[arg(long)]
    pub keep_leases: bool,
    /// What a 403 on a secret does to its files: keep (default) or remove.
    #[arg(long, value_name = "keep|remove")]
    pub on_forbidden: Option<String>,
    /// Command run through /bin/sh -c after each change.
    #[arg(long, value_name = "CMD")]
    pub notify_command: Option<String>,
    /// Time limit of the notify command [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub notify_timeout: Option<String>,
    /// Signal sent after each change (with --notify-pid-file or --notify-process).
    #[arg(long, value_name = "SIG")]
    pub notify_signal: Option<String>,
    /// File holding the pid to signal.
    #[arg(long, value_name = "FILE")]
    pub notify_pid_file: Option<PathBuf>,
    /// Name of the processes to signal.
    #[arg(long, value_name = "NAME")]
    pub notify_process: Option<String>,
    /// Pass a rendered file to the supervised command as an environment variable. Repeatable.
    #[arg(long = "env", value_name = "NAME=FILE")]
    pub env: Vec<String>,
    /// What a change does to the supervised command: signal:SIG (default signal:SIGHUP) or
    /// restart.
    #[arg(long, value_name = "signal:SIG|restart")]
    pub child_on_change: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "text|json", default_value = "text", env = hush_api::LOG_FORMAT_ENV)]
    pub log_format: hush_api::LogFormat,
    /// Command to run and supervise, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The config file and the flags that say where hushd is and how to log in: the agent's and
/// the Docker volume plugin's (`hush-agent docker-plugin`) alike.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerFlags {
    /// TOML config file; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The config as TOML text instead of a file (how hush-injector configures agents in
    /// pods); flags override it.
    #[arg(
        long,
        value_name = "TOML",
        env = CONFIG_ENV,
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub config_text: Option<String>,
    /// Address of hushd, e.g. https://127.0.0.1:8200.
    #[arg(long, value_name = "URL")]
    pub addr: Option<String>,
    /// PEM file of the CA that signed hushd's certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// File holding the agent's token; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Log in by workload identity instead of --token-file: kubernetes, jwt, gcp, approle or
    /// aws.
    #[arg(long = "auth", value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// Role to log in as (kubernetes, jwt, gcp, aws).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Mount path of the auth method [default: the method's name].
    #[arg(long, value_name = "PATH")]
    pub auth_mount: Option<String>,
    /// File holding the JWT, re-read at each login [kubernetes default: the projected
    /// service-account token].
    #[arg(long, value_name = "FILE")]
    pub jwt_file: Option<PathBuf>,
    /// File holding the AppRole role_id.
    #[arg(long, value_name = "FILE")]
    pub role_id_file: Option<PathBuf>,
    /// File holding the AppRole secret_id.
    #[arg(long, value_name = "FILE")]
    pub secret_id_file: Option<PathBuf>,
    /// GCE metadata server (host or host:port) for --auth gcp, asked over plain HTTP as on
    /// every GCE instance [default: $GCE_METADATA_HOST, else metadata.google.internal].
    #[arg(long, value_name = "HOST")]
    pub gcp_metadata_host: Option<String>,
    /// Region to sign the aws login for [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1].
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
    /// Value of the X-Vault-AWS-IAM-Server-ID header, when hushd requires one (aws).
    #[arg(long, value_name = "VALUE")]
    pub aws_server_id: Option<String>,
    /// STS endpoint the aws login is signed for [default: AWS_ENDPOINT_URL_STS,
    /// https://sts.amazonaws.com].
    #[arg(long, value_name = "URL")]
    pub aws_sts_endpoint: Option<String>,
}

impl ServerFlags {
    /// Read `--config` (or `--config-text`, `HUSH_AGENT_CONFIG`) if given, else an empty
    /// config.
    pub fn read_config(&self) -> Result<RawConfig, ConfigError> {
        match (&self.config, &self.config_text) {
            (Some(path), _) => super::read_file(path),
            (None, Some(text)) => super::parse_text(CONFIG_ENV, text),
            (None, None) => Ok(RawConfig::default()),
        }
    }

    /// Fold the server and auth flags onto `raw`.
    pub fn apply(self, raw: &mut RawConfig) {
        set(&mut raw.server.addr, self.addr);
        set(&mut raw.server.ca_cert, self.ca_cert);
        set(&mut raw.server.token_file, self.token_file);
        set(&mut raw.auth.method, self.auth_method);
        set(&mut raw.auth.role, self.role);
        set(&mut raw.auth.mount, self.auth_mount);
        set(&mut raw.auth.jwt_file, self.jwt_file);
        set(&mut raw.auth.role_id_file, self.role_id_file);
        set(&mut raw.auth.secret_id_file, self.secret_id_file);
        set(&mut raw.auth.gcp_metadata_host, self.gcp_metadata_host);
        set(&mut raw.auth.aws_region, self.aws_region);
        set(&mut raw.auth.aws_server_id, self.aws_server_id);
        set(&mut raw.auth.aws_sts_endpoint, self.aws_sts_endpoint);
    }
}

/// Overwrite `slot` with `v` when the flag was given.
fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

/// Split `NAME=PATH[#FIELD]`.
fn parse_secret_flag(text: &str) -> Result<(String, String, Option<String>), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "--secret {text:?}: want NAME=PATH[#FIELD], e.g. db.json=secret/data/app/db"
        ))
    };
    let (name, rest) = text.split_once('=').ok_or_else(bad)?;
    let (path, field) = match rest.split_once('#') {
        Some((p, f)) => (p, Some(f.to_string())),
        None => (rest, None),
    };
    if name.is_empty() || path.is_empty() || field.as_deref() == Some("") {
        return Err(bad());
    }
    Ok((name.to_string(), path.to_string(), field))
}

impl Flags {
    /// Fold the flags onto `raw` (the file's content, or empty).
    pub fn apply(self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        fn flag(slot: &mut Option<bool>, on: bool) {
            if on {
                *slot = Some(true);
            }
        }
        self.server.apply(raw);
        set(&mut raw.destination.path, self.dest);
        flag(&mut raw.destination.allow_disk, self.allow_disk);
        flag(&mut raw.destination.mount_tmpfs, self.mount_tmpfs);
        set(&mut raw.destination.tmpfs_size, self.tmpfs_size);
        flag(&mut raw.destination.fuse, self.fuse);
        set(&mut raw.destination.fuse_cache, self.fuse_cache);
        set(&mut raw.destination.access_log, self.access_log);
        set(&mut raw.agent.refresh_interval, self.refresh_interval);
        set(&mut raw.agent.backoff_max, self.backoff_max);
        set(&mut raw.agent.on_forbidden, self.on_forbidden);
        set(&mut raw.agent.metrics_listen, self.metrics_listen);
        flag(&mut raw.agent.revoke_on_exit, self.revoke_on_exit);
        set(&mut raw.agent.lease_grace, self.lease_grace);
        if self.keep_leases {
            raw.agent.revoke_leases_on_exit = Some(false);
        }
        flag(&mut raw.agent.once, self.once);
        set(&mut raw.agent.once_deadline, self.once_deadline);
        if self.no_push {
            raw.agent.push = Some(false);
        }
        set(&mut raw.agent.id, self.agent_id);
        if self.no_report {
            raw.agent.report = Some(false);
        }
        set(&mut raw.agent.report_interval, self.report_interval);
        set(&mut raw.agent.report_spool, self.report_spool);
        set(&mut raw.agent.report_spool_file, self.report_spool_file);
        if let Some(cmd) = self.notify_command {
            raw.notify.command = Some(vec!["/bin/sh".into(), "-c".into(), cmd]);
        }
        set(&mut raw.notify.timeout, self.notify_timeout);
        set(&mut raw.notify.signal, self.notify_signal);
        set(&mut raw.notify.pid_file, self.notify_pid_file);
        set(&mut raw.notify.process, self.notify_process);

        raw.lazy.extend(self.lazy);
        let mode = self.file_mode.map(RawMode::Text);
        for text in &self.secrets {
            let (name, path, field) = parse_secret_flag(text)?;
            // A flag's secret is named by its path; files of one path share one read.
            match raw.secrets.get(&path) {
                Some(existing) if existing.path() != path => {
                    return Err(ConfigError(format!(
                        "--secret {text:?}: the name {path:?} is already used under [secrets]"
                    )));
                }
                _ => {
                    raw.secrets
                        .insert(path.clone(), RawSecret::Path(path.clone()));
                }
            }
            let format = if field.is_some() { "raw" } else { "json" };
            raw.files.push(RawFile {
                name,
                secret: Some(path),
                format: Some(format.into()),
                field,
                mode: mode.clone(),
                uid: self.file_uid,
                gid: self.file_gid,
                ..RawFile::default()
            });
        }

        if !self.command.is_empty() {
            raw.exec = Some(RawExec {
                command: self.command,
                env: Default::default(),
                on_change: None,
            });
        }
        if !self.env.is_empty() || self.child_on_change.is_some() {
            let Some(exec) = raw.exec.as_mut() else {
                return Err(ConfigError(
                    "--env and --child-on-change need a command to supervise: add -- CMD ARGS"
                        .into(),
                ));
            };
            for text in &self.env {
                let (name, file) = text.split_once('=').ok_or_else(|| {
                    ConfigError(format!(
                        "--env {text:?}: want NAME=FILE, e.g. DB_PASSWORD=db.pw"
                    ))
                })?;
                exec.env.insert(name.to_string(), file.to_string());
            }
            set(&mut exec.on_change, self.child_on_change);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["hush-agent"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).unwrap()
    }

    #[test]
    fn secret_flags_share_one_source_per_path() {
        let mut raw = RawConfig::default();
        flags(&[
            "--secret",
            "db.json=secret/data/app/db",
            "--secret",
            "db.pw=secret/data/app/db#password",
        ])
        .apply(&mut raw)
        .unwrap();
        assert_eq!(raw.secrets.len(), 1);
        assert_eq!(raw.files.len(), 2);
        assert_eq!(raw.files[0].format.as_deref(), Some("json"));
        assert_eq!(raw.files[1].field.as_deref(), Some("password"));
        assert_eq!(raw.files[1].secret.as_deref(), Some("secret/data/app/db"));
    }

    #[test]
    fn bad_secret_flags_are_refused() {
        for bad in ["nopath", "=secret/data/x", "a=", "a=secret/data/x#"] {
            let err = parse_secret_flag(bad).unwrap_err();
            assert!(err.0.contains("want NAME=PATH[#FIELD]"), "{err}");
        }
    }

    #[test]
    fn flags_override_the_file_and_command_goes_to_exec() {
        let mut raw: RawConfig =
            toml::from_str("[server]\naddr = \"http://file:1\"\n[agent]\nonce = false\n").unwrap();
        flags(&[
            "--addr",
            "http://flag:2",
            "--once",
            "--once-deadline",
            "3s",
            "--notify-command",
            "echo hi",
            "--env",
            "PW=db.pw",
            "--",
            "app",
            "--serve",
        ])
        .apply(&mut raw)
        .unwrap();
        assert_eq!(raw.server.addr.as_deref(), Some("http://flag:2"));
        assert_eq!(raw.agent.once, Some(true));
        assert_eq!(raw.agent.once_deadline.as_deref(), Some("3s"));
        assert_eq!(raw.notify.command.as_ref().unwrap()[2], "echo hi");
        let exec = raw.exec.unwrap();
        assert_eq!(exec.command, ["app", "--serve"]);
        assert_eq!(exec.env["PW"], "db.pw");
    }

    #[test]
    fn env_without_command_is_refused() {
        let err = flags(&["--env", "A=b"])
            .apply(&mut RawConfig::default())
            .unwrap_err();
        assert!(err.0.contains("-- CMD ARGS"), "{err}");
    }
}
