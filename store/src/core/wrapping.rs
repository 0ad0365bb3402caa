//! Response wrapping (Vault's `vault/wrapping.go`): an answer asked for with
//! `X-Vault-Wrap-TTL` is kept in the cubbyhole of a new wrapping token, and the client gets
//! only `wrap_info`. `sys/wrapping/unwrap` hands the answer out once and revokes the token;
//! `lookup` shows when and where it was made; `rewrap` moves it to a fresh token;
//! `sys/wrapping/wrap` wraps data the caller gives.
//!
//! A wrapping token is an orphan service token with the one policy `response-wrapping`, a TTL
//! of the wrap TTL and no renewal. It has no use limit of its own: it serves no path but the
//! three above (the core refuses it everywhere else), and unwrapping and rewrapping revoke it,
//! under one lock so that two unwraps cannot both see the answer. Its revocation (unwrap,
//! expiry) destroys its cubbyhole, and with it the answer.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::Value;

use crate::core::state::Unsealed;
use crate::core::token::CreateParams;
use crate::logical::ttl::MAX_TTL;
use crate::logical::{Data, LogicalError, Operation, Request, Response, TokenEntry, WrapInfo};

/// The one policy of a wrapping token.
pub const WRAPPING_POLICY: &str = "response-wrapping";

/// Where in the wrapping token's cubbyhole the answer is kept (Vault's `cubbyhole/response`).
const RESPONSE_PATH: &str = "cubbyhole/response";

/// Serialises unwrap and rewrap: each wrap is handed out once.
static HANDOUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Is `entry` a wrapping token?
pub fn is_wrapping_token(entry: &TokenEntry) -> bool {
    entry.policies.len() == 1 && entry.policies[0] == WRAPPING_POLICY
}

fn invalid_token() -> LogicalError {
    LogicalError::invalid("wrapping token is not valid or does not exist")
}

/// What [`wrap_response`] needs of the request (kept apart: a login consumes its request).
#[derive(Debug, Clone)]
pub struct Asked {
    pub wrap_ttl: Option<u64>,
    pub request_id: String,
    pub path: String,
}

impl Asked {
    pub fn of(req: &Request) -> Asked {
        Asked {
            wrap_ttl: req.wrap_ttl,
            request_id: req.id.clone(),
            path: req.path.clone(),
        }
    }
}

/// Wraps a login's answer before the login flow audits it.
#[derive(Debug)]
pub struct WrapLogin<'a> {
    pub st: &'a Unsealed,
    pub asked: Asked,
}

#[async_trait::async_trait]
impl crate::core::login::Finish for WrapLogin<'_> {
    async fn finish(&self, resp: Response) -> Result<Response, LogicalError> {
        wrap_response(self.st, &self.asked, resp).await
    }
}

/// The answer a wrap keeps, as the client would have got it.
fn stored_body(data: &Data) -> Result<Value, LogicalError> {
    data.get("response")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| LogicalError::Internal("a wrapped answer does not parse".into()))
}

