//! `hush report compliance`: a compliance report (`sys/reports/compliance`) as a table, as
//! JSON, or as one self-contained HTML page (`html`).

mod html;

use std::io::Write;

use hush_api::wire::reports::{standard_ids, standard_name, ComplianceReport, ControlStatus};

use crate::args::{Format, ReportCmd};
use crate::context::{usage, Ctx};
use crate::output::columns;

pub async fn run(ctx: &Ctx, cmd: ReportCmd) -> anyhow::Result<()> {
    match cmd {
        ReportCmd::Compliance {
            standard,
            since,
            output,
        } => {
            let standard = standard.trim().to_ascii_lowercase();
            if standard_name(&standard).is_none() {
                return Err(usage(format!(
                    "unknown standard {standard:?}: use one of {}",
                    standard_ids()
                )));
            }
            let client = ctx.client()?;
            let report = client
                .report_compliance(&standard, since.as_deref())
                .await?;
            let text = match ctx.format() {
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
                Format::Html => html::render(&report, client.address()),
                Format::Table => table(&report),
            };
            match output {
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
                Some(path) => {
                    std::fs::write(&path, text.as_bytes()).map_err(|e| {
                        anyhow::anyhow!("could not write the report to {}: {e}", path.display())
                    })?;
                    eprintln!(
                        "Wrote the {} report ({} pass, {} fail, {} not applicable) to {}",
                        report.standard_name,
                        report.summary.pass,
                        report.summary.fail,
                        report.summary.not_applicable,
                        path.display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn status_word(s: ControlStatus) -> &'static str {
    match s {
        ControlStatus::Pass => "PASS",
        ControlStatus::Fail => "FAIL",
        ControlStatus::NotApplicable => "N/A",
    }
}

/// The summary and one row per control; the failing controls' remediation below.
fn table(r: &ComplianceReport) -> String {
    let mut out = format!(
        "{} compliance report, generated {}, window since {} ({})\n\
         {} controls: {} pass, {} fail, {} not applicable\n\n",
        r.standard_name,
        r.generated_at,
        r.window_start,
        r.since,
        r.summary.total,
        r.summary.pass,
        r.summary.fail,
        r.summary.not_applicable
    );
    let rows: Vec<Vec<String>> = r
        .controls
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                status_word(c.status).to_string(),
                c.title.clone(),
            ]
        })
        .collect();
    out.push_str(&columns(&["Control", "Status", "Title"], &rows));
    for c in r
        .controls
        .iter()
        .filter(|c| c.status == ControlStatus::Fail)
    {
        out.push_str(&format!("\n{} {} — FAIL\n", c.id, c.title));
        for e in &c.evidence {
            out.push_str(&format!("  evidence: {e}\n"));
        }
        for fix in &c.remediation {
            out.push_str(&format!("  do: {fix}\n"));
        }
    }
    out
}
