//! The Docker volume plugin against the real Docker Engine, a real hushd (HTTP on loopback) and
//! a real PostgreSQL behind the database engine, so the volume holds real leases.
//!
//! With the docker CLI: bad options fail `docker volume create` with the plugin's message; a
//! volume's files are in a container (`cat /secrets/password`); the plugin restarted between
//! two `docker run`s keeps the volume; a `hush kv put` shows up inside a running container, which
//! cannot write the volume; with the store stopped (SIGSTOP), a second container gets the files
//! the plugin holds for the first; once the containers are gone, `docker volume rm` leaves no lease in
//! the store (nor the PostgreSQL role), no mount and no file.
//!
//! The scenario runs on the managed plugin (`docker/build-plugin` from the agent image, `docker
//! plugin create`/`set`/`enable`; restarted with `disable`/`enable`) against the main engine, and
//! on `hush-agent docker-plugin` as a plain process (a socket under /run/docker/plugins) against
//! a private `dockerd` the test starts and stops itself ([`PrivateDockerd`]: its own socket, data
//! root, exec root and pidfile, no bridge, no iptables; the app image loaded from the main
//! engine; every CLI call with `-H`). dockerd keeps every such "legacy" driver it has used for its
//! whole life, and once the process is gone each lookup of an unknown volume name (and `docker
//! volume ls`) waits ~30 s on the dead socket; the private engine takes that dead driver with it.
//! The socket directory is shared by all engines, but an engine only remembers a driver it was
//! asked to use, so the main one stays clean: the test ends by checking that `docker volume ls`
//! on it answers within 2 s.
//!
//! Nothing is pulled: the app and agent images are built from this host's files
//! (`hush_tests::docker::build_images`). Every Docker object made here is named after this
//! process and removed at the end, failed or not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hush_tests::docker::{self, docker, docker_output, poll};
use hush_tests::pg::Postgres;
use hush_tests::private_dockerd::PrivateDockerd;
use hush_tests::{run_hush, write_token, Agent, Hushd};
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

/// Mount points below `dir` (not `dir` itself) in /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = format!("{}/", s(dir));
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The engine a scenario runs on: the machine's main one, or a private `dockerd` of the test's
/// own (every CLI call then carries `-H`).
#[derive(Clone, Copy)]
struct Engine<'a>(Option<&'a PrivateDockerd>);

impl Engine<'_> {
    fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        match self.0 {
            Some(p) => p.docker(args),
            None => docker(args),
        }
    }

    fn docker_output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        match self.0 {
            Some(p) => p.docker_output(args),
            None => docker_output(args),
        }
    }
}

/// A container on `engine` (`docker run -d --name NAME ARGS`), removed on drop.
struct App<'a> {
    engine: Engine<'a>,
    name: String,
}

impl<'a> App<'a> {
    fn run(engine: Engine<'a>, name: String, args: &[&str]) -> anyhow::Result<App<'a>> {
        let app = App { engine, name };
        let mut all = vec!["run", "-d", "--name", &app.name];
        all.extend_from_slice(args);
        engine.docker(&all)?;
        Ok(app)
    }

    fn exec(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut all = vec!["exec", &self.name];
        all.extend_from_slice(args);
        self.engine.docker_output(&all)
    }
}

impl Drop for App<'_> {
    fn drop(&mut self) {
        let _ = self.engine.docker_output(&["rm", "-f", "-v", &self.name]);
    }
}

/// A volume removed on drop unless the test removed it (`docker volume rm -f` of a name the
/// engine does not know asks every driver, so only made volumes are removed).
struct MadeVolume<'a> {
    engine: Engine<'a>,
    name: String,
    removed: bool,
}

impl Drop for MadeVolume<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self
                .engine
                .docker_output(&["volume", "rm", "-f", &self.name]);
        }
    }
}

