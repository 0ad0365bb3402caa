//! Tests of the supervisor with real processes (`sh` scripts and `sleep`).

use super::*;
use std::path::Path;

fn sh(script: &str, grace: Duration) -> ChildSpec {
    ChildSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        grace,
        remove_env: vec![],
    }
}

fn env(pairs: &[(&str, &str)]) -> ChildEnv {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
        .collect()
}

/// Waits (bounded) until `path` holds `want`.
async fn wait_for_content(path: &Path, want: &str) {
    for _ in 0..400 {
        if std::fs::read_to_string(path).is_ok_and(|s| s == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} never held {want:?}; it holds {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

/// Runs `fut` with an outer bound, so a hang fails the test instead of blocking the run.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("took too long")
}

#[tokio::test]
async fn env_reaches_the_child_and_its_exit_code_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // A variable of the agent's own environment (cargo sets it for tests) that must not pass.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let mut spec = sh(
        r#"printf '%s|%s' "$DB_PASSWORD" "${CARGO_MANIFEST_DIR:-unset}" > "$OUT"; exit 3"#,
        Duration::from_secs(5),
    );
    spec.remove_env = vec!["CARGO_MANIFEST_DIR".into()];
    let sup = Supervisor::spawn(
        spec,
        &env(&[("DB_PASSWORD", "s3cret"), ("OUT", out.to_str().unwrap())]),
    )
    .unwrap();
    let exit = bounded(sup.exited()).await;
    assert_eq!(exit, ChildExit::Code(3));
    assert_eq!(exit.exit_code(), 3);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "s3cret|unset");
    assert!(!format!("{sup:?}").contains("s3cret"));
    // Nothing left to signal.
    assert!(matches!(
        sup.signal(Signal::SIGHUP).await.unwrap_err(),
        SuperviseError::NotRunning
    ));
}

#[tokio::test]
async fn signal_policy_signals_the_child() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script =
        r#"trap 'echo hup >> "$OUT"' HUP; echo ready > "$OUT"; while :; do sleep 0.05; done"#;
    let sup = Supervisor::spawn(
        sh(script, Duration::from_secs(5)),
        &env(&[("OUT", out.to_str().unwrap())]),
    )
    .unwrap();
    wait_for_content(&out, "ready\n").await;
    let pid = sup.pid().await;
    sup.on_change(&env(&[]), ChangePolicy::Signal(Signal::SIGHUP))
        .await
        .unwrap();
    wait_for_content(&out, "ready\nhup\n").await;
    assert_eq!(sup.pid().await, pid, "not restarted");
    // Shutdown forwards SIGTERM; sh has no trap for it and dies of it.
    let exit = bounded(sup.shutdown(Signal::SIGTERM)).await;
    assert_eq!(exit, ChildExit::Signal(15));
    assert_eq!(exit.exit_code(), 143);
    assert!(
        sup.exited_rx.borrow().is_none(),
        "a stop we asked for is not the child's own exit"
    );
}

#[tokio::test]
async fn restart_policy_respawns_with_the_new_env() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = r#"trap 'exit 0' TERM; echo "$VAL" >> "$OUT"; while :; do sleep 0.05; done"#;
    let o = out.to_str().unwrap();
    let sup = Supervisor::spawn(
        sh(script, Duration::from_secs(10)),
        &env(&[("VAL", "one"), ("OUT", o)]),
    )
    .unwrap();
    wait_for_content(&out, "one\n").await;
    let first = sup.pid().await;
    bounded(sup.on_change(&env(&[("VAL", "two"), ("OUT", o)]), ChangePolicy::Restart))
        .await
        .unwrap();
    wait_for_content(&out, "one\ntwo\n").await;
    assert_ne!(sup.pid().await, first);
    let first = Pid::from_raw(i32::try_from(first).unwrap());
    assert_eq!(kill(first, None), Err(Errno::ESRCH), "old child is gone");
    assert!(sup.exited_rx.borrow().is_none(), "a restart is not an exit");
    assert_eq!(
        bounded(sup.shutdown(Signal::SIGTERM)).await,
        ChildExit::Code(0)
    );
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = r#"trap '' TERM INT; echo "$VAL" >> "$OUT"; while :; do sleep 0.05; done"#;
    let o = out.to_str().unwrap();
    let sup = Supervisor::spawn(
        sh(script, Duration::from_millis(300)),
        &env(&[("VAL", "a"), ("OUT", o)]),
    )
    .unwrap();
    wait_for_content(&out, "a\n").await;
    bounded(sup.on_change(&env(&[("VAL", "b"), ("OUT", o)]), ChangePolicy::Restart))
        .await
        .unwrap();
    wait_for_content(&out, "a\nb\n").await;
    assert_eq!(
        bounded(sup.shutdown(Signal::SIGINT)).await,
        ChildExit::Signal(9)
    );
}

#[tokio::test]
async fn bad_commands_are_errors() {
    let err = Supervisor::spawn(
        ChildSpec {
            argv: vec![],
            grace: Duration::from_secs(1),
            remove_env: vec![],
        },
        &env(&[]),
    )
    .unwrap_err();
    assert!(matches!(err, SuperviseError::EmptyCommand));
    let err = Supervisor::spawn(
        ChildSpec {
            argv: vec!["/nonexistent/app".into()],
            grace: Duration::from_secs(1),
            remove_env: vec![],
        },
        &env(&[("SECRET", "hunter2")]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/app"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn a_child_killed_from_outside_is_reported() {
    let sup = Supervisor::spawn(
        ChildSpec {
            argv: vec!["sleep".into(), "60".into()],
            grace: Duration::from_secs(1),
            remove_env: vec![],
        },
        &env(&[]),
    )
    .unwrap();
    let pid = Pid::from_raw(i32::try_from(sup.pid().await).unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
    let exit = bounded(sup.exited()).await;
    assert_eq!(exit, ChildExit::Signal(9));
    assert_eq!(exit.exit_code(), 137);
}
