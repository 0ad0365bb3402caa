//! Wire types and client.
