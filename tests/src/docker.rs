//! Real containers for the end-to-end tests: the images built from `docker/` with the workspace's
//! binaries on a base made from this host's files (`docker/build-local-base`; no image can be
//! pulled here), and containers, volumes and their logs, removed on drop.
//!
//! Everything runs through the `docker` CLI against the running Docker Engine (`scripts/test`
//! installs Debian's `docker.io` and starts `dockerd` when none answers).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The image tag the tests build (kept between runs so the layers are reused; rebuilt each run).
pub const TAG: &str = "e2e";
/// The runtime base the three images are built on in the tests.
pub const BASE_IMAGE: &str = "hush-e2e-base:latest";
/// The base plus `sh`, `cat` and `sleep` from the host: the example app of the tests.
pub const APP_IMAGE: &str = "hush-e2e-app:latest";

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Run `docker ARGS`; its stdout (trimmed), or an error with the command and its stderr.
pub fn docker<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> anyhow::Result<String> {
    let out = docker_output(args)?;
    if !out.status.success() {
        bail!(
            "docker {} failed ({}): {}",
            show(args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run `docker ARGS` and return its whole output, whatever the exit status.
pub fn docker_output<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> anyhow::Result<Output> {
    Command::new("docker")
        .args(args)
        .output()
        .with_context(|| format!("cannot run docker {}", show(args)))
}

fn show<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fail unless a Docker Engine answers, saying how to get one.
pub fn require_engine() -> anyhow::Result<()> {
    docker(&["info", "--format", "{{.ServerVersion}}"])
        .map(|_| ())
        .context(
            "no Docker Engine answers: scripts/test installs docker.io and starts dockerd \
             (or start it by hand: dockerd &)",
        )
}

/// Run one of the `docker/` scripts with `args`.
fn script(name: &str, args: &[&str]) -> anyhow::Result<()> {
    run_script(&format!("docker/{name}"), args).map(|_| ())
}

/// Run a script of the repository (`path` from the workspace root, e.g. `scripts/build-deb`)
/// with `args`: its stdout (trimmed), or an error with its status and whole output.
pub fn run_script(path: &str, args: &[&str]) -> anyhow::Result<String> {
    let full = workspace_root().join(path);
    let out = Command::new(&full)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", full.display()))?;
    if !out.status.success() {
        bail!(
            "{path} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The image ID behind `image`, if there is one.
fn image_id(image: &str) -> Option<String> {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).ok()
}

/// Build `image` with `build` and remove the image the tag held before, if it changed (so
/// runs do not pile up dangling images; an image still in use stays).
fn rebuild(images: &[String], build: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let before: Vec<Option<String>> = images.iter().map(|i| image_id(i)).collect();
    build()?;
    for (image, old) in images.iter().zip(before) {
        if let Some(old) = old {
            if image_id(image).as_deref() != Some(old.as_str()) {
                let _ = docker(&["image", "rm", &old]);
            }
        }
    }
    Ok(())
}

/// Build the local bases ([`BASE_IMAGE`], [`APP_IMAGE`]) and `hushd`, `hush-agent` and
/// `hush-injector` tagged [`TAG`] on it, from the binaries in `bin_dir` (the workspace's
/// `target/debug`).
pub fn build_images(bin_dir: &Path) -> anyhow::Result<()> {
    let bin_dir = bin_dir.to_str().context("binary directory is not UTF-8")?;
    rebuild(&[BASE_IMAGE.to_string()], || {
        script(
            "build-local-base",
            &["--tag", BASE_IMAGE, "--bin-dir", bin_dir],
        )
    })?;
    rebuild(&[APP_IMAGE.to_string()], || {
        script(
            "build-local-base",
            &[
                "--tag",
                APP_IMAGE,
                "--bin-dir",
                bin_dir,
                "--extra",
                "sh",
                "--extra",
                "cat",
                "--extra",
                "sleep",
            ],
        )
    })?;
    let images: Vec<String> = ["hushd", "hush-agent", "hush-injector"]
        .iter()
        .map(|i| format!("{i}:{TAG}"))
        .collect();
    rebuild(&images, || {
        script(
            "build-images",
            &["--bin-dir", bin_dir, "--base", BASE_IMAGE, "--tag", TAG],
        )
    })
}

/// A name unique to this test process: `hush-e2e-PID-WHAT`.
pub fn unique_name(what: &str) -> String {
    format!("hush-e2e-{}-{what}", std::process::id())
}

/// A container by name, removed (with its anonymous volumes) on drop, whether it was started
/// or not.
#[derive(Debug)]
pub struct Container {
    pub name: String,
}

impl Container {
    /// A guard for the container `name` (start it afterwards, e.g. with `docker run --name`).
    pub fn named(name: String) -> Container {
        Container { name }
    }

    /// `docker run -d --name NAME ARGS` (ARGS: options, the image, its arguments).
    pub fn run<S: AsRef<str>>(name: String, args: &[S]) -> anyhow::Result<Container> {
        let container = Container { name };
        let mut all = vec!["run", "-d", "--name", &container.name];
        all.extend(args.iter().map(|a| a.as_ref()));
        docker(&all)?;
        Ok(container)
    }

    /// Its output (stdout and stderr), or why it could not be had.
    pub fn logs(&self) -> String {
        match docker_output(&["logs", &self.name]) {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(no logs: {e:#})"),
        }
    }

    /// The last `lines` lines of [`Container::logs`], headed with the container's name.
    pub fn logs_tail(&self, lines: usize) -> String {
        let text = self.logs();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (last {lines} lines) ---\n{}",
            self.name,
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    /// Whether it is running (`docker inspect`).
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}")
            .is_ok_and(|s| s == "true")
    }

    /// `docker inspect --format FORMAT` of it.
    pub fn inspect(&self, format: &str) -> anyhow::Result<String> {
        docker(&["inspect", "--format", format, &self.name])
    }

    /// `docker exec NAME ARGS`: its output, whatever the exit status.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut all = vec!["exec", &self.name];
        all.extend_from_slice(args);
        docker_output(&all)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", "-v", &self.name]);
    }
}

/// A named Docker volume, removed on drop.
#[derive(Debug)]
pub struct Volume {
    pub name: String,
}

impl Volume {
    /// A volume on an in-memory filesystem (tmpfs) of `size` (e.g. `16m`), its root owned by
    /// `uid`:`gid` — a pod's `emptyDir` with `medium: Memory`.
    pub fn tmpfs(name: String, size: &str, uid: u32, gid: u32) -> anyhow::Result<Volume> {
        docker(&[
            "volume".to_string(),
            "create".into(),
            "--driver".into(),
            "local".into(),
            "--opt".into(),
            "type=tmpfs".into(),
            "--opt".into(),
            "device=tmpfs".into(),
            "--opt".into(),
            format!("o=size={size},mode=0755,uid={uid},gid={gid}"),
            name.clone(),
        ])?;
        Ok(Volume { name })
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker_output(&["volume", "rm", "-f", &self.name]);
    }
}

/// Poll `check` every `every` until it gives `Some`; after `limit`, an error saying `what`
/// and the last answer.
pub async fn poll<T, F, Fut>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => {
                bail!("timed out after {limit:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// The compose command there is: `docker-compose` (Debian's, which `scripts/test` installs),
/// else the `docker compose` plugin.
pub fn compose_command() -> anyhow::Result<Vec<String>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker-compose", &["version"]) {
        Ok(vec!["docker-compose".into()])
    } else if works("docker", &["compose", "version"]) {
        Ok(vec!["docker".into(), "compose".into()])
    } else {
        bail!("neither docker-compose nor docker compose: scripts/test installs docker-compose")
    }
}
