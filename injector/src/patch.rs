//! The pure decision: pod + settings -> patch, unchanged, or denial.

use k8s_openapi::api::core::v1::Pod;

pub use crate::annotations::Denial;
use crate::settings::Settings;

/// What the webhook does with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Apply this JSON patch (RFC 6902).
    Patch(json_patch::Patch),
    /// Admit the pod as it is; the reason is for the log.
    Unchanged(&'static str),
}

/// Decide what to do with `pod`.
pub fn inject(pod: &Pod, settings: &Settings) -> Result<Outcome, Denial> {
    let _ = (pod, settings);
    Ok(Outcome::Unchanged("not implemented yet"))
}
