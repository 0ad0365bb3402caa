//! Auth methods: mounted under `auth/`, they check a workload's credentials and answer a
//! successful login with a [`LoginGrant`]; the core turns the grant into a token.
//!
//! # Plugging in an auth method
//!
//! 1. Implement [`crate::logical::LogicalBackend`] over the mount's [`BarrierView`] (its only
//!    storage). List the login path in `unauthenticated_paths` (e.g. `&["login"]`).
//! 2. On a good login return [`crate::logical::Response::login`] with the grant (policies,
//!    metadata, TTLs, ...). On a bad one return an error (`PermissionDenied` or
//!    `InvalidRequest`): the core counts it against the caller's address ([`limiter`]).
//! 3. Add the type to [`SUPPORTED_TYPES`] and [`new_backend`].
//!
//! The core ([`crate::core::Core::handle`]) mints an orphan service token with the grant's
//! policies (plus `default` unless `no_default_policy`), TTLs capped by the mount's max lease
//! TTL and the system max, `path` = the login path and `display_name` = the mount name (plus
//! the grant's display name), and answers Vault's `auth` block. The audit log sees the request
//! data (JWTs, secret IDs) and the new token only as HMACs.
//!
//! # Layout
//!
//! - [`approle`]: the AppRole method (role IDs and secret IDs).
//! - [`aws`]: the `aws` method, iam type (signed STS GetCallerIdentity requests).
//! - [`cidr`]: CIDR blocks, for `*_bound_cidrs`.
//! - [`gcp`]: the `gcp` method (iam service-account JWTs and gce instance identity tokens).
//! - [`jwt`]: JWT verification (keys, algorithms, claims) for the kubernetes, jwt and gcp
//!   methods to build on.
//! - [`jwt_method`]: the `jwt` method (generic OIDC: JWT login with PEM keys, JWKS or discovery).
//! - [`kubernetes`]: the `kubernetes` method (service-account JWTs, locally or by TokenReview).
//! - [`limiter`]: failed-login rate limiting per source address.

use std::sync::Arc;

use crate::barrier::BarrierView;
use crate::logical::{LogicalBackend, LogicalError};

pub use crate::logical::LoginGrant;

pub mod approle;
pub mod aws;
pub mod cidr;
pub mod gcp;
pub mod jwt;
pub mod jwt_method;
pub mod kubernetes;
pub mod limiter;
pub mod role;
pub mod role_store;

/// Auth method types `sys/auth/:path` accepts (the token store is built in).
pub const SUPPORTED_TYPES: &[&str] = &["approle", "aws", "gcp", "jwt", "kubernetes"];

/// Start the auth method `kind` over its mount's view.
pub async fn new_backend(
    kind: &str,
    view: BarrierView,
) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
    match kind {
        "approle" => Ok(Arc::new(approle::AppRoleBackend::new(view).await?)),
        "gcp" => Ok(Arc::new(gcp::GcpBackend::new(view).await?)),
        "aws" => Ok(Arc::new(aws::AwsBackend::new(view).await?)),
        "jwt" => Ok(Arc::new(jwt_method::JwtBackend::new(view).await?)),
        "kubernetes" => Ok(Arc::new(kubernetes::KubernetesBackend::new(view).await?)),
        "" => Err(LogicalError::invalid("missing auth method type")),
        other => Err(unsupported(other)),
    }
}

/// The 400 for an auth method type hushd does not have.
pub fn unsupported(kind: &str) -> LogicalError {
    let names: Vec<String> = SUPPORTED_TYPES.iter().map(|t| format!("{t:?}")).collect();
    LogicalError::invalid(format!(
        "unknown auth method type {kind:?}: hushd supports {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_name_the_supported_ones() {
        let err = unsupported("ldap");
        assert_eq!(err.status(), 400);
        let msg = err.to_string();
        assert!(
            msg.contains("\"ldap\"") && msg.contains("\"approle\""),
            "{msg}"
        );
    }
}
