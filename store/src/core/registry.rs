//! The backends hushd can mount, by type name: auth methods (under `auth/`) and secrets
//! engines. The crate root fills it in ([`crate::backends`]) and hands it to the core, so the
//! core names no auth method or engine; the router starts each mount's backend from it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::mount::MountEntry;
use crate::barrier::BarrierView;
use crate::logical::events::EventPublisher;
use crate::logical::system_view::SystemViewRef;
use crate::logical::{LogicalBackend, LogicalError};

/// What a [`Constructor`] returns: the started backend.
pub type Started =
    Pin<Box<dyn Future<Output = Result<Arc<dyn LogicalBackend>, LogicalError>> + Send>>;

/// Starts a backend over its mount's barrier view (its only storage), with the mount's
/// options (as Vault hands a backend its `BackendConfig.Config`: kv reads `version`), the
/// mount's handle on the event bus, and the core's
/// [`SystemView`](crate::logical::system_view::SystemView) (named password policies).
pub type Constructor =
    fn(BarrierView, Map<String, Value>, EventPublisher, SystemViewRef) -> Started;

/// Checks the type and options a secrets engine mount is asked for and returns the type and
/// options to store (e.g. `kv-v2` becomes `kv` with `version: "2"`).
pub type OptionsCheck = fn(&str, Value) -> Result<(String, Map<String, Value>), LogicalError>;

/// Type name -> constructor, for auth methods and for secrets engines.
#[derive(Clone)]
pub struct Registry {
    auth: Vec<(&'static str, Constructor)>,
    engines: Vec<(&'static str, Constructor)>,
    engine_options: OptionsCheck,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("auth", &self.auth_types())
            .field("engines", &self.engine_types())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            auth: Vec::new(),
            engines: Vec::new(),
            engine_options: plain_options,
        }
    }
}

/// Options as given, for engines that take any.
fn plain_options(kind: &str, options: Value) -> Result<(String, Map<String, Value>), LogicalError> {
    match options {
        Value::Object(m) => Ok((kind.to_string(), m)),
        Value::Null => Ok((kind.to_string(), Map::new())),
        _ => Err(LogicalError::invalid("options must be an object")),
    }
}

fn quoted(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|t| format!("{t:?}")).collect();
    names.join(", ")
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Add the auth method `kind`.
    pub fn auth(mut self, kind: &'static str, start: Constructor) -> Self {
        self.auth.push((kind, start));
        self
    }

    /// Add the secrets engine `kind`.
    pub fn engine(mut self, kind: &'static str, start: Constructor) -> Self {
        self.engines.push((kind, start));
        self
    }

    /// Check the type and options of new secrets engine mounts with `check`.
    pub fn engine_options(mut self, check: OptionsCheck) -> Self {
        self.engine_options = check;
        self
    }

    /// Auth method types, in the order they were added.
    pub fn auth_types(&self) -> Vec<&'static str> {
        self.auth.iter().map(|(k, _)| *k).collect()
    }

    /// Secrets engine types, in the order they were added.
    pub fn engine_types(&self) -> Vec<&'static str> {
        self.engines.iter().map(|(k, _)| *k).collect()
    }

    /// The 400 for an auth method type hushd does not have.
    pub fn unsupported_auth(&self, kind: &str) -> LogicalError {
        LogicalError::invalid(format!(
            "unknown auth method type {kind:?}: hushd supports {}",
            quoted(&self.auth_types())
        ))
    }

    fn unsupported_engine(&self, kind: &str) -> LogicalError {
        LogicalError::invalid(format!(
            "unknown secrets engine type {kind:?}: hushd supports {}",
            quoted(&self.engine_types())
        ))
    }

    /// `sys/auth/:path`: may an auth method of type `kind` be enabled?
    pub fn check_auth(&self, kind: &str) -> Result<(), LogicalError> {
        match kind {
            "" => Err(LogicalError::invalid("missing auth method type")),
            "token" => Err(LogicalError::invalid(
                "the token auth method is built in at auth/token",
            )),
            k if self.auth.iter().any(|(name, _)| *name == k) => Ok(()),
            other => Err(self.unsupported_auth(other)),
        }
    }

    /// `sys/mounts/:path`: the type and options to store for a new secrets engine mount.
    pub fn check_engine(
        &self,
        kind: &str,
        options: Value,
    ) -> Result<(String, Map<String, Value>), LogicalError> {
        if kind.is_empty() {
            return Err(LogicalError::invalid("missing secrets engine type"));
        }
        let (kind, options) = (self.engine_options)(kind, options)?;
        if !self.engines.iter().any(|(name, _)| *name == kind) {
            return Err(self.unsupported_engine(&kind));
        }
        Ok((kind, options))
    }

    /// Start the backend of `entry` (an auth method under `auth/`, else an engine).
    pub async fn start(
        &self,
        entry: &MountEntry,
        view: BarrierView,
        events: EventPublisher,
        system: SystemViewRef,
    ) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
        let auth = entry.path.starts_with("auth/");
        let table = if auth { &self.auth } else { &self.engines };
        match table.iter().find(|(name, _)| *name == entry.kind) {
            Some((_, start)) => start(view, entry.options.clone(), events, system).await,
            None if auth => Err(self.unsupported_auth(&entry.kind)),
            None => Err(self.unsupported_engine(&entry.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_name_the_supported_ones() {
        let reg = crate::backends();
        let err = reg.check_auth("ldap").unwrap_err();
        assert_eq!(err.status(), 400);
        let msg = err.to_string();
        assert!(
            msg.contains("\"ldap\"") && msg.contains("\"approle\""),
            "{msg}"
        );
        assert!(reg.check_auth("token").is_err());
        assert!(reg.check_auth("").is_err());
        assert!(reg.check_auth("kubernetes").is_ok());
        assert_eq!(reg.check_engine("kv-v2", Value::Null).unwrap().0, "kv");
        let msg = reg.check_engine("transit", Value::Null).unwrap_err();
        assert!(msg.to_string().contains("\"transit\""), "{msg}");
        // An empty registry mounts nothing.
        let empty = Registry::new();
        assert!(empty.check_auth("approle").is_err());
        assert!(empty.check_engine("kv", Value::Null).is_err());
    }
}
