//! `hush agents ...`: the fleet view hushd keeps from the agents' reports (`sys/agents`).

use hush_api::wire::agents::{AccessRecord, AgentInfo, AgentSummary, StaleList};

use crate::args::AgentsCmd;
use crate::context::{usage, Ctx};
use crate::output::{columns, print_json, section, table};

pub async fn run(ctx: &Ctx, cmd: AgentsCmd) -> anyhow::Result<()> {
    match cmd {
        AgentsCmd::List => list(ctx).await,
        AgentsCmd::Show { id } => {
            let id = id.trim_matches('/');
            if id.is_empty() {
                return Err(usage("an agent id is needed: see `hush agents list`"));
            }
            let Some(info) = ctx.client()?.agents_show(id).await? else {
                anyhow::bail!("No agent with id {id:?} has reported: see `hush agents list`");
            };
            if ctx.json() {
                return print_json(&info);
            }
            print!("{}", show_text(&info));
            Ok(())
        }
        AgentsCmd::WhoRead { path, since } => {
            let path = api_path(&path)?;
            let list = ctx.client()?.agents_access(&path, Some(&since)).await?;
            if ctx.json() {
                return print_json(&list);
            }
            if list.accesses.is_empty() {
                println!("No access to {path} reported since {since}.");
                return Ok(());
            }
            print!("{}", accesses_text(&list.accesses));
            Ok(())
        }
        AgentsCmd::Stale { path } => {
            let path = api_path(&path)?;
            let stale = ctx.client()?.agents_stale(&path).await?;
            if ctx.json() {
                return print_json(&stale);
            }
            print!("{}", stale_text(&stale));
            Ok(())
        }
    }
}

/// An API path as hushd indexes it: no leading slash, not empty.
fn api_path(path: &str) -> anyhow::Result<String> {
    let p = path.trim_start_matches('/');
    if p.is_empty() {
        return Err(usage(
            "a path is needed: the API path the agents read, e.g. secret/data/app/db",
        ));
    }
    Ok(p.to_string())
}

fn or_na(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("n/a").to_string()
}

fn stale_cell(s: &AgentSummary) -> String {
    if s.stale {
        format!("yes ({})", s.stale_paths.join(", "))
    } else {
        "no".into()
    }
}

