//! SQLite backend (WAL, synchronous=FULL) with group commit. Placeholder until implemented.

/// SQLite storage.
#[derive(Debug)]
pub struct SqliteBackend;
