//! hush-bench: start a real hushd (SQLite, durable; or PostgreSQL, a cluster started here with
//! fsync on) through the test harness and drive KV v2 reads and writes over loopback HTTP with
//! 1..N keep-alive clients (the harness's lean hyper client, `hush_tests::load`), with the file
//! audit device on and off.
//! Prints a Markdown table for docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use hush_tests::load::{call, connect};
use hush_tests::{bin_or, http_client, Hushd};
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
    /// Storage backends to run: sqlite (a temp file), postgres (a local cluster started by
    /// the test harness, fsync on, reached over loopback TCP), or both.
    #[arg(long, default_value = "sqlite", value_delimiter = ',')]
    storage: Vec<String>,
}

/// hushd on SQLite in `_dir` or on `_pg`, initialised, unsealed, kv v2 at `secret/` seeded.
struct Server {
    hushd: Hushd,
    token: String,
    port: u16,
    // Declared after hushd: stopped (removed) after hushd is killed.
    _pg: Option<hush_tests::pg::Postgres>,
    _dir: tempfile::TempDir,
}

/// As root: `method path` with `body`; fail unless 200 or 204.
async fn setup_call(hushd: &Hushd, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let (s, b) = hushd.call(method, path, body).await;
    if s != 204 && s != 200 {
        bail!("{path} failed: {s} {b}");
    }
    Ok(b)
}

async fn start(args: &Args, storage: &str, audit: bool) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let (storage, pg) = match storage {
        "sqlite" => (format!("sqlite://{}/hush.db", dir.path().display()), None),
        "postgres" => {
            let pg = hush_tests::pg::Postgres::start_durable().await;
            (pg.storage_url("hush", "sslmode=disable").await, Some(pg))
        }
        other => bail!("--storage takes sqlite or postgres, not {other}"),
    };
    let program = bin_or(args.hushd.as_deref(), "hushd")?;
    let hushd_args = [
        "--storage",
        &storage,
        "--insecure-no-tls",
        "--log-level",
        "warn",
    ];
    let mut hushd = Hushd::start_bin(&program, &hushd_args, "http", http_client()).await;
    hushd.init_unseal().await;
    setup_call(
        &hushd,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv-v2"})),
    )
    .await?;
    if audit {
        let path = dir.path().join("audit.log");
        let body = json!({"type": "file", "options": {"file_path": path}});
        setup_call(&hushd, "PUT", "sys/audit/file", Some(body)).await?;
    }
    for i in 0..args.keys {
        let data = json!({"username": "app", "password": format!("pw-{i}-xxxxxxxxxxxxxxxx")});
        hushd.kv_put(&format!("bench/k{i}"), data).await;
    }
    Ok(Server {
        token: hushd.token.clone().unwrap_or_default(),
        port: hushd.port,
        hushd,
        _pg: pg,
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
    let h = &server.hushd;
    setup_call(
        h,
        "POST",
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await?;
    let role = json!({"token_policies": ["default"], "token_ttl": "10m"});
    setup_call(h, "POST", "auth/approle/role/bench", Some(role)).await?;
    let (role_id, secret_id) = h.approle_credentials("approle", "bench").await;
    Ok(json!({"role_id": role_id, "secret_id": secret_id}))
}

/// Enable kubernetes in local mode (a P-256 key made here, no API server) with a role for
/// `default/bench`; the login body with a projected-style token signed by that key.
async fn kubernetes_setup(server: &Server) -> Result<Value> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let h = &server.hushd;
    setup_call(
        h,
        "POST",
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    )
    .await?;
    let config = json!({"pem_keys": [key.public_key_pem()], "issuer": issuer});
    setup_call(h, "POST", "auth/kubernetes/config", Some(config)).await?;
    setup_call(
        h,
        "POST",
        "auth/kubernetes/role/bench",
        Some(json!({
            "bound_service_account_names": ["bench"],
            "bound_service_account_namespaces": ["default"],
            "audience": "vault",
            "token_policies": ["default"],
            "token_ttl": "10m",
        })),
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
    let server_pid = server.hushd.child.id().to_string();
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
            "| storage | audit | op | clients | ops/s | p50 ms | p99 ms | errors | hushd CPU µs/op | hushd CPU % | bench CPU % |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (storage, audit) in args
            .storage
            .iter()
            .flat_map(|s| args.audit.iter().map(move |a| (s, a)))
        {
            let on = match audit.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("--audit takes on/off, not {other}"),
            };
            let server = start(&args, storage, on).await?;
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
                        "| {storage} | {audit} | {op} | {clients} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} |",
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
