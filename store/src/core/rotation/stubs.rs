// TEMPORARY until the webhooks and password-policy branches merge.
#![allow(dead_code, clippy::unused_async)]
use zeroize::Zeroizing;
pub fn generate_default(n: usize) -> Zeroizing<String> {
    Zeroizing::new("x".repeat(n))
}
#[derive(Debug, Default)]
pub struct Passwords;
impl Passwords {
    pub async fn generate(
        &self,
        _n: &str,
    ) -> Result<Zeroizing<String>, crate::logical::LogicalError> {
        Ok(Zeroizing::new("p".into()))
    }
}