/// `docker volume create -d DRIVER -o OPT... NAME`: its stderr on failure.
fn volume_create(e: Engine, driver: &str, volume: &str, opts: &[&str]) -> Result<(), String> {
    let mut args = vec!["volume", "create", "-d", driver];
    for o in opts {
        args.extend(["-o", o]);
    }
    args.push(volume);
    let out = e.docker_output(&args).unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `docker run --rm -v VOLUME:/secrets:ro APP cat /secrets/FILE`.
fn run_cat(e: Engine, volume: &str, file: &str) -> String {
    let mount = format!("{volume}:/secrets:ro");
    let path = format!("/secrets/{file}");
    e.docker(&[
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

/// Say how long the test has run at each step (stderr: shown with --nocapture or on failure).
fn step(start: std::time::Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
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

/// The plugin under test: a `hush-agent docker-plugin` process, or the managed plugin.
enum Plugin {
    Process {
        agent: Option<Agent>,
        socket: PathBuf,
        state: StateDir,
        args: Vec<String>,
    },
    Managed {
        name: String,
        /// Its propagated mount as the host sees it (the volumes' tmpfs mounts are there).
        host_dir: PathBuf,
    },
}

impl Plugin {
    fn driver(&self) -> String {
        match self {
            Plugin::Process { socket, .. } => {
                socket.file_stem().unwrap().to_string_lossy().into_owned()
            }
            Plugin::Managed { name, .. } => name.clone(),
        }
    }

    /// Where the volumes are mounted, as the host sees it.
    fn state_dir(&self) -> PathBuf {
        match self {
            Plugin::Process { state, .. } => state.0.clone(),
            Plugin::Managed { host_dir, .. } => host_dir.clone(),
        }
    }

    fn log(&self) -> String {
        match self {
            Plugin::Process { agent, .. } => agent
                .as_ref()
                .map(|a| a.stderr_tail(40))
                .unwrap_or_default(),
            Plugin::Managed { .. } => "(the managed plugin logs to dockerd's log)".into(),
        }
    }

    async fn start(&mut self) {
        match self {
            Plugin::Process {
                agent,
                socket,
                args,
                ..
            } => {
                let _ = std::fs::remove_file(&*socket);
                let mut a = Agent::spawn(args).stop_on_drop(Duration::from_secs(8));
                for _ in 0..500 {
                    if socket.exists() {
                        break;
                    }
                    assert!(a.running(), "the plugin exited:\n{}", a.stderr());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(
                    socket.exists(),
                    "no plugin socket after 5s:\n{}",
                    a.stderr()
                );
                *agent = Some(a);
            }
            Plugin::Managed { name, .. } => {
                docker(&["plugin", "enable", "--timeout", "30", name])
                    .unwrap_or_else(|e| panic!("{e:#}"));
            }
        }
    }

    async fn stop(&mut self) {
        match self {
            Plugin::Process { agent, socket, .. } => {
                if let Some(mut a) = agent.take() {
                    a.stop(Duration::from_secs(8));
                }
                assert!(!socket.exists(), "the socket is removed at exit");
            }
            Plugin::Managed { name, .. } => {
                docker(&["plugin", "disable", "-f", name]).unwrap_or_else(|e| panic!("{e:#}"));
            }
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Plugin::Managed { name, .. } = self {
            let _ = docker_output(&["plugin", "disable", "-f", name]);
            let _ = docker_output(&["plugin", "rm", "-f", name]);
        }
    }
}

/// `hush-agent docker-plugin` on /run/docker/plugins/DRIVER.sock, started.
async fn process_plugin(h: &Hushd, token_dir: &Path) -> Plugin {
    let state = StateDir::new("state");
    let socket = PathBuf::from(format!("/run/docker/plugins/{}.sock", name("driver")));
    let args = [
        "docker-plugin",
        "--socket",
        &s(&socket),
        "--state-dir",
        &s(&state.0),
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token_dir.join("token")),
        "--mount-deadline",
        "10s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut plugin = Plugin::Process {
        agent: None,
        socket,
        state,
        args,
    };
    plugin.start().await;
    plugin
}

/// The managed plugin from the agent image (`docker/build-plugin`), configured and enabled.
async fn managed_plugin(h: &Hushd, token_dir: &Path) -> Plugin {
    let name = format!("{}:local", name("managed"));
    let dir = tempfile::tempdir().unwrap();
    let build = std::process::Command::new(docker::workspace_root().join("docker/build-plugin"))
        .args([
            "--image",
            &format!("hush-agent:{}", docker::TAG),
            "--dir",
            &s(&dir.path().join("plugin")),
            "--create",
            &name,
        ])
        .output()
        .unwrap();
    let id = docker(&["plugin", "inspect", "--format", "{{.Id}}", &name]).unwrap_or_default();
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]).unwrap();
    let mut plugin = Plugin::Managed {
        name: name.clone(),
        host_dir: PathBuf::from(root)
            .join("plugins")
            .join(id)
            .join("propagated-mount"),
    };
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
        &name,
        &format!("config.source={}", s(token_dir)),
        &config,
    ])
    .unwrap_or_else(|e| panic!("{e:#}"));
    plugin.start().await;
    plugin
}

/// The acceptance scenario on `plugin`.
async fn scenario(
    e: Engine<'_>,
    plugin: &mut Plugin,
    h: &Hushd,
    pg: &Postgres,
    t: std::time::Instant,
) {
    let driver = plugin.driver();
    let bad = name("bad");

    // Bad options: docker prints the plugin's message, and no volume is made.
    let err = volume_create(
        e,
        &driver,
        &bad,
        &["password=secret/data/app/db#password", "hush.colour=red"],
    )
    .unwrap_err();
    assert!(err.contains("unknown option \"hush.colour\""), "{err}");
    let err = volume_create(e, &driver, &bad, &["password=secret//app/db"]).unwrap_err();
    assert!(err.contains("secret//app/db"), "{err}");
    let err = volume_create(e, &driver, &bad, &["password=secret/data/app/db#"]).unwrap_err();
    assert!(err.contains("option \"password\""), "{err}");

    let mut volume = MadeVolume {
        engine: e,
        name: name("app-secrets"),
        removed: false,
    };
    volume_create(
        e,
        &driver,
        &volume.name,
        &[
            "password=secret/data/app/db#password",
            "user=database/creds/ro#username",
            "pass=database/creds/ro#password",
            "hush.refresh=1s",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", plugin.log()));
    assert_eq!(run_cat(e, &volume.name, "password"), "pw-1");
    step(t, "bad options refused; first docker run read the file");

    // The plugin restarted between two runs keeps the volume.
    plugin.stop().await;
    plugin.start().await;
    assert_eq!(
        run_cat(e, &volume.name, "password"),
        "pw-1",
        "{}",
        plugin.log()
    );
    let listed = e
        .docker(&["volume", "inspect", "--format", "{{.Driver}}", &volume.name])
        .unwrap();
    assert_eq!(listed, driver);
    step(t, "plugin restarted; second docker run read the file");

    // A running container: the store's changes show up, its lease is held, it cannot write.
    let app = App::run(
        e,
        name("app"),
        &[
            "--network",
            "none",
            "-v",
            &format!("{}:/secrets:ro", volume.name),
            docker::APP_IMAGE,
            "sleep",
            "600",
        ],
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.log()));
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
    let put = run_hush(
        &["kv", "put", "secret/app/db", "password=pw-2"],
        &[("HUSH_ADDR", &h.addr), ("HUSH_TOKEN", "root")],
        None,
    );
    assert!(
        put.status.success(),
        "hush kv put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
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
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.log()));
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
    let state_dir = plugin.state_dir();
    let mountpoint = state_dir.join("volumes").join(&volume.name);
    assert!(
        mounts_under(&state_dir).contains(&s(&mountpoint)),
        "a tmpfs at {} while mounted: {:?}",
        mountpoint.display(),
        mounts_under(&state_dir)
    );
    step(
        t,
        "running container saw the new version and could not write",
    );

    // The store stops answering (SIGSTOP): a second container still gets the files the plugin
    // holds for the first.
    let pid = h.child.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "kill -s {sig} hushd");
    };
    signal("STOP");
    let second = e.docker_output(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/secrets:ro", volume.name),
        docker::APP_IMAGE,
        "cat",
        "/secrets/password",
    ]);
    signal("CONT");
    let second = second.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "pw-2",
        "with the store down: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    step(
        t,
        "with the store stopped, a second container got the held files",
    );

    // Gone: no container holds it; `docker volume rm` leaves no lease, mount or file.
    drop(app);
    e.docker(&["volume", "rm", &volume.name])
        .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin.log()));
    volume.removed = true;
    let leases = h.lease_keys("database/creds/ro/").await;
    assert!(leases.is_empty(), "leases left in the store: {leases:?}");
    assert!(!pg.role_exists(&user).await, "{user} was dropped");
    assert!(
        mounts_under(&state_dir).is_empty(),
        "{:?}",
        mounts_under(&state_dir)
    );
    assert!(!mountpoint.exists(), "{} is left", mountpoint.display());
    let saved = std::fs::read_to_string(state_dir.join("volumes.json")).unwrap();
    assert!(!saved.contains(&volume.name), "{saved}");
    assert!(
        !saved.contains("pw-"),
        "no secret value in the state: {saved}"
    );
    step(t, "volume removed: no lease, mount or file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managed_plugin_feeds_containers_and_leaves_nothing_behind() {
    let t = std::time::Instant::now();
    images();
    let pg = Postgres::start().await;
    let (h, token_dir) = store(Some(&pg)).await;
    step(t, "images built; PostgreSQL and hushd started");
    let mut plugin = managed_plugin(&h, token_dir.path()).await;
    step(t, "managed plugin created and enabled");
    scenario(Engine(None), &mut plugin, &h, &pg, t).await;
    plugin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_process_feeds_containers_and_leaves_nothing_behind() {
    let t = std::time::Instant::now();
    images();
    // A private dockerd: the one engine that ever uses this legacy driver, so its dead socket
    // is forgotten with that engine (the main engine is never asked about the driver).
    let engine = PrivateDockerd::start(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("starting a private dockerd: {e:#}"));
    engine
        .load_from_main(&[docker::APP_IMAGE])
        .unwrap_or_else(|e| panic!("{e:#}"));
    step(t, "images built; private dockerd started, app image loaded");
    let pg = Postgres::start().await;
    let (h, token_dir) = store(Some(&pg)).await;
    let mut plugin = process_plugin(&h, token_dir.path()).await;
    step(t, "PostgreSQL, hushd and the plugin started");
    let e = Engine(Some(&engine));
    scenario(e, &mut plugin, &h, &pg, t).await;
    plugin.stop().await;
    drop(plugin);
    drop(engine);
    step(t, "private dockerd stopped and removed");
    // The main engine never learnt the driver: listing its volumes asks no dead socket.
    let start = std::time::Instant::now();
    docker(&["volume", "ls", "-q"]).unwrap_or_else(|e| panic!("{e:#}"));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "docker volume ls on the main engine took {took:?}"
    );
}
