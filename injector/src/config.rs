//! The command line: [`Flags`] as given, checked into a [`Config`] before any port is bound.
//! Every refusal is one [`ConfigError`] line naming the flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hush_api::LogFormat;

use crate::settings::Settings;

/// hush-injector: a Kubernetes mutating admission webhook that adds hush-agent to pods
/// annotated `hush.dev/agent-inject: "true"`, as a native sidecar (an init container with
/// `restartPolicy: Always`) that renders the pod's secrets into an in-memory volume before
/// the app starts.
///
/// Serves `POST /mutate` (AdmissionReview admission.k8s.io/v1) over TLS on --listen, and
/// `/healthz`, `/readyz`, `/metrics` over plain HTTP on --metrics-listen. The certificate and
/// key are re-read when their files change.
#[derive(Debug, Parser)]
#[command(
    name = "hush-injector",
    version = hush_api::build_info::VERSION,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Flags {
    /// Address of the webhook's TLS listener.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// PEM certificate chain of the webhook (reloaded when the file changes).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// PEM private key of the webhook (reloaded when the file changes).
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// Seconds between checks of the certificate and key files for a change.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub tls_reload_interval_secs: u64,
    /// Address of the plain-HTTP listener for /healthz, /readyz and /metrics.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:8080")]
    pub metrics_listen: String,
    /// Image of the injected agent (annotation hush.dev/agent-image overrides it).
    #[arg(long, value_name = "IMAGE")]
    pub agent_image: String,
    /// hushd's address as agents in pods reach it, e.g. https://hushd.hush.svc:8200.
    #[arg(long, value_name = "URL")]
    pub hushd_addr: String,
    /// ConfigMap (in each pod's namespace) whose key ca.crt is the CA of hushd's certificate;
    /// mounted into the agent and passed as its --ca-cert.
    #[arg(long, value_name = "NAME")]
    pub hushd_ca_configmap: Option<String>,
    /// Inject for clusters older than 1.29: an --once init container plus a classic sidecar
    /// that adopts its leases (annotation hush.dev/legacy-sidecar also asks for it).
    #[arg(long)]
    pub legacy_sidecar: bool,
    /// Audience of the projected service-account token the agent logs in with.
    #[arg(long, value_name = "AUD", default_value = "hush")]
    pub token_audience: String,
    /// Mount path of hushd's Kubernetes auth method (annotation hush.dev/auth-path overrides it).
    #[arg(long, value_name = "PATH", default_value = "kubernetes")]
    pub auth_path: String,
    /// Port of the agent's /healthz, /readyz and /metrics inside the pod (the startup probe).
    #[arg(long, value_name = "PORT", default_value_t = 8299)]
    pub agent_port: u16,
    /// Size limit of the in-memory secrets volume, a Kubernetes quantity.
    #[arg(long, value_name = "QUANTITY", default_value = "16Mi")]
    pub volume_size: String,
    /// The agent container's CPU request.
    #[arg(long, value_name = "QUANTITY", default_value = "25m")]
    pub agent_cpu_request: String,
    /// The agent container's CPU limit.
    #[arg(long, value_name = "QUANTITY", default_value = "250m")]
    pub agent_cpu_limit: String,
    /// The agent container's memory request.
    #[arg(long, value_name = "QUANTITY", default_value = "32Mi")]
    pub agent_memory_request: String,
    /// The agent container's memory limit.
    #[arg(long, value_name = "QUANTITY", default_value = "128Mi")]
    pub agent_memory_limit: String,
    /// Log format: text or json.
    #[arg(long, value_name = "text|json", env = hush_api::LOG_FORMAT_ENV, default_value = "text")]
    pub log_format: String,
    /// Log filter, e.g. info, debug, hush_injector=debug [env: RUST_LOG].
    #[arg(long, value_name = "FILTER", default_value = "info")]
    pub log_level: String,
}

/// The checked command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_reload_interval: Duration,
    pub metrics_listen: SocketAddr,
    pub settings: Settings,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// A flag that cannot be used: the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub reason: String,
}

fn bad(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        reason: reason.into(),
    }
}

