//! The audit broker and the `file` audit device: one HMAC'd, hash-chained JSON line per
//! request and per response.
