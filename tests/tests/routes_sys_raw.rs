//! `sys/raw` against a real hushd: 404 unless started with `--raw-storage-endpoint`; then
//! root reads, writes, lists and deletes decrypted storage entries, never the keyring.

use hush_tests::{http_client, Hushd};
use serde_json::json;

#[tokio::test]
async fn sys_raw_is_off_by_default() {
    let h = Hushd::dev().await;
    for (method, path) in [("GET", "sys/raw/core/mounts"), ("LIST", "sys/raw/")] {
        let (s, b) = h.call(method, path, None).await;
        assert_eq!(s, 404, "{method} {path}: {b}");
    }
}

#[tokio::test]
async fn sys_raw_with_the_flag() {
    let mut h = Hushd::start(
        &[
            "--dev",
            "--dev-root-token",
            "root",
            "--raw-storage-endpoint",
        ],
        "http",
        http_client(),
    )
    .await;
    h.token = Some("root".into());
    let (s, b) = h
        .call("PUT", "sys/raw/ops/note", Some(json!({"value": "hello"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/raw/ops/note", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["value"], "hello");
    let (s, b) = h.call("LIST", "sys/raw/ops/", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["note"]));
    let (s, b) = h.call("GET", "sys/raw/core/keyring", None).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["errors"][0], "cannot read 'core/keyring'");
    let (s, b) = h.call("DELETE", "sys/raw/ops/note", None).await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = h.call("GET", "sys/raw/ops/note", None).await;
    assert_eq!(s, 404);
    // Without a token, or with one lacking sudo, it is refused.
    let (s, _) = h.call_as(None, "GET", "sys/raw/ops/note", None).await;
    assert_eq!(s, 403);
}
