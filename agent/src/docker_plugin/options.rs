//! A volume's options (`docker volume create -o ...`) -> the agent [`Config`] that renders it.
//!
//! Each `FILE=PATH[#FIELD]` option is a file of the volume (the agent's `--secret` grammar:
//! with `#FIELD` the field's raw value, without it the JSON of the data). Options starting with
//! `hush.` set the rest ([`RESERVED`]). The config is the plugin's own (`--config`, the server
//! and auth flags) with the volume's files, destination and settings on top, validated by the
//! agent's own checks; what a volume may not change (exec, notify, FUSE, metrics, revoking the
//! plugin's token) is forced off.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, ConfigError, Flags, RawConfig, ServerFlags};

/// The reserved options and what they set.
pub const RESERVED: &[(&str, &str)] = &[
    (
        "hush.mode",
        "octal mode of the files, e.g. 0440 [default: 0400]",
    ),
    ("hush.uid", "owner uid of the files"),
    ("hush.gid", "owner gid of the files"),
    (
        "hush.refresh",
        "how often non-leased secrets are checked for a new version, e.g. 30s",
    ),
    ("hush.role", "the role to log in as (with --auth)"),
    (
        "hush.size",
        "size of the volume's tmpfs, e.g. 1m [default: 16m]",
    ),
];

/// Why a volume's options were refused (the message goes back to `docker volume create`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

impl From<ConfigError> for OptionError {
    fn from(e: ConfigError) -> Self {
        OptionError(e.0)
    }
}

/// The reserved option named `key`, if it is one.
fn reserved(key: &str) -> Option<&'static str> {
    RESERVED.iter().map(|(k, _)| *k).find(|k| *k == key)
}

