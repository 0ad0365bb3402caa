//! The `file` audit device's output: an append-only file (or stdout, or nothing) carrying the
//! hash chain of [`hush_api::audit`].
//!
//! # Group writes
//! Each device has one writer thread ([`DeviceWriter`]) that owns the output and the chain
//! head. Requests serialise their entry on their own task and queue it; the thread takes every
//! entry already queued (up to [`MAX_BATCH`]), gives each the next `seq` and the hash of the
//! line before it, and writes the whole batch with one `write_all`. Each caller is answered
//! only after that write returned, so a request never goes on with an entry that was not
//! handed to the file; concurrent requests share one system call instead of taking turns
//! through a lock and a thread hop each.
//!
//! The head only advances after a successful write. After a failed write every entry of the
//! batch is reported failed, the output is closed, and the next batch reopens it and re-reads
//! the chain from the file (a torn last line is cut off there). Lines of a failed batch that
//! did reach the file stay in it: the log then holds more than the requests that went on, never
//! less.
//!
//! Opening a file that already holds entries continues its chain from the last line, so a
//! restart keeps the chain intact. A torn last line (a crash or failed write in the middle of
//! an entry: bytes after the last newline) is cut off when the line before it is a chain
//! entry; a file whose content is not ours is refused. `reopen` closes the output for log
//! rotation (move the file away, then send SIGHUP); the next write opens it again.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use hush_api::audit::{line_hash, parse_link, CHAIN_FIELD, GENESIS};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

/// Most entries written in one system call.
pub(crate) const MAX_BATCH: usize = 1024;

/// Where a device writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkSpec {
    /// A file; `mode` is applied to it unless `None` (`mode=0000`).
    File {
        path: PathBuf,
        mode: Option<u32>,
    },
    Stdout,
    Discard,
}

/// Why a device could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("failed to open audit file {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "audit file {path:?} holds lines that are not hush audit entries; \
         choose a new file_path or move the old file away"
    )]
    NotOurs { path: PathBuf },
}

