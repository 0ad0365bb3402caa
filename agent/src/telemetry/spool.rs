//! The report spool: access events waiting to be shipped to hushd (`sys/agents/report`).
//!
//! Bounded: up to `memory` events in memory, then (optionally) a file on the agent's tmpfs up
//! to a byte bound, then nothing more: each event that finds no room is counted
//! ([`Spool::dropped_total`], `hush_report_dropped_total`, and every report's
//! `dropped_total`), never silently lost. Order is kept: memory holds the oldest events, the
//! file the newer ones, and [`Spool::take`] refills memory from the file.
//!
//! It lives this low so the FUSE access log's writer thread can fill it (one lock per batch of
//! events, off the open path); the shipper above the keeper empties it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hush_api::wire::agents::Access;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// Default bound of the spool file (it is memory too, on a tmpfs).
pub const DEFAULT_FILE_BYTES: u64 = 32 << 20;

/// Events waiting: memory first (oldest), then the file.
#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    memory: usize,
    /// Told when a full batch is waiting (the shipper need not wait for its interval).
    full_batch: Notify,
    batch: usize,
    gauge: Gauge,
    dropped_metric: Counter,
}

#[derive(Debug, Default)]
struct Inner {
    mem: VecDeque<Access>,
    file: Option<FileQueue>,
    dropped: u64,
    /// A file error was logged (once, until it works again).
    file_failed: bool,
}

/// Lines of JSON appended at `write_at`, read from `read_at`; emptied (truncated) once read.
#[derive(Debug)]
struct FileQueue {
    path: PathBuf,
    file: File,
    read_at: u64,
    write_at: u64,
    count: usize,
    max_bytes: u64,
}

impl FileQueue {
    fn open(path: &Path, max_bytes: u64) -> io::Result<FileQueue> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Ok(FileQueue {
            path: path.to_owned(),
            file,
            read_at: 0,
            write_at: 0,
            count: 0,
            max_bytes,
        })
    }

    /// Appends the event; `Ok(false)` when the file has no room for it.
    fn push(&mut self, event: &Access) -> io::Result<bool> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.write_at + line.len() as u64 > self.max_bytes {
            if self.read_at == 0
                || self.write_at - self.read_at + line.len() as u64 > self.max_bytes
            {
                return Ok(false);
            }
            self.compact()?;
        }
        self.file.seek(SeekFrom::Start(self.write_at))?;
        self.file.write_all(&line)?;
        self.write_at += line.len() as u64;
        self.count += 1;
        Ok(true)
    }

    /// Moves the unread lines to the file's start.
    fn compact(&mut self) -> io::Result<()> {
        use std::io::Read;
        let mut rest = Vec::with_capacity((self.write_at - self.read_at) as usize);
        self.file.seek(SeekFrom::Start(self.read_at))?;
        (&self.file)
            .take(self.write_at - self.read_at)
            .read_to_end(&mut rest)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&rest)?;
        self.file.set_len(rest.len() as u64)?;
        (self.read_at, self.write_at) = (0, rest.len() as u64);
        Ok(())
    }

    /// Up to `n` events, oldest first.
    fn pop(&mut self, n: usize, into: &mut VecDeque<Access>) -> io::Result<()> {
        if n == 0 || self.count == 0 {
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(self.read_at))?;
        let mut reader = BufReader::new(&self.file);
        let mut line = String::new();
        let mut taken = 0;
        while taken < n && self.count > 0 {
            line.clear();
            let read = reader.read_line(&mut line)?;
            if read == 0 {
                break;
            }
            self.read_at += read as u64;
            self.count -= 1;
            taken += 1;
            // Lines are our own; one that does not parse is skipped.
            if let Ok(event) = serde_json::from_str::<Access>(&line) {
                into.push_back(event);
            }
        }
        if self.count == 0 || self.read_at >= self.write_at {
            self.file.set_len(0)?;
            (self.read_at, self.write_at, self.count) = (0, 0, 0);
        }
        Ok(())
    }
}

