//! The tour `hush dev` runs: each step is a real `hush` command (this same executable, as a
//! child process) shown as a user would type it, then its output; a step fails the tour when
//! the command does not end as expected.

use std::path::Path;
use std::process::Stdio;

use anyhow::{anyhow, Context as _};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::Command;

use super::agent::DevAgent;
use super::{DEMO_SECRET, POLICY, POLICY_NAME};

/// What a step must do to count as passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    /// Exit 1 with a permission-denied (403) message.
    Denied,
}

/// One command of the tour.
struct Step<'a> {
    title: &'a str,
    /// What a user would type; `None`: `hush` and the arguments.
    shown: Option<String>,
    args: Vec<String>,
    /// The token to run it with.
    token: &'a SecretString,
    expect: Expect,
    /// Print what the command wrote to stdout (off when it is a token).
    show_stdout: bool,
}

impl<'a> Step<'a> {
    fn new(title: &'a str, args: &[&str], token: &'a SecretString) -> Step<'a> {
        Step {
            title,
            shown: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            token,
            expect: Expect::Success,
            show_stdout: true,
        }
    }

    fn shown(mut self, shown: String) -> Self {
        self.shown = Some(shown);
        self
    }

    fn denied(mut self) -> Self {
        self.expect = Expect::Denied;
        self
    }

    fn quiet(mut self) -> Self {
        self.show_stdout = false;
        self
    }

    fn command_line(&self) -> String {
        self.shown.clone().unwrap_or_else(|| {
            std::iter::once("hush".to_string())
                .chain(self.args.iter().map(|a| shell_quote(a)))
                .collect::<Vec<_>>()
                .join(" ")
        })
    }
}

/// The tour's settings and step counter.
pub(super) struct Tour<'a> {
    pub exe: &'a Path,
    pub addr: &'a str,
    pub root: &'a SecretString,
    pub dir: &'a Path,
    pub log_format: hush_api::LogFormat,
    pub done: std::cell::Cell<usize>,
}

const STEPS: usize = 15;