impl OpenError {
    fn into_io(self) -> io::Error {
        match self {
            OpenError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// Where the chain stands: the last written `seq` and the hash of that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub seq: u64,
    pub last_hash: String,
}

impl ChainHead {
    pub(crate) fn genesis() -> Self {
        ChainHead {
            seq: 0,
            last_hash: GENESIS.to_string(),
        }
    }
}

enum Output {
    File(File),
    Stdout,
    Discard,
}

/// Serialise an entry as a line body (no chain field, no newline) ready for
/// [`ChainWriter::write_batch`].
pub(crate) fn entry_bytes(mut entry: Map<String, Value>) -> io::Result<Vec<u8>> {
    entry.remove(CHAIN_FIELD);
    serde_json::to_vec(&entry).map_err(io::Error::other)
}

/// Append `,"hash_chain":{"seq":N,"prev":"..."}` inside the object `body` (a serialised JSON
/// object), giving the same bytes as serialising the entry with the field inserted last.
fn push_line(out: &mut Vec<u8>, body: &[u8], seq: u64, prev: &str) {
    let inner = body.strip_suffix(b"}").unwrap_or(body);
    out.extend_from_slice(inner);
    if inner.len() > 1 {
        out.push(b',');
    }
    // `prev` is `sha256:<hex>`: nothing in it needs escaping.
    out.extend_from_slice(
        format!("\"{CHAIN_FIELD}\":{{\"seq\":{seq},\"prev\":\"{prev}\"}}}}").as_bytes(),
    );
}

/// Append `bodies` as chained lines after `head`, each with its newline, and move `head`.
fn push_lines(buf: &mut Vec<u8>, head: &mut ChainHead, bodies: &[&[u8]]) {
    for body in bodies {
        let start = buf.len();
        push_line(buf, body, head.seq + 1, &head.last_hash);
        *head = ChainHead {
            seq: head.seq + 1,
            last_hash: line_hash(&buf[start..]),
        };
        buf.push(b'\n');
    }
}

/// The bytes a fresh device writes for `entries`: what `hush audit verify` reads. For the fuzz
/// targets (`fuzz/`), not an API.
#[doc(hidden)]
pub fn chained_lines(entries: Vec<Map<String, Value>>) -> io::Result<Vec<u8>> {
    let bodies = entries
        .into_iter()
        .map(entry_bytes)
        .collect::<io::Result<Vec<_>>>()?;
    let bodies: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    let mut buf = Vec::new();
    push_lines(&mut buf, &mut ChainHead::genesis(), &bodies);
    Ok(buf)
}

/// An output with its chain state. `out` is `None` until opened, and again after a failed
/// write or a reopen request. Used by one thread at a time (the device's writer thread).
pub(crate) struct ChainWriter {
    spec: SinkSpec,
    out: Option<Output>,
    head: ChainHead,
    /// Reused buffer for a batch's lines.
    buf: Vec<u8>,
}

impl ChainWriter {
    pub(crate) fn new(spec: SinkSpec) -> Self {
        ChainWriter {
            spec,
            out: None,
            head: ChainHead::genesis(),
            buf: Vec::new(),
        }
    }

    pub(crate) fn head(&self) -> &ChainHead {
        &self.head
    }

    /// Open the output now (if it is not open), reading the chain head from an existing file.
    pub(crate) fn ensure_open(&mut self) -> Result<(), OpenError> {
        if self.out.is_some() {
            return Ok(());
        }
        let (out, head) = match &self.spec {
            SinkSpec::File { path, mode } => {
                let (file, head) = open_file(path, *mode)?;
                (Output::File(file), head)
            }
            SinkSpec::Stdout => (Output::Stdout, ChainHead::genesis()),
            SinkSpec::Discard => (Output::Discard, ChainHead::genesis()),
        };
        self.out = Some(out);
        self.head = head;
        Ok(())
    }

    /// Close the output; the next write opens it again (log rotation).
    pub(crate) fn close(&mut self) {
        self.out = None;
    }

    /// Append one entry with the next chain link.
    #[cfg(test)]
    pub(crate) fn append(&mut self, entry: Map<String, Value>) -> io::Result<()> {
        let body = entry_bytes(entry)?;
        self.write_batch(&[body.as_slice()])
    }

    /// Append entries (each from [`entry_bytes`]) in order with the next chain links, in one
    /// write. All or nothing as far as the head goes: on failure the output is closed, the head
    /// stays, and the next write reopens the output and re-reads the head from the file.
    pub(crate) fn write_batch(&mut self, bodies: &[&[u8]]) -> io::Result<()> {
        self.ensure_open().map_err(OpenError::into_io)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut head = self.head.clone();
        push_lines(&mut buf, &mut head, bodies);
        let result = match self.out.as_mut() {
            Some(Output::File(file)) => file.write_all(&buf).and_then(|()| file.flush()),
            Some(Output::Stdout) => {
                let mut out = io::stdout().lock();
                out.write_all(&buf).and_then(|()| out.flush())
            }
            Some(Output::Discard) => Ok(()),
            None => Err(io::Error::other("audit output is not open")),
        };
        // Keep a moderate buffer for the next batch; drop a huge one.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        match result {
            Ok(()) => {
                self.head = head;
                Ok(())
            }
            Err(e) => {
                self.out = None;
                Err(e)
            }
        }
    }
}

/// Work for a device's writer thread.
enum Job {
    Append {
        body: Vec<u8>,
        reply: oneshot::Sender<io::Result<()>>,
    },
    Open {
        reply: oneshot::Sender<Result<(), OpenError>>,
    },
    Close,
}

/// The handle to a device's writer thread (see the module docs). The thread ends when the
/// handle is dropped, after the jobs already queued.
pub(crate) struct DeviceWriter {
    tx: mpsc::Sender<Job>,
    /// Copy of the thread's chain head, for `sys/audit`, which must not wait.
    head: Arc<parking_lot::Mutex<ChainHead>>,
}

impl DeviceWriter {
    /// Start the writer thread for `spec`. The output is opened by [`DeviceWriter::open`] or
    /// the first write.
    pub(crate) fn start(spec: SinkSpec, name: &str) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let head = Arc::new(parking_lot::Mutex::new(ChainHead::genesis()));
        let shared = head.clone();
        std::thread::Builder::new()
            .name(format!("hush-audit-{}", name.trim_end_matches('/')))
            .spawn(move || writer_loop(ChainWriter::new(spec), &rx, &shared))?;
        Ok(DeviceWriter { tx, head })
    }

    pub(crate) fn head(&self) -> ChainHead {
        self.head.lock().clone()
    }

