//! Test harness: start real `hushd` and `hush-agent` processes (and PostgreSQL, moto, stand-in
//! identity providers) on free loopback ports and talk to them over real HTTP(S). The
//! end-to-end tests in `tests/tests/` and the benches in `bench/` both start their processes
//! through it. Binaries come from the workspace target directory (`cargo build --workspace
//! --bins` first; the README's test command does it).
//!
//! # Layout
//! - `lib.rs`: [`Hushd`] (a hushd child and its reqwest client), [`Agent`], [`Tmpfs`],
//!   certificates, the `hush` CLI runner.
//! - [`injector`]: a real hush-injector behind a certificate from a CA made in the test, and
//!   the recorded AdmissionReviews it is tested on.
//! - [`process`]: finding binaries, free ports, [`Proc`] (a child with its log, stopped on drop).
//! - [`push`]: a fleet of agents following the same paths, and the write-to-file latency
//!   (push tests, the change-to-file bench).
//! - [`load`]: the lean keep-alive HTTP/1.1 client of the load generator.
//! - [`docker`]: the images built from `docker/`, containers and volumes removed on drop.
//! - [`systemd`]: the units of `manifests/systemd/` under `systemd-analyze` and `systemd-sysusers`.
//! - [`ha`]: a cluster of HA hushd on one PostgreSQL, and iptables partitions.
//! - [`webhook`]: a real webhook receiver (HTTP or HTTPS; down and back on the same port) and
//!   the receiver-side signature check.
//! - [`pg`]: a real PostgreSQL cluster; [`moto`]: a stand-in AWS; [`https`]: a stand-in identity
//!   provider over HTTPS; [`login`]: JWT login helpers of the auth method tests.

pub mod ha;
pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod docker;
pub mod https;
pub mod injector;
pub mod layers;
pub mod leaks;
pub mod load;
pub mod login;
pub mod moto;
pub mod private_dockerd;
pub mod process;
pub mod proxy;
pub mod push;
pub mod systemd;
pub mod webhook;

pub use process::{bin, bin_or, free_port, Proc};
/// The HTTP client of the harness's API ([`Hushd::client`]).
pub use reqwest;

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running hushd child process, killed on drop.
#[derive(Debug)]
pub struct Hushd {
    pub child: Child,
    pub addr: String,
    pub port: u16,
    pub args: Vec<String>,
    pub client: reqwest::Client,
    pub token: Option<String>,
    pub stderr_path: PathBuf,
    _logdir: Option<tempfile::TempDir>,
}

