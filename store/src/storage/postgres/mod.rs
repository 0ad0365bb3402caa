//! PostgreSQL for storage (to come) and the database secrets engine.

pub mod tls;