    /// Open the output now, reading the chain head from an existing file.
    pub(crate) async fn open(&self) -> Result<(), OpenError> {
        let (reply, rx) = oneshot::channel();
        let gone = || OpenError::Io {
            path: PathBuf::new(),
            source: io::Error::other("the audit writer thread stopped"),
        };
        self.tx.send(Job::Open { reply }).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Append one entry; returns once it was written (or failed).
    #[cfg(test)]
    pub(crate) async fn append(&self, entry: Map<String, Value>) -> io::Result<()> {
        self.append_many(vec![entry]).await
    }

    /// Append `entries` in order, as one run of lines when the thread takes them together;
    /// returns once all were written, or the first failure.
    pub(crate) async fn append_many(&self, entries: Vec<Map<String, Value>>) -> io::Result<()> {
        let gone = || io::Error::other("the audit writer thread stopped");
        let mut replies = Vec::with_capacity(entries.len());
        for entry in entries {
            let body = entry_bytes(entry)?;
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Job::Append { body, reply })
                .map_err(|_| gone())?;
            replies.push(rx);
        }
        for rx in replies {
            rx.await.map_err(|_| gone())??;
        }
        Ok(())
    }

    /// Close the output; the next write reopens it.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Job::Close);
    }
}

fn writer_loop(mut w: ChainWriter, rx: &mpsc::Receiver<Job>, head: &parking_lot::Mutex<ChainHead>) {
    let mut appends: Vec<(Vec<u8>, oneshot::Sender<io::Result<()>>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append { body, reply } => {
                    appends.push((body, reply));
                    if appends.len() >= MAX_BATCH {
                        flush(&mut w, &mut appends, head);
                    }
                }
                // Keep order: write what came before, then open or close.
                Job::Open { reply } => {
                    flush(&mut w, &mut appends, head);
                    let opened = w.ensure_open();
                    *head.lock() = w.head().clone();
                    let _ = reply.send(opened);
                }
                Job::Close => {
                    flush(&mut w, &mut appends, head);
                    w.close();
                }
            }
            next = rx.try_recv().ok();
        }
        flush(&mut w, &mut appends, head);
    }
}

/// Write the queued entries as one batch, publish the head, and answer each caller.
fn flush(
    w: &mut ChainWriter,
    appends: &mut Vec<(Vec<u8>, oneshot::Sender<io::Result<()>>)>,
    head: &parking_lot::Mutex<ChainHead>,
) {
    if appends.is_empty() {
        return;
    }
    let bodies: Vec<&[u8]> = appends.iter().map(|(b, _)| b.as_slice()).collect();
    let result = w.write_batch(&bodies);
    *head.lock() = w.head().clone();
    for (_, reply) in appends.drain(..) {
        let r = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        let _ = reply.send(r);
    }
}

/// Open (creating with `mode`, default 0600) for appending, apply `mode`, and find the chain
/// head from the file's last line.
fn open_file(path: &Path, mode: Option<u32>) -> Result<(File, ChainHead), OpenError> {
    let io_err = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode.unwrap_or(0o600))
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        // A device or a pipe (/dev/stdout, a FIFO): nothing to read back.
        return Ok((file, ChainHead::genesis()));
    }
    if let Some(mode) = mode {
        if meta.permissions().mode() & 0o7777 != mode {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io_err)?;
        }
    }
    let head = read_head(&file, meta.len(), path).map_err(|e| match e {
        HeadError::Io(source) => io_err(source),
        HeadError::NotOurs => OpenError::NotOurs {
            path: path.to_path_buf(),
        },
    })?;
    Ok((file, head))
}