impl Drop for Hushd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plain HTTP client.
pub fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl Hushd {
    /// Start `hushd` with `args` (the listen flag is added) and wait until it answers.
    pub async fn start(args: &[&str], scheme: &str, client: reqwest::Client) -> Hushd {
        Self::start_on(free_port(), args, scheme, client).await
    }

    pub async fn start_on(
        port: u16,
        args: &[&str],
        scheme: &str,
        client: reqwest::Client,
    ) -> Hushd {
        let mut h = Self::spawn(&bin("hushd"), port, args, scheme, client);
        h.wait_ready().await;
        h
    }

    /// As [`Hushd::start`], with the hushd binary at `program` (a bench's `--hushd`).
    pub async fn start_bin(
        program: &Path,
        args: &[&str],
        scheme: &str,
        client: reqwest::Client,
    ) -> Hushd {
        let mut h = Self::spawn(program, free_port(), args, scheme, client);
        h.wait_ready().await;
        h
    }

    /// Spawn `program` with `args` and `--listen 127.0.0.1:PORT`; does not wait for it.
    pub fn spawn(
        program: &Path,
        port: u16,
        args: &[&str],
        scheme: &str,
        client: reqwest::Client,
    ) -> Hushd {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--listen".into());
        all.push(format!("127.0.0.1:{port}"));
        let mut command = Command::new(program);
        command.args(&all);
        if leaks::log_dir().is_some()
            && std::env::var_os("RUST_LOG").is_none()
            && !args.contains(&"--log-level")
        {
            // The suite keeps its logs for the leak check: make them say everything.
            command.env("RUST_LOG", leaks::TRACE_FILTER);
        }
        let (child, stderr_path, logdir) = process::spawn_logged(&mut command, "hushd")
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Hushd {
            child,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            port,
            args: all,
            client,
            token: None,
            stderr_path,
            _logdir: logdir,
        }
    }

    /// A dev server (root token `root`) with the file audit device `file/` writing to
    /// `DIR/audit.log`; the directory lives as long as the returned `TempDir`.
    pub async fn dev_with_audit_file() -> (Hushd, tempfile::TempDir, PathBuf) {
        let h = Self::dev().await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let (s, b) = h
            .call(
                "PUT",
                "sys/audit/file",
                Some(serde_json::json!({"type": "file", "options": {"file_path": log}})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
        (h, dir, log)
    }

    /// A dev server with root token `root`.
    pub async fn dev() -> Hushd {
        let mut h = Self::start(
            &["--dev", "--dev-root-token", "root"],
            "http",
            http_client(),
        )
        .await;
        h.token = Some("root".into());
        h
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Wait until hushd answers `sys/seal-status` (polled every 20 ms, for 30 s at most).
    pub async fn wait_ready(&mut self) {
        self.wait_ready_every(Duration::from_millis(20), Duration::from_secs(30))
            .await
    }

    /// Wait until hushd answers `sys/seal-status`, polled every `poll`; panics with its log
    /// if it exits or `limit` passes first.
    pub async fn wait_ready_every(&mut self, poll: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hushd exited early with {status}: {}", self.stderr());
            }
            let url = format!("{}/v1/sys/seal-status", self.addr);
            if self.client.get(&url).send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hushd did not start: {}",
                self.stderr()
            );
            tokio::time::sleep(poll).await;
        }
    }

    /// Send a request; returns (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(self.token.as_deref(), method, path, body)
            .await
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/v1/{}", self.addr, path);
        let mut rb = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(t) = token {
            leaks::remember(t);
        }
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let sent = body;
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let answer = serde_json::from_str(&text).unwrap_or(Value::Null);
        leaks::remember_exchange(path, sent.as_ref(), &answer);
        (status, answer)
    }

    /// `sys/init` with 1 share, unseal, and keep the root token. Returns the unseal key.
    pub async fn init_unseal(&mut self) -> String {
        let (s, body) = self
            .call(
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(s, 200, "init: {body}");
        let key = body["keys"][0].as_str().unwrap().to_string();
        self.token = Some(body["root_token"].as_str().unwrap().to_string());
        self.unseal(&key).await;
        key
    }

    pub async fn unseal(&self, key: &str) {
        let (s, body) = self
            .call("PUT", "sys/unseal", Some(json!({ "key": key })))
            .await;
        assert_eq!(s, 200, "unseal: {body}");
        assert_eq!(body["sealed"], false, "unseal: {body}");
    }

    /// SIGKILL the process.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A self-signed certificate for 127.0.0.1/localhost written to `dir`. Returns (cert, key).
pub fn write_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

/// A client that trusts only `ca`.
pub fn tls_client(ca: &Path) -> reqwest::Client {
    install_crypto();
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Write `req` as-is over a raw TCP socket (so the path and headers reach hushd exactly as
/// written; the server may stop reading early) and return the status and the whole response.
pub async fn raw_request(port: u16, req: &str) -> (u16, String) {
    try_raw_request(port, req).await.expect("connect")
}

/// As [`raw_request`], with a failed connect as an error. Also the cheapest poll there is (a
/// bench polling a process every millisecond must not take the CPU the process needs).
pub async fn try_raw_request(port: u16, req: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut rd, mut wr) = s.into_split();
    let bytes = req.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        wr
    });
    let mut out = Vec::new();
    let _ = rd.read_to_end(&mut out).await;
    drop(writer);
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    Ok((status, out))
}

impl Hushd {
    /// A request with a raw body and an optional Content-Type, as `token`.
    pub async fn call_body(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let url = format!("{}/v1/{}", self.addr, path);
        let mut rb = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &url,
            )
            .body(body);
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(ct) = content_type {
            rb = rb.header("Content-Type", ct);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let answer = serde_json::from_str(&text).unwrap_or(Value::Null);
        leaks::remember_exchange(path, None, &answer);
        (status, answer)
    }

