//! hushd configuration.
