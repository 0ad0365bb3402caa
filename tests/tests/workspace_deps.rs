//! Every crate takes its dependencies from `[workspace.dependencies]`: one version of each,
//! chosen in one place (the root Cargo.toml, where cargo deny's bans also look).

use std::path::Path;

fn offenders(manifest: &str) -> Vec<String> {
    let doc: toml::Table = manifest.parse().expect("valid TOML");
    let mut out = Vec::new();
    let mut tables = vec![doc.clone()];
    if let Some(toml::Value::Table(targets)) = doc.get("target") {
        tables.extend(targets.values().filter_map(|t| t.as_table().cloned()));
    }
    for table in tables {
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(toml::Value::Table(deps)) = table.get(section) else {
                continue;
            };
            for (name, spec) in deps {
                let inherited = spec
                    .as_table()
                    .and_then(|t| t.get("workspace"))
                    .and_then(toml::Value::as_bool)
                    == Some(true);
                if !inherited {
                    out.push(format!("[{section}] {name}"));
                }
            }
        }
    }
    out
}

#[test]
fn every_dependency_comes_from_the_workspace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    assert!(members.len() >= 6, "{members:?}");
    let mut bad = Vec::new();
    for member in members {
        let member = member.as_str().unwrap();
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
        bad.extend(
            offenders(&manifest)
                .into_iter()
                .map(|d| format!("{member}/Cargo.toml: {d}")),
        );
    }
    assert!(
        bad.is_empty(),
        "declare these in [workspace.dependencies] and use `NAME.workspace = true`:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_version_written_in_a_crate_is_caught() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\n\
                    bytes = \"1\"\n[dev-dependencies]\nrand = { version = \"0.9\" }\n\
                    [target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n";
    assert_eq!(
        offenders(manifest),
        vec![
            "[dependencies] bytes",
            "[dev-dependencies] rand",
            "[dependencies] libc"
        ]
    );
}
