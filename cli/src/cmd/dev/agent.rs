//! The demo's hush-agents: one renders the demo secret as files on tmpfs with the scoped token,
//! so the tour can show files appearing and changing live (it runs until `hush dev` stops); the
//! other serves the same files through FUSE with an access log, for one step.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};

use super::{log_tail, terminate, DEMO_SECRET};

/// How long the agent may take to write the first files, or to follow a change.
const FILES_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the demo agent checks for new versions (the default is 60s; the demo is impatient).
pub(super) const REFRESH: &str = "1s";

/// The files the demo agent renders: `(name, --secret value)`.
pub(super) fn files() -> Vec<(&'static str, String)> {
    let api_path = DEMO_SECRET.replacen("secret/", "secret/data/", 1);
    vec![
        ("username", format!("username={api_path}#username")),
        ("password", format!("password={api_path}#password")),
        ("app.json", format!("app.json={api_path}")),
    ]
}

/// A running `hush-agent` and the tmpfs directory it writes.
pub(super) struct DevAgent {
    child: Child,
    pub dest: PathBuf,
    /// Where the destination lives: removed (with the files) when the demo ends.
    _dest_dir: tempfile::TempDir,
    log: PathBuf,
    /// The command line as a user would type it.
    pub shown: String,
    /// Set when there is no tmpfs at hand and the demo writes to disk.
    pub on_disk: bool,
}

impl DevAgent {
    /// Start the agent with `token` (written to a 0600 file in `work`).
    pub fn spawn(
        bin: &Path,
        addr: &str,
        token: &SecretString,
        work: &Path,
        log_format: hush_api::LogFormat,
    ) -> anyhow::Result<DevAgent> {
        // /dev/shm is a tmpfs on Linux: the agent accepts it as it is. Elsewhere the demo
        // has to write to disk, and says so.
        let shm = Path::new("/dev/shm");
        let on_disk = !shm.is_dir();
        let parent = if on_disk {
            std::env::temp_dir()
        } else {
            shm.to_path_buf()
        };
        let mut extra = log_flags(log_format);
        if on_disk {
            extra.push("--allow-disk".to_string());
        }
        let mut agent = Self::start(bin, addr, token, work, "hush-agent", &parent, extra)?;
        agent.on_disk = on_disk;
        Ok(agent)
    }

    /// Start an agent serving the same files through FUSE (`--fuse`), its access log in
    /// `access_log`.
    pub fn spawn_fuse(
        bin: &Path,
        addr: &str,
        token: &SecretString,
        work: &Path,
        access_log: &Path,
        log_format: hush_api::LogFormat,
    ) -> anyhow::Result<DevAgent> {
        let mut extra = log_flags(log_format);
        extra.extend([
            "--fuse".to_string(),
            "--access-log".to_string(),
            access_log.display().to_string(),
        ]);
        Self::start(bin, addr, token, work, "hush-agent-fuse", work, extra)
    }

    /// Start an agent named `name` (its token file and log in `work`) with its destination in
    /// a new directory under `parent`, and `extra` flags.
    fn start(
        bin: &Path,
        addr: &str,
        token: &SecretString,
        work: &Path,
        name: &str,
        parent: &Path,
        extra: Vec<String>,
    ) -> anyhow::Result<DevAgent> {
        let token_file = work.join(format!("{name}-token"));
        write_private(&token_file, token.expose_secret())?;
        let dest_dir = tempfile::Builder::new()
            .prefix("hush-dev-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
        let dest = dest_dir.path().join("secrets");
        std::fs::create_dir(&dest).with_context(|| format!("cannot create {}", dest.display()))?;

        let mut args: Vec<String> = vec![
            "--addr".into(),
            addr.into(),
            "--token-file".into(),
            token_file.display().to_string(),
        ];
        for (_, spec) in files() {
            args.push("--secret".into());
            args.push(spec);
        }
        args.extend([
            "--dest".into(),
            dest.display().to_string(),
            "--refresh-interval".into(),
            REFRESH.into(),
        ]);
        args.extend(extra);
        let shown = std::iter::once("hush-agent".to_string())
            .chain(args.iter().map(|a| super::tour::shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");

        let log = work.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(bin)
            .args(&args)
            .env_remove("HUSH_TOKEN")
            .env_remove("VAULT_TOKEN")
            // The flag (or its absence: text) decides, not what hush dev inherited.
            .env_remove(hush_api::LOG_FORMAT_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(DevAgent {
            child,
            dest,
            _dest_dir: dest_dir,
            log,
            shown: format!("{shown} &"),
            on_disk: false,
        })
    }

    /// Wait until `name` holds `want` (or, with `None`, exists). Fails when the agent exits
    /// or the time is up, with the end of the agent's log.
    pub async fn wait_for(&mut self, name: &str, want: Option<&str>) -> anyhow::Result<Duration> {
        let start = tokio::time::Instant::now();
        let path = self.dest.join(name);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if want.is_none_or(|w| text == w) {
                    return Ok(start.elapsed());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(anyhow!(
                    "hush-agent exited ({status}){}",
                    log_tail(&self.log)
                ));
            }
            if start.elapsed() > FILES_TIMEOUT {
                let what = want.map_or("appear".to_string(), |w| format!("hold {w:?}"));
                return Err(anyhow!(
                    "{} did not {what} within {}s{}",
                    path.display(),
                    FILES_TIMEOUT.as_secs(),
                    log_tail(&self.log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `ls -l`-style lines for the user-visible files: mode, size, name.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (name, _) in files() {
            let path = self.dest.join(name);
            let line = match std::fs::metadata(&path) {
                Ok(meta) => format!("{}  {:>4}  {name}\n", mode_string(&meta), meta.len()),
                Err(e) => format!("?  {name}: {e}\n"),
            };
            out.push_str(&line);
        }
        out
    }

    /// SIGTERM, then wait (the agent exits within 5s); killed if it takes longer.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        terminate(&self.child);
        if tokio::time::timeout(Duration::from_secs(6), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            return Err(anyhow!("hush-agent did not stop within 6s and was killed"));
        }
        Ok(())
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn mode_string(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        bit(0o100, 'x'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        bit(0o010, 'x'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        bit(0o001, 'x'),
    ]
    .iter()
    .collect::<String>()
}

#[cfg(not(unix))]
fn mode_string(_meta: &std::fs::Metadata) -> String {
    "?".into()
}

/// `--log-format json` when asked for; text is the agent's default and left out of the
/// command the tour shows.
fn log_flags(format: hush_api::LogFormat) -> Vec<String> {
    match format {
        hush_api::LogFormat::Text => Vec::new(),
        json => vec!["--log-format".to_string(), json.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_the_kv_v2_api_path() {
        let f = files();
        assert_eq!(f[0].1, "username=secret/data/demo/app#username");
        assert_eq!(f[2].1, "app.json=secret/data/demo/app");
    }

    #[cfg(unix)]
    #[test]
    fn modes_print_like_ls() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(mode_string(&std::fs::metadata(&p).unwrap()), "r--------");
    }
}
