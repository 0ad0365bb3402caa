//! hush-injector: a Kubernetes mutating admission webhook that adds hush-agent to pods
//! carrying `hush.dev/agent-inject: "true"`.
//!
//! The decision is a pure function, [`patch::inject`]: a pod and the injector's [`Settings`]
//! in, a JSON patch, "leave it alone" or a denial out. The HTTP side (AdmissionReview in and
//! out, TLS, metrics) wraps it and holds no policy of its own.
//!
//! - [`syntax`]: the value grammars (quantities, DNS names, modes, file names, paths).
//! - [`names`]: the names and paths the patch gives what it adds.
//! - [`annotations`]: the `hush.dev/` annotations read and checked; [`Denial`].
//! - [`plan`]: annotations + settings + pod -> what to add (defaults, uid, chosen containers).
//! - [`volumes`], [`agent`]: the volumes and mounts; the agent's containers.
//! - [`patch`]: [`inject`] and the JSON patch operations.

pub mod agent;
pub mod annotations;
pub mod names;
pub mod patch;
pub mod plan;
pub mod settings;
pub mod syntax;
pub mod volumes;

pub use patch::{inject, Denial, Outcome};
pub use settings::Settings;