impl Flags {
    /// Check every flag; the first bad one is the error.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let addr = |flag, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|_| bad(flag, format!("want IP:PORT, e.g. 0.0.0.0:8443, not {v:?}")))
        };
        let listen = addr("--listen", &self.listen)?;
        let metrics_listen = addr("--metrics-listen", &self.metrics_listen)?;
        if listen == metrics_listen && listen.port() != 0 {
            return Err(bad(
                "--metrics-listen",
                format!("must differ from --listen ({listen})"),
            ));
        }
        if self.tls_reload_interval_secs == 0 {
            return Err(bad("--tls-reload-interval-secs", "must be at least 1"));
        }
        crate::syntax::word(&self.agent_image, "ghcr.io/example/hush-agent:0.1.0")
            .map_err(|r| bad("--agent-image", r))?;
        check_url(&self.hushd_addr).map_err(|r| bad("--hushd-addr", r))?;
        if let Some(name) = &self.hushd_ca_configmap {
            crate::syntax::dns_subdomain(name).map_err(|r| bad("--hushd-ca-configmap", r))?;
        }
        if self.token_audience.trim().is_empty() {
            return Err(bad("--token-audience", "must not be empty"));
        }
        let path = &self.auth_path;
        if path.is_empty()
            || path.starts_with('/')
            || path.ends_with('/')
            || path.contains(char::is_whitespace)
        {
            return Err(bad(
                "--auth-path",
                format!("want a mount path such as kubernetes or k8s/prod, not {path:?}"),
            ));
        }
        if self.agent_port == 0 {
            return Err(bad("--agent-port", "must be 1 to 65535"));
        }
        for (flag, value) in [
            ("--volume-size", &self.volume_size),
            ("--agent-cpu-request", &self.agent_cpu_request),
            ("--agent-cpu-limit", &self.agent_cpu_limit),
            ("--agent-memory-request", &self.agent_memory_request),
            ("--agent-memory-limit", &self.agent_memory_limit),
        ] {
            crate::syntax::quantity(value).map_err(|r| bad(flag, r))?;
        }
        let log_format = self
            .log_format
            .parse::<LogFormat>()
            .map_err(|r| bad("--log-format", r))?;
        Ok(Config {
            listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_reload_interval: Duration::from_secs(self.tls_reload_interval_secs),
            metrics_listen,
            settings: Settings {
                agent_image: self.agent_image,
                hushd_addr: self.hushd_addr,
                hushd_ca_configmap: self.hushd_ca_configmap,
                legacy_sidecar: self.legacy_sidecar,
                token_audience: self.token_audience,
                auth_path: self.auth_path,
                agent_port: self.agent_port,
                volume_size: self.volume_size,
                agent_cpu_request: self.agent_cpu_request,
                agent_cpu_limit: self.agent_cpu_limit,
                agent_memory_request: self.agent_memory_request,
                agent_memory_limit: self.agent_memory_limit,
            },
            log_format,
            log_level: self.log_level,
        })
    }
}

