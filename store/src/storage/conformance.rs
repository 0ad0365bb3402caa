//! One set of assertions every [`Backend`] must pass, run against each implementation so they
//! all behave like [`MemoryBackend`](super::MemoryBackend).

use super::{Backend, Import, Op};

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

fn del(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

/// Run the shared semantics checks against an empty backend.
/// Ordered, bounded, resumable range reads ([`Backend::scan_range`]).
async fn check_scan_range(b: &dyn Backend) {
    let keys = [
        "ix/0003/c",
        "ix/0001/a",
        "ix/0002/b",
        "ix/0002/a",
        "ix0",
        "iw/9",
        "ix/",
    ];
    b.write(keys.iter().map(|k| put(k, b"")).collect())
        .await
        .unwrap();
    let page = b.scan_range("ix/", None, 2).await.unwrap();
    assert_eq!(page, vec!["ix/", "ix/0001/a"]);
    let page = b.scan_range("ix/", Some("ix/0001/a"), 2).await.unwrap();
    assert_eq!(page, vec!["ix/0002/a", "ix/0002/b"]);
    let page = b.scan_range("ix/", Some("ix/0002/b"), 10).await.unwrap();
    assert_eq!(page, vec!["ix/0003/c"], "stays inside the prefix");
    assert!(b
        .scan_range("ix/", Some("ix/9"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(b.scan_range("ix/", None, 0).await.unwrap().is_empty());
    // A start before the prefix does not leak keys from outside it.
    let page = b.scan_range("ix/", Some("a"), 1).await.unwrap();
    assert_eq!(page, vec!["ix/"]);
    // Counts cover every depth below the prefix, and only it.
    assert_eq!(b.count_prefix("ix/").await.unwrap(), 5);
    assert_eq!(b.count_prefix("ix/0002/").await.unwrap(), 2);
    assert_eq!(b.count_prefix("nothing/").await.unwrap(), 0);
    assert_eq!(b.count_prefix("").await.unwrap(), 7);
    // Entries: the same pages with the values.
    b.write(vec![put("ix/0002/a", b"v2a")]).await.unwrap();
    let page = b.scan_entries("ix/", Some("ix/0001/a"), 2).await.unwrap();
    assert_eq!(
        page,
        vec![
            ("ix/0002/a".to_string(), b"v2a".to_vec()),
            ("ix/0002/b".to_string(), Vec::new())
        ]
    );
    let all = b.scan_entries("", None, 100).await.unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    assert!(b.scan_entries("ix/", None, 0).await.unwrap().is_empty());
    assert_eq!(
        b.scan_entries("ix/", Some("ix/0002/b"), 10)
            .await
            .unwrap()
            .len(),
        1,
        "stays inside the prefix"
    );
    b.write(keys.iter().map(|k| del(k)).collect())
        .await
        .unwrap();
}

pub async fn check(b: &dyn Backend) {
    // Empty store.
    assert_eq!(b.get("missing").await.unwrap(), None);
    assert!(b.list("").await.unwrap().is_empty());
    assert!(b.scan_prefix("").await.unwrap().is_empty());
    b.write(vec![]).await.unwrap();
    check_scan_range(b).await;

    // Put / get / overwrite / empty value.
    b.write(vec![put("a/b", b"1")]).await.unwrap();
    assert_eq!(b.get("a/b").await.unwrap().as_deref(), Some(&b"1"[..]));
    b.write(vec![put("a/b", b"2")]).await.unwrap();
    assert_eq!(b.get("a/b").await.unwrap().as_deref(), Some(&b"2"[..]));
    b.write(vec![put("empty", b"")]).await.unwrap();
    assert_eq!(b.get("empty").await.unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(b.get("a").await.unwrap(), None, "a folder is not a key");

    // Keys around the `/` boundary: '.' < '/' < '0' in byte order; LIKE wildcards are literal.
    b.write(vec![
        put("a/c/d", b"x"),
        put("a/c/e", b"x"),
        put("a/f", b"x"),
        put("a/f/g", b"x"),
        put("a.b", b"x"),
        put("a0", b"x"),
        put("a", b"x"),
        put("%/_", b"x"),
        put("ü/x", b"x"),
    ])
    .await
    .unwrap();
    assert_eq!(
        b.scan_prefix("a/").await.unwrap(),
        vec!["a/b", "a/c/d", "a/c/e", "a/f", "a/f/g"]
    );
    assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/", "f", "f/"]);
    assert_eq!(b.list("a/c/").await.unwrap(), vec!["d", "e"]);
    assert_eq!(
        b.list("").await.unwrap(),
        vec!["%/", "a", "a.b", "a/", "a0", "empty", "ü/"]
    );
    assert_eq!(b.scan_prefix("%").await.unwrap(), vec!["%/_"]);
    assert_eq!(b.scan_prefix("_").await.unwrap(), Vec::<String>::new());
    assert_eq!(b.list("ü/").await.unwrap(), vec!["x"]);
    assert!(b.list("nothing/").await.unwrap().is_empty());
    assert!(
        b.list("a/b/").await.unwrap().is_empty(),
        "a leaf has no children"
    );

    // Prefixes whose upper bound needs a carry or skips the surrogate gap.
    b.write(vec![
        put("m\u{10FFFF}a", b"x"),
        put("m\u{10FFFF}", b"x"),
        put("n", b"x"),
        put("p\u{D7FF}q", b"x"),
        put("p\u{E000}", b"x"),
    ])
    .await
    .unwrap();
    assert_eq!(
        b.scan_prefix("m\u{10FFFF}").await.unwrap(),
        vec!["m\u{10FFFF}", "m\u{10FFFF}a"]
    );
    assert_eq!(
        b.scan_prefix("p\u{D7FF}").await.unwrap(),
        vec!["p\u{D7FF}q"]
    );

    // Delete, delete of a missing key, order inside one batch.
    b.write(vec![del("a/f"), del("never-there")]).await.unwrap();
    assert_eq!(b.get("a/f").await.unwrap(), None);
    assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/", "f/"]);
    b.write(vec![put("k", b"1"), del("k")]).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None, "later delete wins");
    b.write(vec![del("k"), put("k", b"2")]).await.unwrap();
    assert_eq!(
        b.get("k").await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "later put wins"
    );

    // Removing every key under a folder removes the folder from its parent's listing.
    b.write(vec![del("a/c/d"), del("a/c/e")]).await.unwrap();
    assert_eq!(b.list("a/").await.unwrap(), vec!["b", "f/"]);

    // Binary values round-trip exactly.
    let bin: Vec<u8> = (0..=255u8).collect();
    b.write(vec![put("bin", &bin)]).await.unwrap();
    assert_eq!(b.get("bin").await.unwrap(), Some(bin));

    check_snapshot(b).await;
}

/// Every entry through [`Backend::export`], in order.
async fn exported(b: &dyn Backend) -> Vec<(String, Vec<u8>)> {
    let mut rx = b.export().await.unwrap();
    let mut out = Vec::new();
    while let Some(entry) = rx.recv().await {
        out.push(entry.unwrap());
    }
    out
}

/// `entries` fed to [`Backend::replace_all`], with [`Import::End`] at the end when `commit`.
async fn replace(
    b: &dyn Backend,
    entries: &[(String, Vec<u8>)],
    commit: bool,
) -> Result<u64, super::StorageError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let entries = entries.to_vec();
    let feed = tokio::spawn(async move {
        for (k, v) in entries {
            if tx.send(Import::Entry(k, v)).await.is_err() {
                return;
            }
        }
        if commit {
            let _ = tx.send(Import::End).await;
        }
    });
    let result = b.replace_all(rx).await;
    feed.await.unwrap();
    result
}

/// Snapshots: a consistent ordered export, an all-or-nothing replace.
async fn check_snapshot(b: &dyn Backend) {
    // The export is every entry, in key (byte) order, values exact.
    let keys = b.scan_prefix("").await.unwrap();
    let mut want = Vec::new();
    for k in &keys {
        want.push((k.clone(), b.get(k).await.unwrap().unwrap()));
    }
    let all = exported(b).await;
    assert_eq!(all, want);
    assert!(all.len() > 10, "the earlier checks left entries");

    // One view: writes after the first entry was read are not in the stream (more entries
    // than the channel holds, so the reader cannot have read ahead to the end).
    let many: Vec<Op> = (0..2000)
        .map(|i| put(&format!("snap/{i:05}"), b"v"))
        .collect();
    b.write(many).await.unwrap();
    let before = exported(b).await;
    let mut rx = b.export().await.unwrap();
    let first = rx.recv().await.unwrap().unwrap();
    b.write(vec![
        put("snap/00000", b"changed"),
        del("snap/01999"),
        put("zzz", b"new"),
    ])
    .await
    .unwrap();
    let mut during = vec![first];
    while let Some(entry) = rx.recv().await {
        during.push(entry.unwrap());
    }
    assert_eq!(during, before, "the export saw one consistent view");
    let now = exported(b).await;

    // A stream that stops before End changes nothing.
    let other: Vec<(String, Vec<u8>)> = (0..600)
        .map(|i| (format!("other/{i:04}"), vec![i as u8; 3]))
        .collect();
    assert!(replace(b, &other, false).await.is_err());
    assert_eq!(
        exported(b).await,
        now,
        "a cut-short restore left the old entries"
    );

    // A complete one replaces everything, atomically.
    assert_eq!(replace(b, &other, true).await.unwrap(), 600);
    assert_eq!(exported(b).await, other);
    assert_eq!(b.get("a/b").await.unwrap(), None, "old keys are gone");
    assert_eq!(
        b.get("other/0005").await.unwrap().as_deref(),
        Some(&[5u8, 5, 5][..])
    );
    assert_eq!(b.list("").await.unwrap(), vec!["other/"]);
    // An empty replace empties the store.
    assert_eq!(replace(b, &[], true).await.unwrap(), 0);
    assert!(b.scan_prefix("").await.unwrap().is_empty());
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_backend_conforms() {
        super::check(&crate::storage::MemoryBackend::new()).await;
    }
}
