//! The plugin in-process: its socket, dockerd's calls, the state file across a restart, and a
//! first mount that cannot reach the store.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;

/// POST `body` to `route` on the socket as dockerd does; the JSON answer.
async fn call(socket: &Path, route: &str, body: Value) -> Value {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {route} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{route}: {out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-type: application/vnd.docker.plugins.v1+json"),
        "{out}"
    );
    let (_, json) = out.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{route}: {e}: {json}"))
}

struct Running {
    socket: std::path::PathBuf,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), PluginError>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        assert!(!self.socket.exists(), "the socket is removed at exit");
    }
}

async fn start(dir: &Path, extra: &[&str]) -> Running {
    let socket = dir.join("run/hush-test.sock");
    let mut args = vec![
        "docker-plugin".to_string(),
        "--socket".into(),
        socket.display().to_string(),
        "--state-dir".into(),
        dir.join("state").display().to_string(),
        // Nothing listens here: mounts cannot render.
        "--addr".into(),
        "http://127.0.0.1:9".into(),
        "--token-file".into(),
        dir.join("token").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let config = PluginConfig::load(PluginFlags::try_parse_from(args).unwrap()).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(config, shutdown.clone()));
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Running {
        socket,
        shutdown,
        task,
    }
}

#[tokio::test]
async fn speaks_the_volume_driver_protocol_and_keeps_volumes_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    let p = start(dir.path(), &[]).await;
    let s = &p.socket;
    assert_eq!(
        call(s, "/Plugin.Activate", json!({})).await,
        json!({"Implements": ["VolumeDriver"]})
    );
    assert_eq!(
        call(s, "/VolumeDriver.Capabilities", json!({})).await,
        json!({"Capabilities": {"Scope": "local"}})
    );
    let bad = call(
        s,
        "/VolumeDriver.Create",
        json!({"Name": "app", "Opts": {"pw": "secret/data/app#pw", "hush.colour": "red"}}),
    )
    .await;
    assert!(
        bad["Err"].as_str().unwrap().contains("\"hush.colour\""),
        "{bad}"
    );
    let bad = call(
        s,
        "/VolumeDriver.Create",
        json!({"Name": "app", "Opts": {"pw": "secret//app#pw"}}),
    )
    .await;
    assert!(
        bad["Err"].as_str().unwrap().contains("secret//app"),
        "{bad}"
    );
    let ok = call(
        s,
        "/VolumeDriver.Create",
        json!({"Name": "app", "Opts": {"pw": "secret/data/app#pw", "hush.mode": "0440"}}),
    )
    .await;
    assert_eq!(ok, json!({"Err": ""}));
    let list = call(s, "/VolumeDriver.List", json!({})).await;
    assert_eq!(list, json!({"Volumes": [{"Name": "app"}], "Err": ""}));
    let got = call(s, "/VolumeDriver.Get", json!({"Name": "app"})).await;
    assert_eq!(got["Volume"]["Status"]["mounts"], 0, "{got}");
    assert_eq!(
        got["Volume"]["Status"]["options"]["pw"], "secret/data/app#pw",
        "{got}"
    );
    let path = call(s, "/VolumeDriver.Path", json!({"Name": "app"})).await;
    assert_eq!(path, json!({"Mountpoint": "", "Err": ""}));
    let missing = call(s, "/VolumeDriver.Get", json!({"Name": "nope"})).await;
    assert_eq!(missing, json!({"Err": "no volume named \"nope\""}));
    let state = std::fs::read_to_string(dir.path().join("state/volumes.json")).unwrap();
    assert!(state.contains("secret/data/app#pw"), "{state}");
    p.stop().await;

    // A restart keeps the volume.
    let p = start(dir.path(), &[]).await;
    let list = call(&p.socket, "/VolumeDriver.List", json!({})).await;
    assert_eq!(list, json!({"Volumes": [{"Name": "app"}], "Err": ""}));
    let removed = call(&p.socket, "/VolumeDriver.Remove", json!({"Name": "app"})).await;
    assert_eq!(removed, json!({"Err": ""}));
    let list = call(&p.socket, "/VolumeDriver.List", json!({})).await;
    assert_eq!(list, json!({"Volumes": [], "Err": ""}));
    p.stop().await;
}

#[tokio::test]
async fn a_first_mount_without_the_store_is_a_clear_err_and_leaves_nothing() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    let p = start(dir.path(), &["--mount-deadline", "1s"]).await;
    let s = &p.socket;
    let ok = call(
        s,
        "/VolumeDriver.Create",
        json!({"Name": "down", "Opts": {"pw": "secret/data/app#pw"}}),
    )
    .await;
    assert_eq!(ok, json!({"Err": ""}));
    let started = std::time::Instant::now();
    let mounted = call(
        s,
        "/VolumeDriver.Mount",
        json!({"Name": "down", "ID": "c1"}),
    )
    .await;
    let err = mounted["Err"].as_str().unwrap();
    assert!(
        err.starts_with("volume \"down\": could not render its files"),
        "{mounted}"
    );
    assert!(
        err.contains("secret \"secret/data/app\": could not reach") && !err.contains('\n'),
        "names the secret and why, on one line: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the deadline"
    );
    let mountpoint = dir.path().join("state/volumes/down");
    assert!(!mountpoint.exists(), "no tmpfs or directory is left");
    p.stop().await;
}
