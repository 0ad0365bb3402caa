//! Config validation: one fixture per bad case (`fixtures/bad_*.toml`), each starting with
//! `# expect: MESSAGE`, the exact message it must give (`FIXTURE` stands for its path).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{
    parse_toml, ChildOnChange, Config, Flags, Format, OnForbidden, ServerFlags, SignalTarget,
    SourceKind,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/config/fixtures")
}

fn load(name: &str) -> Result<Config, ConfigError> {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::from_raw(parse_toml(&path, &text)?)
}

#[test]
fn every_bad_fixture_gives_its_exact_message() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.starts_with("bad_") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: no `# expect:` line"))
            .replace("FIXTURE", &path.display().to_string());
        let err = load(&name).expect_err(&name);
        assert_eq!(err.0, expect, "{name}");
        count += 1;
    }
    assert!(count >= 30, "only {count} fixtures");
}

#[test]
fn full_fixture_validates_into_typed_config() {
    let c = load("good_full.toml").unwrap();
    assert_eq!(c.server.addr, "https://127.0.0.1:8200");
    assert_eq!(c.server.request_timeout, Duration::from_secs(5));
    assert_eq!(c.refresh_interval, Duration::from_millis(100));
    assert_eq!(c.backoff_max, Duration::from_secs(30));
    assert_eq!(c.on_forbidden, OnForbidden::Remove);
    assert!(c.revoke_on_exit && !c.once);
    assert_eq!(c.once_deadline, Duration::from_secs(45));
    assert_eq!(c.destination.mount_tmpfs, Some(8 << 20));
    assert_eq!(c.metrics_listen.unwrap().port(), 9102);

    // db and db_again share one read; legacy is not KV v2.
    assert_eq!(c.sources.len(), 3);
    let db = c
        .sources
        .iter()
        .position(|s| s.path == "secret/data/app/db")
        .unwrap();
    assert_eq!(c.sources[db].names, ["db", "db_again"]);
    assert_eq!(
        c.sources[db].kind,
        SourceKind::KvV2 {
            mount: "secret".into(),
            path: "app/db".into()
        }
    );
    let legacy = c
        .sources
        .iter()
        .find(|s| s.path == "kv1/app/legacy")
        .unwrap();
    assert_eq!(legacy.kind, SourceKind::Generic);

    let f = |n: &str| c.files.iter().find(|f| f.name == n).unwrap();
    assert_eq!(
        f("db.password").format,
        Format::Raw {
            source: db,
            field: "password".into()
        }
    );
    assert_eq!(
        (
            f("db.password").mode,
            f("db.password").uid,
            f("db.password").gid
        ),
        (0o440, Some(1000), Some(1000))
    );
    assert_eq!(f("db.env").format, Format::Dotenv { source: db });
    assert_eq!(f("db.env").mode, 0o600);
    assert_eq!(f("api.json").mode, 0o400, "default mode");
    assert!(matches!(f("app.conf").format, Format::Template { .. }));

    assert_eq!(c.notify.command.as_ref().unwrap()[0], "/usr/bin/reload-app");
    assert_eq!(c.notify.timeout, Duration::from_secs(5));
    assert_eq!(
        c.notify.signal,
        Some(("SIGHUP".into(), SignalTarget::ProcessName("app".into())))
    );
    let exec = c.exec.unwrap();
    assert_eq!(exec.on_change, ChildOnChange::Restart);
    assert_eq!(exec.env, [("DB_PASSWORD".into(), "db.password".into())]);
}

#[test]
fn flags_alone_make_a_config() {
    use clap::Parser;
    let flags = Flags::try_parse_from([
        "hush-agent",
        "--addr",
        "http://127.0.0.1:8200",
        "--token-file",
        "/t",
        "--dest",
        "/d",
        "--secret",
        "db.json=secret/data/app/db",
        "--secret",
        "pw=secret/data/app/db#password",
        "--file-mode",
        "0440",
        "--refresh-interval",
        "100ms",
        "--notify-signal",
        "USR1",
        "--notify-pid-file",
        "/run/app.pid",
        "--",
        "/bin/app",
        "-v",
    ])
    .unwrap();
    let c = Config::load(flags).unwrap();
    assert_eq!(c.sources.len(), 1, "one read for both files");
    assert_eq!(c.files.len(), 2);
    assert!(c.files.iter().all(|f| f.mode == 0o440));
    assert_eq!(c.refresh_interval, Duration::from_millis(100));
    assert_eq!(c.backoff_max, DEFAULT_BACKOFF_MAX);
    assert_eq!(c.once_deadline, DEFAULT_ONCE_DEADLINE);
    assert_eq!(
        c.notify.signal,
        Some((
            "SIGUSR1".into(),
            SignalTarget::PidFile("/run/app.pid".into())
        ))
    );
    let exec = c.exec.unwrap();
    assert_eq!(exec.argv, ["/bin/app", "-v"]);
    assert_eq!(exec.on_change, ChildOnChange::Signal("SIGHUP".into()));
}

