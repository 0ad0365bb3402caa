//! Names the build for `--version` (see `src/build_info.rs`): the git commit (short, `-dirty`
//! when tracked files differ from it), the cargo profile and the target.
//!
//! `HUSH_BUILD_COMMIT` set in the environment wins (a build from a tarball, or a packager that
//! knows the commit); without it and without git the commit is `unknown`. The script runs again
//! when the checked-out commit changes (HEAD and its branch ref are watched), not at every edit:
//! `-dirty` says how the tree was when hush-api was last built.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

/// The short commit, with `-dirty`; and the files whose change means another commit.
fn from_git(dir: &Path) -> Option<(String, Vec<PathBuf>)> {
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|s| !s.is_empty());
    let mut watch = Vec::new();
    if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
        watch.push(Path::new(&git_dir).join("HEAD"));
    }
    let common = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    );
    if let Some(common) = common {
        let common = PathBuf::from(common);
        if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(head_ref));
        }
        watch.push(common.join("packed-refs"));
    }
    let commit = if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    };
    Some((commit, watch))
}

/// The profile's directory name (`debug`, `release`, `agent`): OUT_DIR is
/// `target/[TRIPLE/]PROFILE/build/PKG-HASH/out`.
fn profile() -> String {
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let parts: Vec<&str> = out.split('/').collect();
    parts
        .iter()
        .rposition(|p| *p == "build")
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| parts.get(i))
        .map(|p| p.to_string())
        .or_else(|| std::env::var("PROFILE").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HUSH_BUILD_COMMIT");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let commit = match std::env::var("HUSH_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => match from_git(&dir) {
            Some((commit, watch)) => {
                for path in watch.iter().filter(|p| p.exists()) {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
                commit
            }
            None => "unknown".into(),
        },
    };
    println!("cargo:rustc-env=HUSH_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=HUSH_BUILD_PROFILE={}", profile());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=HUSH_BUILD_TARGET={target}");
}
