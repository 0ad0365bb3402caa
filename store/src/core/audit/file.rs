//! The `file` audit device's output: an append-only file (or stdout, or nothing) carrying the
//! hash chain of [`hush_api::audit`].
//!
//! Writes to one device are serialised by an async mutex: each entry gets the next `seq` and
//! the hash of the line before it, and is written with one `write_all` of line + `\n`.
//!
//! Opening a file that already holds entries continues its chain from the last line, so a
//! restart keeps the chain intact. A torn last line (a crash or failed write in the middle of
//! an entry: bytes after the last newline) is cut off when the line before it is a chain
//! entry; a file whose content is not ours is refused. After a failed write the file is closed
//! and reopened on the next write, which re-reads the chain from the file; `reopen` does the
//! same for log rotation (move the file away, then send SIGHUP).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hush_api::audit::{line_hash, parse_link, CHAIN_FIELD, GENESIS};
use serde_json::{json, Map, Value};

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
    File(Arc<File>),
    Stdout,
    Discard,
}

/// An open output with its chain state. `out` is `None` until opened, and again after a
/// failed write or a reopen request.
pub(crate) struct ChainWriter {
    spec: SinkSpec,
    out: Option<Output>,
    head: ChainHead,
}

impl ChainWriter {
    pub(crate) fn new(spec: SinkSpec) -> Self {
        ChainWriter {
            spec,
            out: None,
            head: ChainHead::genesis(),
        }
    }

    pub(crate) fn head(&self) -> &ChainHead {
        &self.head
    }

    /// Open the output now (if it is not open), reading the chain head from an existing file.
    pub(crate) async fn ensure_open(&mut self) -> Result<(), OpenError> {
        if self.out.is_some() {
            return Ok(());
        }
        let (out, head) = match &self.spec {
            SinkSpec::File { path, mode } => {
                let (owned, mode) = (path.clone(), *mode);
                let joined = tokio::task::spawn_blocking(move || open_file(&owned, mode)).await;
                let (file, head) = joined.map_err(|e| OpenError::Io {
                    path: path.clone(),
                    source: io::Error::other(e.to_string()),
                })??;
                (Output::File(Arc::new(file)), head)
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

    /// Append one entry with the next chain link. On failure nothing counts as written: the
    /// output is closed, and the next write reopens it and re-reads the head from the file.
    pub(crate) async fn append(&mut self, mut entry: Map<String, Value>) -> io::Result<()> {
        self.ensure_open().await.map_err(|e| match e {
            OpenError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        let seq = self.head.seq + 1;
        entry.insert(
            CHAIN_FIELD.into(),
            json!({ "seq": seq, "prev": self.head.last_hash }),
        );
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let result = match self.out.as_ref() {
            Some(Output::File(file)) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let mut f: &File = &file;
                    f.write_all(&line)?;
                    f.flush()
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            }
            Some(Output::Stdout) => {
                use tokio::io::AsyncWriteExt;
                let mut out = tokio::io::stdout();
                match out.write_all(&line).await {
                    Ok(()) => out.flush().await,
                    Err(e) => Err(e),
                }
            }
            Some(Output::Discard) => Ok(()),
            None => Err(io::Error::other("audit output is not open")),
        };
        match result {
            Ok(()) => {
                self.head = ChainHead {
                    seq,
                    last_hash: hash,
                };
                Ok(())
            }
            Err(e) => {
                self.out = None;
                Err(e)
            }
        }
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

    #[tokio::test]
    async fn appends_a_verifiable_chain_and_creates_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        for n in 0..3 {
            w.append(entry(n)).await.unwrap();
        }
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 3);
        assert_eq!(w.head().seq, 3);
        assert_eq!(w.head().last_hash, summary.last_hash);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).await.unwrap();
        w.append(entry(2)).await.unwrap();
        drop(w);
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().await.unwrap();
        assert_eq!(w.head().seq, 2);
        w.append(entry(3)).await.unwrap();
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 3);
    }

    #[tokio::test]
    async fn torn_last_line_is_cut_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).await.unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\":\"2025-01-01T00:0").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(2)).await.unwrap();
        let summary = verify(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(summary.lines, 2);
    }

    #[tokio::test]
    async fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        assert!(matches!(
            w.ensure_open().await,
            Err(OpenError::NotOurs { .. })
        ));
        // A file with one unterminated foreign line is not cut either.
        std::fs::write(&path, "hello").unwrap();
        let mut w = ChainWriter::new(spec(&path));
        assert!(matches!(
            w.ensure_open().await,
            Err(OpenError::NotOurs { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn long_last_line_is_found_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = ChainWriter::new(spec(&path));
        w.append(entry(1)).await.unwrap();
        let mut big = entry(2);
        big.insert("pad".into(), "x".repeat(200_000).into());
        w.append(big).await.unwrap();
        let head = w.head().clone();
        drop(w);
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().await.unwrap();
        assert_eq!(w.head(), &head);
    }

    #[tokio::test]
    async fn unopenable_path_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/audit.log");
        let mut w = ChainWriter::new(spec(&path));
        let err = w.ensure_open().await.unwrap_err().to_string();
        assert!(err.contains("missing-dir/audit.log"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }

    #[tokio::test]
    async fn write_failure_is_reported_and_does_not_advance() {
        let mut w = ChainWriter::new(spec(Path::new("/dev/full")));
        assert!(w.append(entry(1)).await.is_err());
        assert_eq!(w.head().seq, 0);
    }

    #[tokio::test]
    async fn existing_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut w = ChainWriter::new(spec(&path));
        w.ensure_open().await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
