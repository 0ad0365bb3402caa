//! hush-bench: start a real hushd (SQLite, durable) and drive KV v2 reads and writes over
//! loopback HTTP with 1..N keep-alive clients, with the file audit device on and off.
//! Prints a Markdown table for docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Benchmark hushd over loopback HTTP.
#[derive(Debug, Parser)]
#[command(name = "hush-bench", version, about)]
struct Args {
    /// Client counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct keys read (and written).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// hushd binary (default: next to this binary).
    #[arg(long)]
    hushd: Option<PathBuf>,
    /// Which scenarios: read, write, login (AppRole logins, each minting a durable token),
    /// login-k8s (Kubernetes logins in local mode: an ES256 JWT checked against pem_keys).
    /// lease (`auth/token/create-orphan` with a TTL: a durable token and its durable lease).
    #[arg(long, default_value = "read,write", value_delimiter = ',')]
    ops: Vec<String>,
    /// Audit settings to run: off, on or both.
    #[arg(long, default_value = "off,on", value_delimiter = ',')]
    audit: Vec<String>,
}

struct Server {
    child: Child,
    port: u16,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Conn = http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Result<Conn> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn call(
    conn: &mut Conn,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Bytes)> {
    conn.ready().await?;
    let body = body
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap()))
        .unwrap_or_default();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("/v1/{path}"))
        .header("host", "127.0.0.1");
    if !token.is_empty() {
        req = req.header("x-vault-token", token);
    }
    let req = req.body(Full::new(body))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

