//! [`TokenSource`]: the agent's token, from a file (re-read when it changes) or a login, and
//! what to do when the store refuses it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use hush_api::wire::Auth;
use hush_api::Client;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::AuthError;
use super::login;
use crate::config::LoginSpec;
use crate::retry::backoff::Backoff;
use crate::retry::{classify, ErrorClass};

/// How long [`TokenSource::login_until_ok`] keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Until a login works or shutdown (the long-running agent).
    Forever,
    /// `--once`: stop at the first failure that is not transient, and at this deadline
    /// ([`AuthError::Deadline`]: when the next try would come after it, or a login is still
    /// unanswered then).
    Until(tokio::time::Instant),
}

/// What [`TokenSource::after_forbidden`] did about a 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Another token is current: try again with it.
    NewToken,
    /// The 403 stands: the token is still valid (the path is refused), it comes from a file
    /// that did not change, or a new login was tried already.
    Stands,
    /// The token is no longer valid and logging in again failed: worth a retry with backoff.
    LoginFailed,
}

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Follow symlinks: kubelet swaps a `..data` link under the file.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

struct Current {
    token: SecretString,
    stamp: Option<Stamp>,
}

/// The agent's token, from a file or a login.
pub struct TokenSource {
    /// The token file; empty for a login source.
    path: PathBuf,
    login: Option<LoginSpec>,
    current: Mutex<Current>,
    /// Bumped each time the token changes.
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("path", &self.path)
            .field("login", &self.login)
            .field("token", &"[redacted]")
            .finish()
    }
}

fn read_token(path: &Path) -> Result<SecretString, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::Read {
        path: path.into(),
        reason: crate::config::io_reason(&e),
    })?;
    let text = zeroize::Zeroizing::new(text);
    let token = text.trim();
    if token.is_empty() {
        return Err(AuthError::Empty { path: path.into() });
    }
    Ok(SecretString::from(token.to_string()))
}

impl TokenSource {
    /// Read the token file once; an error when it is missing, unreadable or empty.
    pub fn open(path: &Path) -> Result<TokenSource, AuthError> {
        let stamp = stamp(path);
        let token = read_token(path)?;
        Ok(TokenSource {
            path: path.to_path_buf(),
            login: None,
            current: Mutex::new(Current { token, stamp }),
            changes: watch::channel(0).0,
        })
    }

    /// A source that logs in; it has no token until [`TokenSource::login`] succeeds.
    pub fn for_login(spec: LoginSpec) -> TokenSource {
        TokenSource {
            path: PathBuf::new(),
            login: Some(spec),
            current: Mutex::new(Current {
                token: SecretString::from(String::new()),
                stamp: None,
            }),
            changes: watch::channel(0).0,
        }
    }

    /// How this source logs in, if it does.
    pub fn login_spec(&self) -> Option<&LoginSpec> {
        self.login.as_ref()
    }

    /// Log in (again) and make the new token current; tells subscribers. Returns the login's
    /// `auth` block (TTL, renewable). A file source has nothing to log in with: `Ok(None)`.
    pub async fn login(&self, base: &Client) -> Result<Option<Auth>, AuthError> {
        let Some(spec) = &self.login else {
            return Ok(None);
        };
        let auth = login::login(base, spec).await?;
        tracing::info!(
            method = spec.method_name(),
            mount = %spec.mount,
            ttl_secs = auth.lease_duration,
            renewable = auth.renewable,
            "logged in"
        );
        self.lock().token = auth.client_token.clone();
        self.changes.send_modify(|n| *n += 1);
        Ok(Some(auth))
    }

