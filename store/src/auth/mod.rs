//! Auth methods: mounted under `auth/`, they check a workload's credentials and answer a
//! successful login with a [`LoginGrant`]; the core turns the grant into a token.
//!
//! # Plugging in an auth method
//!
//! 1. Implement [`crate::logical::LogicalBackend`] over the mount's [`BarrierView`] (its only
//!    storage). List the login path in `unauthenticated_paths` (e.g. `&["login"]`).
//! 2. On a good login return [`crate::logical::Response::login`] with the grant (policies,
//!    metadata, TTLs, ...). On a bad one return an error (`PermissionDenied` or
//!    `InvalidRequest`): the core counts it against the caller's address
//!    ([`crate::core::login::limiter`]).
//! 3. Add the type to the registry in [`crate::backends`].
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
//! - [`gcp`]: the `gcp` method (iam service-account JWTs and gce instance identity tokens).
//! - [`jwt`]: JWT verification (keys, algorithms, claims) for the kubernetes, jwt and gcp
//!   methods to build on.
//! - [`jwt_method`]: the `jwt` method (generic OIDC: JWT login with PEM keys, JWKS or discovery).
//! - [`kubernetes`]: the `kubernetes` method (service-account JWTs, locally or by TokenReview).

pub use crate::logical::LoginGrant;

pub mod approle;
pub mod aws;
pub mod gcp;
pub mod jwt;
pub mod jwt_method;
pub mod kubernetes;
pub mod role;
pub mod role_store;
