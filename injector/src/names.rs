//! The names and paths the patch gives what it adds, and that the agent expects to find.

/// The agent's container: the native sidecar (an init container with `restartPolicy:
/// Always`) or the classic sidecar of `legacy-sidecar`.
pub const SIDECAR: &str = "hush-agent";
/// The `--once` init container (`agent-pre-populate-only`, `legacy-sidecar`).
pub const INIT: &str = "hush-agent-init";

/// The in-memory volume holding the rendered files.
pub const SECRETS_VOLUME: &str = "hush-secrets";
/// The projected service-account token the agent logs in with.
pub const TOKEN_VOLUME: &str = "hush-token";
/// hushd's CA (`--hushd-ca-configmap`, key `ca.crt`).
pub const CA_VOLUME: &str = "hush-ca";
/// The `agent-config` ConfigMap (key `agent.toml`).
pub const CONFIG_VOLUME: &str = "hush-config";

/// Where the agent finds its token, hushd's CA and its config file.
pub const TOKEN_DIR: &str = "/var/run/secrets/hush.dev/serviceaccount";
pub const TOKEN_FILE: &str = "/var/run/secrets/hush.dev/serviceaccount/token";
pub const CA_DIR: &str = "/etc/hush/ca";
pub const CA_FILE: &str = "/etc/hush/ca/ca.crt";
pub const CONFIG_DIR: &str = "/etc/hush/config";
pub const CONFIG_FILE: &str = "/etc/hush/config/agent.toml";
/// The key of the `agent-config` ConfigMap.
pub const CONFIG_KEY: &str = "agent.toml";

/// The agent's metrics port name.
pub const PORT_NAME: &str = "hush-metrics";
/// The uid the agent runs as when neither the annotations nor the pod say.
pub const DEFAULT_UID: i64 = 65532;
/// Lifetime of the projected token (the kubelet renews it at 80%).
pub const TOKEN_SECONDS: i64 = 3600;
/// The destination when `hush.dev/dest` is not given.
pub const DEFAULT_DEST: &str = "/secrets";
/// The marker's value.
pub const INJECTED: &str = "injected";
