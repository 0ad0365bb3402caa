//! Token store helpers (`auth/token/...`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{data_of, Client};
use crate::error::ClientError;
use crate::wire::token::{TokenCreateRequest, TokenLookup};
use crate::wire::{Auth, VaultResponse};

fn auth_of(path: &str, resp: Option<VaultResponse>) -> Result<Auth, ClientError> {
    resp.and_then(|r| r.auth)
        .ok_or_else(|| ClientError::Decode {
            path: path.to_string(),
            reason: "the response has no auth".into(),
        })
}

/// Body with the increment, if any.
fn increment_body(mut body: serde_json::Map<String, Value>, increment: Option<&str>) -> Value {
    if let Some(inc) = increment {
        body.insert("increment".into(), inc.into());
    }
    Value::Object(body)
}

impl Client {
    /// `auth/token/create`. Set `no_parent` for an orphan.
    pub async fn token_create(&self, req: &TokenCreateRequest) -> Result<Auth, ClientError> {
        let path = "auth/token/create";
        auth_of(path, self.write(path, req).await?)
    }

    /// `GET auth/token/lookup-self`.
    pub async fn token_lookup_self(&self) -> Result<TokenLookup, ClientError> {
        let path = "auth/token/lookup-self";
        data_of(path, self.read(path).await?)
    }

    /// `POST auth/token/lookup` for another token.
    pub async fn token_lookup(&self, token: &SecretString) -> Result<TokenLookup, ClientError> {
        let path = "auth/token/lookup";
        data_of(
            path,
            self.write(path, &json!({ "token": token.expose_secret() }))
                .await?,
        )
    }

    /// `POST auth/token/lookup-accessor`.
    pub async fn token_lookup_accessor(&self, accessor: &str) -> Result<TokenLookup, ClientError> {
        let path = "auth/token/lookup-accessor";
        data_of(
            path,
            self.write(path, &json!({ "accessor": accessor })).await?,
        )
    }

    /// `POST auth/token/renew-self`; `increment` like `1h`.
    pub async fn token_renew_self(&self, increment: Option<&str>) -> Result<Auth, ClientError> {
        let path = "auth/token/renew-self";
        auth_of(
            path,
            self.write(path, &increment_body(Default::default(), increment))
                .await?,
        )
    }

    /// `POST auth/token/renew`.
    pub async fn token_renew(
        &self,
        token: &SecretString,
        increment: Option<&str>,
    ) -> Result<Auth, ClientError> {
        let path = "auth/token/renew";
        let mut body = serde_json::Map::new();
        body.insert("token".into(), token.expose_secret().into());
        auth_of(
            path,
            self.write(path, &increment_body(body, increment)).await?,
        )
    }

    /// `POST auth/token/renew-accessor`.
    pub async fn token_renew_accessor(
        &self,
        accessor: &str,
        increment: Option<&str>,
    ) -> Result<Auth, ClientError> {
        let path = "auth/token/renew-accessor";
        let mut body = serde_json::Map::new();
        body.insert("accessor".into(), accessor.into());
        auth_of(
            path,
            self.write(path, &increment_body(body, increment)).await?,
        )
    }

    /// `POST auth/token/revoke-self`.
    pub async fn token_revoke_self(&self) -> Result<(), ClientError> {
        self.write("auth/token/revoke-self", &json!({}))
            .await
            .map(drop)
    }

    /// `POST auth/token/revoke` (and its children).
    pub async fn token_revoke(&self, token: &SecretString) -> Result<(), ClientError> {
        let body = json!({ "token": token.expose_secret() });
        self.write("auth/token/revoke", &body).await.map(drop)
    }

    /// `POST auth/token/revoke-accessor`.
    pub async fn token_revoke_accessor(&self, accessor: &str) -> Result<(), ClientError> {
        self.write(
            "auth/token/revoke-accessor",
            &json!({ "accessor": accessor }),
        )
        .await
        .map(drop)
    }
}