    /// Log in with backoff until it works or `shutdown`, or as far as `persist` allows.
    pub async fn login_until_ok(
        &self,
        base: &Client,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
        persist: Persist,
    ) -> Result<Option<Auth>, AuthError> {
        let mut last = None;
        loop {
            let tried = match persist {
                Persist::Forever => Ok(self.login(base).await),
                Persist::Until(at) => tokio::time::timeout_at(at, self.login(base)).await,
            };
            let Ok(tried) = tried else {
                return Err(AuthError::Deadline { last });
            };
            match tried {
                Ok(a) => {
                    backoff.reset();
                    return Ok(a);
                }
                Err(e) => {
                    let transient = matches!(&e, AuthError::Login { source, .. }
                        if classify(source) == ErrorClass::Transient);
                    let d = backoff.next_delay();
                    if let Persist::Until(at) = persist {
                        // A refused credential, an unreadable file: no use trying again.
                        if !transient {
                            return Err(e);
                        }
                        if tokio::time::Instant::now() + d >= at {
                            tracing::warn!(error = %e, "login failed; the --once deadline comes before the next try");
                            return Err(AuthError::Deadline {
                                last: Some(Box::new(e)),
                            });
                        }
                    }
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "login failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(e),
                        _ = tokio::time::sleep(d) => {}
                    }
                    last = Some(Box::new(e));
                }
            }
        }
    }

    /// Bumped each time the token changes (a login, a new file): leases made under an older
    /// generation die with their token.
    pub fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current token.
    pub fn token(&self) -> SecretString {
        self.lock().token.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Look at the file again. `Ok(true)` when it now holds another token. A file that went
    /// missing or empty keeps the last token (and is an error for the caller to log).
    pub fn reload(&self) -> Result<bool, AuthError> {
        if self.login.is_some() {
            return Ok(false);
        }
        let now = stamp(&self.path);
        if now.is_some() && now == self.lock().stamp {
            return Ok(false);
        }
        let token = read_token(&self.path)?;
        let mut cur = self.lock();
        cur.stamp = now;
        let same: bool = token
            .expose_secret()
            .as_bytes()
            .ct_eq(cur.token.expose_secret().as_bytes())
            .into();
        if same {
            return Ok(false);
        }
        cur.token = token;
        drop(cur);
        self.changes.send_modify(|n| *n += 1);
        Ok(true)
    }

    /// Look at the token file before a cycle; a file that went missing or empty keeps the
    /// last token (logged).
    pub fn refresh(&self) {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "keeping the last token");
        }
    }

    /// A request made with the token (through `client`) got a 403. A token file may hold a
    /// new token (rotated under us): look at it once more. A login token that is no longer
    /// valid (revoked, expired) is replaced by a new login, tried once per cycle
    /// (`relogin_tried`, the caller's).
    pub async fn after_forbidden(
        &self,
        base: &Client,
        client: &Client,
        relogin_tried: &mut bool,
    ) -> Recovery {
        if matches!(self.reload(), Ok(true)) {
            return Recovery::NewToken;
        }
        if self.login.is_none() || *relogin_tried {
            return Recovery::Stands;
        }
        *relogin_tried = true;
        let lookup = client.token_lookup_self().await;
        if !matches!(&lookup, Err(e) if classify(e) == ErrorClass::Forbidden) {
            return Recovery::Stands;
        }
        tracing::info!("the agent's token is no longer valid; logging in again");
        match self.login(base).await {
            Ok(_) => Recovery::NewToken,
            Err(e) => {
                tracing::warn!(error = %e, "login failed");
                Recovery::LoginFailed
            }
        }
    }

    /// A receiver that sees each change of token.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trims_and_notices_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "hvs.first\n").unwrap();
        let src = TokenSource::open(&path).unwrap();
        assert_eq!(src.token().expose_secret(), "hvs.first");
        let rx = src.subscribe();
        assert!(!src.reload().unwrap(), "unchanged file");
        assert!(!rx.has_changed().unwrap());

        // Rotate through a rename, as a writer of projected tokens does.
        let tmp = dir.path().join("token.tmp");
        std::fs::write(&tmp, "hvs.second-token").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(src.reload().unwrap());
        assert_eq!(src.token().expose_secret(), "hvs.second-token");
        assert!(rx.has_changed().unwrap());
        assert!(!format!("{src:?}").contains("hvs."));
    }

    #[test]
    fn missing_or_empty_file_is_an_error_and_keeps_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(matches!(
            TokenSource::open(&path),
            Err(AuthError::Read { .. })
        ));
        std::fs::write(&path, " \n").unwrap();
        let err = TokenSource::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("token file {} is empty", path.display())
        );

        std::fs::write(&path, "hvs.keep").unwrap();
        let src = TokenSource::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(src.reload().is_err());
        assert_eq!(src.token().expose_secret(), "hvs.keep");
    }

    #[tokio::test]
    async fn once_gives_up_at_its_deadline_naming_the_last_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("role-id"), "r").unwrap();
        let src = TokenSource::for_login(LoginSpec {
            mount: "approle".into(),
            method: crate::config::LoginMethod::AppRole {
                role_id_file: dir.path().join("role-id"),
                secret_id_file: None,
            },
        });
        // Nothing listens on port 1: every try is a transient failure.
        let base = Client::new("http://127.0.0.1:1", None, None).unwrap();
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(400),
        );
        let started = tokio::time::Instant::now();
        let until = Persist::Until(started + std::time::Duration::from_secs(1));
        let e = src
            .login_until_ok(&base, &mut backoff, &CancellationToken::new(), until)
            .await
            .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(matches!(&e, AuthError::Deadline { last: Some(_) }), "{e}");
        assert!(
            e.to_string()
                .starts_with("could not log in at auth/approle/login: could not reach"),
            "{e}"
        );
    }
}
