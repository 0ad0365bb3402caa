//! `--version` names the build for every program: the workspace version, the git commit it
//! was built from (short, `-dirty` when tracked files differed), the cargo profile and the
//! target — one string from `hush_api::build_info`.

use std::process::Command;

use hush_tests::bin;

fn version_of(program: &str) -> String {
    let out = Command::new(bin(program))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} --version: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn head() -> Option<String> {
    let out = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn every_program_names_version_commit_profile_and_target() {
    let commit = head();
    for program in ["hushd", "hush-agent", "hush", "hush-injector"] {
        let line = version_of(program);
        let want = format!("{program} {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(line.starts_with(&want), "{line}");
        let inside = &line[want.len()..line.len() - 1];
        let parts: Vec<&str> = inside.split(", ").collect();
        assert_eq!(parts.len(), 3, "{line}");
        match &commit {
            // The binaries are built from this checkout: the same commit, maybe -dirty.
            Some(c) => assert!(
                parts[0] == c || parts[0] == format!("{c}-dirty"),
                "{line}: HEAD is {c} (binaries older than HEAD? `cargo build --workspace --bins`)"
            ),
            None => assert_eq!(parts[0], "unknown", "{line}"),
        }
        // Tests run the binaries of the dev profile.
        assert_eq!(parts[1], "debug", "{line}");
        assert!(parts[2].contains("linux"), "{line}");
        assert!(line.ends_with(')'), "{line}");
        assert_eq!(line, format!("{program} {}", hush_api::build_info::VERSION));
    }
}
