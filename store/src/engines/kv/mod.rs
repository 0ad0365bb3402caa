//! The KV version 2 secrets engine.
