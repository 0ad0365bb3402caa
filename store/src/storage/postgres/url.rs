//! The storage URL `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...`, parsed once at
//! start. The password is kept apart: `Debug` and `Display` show `***` in its place, and
//! [`PostgresUrl::scrub`] takes it out of any message (the server or the client may echo it).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::Host;

use super::tls::{take_ssl_params, Verify};

/// How long a connection attempt may take unless the URL says (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// libpq's default `sslmode`: TLS when the server offers it, the certificate not checked.
pub const DEFAULT_SSLMODE: &str = "prefer";

/// A parsed, validated PostgreSQL storage URL. See the module docs.
#[derive(Clone)]
pub struct PostgresUrl {
    /// The client settings, password included.
    pub(super) config: tokio_postgres::Config,
    pub(super) verify: Option<Verify>,
    pub(super) root_cert: Option<String>,
    /// The password as written in the URL and as decoded, to scrub from messages.
    secrets: Vec<SecretString>,
    host: String,
    port: u16,
    database: String,
    user: String,
    sslmode: String,
}

impl PostgresUrl {
    /// Parse `url` (`postgres://` or `postgresql://`). Errors never hold the password.
    pub fn parse(url: &str) -> Result<PostgresUrl, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("a PostgreSQL storage URL starts with postgres://".into());
        }
        // The password as written: between the first ':' of the user info and its '@'.
        let mut secrets = Vec::new();
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                if !pw.is_empty() {
                    secrets.push(SecretString::from(pw.to_string()));
                }
            }
        }
        let scrub_with = |msg: String, secrets: &[SecretString]| scrub(msg, secrets);
        let (without_ssl, ssl) = take_ssl_params(url).map_err(|e| scrub_with(e, &secrets))?;
        let (mode, verify) = ssl
            .resolve(DEFAULT_SSLMODE)
            .map_err(|e| scrub_with(e, &secrets))?;
        let mut config: tokio_postgres::Config = without_ssl
            .parse()
            .map_err(|e| scrub_with(format!("invalid PostgreSQL URL: {e}"), &secrets))?;
        config.ssl_mode(mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("hushd");
        }
        if let Some(pw) = config.get_password() {
            let decoded = String::from_utf8_lossy(pw).into_owned();
            if !decoded.is_empty() {
                secrets.push(SecretString::from(decoded));
            }
        }
        let user = config
            .get_user()
            .filter(|u| !u.is_empty())
            .ok_or("the PostgreSQL URL needs a user: postgres://USER:PASSWORD@HOST:PORT/DATABASE")?
            .to_string();
        let host =
            match config.get_hosts() {
                [] => return Err(
                    "the PostgreSQL URL needs a host: postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                        .into(),
                ),
                [Host::Tcp(h)] => h.clone(),
                [Host::Unix(p)] => p.display().to_string(),
                _ => return Err("the PostgreSQL URL must name one host".into()),
            };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config.get_dbname().unwrap_or(&user).to_string();
        Ok(PostgresUrl {
            config,
            verify,
            root_cert: ssl.root_cert,
            secrets,
            host,
            port,
            database,
            user,
            sslmode: ssl.mode.unwrap_or_else(|| DEFAULT_SSLMODE.into()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// `msg` with the password, in every form it was given, replaced by `***`.
    pub fn scrub(&self, msg: String) -> String {
        scrub(msg, &self.secrets)
    }
}

fn scrub(mut msg: String, secrets: &[SecretString]) -> String {
    for s in secrets {
        let s = s.expose_secret();
        if !s.is_empty() && msg.contains(s) {
            msg = msg.replace(s, "***");
        }
    }
    msg
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pw = if self.secrets.is_empty() { "" } else { ":***" };
        write!(
            f,
            "postgres://{}{pw}@{}:{}/{}?sslmode={}",
            self.user, self.host, self.port, self.database, self.sslmode
        )
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        let secrets = |u: &PostgresUrl| -> Vec<String> {
            u.secrets
                .iter()
                .map(|s| s.expose_secret().to_string())
                .collect()
        };
        self.to_string() == other.to_string()
            && self.root_cert == other.root_cert
            && secrets(self) == secrets(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_shows_the_password() {
        let u = PostgresUrl::parse(
            "postgres://hush:s3cr%40t-pw@db.example:5433/vault?sslmode=verify-full&sslrootcert=/ca.pem",
        )
        .unwrap();
        assert_eq!(
            (u.host(), u.port(), u.database(), u.user()),
            ("db.example", 5433, "vault", "hush")
        );
        assert_eq!(u.verify, Some(Verify::Full));
        assert_eq!(u.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(u.config.get_password(), Some(&b"s3cr@t-pw"[..]));
        for shown in [u.to_string(), format!("{u:?}"), format!("{u:#?}")] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("db.example:5433/vault"), "{shown}");
        }
        assert_eq!(
            u.scrub("auth failed for s3cr%40t-pw and s3cr@t-pw".into()),
            "auth failed for *** and ***"
        );
        let plain = PostgresUrl::parse("postgresql://u@localhost/db").unwrap();
        assert_eq!(
            plain.to_string(),
            "postgres://u@localhost:5432/db?sslmode=prefer"
        );
        assert_eq!(plain.verify, Some(Verify::None));
        let off = PostgresUrl::parse("postgres://u:p@h/db?sslmode=disable").unwrap();
        assert_eq!(off.verify, None);
    }

    #[test]
    fn bad_urls_have_one_message_without_the_password() {
        for (url, want) in [
            (
                "postgres://u:pw-123@h/db?sslmode=sometimes",
                "invalid sslmode",
            ),
            (
                "postgres://u:pw-123@h:notaport/db",
                "invalid PostgreSQL URL",
            ),
            ("postgres://:pw-123@h/db", "needs a user"),
            ("postgres://u:pw-123@/db", "needs a host"),
            (
                "postgres://u:pw-123@h/db?sslcert=/c.pem",
                "sslcert is not supported",
            ),
            ("mysql://u:pw-123@h/db", "starts with postgres://"),
        ] {
            let err = PostgresUrl::parse(url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
            assert!(!err.contains("pw-123"), "{url}: {err}");
        }
    }
}