impl Tour<'_> {
    /// Steps 1-12; returns the scoped token made on the way.
    pub(super) async fn run(&self) -> anyhow::Result<SecretString> {
        println!("A short tour: each step is a hush command, then what it printed.");
        let root = self.root;

        self.exec(Step::new(
            "Write a secret",
            &[
                "kv",
                "put",
                DEMO_SECRET,
                "username=demo",
                "password=demo-pass-1",
            ],
            root,
        ))
        .await?;
        self.exec(Step::new("Read it back", &["kv", "get", DEMO_SECRET], root))
            .await?;
        self.exec(Step::new(
            "Write a second version",
            &[
                "kv",
                "put",
                DEMO_SECRET,
                "username=demo",
                "password=demo-pass-2",
            ],
            root,
        ))
        .await?;
        self.exec(Step::new(
            "Version 1 is still there",
            &["kv", "get", "-version=1", "-field=password", DEMO_SECRET],
            root,
        ))
        .await?;
        self.exec(Step::new(
            "Metadata and version history",
            &["kv", "metadata", "get", DEMO_SECRET],
            root,
        ))
        .await?;

        let policy_file = self.dir.join(format!("{POLICY_NAME}.hcl"));
        std::fs::write(&policy_file, POLICY)
            .with_context(|| format!("cannot write {}", policy_file.display()))?;
        let policy_path = policy_file.display().to_string();
        let step = Step::new(
            "A policy that can only read secret/data/demo/*",
            &["policy", "write", POLICY_NAME, &policy_path],
            root,
        );
        let n = self.header(&step);
        println!("$ cat {}", shell_quote(&policy_path));
        print!("{}", indent(POLICY));
        self.exec_body(n, &step).await?;

        let step = Step::new(
            "A token with only that policy",
            &[
                "token",
                "create",
                "-policy",
                POLICY_NAME,
                "-ttl=1h",
                "-field=token",
            ],
            root,
        )
        .shown(format!(
            "DEMO_TOKEN=$(hush token create -policy {POLICY_NAME} -ttl=1h -field=token)"
        ))
        .quiet();
        let out = self.exec(step).await?;
        let scoped = SecretString::from(out.trim().to_string());
        if scoped.expose_secret().is_empty() {
            anyhow::bail!("hush token create printed no token");
        }
        println!("    (the new token is in $DEMO_TOKEN)");

        let as_scoped = |args: &[&str]| {
            let plain = std::iter::once("hush")
                .chain(args.iter().copied())
                .map(shell_quote)
                .collect::<Vec<_>>()
                .join(" ");
            format!("HUSH_TOKEN=$DEMO_TOKEN {plain}")
        };
        let args = ["kv", "get", "-field=password", DEMO_SECRET];
        self.exec(
            Step::new("The scoped token reads the demo secret", &args, &scoped)
                .shown(as_scoped(&args)),
        )
        .await?;
        let args = ["kv", "get", "secret/ops/db"];
        self.exec(
            Step::new("...and is refused anywhere else (403)", &args, &scoped)
                .shown(as_scoped(&args))
                .denied(),
        )
        .await?;

        let audit_log = self.dir.join("audit.log").display().to_string();
        let file_path = format!("file_path={audit_log}");
        self.exec(Step::new(
            "Log every request to a file audit device",
            &["audit", "enable", "file", &file_path],
            root,
        ))
        .await?;
        let args = ["kv", "get", "-field=username", DEMO_SECRET];
        self.exec(
            Step::new(
                "A request to log (values are HMAC'd in the log)",
                &args,
                &scoped,
            )
            .shown(as_scoped(&args)),
        )
        .await?;
        self.exec(Step::new(
            "Check the log's hash chain: no line edited, removed or reordered",
            &["audit", "verify", &audit_log],
            root,
        ))
        .await?;
        Ok(scoped)
    }

    /// Steps 13-14: hush-agent, with the scoped token, renders the demo secret as files on
    /// tmpfs; a new version then shows up in the files by itself. The agent keeps running.
    pub(super) async fn files(
        &self,
        agent_bin: &Path,
        scoped: &SecretString,
    ) -> anyhow::Result<DevAgent> {
        let n = self.next("hush-agent renders the secret as files (with $DEMO_TOKEN's access)");
        let mut agent = DevAgent::spawn(agent_bin, self.addr, scoped, self.dir, self.log_format)?;
        println!("$ {}", agent.shown);
        if agent.on_disk {
            println!(
                "    (no /dev/shm here: the demo writes to disk with --allow-disk; \
                 never do that with real secrets)"
            );
        }
        agent
            .wait_for("password", None)
            .await
            .with_context(|| format!("step {n}/{STEPS}"))?;
        let dest = agent.dest.display().to_string();
        println!("$ ls -l {}", shell_quote(&dest));
        print!("{}", indent(&agent.listing()));
        println!("$ cat {}/password", shell_quote(&dest));
        print!("{}", indent(&read(&agent, "password")));

        let args = [
            "kv",
            "put",
            DEMO_SECRET,
            "username=demo",
            "password=demo-pass-3",
        ];
        let step = Step::new(
            "Write version 3: the files follow, all of them at once",
            &args,
            self.root,
        );
        self.exec(step).await?;
        let n = self.done.get();
        let waited = agent
            .wait_for("password", Some("demo-pass-3"))
            .await
            .with_context(|| format!("step {n}/{STEPS}"))?;
        println!("$ cat {}/password", shell_quote(&dest));
        print!("{}", indent(&read(&agent, "password")));
        println!(
            "    (changed {:.1}s after the write; username, password and app.json are swapped \
             together)",
            waited.as_secs_f64()
        );
        Ok(agent)
    }

    /// Step 15: a second agent serves the same files through FUSE; a `cat` of one is an
    /// access-log line naming the reader. Stopped (and unmounted) at the end of the step.
    /// Skipped, saying why, where FUSE cannot be mounted.
    pub(super) async fn fuse(&self, agent_bin: &Path, scoped: &SecretString) -> anyhow::Result<()> {
        let n = self.next("hush-agent --fuse: the same files from memory, and who opened them");
        let access_log = self.dir.join("access.log");
        let mut agent = DevAgent::spawn_fuse(
            agent_bin,
            self.addr,
            scoped,
            self.dir,
            &access_log,
            self.log_format,
        )?;
        println!("$ {}", agent.shown);
        if let Err(e) = agent.wait_for("password", None).await {
            let _ = agent.stop().await;
            let why = format!("{e:#}");
            let why = why
                .lines()
                .find(|l| l.contains("--fuse"))
                .unwrap_or("no FUSE here");
            println!("    (skipped: {})", why.trim());
            debug_assert_eq!(self.done.get(), STEPS);
            return Ok(());
        }
        let password = agent.dest.join("password").display().to_string();
        println!("$ cat {}", shell_quote(&password));
        let child = std::process::Command::new("cat")
            .arg(&password)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run cat")?;
        let pid = child.id();
        let out = child.wait_with_output().context("cannot run cat")?;
        print!("{}", indent(&String::from_utf8_lossy(&out.stdout)));
        let needle = format!("\"pid\":{pid},");
        let started = tokio::time::Instant::now();
        let line = loop {
            let text = std::fs::read_to_string(&access_log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
                break line.to_string();
            }
            if started.elapsed() > std::time::Duration::from_secs(5) {
                let _ = agent.stop().await;
                return Err(anyhow!(
                    "step {n}/{STEPS}: no access-log line for cat (pid {pid}) in {}",
                    access_log.display()
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        println!(
            "$ grep '\"pid\":{pid},' {}",
            shell_quote(&access_log.display().to_string())
        );
        print!("{}", indent(&line));
        agent
            .stop()
            .await
            .with_context(|| format!("step {n}/{STEPS}"))?;
        println!(
            "    (that open reached the agent: checked, logged with the reader's pid, uid and \
             program, never the value; SIGTERM unmounted {})",
            shell_quote(&agent.dest.display().to_string())
        );
        debug_assert_eq!(self.done.get(), STEPS);
        Ok(())
    }

    /// Number the next step and print its title.
    fn next(&self, title: &str) -> usize {
        let n = self.done.get() + 1;
        self.done.set(n);
        println!("\n==> {n}/{STEPS}  {title}");
        n
    }

    fn header(&self, step: &Step<'_>) -> usize {
        self.next(step.title)
    }

    async fn exec(&self, step: Step<'_>) -> anyhow::Result<String> {
        let n = self.header(&step);
        self.exec_body(n, &step).await
    }

    /// Print the command, run it, print its output, check the outcome; returns stdout.
    async fn exec_body(&self, n: usize, step: &Step<'_>) -> anyhow::Result<String> {
        let line = step.command_line();
        println!("$ {line}");
        let out = Command::new(self.exe)
            .args(&step.args)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_CACERT")
            .env_remove("HUSH_CACERT")
            .env("HUSH_ADDR", self.addr)
            .env("HUSH_TOKEN", step.token.expose_secret())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("step {n}/{STEPS}: cannot run {line}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let fail = |why: &str| {
            let mut msg = format!("step {n}/{STEPS} ({}) failed: `{line}` {why}", step.title);
            if !stderr.trim().is_empty() {
                msg.push('\n');
                msg.push_str(indent(&stderr).trim_end());
            }
            anyhow!(msg)
        };
        match step.expect {
            Expect::Success if !out.status.success() => {
                return Err(fail(&format!("exited with {}", out.status)));
            }
            Expect::Denied if out.status.code() != Some(1) => {
                return Err(fail(&format!(
                    "should have been refused but exited with {}",
                    out.status
                )));
            }
            Expect::Denied if !stderr.contains("permission denied") => {
                return Err(fail("failed without saying permission denied"));
            }
            _ => {}
        }
        if step.show_stdout && !stdout.is_empty() {
            print!("{}", indent(&stdout));
        }
        if step.expect == Expect::Denied {
            print!("{}", indent(&stderr));
        }
        Ok(stdout)
    }
}

/// A rendered file's text, for showing (a line of its own).
fn read(agent: &DevAgent, name: &str) -> String {
    let text = std::fs::read_to_string(agent.dest.join(name)).unwrap_or_default();
    format!("{}\n", text.trim_end())
}

/// Every line indented by four spaces.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect()
}

/// `s` as a POSIX shell word: bare when safe, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%^".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("secret/demo/app"), "secret/demo/app");
        assert_eq!(shell_quote("file_path=/tmp/a.log"), "file_path=/tmp/a.log");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn steps_show_the_command() {
        let t = SecretString::from("hvs.x");
        let s = Step::new("t", &["kv", "get", "secret/a b"], &t);
        assert_eq!(s.command_line(), "hush kv get 'secret/a b'");
        let s = s.shown("X=1 hush y".into());
        assert_eq!(s.command_line(), "X=1 hush y");
    }

    #[test]
    fn indent_keeps_blank_lines_bare() {
        assert_eq!(indent("a\n\nb"), "    a\n\n    b\n");
    }
}
