//! Sinks: where rendered secrets go.

pub mod files;