#[test]
fn missing_config_file_is_named() {
    let flags = Flags {
        server: ServerFlags {
            config: Some("/nonexistent/agent.toml".into()),
            ..ServerFlags::default()
        },
        ..Flags::default()
    };
    let err = Config::load(flags).unwrap_err();
    assert_eq!(
        err.0,
        "could not read config file /nonexistent/agent.toml: No such file or directory"
    );
}

const CONFIG_TEXT: &str = r#"
[server]
addr = "https://from-text:8200"
token_file = "/run/hush/token"
[destination]
path = "/secrets"
[secrets]
db = "secret/data/app/db"
[[file]]
name = "db.pw"
secret = "db"
field = "password"
"#;

fn parse_flags(args: &[&str]) -> Result<Flags, clap::Error> {
    use clap::Parser;
    Flags::try_parse_from(std::iter::once("hush-agent").chain(args.iter().copied()))
}

#[test]
fn config_text_is_the_config_and_flags_override_it() {
    let c = Config::load(parse_flags(&["--config-text", CONFIG_TEXT]).unwrap()).unwrap();
    assert_eq!(c.server.addr, "https://from-text:8200");
    assert_eq!(c.files.len(), 1);
    assert_eq!(c.files[0].name, "db.pw");

    let flags = parse_flags(&[
        "--config-text",
        CONFIG_TEXT,
        "--addr",
        "https://from-flag:8200",
        "--once",
    ])
    .unwrap();
    let c = Config::load(flags).unwrap();
    assert_eq!(c.server.addr, "https://from-flag:8200");
    assert!(c.once);
}

#[test]
fn config_text_comes_from_hush_agent_config_with_its_value_hidden() {
    use clap::CommandFactory;
    let cmd = Flags::command();
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_id() == "config_text")
        .unwrap();
    assert_eq!(
        arg.get_env(),
        Some(std::ffi::OsStr::new("HUSH_AGENT_CONFIG"))
    );
    assert!(arg.is_hide_env_values_set());
}

