//! hush-injector: a Kubernetes mutating admission webhook that adds hush-agent to pods
//! carrying `hush.dev/agent-inject: "true"`.
//!
//! The decision is a pure function, [`patch::inject`]: a pod and the injector's [`Settings`]
//! in, a JSON patch, "leave it alone" or a denial out. The HTTP side (AdmissionReview in and
//! out, TLS, metrics) wraps it and holds no policy of its own.

pub mod annotations;
pub mod names;
pub mod patch;
pub mod settings;
pub mod syntax;

pub use patch::{inject, Denial, Outcome};
pub use settings::Settings;
