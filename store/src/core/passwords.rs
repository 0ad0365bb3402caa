//! Named password policies (`sys/policies/password/:name`), stored behind the barrier: write
//! (with Vault's checks), read, delete, list, and generate from one. The rest of the core calls
//! them through `core::password_policy`; backends reach them only as a [`SystemView`].
//!
//! One entry per policy at `<view>/<name>`, `{"policy": "<HCL as written>"}` (Vault's shape).
//! The text is parsed again at each use, so a policy changes for every user at once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::BarrierView;
use crate::logical::password::{PasswordPolicy, GENERATE_TIMEOUT};
use crate::logical::system_view::SystemView;
use crate::logical::LogicalError;

/// Draws a stored policy must finish within [`GENERATE_TIMEOUT`] (Vault: 10).
const CHECK_DRAWS: usize = 10;
/// Longest policy name.
const MAX_NAME: usize = 128;

#[derive(Serialize, Deserialize)]
struct Stored {
    policy: String,
}

/// The password policies of one store.
#[derive(Debug)]
pub struct PasswordPolicies {
    view: BarrierView,
}

/// A policy name: non-empty, no `/` (it would run into `:name/generate`), printable.
pub fn check_name(name: &str) -> Result<(), LogicalError> {
    if name.is_empty() {
        return Err(LogicalError::invalid("missing policy name"));
    }
    if name.len() > MAX_NAME
        || name.contains('/')
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(LogicalError::invalid(format!(
            "invalid password policy name {name:?}: at most {MAX_NAME} characters, no '/' or spaces"
        )));
    }
    Ok(())
}

fn invalid(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::invalid(format!("invalid password policy: {e}"))
}

fn not_found() -> LogicalError {
    LogicalError::NotFound("policy does not exist".into())
}

impl PasswordPolicies {
    pub fn new(view: BarrierView) -> Self {
        PasswordPolicies { view }
    }

    /// The text of policy `name`, as written.
    pub async fn read(&self, name: &str) -> Result<Option<String>, LogicalError> {
        check_name(name)?;
        Ok(self.view.get_json::<Stored>(name).await?.map(|s| s.policy))
    }

    /// Check `text` as Vault does (syntax, rules, 4-100 characters, 10 draws within 1 s) and
    /// store it as policy `name`.
    pub async fn write(&self, name: &str, text: &str) -> Result<(), LogicalError> {
        check_name(name)?;
        let policy = PasswordPolicy::parse(text).map_err(invalid)?;
        policy
            .check_length()
            .map_err(|e| LogicalError::invalid(e.to_string()))?;
        let drawn = tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            (0..CHECK_DRAWS)
                .filter(|_| {
                    let left = GENERATE_TIMEOUT.saturating_sub(start.elapsed());
                    policy.generate_within(left).is_ok()
                })
                .count()
        })
        .await
        .map_err(|e| LogicalError::Internal(format!("password policy check: {e}")))?;
        if drawn == 0 {
            return Err(LogicalError::invalid(format!(
                "unable to generate password from provided policy in {GENERATE_TIMEOUT:?}: are the rules impossible?"
            )));
        }
        if drawn < CHECK_DRAWS {
            return Err(LogicalError::invalid(format!(
                "failed to generate passwords {} times out of {CHECK_DRAWS} attempts in {GENERATE_TIMEOUT:?} - is the policy too restrictive?",
                CHECK_DRAWS - drawn
            )));
        }
        self.view
            .put_json(
                name,
                &Stored {
                    policy: text.to_string(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        check_name(name)?;
        self.view.delete(name).await?;
        Ok(())
    }

    /// Policy names, sorted.
    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        let mut names = self.view.list("").await?;
        names.sort();
        Ok(names)
    }

    /// A password from policy `name`: 404 when there is none, 500 when the stored text no
    /// longer parses or the draw times out.
    pub async fn generate(&self, name: &str) -> Result<Zeroizing<String>, LogicalError> {
        let text = self.read(name).await?.ok_or_else(not_found)?;
        let policy = PasswordPolicy::parse(&text).map_err(|_| {
            LogicalError::Internal("stored password policy configuration failed to parse".into())
        })?;
        tokio::task::spawn_blocking(move || policy.generate())
            .await
            .map_err(|e| LogicalError::Internal(format!("password generation: {e}")))?
            .map_err(|e| {
                LogicalError::Internal(format!("failed to generate password from policy: {e}"))
            })
    }
}

#[async_trait::async_trait]
impl SystemView for PasswordPolicies {
    async fn generate_password_from_policy(
        &self,
        policy_name: &str,
    ) -> Result<Zeroizing<String>, LogicalError> {
        self.generate(policy_name).await.map_err(|e| match e {
            LogicalError::NotFound(_) => {
                LogicalError::invalid(format!("password policy {policy_name:?} does not exist"))
            }
            other => other,
        })
    }
}

/// The handle backends get at start.
pub fn system_view(policies: &Arc<PasswordPolicies>) -> Arc<dyn SystemView> {
    policies.clone()
}
