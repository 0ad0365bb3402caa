//! Errors of the HTTP client. They never hold the token: it travels in a header only.

use std::path::PathBuf;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("invalid server address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    #[error("could not read CA certificate {}: {source}", path.display())]
    CaCertRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CA certificate {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("could not set up the HTTP client: {0}")]
    Build(String),
    /// The server could not be reached, or the connection failed.
    #[error("could not reach {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered with an error status; `errors` are its messages.
    #[error("{}", api_message(*status, errors))]
    Api { status: u16, errors: Vec<String> },
    /// The server answered 2xx with a body this client does not understand.
    #[error("unexpected response for {path}: {reason}")]
    Decode { path: String, reason: String },
}

fn api_message(status: u16, errors: &[String]) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    if errors.is_empty() {
        format!("server answered {status} {reason}")
    } else {
        format!("server answered {status} {reason}: {}", errors.join("; "))
    }
}

impl ClientError {
    /// The HTTP status for server errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `errors` messages (empty for other kinds).
    pub fn errors(&self) -> &[String] {
        match self {
            ClientError::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_permission_denied(&self) -> bool {
        self.status() == Some(403)
    }

    /// 503: sealed, or not initialised.
    pub fn is_unavailable(&self) -> bool {
        self.status() == Some(503)
    }
}

/// Describe a reqwest error with its causes ("connection refused"), without the URL's query.
pub(crate) fn transport(url: &reqwest::Url, err: &reqwest::Error) -> ClientError {
    let mut reason = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    let mut shown = url.clone();
    shown.set_query(None);
    ClientError::Transport {
        url: shown.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_status_and_messages() {
        let e = ClientError::Api {
            status: 403,
            errors: vec!["permission denied".into()],
        };
        assert_eq!(
            e.to_string(),
            "server answered 403 Forbidden: permission denied"
        );
        assert!(e.is_permission_denied());
        assert_eq!(e.errors(), ["permission denied"]);
        let e = ClientError::Api {
            status: 404,
            errors: vec![],
        };
        assert_eq!(e.to_string(), "server answered 404 Not Found");
        assert!(e.is_not_found());
        let e = ClientError::Build("x".into());
        assert_eq!(e.status(), None);
        assert!(e.errors().is_empty());
    }
}
