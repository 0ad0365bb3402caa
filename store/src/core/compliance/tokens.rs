//! Evidence about tokens: those that never expire (root tokens, tokens made without a TTL)
//! and those older than the report's window (candidates for dormancy, checked against the
//! audit log). Tokens are named by accessor, never by the token.

use chrono::{DateTime, Utc};

use crate::core::state::Unsealed;
use crate::logical::token::TokenEntry;
use crate::logical::LogicalError;

/// Token entries read per storage page.
const PAGE: usize = 256;
/// Tokens named in the evidence at most (the counts are always whole).
pub const LISTED: usize = 20;

/// A token as the report names it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub created: DateTime<Utc>,
    pub root: bool,
}

impl TokenInfo {
    fn of(e: &TokenEntry) -> Self {
        TokenInfo {
            accessor: e.accessor.clone(),
            display_name: e.display_name.clone(),
            policies: e.policies.clone(),
            created: e.creation_time,
            root: e.is_root(),
        }
    }

    /// `accessor X (root, "token-admin", created 2025-01-02)`.
    pub fn describe(&self) -> String {
        format!(
            "accessor {} ({}{}, created {})",
            self.accessor,
            if self.root { "root, " } else { "" },
            self.display_name,
            self.created.format("%Y-%m-%d %H:%M UTC"),
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct TokenEvidence {
    /// Live tokens.
    pub total: usize,
    /// Live tokens without an expiry time.
    pub non_expiring: Vec<TokenInfo>,
    /// Live tokens created before the window started.
    pub older_than_window: Vec<TokenInfo>,
}

pub async fn gather(
    st: &Unsealed,
    window_start: DateTime<Utc>,
) -> Result<TokenEvidence, LogicalError> {
    let mut ev = TokenEvidence::default();
    let mut after: Option<String> = None;
    loop {
        let (entries, last) = st.tokens.page(after.as_deref(), PAGE).await?;
        for e in &entries {
            ev.total += 1;
            if e.expire_time.is_none() {
                ev.non_expiring.push(TokenInfo::of(e));
            }
            if e.creation_time < window_start {
                ev.older_than_window.push(TokenInfo::of(e));
            }
        }
        match last {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    ev.non_expiring.sort_by_key(|t| t.created);
    ev.older_than_window.sort_by_key(|t| t.created);
    Ok(ev)
}