/// A volume name dockerd accepts and that is safe as a directory name.
pub fn check_volume_name(name: &str) -> Result<(), OptionError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(OptionError(format!(
            "volume name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

/// The files' mode unless `hush.mode` says otherwise: readable by any user of the container,
/// as Docker's own secrets (the plugin cannot know the container's user; the volume's
/// directory on the host is reachable by root alone).
pub const DEFAULT_MODE: &str = "0444";

/// How one agent run over a volume is built.
pub struct Build<'a> {
    /// The plugin's config (file or text), before its flags.
    pub base: &'a RawConfig,
    /// The plugin's server and auth flags.
    pub server: &'a ServerFlags,
    /// Where the files go (the volume's tmpfs).
    pub dest: &'a Path,
    /// `Some(deadline)`: a single pass (`--once`) that gives up after the deadline.
    pub once: Option<Duration>,
}

/// Check a volume's options and build the agent config that renders it.
pub fn agent_config(
    opts: &BTreeMap<String, String>,
    build: &Build<'_>,
) -> Result<Config, OptionError> {
    let mut flags = Flags {
        server: build.server.clone(),
        dest: Some(build.dest.to_path_buf()),
        file_mode: Some(DEFAULT_MODE.into()),
        ..Flags::default()
    };
    let mut size = None;
    for (key, value) in opts {
        if key.starts_with("hush.") {
            let Some(key) = reserved(key) else {
                let known: Vec<&str> = RESERVED.iter().map(|(k, _)| *k).collect();
                return Err(OptionError(format!(
                    "unknown option {key:?}: the reserved options are {}",
                    known.join(", ")
                )));
            };
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| OptionError(format!("option {key:?}: {v:?} is not a number")))
            };
            match key {
                "hush.mode" => flags.file_mode = Some(value.clone()),
                "hush.uid" => flags.file_uid = Some(number(value)?),
                "hush.gid" => flags.file_gid = Some(number(value)?),
                "hush.refresh" => flags.refresh_interval = Some(value.clone()),
                "hush.role" => flags.server.role = Some(value.clone()),
                _ => size = Some(value.clone()),
            }
            continue;
        }
        let (path, field) = match value.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (value.as_str(), None),
        };
        if path.is_empty() || field == Some("") {
            return Err(OptionError(format!(
                "option {key:?}: {value:?} is not a secret: want FILE=PATH[#FIELD], e.g. \
                 password=secret/data/app/db#password"
            )));
        }
        flags.secrets.push(format!("{key}={value}"));
    }
    if flags.secrets.is_empty() {
        return Err(OptionError(
            "no files: give each as an option FILE=PATH[#FIELD], e.g. -o \
             password=secret/data/app/db#password"
                .into(),
        ));
    }
    if let Some(deadline) = build.once {
        flags.once = true;
        flags.once_deadline = Some(crate::config::duration::show(deadline));
    }
    // The plugin's config gives the server, auth and timing; the files and where they go are
    // the volume's alone.
    let mut raw = build.base.clone();
    raw.secrets.clear();
    raw.files.clear();
    raw.lazy.clear();
    raw.exec = None;
    raw.notify = Default::default();
    raw.destination = Default::default();
    flags.apply(&mut raw)?;
    // The plugin mounts the tmpfs itself; this checks the size.
    raw.destination.mount_tmpfs = Some(true);
    raw.destination.tmpfs_size = size;
    raw.agent.metrics_listen = None;
    // The token is the plugin's: never revoked by one volume.
    raw.agent.revoke_on_exit = Some(false);
    raw.agent.revoke_leases_on_exit = Some(true);
    let config = Config::from_raw(raw)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn build(pairs: &[(&str, &str)]) -> Result<Config, OptionError> {
        let server = ServerFlags {
            addr: Some("http://127.0.0.1:8200".into()),
            token_file: Some("/run/hush/token".into()),
            ..ServerFlags::default()
        };
        let base = RawConfig::default();
        agent_config(
            &opts(pairs),
            &Build {
                base: &base,
                server: &server,
                dest: Path::new("/var/lib/hush-plugin/volumes/app"),
                once: None,
            },
        )
    }

    #[test]
    fn files_and_reserved_options_make_the_config() {
        let c = build(&[
            ("password", "secret/data/app/db#password"),
            ("db.json", "secret/data/app/db"),
            ("hush.mode", "0440"),
            ("hush.uid", "1000"),
            ("hush.gid", "1001"),
            ("hush.refresh", "5s"),
            ("hush.size", "1m"),
        ])
        .unwrap();
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.sources.len(), 1, "one read per path");
        let pw = c.files.iter().find(|f| f.name == "password").unwrap();
        assert_eq!((pw.mode, pw.uid, pw.gid), (0o440, Some(1000), Some(1001)));
        assert_eq!(c.refresh_interval, Duration::from_secs(5));
        assert_eq!(c.destination.mount_tmpfs, Some(1 << 20));
        assert!(!c.revoke_on_exit && c.revoke_leases_on_exit && c.metrics_listen.is_none());
        assert!(!c.once);
    }

    #[test]
    fn an_unknown_reserved_option_is_named() {
        let err = build(&[("a", "secret/data/x"), ("hush.colour", "red")]).unwrap_err();
        assert!(err.0.contains("unknown option \"hush.colour\""), "{err}");
        assert!(err.0.contains("hush.mode"), "lists the known ones: {err}");
    }

    #[test]
    fn bad_values_and_paths_are_named() {
        for (pairs, want) in [
            (vec![("a", "secret/data/x#")], "option \"a\""),
            (vec![("a", "")], "option \"a\""),
            (vec![("a", "secret//x")], "secret//x"),
            (vec![("a", "secret/../x")], "secret/../x"),
            (vec![("a/b", "secret/data/x")], "a/b"),
            (vec![("a", "secret/data/x"), ("hush.uid", "me")], "hush.uid"),
            (vec![("a", "secret/data/x"), ("hush.mode", "999")], "999"),
            (
                vec![("a", "secret/data/x"), ("hush.refresh", "soon")],
                "soon",
            ),
            (vec![("hush.mode", "0400")], "no files"),
        ] {
            let err = build(&pairs).unwrap_err();
            assert!(err.0.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn the_plugin_config_gives_server_not_files() {
        let base: RawConfig = toml::from_str(
            "[server]\naddr = \"http://file:1\"\n[agent]\nrevoke_on_exit = true\nmetrics_listen = \"127.0.0.1:1\"\n[secrets]\nx = \"secret/data/x\"\n[[file]]\nname = \"x\"\nsecret = \"x\"\n",
        )
        .unwrap();
        let server = ServerFlags {
            token_file: Some("/t".into()),
            ..ServerFlags::default()
        };
        let c = agent_config(
            &opts(&[("pw", "secret/data/app#pw")]),
            &Build {
                base: &base,
                server: &server,
                dest: Path::new("/v"),
                once: Some(Duration::from_secs(7)),
            },
        )
        .unwrap();
        assert_eq!(c.server.addr, "http://file:1");
        assert_eq!(c.files.len(), 1);
        assert_eq!(c.files[0].name, "pw");
        assert!(!c.revoke_on_exit && c.metrics_listen.is_none());
        assert_eq!(c.files[0].mode, 0o444, "Docker's default for secrets");
        assert!(c.once && c.once_deadline == Duration::from_secs(7));
    }

    #[test]
    fn volume_names_are_plain() {
        check_volume_name("app-secrets_1.x").unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "-x"] {
            check_volume_name(bad).unwrap_err();
        }
    }
}