/// Wrap `resp`, the answer to the request, when `req` asked for it. Empty answers and answers that
/// are errors (a status of 400 or more) have nothing to wrap and go out as they are, as in
/// Vault.
pub async fn wrap_response(
    st: &Unsealed,
    asked: &Asked,
    resp: Response,
) -> Result<Response, LogicalError> {
    let Some(ttl) = asked.wrap_ttl else {
        return Ok(resp);
    };
    if resp.is_empty() || resp.wrap_info.is_some() || resp.status.is_some_and(|s| s >= 400) {
        return Ok(resp);
    }
    let wrapped_accessor = match (&resp.auth, &resp.data) {
        (Some(auth), _) => auth.accessor.clone(),
        (None, Some(data)) => data
            .get("secret_id_accessor")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    let body = resp.envelope(&asked.request_id);
    let info = store(st, &body, ttl, &asked.path, wrapped_accessor).await?;
    Ok(Response {
        wrap_info: Some(info),
        ..Default::default()
    })
}

/// Keep `body` in the cubbyhole of a new wrapping token.
async fn store(
    st: &Unsealed,
    body: &Value,
    ttl: u64,
    creation_path: &str,
    wrapped_accessor: String,
) -> Result<WrapInfo, LogicalError> {
    let ttl = ttl.min(MAX_TTL);
    let params = CreateParams {
        policies: vec![WRAPPING_POLICY.into()],
        no_default_policy: true,
        renewable: Some(false),
        ttl: Some(ttl),
        explicit_max_ttl: Some(ttl),
        path: creation_path.to_string(),
        sudo: true,
        ..Default::default()
    };
    let auth = st.tokens.create(params, None).await?;
    let entry = st.tokens.authenticate(&auth.client_token).await?;
    let mut data = Data::new();
    data.insert("response".into(), body.to_string().into());
    data.insert("creation_ttl".into(), ttl.into());
    data.insert(
        "creation_time".into(),
        entry
            .creation_time
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            .into(),
    );
    data.insert("creation_path".into(), creation_path.into());
    data.insert("wrapped_accessor".into(), wrapped_accessor.clone().into());
    if let Err(e) = cubbyhole(st, Operation::Create, entry.clone(), data).await {
        st.tokens.revoke_tree(&entry.id_hash).await?;
        return Err(e);
    }
    Ok(WrapInfo {
        token: auth.client_token,
        accessor: auth.accessor,
        ttl,
        creation_time: entry.creation_time,
        creation_path: creation_path.to_string(),
        wrapped_accessor,
    })
}

/// One request to `cubbyhole/response` as the wrapping token `entry`.
async fn cubbyhole(
    st: &Unsealed,
    op: Operation,
    entry: Arc<TokenEntry>,
    data: Data,
) -> Result<Response, LogicalError> {
    let (mount, backend) = st.router.route(RESPONSE_PATH).map_err(|_| {
        LogicalError::invalid("response wrapping needs the cubbyhole/ mount, which is missing")
    })?;
    let mut req = Request::new(op, RESPONSE_PATH);
    req.mount_point = mount.path.clone();
    req.mount_type = mount.kind.clone();
    req.token_entry = Some(entry);
    req.data = data;
    backend.handle(&req).await
}

/// The wrapping token `token` and what its cubbyhole keeps; 400 for anything else.
async fn open(
    st: &Unsealed,
    token: &SecretString,
) -> Result<(Arc<TokenEntry>, Data), LogicalError> {
    let entry = match st.tokens.authenticate(token).await {
        Ok(entry) => entry,
        Err(LogicalError::PermissionDenied) => return Err(invalid_token()),
        Err(e) => return Err(e),
    };
    if !is_wrapping_token(&entry) {
        return Err(invalid_token());
    }
    match cubbyhole(st, Operation::Read, entry.clone(), Data::new()).await {
        Ok(resp) => Ok((entry, resp.data.unwrap_or_default())),
        Err(LogicalError::NotFound(_)) => Err(invalid_token()),
        Err(e) => Err(e),
    }
}

/// The wrapping token a request names: `token` in the body, else the caller's own.
pub fn named_token(req: &Request) -> Option<SecretString> {
    match req.get_str("token").filter(|t| !t.is_empty()) {
        Some(t) => Some(SecretString::from(t.to_string())),
        None => req.client_token.clone(),
    }
}

/// Requests that present the wrapping token itself (as `X-Vault-Token`) to unwrap or rewrap
/// it, and every lookup (unauthenticated, as in Vault): the core serves them without the ACL.
pub fn served_without_acl(req: &Request) -> bool {
    let body_token = req.get_str("token").is_some_and(|t| !t.is_empty());
    match req.path.as_str() {
        "sys/wrapping/lookup" => true,
        "sys/wrapping/unwrap" | "sys/wrapping/rewrap" => !body_token,
        _ => false,
    }
}

/// `sys/wrapping/*` (the core has checked the caller, or [`served_without_acl`] said none is
/// needed).
pub async fn handle(st: &Unsealed, req: &Request, rel: &str) -> Result<Response, LogicalError> {
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    match rel {
        "wrap" if write => {
            if req.wrap_ttl.is_none() {
                return Err(LogicalError::invalid(
                    "endpoint requires response wrapping to be used: send X-Vault-Wrap-TTL",
                ));
            }
            if req.data.is_empty() {
                return Err(LogicalError::invalid("no data provided to wrap"));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        "lookup" if write || req.operation == Operation::Read => {
            let token = named_token(req).ok_or_else(invalid_token)?;
            let (_, data) = open(st, &token).await?;
            let mut out = Data::new();
            for key in ["creation_path", "creation_time", "creation_ttl"] {
                out.insert(key.into(), data.get(key).cloned().unwrap_or(Value::Null));
            }
            Ok(Response::data(Value::Object(out)))
        }
        "unwrap" if write => {
            let token = named_token(req).ok_or_else(invalid_token)?;
            let _once = HANDOUT.lock().await;
            let (entry, data) = open(st, &token).await?;
            let mut body = stored_body(&data)?;
            st.tokens.revoke_tree(&entry.id_hash).await?;
            if let Some(m) = body.as_object_mut() {
                if m.contains_key("request_id") {
                    m.insert("request_id".into(), req.id.clone().into());
                }
            }
            Ok(Response::raw(body))
        }
        "rewrap" if write => {
            let token = named_token(req).ok_or_else(invalid_token)?;
            let _once = HANDOUT.lock().await;
            let (entry, data) = open(st, &token).await?;
            let body = stored_body(&data)?;
            let ttl = data
                .get("creation_ttl")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let path = data
                .get("creation_path")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let accessor = data
                .get("wrapped_accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let info = store(st, &body, ttl.max(1), path, accessor).await?;
            st.tokens.revoke_tree(&entry.id_hash).await?;
            Ok(Response {
                wrap_info: Some(info),
                ..Default::default()
            })
        }
        "wrap" | "lookup" | "unwrap" | "rewrap" => Err(LogicalError::UnsupportedOperation),
        _ => Err(LogicalError::UnsupportedPath),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use crate::core::Core;
    use crate::logical::{Operation, Request};

    async fn core() -> std::sync::Arc<Core> {
        let core = crate::core::test_support::dev_core().await;
        core
    }

    fn call(op: Operation, path: &str, token: &str, body: serde_json::Value) -> Request {
        let mut req = Request::new(op, path).with_data(body);
        req.client_token = Some(SecretString::from(token.to_string()));
        req
    }

    /// `sys/wrapping/wrap` of `body` for 60s as root.
    fn wrap(body: serde_json::Value) -> Request {
        let mut req = call(Operation::Update, "sys/wrapping/wrap", "root", body);
        req.wrap_ttl = Some(60);
        req
    }

    #[tokio::test]
    async fn a_wrapped_answer_is_handed_out_once_and_its_cubbyhole_goes_with_it() {
        let core = core().await;
        let resp = core
            .handle(wrap(serde_json::json!({"pw": "s3cret"})))
            .await
            .unwrap();
        assert!(resp.data.is_none() && resp.raw.is_none());
        let info = resp.wrap_info.unwrap();
        assert_eq!(
            (info.ttl, info.creation_path.as_str()),
            (60, "sys/wrapping/wrap")
        );
        let token = info.token.expose_secret().to_string();
        let st = core.unsealed().unwrap();
        let hash = st.tokens.hmac(&token);
        let stored = core
            .barrier()
            .get(&format!("logical/cubbyhole/{hash}/response"))
            .await
            .unwrap();
        assert!(
            stored.is_some(),
            "the answer is in the wrapping token's cubbyhole"
        );

        // The wrapping token is refused anywhere else.
        let err = core
            .handle(call(
                Operation::Read,
                "cubbyhole/response",
                &token,
                serde_json::json!({}),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 403);

        let unwrap = call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &token,
            serde_json::json!({}),
        );
        let body = core.handle(unwrap).await.unwrap().raw.unwrap();
        assert_eq!(body["data"]["pw"], "s3cret");
        let again = call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &token,
            serde_json::json!({}),
        );
        assert_eq!(core.handle(again).await.unwrap_err().status(), 400);
        // Revoking the token destroyed its cubbyhole.
        let gone = core
            .barrier()
            .get(&format!("logical/cubbyhole/{hash}/response"))
            .await
            .unwrap();
        assert!(gone.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_racing_unwraps_hand_the_answer_out_once() {
        let core = core().await;
        let resp = core.handle(wrap(serde_json::json!({"k": "v"}))).await;
        let info = resp.unwrap().wrap_info.unwrap();
        let token = info.token.expose_secret().to_string();
        let unwrap = || {
            core.handle(call(
                Operation::Update,
                "sys/wrapping/unwrap",
                "root",
                serde_json::json!({ "token": token }),
            ))
        };
        let (a, b) = tokio::join!(unwrap(), unwrap());
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "exactly one unwrap gets the answer"
        );
    }

    #[tokio::test]
    async fn an_empty_answer_is_not_wrapped_and_errors_stay_errors() {
        let core = core().await;
        let mut req = call(
            Operation::Delete,
            "secret/metadata/nothing",
            "root",
            serde_json::json!({}),
        );
        req.wrap_ttl = Some(60);
        let resp = core.handle(req).await.unwrap();
        assert!(resp.is_empty());
        let mut req = call(
            Operation::Read,
            "secret/data/nothing",
            "root",
            serde_json::json!({}),
        );
        req.wrap_ttl = Some(60);
        assert_eq!(core.handle(req).await.unwrap_err().status(), 404);
    }
}
