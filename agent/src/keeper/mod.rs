//! The keeper: reads secrets, follows new versions, retries with backoff, keeps the last good values.
