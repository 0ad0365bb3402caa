//! The agent's token: read from a file (re-read when it changes) or got by a workload-identity
//! login ([`login`]; [`gcp`] fetches a GCE identity token), and kept alive with renew-self (logging in again when it runs out).
//!
//! [`TokenSource`] (`source.rs`) keeps the file's *path* and the token it last read; [`TokenSource::reload`]
//! looks at the file again (cheap: a `stat`, a read only when it changed) so a rotated token —
//! a kubelet-projected file, a sidecar writing a new one — is picked up without a restart.
//! [`renew`] keeps the current token alive. [`TokenSource::for_login`] starts without a token;
//! [`TokenSource::login`] gets one (and a new one whenever asked). When the store refuses the
//! token (403), [`TokenSource::after_forbidden`] looks for a newer one: the file once more, or
//! a new login.

pub mod aws;
pub mod aws_creds;
mod error;
pub mod gcp;
pub mod login;
pub mod renew;
mod source;

pub use error::AuthError;
pub use source::{Persist, Recovery, TokenSource};
