//! What a backend may ask of the core, as Vault's `SystemView`: a narrow handle the core
//! implements and hands to each backend at start (with its barrier view, options and event
//! publisher), so engines reach core services without naming the core.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::LogicalError;

/// Core services a backend may call.
#[async_trait::async_trait]
pub trait SystemView: Send + Sync {
    /// A password from the named password policy (`sys/policies/password/:name`). An unknown
    /// policy is a 400 naming it; a draw that times out is a 500.
    async fn generate_password_from_policy(
        &self,
        policy_name: &str,
    ) -> Result<Zeroizing<String>, LogicalError>;
}

/// The handle backends keep.
pub type SystemViewRef = Arc<dyn SystemView>;

/// A system view without password policies, for backends started outside a core (tests):
/// every policy is unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSystemView;

#[async_trait::async_trait]
impl SystemView for NoSystemView {
    async fn generate_password_from_policy(
        &self,
        policy_name: &str,
    ) -> Result<Zeroizing<String>, LogicalError> {
        Err(LogicalError::invalid(format!(
            "password policy {policy_name:?} does not exist"
        )))
    }
}
