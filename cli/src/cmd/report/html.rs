//! The compliance report as one self-contained HTML page: inline CSS, no script, nothing
//! fetched. Every string from the report goes through [`escape`].

use std::fmt::Write;

use hush_api::wire::reports::{ComplianceReport, Control, ControlStatus};

/// Escape text for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --na: #6e7781; --line: #d0d7de; --ink: #1f2328; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #f6f8fa; }
main { max-width: 1200px; margin: 0 auto; padding: 32px 24px 48px; }
header { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 24px 28px; }
h1 { margin: 0 0 4px; font-size: 26px; }
.sub { color: #59636e; margin: 0 0 16px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.meta dt { color: #59636e; }
dl.meta dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 14px; }
.summary { display: flex; gap: 12px; margin: 20px 0 0; flex-wrap: wrap; }
.count { flex: 1 1 150px; border-radius: 8px; padding: 12px 16px; color: #fff; }
.count b { display: block; font-size: 30px; line-height: 1.1; }
.count.total { background: #424a53; }
.count.pass { background: var(--pass); }
.count.fail { background: var(--fail); }
.count.not_applicable { background: var(--na); }
table { width: 100%; margin-top: 24px; border-collapse: separate; border-spacing: 0;
        background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; vertical-align: top; padding: 12px 14px; border-bottom: 1px solid var(--line); }
tr:last-child td { border-bottom: 0; }
th { background: #f6f8fa; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #59636e; }
td.id { white-space: nowrap; font-weight: 600; }
td.title { width: 22%; }
.checks { display: block; margin-top: 6px; color: #59636e; font-size: 12px;
          font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { display: inline-block; min-width: 74px; text-align: center; border-radius: 999px;
         padding: 2px 10px; font-size: 12px; font-weight: 700; color: #fff; letter-spacing: .03em; }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
.badge.not_applicable { background: var(--na); }
tr.fail td.id { box-shadow: inset 4px 0 0 var(--fail); }
ul { margin: 0; padding-left: 18px; }
li + li { margin-top: 4px; }
td.fix li { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px;
            background: #fff8c5; border-radius: 4px; padding: 2px 6px; list-style: none; margin-left: -18px; }
.none { color: #59636e; }
footer { margin-top: 20px; color: #59636e; font-size: 13px; }
@media print { body { background: #fff; } main { padding: 0; } }
"#;

fn status_label(s: ControlStatus) -> &'static str {
    match s {
        ControlStatus::Pass => "PASS",
        ControlStatus::Fail => "FAIL",
        ControlStatus::NotApplicable => "N/A",
    }
}

fn list(out: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        let _ = write!(out, "<span class=\"none\">{}</span>", escape(empty));
        return;
    }
    out.push_str("<ul>");
    for item in items {
        let _ = write!(out, "<li>{}</li>", escape(item));
    }
    out.push_str("</ul>");
}

fn row(out: &mut String, c: &Control) {
    let status = c.status.as_str();
    let _ = write!(
        out,
        "<tr class=\"{status}\"><td class=\"id\">{}</td><td class=\"title\">{}\
         <span class=\"checks\">{}</span></td>\
         <td><span class=\"badge {status}\">{}</span></td><td>",
        escape(&c.id),
        escape(&c.title),
        escape(&c.checks.join(" · ")),
        status_label(c.status),
    );
    list(out, &c.evidence, "no evidence");
    out.push_str("</td><td class=\"fix\">");
    let nothing = match c.status {
        ControlStatus::Fail => "no remediation known",
        _ => "nothing to do",
    };
    list(out, &c.remediation, nothing);
    out.push_str("</td></tr>\n");
}

/// The whole page for `report`, fetched from hushd at `address`.
pub fn render(report: &ComplianceReport, address: &str) -> String {
    let s = &report.summary;
    let title = format!("{} compliance report", report.standard_name);
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<header>\n\
         <h1>{title}</h1>\n<p class=\"sub\">What hushd can prove about itself, control by control.</p>\n\
         <dl class=\"meta\">\
         <dt>Standard</dt><dd>{standard}</dd>\
         <dt>Store</dt><dd>{address}</dd>\
         <dt>Generated</dt><dd>{generated}</dd>\
         <dt>Window</dt><dd>since {start} ({since})</dd>\
         </dl>\n<div class=\"summary\">\
         <div class=\"count total\"><b>{total}</b>controls</div>\
         <div class=\"count pass\"><b>{pass}</b>pass</div>\
         <div class=\"count fail\"><b>{fail}</b>fail</div>\
         <div class=\"count not_applicable\"><b>{na}</b>not applicable</div>\
         </div>\n</header>\n",
        title = escape(&title),
        standard = escape(&format!("{} ({})", report.standard_name, report.standard)),
        address = escape(address),
        generated = escape(&report.generated_at),
        start = escape(&report.window_start),
        since = escape(&report.since),
        total = s.total,
        pass = s.pass,
        fail = s.fail,
        na = s.not_applicable,
    );
    out.push_str(
        "<table>\n<thead><tr><th>Control</th><th>Title</th><th>Status</th><th>Evidence</th>\
         <th>Remediation</th></tr></thead>\n<tbody>\n",
    );
    for c in &report.controls {
        row(&mut out, c);
    }
    let _ = write!(
        out,
        "</tbody>\n</table>\n<footer>Generated by hush {} from <code>GET \
         sys/reports/compliance?standard={}&amp;since={}</code>. Evidence holds names, \
         numbers, dates and token accessors, never a token or a secret value.</footer>\n\
         </main>\n</body>\n</html>\n",
        escape(hush_api::build_info::VERSION),
        escape(&report.standard),
        escape(&report.since),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_api::wire::reports::Summary;

    #[test]
    fn escapes_what_html_gives_meaning_to() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn report_strings_cannot_make_markup() {
        let control = Control {
            id: "<i>1</i>".into(),
            title: "t".into(),
            status: ControlStatus::Fail,
            evidence: vec!["policy <img src=x onerror=alert(1)> grants".into()],
            remediation: vec!["hush token revoke -accessor \"a&b\"".into()],
            checks: vec!["token_expiry".into()],
        };
        let report = ComplianceReport {
            standard: "soc2".into(),
            standard_name: "SOC 2".into(),
            generated_at: "2025-01-01T00:00:00Z".into(),
            since: "90d".into(),
            window_start: "2024-10-03T00:00:00Z".into(),
            summary: Summary::of(std::slice::from_ref(&control)),
            controls: vec![control],
        };
        let page = render(&report, "https://127.0.0.1:8200/?a=<x>");
        assert!(!page.contains("<img"));
        assert!(!page.contains("<i>"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&quot;a&amp;b&quot;"));
        assert!(page.contains("https://127.0.0.1:8200/?a=&lt;x&gt;"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http://") && !page.contains("src=\""));
    }
}
