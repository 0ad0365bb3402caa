//! Health, readiness and Prometheus metrics.
