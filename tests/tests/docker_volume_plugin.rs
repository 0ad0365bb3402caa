//! The Docker volume plugin against the real Docker Engine: `hush-agent docker-plugin` on a
//! socket under /run/docker/plugins (a driver name unique to this run), a real hushd (HTTP on
//! loopback) and a real PostgreSQL behind the database engine, so the volume holds real leases.
//!
//! With the docker CLI: bad options fail `docker volume create` with the plugin's message; a
//! volume's files are in a container (`cat /secrets/password`); the plugin restarted between
//! two `docker run`s keeps the volume; a KV write shows up inside a running container, which
//! cannot write the volume; once the container is gone, `docker volume rm` leaves no lease in
//! the store, no mount and no file. Then the managed plugin (`docker/build-plugin` from the
//! agent image, `docker plugin create`/`set`/`enable`) serves a volume the same way.
//!
//! Nothing is pulled: the app and agent images are built from this host's files
//! (`hush_tests::docker::build_images`). Every Docker object made here is named after this
//! process and removed at the end, failed or not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hush_tests::docker::{self, docker, docker_output, poll, Container};
use hush_tests::pg::Postgres;
use hush_tests::{write_token, Agent, Hushd};
use serde_json::json;

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// What the plugin's token may do: read the secrets, renew, look up and revoke leases.
const POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["read"] }
path "database/creds/ro" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

/// Names of this run's Docker objects: `hush-plugin-e2e-PID-WHAT`.
fn name(what: &str) -> String {
    format!("hush-plugin-e2e-{}-{what}", std::process::id())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A directory removed on drop, after unmounting whatever is still mounted below it.
struct StateDir(PathBuf);

impl StateDir {
    fn new(what: &str) -> StateDir {
        let path = PathBuf::from(format!("/var/lib/{}", name(what)));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        StateDir(path)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        for m in mounts_under(&self.0) {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mount points under `dir` in /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = s(dir);
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Volumes removed on drop (`docker volume rm -f`).
struct Volumes(Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = docker_output(&["volume", "rm", "-f", v]);
        }
    }
}

/// `docker volume create -d DRIVER -o OPT... NAME`: its stderr on failure.
fn volume_create(driver: &str, volume: &str, opts: &[&str]) -> Result<(), String> {
    let mut args = vec!["volume", "create", "-d", driver];
    for o in opts {
        args.extend(["-o", o]);
    }
    args.push(volume);
    let out = docker_output(&args).unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `docker run --rm -v VOLUME:/secrets:ro APP cat /secrets/FILE`.
fn run_cat(volume: &str, file: &str) -> String {
    let mount = format!("{volume}:/secrets:ro");
    let path = format!("/secrets/{file}");
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        docker::APP_IMAGE,
        "cat",
        &path,
    ])
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// `hush-agent docker-plugin` on `socket`, once the socket exists.
async fn start_plugin(socket: &Path, state: &Path, h: &Hushd, token_dir: &Path) -> Agent {
    let _ = std::fs::remove_file(socket);
    let mut plugin = Agent::spawn(&[
        "docker-plugin",
        "--socket",
        &s(socket),
        "--state-dir",
        &s(state),
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token_dir.join("token")),
        "--mount-deadline",
        "10s",
    ])
    .stop_on_drop(Duration::from_secs(8));
    for _ in 0..500 {
        if socket.exists() {
            return plugin;
        }
        assert!(plugin.running(), "the plugin exited:\n{}", plugin.stderr());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no plugin socket after 5s:\n{}", plugin.stderr());
}

/// hushd with a KV secret and `database/` against `pg`; the plugin's token file in a temp dir.
async fn store(pg: Option<&Postgres>) -> (Hushd, tempfile::TempDir) {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw-1"})).await;
    if let Some(pg) = pg {
        pg.mount_engine(&h, "ro", CREATE, 60, 600).await;
    }
    let token = h.token_with_policy("docker-plugin", POLICY).await;
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), &token);
    (h, dir)
}

