//! `sys/raw/<path>` (Vault's raw storage endpoint): read, write, list and delete storage
//! entries by their key, decrypted and encrypted by the barrier. A root path (sudo), and only
//! served when hushd runs with `--raw-storage-endpoint` (Vault's `raw_storage_endpoint`);
//! otherwise 404, as in Vault.
//!
//! The barrier's own entries (the keyring, `core/keyring`, and everything under `core/seal`)
//! are refused with a 400, as Vault refuses its protected paths. A write goes to storage only:
//! the subsystems that keep what they read (mount table, policies, auth method configs) see it
//! after the next unseal, as with Vault. A value is read and written as a string; with
//! `encoding=base64`, as base64 (for binary entries).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::Core;
use crate::barrier::seal::SEAL_PREFIX;
use crate::barrier::KEYRING_PATH;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Key prefixes no raw request may touch.
fn protected(key: &str) -> bool {
    key.starts_with(KEYRING_PATH) || key.starts_with(SEAL_PREFIX.trim_end_matches('/'))
}

/// Is `encoding=base64` asked for? Only `base64` (or nothing) is accepted.
fn base64_encoding(req: &Request) -> Result<bool, LogicalError> {
    match req.data.get("encoding") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s.is_empty() => Ok(false),
        Some(Value::String(s)) if s == "base64" => Ok(true),
        Some(_) => Err(LogicalError::invalid(
            "invalid encoding: only base64 is supported",
        )),
    }
}

