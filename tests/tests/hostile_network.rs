//! A network that misbehaves between hush-agent and hushd (the harness's TCP proxy,
//! `hush_tests::proxy`): 2 s of latency on every reply, 30 % of connections and chunks dropped,
//! requests accepted and never answered, replies cut in half then stalled or closed. For each,
//! with the files sink and with the FUSE sink: the agent keeps running and keeps the last good
//! files, a FUSE reader's open+read completes in under a second while the store stalls, and a
//! change made while the network misbehaves arrives (under latency and loss) or arrives once it
//! heals (the recovery time is printed for docs/TESTING.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_tests::proxy::{Mode, Proxy};
use hush_tests::{wait_for, write_token, Agent, Hushd, Tmpfs, UnmountOnDrop};
use serde_json::json;

/// The agent's request timeout in these tests: above the 2 s latency, short enough to retry
/// within the test's budget.
const REQUEST_TIMEOUT: &str = "4s";

fn config(dir: &Path, addr: &str, dest: &Path, fuse: bool) -> PathBuf {
    let token = write_token(dir, "root");
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
addr = "{addr}"
token_file = "{token}"
request_timeout = "{REQUEST_TIMEOUT}"

[agent]
refresh_interval = "200ms"
backoff_max = "1s"

[destination]
path = "{dest}"
{fuse}

[secrets]
app = "secret/data/app"

[[file]]
name = "password"
secret = "app"
field = "password"
mode = "0444"
"#,
            token = token.display(),
            dest = dest.display(),
            fuse = if fuse { "fuse = true" } else { "" },
        ),
    )
    .unwrap();
    path
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

/// Readers opening and reading `file` in a loop on their own thread; the slowest open+read.
struct Readers {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, usize, usize)>,
}

impl Readers {
    fn start(file: PathBuf) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut slowest, mut reads, mut empty) = (Duration::ZERO, 0, 0);
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let got = std::fs::read_to_string(&file);
                slowest = slowest.max(t.elapsed());
                reads += 1;
                if got.map_or(true, |s| s.is_empty()) {
                    empty += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (slowest, reads, empty)
        });
        Readers { stop, thread }
    }

    /// (slowest open+read, reads, reads that failed or were empty).
    fn finish(self) -> (Duration, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// One fault after another: during each, the files keep their last good content and readers
/// are never held up; each change reaches the files (during the fault when the fault lets
/// requests through eventually, else after the network heals).
async fn ride_out_every_fault(
    h: &Hushd,
    proxy: &Proxy,
    agent: &mut Agent,
    file: &Path,
    sink: &str,
) {
    let faults: [(Mode, bool); 5] = [
        (Mode::Latency(Duration::from_secs(2)), true),
        (Mode::Drop(30), true),
        (Mode::Blackhole, false),
        (Mode::HalfThenStall, false),
        (Mode::HalfThenClose, false),
    ];
    let mut version = 1;
    for (mode, gets_through) in faults {
        let before = read(file);
        assert_eq!(before, format!("pw-{version}"));
        proxy.set(mode);
        let readers = Readers::start(file.to_path_buf());
        version += 1;
        h.kv_put("app", json!({"password": format!("pw-{version}")}))
            .await;
        let want = format!("pw-{version}");
        let t = Instant::now();
        if gets_through {
            wait_for(
                Duration::from_secs(30),
                &format!("{sink}: the change through {mode:?}"),
                || read(file) == want,
            )
            .await;
            println!(
                "hostile_network {sink}: {mode:?}: the change arrived in {:?} through the fault",
                t.elapsed()
            );
        } else {
            // Long enough for requests to time out (4 s) and be retried with backoff.
            while t.elapsed() < Duration::from_secs(6) {
                assert_eq!(read(file), before, "{sink}: {mode:?} changed the files");
                assert!(agent.running(), "agent exited: {}", agent.stderr());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            proxy.set(Mode::Pass);
            let healed = Instant::now();
            wait_for(
                Duration::from_secs(30),
                &format!("{sink}: the change after {mode:?} healed"),
                || read(file) == want,
            )
            .await;
            println!(
                "hostile_network {sink}: {mode:?}: files kept for {:?}; the change arrived {:?} \
                 after the network healed",
                healed - t,
                healed.elapsed()
            );
        }
        proxy.set(Mode::Pass);
        let (slowest, reads, empty) = readers.finish();
        println!("hostile_network {sink}: {mode:?}: {reads} reads, slowest open+read {slowest:?}");
        assert_eq!(
            empty, 0,
            "{sink}: {mode:?}: a reader found no file or an empty one"
        );
        assert!(
            slowest < Duration::from_secs(1),
            "{sink}: {mode:?}: a reader waited {slowest:?}"
        );
        assert!(agent.running(), "agent exited: {}", agent.stderr());
    }
}

async fn seeded() -> (Hushd, Proxy) {
    let h = Hushd::dev().await;
    h.kv_put("app", json!({"password": "pw-1"})).await;
    let proxy = Proxy::start(h.port).await;
    (h, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sink_rides_out_a_hostile_network() {
    let (h, proxy) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let cfg = config(dir.path(), &proxy.addr(), &tmpfs.path, false);
    let mut agent =
        Agent::spawn(&["--config", cfg.to_str().unwrap()]).stop_on_drop(Duration::from_secs(5));
    let file = tmpfs.path.join("password");
    wait_for(Duration::from_secs(20), "the files", || {
        read(&file) == "pw-1"
    })
    .await;
    ride_out_every_fault(&h, &proxy, &mut agent, &file, "files").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuse_sink_never_blocks_readers_on_a_hostile_network() {
    let (h, proxy) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _unmount = UnmountOnDrop(mnt.clone());
    let cfg = config(dir.path(), &proxy.addr(), &mnt, true);
    let mut agent =
        Agent::spawn(&["--config", cfg.to_str().unwrap()]).stop_on_drop(Duration::from_secs(5));
    let file = mnt.join("password");
    wait_for(Duration::from_secs(20), "the FUSE files", || {
        assert!(agent.running(), "agent exited: {}", agent.stderr());
        read(&file) == "pw-1"
    })
    .await;
    ride_out_every_fault(&h, &proxy, &mut agent, &file, "fuse").await;
}
