//! What `--version` prints for every Hush program (hushd, hush-agent, hush, hush-injector):
//! the workspace version, the git commit it was built from (short; `-dirty` when tracked files
//! differed; `unknown` without git, e.g. from a tarball, unless `HUSH_BUILD_COMMIT` was set),
//! the cargo profile and the target. Filled in by `build.rs`.
//!
//! The programs share the workspace's version (`version.workspace = true`), so one string
//! serves them all: `#[command(version = hush_api::build_info::VERSION)]`.

/// The git commit, e.g. `1a2b3c4d5e6f` or `1a2b3c4d5e6f-dirty`, or `unknown`.
pub const COMMIT: &str = env!("HUSH_BUILD_COMMIT");
/// The cargo profile, e.g. `debug`, `release`, `agent`.
pub const PROFILE: &str = env!("HUSH_BUILD_PROFILE");
/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("HUSH_BUILD_TARGET");

/// `0.1.0 (commit 1a2b3c4d5e6f, release, x86_64-unknown-linux-gnu)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HUSH_BUILD_COMMIT"),
    ", ",
    env!("HUSH_BUILD_PROFILE"),
    ", ",
    env!("HUSH_BUILD_TARGET"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_commit_profile_and_target() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(
            VERSION.contains(COMMIT) && VERSION.contains(TARGET),
            "{VERSION}"
        );
        assert!(!COMMIT.is_empty() && !PROFILE.is_empty(), "{VERSION}");
        // cargo test builds with the dev profile, whose directory is `debug`.
        assert_eq!(PROFILE, "debug");
    }
}
