//! The notify command: run after a swap, told what changed through its environment.
//!
//! `HUSH_GENERATION` holds the new generation number and `HUSH_CHANGED_FILES` the changed
//! names, comma-separated (names only, never values). The command runs in its own process
//! group; on timeout the whole group is killed, so a `sh -c '...'` leaves nothing behind.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::{CommandSpec, NotifyError};

/// Runs `spec` with the change in its environment; waits for it up to its timeout.
pub async fn run(
    spec: &CommandSpec,
    changed_files: &[String],
    generation: u64,
) -> Result<(), NotifyError> {
    let (program, args) = spec.argv.split_first().ok_or(NotifyError::EmptyCommand)?;
    let mut command = tokio::process::Command::new(program);
    // systemd's variables are the agent's: the command is not the service.
    for var in hush_api::sd_notify::ENV_VARS {
        command.env_remove(var);
    }
    let mut child = command
        .args(args)
        .env("HUSH_GENERATION", generation.to_string())
        .env("HUSH_CHANGED_FILES", changed_files.join(","))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| NotifyError::Spawn {
            program: program.clone(),
            err,
        })?;
    let pgid = child.id();
    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(status) => status.map_err(|err| NotifyError::Spawn {
            program: program.clone(),
            err,
        })?,
        Err(_) => {
            if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            return Err(NotifyError::Timeout {
                program: program.clone(),
                timeout: spec.timeout,
            });
        }
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => {
            tracing::debug!(program = %program, generation, "notify command done");
            Ok(())
        }
        (Some(code), _) => Err(NotifyError::Exit {
            program: program.clone(),
            code,
        }),
        (None, Some(signal)) => Err(NotifyError::Killed {
            program: program.clone(),
            signal,
        }),
        (None, None) => Err(NotifyError::Exit {
            program: program.clone(),
            code: -1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sh(script: &str, arg: &str) -> CommandSpec {
        CommandSpec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                arg.into(),
            ],
            timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn command_gets_generation_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let spec = sh(
            r#"printf '%s|%s' "$HUSH_GENERATION" "$HUSH_CHANGED_FILES" > "$1""#,
            out.to_str().unwrap(),
        );
        run(&spec, &["a".into(), "db/p".into()], 7).await.unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "7|a,db/p");
    }

    #[tokio::test]
    async fn nonzero_exit_names_the_code() {
        let err = run(&sh("exit 4", ""), &[], 1).await.unwrap_err();
        assert!(matches!(err, NotifyError::Exit { code: 4, .. }), "{err}");
        assert_eq!(err.to_string(), "notify command \"sh\" exited with code 4");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("survived");
        let mut spec = sh(
            r#"(sleep 2; touch "$1") & sleep 60"#,
            marker.to_str().unwrap(),
        );
        spec.timeout = Duration::from_millis(300);
        let err = run(&spec, &[], 1).await.unwrap_err();
        assert!(matches!(err, NotifyError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("killed it"), "{err}");
        // The background subshell was in the group: it never gets to touch the marker.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn missing_program_and_empty_argv() {
        let spec = CommandSpec {
            argv: vec!["/nonexistent/reload".into()],
            timeout: Duration::from_secs(1),
        };
        let err = run(&spec, &[], 1).await.unwrap_err();
        assert!(matches!(err, NotifyError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/reload"));
        let spec = CommandSpec {
            argv: vec![],
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            run(&spec, &[], 1).await.unwrap_err(),
            NotifyError::EmptyCommand
        ));
    }

    #[tokio::test]
    async fn killed_by_a_signal_is_reported() {
        let err = run(&sh("kill -9 $$", ""), &[], 1).await.unwrap_err();
        assert!(
            matches!(err, NotifyError::Killed { signal: 9, .. }),
            "{err}"
        );
    }
}