impl Spool {
    /// `memory` events in memory (at least 1); `file`: a path (created, emptied, mode 0600)
    /// and its byte bound. `batch`: how many events make a full batch.
    pub fn new(
        memory: usize,
        file: Option<(&Path, u64)>,
        batch: usize,
        (gauge, dropped_metric): (Gauge, Counter),
    ) -> io::Result<Spool> {
        let file = file.map(|(p, max)| FileQueue::open(p, max)).transpose()?;
        Ok(Spool {
            inner: Mutex::new(Inner {
                file,
                ..Inner::default()
            }),
            memory: memory.max(1),
            full_batch: Notify::new(),
            batch: batch.max(1),
            gauge,
            dropped_metric,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends events (oldest first); those without room are counted as dropped.
    pub fn push(&self, events: impl IntoIterator<Item = Access>) {
        let mut inner = self.lock();
        let mut dropped = 0u64;
        for event in events {
            let spilled = inner.file.as_ref().is_some_and(|f| f.count > 0);
            if !spilled && inner.mem.len() < self.memory {
                inner.mem.push_back(event);
                continue;
            }
            let pushed = match inner.file.as_mut() {
                None => Ok(false),
                Some(f) => f.push(&event),
            };
            match pushed {
                Ok(true) => inner.file_failed = false,
                Ok(false) => dropped += 1,
                Err(e) => {
                    if !inner.file_failed {
                        let path = inner.file.as_ref().map(|f| f.path.display().to_string());
                        tracing::warn!(error = %e, file = ?path, "cannot write the report spool file; counting events as dropped");
                        inner.file_failed = true;
                    }
                    dropped += 1;
                }
            }
        }
        inner.dropped += dropped;
        self.dropped_metric.inc_by(dropped);
        let len = Self::len_of(&inner);
        self.gauge.set(len as i64);
        drop(inner);
        if len >= self.batch {
            self.full_batch.notify_one();
        }
    }

    fn len_of(inner: &Inner) -> usize {
        inner.mem.len() + inner.file.as_ref().map_or(0, |f| f.count)
    }

    /// Takes up to `max` events, oldest first (memory is refilled from the file).
    pub fn take(&self, max: usize) -> Vec<Access> {
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(max.min(Self::len_of(&inner)));
        while out.len() < max {
            if inner.mem.is_empty() {
                let room = self.memory;
                let Inner { mem, file, .. } = &mut *inner;
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.pop(room, mem) {
                        tracing::warn!(error = %e, "cannot read the report spool file; its events are counted as dropped");
                        let lost = f.count as u64;
                        (f.read_at, f.write_at, f.count) = (0, 0, 0);
                        let _ = f.file.set_len(0);
                        inner.dropped += lost;
                        self.dropped_metric.inc_by(lost);
                    }
                }
            }
            match inner.mem.pop_front() {
                Some(e) => out.push(e),
                None => break,
            }
        }
        // Keep memory full from the file, so newer events keep going to the file's end.
        let room = self.memory.saturating_sub(inner.mem.len());
        let Inner { mem, file, .. } = &mut *inner;
        if let Some(f) = file.as_mut() {
            let _ = f.pop(room, mem);
        }
        self.gauge.set(Self::len_of(&inner) as i64);
        out
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        Self::len_of(&self.lock())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events lost elsewhere (a batch hushd refused for good) join the dropped count.
    pub fn count_lost(&self, n: u64) {
        self.lock().dropped += n;
        self.dropped_metric.inc_by(n);
    }

    /// Events lost to a full spool since the agent started.
    pub fn dropped_total(&self) -> u64 {
        self.lock().dropped
    }

    /// Wait until a full batch is waiting.
    pub async fn full_batch(&self) {
        self.full_batch.notified().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An allowed open of `db.password` by `pid`.
    pub(crate) fn ev(pid: u32) -> Access {
        Access {
            file: "db.password".into(),
            paths: vec!["secret/data/app/db".into()].into(),
            pid,
            result: "allowed".into(),
            ..Access::default()
        }
    }

    fn pids(events: &[Access]) -> Vec<u32> {
        events.iter().map(|e| e.pid).collect()
    }

    fn handles() -> (Gauge, Counter) {
        (Gauge::default(), Counter::default())
    }

    #[test]
    fn memory_bound_counts_overflow_and_keeps_order() {
        let (gauge, dropped) = handles();
        let spool = Spool::new(3, None, 1000, (gauge.clone(), dropped.clone())).unwrap();
        spool.push((1..=5).map(ev));
        assert_eq!(spool.len(), 3);
        assert_eq!(spool.dropped_total(), 2);
        assert_eq!((gauge.get(), dropped.get()), (3, 2));
        assert_eq!(pids(&spool.take(2)), [1, 2]);
        spool.push([ev(6)]);
        assert_eq!(pids(&spool.take(10)), [3, 6]);
        assert!(spool.is_empty());
        assert_eq!(gauge.get(), 0);
        assert_eq!(spool.dropped_total(), 2, "a running total");
    }

    #[test]
    fn file_takes_what_memory_cannot_hold_in_order_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.jsonl");
        let line = serde_json::to_vec(&ev(10)).unwrap().len() as u64 + 1;
        // Room in the file for 4 events of this size.
        let spool = Spool::new(2, Some((&path, line * 4)), 1000, handles()).unwrap();
        spool.push((10..=17).map(ev));
        assert_eq!(spool.len(), 6, "2 in memory, 4 in the file");
        assert_eq!(spool.dropped_total(), 2);
        assert!(std::fs::metadata(&path).unwrap().len() <= line * 4);
        assert_eq!(pids(&spool.take(3)), [10, 11, 12]);
        // Newer events go behind the ones still in the file.
        spool.push([ev(18)]);
        assert_eq!(pids(&spool.take(100)), [13, 14, 15, 18]);
        assert!(spool.is_empty());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "emptied file truncated"
        );
        // And it is used again.
        spool.push((20..=24).map(ev));
        assert_eq!(pids(&spool.take(100)), [20, 21, 22, 23, 24]);
        assert_eq!(spool.dropped_total(), 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn a_full_batch_wakes_the_shipper() {
        let spool = std::sync::Arc::new(Spool::new(100, None, 3, handles()).unwrap());
        let waiter = {
            let s = spool.clone();
            tokio::spawn(async move { s.full_batch().await })
        };
        tokio::task::yield_now().await;
        spool.push((1..=3).map(ev));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
