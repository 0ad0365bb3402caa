//! The password generator the rest of hushd calls: [`generate`] draws from a named password
//! policy of the store (rotation), [`generate_default`] from Vault's default policy (the
//! database engine without a `password_policy`). The policies themselves are in
//! [`super::passwords`]; the syntax and the draw in [`crate::logical::password`].

use zeroize::Zeroizing;

use super::state::Unsealed;
use crate::logical::LogicalError;

/// A password from the named policy of this store: 404 when there is no such policy, 500
/// when its draw times out.
pub async fn generate(st: &Unsealed, policy_name: &str) -> Result<Zeroizing<String>, LogicalError> {
    st.passwords.generate(policy_name).await
}

/// A password from Vault's default policy: `length` characters (at least 4) with at least one
/// lower-case letter, upper-case letter, digit and `-`.
pub fn generate_default(length: usize) -> Zeroizing<String> {
    crate::logical::password::generate_default(length)
}
