//! Tests of the atomic writer: swaps, no-op writes, removal, modes, owners, bad names, and a
//! reader racing 200 writes.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn file(data: &str, mode: u32) -> FileProjection {
    FileProjection::new(data.as_bytes().to_vec(), mode)
}

fn payload(entries: &[(&str, &str)]) -> BTreeMap<String, FileProjection> {
    entries
        .iter()
        .map(|(n, d)| (n.to_string(), file(d, 0o644)))
        .collect()
}

fn generation_dirs(target: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| is_generation_dir_name(n))
        .collect();
    v.sort();
    v
}

#[test]
fn first_write_creates_layout_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    assert_eq!(w.generation(), 0);
    let out = w
        .write(&payload(&[
            ("api-key", "k1"),
            ("db/password", "p1"),
            ("db/user", "u1"),
        ]))
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.generation, 1);
    assert_eq!(out.changed_files, ["api-key", "db/password", "db/user"]);
    let t = tmp.path();
    assert_eq!(fs::read_to_string(t.join("api-key")).unwrap(), "k1");
    assert_eq!(fs::read_to_string(t.join("db/password")).unwrap(), "p1");
    assert_eq!(
        fs::read_link(t.join("db")).unwrap(),
        Path::new("..data/db"),
        "the top-level component is the link"
    );
    assert_eq!(
        fs::read_to_string(t.join("..data/.generation")).unwrap(),
        "1\n"
    );
    let dirs = generation_dirs(t);
    assert_eq!(dirs.len(), 1);
    assert_eq!(
        fs::read_link(t.join("..data")).unwrap(),
        Path::new(&dirs[0])
    );
    let mode = fs::metadata(t.join(&dirs[0])).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert!(!t.join(DATA_TMP_NAME).exists());
}

#[test]
fn unchanged_set_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    let p = payload(&[("a", "1"), ("b/c", "2")]);
    w.write(&p).unwrap();
    let before = generation_dirs(tmp.path());
    let out = w.write(&p).unwrap();
    assert_eq!(
        out,
        WriteOutcome {
            changed: false,
            generation: 1,
            changed_files: vec![]
        }
    );
    assert_eq!(generation_dirs(tmp.path()), before);

    // A mode change alone is a change.
    let mut p2 = payload(&[("a", "1"), ("b/c", "2")]);
    p2.get_mut("a").unwrap().mode = 0o600;
    let out = w.write(&p2).unwrap();
    assert!(out.changed);
    assert_eq!(out.changed_files, ["a"]);
    assert_eq!(out.generation, 2);
    // Same length, other bytes.
    let out = w.write(&payload(&[("a", "1"), ("b/c", "3")])).unwrap();
    assert_eq!(out.changed_files, ["a", "b/c"]);
}

#[test]
fn removed_names_disappear_and_old_generations_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let w = AtomicWriter::new(t).unwrap();
    w.write(&payload(&[("a", "1"), ("db/x", "2"), ("db/y", "3")]))
        .unwrap();
    let out = w.write(&payload(&[("db/x", "2")])).unwrap();
    assert_eq!(out.changed_files, ["a", "db/y"]);
    assert!(fs::symlink_metadata(t.join("a")).is_err(), "link removed");
    assert!(!t.join("db/y").exists());
    assert_eq!(fs::read_to_string(t.join("db/x")).unwrap(), "2");
    assert_eq!(generation_dirs(t).len(), 2, "current + previous");
    w.write(&payload(&[("db/x", "9")])).unwrap();
    assert_eq!(generation_dirs(t).len(), 2, "the oldest is pruned");

    let w = AtomicWriter::new(t).unwrap().keep_previous(false);
    w.write(&payload(&[])).unwrap();
    assert_eq!(generation_dirs(t).len(), 1);
    assert!(fs::symlink_metadata(t.join("db")).is_err());
    // Only the writer's own entries are left.
    let mut left: Vec<String> = fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !is_generation_dir_name(n))
        .collect();
    left.sort();
    assert_eq!(left, [DATA_DIR_NAME]);
}

#[test]
fn generation_survives_a_new_writer_and_bad_marker_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    w.write(&payload(&[("a", "1")])).unwrap();
    w.write(&payload(&[("a", "2")])).unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    assert_eq!(w.generation(), 2);
    assert_eq!(w.write(&payload(&[("a", "3")])).unwrap().generation, 3);

    fs::write(tmp.path().join("..data/.generation"), "garbage").unwrap();
    let err = AtomicWriter::new(tmp.path()).unwrap_err();
    assert!(matches!(err, WriteError::BadGeneration { .. }), "{err}");
}

#[test]
fn missing_target_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = AtomicWriter::new(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(err, WriteError::NoTarget { .. }));
    fs::write(tmp.path().join("f"), "").unwrap();
    assert!(AtomicWriter::new(&tmp.path().join("f")).is_err());
}

#[test]
fn modes_and_owners_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let w = AtomicWriter::new(t).unwrap();
    let mut p = BTreeMap::new();
    p.insert(
        "owned".to_string(),
        FileProjection {
            data: Zeroizing::new(b"s3cret".to_vec()),
            mode: 0o440,
            uid: Some(1000),
            gid: Some(1000),
        },
    );
    p.insert("plain".to_string(), file("x", 0o600));
    let root = nix::unistd::geteuid().is_root();
    match w.write(&p) {
        Ok(_) => {
            let m = fs::metadata(t.join("owned")).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o440);
            assert_eq!((m.uid(), m.gid()), (1000, 1000));
            let m = fs::metadata(t.join("plain")).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o600);
            assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
            // Same content, other owner: a change.
            p.get_mut("owned").unwrap().uid = Some(1001);
            let out = w.write(&p).unwrap();
            assert_eq!(out.changed_files, ["owned"]);
            assert_eq!(fs::metadata(t.join("owned")).unwrap().uid(), 1001);
        }
        Err(e) => {
            assert!(!root, "root can chown: {e}");
            assert!(matches!(e, WriteError::Io { op: "chown", .. }));
            // A failed write leaves no half-made generation behind.
            assert!(generation_dirs(t).is_empty());
        }
    }
}

