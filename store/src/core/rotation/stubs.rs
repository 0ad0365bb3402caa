// TEMPORARY until the webhooks and password-policy branches merge.
#![allow(dead_code, clippy::unused_async)]
use serde_json::{Map, Value};
use zeroize::Zeroizing;
#[derive(Debug, Default)]
pub struct Webhooks;
impl Webhooks {
    pub async fn call(&self, _name: &str, _body: &Value) -> Result<(), String> {
        Err("stub".into())
    }
    pub async fn emit(&self, _t: &str, _p: &str, _d: Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
    pub async fn exists(&self, _n: &str) -> Result<bool, crate::logical::LogicalError> {
        Ok(true)
    }
}
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