enum HeadError {
    Io(io::Error),
    NotOurs,
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

/// Our entries start like this (`time` is always the first field).
const ENTRY_START: &[u8] = b"{\"time\":\"";

/// The chain head of an existing file; cuts a torn last line.
fn read_head(file: &File, len: u64, path: &Path) -> Result<ChainHead, HeadError> {
    if len == 0 {
        return Ok(ChainHead::genesis());
    }
    // End of the complete lines: just after the last newline.
    let complete = rfind_newline(file, len)?.map_or(0, |nl| nl + 1);
    let last_line = if complete == 0 {
        None
    } else {
        let start = rfind_newline(file, complete - 1)?.map_or(0, |nl| nl + 1);
        let mut line = vec![0u8; (complete - 1 - start) as usize];
        file.read_exact_at(&mut line, start)?;
        Some(line)
    };
    let head = match &last_line {
        Some(line) => {
            let link = parse_link(line).map_err(|_| HeadError::NotOurs)?;
            ChainHead {
                seq: link.seq,
                last_hash: line_hash(line),
            }
        }
        None => ChainHead::genesis(),
    };
    if complete < len {
        if last_line.is_none() {
            let mut start = vec![0u8; ENTRY_START.len().min((len - complete) as usize)];
            file.read_exact_at(&mut start, complete)?;
            if !ENTRY_START.starts_with(&start) {
                return Err(HeadError::NotOurs);
            }
        }
        tracing::warn!(
            file = %path.display(),
            bytes = len - complete,
            "audit file ends in an incomplete entry (a crash or failed write); cutting it off"
        );
        file.set_len(complete)?;
    }
    Ok(head)
}

/// Position of the last `\n` in `file[..before]`, reading backwards in blocks.
fn rfind_newline(file: &File, before: u64) -> io::Result<Option<u64>> {
    const BLOCK: u64 = 64 * 1024;
    let mut end = before;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_api::audit::verify;
    use serde_json::json;

    fn entry(n: u64) -> Map<String, Value> {
        let v = json!({"time": format!("t{n}"), "type": "request"});
        v.as_object().unwrap().clone()
    }

    fn spec(path: &Path) -> SinkSpec {
        SinkSpec::File {
            path: path.to_path_buf(),
            mode: Some(0o600),
        }
    }

    #[test]
    fn appends_a_verifiable_chain_and_creates_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        for n in 0..3 {
            w.append(entry(n)).unwrap();
        }
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 3);
        assert_eq!(w.head().seq, 3);
        assert_eq!(w.head().last_hash, summary.last_hash);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn spliced_chain_field_is_what_serde_writes() {
        let mut e = entry(7);
        e.insert("nested".into(), json!({"a": [1, "x\"y"]}));
        let mut line = Vec::new();
        push_line(&mut line, &entry_bytes(e.clone()).unwrap(), 3, GENESIS);
        e.insert(CHAIN_FIELD.into(), json!({"seq": 3, "prev": GENESIS}));
        assert_eq!(line, serde_json::to_vec(&e).unwrap());
        let mut empty = Vec::new();
        push_line(&mut empty, b"{}", 1, GENESIS);
        assert_eq!(parse_link(&empty).unwrap().seq, 1);
    }

    #[test]
    fn a_batch_is_one_verifiable_run_of_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(0)).unwrap();
        let bodies: Vec<Vec<u8>> = (1..=5).map(|n| entry_bytes(entry(n)).unwrap()).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        w.write_batch(&refs).unwrap();
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 6);
        assert_eq!(w.head().seq, 6);
        assert_eq!(w.head().last_hash, summary.last_hash);
        // A failed batch leaves the head where it was.
        let mut full = ChainWriter::new(spec(Path::new("/dev/full")));
        assert!(full.write_batch(&refs).is_err());
        assert_eq!(full.head().seq, 0);
    }

    #[tokio::test]
    async fn concurrent_appends_through_the_thread_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let w = Arc::new(DeviceWriter::start(spec(&path), "test/").unwrap());
        w.open().await.unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let w = w.clone();
                tokio::spawn(async move { w.append(entry(n)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 200);
        assert_eq!(w.head().seq, 200);
        assert_eq!(w.head().last_hash, summary.last_hash);
        // Writes to a full device fail, and each caller hears so.
        let full = DeviceWriter::start(spec(Path::new("/dev/full")), "full/").unwrap();
        assert!(full.append(entry(1)).await.is_err());
        assert_eq!(full.head().seq, 0);
    }

    #[test]
    fn reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).unwrap();
        w.append(entry(2)).unwrap();
        drop(w);
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().unwrap();
        assert_eq!(w.head().seq, 2);
        w.append(entry(3)).unwrap();
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 3);
    }

    #[test]
    fn torn_last_line_is_cut_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\":\"2025-01-01T00:0").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(2)).unwrap();
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 2);
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        assert!(matches!(w.ensure_open(), Err(OpenError::NotOurs { .. })));
        // A file with one unterminated foreign line is not cut either.
        std::fs::write(&path, "hello").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        assert!(matches!(w.ensure_open(), Err(OpenError::NotOurs { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }

    #[test]
    fn long_last_line_is_found_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).unwrap();
        let mut big = entry(2);
        big.insert("pad".into(), "x".repeat(200_000).into());
        w.append(big).unwrap();
        let head = w.head().clone();
        drop(w);
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().unwrap();
        assert_eq!(w.head(), &head);
    }

    #[test]
    fn unopenable_path_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/audit.log");
        let mut w = ChainWriter::new(spec(&path));
        let err = w.ensure_open().unwrap_err().to_string();
        assert!(err.contains("missing-dir/audit.log"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn write_failure_is_reported_and_does_not_advance() {
        let mut w = ChainWriter::new(spec(Path::new("/dev/full")));
        assert!(w.append(entry(1)).is_err());
        assert_eq!(w.head().seq, 0);
    }

    #[test]
    fn existing_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
