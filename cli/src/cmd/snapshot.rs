//! `hush operator snapshot save|restore|inspect`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hush_api::snapshot::{self as format, Verified};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args::SnapshotCmd;
use crate::context::Ctx;
use crate::output::{print_json, table};
use crate::progress::Progress;

/// Bytes read from the file per upload chunk.
const UPLOAD_CHUNK: usize = 256 * 1024;

pub async fn run(ctx: &Ctx, cmd: SnapshotCmd) -> anyhow::Result<()> {
    match cmd {
        SnapshotCmd::Save { file } => save(ctx, &file).await,
        SnapshotCmd::Restore { force, file } => restore(ctx, &file, force).await,
        SnapshotCmd::Inspect { file } => inspect(ctx, &file).await,
    }
}

/// Read all of `file`, checking structure, order, counts and the SHA-256.
fn check(file: &Path) -> anyhow::Result<Verified> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = f.metadata().map(|m| m.len()).ok();
    let mut progress = Progress::new("check", "bytes", total);
    let mut last = 8u64;
    let verified = format::verify(BufReader::with_capacity(1 << 20, f), |key, value| {
        let now = last + 9 + key.len() as u64 + value.len() as u64;
        progress.add(now - last);
        last = now;
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    progress.finish();
    Ok(verified)
}

async fn save(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let mut resp = client.snapshot_save().await?;
    let estimate = resp
        .headers()
        .get("x-hush-snapshot-entries-estimate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let part = PathBuf::from(format!("{}.part", file.display()));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let out = opts
        .open(&part)
        .await
        .with_context(|| format!("cannot create {}", part.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, out);
    let mut progress = Progress::new("save", "bytes", None);
    let received: anyhow::Result<()> = async {
        while let Some(chunk) = resp.chunk().await.context("the snapshot download failed")? {
            out.write_all(&chunk).await?;
            progress.add(chunk.len() as u64);
        }
        out.flush().await?;
        out.get_ref().sync_all().await?;
        Ok(())
    }
    .await;
    progress.finish();
    let verified = received.and_then(|()| check(&part)).inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    });
    let verified = verified.context("the snapshot received is incomplete or damaged")?;
    std::fs::rename(&part, file)
        .with_context(|| format!("cannot rename {} to {}", part.display(), file.display()))?;
    let m = &verified.manifest;
    if ctx.json() {
        return print_json(&json!({
            "file": file.display().to_string(),
            "entries": m.entries,
            "entries_estimate": estimate,
            "content_bytes": m.content_bytes,
            "content_sha256": m.content_sha256,
        }));
    }
    println!(
        "Success! Saved a snapshot of {} entries ({} bytes) to {}",
        m.entries,
        m.content_bytes,
        file.display()
    );
    Ok(())
}

async fn restore(ctx: &Ctx, file: &Path, force: bool) -> anyhow::Result<()> {
    let client = ctx.client()?;
    // Nothing is sent when the file is damaged.
    let verified = check(file)?;
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let len = f.metadata().await?.len();
    let progress = Progress::new("upload", "bytes", Some(len));
    let stream =
        futures_util::stream::unfold((f, progress, false), |(mut f, mut p, end)| async move {
            if end {
                return None;
            }
            let mut buf = vec![0u8; UPLOAD_CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => {
                    p.finish();
                    None
                }
                Ok(n) => {
                    buf.truncate(n);
                    p.add(n as u64);
                    Some((Ok(buf), (f, p, false)))
                }
                Err(e) => Some((Err(e), (f, p, true))),
            }
        });
    client
        .snapshot_restore(reqwest::Body::wrap_stream(stream), len, force)
        .await?;
    let m = &verified.manifest;
    if ctx.json() {
        return print_json(&json!({
            "restored": true,
            "entries": m.entries,
            "sealed": true,
        }));
    }
    println!(
        "Success! Restored {} entries. hushd is now sealed: unseal it with the snapshot's \
         unseal keys; the snapshot's root token (and every other token in it) applies again.",
        m.entries
    );
    Ok(())
}

async fn inspect(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let verified = check(file)?;
    let m = &verified.manifest;
    let auth = if ctx.has_server() {
        let answer = ctx
            .client()?
            .snapshot_verify(&verified.manifest_bytes, &verified.mac)
            .await?;
        Some((
            answer["authentic"].as_bool() == Some(true),
            answer["same_keys"].as_bool() == Some(true),
        ))
    } else {
        None
    };
    let auth_text = match auth {
        Some((true, _)) => "verified with the keys of the store at HUSH_ADDR".to_string(),
        Some((false, true)) => "FAILED: the manifest was altered".to_string(),
        Some((false, false)) => {
            "FAILED: the store at HUSH_ADDR holds other keys than the snapshot's".to_string()
        }
        None => "not checked (set HUSH_ADDR and HUSH_TOKEN of a store holding its keys)".into(),
    };
    if ctx.json() {
        print_json(&json!({
            "file": file.display().to_string(),
            "integrity": "ok",
            "manifest": m,
            "authentic": auth.map(|a| a.0),
        }))?;
    } else {
        let terms = m
            .key_terms
            .iter()
            .map(|t| format!("{}: {}", t.term, t.entries))
            .collect::<Vec<_>>()
            .join(", ");
        print!(
            "{}",
            table(&[
                ("File", file.display().to_string()),
                ("Format", m.format.to_string()),
                ("Entries", m.entries.to_string()),
                ("Content bytes", m.content_bytes.to_string()),
                ("Content SHA-256", m.content_sha256.clone()),
                ("Key terms (term: entries)", terms),
                ("Storage type", m.storage_type.clone()),
                ("Created (Unix time)", m.created_unix.to_string()),
                ("Key ID", m.key_id.clone()),
                ("Integrity", "ok (structure, order, counts, SHA-256)".into()),
                ("Authentication", auth_text.clone()),
            ])
        );
    }
    if auth.is_some_and(|a| !a.0) {
        anyhow::bail!("snapshot authentication failed: {auth_text}");
    }
    Ok(())
}
