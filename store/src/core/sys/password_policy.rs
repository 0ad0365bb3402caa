//! `sys/policies/password` (LIST), `sys/policies/password/:name` (write, read, delete) and
//! `sys/policies/password/:name/generate`, as Vault 1.5+ answers them.

use base64::Engine as _;
use serde_json::json;

use crate::core::state::Unsealed;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Serve `rel` (below `sys/`) when it is under `policies/password`; `None` otherwise.
pub async fn handle(
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Option<Result<Response, LogicalError>> {
    let op = req.operation;
    if rel == "policies/password" || rel == "policies/password/" {
        return Some(match op {
            Operation::List | Operation::Read => st.passwords.list().await.map(Response::list),
            _ => Err(LogicalError::UnsupportedOperation),
        });
    }
    let name = rel.strip_prefix("policies/password/")?;
    if let Some(name) = name.strip_suffix("/generate") {
        return Some(match op {
            Operation::Read => generate(st, name).await,
            _ => Err(LogicalError::UnsupportedOperation),
        });
    }
    Some(match op {
        Operation::Read => match st.passwords.read(name).await {
            Ok(Some(text)) => Ok(Response::data(json!({ "policy": text }))),
            Ok(None) => Err(LogicalError::NotFound("policy does not exist".into())),
            Err(e) => Err(e),
        },
        Operation::Update | Operation::Create => write(st, req, name).await,
        Operation::Delete => st.passwords.delete(name).await.map(|()| Response::empty()),
        _ => Err(LogicalError::UnsupportedOperation),
    })
}

async fn write(st: &Unsealed, req: &Request, name: &str) -> Result<Response, LogicalError> {
    let raw = req
        .get_str("policy")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| LogicalError::invalid("missing policy"))?;
    // As Vault: the document may be base64-encoded (to spare the escaping).
    let text = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| raw.to_string());
    st.passwords.write(name, &text).await?;
    Ok(Response::empty())
}

