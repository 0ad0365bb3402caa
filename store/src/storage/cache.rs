//! A read cache in front of a backend (ciphertext only). Placeholder: implemented with the
//! SQLite backend work.
