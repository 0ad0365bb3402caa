//! What every command needs: the server address, token and CA from flags and environment,
//! the client, reading secrets from stdin or a prompt, and errors that say what to do.

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;

use hush_api::{Client, ClientError};
use secrecy::zeroize::Zeroizing;
use secrecy::SecretString;

use crate::args::{Format, GlobalArgs};

/// A mistake in how the command was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The first set, non-empty variable of `names`.
fn first_env(names: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
}

/// Settings resolved from flags and environment.
pub struct Ctx {
    pub format: Format,
    address: Option<String>,
    ca_cert: Option<PathBuf>,
    token: Option<SecretString>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("format", &self.format)
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Flags win over `HUSH_*`, which win over `VAULT_*`.
    pub fn new(global: &GlobalArgs, env: &dyn Fn(&str) -> Option<String>) -> Ctx {
        Ctx {
            format: global.format,
            address: global
                .address
                .clone()
                .or_else(|| first_env(&["HUSH_ADDR", "VAULT_ADDR"], env)),
            ca_cert: global
                .ca_cert
                .clone()
                .or_else(|| first_env(&["HUSH_CACERT", "VAULT_CACERT"], env).map(PathBuf::from)),
            token: first_env(&["HUSH_TOKEN", "VAULT_TOKEN"], env)
                .map(|t| SecretString::from(t.trim().to_string())),
        }
    }

    /// Both a server address and a token are set.
    pub fn has_server(&self) -> bool {
        self.address.is_some() && self.token.is_some()
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// A client for the configured server.
    pub fn client(&self) -> anyhow::Result<Client> {
        let addr = self.address.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "no server address: set HUSH_ADDR (e.g. export HUSH_ADDR=https://127.0.0.1:8200) \
                 or pass -address"
            )
        })?;
        Ok(Client::new(
            addr,
            self.ca_cert.as_deref(),
            self.token.clone(),
        )?)
    }
}

/// The message for an error, with advice when the cause is known.
pub fn describe(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ClientError>() {
        Some(e) => describe_client(e),
        None => format!("{err:#}"),
    }
}

fn describe_client(e: &ClientError) -> String {
    match e {
        ClientError::Api {
            status: 403,
            errors,
        } => {
            let extra: Vec<&String> = errors
                .iter()
                .filter(|m| *m != "permission denied")
                .collect();
            let mut msg = "permission denied: check HUSH_TOKEN (the token may be missing, \
                           expired or revoked, or its policies do not allow this)"
                .to_string();
            for m in extra {
                msg.push_str("\n  server: ");
                msg.push_str(m);
            }
            msg
        }
        ClientError::Api {
            status: 503,
            errors,
        } if errors.is_empty() => {
            format!("{e}: hushd may be sealed (hush operator unseal) or uninitialised")
        }
        ClientError::Transport { .. } => {
            format!("{e}\n  is hushd running at that address? Check HUSH_ADDR or -address")
        }
        ClientError::CaCert { .. } | ClientError::CaCertRead { .. } => {
            format!("{e}\n  check -ca-cert or HUSH_CACERT")
        }
        ClientError::Address { .. } => format!("{e}\n  check HUSH_ADDR or -address"),
        other => other.to_string(),
    }
}

/// All of stdin, as text.
pub fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// A secret from stdin: prompted for without echo on a terminal, else the first line.
pub fn read_secret(prompt: &str) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _echo = EchoOff::new();
        stdin.lock().read_line(&mut line)?;
        eprintln!();
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let value = line.trim();
    if value.is_empty() {
        return Err(usage("no value given on stdin"));
    }
    Ok(SecretString::from(value.to_string()))
}

/// Turns terminal echo off while alive.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl EchoOff {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin).ok();
            if let Some(saved) = &saved {
                let mut quiet = saved.clone();
                quiet.local_modes.remove(LocalModes::ECHO);
                let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
            }
            EchoOff { saved }
        }
        #[cfg(not(unix))]
        EchoOff {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn global(address: Option<&str>) -> GlobalArgs {
        GlobalArgs {
            address: address.map(String::from),
            ca_cert: None,
            format: Format::Table,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn hush_variables_win_over_vault_ones_and_flags_over_both() {
        let e = env(&[
            ("HUSH_ADDR", "https://hush:1"),
            ("VAULT_ADDR", "https://vault:2"),
        ]);
        assert_eq!(
            Ctx::new(&global(None), &e).address.as_deref(),
            Some("https://hush:1")
        );
        let e = env(&[("HUSH_ADDR", ""), ("VAULT_ADDR", "https://vault:2")]);
        assert_eq!(
            Ctx::new(&global(None), &e).address.as_deref(),
            Some("https://vault:2")
        );
        let ctx = Ctx::new(&global(Some("https://flag:3")), &e);
        assert_eq!(ctx.address.as_deref(), Some("https://flag:3"));
    }

    #[test]
    fn token_and_ca_from_environment() {
        let e = env(&[("VAULT_TOKEN", "hvs.v\n"), ("VAULT_CACERT", "/ca.pem")]);
        let ctx = Ctx::new(&global(None), &e);
        assert!(ctx.token.is_some());
        assert_eq!(ctx.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert!(!format!("{ctx:?}").contains("hvs.v"));
        let e = env(&[("HUSH_TOKEN", "hvs.h"), ("VAULT_TOKEN", "hvs.v")]);
        let ctx = Ctx::new(&global(Some("http://127.0.0.1:1")), &e);
        assert!(ctx.client().unwrap().has_token());
    }

    #[test]
    fn missing_address_says_to_set_hush_addr() {
        let ctx = Ctx::new(&global(None), &env(&[]));
        let err = ctx.client().unwrap_err().to_string();
        assert!(err.contains("set HUSH_ADDR"), "{err}");
    }

    #[test]
    fn errors_give_advice() {
        let e: anyhow::Error = ClientError::Api {
            status: 403,
            errors: vec!["permission denied".into()],
        }
        .into();
        assert!(describe(&e).starts_with("permission denied: check HUSH_TOKEN"));
        let e: anyhow::Error = ClientError::Transport {
            url: "http://h/".into(),
            reason: "refused".into(),
        }
        .into();
        assert!(describe(&e).contains("Check HUSH_ADDR"));
        let e: anyhow::Error = ClientError::Api {
            status: 400,
            errors: vec!["bad".into()],
        }
        .into();
        assert_eq!(describe(&e), "server answered 400 Bad Request: bad");
        assert_eq!(describe(&anyhow::anyhow!("plain")), "plain");
    }
}