async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let agents = ctx.client()?.agents_list().await?;
    if ctx.json() {
        return print_json(&agents);
    }
    if agents.keys.is_empty() {
        println!("No agent has reported yet.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = agents
        .keys
        .iter()
        .filter_map(|id| agents.key_info.get(id))
        .map(|s| {
            vec![
                s.id.clone(),
                or_na(Some(&s.host)),
                or_na(s.pod.as_deref()),
                or_na(Some(&s.last_seen)),
                stale_cell(s),
            ]
        })
        .collect();
    print!(
        "{}",
        columns(&["ID", "Host", "Pod", "Last Seen", "Stale"], &rows)
    );
    Ok(())
}

fn show_text(info: &AgentInfo) -> String {
    let s = &info.summary;
    let state = &info.state;
    let opt = |v: Option<String>| or_na(v.as_deref());
    let rows = vec![
        ("id", s.id.clone()),
        ("host", or_na(Some(&s.host))),
        ("pod", or_na(s.pod.as_deref())),
        ("destination", or_na(Some(&s.destination))),
        ("last_seen", or_na(Some(&s.last_seen))),
        ("stale", stale_cell(s)),
        ("version", or_na(Some(&info.version))),
        ("instance", or_na(Some(&info.instance))),
        ("token_accessor", or_na(Some(&info.token_accessor))),
        ("token_display_name", or_na(Some(&info.token_display_name))),
        ("dropped_total", info.dropped_total.to_string()),
        ("last_refresh", opt(state.last_refresh.clone())),
        (
            "render_latency_ms",
            opt(state.render_latency_ms.map(|v| format!("{v:.1}"))),
        ),
        ("rss_bytes", state.rss_bytes.to_string()),
        ("cpu_seconds", format!("{:.2}", state.cpu_seconds)),
        ("uptime_seconds", state.uptime_seconds.to_string()),
    ];
    let mut out = table(&rows);
    if !state.sources.is_empty() {
        let rows: Vec<Vec<String>> = state
            .sources
            .iter()
            .map(|src| {
                vec![
                    src.path.clone(),
                    opt(src.version.map(|v| v.to_string())),
                    opt(src.lease_id.clone()),
                    opt(src.lease_ttl_left.map(|t| format!("{t}s"))),
                    opt(src.last_refresh.clone()),
                    opt(src.error.clone()),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&section("Sources"));
        out.push_str(&columns(
            &[
                "Path",
                "Version",
                "Lease",
                "TTL Left",
                "Last Refresh",
                "Error",
            ],
            &rows,
        ));
    }
    if !state.files.is_empty() {
        let rows: Vec<Vec<String>> = state
            .files
            .iter()
            .map(|f| vec![f.file.clone(), f.paths.join(", "), f.generation.to_string()])
            .collect();
        out.push('\n');
        out.push_str(&section("Files"));
        out.push_str(&columns(&["File", "Paths", "Generation"], &rows));
    }
    if !state.errors.is_empty() {
        out.push('\n');
        out.push_str(&section("Errors"));
        for e in &state.errors {
            out.push_str(e);
            out.push('\n');
        }
    }
    out
}

fn accesses_text(accesses: &[AccessRecord]) -> String {
    let rows: Vec<Vec<String>> = accesses
        .iter()
        .map(|a| {
            vec![
                a.time.clone(),
                a.agent_id.clone(),
                or_na(a.pod.as_deref()),
                a.pid.to_string(),
                a.uid.to_string(),
                or_na(a.exe.as_deref()),
                a.file.clone(),
                a.version.to_string(),
                match &a.reason {
                    Some(r) if !r.is_empty() => format!("{} ({r})", a.result),
                    _ => a.result.clone(),
                },
            ]
        })
        .collect();
    columns(
        &[
            "Time", "Agent", "Pod", "PID", "UID", "Exe", "File", "Version", "Result",
        ],
        &rows,
    )
}

fn stale_text(stale: &StaleList) -> String {
    let Some(current) = stale.current_version else {
        return format!(
            "{} has no current KV version 2 version (not a KV v2 data path, or no such \
             secret): no agent can be stale for it.\n",
            stale.path
        );
    };
    if stale.agents.is_empty() {
        return format!(
            "No agent holds an older version of {} than the current version {current}.\n",
            stale.path
        );
    }
    let rows: Vec<Vec<String>> = stale
        .agents
        .iter()
        .map(|a| {
            vec![
                a.summary.id.clone(),
                or_na(Some(&a.summary.host)),
                or_na(a.summary.pod.as_deref()),
                a.held_version.to_string(),
                or_na(Some(&a.summary.last_seen)),
            ]
        })
        .collect();
    format!(
        "Current version of {}: {current}\n\n{}",
        stale.path,
        columns(&["ID", "Host", "Pod", "Held Version", "Last Seen"], &rows)
    )
}

#[cfg(test)]
mod tests {
    use hush_api::wire::agents::StaleAgent;

    use super::*;

    #[test]
    fn stale_text_says_what_it_found() {
        let mut s = StaleList {
            path: "secret/data/a".into(),
            current_version: None,
            agents: vec![],
        };
        assert!(stale_text(&s).contains("no agent can be stale"));
        s.current_version = Some(3);
        assert!(stale_text(&s).starts_with("No agent holds an older version"));
        s.agents.push(StaleAgent {
            summary: AgentSummary {
                id: "ns/p".into(),
                host: "h".into(),
                ..Default::default()
            },
            held_version: 2,
        });
        let text = stale_text(&s);
        assert!(
            text.starts_with("Current version of secret/data/a: 3"),
            "{text}"
        );
        assert!(text.contains("ns/p"), "{text}");
    }

    #[test]
    fn paths_are_trimmed_and_needed() {
        assert_eq!(api_path("/secret/data/a").unwrap(), "secret/data/a");
        assert!(api_path("").is_err());
    }
}