/// `http(s)://HOST[:PORT][/...]`, no spaces.
fn check_url(v: &str) -> Result<(), String> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(format!(
            "want an http:// or https:// URL such as https://hushd.hush.svc:8200, not {v:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &[&str] = &[
        "hush-injector",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--agent-image",
        "hush-agent:1",
        "--hushd-addr",
        "https://hushd.hush.svc:8200",
    ];

    fn validate(extra: &[&str]) -> Result<Config, String> {
        // BASE's required flags, unless `extra` gives them.
        let base = BASE[1..].chunks(2).filter(|pair| !extra.contains(&pair[0]));
        let args: Vec<&str> = std::iter::once(BASE[0])
            .chain(base.flatten().copied())
            .chain(extra.iter().copied())
            .collect();
        let flags = Flags::try_parse_from(args).map_err(|e| e.to_string())?;
        flags.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_the_contract() {
        let c = validate(&[]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.metrics_listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.tls_reload_interval, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Text);
        let s = c.settings;
        let d = Settings::default();
        assert_eq!(
            (s.token_audience, s.auth_path, s.agent_port, s.volume_size),
            (d.token_audience, d.auth_path, d.agent_port, d.volume_size)
        );
        assert_eq!(
            (s.agent_cpu_request, s.agent_cpu_limit),
            (d.agent_cpu_request, d.agent_cpu_limit)
        );
        assert_eq!(
            (s.agent_memory_request, s.agent_memory_limit),
            (d.agent_memory_request, d.agent_memory_limit)
        );
        assert_eq!(s.hushd_ca_configmap, None);
        assert!(!s.legacy_sidecar);
        assert_eq!(s.agent_image, "hush-agent:1");
    }

    #[test]
    fn every_flag_reaches_the_settings() {
        let c = validate(&[
            "--listen",
            "127.0.0.1:9443",
            "--metrics-listen",
            "127.0.0.1:9080",
            "--hushd-ca-configmap",
            "hush-ca",
            "--legacy-sidecar",
            "--token-audience",
            "vault",
            "--auth-path",
            "k8s/prod",
            "--agent-port",
            "9299",
            "--volume-size",
            "1Mi",
            "--agent-cpu-request",
            "0.1",
            "--agent-cpu-limit",
            "1",
            "--agent-memory-request",
            "1e6",
            "--agent-memory-limit",
            "1G",
            "--log-format",
            "json",
            "--tls-reload-interval-secs",
            "1",
        ])
        .unwrap();
        let s = &c.settings;
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.metrics_listen.port(), 9080);
        assert_eq!(s.hushd_ca_configmap.as_deref(), Some("hush-ca"));
        assert!(s.legacy_sidecar);
        assert_eq!(
            (s.token_audience.as_str(), s.auth_path.as_str()),
            ("vault", "k8s/prod")
        );
        assert_eq!(s.agent_port, 9299);
        assert_eq!(
            [
                &s.volume_size,
                &s.agent_cpu_request,
                &s.agent_cpu_limit,
                &s.agent_memory_request,
                &s.agent_memory_limit
            ],
            ["1Mi", "0.1", "1", "1e6", "1G"]
        );
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.tls_reload_interval, Duration::from_secs(1));
    }

    #[test]
    fn each_bad_flag_is_named_with_the_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&["--listen", "8443"], "--listen: want IP:PORT, e.g. 0.0.0.0:8443, not \"8443\""),
            (
                &["--metrics-listen", "localhost:8080"],
                "--metrics-listen: want IP:PORT, e.g. 0.0.0.0:8443, not \"localhost:8080\"",
            ),
            (
                &["--metrics-listen", "0.0.0.0:8443"],
                "--metrics-listen: must differ from --listen (0.0.0.0:8443)",
            ),
            (&["--tls-reload-interval-secs", "0"], "--tls-reload-interval-secs: must be at least 1"),
            (
                &["--hushd-addr", "hushd:8200"],
                "--hushd-addr: want an http:// or https:// URL such as https://hushd.hush.svc:8200, not \"hushd:8200\"",
            ),
            (&["--token-audience", ""], "--token-audience: must not be empty"),
            (
                &["--auth-path", "/kubernetes"],
                "--auth-path: want a mount path such as kubernetes or k8s/prod, not \"/kubernetes\"",
            ),
            (&["--agent-port", "0"], "--agent-port: must be 1 to 65535"),
            (&["--log-format", "xml"], "--log-format: want text or json, not \"xml\""),
        ];
        for (args, want) in cases {
            assert_eq!(validate(args).unwrap_err(), *want, "{args:?}");
        }
        // Values checked by the annotations' grammars (crate::syntax): the flag, the value
        // quoted, then the grammar's reason.
        for (flag, value) in [
            ("--agent-image", " "),
            ("--hushd-ca-configmap", "Hush_CA"),
            ("--volume-size", "16MB"),
            ("--agent-cpu-request", "a lot"),
            ("--agent-cpu-limit", "1.2.3"),
            ("--agent-memory-request", "Mi"),
            ("--agent-memory-limit", "1e"),
        ] {
            let err = validate(&[flag, value]).unwrap_err();
            assert!(err.starts_with(&format!("{flag}: {value:?} ")), "{err}");
        }
    }

    #[test]
    fn the_required_flags_are_required() {
        let err = Flags::try_parse_from(["hush-injector"])
            .unwrap_err()
            .to_string();
        for flag in ["--tls-cert", "--tls-key", "--agent-image", "--hushd-addr"] {
            assert!(err.contains(flag), "{flag} not in {err}");
        }
    }
}
