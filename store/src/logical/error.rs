//! [`LogicalError`]: how a request can end, each kind one HTTP status (a module of its own,
//! below everything in `logical` that returns it).

use crate::barrier::BarrierError;
use crate::storage::StorageError;

/// Errors a request can end with; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum LogicalError {
    /// 400: the request is malformed or a parameter is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// 403: missing, invalid or expired token, or the policy denies the operation.
    #[error("permission denied")]
    PermissionDenied,
    /// 404: nothing at this path. An empty message gives `{"errors": []}` as Vault does.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists but not for this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 404: no route for this path.
    #[error("unsupported path")]
    UnsupportedPath,
    /// 413: body over the limit.
    #[error("request body too large: the limit is {0} bytes")]
    TooLarge(usize),
    /// 408: the request body stalled longer than `http_read_timeout` (seconds).
    #[error("request body not received: no byte arrived for {0}s (http_read_timeout); send the body without pausing")]
    BodyTimeout(u64),
    /// 429: too many failed logins (of one identity, or from one address); sent with
    /// `Retry-After: retry_after` (seconds).
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// 503: the store is sealed.
    #[error("hushd is sealed: unseal it with `hush operator unseal`")]
    Sealed,
    /// 503: the store has not been initialised.
    #[error("hushd is not initialized: run `hush operator init`")]
    NotInitialized,
    /// HA: this node is a standby. 307 to the active node when it is known (the HTTP layer
    /// adds `Location`), else 503.
    #[error("{}", standby_message(leader.as_deref()))]
    Standby { leader: Option<String> },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// 500: audit devices are enabled and none could record the request; says why (each
    /// device's error, e.g. no space left on its disk).
    #[error("no audit device could record the request ({0}); refusing to serve it")]
    AuditFailed(String),
    /// 500: a bug or an unexpected state; the message must not hold secrets.
    #[error("internal error: {0}")]
    Internal(String),
}

fn standby_message(leader: Option<&str>) -> String {
    match leader {
        Some(addr) => format!("this hushd is a standby: the active node is {addr}"),
        None => "this hushd is a standby and no active node is known yet: retry in a few \
                 seconds (a standby takes over within the HA lock's TTL)"
            .into(),
    }
}

impl LogicalError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        LogicalError::InvalidRequest(msg.into())
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> u16 {
        match self {
            LogicalError::InvalidRequest(_) => 400,
            LogicalError::PermissionDenied => 403,
            LogicalError::NotFound(_) | LogicalError::UnsupportedPath => 404,
            LogicalError::UnsupportedOperation => 405,
            LogicalError::BodyTimeout(_) => 408,
            LogicalError::TooLarge(_) => 413,
            LogicalError::RateLimited { .. } => 429,
            LogicalError::Sealed | LogicalError::NotInitialized => 503,
            LogicalError::Standby { leader: Some(_) } => 307,
            LogicalError::Standby { leader: None } => 503,
            LogicalError::Storage(StorageError::NotActive)
            | LogicalError::Barrier(BarrierError::Storage(StorageError::NotActive)) => 503,
            LogicalError::Barrier(BarrierError::Sealed) => 503,
            // 507 Insufficient Storage: the disk is full; the same request succeeds once
            // space is freed.
            LogicalError::Storage(StorageError::Full(_))
            | LogicalError::Barrier(BarrierError::Storage(StorageError::Full(_))) => 507,
            LogicalError::Barrier(_)
            | LogicalError::Storage(_)
            | LogicalError::AuditFailed(_)
            | LogicalError::Internal(_) => 500,
        }
    }

    /// Seconds to wait before trying again (`Retry-After`), for a 429.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LogicalError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `errors` array of the response body.
    pub fn messages(&self) -> Vec<String> {
        match self {
            LogicalError::NotFound(m) if m.is_empty() => vec![],
            other => vec![other.to_string()],
        }
    }
}
