//! `--log-format`: one spelling for hushd, hush-agent and `hush dev`.

use std::fmt;
use std::str::FromStr;

/// The environment variable every Hush program reads its log format from when the flag is
/// not given.
pub const LOG_FORMAT_ENV: &str = "HUSH_LOG_FORMAT";

/// Log filter directives every Hush program adds after the user's filter, whatever it says:
/// dependencies that log secrets below these levels.
/// - tokio-postgres logs every statement with its parameters at debug (through the `log`
///   bridge): a role's password in the database engine's statements, storage keys and
///   ciphertext in PostgreSQL storage's.
/// - tungstenite logs a WebSocket client's whole handshake request at trace: the agent's
///   `X-Vault-Token` on `sys/events/subscribe`.
pub const LOG_CEILINGS: &[&str] = &["tokio_postgres=info", "tungstenite=info"];

/// How a program writes its log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    /// `text` or `json`; `plain` is hushd's older name for `text` and still accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" | "plain" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("want text or json, not {other:?}")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_and_the_old_name() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("plain".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("want text or json, not \"xml\"".to_string())
        );
        assert_eq!(LogFormat::Json.to_string(), "json");
    }
}