/// Build the images once for both tests (two builds at once would race for the tags).
fn images() {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return;
    }
    docker::require_engine().unwrap_or_else(|e| panic!("{e:#}"));
    let bin_dir = hush_tests::bin("hushd").parent().unwrap().to_path_buf();
    docker::build_images(&bin_dir).unwrap_or_else(|e| panic!("building the images: {e:#}"));
    *built = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hush_volume_feeds_containers_and_leaves_nothing_behind() {
    images();
    let pg = Postgres::start().await;
    let (h, token_dir) = store(Some(&pg)).await;
    let state = StateDir::new("state");
    let driver = name("driver");
    let socket = PathBuf::from(format!("/run/docker/plugins/{driver}.sock"));
    let mut plugin = start_plugin(&socket, &state.0, &h, token_dir.path()).await;
    let volume = name("app-secrets");
    let _volumes = Volumes(vec![volume.clone(), name("bad")]);

    // Bad options: docker prints the plugin's message, and no volume is made.
    let err = volume_create(
        &driver,
        &name("bad"),
        &["password=secret/data/app/db#password", "hush.colour=red"],
    )
    .unwrap_err();
    assert!(err.contains("unknown option \"hush.colour\""), "{err}");
    let err = volume_create(&driver, &name("bad"), &["password=secret//app/db"]).unwrap_err();
    assert!(err.contains("secret//app/db"), "{err}");
    let err = volume_create(&driver, &name("bad"), &["password=secret/data/app/db#"]).unwrap_err();
    assert!(err.contains("option \"password\""), "{err}");

    volume_create(
        &driver,
        &volume,
        &[
            "password=secret/data/app/db#password",
            "user=database/creds/ro#username",
            "pass=database/creds/ro#password",
            "hush.refresh=1s",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", plugin.stderr()));
    assert_eq!(run_cat(&volume, "password"), "pw-1");

    // The plugin restarted between two runs keeps the volume.
    plugin.stop(Duration::from_secs(8));
    let mut plugin = start_plugin(&socket, &state.0, &h, token_dir.path()).await;
    assert_eq!(run_cat(&volume, "password"), "pw-1", "{}", plugin.stderr());
    let listed = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("driver={driver}"),
    ])
    .unwrap();
    assert_eq!(listed, volume);

    // A running container: the store's changes show up, its leases are held, it cannot write.
    let app = Container::run(
        name("app"),
        &[
            "--network",
            "none",
            "-v",
            &format!("{volume}:/secrets:ro"),
            docker::APP_IMAGE,
            "sleep",
            "600",
        ],
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.stderr()));
    let cat = |file: &str| {
        let out = app.exec(&["cat", &format!("/secrets/{file}")]).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cat("password"), "pw-1");
    let user = cat("user");
    assert!(user.starts_with("v-"), "a dynamic user: {user:?}");
    assert!(pg.role_exists(&user).await, "{user} exists in PostgreSQL");
    let leases = h.lease_keys("database/creds/ro/").await;
    assert_eq!(leases.len(), 1, "the volume holds one lease: {leases:?}");
    h.kv_put("app/db", json!({"password": "pw-2"})).await;
    poll(
        Duration::from_secs(15),
        Duration::from_millis(100),
        "the new password in the running container",
        || {
            let got = cat("password");
            async move {
                if got == "pw-2" {
                    Ok(())
                } else {
                    Err(got)
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.stderr_tail(30)));
    let write = app
        .exec(&["sh", "-c", "echo x > /secrets/password"])
        .unwrap();
    assert!(!write.status.success(), "the container wrote the volume");
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    assert_eq!(cat("password"), "pw-2");
    let mountpoint = state.0.join("volumes").join(&volume);
    assert!(
        mounts_under(&state.0).contains(&s(&mountpoint)),
        "a tmpfs while mounted"
    );

    // Gone: no container holds it; `docker volume rm` leaves no lease, mount or file.
    drop(app);
    docker(&["volume", "rm", &volume]).unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.stderr()));
    let leases = h.lease_keys("database/creds/ro/").await;
    assert!(leases.is_empty(), "leases left in the store: {leases:?}");
    assert!(!pg.role_exists(&user).await, "{user} was dropped");
    assert!(
        mounts_under(&state.0).is_empty(),
        "{:?}",
        mounts_under(&state.0)
    );
    assert!(!mountpoint.exists(), "{} is left", mountpoint.display());
    let saved = std::fs::read_to_string(state.0.join("volumes.json")).unwrap();
    assert!(!saved.contains(&volume), "{saved}");
    assert!(
        !saved.contains("pw-"),
        "no secret value in the state: {saved}"
    );
    plugin.stop(Duration::from_secs(8));
    assert!(!socket.exists(), "the socket is removed at exit");
}

/// A managed plugin, removed (disabled first) on drop.
struct ManagedPlugin(String);

impl Drop for ManagedPlugin {
    fn drop(&mut self) {
        let _ = docker_output(&["plugin", "disable", "-f", &self.0]);
        let _ = docker_output(&["plugin", "rm", "-f", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managed_plugin_installs_and_serves_a_volume() {
    images();
    let (h, token_dir) = store(None).await;
    let plugin = ManagedPlugin(format!("{}:local", name("managed")));
    let dir = tempfile::tempdir().unwrap();
    let build = std::process::Command::new(docker::workspace_root().join("docker/build-plugin"))
        .args([
            "--image",
            &format!("hush-agent:{}", docker::TAG),
            "--dir",
            &s(&dir.path().join("plugin")),
            "--create",
            &plugin.0,
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "docker/build-plugin: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let config = format!(
        "HUSH_AGENT_CONFIG=server = {{addr = \"{}\", token_file = \"/etc/hush/token\"}}",
        h.addr
    );
    docker(&[
        "plugin",
        "set",
        &plugin.0,
        &format!("config.source={}", s(token_dir.path())),
        &config,
    ])
    .unwrap_or_else(|e| panic!("{e:#}"));
    docker(&["plugin", "enable", "--timeout", "30", &plugin.0]).unwrap_or_else(|e| panic!("{e:#}"));
    let volume = name("managed-secrets");
    let _volumes = Volumes(vec![volume.clone()]);
    let err = volume_create(&plugin.0, &name("managed-bad"), &["hush.colour=red"]).unwrap_err();
    assert!(err.contains("unknown option \"hush.colour\""), "{err}");
    volume_create(
        &plugin.0,
        &volume,
        &["password=secret/data/app/db#password"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run_cat(&volume, "password"), "pw-1");
    docker(&["volume", "rm", &volume]).unwrap_or_else(|e| panic!("{e:#}"));
}
