//! Retrying: how a failed request to the store is classed ([`ErrorClass`], [`classify`]) and
//! how long to wait before the next try ([`backoff`]). The bottom of the agent: the token
//! source, the keeper and the sinks all use it, and it uses none of them.

pub mod backoff;

use hush_api::ClientError;

/// How a client error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Unreachable, 5xx (sealed, standby), 429, 408: retry soon with backoff.
    Transient,
    Forbidden,
    NotFound,
    /// Anything else (400, a body we do not understand): retry at the refresh interval.
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Other => "error",
        }
    }
}

/// The class of a failed request to the store.
pub fn classify(e: &ClientError) -> ErrorClass {
    match e {
        ClientError::Transport { .. } => ErrorClass::Transient,
        ClientError::Api { status, .. } => match *status {
            403 => ErrorClass::Forbidden,
            404 => ErrorClass::NotFound,
            // 408: hushd cut a request whose body stalled on the way (the network's fault).
            408 | 429 | 500..=599 => ErrorClass::Transient,
            _ => ErrorClass::Other,
        },
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_client_errors() {
        let api = |status| ClientError::Api {
            status,
            errors: vec![],
        };
        assert_eq!(classify(&api(503)), ErrorClass::Transient);
        assert_eq!(classify(&api(500)), ErrorClass::Transient);
        assert_eq!(classify(&api(429)), ErrorClass::Transient);
        assert_eq!(classify(&api(408)), ErrorClass::Transient);
        assert_eq!(classify(&api(403)), ErrorClass::Forbidden);
        assert_eq!(classify(&api(404)), ErrorClass::NotFound);
        assert_eq!(classify(&api(400)), ErrorClass::Other);
        let t = ClientError::Transport {
            url: "http://x".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(classify(&t), ErrorClass::Transient);
        assert_eq!(classify(&ClientError::Build("x".into())), ErrorClass::Other);
    }
}
