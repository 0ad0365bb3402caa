//! Secrets engines mounted under the router.

pub mod kv;
