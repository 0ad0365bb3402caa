//! Rendering: secret data to file bytes (raw field, JSON, dotenv, templates).