fn hushd_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.hushd {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()?;
    let p = me.parent().context("exe dir")?.join("hushd");
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace`",
            p.display()
        );
    }
    Ok(p)
}

async fn start(args: &Args, audit: bool) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(hushd_path(args)?)
        .args([
            "--storage",
            &format!("sqlite://{}/hush.db", dir.path().display()),
        ])
        .args([
            "--insecure-no-tls",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let mut conn = loop {
        match connect(port).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (_, init) = call(
        &mut conn,
        "PUT",
        "sys/init",
        "",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    let init: Value = serde_json::from_slice(&init)?;
    let key = init["keys"][0].as_str().context("init keys")?.to_string();
    let token = init["root_token"]
        .as_str()
        .context("root token")?
        .to_string();
    call(
        &mut conn,
        "PUT",
        "sys/unseal",
        "",
        Some(&json!({ "key": key })),
    )
    .await?;
    let (s, _) = call(
        &mut conn,
        "POST",
        "sys/mounts/secret",
        &token,
        Some(&json!({"type": "kv-v2"})),
    )
    .await?;
    if s != 204 {
        bail!("mount failed: {s}");
    }
    if audit {
        let path = dir.path().join("audit.log");
        let (s, b) = call(
            &mut conn,
            "PUT",
            "sys/audit/file",
            &token,
            Some(&json!({"type": "file", "options": {"file_path": path}})),
        )
        .await?;
        if s != 204 {
            bail!("audit enable failed: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    for i in 0..args.keys {
        let (s, _) = call(&mut conn, "POST", &format!("secret/data/bench/k{i}"), &token,
            Some(&json!({"data": {"username": "app", "password": format!("pw-{i}-xxxxxxxxxxxxxxxx")}}))).await?;
        if s != 200 {
            bail!("seed write failed: {s}");
        }
    }
    Ok(Server {
        child,
        port,
        token,
        _dir: dir,
    })
}

struct Run {
    ops: u64,
    errors: u64,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    /// CPU seconds (user + system) spent by hushd during the run.
    server_cpu: f64,
    /// CPU seconds spent by this bench process (the clients) during the run.
    client_cpu: f64,
}

/// User + system CPU seconds of process `pid` ("self" for this one), from `/proc/<pid>/stat`
/// (fields 14 and 15, in USER_HZ ticks, which is 100 on Linux). 0 when unreadable.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after it follow the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) as f64 / 100.0
}

/// What each client does in a loop.
#[derive(Debug, Clone)]
enum Workload {
    Read,
    Write,
    /// `POST` this login path with this body (each success mints a durable token).
    Login(&'static str, Value),
    /// `POST auth/token/create-orphan` with a TTL: each success writes a token and its lease.
    Lease,
}

/// Enable approle with a role whose secret ID never runs out; the login body.
async fn approle_setup(server: &Server) -> Result<Value> {
    let mut conn = connect(server.port).await?;
    let t = &server.token;
    let (s, b) = call(
        &mut conn,
        "POST",
        "sys/auth/approle",
        t,
        Some(&json!({"type": "approle"})),
    )
    .await?;
    if s != 204 {
        bail!("approle enable failed: {s} {}", String::from_utf8_lossy(&b));
    }
    let role = json!({"token_policies": ["default"], "token_ttl": "10m"});
    let (s, _) = call(&mut conn, "POST", "auth/approle/role/bench", t, Some(&role)).await?;
    if s != 204 && s != 200 {
        bail!("approle role failed: {s}");
    }
    let (_, b) = call(&mut conn, "GET", "auth/approle/role/bench/role-id", t, None).await?;
    let role_id = serde_json::from_slice::<Value>(&b)?["data"]["role_id"].clone();
    let (_, b) = call(
        &mut conn,
        "POST",
        "auth/approle/role/bench/secret-id",
        t,
        Some(&json!({})),
    )
    .await?;
    let secret_id = serde_json::from_slice::<Value>(&b)?["data"]["secret_id"].clone();
    if !role_id.is_string() || !secret_id.is_string() {
        bail!("approle setup gave no role_id/secret_id");
    }
    Ok(json!({"role_id": role_id, "secret_id": secret_id}))
}

/// POST `body` to `path` as the root token; fail unless 200 or 204.
async fn setup_call(server: &Server, path: &str, body: Value) -> Result<()> {
    let mut conn = connect(server.port).await?;
    let (s, b) = call(&mut conn, "POST", path, &server.token, Some(&body)).await?;
    if s != 204 && s != 200 {
        bail!("{path} failed: {s} {}", String::from_utf8_lossy(&b));
    }
    Ok(())
}

/// Enable kubernetes in local mode (a P-256 key made here, no API server) with a role for
/// `default/bench`; the login body with a projected-style token signed by that key.
async fn kubernetes_setup(server: &Server) -> Result<Value> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let issuer = "https://kubernetes.default.svc.cluster.local";
    setup_call(server, "sys/auth/kubernetes", json!({"type": "kubernetes"})).await?;
    setup_call(
        server,
        "auth/kubernetes/config",
        json!({"pem_keys": [key.public_key_pem()], "issuer": issuer}),
    )
    .await?;
    setup_call(
        server,
        "auth/kubernetes/role/bench",
        json!({
            "bound_service_account_names": ["bench"],
            "bound_service_account_namespaces": ["default"],
            "audience": "vault",
            "token_policies": ["default"],
            "token_ttl": "10m",
        }),
    )
    .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = json!({
        "iss": issuer, "aud": ["vault"], "sub": "system:serviceaccount:default:bench",
        "exp": now + 3600, "iat": now, "nbf": now,
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": "bench", "uid": "bench-uid"},
            "pod": {"name": "bench-0", "uid": "pod-uid"},
        },
    });
    let enc = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())?;
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &enc,
    )?;
    Ok(json!({"role": "bench", "jwt": jwt}))
}

async fn run(
    server: &Server,
    clients: usize,
    seconds: u64,
    keys: usize,
    work: &Workload,
) -> Result<Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let server_pid = server.child.id().to_string();
    let (server_cpu0, client_cpu0) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let start = Instant::now();
    for c in 0..clients {
        let mut conn = connect(server.port).await?;
        let (stop, token) = (stop.clone(), server.token.clone());
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let k = i % keys;
                let t = Instant::now();
                let r = match &work {
                    Workload::Write => {
                        let body =
                            json!({"data": {"username": "app", "password": format!("pw-{i}")}});
                        call(
                            &mut conn,
                            "POST",
                            &format!("secret/data/bench/k{k}"),
                            &token,
                            Some(&body),
                        )
                        .await
                    }
                    Workload::Read => {
                        call(
                            &mut conn,
                            "GET",
                            &format!("secret/data/bench/k{k}"),
                            &token,
                            None,
                        )
                        .await
                    }
                    Workload::Login(path, body) => {
                        call(&mut conn, "POST", path, "", Some(body)).await
                    }
                    Workload::Lease => {
                        let body = json!({"ttl": "10m", "policies": ["default"]});
                        let path = "auth/token/create-orphan";
                        call(&mut conn, "POST", path, &token, Some(&body)).await
                    }
                };
                match r {
                    Ok((200, _)) => lat.push(t.elapsed().as_micros() as u32),
                    _ => errors += 1,
                }
                i += clients;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&server_pid) - server_cpu0;
    let client_cpu = cpu_seconds("self") - client_cpu0;
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as u64
    };
    Ok(Run {
        ops: all.len() as u64,
        errors,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        server_cpu,
        client_cpu,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    // One client thread: leave the other core to hushd as far as possible.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!(
            "| audit | op | clients | ops/s | p50 ms | p99 ms | errors | hushd CPU µs/op | hushd CPU % | bench CPU % |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for audit in &args.audit {
            let on = match audit.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("--audit takes on/off, not {other}"),
            };
            let server = start(&args, on).await?;
            for op in &args.ops {
                let work = match op.as_str() {
                    "write" => Workload::Write,
                    "read" => Workload::Read,
                    "login" => Workload::Login("auth/approle/login", approle_setup(&server).await?),
                    "login-k8s" => {
                        Workload::Login("auth/kubernetes/login", kubernetes_setup(&server).await?)
                    }
                    "lease" => Workload::Lease,
                    other => bail!("--ops takes read, write, login, login-k8s or lease, not {other}"),
                };
                for &clients in &args.clients {
                    let r = run(&server, clients, args.seconds, args.keys, &work).await?;
                    let per_op = r.server_cpu * 1e6 / (r.ops.max(1) as f64);
                    println!(
                        "| {audit} | {op} | {clients} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} |",
                        r.ops as f64 / r.secs,
                        r.p50_us as f64 / 1000.0,
                        r.p99_us as f64 / 1000.0,
                        r.errors,
                        per_op,
                        100.0 * r.server_cpu / r.secs,
                        100.0 * r.client_cpu / r.secs,
                    );
                }
            }
        }
        Ok(())
    })
}