#[test]
fn bad_names_and_modes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "a/",
        ".hidden",
        "a/.b",
        "..data",
        "nul\0",
    ] {
        let err = w.write(&payload(&[(bad, "v")])).unwrap_err();
        match &err {
            WriteError::BadPath { name, .. } => assert_eq!(name, bad),
            other => panic!("{bad:?}: {other}"),
        }
        assert!(!err.to_string().contains("\"v\""));
    }
    let err = w
        .write(&payload(&[("db", "1"), ("db/x", "2")]))
        .unwrap_err();
    assert!(matches!(err, WriteError::BadPath { ref name, .. } if name == "db/x"));
    let mut p = payload(&[("a", "1")]);
    p.get_mut("a").unwrap().mode = 0o4755;
    assert!(matches!(
        w.write(&p).unwrap_err(),
        WriteError::BadMode { .. }
    ));
    assert!(generation_dirs(tmp.path()).is_empty(), "nothing written");
    assert_eq!(w.generation(), 0);
}

#[test]
fn a_foreign_file_at_a_name_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("app.conf"), "mine").unwrap();
    let w = AtomicWriter::new(tmp.path()).unwrap();
    let err = w.write(&payload(&[("app.conf", "x")])).unwrap_err();
    assert!(matches!(err, WriteError::Conflict { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("app.conf")).unwrap(),
        "mine"
    );
    // And a foreign file that is not in the set is left alone on removal.
    w.write(&payload(&[("other", "x")])).unwrap();
    w.write(&payload(&[])).unwrap();
    assert!(tmp.path().join("app.conf").exists());
}

#[test]
fn debug_never_shows_data() {
    let f = file("hunter2", 0o400);
    let s = format!("{f:?}");
    assert!(!s.contains("hunter2"), "{s}");
    assert!(s.contains("7 bytes"), "{s}");
}

/// Each generation `g` writes files whose content all name `g`, with lengths that depend on `g`.
fn racing_payload(g: u64) -> BTreeMap<String, FileProjection> {
    let body = |name: &str| format!("{g}:{name}:{}", "x".repeat((g % 7) as usize * 100));
    ["a", "b", "nested/c", "nested/deeper/d"]
        .iter()
        .map(|n| (n.to_string(), file(&body(n), 0o644)))
        .collect()
}

#[test]
fn a_reader_resolving_data_once_never_sees_a_mixed_set() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    let w = AtomicWriter::new(&target).unwrap();
    w.write(&racing_payload(1)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, target) = (stop.clone(), reads.clone(), target.clone());
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                let dir = target.join(fs::read_link(target.join(DATA_DIR_NAME)).unwrap());
                let read = |name: &str| fs::read_to_string(dir.join(name));
                let result = (|| -> io::Result<(u64, Vec<(String, String)>)> {
                    let g: u64 = read(GENERATION_FILE)?.trim().parse().unwrap();
                    let mut files = Vec::new();
                    for n in ["a", "b", "nested/c", "nested/deeper/d"] {
                        files.push((n.to_string(), read(n)?));
                    }
                    Ok((g, files))
                })();
                match result {
                    Ok((g, files)) => {
                        for (n, content) in files {
                            let want = format!("{g}:{n}:{}", "x".repeat((g % 7) as usize * 100));
                            if content != want {
                                return Err(format!("generation {g}: {n} is {content:?}"));
                            }
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    // Pruned under a slow reader: the whole directory is gone (renamed away
                    // first), which a reader can tell apart from a missing file.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => {}
                    Err(e) => return Err(format!("{}: {e}", dir.display())),
                }
            }
            Ok(())
        })
    };
    for g in 2..=201 {
        let out = w.write(&racing_payload(g)).unwrap();
        assert_eq!(out.generation, g);
        assert!(out.changed);
    }
    // Let the reader finish at least one pass over the final set.
    let seen = reads.load(Ordering::Relaxed);
    while reads.load(Ordering::Relaxed) == seen && !reader.is_finished() {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap().unwrap();
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(generation_dirs(&target).len(), 2);
}

#[test]
fn writes_on_a_real_tmpfs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    if let Err(e) = crate::sink::files::mount_tmpfs(&dir, 1 << 20, 0o755) {
        assert!(!nix::unistd::geteuid().is_root(), "root can mount: {e}");
        return;
    }
    let result = (|| -> Result<(u64, String), WriteError> {
        let w = AtomicWriter::new(&dir)?;
        w.write(&payload(&[("a", "1"), ("db/p", "2")]))?;
        let out = w.write(&payload(&[("db/p", "3")]))?;
        Ok((
            out.generation,
            fs::read_to_string(dir.join("db/p")).unwrap(),
        ))
    })();
    let kind = crate::sink::files::check_destination(&dir, false);
    crate::sink::files::fs_check::unmount(&dir).unwrap();
    assert_eq!(result.unwrap(), (2, "3".to_string()));
    assert_eq!(kind.unwrap(), crate::sink::files::FsKind::Tmpfs);
}