    /// A GET with the path sent byte for byte (no client-side cleaning of `..` or `//`), as
    /// the harness token.
    pub async fn raw_get(&self, path: &str) -> (u16, String) {
        let token = self.token.as_deref().unwrap_or("");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {token}\r\nConnection: close\r\n\r\n"
        );
        raw_request(self.port, &req).await
    }

    /// Write the ACL policy `name` and create a token with only it (plus `default`).
    /// Returns the token.
    pub async fn token_with_policy(&self, name: &str, hcl: &str) -> String {
        let (s, b) = self
            .call(
                "PUT",
                &format!("sys/policies/acl/{name}"),
                Some(json!({ "policy": hcl })),
            )
            .await;
        assert_eq!(s, 204, "policy {name}: {b}");
        let (s, b) = self
            .call(
                "POST",
                "auth/token/create",
                Some(json!({ "policies": [name] })),
            )
            .await;
        assert_eq!(s, 200, "token for {name}: {b}");
        b["auth"]["client_token"].as_str().unwrap().to_string()
    }

    /// A request whose body declares a length over `limit` bytes (nothing more is sent).
    pub async fn oversize(&self, method: &str, path: &str, limit: usize) -> (u16, String) {
        let token = self.token.as_deref().unwrap_or("");
        let req = format!(
            "{method} /v1/{path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
            limit + 1
        );
        raw_request(self.port, &req).await
    }
}

// ---- hush-agent (tests/tests/agent_*.rs) ----

/// A real tmpfs mounted on a fresh temp directory (needs root), unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    pub path: PathBuf,
    /// The temp directory holding `path` ([`Tmpfs::new`]), if the harness made one.
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    pub fn new() -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mut tmpfs = Self::mount_at(dir.path().join("secrets"), "size=32m,mode=0755")
            .unwrap_or_else(|e| panic!("{e:#}"));
        tmpfs._dir = Some(dir);
        tmpfs
    }

    /// Mount a tmpfs with mount `options` on `path` (made if missing, removed again on drop).
    pub fn mount_at(path: PathBuf, options: &str) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(&path)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run mount: {e}"))?;
        if !status.success() {
            anyhow::bail!(
                "mount -t tmpfs on {} failed ({status}): mounting a tmpfs needs root",
                path.display()
            );
        }
        Ok(Tmpfs { path, _dir: None })
    }
}

impl Default for Tmpfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A running `hush-agent`: a [`Proc`] (its log, [`Proc::signal`], [`Proc::wait_exit`], ...),
/// killed on drop.
#[derive(Debug)]
pub struct Agent(Proc);

impl std::ops::Deref for Agent {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.0
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.0
    }
}

impl Agent {
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Agent {
        Self::spawn_env(args, &[])
    }

    /// As [`Agent::spawn`], with extra environment variables.
    pub fn spawn_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Agent {
        Self::spawn_with(&[], args, env)
    }

    /// As [`Agent::spawn`], started through `wrapper` (e.g. `["nohup"]`), which execs it.
    pub fn spawn_wrapped<S: AsRef<std::ffi::OsStr>>(wrapper: &[&str], args: &[S]) -> Agent {
        Self::spawn_with(wrapper, args, &[])
    }

    fn spawn_with<S: AsRef<std::ffi::OsStr>>(
        wrapper: &[&str],
        args: &[S],
        env: &[(&str, &str)],
    ) -> Agent {
        let agent = bin("hush-agent");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&agent);
                c
            }
            None => Command::new(&agent),
        };
        command
            .args(args)
            .env(
                "HUSH_LOG",
                if leaks::log_dir().is_some() {
                    leaks::TRACE_FILTER
                } else {
                    "info"
                },
            )
            .envs(env.iter().copied());
        Self::from_command(command).expect("spawn hush-agent")
    }

    /// Spawn a hush-agent command line built by the caller (a bench's own binary, flags and
    /// environment; nothing is added), its stderr to the log.
    pub fn from_command(command: Command) -> std::io::Result<Agent> {
        Proc::spawn(command, "agent").map(Agent)
    }

    /// On drop, stop the agent with SIGTERM (it unmounts what it mounted), SIGKILL after `grace`.
    pub fn stop_on_drop(self, grace: Duration) -> Agent {
        Agent(self.0.stop_on_drop(grace))
    }
}

