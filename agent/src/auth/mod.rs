//! The agent's token: read from a file (re-read when it changes) and kept alive with renew-self.
