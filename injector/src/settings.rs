//! What the injector's flags decide for every pod (annotations may override some of it).

/// The injector's cluster-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Image of the agent container (`--agent-image`; annotation `hush.dev/agent-image`).
    pub agent_image: String,
    /// hushd's address as agents in pods reach it (`--hushd-addr`).
    pub hushd_addr: String,
    /// ConfigMap in the pod's namespace holding `ca.crt`, hushd's CA (`--hushd-ca-configmap`).
    pub hushd_ca_configmap: Option<String>,
    /// Clusters older than 1.29: a `--once` init container plus a classic sidecar
    /// (`--legacy-sidecar`; annotation `hush.dev/legacy-sidecar`).
    pub legacy_sidecar: bool,
    /// Audience of the projected service-account token the agent logs in with
    /// (`--token-audience`; annotation `hush.dev/token-audience`).
    pub token_audience: String,
    /// Mount path of hushd's Kubernetes auth method (`--auth-path`; annotation
    /// `hush.dev/auth-path`).
    pub auth_path: String,
    /// Port of the agent's /healthz, /readyz and /metrics inside the pod.
    pub agent_port: u16,
    /// Size limit of the in-memory volume (`--volume-size`; annotation `hush.dev/volume-size`).
    pub volume_size: String,
    /// Default agent resources (annotations `hush.dev/agent-cpu-request` and so on).
    pub agent_cpu_request: String,
    pub agent_cpu_limit: String,
    pub agent_memory_request: String,
    pub agent_memory_limit: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agent_image: "hush-agent:latest".into(),
            hushd_addr: "https://hushd.hush.svc:8200".into(),
            hushd_ca_configmap: None,
            legacy_sidecar: false,
            token_audience: "hush".into(),
            auth_path: "kubernetes".into(),
            agent_port: 8299,
            volume_size: "16Mi".into(),
            agent_cpu_request: "25m".into(),
            agent_cpu_limit: "250m".into(),
            agent_memory_request: "32Mi".into(),
            agent_memory_limit: "128Mi".into(),
        }
    }
}