#[test]
fn config_text_and_config_file_conflict() {
    let err =
        parse_flags(&["--config", "/etc/agent.toml", "--config-text", CONFIG_TEXT]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
}

#[test]
fn bad_config_text_is_named_hush_agent_config() {
    let flags = Flags {
        server: ServerFlags {
            config_text: Some("[server]\naddr = 1\n".into()),
            ..ServerFlags::default()
        },
        ..Flags::default()
    };
    let err = Config::load(flags).unwrap_err();
    assert_eq!(
        err.0,
        "invalid config HUSH_AGENT_CONFIG line 2: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn signal_names_are_normalised() {
    assert_eq!(signal_name("hup"), Some("SIGHUP"));
    assert_eq!(signal_name("SIGUSR2"), Some("SIGUSR2"));
    assert_eq!(signal_name("KILL"), None);
}

#[test]
fn fuse_fixture_and_flags() {
    use crate::config::{FuseCache, FuseSettings};
    let c = load("good_fuse.toml").unwrap();
    assert_eq!(
        c.destination.fuse,
        Some(FuseSettings {
            cache: FuseCache::Audited,
            access_log: Some("/var/log/hush/access.log".into()),
        })
    );
    assert_eq!(c.destination.mount_tmpfs, None);
    let pw = c.files.iter().find(|f| f.name == "db.password").unwrap();
    assert_eq!(pw.uids.as_deref(), Some(&[1000, 1001][..]));
    assert_eq!(pw.mode, 0o444);
    assert_eq!(
        c.files.iter().find(|f| f.name == "db.json").unwrap().uids,
        None
    );
    assert_eq!(
        load("good_full.toml").unwrap().destination.fuse,
        None,
        "tmpfs mode"
    );

    use clap::Parser;
    let flags = Flags::try_parse_from([
        "hush-agent",
        "--addr",
        "http://127.0.0.1:8200",
        "--token-file",
        "/t",
        "--dest",
        "/d",
        "--secret",
        "pw=secret/data/app/db#password",
        "--fuse",
        "--fuse-cache",
        "fast",
        "--access-log",
        "-",
    ])
    .unwrap();
    let c = Config::load(flags).unwrap();
    assert_eq!(
        c.destination.fuse,
        Some(FuseSettings {
            cache: FuseCache::Fast,
            access_log: None,
        })
    );
}

#[test]
fn lazy_secrets_from_the_file_and_flags() {
    let c = load("good_fuse_lazy.toml").unwrap();
    let lazy: Vec<(&str, bool)> = c
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.lazy))
        .collect();
    // A path one name reads at start is read at start, whatever another name says.
    assert_eq!(
        lazy,
        [("secret/data/app/db", false), ("database/creds/app", true)]
    );
    let file = |name: &str| c.files.iter().position(|f| f.name == name).unwrap();
    assert_eq!(c.lazy_sources(file("pg.json")), [1]);
    assert!(c.lazy_sources(file("db.json")).is_empty());
    assert_eq!(
        c.lazy_sources(file("dsn")),
        [1],
        "a template sees every secret"
    );

    use clap::Parser;
    let args = |lazy: &str| {
        Flags::try_parse_from([
            "hush-agent",
            "--addr",
            "http://127.0.0.1:8200",
            "--token-file",
            "/t",
            "--dest",
            "/d",
            "--secret",
            "pg=database/creds/app",
            "--secret",
            "kv=secret/data/app/db#password",
            "--fuse",
            "--lazy",
            lazy,
        ])
        .unwrap()
    };
    let c = Config::load(args("database/creds/app")).unwrap();
    let pg = c.sources.iter().find(|s| s.path == "database/creds/app");
    assert!(pg.unwrap().lazy);
    assert!(c.sources.iter().filter(|s| s.lazy).count() == 1);
    assert_eq!(
        Config::load(args("pg")).unwrap_err().0,
        "--lazy \"pg\": no such secret; give a [secrets] name or the PATH of a --secret"
    );
}

#[test]
fn a_written_raw_config_parses_back_and_validates_the_same() {
    // What the injector does: build (here: read) a raw config and write it as TOML.
    for name in ["good_full.toml", "good_fuse.toml", "good_fuse_lazy.toml"] {
        let path = fixtures().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let raw = parse_toml(&path, &text).unwrap();
        let written = toml::to_string(&raw).unwrap();
        let back = parse_toml(Path::new("written.toml"), &written)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{written}"));
        let (a, b) = (
            Config::from_raw(raw).unwrap(),
            Config::from_raw(back).unwrap(),
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{name}:\n{written}");
    }
}

#[test]
fn file_paths_name_what_each_file_is_made_of() {
    let raw = crate::config::parse_text(
        "test",
        r#"
[server]
addr = "http://127.0.0.1:8200"
token_file = "/tmp/t"
[destination]
path = "/run/x"
[secrets]
db = "secret/data/app/db"
dbx = "secret/data/app/dbx"
api = "secret/data/app/api"
[[file]]
name = "db.password"
secret = "db"
field = "password"
[[file]]
name = "app.conf"
format = "template"
template = "u={{ secrets.dbx.user }} k={{ secrets['api'].key }}"
[[file]]
name = "all.conf"
format = "template"
template = "{% for k in secrets %}{{ k }}{% endfor %}"
"#,
    )
    .unwrap();
    let c = Config::from_raw(raw).unwrap();
    let file = |name: &str| c.files.iter().position(|f| f.name == name).unwrap();
    assert_eq!(c.file_paths(file("db.password")), ["secret/data/app/db"]);
    // `secrets.db` is not named by `secrets.dbx`.
    assert_eq!(
        c.file_paths(file("app.conf")),
        ["secret/data/app/api", "secret/data/app/dbx"]
    );
    assert_eq!(c.file_paths(file("all.conf")).len(), 3);
    assert!(c.file_paths(99).is_empty());
}
