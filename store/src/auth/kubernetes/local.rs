//! The pod's own service-account credentials, for TokenReview when hushd runs in Kubernetes.
//!
//! As Vault does (unless `disable_local_ca_jwt`): when `token_reviewer_jwt` is not set, hushd
//! reviews with the token the kubelet mounted for its own service account (so the
//! `system:auth-delegator` binding is what allows the review, and a client's token never needs
//! that right); when `kubernetes_ca_cert` is not set, it trusts the CA mounted beside it. The
//! files are read at each review: the kubelet rotates the projected token in place. Outside a
//! pod the directory does not exist and nothing changes.

use std::path::Path;

use zeroize::Zeroizing;

/// Where the kubelet mounts a pod's service-account token and CA.
pub const DEFAULT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the directory held (either may be missing).
#[derive(Default)]
pub struct Local {
    pub token: Option<Zeroizing<String>>,
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

/// Read `dir/token` and `dir/ca.crt`; missing or empty files are `None`.
pub async fn read(dir: &Path) -> Local {
    let token = tokio::fs::read_to_string(dir.join("token"))
        .await
        .ok()
        .map(|t| Zeroizing::new(t.trim().to_string()))
        .filter(|t| !t.is_empty());
    let ca_pem = tokio::fs::read_to_string(dir.join("ca.crt"))
        .await
        .ok()
        .filter(|c| !c.trim().is_empty());
    Local { token, ca_pem }
}

/// The bearer token and CA a review uses: the mount's config first, then (unless disabled) the
/// pod's own, and for the bearer finally the client's JWT (Vault's last resort).
pub fn pick<'a>(
    reviewer_jwt: &'a str,
    ca_cert: &'a str,
    local: &'a Local,
    client_jwt: &'a str,
) -> (&'a str, Option<&'a str>) {
    let bearer = if !reviewer_jwt.is_empty() {
        reviewer_jwt
    } else if let Some(t) = &local.token {
        t.as_str()
    } else {
        client_jwt
    };
    let ca = if !ca_cert.is_empty() {
        Some(ca_cert)
    } else {
        local.ca_pem.as_deref()
    };
    (bearer, ca)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_token_and_ca_and_ignores_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        assert!(read(d.path()).await.token.is_none());
        std::fs::write(d.path().join("token"), "pod-token\n").unwrap();
        let l = read(d.path()).await;
        assert_eq!(l.token.as_deref().map(String::as_str), Some("pod-token"));
        assert!(l.ca_pem.is_none());
        std::fs::write(d.path().join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(read(d.path()).await.ca_pem.is_some());
        assert!(!format!("{:?}", read(d.path()).await).contains("pod-token"));
        assert!(read(Path::new("/nonexistent/hush")).await.token.is_none());
    }

    #[test]
    fn config_wins_then_the_pod_then_the_client() {
        let pod = Local {
            token: Some(Zeroizing::new("pod".into())),
            ca_pem: Some("pod-ca".into()),
        };
        let none = Local::default();
        assert_eq!(
            pick("cfg", "cfg-ca", &pod, "client"),
            ("cfg", Some("cfg-ca"))
        );
        assert_eq!(pick("", "", &pod, "client"), ("pod", Some("pod-ca")));
        assert_eq!(pick("", "", &none, "client"), ("client", None));
    }
}