async fn generate(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    let password = st.passwords.generate(name).await?;
    // The answer's JSON holds a copy the HTTP layer sends and the audit broker HMACs; this
    // one is wiped on drop.
    Ok(Response::data(json!({ "password": password.as_str() })))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::{json, Value};

    use crate::core::Core;
    use crate::logical::password::PasswordPolicy;
    use crate::logical::{LogicalError, Operation, Request, Response};

    const POLICY: &str = "length = 12\nrule \"charset\" {\n  charset = \"abcdef\"\n  min-chars = 2\n}\nrule \"charset\" {\n  charset = \"0123\"\n  min-chars = 1\n}\n";

    async fn dev_core() -> std::sync::Arc<Core> {
        let core = crate::core::test_support::dev_core().await;
        core
    }

    async fn call(
        core: &Core,
        op: Operation,
        path: &str,
        body: Value,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(body);
        req.client_token = Some(SecretString::from("root"));
        core.handle(req).await
    }

    fn data(resp: &Response) -> &serde_json::Map<String, Value> {
        resp.data.as_ref().expect("data")
    }

    #[tokio::test]
    async fn write_read_list_generate_delete() {
        let core = dev_core().await;
        let p = "sys/policies/password/short";
        call(&core, Operation::Update, p, json!({ "policy": POLICY }))
            .await
            .unwrap();
        let read = call(&core, Operation::Read, p, json!({})).await.unwrap();
        assert_eq!(data(&read)["policy"], POLICY);
        // Base64, as Vault accepts it, is stored decoded.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(POLICY);
        call(
            &core,
            Operation::Update,
            "sys/policies/password/b64",
            json!({ "policy": b64 }),
        )
        .await
        .unwrap();
        let read = call(
            &core,
            Operation::Read,
            "sys/policies/password/b64",
            json!({}),
        )
        .await
        .unwrap();
        assert_eq!(data(&read)["policy"], POLICY);
        let list = call(&core, Operation::List, "sys/policies/password", json!({}))
            .await
            .unwrap();
        assert_eq!(data(&list)["keys"], json!(["b64", "short"]));
        let policy = PasswordPolicy::parse(POLICY).unwrap();
        for _ in 0..200 {
            let resp = call(&core, Operation::Read, &format!("{p}/generate"), json!({}))
                .await
                .unwrap();
            let pw = data(&resp)["password"].as_str().unwrap().to_string();
            assert!(policy.satisfied_by(&pw), "{pw}");
        }
        let st = core.unsealed().unwrap();
        let pw = crate::core::password_policy::generate(&st, "short")
            .await
            .unwrap();
        assert!(policy.satisfied_by(&pw));
        call(&core, Operation::Delete, p, json!({})).await.unwrap();
        for path in [p.to_string(), format!("{p}/generate")] {
            let err = call(&core, Operation::Read, &path, json!({}))
                .await
                .unwrap_err();
            assert_eq!(err.status(), 404, "{path}");
            assert_eq!(err.to_string(), "policy does not exist");
        }
        let err = crate::core::password_policy::generate(&st, "short")
            .await
            .unwrap_err();
        assert_eq!(err.status(), 404);
    }

    #[tokio::test]
    async fn bad_writes_are_400_with_vaults_messages() {
        let core = dev_core().await;
        let charset = |len: usize, min: usize| {
            format!("length = {len}\nrule \"charset\" {{\n  charset = \"abc\"\n  min-chars = {min}\n}}\n")
        };
        for (name, body, want) in [
            ("p", json!({}), "missing policy".to_string()),
            ("p", json!({ "policy": "  " }), "missing policy".into()),
            (
                "p",
                json!({ "policy": "length = " }),
                "invalid password policy: unable to decode".into(),
            ),
            (
                "p",
                json!({ "policy": charset(3, 0) }),
                "passwords must be between 4 and 100 characters".into(),
            ),
            (
                "p",
                json!({ "policy": charset(101, 0) }),
                "passwords must be between 4 and 100 characters".into(),
            ),
            (
                "p",
                json!({ "policy": charset(4, 5) }),
                "invalid password policy: specified rules require at least 5 characters but 4 is specified".into(),
            ),
            (
                "p",
                json!({ "policy": "length = 8\nrule \"other\" {\n x = 1\n}\n" }),
                "invalid password policy: unable to parse rules: unrecognized rule type \"other\"".into(),
            ),
            (
                "bad name",
                json!({ "policy": charset(8, 0) }),
                "invalid password policy name".into(),
            ),
        ] {
            let err = call(
                &core,
                Operation::Update,
                &format!("sys/policies/password/{name}"),
                body.clone(),
            )
            .await
            .unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().starts_with(&want), "{body}: {err}");
        }
        // A policy that practically never meets its rules is refused after Vault's 10 draws.
        let others: String = ('\u{100}'..'\u{1c8}').collect();
        let hard = format!(
            "length = 100\nrule \"charset\" {{\n charset = \"a\"\n min-chars = 60\n}}\n\
             rule \"charset\" {{\n charset = \"{others}\"\n}}\n"
        );
        let err = call(
            &core,
            Operation::Update,
            "sys/policies/password/hard",
            json!({ "policy": hard }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.to_string().contains("are the rules impossible"),
            "{err}"
        );
        // Nothing was stored.
        let list = call(&core, Operation::List, "sys/policies/password", json!({}))
            .await
            .unwrap();
        assert_eq!(data(&list)["keys"], json!([]));
        // The wrong operations are 405.
        for (op, path) in [
            (Operation::Update, "sys/policies/password/p/generate"),
            (Operation::Delete, "sys/policies/password"),
        ] {
            let err = call(&core, op, path, json!({})).await.unwrap_err();
            assert_eq!(err.status(), 405, "{op:?} {path}");
        }
    }
}
