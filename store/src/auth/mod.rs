//! Auth methods: mounted under `auth/`, they check a workload's credentials and answer a
//! successful login with a [`LoginGrant`]; the core turns the grant into a token.
//!
//! # Plugging in an auth method
//!
//! 1. Implement [`method::AuthMethod`] over the mount's [`crate::barrier::BarrierView`] (its
//!    only storage): login, config, roles in a [`role_store::RoleStore`], and any paths of its
//!    own; the `login`, config and role paths are dispatched once for every method (served as a
//!    [`crate::logical::LogicalBackend`], `login` without a token). A method whose paths differ
//!    (AppRole) implements `LogicalBackend` itself.
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
//! - [`jws`]: JWT (JWS) verification (keys, algorithms, claims) for the kubernetes, jwt and
//!   gcp methods to build on; not an auth method itself.
//! - [`jwt`]: the `jwt` method (generic OIDC: JWT login with PEM keys, JWKS or discovery).
//! - [`metadata`]: the `*_metadata` config fields (which token metadata a login keeps).
//! - [`method`]: the paths every method with login, config and roles serves, dispatched once.
//! - [`kubernetes`]: the `kubernetes` method (service-account JWTs, locally or by TokenReview).

pub use crate::logical::LoginGrant;

pub mod approle;
pub mod aws;
pub mod gcp;
pub mod jws;
pub mod jwt;
pub mod kubernetes;
pub mod metadata;
pub mod method;
pub mod role;
pub mod role_store;
