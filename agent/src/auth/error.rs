//! Why the token could not be had: [`AuthError`]. Never holds a credential.

use std::path::PathBuf;

/// The token file could not be used, or a login failed. Never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("could not read token file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("token file {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("could not read the {what} from {}: {reason}", path.display())]
    Credential {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The GCE metadata server gave no identity token (`--auth gcp`).
    #[error("could not get a GCE identity token from {url}: {reason}")]
    Metadata { url: String, reason: String },
    /// `--auth aws` could not get AWS credentials or sign (never holds a credential).
    #[error("aws login: {0}")]
    Aws(String),
    #[error("could not log in at {path}: {source}")]
    Login {
        path: String,
        source: hush_api::ClientError,
    },
    /// The deadline of `Persist::Until` (`--once`) came first; the last failure, if any.
    #[error("{}", last_failure(.last.as_deref()))]
    Deadline { last: Option<Box<AuthError>> },
}

fn last_failure(last: Option<&AuthError>) -> String {
    match last {
        Some(e) => e.to_string(),
        None => "the store did not answer the login".into(),
    }
}