/// Serve `sys/raw/<key>` (`key` empty for `sys/raw` itself).
pub(super) async fn handle(
    core: &Core,
    req: &Request,
    key: &str,
) -> Result<Response, LogicalError> {
    if !core.options().raw_storage_endpoint {
        return Err(LogicalError::UnsupportedPath);
    }
    let barrier = core.barrier();
    let op = req.operation;
    if op == Operation::List {
        if protected(key) {
            return Err(LogicalError::invalid(format!("cannot list '{key}'")));
        }
        let keys = barrier.list(key).await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound(String::new()));
        }
        return Ok(Response::list(keys));
    }
    let verb = match op {
        Operation::Read => "read",
        Operation::Delete => "delete",
        Operation::Create | Operation::Update => "write",
        _ => return Err(LogicalError::UnsupportedOperation),
    };
    if key.is_empty() && op != Operation::Read {
        return Err(LogicalError::invalid("missing path"));
    }
    if protected(key) {
        return Err(LogicalError::invalid(format!("cannot {verb} '{key}'")));
    }
    match op {
        Operation::Read => {
            let found = match key {
                "" => None,
                _ => barrier.get(key).await?,
            };
            let Some(value) = found else {
                return Err(LogicalError::NotFound(String::new()));
            };
            let value = if base64_encoding(req)? {
                STANDARD.encode(&value[..])
            } else {
                String::from_utf8_lossy(&value).into_owned()
            };
            Ok(Response::data(json!({ "value": value })))
        }
        Operation::Delete => {
            barrier.delete(key).await?;
            Ok(Response::empty())
        }
        _ => {
            let value = match req.data.get("value") {
                Some(Value::String(v)) => v,
                None | Some(Value::Null) => return Err(LogicalError::invalid("missing value")),
                Some(_) => return Err(LogicalError::invalid("value must be a string")),
            };
            let bytes = if base64_encoding(req)? {
                STANDARD
                    .decode(value)
                    .map_err(|_| LogicalError::invalid("value is not valid base64"))?
            } else {
                value.as_bytes().to_vec()
            };
            barrier.put(key, bytes).await?;
            Ok(Response::empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::{ExposeSecret, SecretString};
    use serde_json::json;

    use crate::core::{Core, CoreOptions};
    use crate::logical::{LogicalError, Operation, Request, Response};

    async fn dev(raw_storage_endpoint: bool) -> Arc<Core> {
        let options = CoreOptions {
            raw_storage_endpoint,
            ..Default::default()
        };
        let core = Core::with_options(
            Arc::new(crate::storage::MemoryBackend::new()),
            crate::backends(),
            options,
        );
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        core
    }

    async fn call(
        core: &Core,
        token: &str,
        op: Operation,
        path: &str,
        body: serde_json::Value,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(body);
        req.client_token = Some(SecretString::from(token));
        core.handle(req).await
    }

    fn status(r: &Result<Response, LogicalError>) -> u16 {
        match r {
            Ok(r) => r.status.unwrap_or(if r.data.is_some() { 200 } else { 204 }),
            Err(e) => e.status(),
        }
    }

    #[tokio::test]
    async fn off_by_default_it_is_404() {
        let core = dev(false).await;
        for (op, path) in [
            (Operation::Read, "sys/raw/core/mounts"),
            (Operation::List, "sys/raw/"),
            (Operation::Update, "sys/raw/x"),
            (Operation::Delete, "sys/raw/x"),
        ] {
            let r = call(&core, "root", op, path, json!({"value": "v"})).await;
            assert_eq!(status(&r), 404, "{op:?} {path}");
        }
    }

    #[tokio::test]
    async fn read_write_list_delete_through_the_barrier() {
        let core = dev(true).await;
        let put = call(
            &core,
            "root",
            Operation::Update,
            "sys/raw/test/one",
            json!({"value": "hello"}),
        )
        .await;
        assert_eq!(status(&put), 204);
        // Stored encrypted, read back decrypted.
        let stored = core
            .barrier()
            .backend()
            .get("test/one")
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.windows(5).any(|w| w == b"hello"));
        let r = call(
            &core,
            "root",
            Operation::Read,
            "sys/raw/test/one",
            json!({}),
        )
        .await
        .unwrap();
        assert_eq!(r.data.unwrap()["value"], "hello");
        let r = call(
            &core,
            "root",
            Operation::Read,
            "sys/raw/test/one",
            json!({"encoding": "base64"}),
        )
        .await
        .unwrap();
        assert_eq!(r.data.unwrap()["value"], "aGVsbG8=");
        let bin = call(
            &core,
            "root",
            Operation::Update,
            "sys/raw/test/two",
            json!({"value": "AAEC", "encoding": "base64"}),
        )
        .await;
        assert_eq!(status(&bin), 204);
        assert_eq!(
            &core.barrier().get("test/two").await.unwrap().unwrap()[..],
            &[0, 1, 2]
        );
        let r = call(&core, "root", Operation::List, "sys/raw/test/", json!({}))
            .await
            .unwrap();
        assert_eq!(r.data.unwrap()["keys"], json!(["one", "two"]));
        // The store's own entries are there to read (the mount table, under core/).
        let r = call(&core, "root", Operation::List, "sys/raw/", json!({}))
            .await
            .unwrap();
        assert!(r.data.unwrap()["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("core/")));
        let del = call(
            &core,
            "root",
            Operation::Delete,
            "sys/raw/test/one",
            json!({}),
        )
        .await;
        assert_eq!(status(&del), 204);
        let gone = call(
            &core,
            "root",
            Operation::Read,
            "sys/raw/test/one",
            json!({}),
        )
        .await;
        assert_eq!(status(&gone), 404);
        let empty = call(
            &core,
            "root",
            Operation::List,
            "sys/raw/nothing/",
            json!({}),
        )
        .await;
        assert_eq!(status(&empty), 404);
        for (body, want) in [
            (json!({}), "missing value"),
            (json!({"value": 5}), "value must be a string"),
            (
                json!({"value": "!", "encoding": "base64"}),
                "not valid base64",
            ),
            (json!({"value": "x", "encoding": "hex"}), "invalid encoding"),
        ] {
            let e = call(&core, "root", Operation::Update, "sys/raw/test/x", body)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[tokio::test]
    async fn the_keyring_and_seal_entries_are_refused() {
        let core = dev(true).await;
        for (op, path, msg) in [
            (
                Operation::Read,
                "sys/raw/core/keyring",
                "cannot read 'core/keyring'",
            ),
            (Operation::Update, "sys/raw/core/keyring", "cannot write"),
            (Operation::Delete, "sys/raw/core/keyring", "cannot delete"),
            (Operation::Read, "sys/raw/core/seal/config", "cannot read"),
            (
                Operation::Update,
                "sys/raw/core/seal/root-key",
                "cannot write",
            ),
            (Operation::List, "sys/raw/core/seal/", "cannot list"),
        ] {
            let e = call(&core, "root", op, path, json!({"value": "x"}))
                .await
                .unwrap_err();
            assert_eq!(e.status(), 400, "{path}");
            assert!(e.to_string().contains(msg), "{e}");
        }
    }

    #[tokio::test]
    async fn it_needs_sudo() {
        let core = dev(true).await;
        for (name, caps) in [
            ("raw-rw", r#"["read", "list"]"#),
            ("raw-sudo", r#"["read", "list", "sudo"]"#),
        ] {
            let policy = format!("path \"sys/raw/*\" {{ capabilities = {caps} }}");
            call(
                &core,
                "root",
                Operation::Update,
                &format!("sys/policies/acl/{name}"),
                json!({ "policy": policy }),
            )
            .await
            .unwrap();
        }
        let token = |policy: &'static str| {
            let core = core.clone();
            async move {
                let r = call(
                    &core,
                    "root",
                    Operation::Update,
                    "auth/token/create",
                    json!({ "policies": [policy] }),
                )
                .await
                .unwrap();
                r.auth.unwrap().client_token.expose_secret().to_string()
            }
        };
        let (plain, sudo) = (token("raw-rw").await, token("raw-sudo").await);
        let r = call(&core, &plain, Operation::List, "sys/raw/core/", json!({})).await;
        assert_eq!(status(&r), 403);
        let r = call(&core, &sudo, Operation::List, "sys/raw/core/", json!({})).await;
        assert_eq!(status(&r), 200);
    }
}
