//! `hush audit verify FILE`: check an audit log's hash chain offline.

use std::io::BufReader;

use hush_api::audit::verify;
use serde_json::json;

use crate::args::AuditCmd;
use crate::context::Ctx;
use crate::output::print_json;

/// A failed verification: exit 1 with this message.
#[derive(Debug)]
pub struct Tampered(pub String);

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Tampered {}

pub fn run(ctx: &Ctx, cmd: AuditCmd) -> anyhow::Result<()> {
    let AuditCmd::Verify { file, last_hash } = cmd;
    let shown = file.display().to_string();
    let f = std::fs::File::open(&file)
        .map_err(|e| anyhow::anyhow!("could not open audit file {shown}: {e}"))?;
    let result = verify(BufReader::new(f));
    let outcome = match &result {
        Ok(summary) => match &last_hash {
            Some(expected) if expected != &summary.last_hash => Err(format!(
                "{shown}: the last line (seq {}) has hash {}, but {expected} was expected: lines \
                 were removed from or edited at the end of the file",
                summary.last_seq, summary.last_hash
            )),
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
