//! The layer check (tests/src/layers.rs) on this repository, and proof that it can fail.

use std::path::{Path, PathBuf};

use hush_tests::layers::check_repo;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn store_and_agent_layers_point_one_way() {
    let found = check_repo(&repo_root()).unwrap();
    let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        listed.is_empty(),
        "{} edge(s) against docs/ARCHITECTURE.md's layers:\n{}",
        listed.len(),
        listed.join("\n")
    );
}

#[test]
fn both_crates_are_described() {
    let doc = std::fs::read_to_string(repo_root().join("docs/ARCHITECTURE.md")).unwrap();
    let spec = hush_tests::layers::parse_spec(&doc).unwrap();
    assert!(spec.contains_key("store"), "no [store] layers block");
    assert!(spec.contains_key("agent"), "no [agent] layers block");
    assert!(spec.contains_key("injector"), "no [injector] layers block");
}

#[test]
fn an_upward_use_added_to_the_real_tree_fails_the_check() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("docs"), &dir.path().join("docs"));
    copy_dir(&root.join("store/src"), &dir.path().join("store/src"));
    copy_dir(&root.join("agent/src"), &dir.path().join("agent/src"));
    copy_dir(&root.join("injector/src"), &dir.path().join("injector/src"));
    let before = check_repo(dir.path()).unwrap();

    let barrier = dir.path().join("store/src/barrier/mod.rs");
    let mut text = std::fs::read_to_string(&barrier).unwrap();
    text.push_str("\n#[allow(unused_imports)]\nuse crate::core::Core;\n");
    std::fs::write(&barrier, text).unwrap();
    let after = check_repo(dir.path()).unwrap();

    let new: Vec<String> = after
        .iter()
        .filter(|v| !before.contains(v))
        .map(ToString::to_string)
        .collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert!(
        new[0].starts_with("store/src/barrier/mod.rs:")
            && new[0].contains("upward edge: store::barrier uses store::core;"),
        "{}",
        new[0]
    );
}

/// A small crate with one of each mistake, and the uses that are allowed.
#[test]
fn each_kind_of_edge_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docs/ARCHITECTURE.md",
        "# Demo\n\n```layers\n[demo]\nstorage\nauth engines\ncore\n\n[demo/core]\nrouter\nsys\n```\n",
    );
    write(
        root,
        "demo/src/lib.rs",
        "pub mod storage;\npub mod auth;\npub mod engines;\npub mod core;\npub mod extra;\n\
         use crate::core::Core;\n",
    );
    write(
        root,
        "demo/src/storage.rs",
        "pub struct Backend;\n\
         use crate::core::Core;\n\
         #[cfg(test)]\nmod tests {\n    use crate::core::Core;\n}\n\
         #[cfg(test)]\nfn helper() { let _ = crate::engines::Engine; }\n\
         crate::field!(x);\n",
    );
    write(
        root,
        "demo/src/auth.rs",
        "use crate::{engines::Engine, storage::Backend};\n",
    );
    write(
        root,
        "demo/src/engines.rs",
        "pub struct Engine;\nfn f() { let _ = crate::storage::Backend; }\n\
         #[macro_export]\nmacro_rules! field { ($x:ident) => {}; }\n",
    );
    write(root, "demo/src/extra.rs", "");
    write(
        root,
        "demo/src/core/mod.rs",
        "pub mod router;\npub mod sys;\npub struct Core;\nuse router::Router;\n",
    );
    write(
        root,
        "demo/src/core/router.rs",
        "pub struct Router;\nfn f() -> super::sys::Sys { todo!() }\n",
    );
    write(
        root,
        "demo/src/core/sys.rs",
        "pub struct Sys;\nuse super::{router::Router, Core};\n",
    );

    let found: Vec<String> = check_repo(root)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec![
            "demo/src/auth.rs:1: sideways edge: demo::auth uses demo::engines; in [demo], `auth` and `engines` share a line",
            "demo/src/core/router.rs:2: upward edge: demo::core::router uses demo::core::sys; in [demo/core], `sys` is listed above `router`",
            "demo/src/core/sys.rs:2: upward edge: demo::core::sys uses demo::core; in [demo/core], `mod` (the folder's own file) is not listed, so it sits above every layer",
            "demo/src/storage.rs:2: upward edge: demo::storage uses demo::core; in [demo], `core` is listed above `storage`",
            "demo/src/storage.rs:9: upward edge: demo::storage uses demo::engines; in [demo], `engines` is listed above `storage`",
            "docs/ARCHITECTURE.md:4: [demo] does not list module `extra`",
        ]
    );
}