/// Poll `check` every 20 ms until it is true; panic with `what` after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Write `token` to `dir/token` (mode 0600) and return the path.
pub fn write_token(dir: &Path, token: &str) -> PathBuf {
    leaks::remember(token);
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

impl Hushd {
    /// The keys under `prefix` in `LIST sys/leases/lookup/PREFIX` (empty on 404).
    pub async fn lease_keys(&self, prefix: &str) -> Vec<String> {
        let (s, b) = self
            .call("LIST", &format!("sys/leases/lookup/{prefix}"), None)
            .await;
        if s == 404 {
            return Vec::new();
        }
        assert_eq!(s, 200, "{b}");
        let keys = b["data"]["keys"].as_array().expect("keys");
        keys.iter()
            .map(|k| k.as_str().expect("a key").to_string())
            .collect()
    }

    /// Write a KV v2 secret at `secret/data/PATH`; returns the new version.
    pub async fn kv_put(&self, path: &str, data: Value) -> u64 {
        let (s, b) = self
            .call(
                "POST",
                &format!("secret/data/{path}"),
                Some(json!({ "data": data })),
            )
            .await;
        assert_eq!(s, 200, "kv put {path}: {b}");
        b["data"]["version"].as_u64().unwrap()
    }

    /// Create a token (as the current token) with the given request body; returns it.
    pub async fn create_token(&self, body: Value) -> String {
        let (s, b) = self.call("POST", "auth/token/create", Some(body)).await;
        assert_eq!(s, 200, "token create: {b}");
        b["auth"]["client_token"].as_str().unwrap().to_string()
    }
}

/// A fresh CA and a certificate for 127.0.0.1/localhost signed by it, written to `dir` as
/// `NAME-ca.pem`, `NAME.pem`, `NAME.key`. Returns (ca, cert, key).
pub fn write_ca_signed_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

/// Run the `hush` binary with `args`, `env` (HUSH_*/VAULT_* from the test's own environment
/// removed first) and `stdin`.
pub fn run_hush(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = Command::new(bin("hush"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "HUSH_ADDR",
        "VAULT_ADDR",
        "HUSH_TOKEN",
        "VAULT_TOKEN",
        "HUSH_CACERT",
        "VAULT_CACERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn hush");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().expect("wait for hush");
    // Its stderr is a log too (its stdout is what the user asked for: values may be there).
    if let Some(path) = leaks::kept_log_path("hush-cli") {
        let _ = std::fs::write(path, &output.stderr);
    }
    output
}

impl Hushd {
    /// As root: the role ID of AppRole role `role` at `auth/<mount>/` and a new secret ID.
    pub async fn approle_credentials(&self, mount: &str, role: &str) -> (String, String) {
        let (s, b) = self
            .call("GET", &format!("auth/{mount}/role/{role}/role-id"), None)
            .await;
        assert_eq!(s, 200, "role-id: {b}");
        let role_id = b["data"]["role_id"].as_str().unwrap().to_string();
        let (s, b) = self
            .call("POST", &format!("auth/{mount}/role/{role}/secret-id"), None)
            .await;
        assert_eq!(s, 200, "secret-id: {b}");
        let secret_id = b["data"]["secret_id"].as_str().unwrap().to_string();
        (role_id, secret_id)
    }
}

// ---- hush-agent --fuse (tests/tests/agent_fuse.rs) ----

/// Whether `path` is a mount point (in `/proc/self/mountinfo`; paths without spaces).
pub fn is_mount_point(path: &Path) -> bool {
    let want = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Lazily unmounts a path on drop, so a failed FUSE test leaves no mount behind.
#[derive(Debug)]
pub struct UnmountOnDrop(pub PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if is_mount_point(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}
