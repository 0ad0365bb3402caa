//! `hush audit ...`: enable, list and disable audit devices (`sys/audit`), `verify`, which
//! checks an audit log's hash chain offline, and `stats` (in [`stats`]), per-path counts from
//! a log file.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use hush_api::audit::{line_hash, verify};
use serde_json::json;

use super::kv::parse_pairs;
use crate::args::AuditCmd;
use crate::context::{usage, Ctx};
use crate::output::{columns, print_json};

pub mod stats;

/// A failed verification: exit 1 with this message.
#[derive(Debug)]
pub struct Tampered(pub String);

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Tampered {}

pub async fn run(ctx: &Ctx, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Enable {
            kind,
            options,
            path,
            description,
        } => {
            let options = parse_pairs("option", &options)?;
            let path = device_path(path.as_deref().unwrap_or(&kind))?;
            ctx.client()?
                .audit_enable(&path, &kind, description.as_deref().unwrap_or(""), &options)
                .await?;
            if !ctx.json() {
                println!("Success! Enabled the {kind} audit device at: {path}/");
            }
            Ok(())
        }
        AuditCmd::List { detailed } => list(ctx, detailed).await,
        AuditCmd::Disable { path } => {
            let path = device_path(&path)?;
            ctx.client()?.audit_disable(&path).await?;
            if !ctx.json() {
                println!("Success! Disabled audit device (if it was enabled) at: {path}/");
            }
            Ok(())
        }
        AuditCmd::Verify { file, last_hash } => verify_file(ctx, file, last_hash),
        AuditCmd::Stats { file, path, since } => stats_file(ctx, file, path, since),
    }
}

fn stats_file(
    ctx: &Ctx,
    file: PathBuf,
    path: Option<String>,
    since: Option<String>,
) -> anyhow::Result<()> {
    let since = match since.as_deref() {
        Some(text) => Some(stats::parse_since(text, chrono::Utc::now()).ok_or_else(|| {
            usage(format!(
                "-since: {text:?} is neither a duration (24h, 7d) nor an RFC 3339 time"
            ))
        })?),
        None => None,
    };
    let shown = file.display().to_string();
    let reader = std::fs::File::open(&file)
        .map(BufReader::new)
        .map_err(|e| anyhow::anyhow!("could not open audit file {shown}: {e}"))?;
    let filter = stats::Filter { path, since };
    let counted = stats::collect(reader, &filter).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    if ctx.json() {
        return print_json(&counted);
    }
    if counted.is_empty() {
        println!("No requests in {shown} match.");
        return Ok(());
    }
    let header = ["Path", "Identity", "Total", "Successful", "Failed"];
    print!("{}", columns(&header, &stats::table(&counted)));
    Ok(())
}

/// A device path: one or more segments, no leading or trailing slash.
fn device_path(path: &str) -> anyhow::Result<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(usage(format!("invalid audit device path {path:?}")));
    }
    Ok(p.to_string())
}

async fn list(ctx: &Ctx, detailed: bool) -> anyhow::Result<()> {
    let devices = ctx.client()?.audit_list().await?;
    if ctx.json() {
        return print_json(&devices);
    }
    if devices.is_empty() {
        println!("No audit devices are enabled.");
        return Ok(());
    }
    let mut header = vec!["Path", "Type", "Description"];
    if detailed {
        header.extend(["Options", "Last Seq", "Last Hash"]);
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|(path, d)| {
            let description = if d.description.is_empty() {
                "n/a".to_string()
            } else {
                d.description.clone()
            };
            let mut row = vec![path.clone(), d.kind.clone(), description];
            if detailed {
                let options: Vec<String> =
                    d.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let head = d.hash_chain.clone().unwrap_or_default();
                row.extend([options.join(","), head.seq.to_string(), head.last_hash]);
            }
            row
        })
        .collect();
    print!("{}", columns(&header, &rows));
    Ok(())
}

fn verify_file(ctx: &Ctx, file: PathBuf, last_hash: Option<String>) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    let open = || {
        std::fs::File::open(&file)
            .map(BufReader::new)
            .map_err(|e| anyhow::anyhow!("could not open audit file {shown}: {e}"))
    };
    let result = verify(open()?);
    let outcome = match &result {
        Ok(summary) => match &last_hash {
            Some(expected) if expected != &summary.last_hash => {
                match line_with_hash(open()?, expected)
                    .map_err(|e| anyhow::anyhow!("could not read {shown}: {e}"))?
                {
                    // The reported head is in the file; later lines were written after it
                    // (the response to that very `GET sys/audit`, for one).
                    Some(_) => Ok(summary),
                    None => Err(format!(
                        "{shown}: no line has hash {expected}, the chain head hushd reported; \
                         the file ends at seq {} with hash {}: lines were removed from or \
                         edited at the end of the file",
                        summary.last_seq, summary.last_hash
                    )),
                }
            }
            _ => Ok(summary),
        },
        Err(e) => Err(format!("{shown}: {e}")),
    };
    match outcome {
        Ok(summary) => {
            if ctx.json() {
                print_json(&json!({
                    "ok": true,
                    "lines": summary.lines,
                    "last_seq": summary.last_seq,
                    "last_hash": summary.last_hash,
                }))
            } else {
                println!("ok: {} lines verified", summary.lines);
                Ok(())
            }
        }
        Err(msg) => {
            if ctx.json() {
                let line = result.as_ref().err().map(|e| e.line());
                print_json(&json!({ "ok": false, "line": line, "error": msg }))?;
            }
            Err(Tampered(msg).into())
        }
    }
}

/// The number of the first line whose chain hash is `hash`.
fn line_with_hash(mut r: impl BufRead, hash: &str) -> std::io::Result<Option<u64>> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        n += 1;
        if line_hash(buf.strip_suffix(b"\n").unwrap_or(&buf)) == hash {
            return Ok(Some(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_with_a_hash() {
        let text = "a\nb\nc";
        let find = |h: &str| line_with_hash(text.as_bytes(), h).unwrap();
        assert_eq!(find(&line_hash(b"a")), Some(1));
        assert_eq!(
            find(&line_hash(b"c")),
            Some(3),
            "a last line without newline"
        );
        assert_eq!(find(&line_hash(b"d")), None);
    }

    #[test]
    fn device_paths_are_trimmed_and_checked() {
        assert_eq!(device_path("file/").unwrap(), "file");
        assert_eq!(device_path("/ops/audit").unwrap(), "ops/audit");
        for bad in ["", "/", "a//b", "../x"] {
            assert!(device_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn columns_pad_all_but_the_last() {
        let rows = vec![
            vec!["file/".to_string(), "file".to_string(), "n/a".to_string()],
            vec![
                "ops-audit/".to_string(),
                "file".to_string(),
                "ops".to_string(),
            ],
        ];
        assert_eq!(
            columns(&["Path", "Type", "Description"], &rows),
            "Path          Type    Description\n\
             ----          ----    -----------\n\
             file/         file    n/a\n\
             ops-audit/    file    ops\n"
        );
    }
}
