//! hush-bench-injector: latency of hush-injector's `POST /mutate` over HTTPS keep-alive.
//!
//! Starts the real hush-injector (the test harness's [`Injector`]: a CA made here, the
//! webhook's certificate signed by it), then on one keep-alive HTTP/1.1 connection each,
//! one request at a time:
//!
//! - **patched**: a recorded AdmissionReview that gets the agent (`--fixture`, default a
//!   Deployment's pod with secrets and a template), answered with a patch;
//! - **unchanged**: a pod without the annotation over the same TLS path (transport, JSON
//!   decoding of the pod, answer; no patch built);
//! - **floor**: `GET /healthz` on the plain-HTTP metrics listener of the same process (the
//!   cost of an HTTP round trip through the same server and client, without TLS or work).
//!
//! Every answer is checked (status 200; the patched ones carry a patch). Prints Markdown for
//! `docs/BENCHMARKS.md` on stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use hush_tests::injector::Injector;
use hush_tests::load::{self, machine, percentile, Conn};

/// Benchmark hush-injector's /mutate over HTTPS keep-alive.
#[derive(Debug, Parser)]
#[command(name = "hush-bench-injector", version, max_term_width = 100)]
struct Args {
    /// Timed requests per series.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Untimed requests before each series.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// The patched series' review: a file name under injector/tests/fixtures/reviews.
    #[arg(long, default_value = "allow-deployment-pod.json")]
    fixture: String,
    /// The unchanged series' review.
    #[arg(long, default_value = "skip-no-annotation.json")]
    unchanged_fixture: String,
    /// hush-injector binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    injector: Option<PathBuf>,
}

/// Latencies of one series, in microseconds.
struct Series {
    name: &'static str,
    what: String,
    micros: Vec<f64>,
}

fn fixture(name: &str) -> Result<Vec<u8>> {
    let path = hush_tests::injector::review_fixtures()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|f| f == name))
        .with_context(|| format!("no fixture {name}"))?;
    Ok(std::fs::read(path)?)
}

fn mutate_request(body: &[u8]) -> Result<hyper::Request<http_body_util::Full<hyper::body::Bytes>>> {
    Ok(hyper::Request::post("/mutate")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(
            hyper::body::Bytes::copy_from_slice(body),
        ))?)
}

fn healthz_request() -> Result<hyper::Request<http_body_util::Full<hyper::body::Bytes>>> {
    Ok(hyper::Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(http_body_util::Full::default())?)
}

/// `warmup` then `n` timed requests made by `make`, each answer checked by `check`.
async fn run(
    conn: &mut Conn,
    n: usize,
    warmup: usize,
    make: &dyn Fn() -> Result<hyper::Request<http_body_util::Full<hyper::body::Bytes>>>,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<Vec<f64>> {
    let mut micros = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let req = make()?;
        let start = Instant::now();
        let (status, body) = load::send(conn, req).await?;
        let took = start.elapsed();
        if status != 200 || !check(&body) {
            bail!(
                "request {i}: status {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if i >= warmup {
            micros.push(took.as_secs_f64() * 1e6);
        }
    }
    Ok(micros)
}

async fn bench(args: &Args) -> Result<Vec<Series>> {
    let injector = Injector::start_bin(args.injector.as_deref(), &[]).await?;
    let patched = fixture(&args.fixture)?;
    let unchanged = fixture(&args.unchanged_fixture)?;
    let has_patch = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .is_ok_and(|v| v["response"]["patch"].is_string())
    };
    let no_patch = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .is_ok_and(|v| v["response"]["allowed"] == true && v["response"].get("patch").is_none())
    };

    let mut tls = load::connect_tls(injector.port, &injector.ca_pem).await?;
    let patched_us = run(
        &mut tls,
        args.requests,
        args.warmup,
        &|| mutate_request(&patched),
        &has_patch,
    )
    .await?;
    let unchanged_us = run(
        &mut tls,
        args.requests,
        args.warmup,
        &|| mutate_request(&unchanged),
        &no_patch,
    )
    .await?;
    let mut plain = load::connect(injector.metrics_port).await?;
    let floor_us = run(
        &mut plain,
        args.requests,
        args.warmup,
        &healthz_request,
        &|b: &[u8]| b == b"ok\n",
    )
    .await?;

    // The metrics agree: every review was answered and counted.
    let (_, _, text) = injector.metrics_get("/metrics").await;
    let want = format!(
        "hush_injector_reviews_total{{outcome=\"patched\"}} {}",
        args.requests + args.warmup
    );
    ensure!(text.contains(&want), "metrics do not show {want}:\n{text}");
    let series = vec![
        Series {
            name: "patched",
            what: format!(
                "POST /mutate, {} ({} bytes), HTTPS",
                args.fixture,
                patched.len()
            ),
            micros: patched_us,
        },
        Series {
            name: "unchanged",
            what: format!(
                "POST /mutate, {} ({} bytes), HTTPS",
                args.unchanged_fixture,
                unchanged.len()
            ),
            micros: unchanged_us,
        },
        Series {
            name: "floor",
            what: "GET /healthz, plain HTTP, same process".into(),
            micros: floor_us,
        },
    ];
    Ok(series)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let series = rt.block_on(bench(&args))?;
    println!("Machine: {}.", machine());
    println!(
        "{} timed requests per series after {} untimed, one at a time on one keep-alive \
         HTTP/1.1 connection.\n",
        args.requests, args.warmup
    );
    println!("| series | request | p50 ms | p99 ms | max ms | mean ms |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for s in &series {
        let mean = s.micros.iter().sum::<f64>() / s.micros.len() as f64;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.name,
            s.what,
            percentile(&s.micros, 0.5) / 1000.0,
            percentile(&s.micros, 0.99) / 1000.0,
            percentile(&s.micros, 1.0) / 1000.0,
            mean / 1000.0
        );
    }
    let p99 = |i: usize| percentile(&series[i].micros, 0.99);
    let p50 = |i: usize| percentile(&series[i].micros, 0.5);
    println!(
        "\nRatio patched / floor: p50 {:.1}×, p99 {:.1}×; patched / unchanged: p50 {:.1}×, p99 {:.1}×. \
         Target: patched p99 < 5 ms: {}.",
        p50(0) / p50(2),
        p99(0) / p99(2),
        p50(0) / p50(1),
        p99(0) / p99(1),
        if p99(0) < 5000.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
