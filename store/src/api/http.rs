//! Vault's HTTP wire format over the core.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::core::Core;
use crate::logical::{Data, LogicalError, Operation, Request, Response};

/// Vault's default request size limit: 32 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

pub use hush_api::server::RemoteAddr;

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    max_body: usize,
    /// Serve `sys/metrics` without a token (Vault's `unauthenticated_metrics_access`).
    unauthenticated_metrics: bool,
}

/// The axum app serving `/v1/...`.
pub fn app(core: Arc<Core>, max_body: usize) -> axum::Router {
    app_with(core, max_body, false)
}

/// As [`app`]; with `unauthenticated_metrics`, `sys/metrics` needs no token.
pub fn app_with(core: Arc<Core>, max_body: usize, unauthenticated_metrics: bool) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(AppState {
        core,
        max_body,
        unauthenticated_metrics,
    })
}

/// The Prometheus text of every metric, as `sys/metrics?format=prometheus` answers it.
fn prometheus_response(core: &Core) -> HttpResponse {
    let text = core.metrics().encode_prometheus(core.is_sealed());
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                crate::metrics::PROMETHEUS_CONTENT_TYPE,
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn is_metrics_read(req: &Request) -> bool {
    req.path == "sys/metrics" && req.operation == Operation::Read
}

fn error_response(status: u16, errors: Vec<String>) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &json!({ "errors": errors }))
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

pub(super) fn logical_error(err: &LogicalError) -> HttpResponse {
    let status = err.status();
    if status >= 500 && !matches!(err, LogicalError::Sealed | LogicalError::NotInitialized) {
        tracing::error!(error = %err, "request failed");
    }
    let mut resp = error_response(status, err.messages());
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp
}

/// Split, percent-decode and check the path after `/v1/`. Empty segments are only allowed at
/// the end (a trailing slash, as list requests use); `.` and `..` are refused.
pub fn normalize_path(raw: &str) -> Result<String, LogicalError> {
    let rest = raw
        .strip_prefix("/v1/")
        .ok_or_else(|| LogicalError::NotFound(String::new()))?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| LogicalError::invalid("invalid path: not valid UTF-8"))?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(LogicalError::invalid(
            "invalid path: control characters are not allowed",
        ));
    }
    let segments: Vec<&str> = decoded.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if *seg == ".." || *seg == "." {
            return Err(LogicalError::invalid(
                "invalid path: '.' and '..' segments are not allowed",
            ));
        }
        if seg.is_empty() && i + 1 != segments.len() {
            return Err(LogicalError::invalid(
                "invalid path: empty path segments are not allowed",
            ));
        }
    }
    if decoded.is_empty() {
        return Err(LogicalError::NotFound(String::new()));
    }
    Ok(decoded.into_owned())
}

fn operation(method: &Method, query: &Data) -> Result<Operation, LogicalError> {
    let list_flag = matches!(
        query.get("list").and_then(Value::as_str),
        // Go's ParseBool, as Vault reads it (hvac sends `list=True`).
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    );
    match method.as_str() {
        "GET" | "HEAD" if list_flag => Ok(Operation::List),
        "GET" | "HEAD" => Ok(Operation::Read),
        "POST" | "PUT" => Ok(Operation::Update),
        "DELETE" => Ok(Operation::Delete),
        "LIST" => Ok(Operation::List),
        "PATCH" => Ok(Operation::Patch),
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

pub(super) fn client_token(headers: &HeaderMap) -> Option<SecretString> {
    if let Some(v) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        if !v.is_empty() {
            return Some(SecretString::from(v.to_string()));
        }
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_string()))
}

/// `X-Vault-Wrap-TTL`: seconds or a Go duration (`90`, `5m`); 0 or absent: no wrapping.
fn wrap_ttl(headers: &HeaderMap) -> Result<Option<u64>, LogicalError> {
    if let Some(format) = headers.get("x-vault-wrap-format") {
        if !matches!(format.to_str(), Ok("" | "token")) {
            return Err(LogicalError::invalid(
                "X-Vault-Wrap-Format: hushd wraps in the \"token\" format only (not \"jwt\")",
            ));
        }
    }
    let Some(value) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    match crate::logical::duration::parse_secs(text) {
        Some(0) => Ok(None),
        Some(secs) if secs > 0 => Ok(Some(secs as u64)),
        Some(_) => Err(LogicalError::invalid(
            "requested wrap ttl cannot be negative",
        )),
        None => Err(LogicalError::invalid(format!(
            "error parsing wrap ttl: {text:?} is neither seconds nor a duration"
        ))),
    }
}

pub(super) fn parse_query(q: Option<&str>) -> Data {
    let mut data = Data::new();
    if let Some(q) = q {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            data.insert(dec(k), Value::String(dec(v)));
        }
    }
    data
}

async fn read_body(body: Body, limit: usize) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(Zeroizing::new(c.to_bytes().to_vec())),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(LogicalError::TooLarge(limit))
        }
        Err(e) => match hush_api::server::body_stalled(&*e) {
            Some(stall) => Err(LogicalError::BodyTimeout(stall.as_secs())),
            None => Err(LogicalError::invalid("failed to read the request body")),
        },
    }
}

fn parse_body(bytes: &[u8]) -> Result<Data, LogicalError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Data::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(LogicalError::invalid(
            "failed to parse JSON input: the body must be a JSON object",
        )),
        Err(e) => Err(LogicalError::invalid(format!(
            "failed to parse JSON input: {} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Eof => "unexpected end of input",
                serde_json::error::Category::Syntax => "syntax error",
                _ => "invalid JSON",
            },
            e.line(),
            e.column()
        ))),
    }
}

/// An HA standby's answer: `307` to the same path and query on the active node, or `503`
/// when no node is active.
pub(super) fn standby_response(err: &LogicalError, uri: &axum::http::Uri) -> HttpResponse {
    let mut resp = error_response(err.status(), err.messages());
    if let LogicalError::Standby {
        leader: Some(leader),
    } = err
    {
        let target = format!(
            "{leader}{}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        );
        match header::HeaderValue::from_str(&target) {
            Ok(v) => {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Err(_) => return error_response(503, err.messages()),
        }
    }
    resp
}

/// An HA standby sends the request on before reading its body: `None` when this node answers.
fn standby_redirect(state: &AppState, uri: &axum::http::Uri) -> Option<HttpResponse> {
    let path = normalize_path(uri.path()).ok()?;
    if state.unauthenticated_metrics && path == "sys/metrics" {
        return None;
    }
    let standby = state.core.standby_for(&path)?;
    Some(standby_response(&standby, uri))
}

async fn handle(State(state): State<AppState>, req: axum::extract::Request) -> HttpResponse {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    if let Some(resp) = standby_redirect(&state, &parts.uri) {
        state.core.metrics().request(
            "standby",
            "unknown",
            resp.status().as_u16(),
            started.elapsed(),
        );
        return resp;
    }
    if super::events::is_subscription(parts.uri.path())
        && matches!(parts.method, Method::GET | Method::CONNECT)
    {
        return super::events::subscribe(state.core.clone(), parts).await;
    }
    let head = parts.method == Method::HEAD;
    // A request that cannot be decoded has no route group.
    let mut group = String::from("invalid");
    let mut op = "unknown";
    let resp = match decode(&state, &parts, body).await {
        Ok(logical) if is_metrics_read(&logical) && state.unauthenticated_metrics => {
            group = "sys".into();
            op = logical.operation.as_str();
            match crate::core::sys::metrics_format(&logical) {
                Ok(()) => prometheus_response(&state.core),
                Err(e) => logical_error(&e),
            }
        }
        Ok(logical) => {
            let id = logical.id.clone();
            group = state.core.route_group(&logical.path);
            op = logical.operation.as_str();
            let metrics = is_metrics_read(&logical);
            match state.core.handle(logical).await {
                // The core checked the token and the ACL, and audited; the text is ours.
                Ok(r) if metrics && r.wrap_info.is_none() => prometheus_response(&state.core),
                Ok(r) => encode(&id, r),
                Err(e @ LogicalError::Standby { .. }) => standby_response(&e, &parts.uri),
                Err(e) => logical_error(&e),
            }
        }
        Err(e) => logical_error(&e),
    };
    state
        .core
        .metrics()
        .request(&group, op, resp.status().as_u16(), started.elapsed());
    if head {
        let (parts, _) = resp.into_parts();
        return HttpResponse::from_parts(parts, Body::empty());
    }
    resp
}

async fn decode(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Request, LogicalError> {
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > state.max_body {
            return Err(LogicalError::TooLarge(state.max_body));
        }
    }
    let head = decode_head(parts)?;
    let bytes = read_body(body, state.max_body).await?;
    decode_rest(parts, head, &bytes)
}

/// What the request line gives: the path, the query, the operation.
type Head = (String, Data, Operation);

/// The path, query and method, checked before the body is read.
fn decode_head(parts: &axum::http::request::Parts) -> Result<Head, LogicalError> {
    let path = normalize_path(parts.uri.path())?;
    let query = parse_query(parts.uri.query());
    let op = operation(&parts.method, &query)?;
    Ok((path, query, op))
}

/// The logical request from the checked head, the headers and the body.
fn decode_rest(
    parts: &axum::http::request::Parts,
    (path, query, op): Head,
    bytes: &[u8],
) -> Result<Request, LogicalError> {
    let mut data = match op {
        Operation::Update | Operation::Create | Operation::Patch => parse_body(bytes)?,
        _ => {
            let mut d = if bytes.is_empty() {
                Data::new()
            } else {
                parse_body(bytes)?
            };
            for (k, v) in query {
                d.entry(k).or_insert(v);
            }
            d
        }
    };
    if op == Operation::List {
        data.remove("list");
    }
    let mut req = Request::new(op, path);
    req.data = data;
    req.client_token = client_token(&parts.headers);
    req.content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    req.remote_addr = parts.extensions.get::<RemoteAddr>().map(|a| a.0.ip());
    req.wrap_ttl = wrap_ttl(&parts.headers)?;
    Ok(req)
}

/// Entry points for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub mod fuzz_api {
    use super::{decode_head, decode_rest, LogicalError, Request};

    /// A request's decoding as [`super::app`] does it, with the body already read.
    pub fn decode_request(
        parts: &axum::http::request::Parts,
        body: &[u8],
    ) -> Result<Request, LogicalError> {
        decode_rest(parts, decode_head(parts)?, body)
    }
}

/// Vault's response envelope.
fn encode(request_id: &str, resp: Response) -> HttpResponse {
    if let Some(raw) = resp.raw {
        let status = StatusCode::from_u16(resp.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
        return json_response(status, &raw);
    }
    if resp.is_empty() {
        let status = resp.status.unwrap_or(204);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
        if status == StatusCode::NO_CONTENT {
            return (status, [(header::CACHE_CONTROL, "no-store")]).into_response();
        }
        return error_response(status.as_u16(), vec![]);
    }
    let body = resp.envelope(request_id);
    let status = StatusCode::from_u16(resp.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalize_path("/v1/secret/data/a").unwrap(),
            "secret/data/a"
        );
        assert_eq!(
            normalize_path("/v1/secret/metadata/").unwrap(),
            "secret/metadata/"
        );
        assert_eq!(
            normalize_path("/v1/secret/data/a%20b").unwrap(),
            "secret/data/a b"
        );
        for bad in [
            "/v1/secret/../sys/seal",
            "/v1/secret/%2e%2e/x",
            "/v1/secret//x",
            "/v1/./x",
            "/v1/a/%00",
            "/v1/a/%ff",
        ] {
            let err = normalize_path(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
        assert_eq!(normalize_path("/v2/x").unwrap_err().status(), 404);
        assert_eq!(normalize_path("/v1/").unwrap_err().status(), 404);
    }

    #[test]
    fn methods_map_to_operations() {
        for list in ["list=true", "list=True", "list=1"] {
            let q = parse_query(Some(list));
            assert_eq!(operation(&Method::GET, &q).unwrap(), Operation::List);
        }
        let q = Data::new();
        assert_eq!(operation(&Method::GET, &q).unwrap(), Operation::Read);
        assert_eq!(operation(&Method::PUT, &q).unwrap(), Operation::Update);
        assert_eq!(
            operation(&Method::from_bytes(b"LIST").unwrap(), &q).unwrap(),
            Operation::List
        );
        assert_eq!(operation(&Method::OPTIONS, &q).unwrap_err().status(), 405);
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert!(parse_body(b" \n").unwrap().is_empty());
        assert_eq!(parse_body(b"{\"a\":1}").unwrap()["a"], 1);
        assert_eq!(parse_body(b"[1]").unwrap_err().status(), 400);
        assert_eq!(parse_body(b"{\"a\":").unwrap_err().status(), 400);
    }

    #[test]
    fn wrap_ttl_header() {
        let mut h = HeaderMap::new();
        assert_eq!(wrap_ttl(&h).unwrap(), None);
        for (v, want) in [("90", Some(90)), ("5m", Some(300)), ("0", None)] {
            h.insert("x-vault-wrap-ttl", v.parse().unwrap());
            assert_eq!(wrap_ttl(&h).unwrap(), want, "{v}");
        }
        for bad in ["-1", "soon"] {
            h.insert("x-vault-wrap-ttl", bad.parse().unwrap());
            assert_eq!(wrap_ttl(&h).unwrap_err().status(), 400, "{bad}");
        }
        h.insert("x-vault-wrap-ttl", "60".parse().unwrap());
        h.insert("x-vault-wrap-format", "jwt".parse().unwrap());
        assert_eq!(wrap_ttl(&h).unwrap_err().status(), 400);
        h.insert("x-vault-wrap-format", "token".parse().unwrap());
        assert_eq!(wrap_ttl(&h).unwrap(), Some(60));
    }

    #[test]
    fn token_from_either_header() {
        let mut h = HeaderMap::new();
        assert!(client_token(&h).is_none());
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(client_token(&h).unwrap().expose_secret(), "abc");
        h.insert("x-vault-token", "xyz".parse().unwrap());
        assert_eq!(client_token(&h).unwrap().expose_secret(), "xyz");
    }

    #[tokio::test]
    async fn the_auth_block_is_the_wire_type_in_vaults_shape() {
        let auth = crate::logical::Auth {
            client_token: SecretString::from("hvs.x"),
            accessor: "acc".into(),
            policies: vec!["default".into()],
            metadata: Some(Default::default()),
            lease_duration: 60,
            ..Default::default()
        };
        let resp = Response {
            auth: Some(auth),
            ..Default::default()
        };
        let body = encode("id", resp).into_body();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let auth = &v["auth"];
        assert_eq!(auth["client_token"], "hvs.x");
        assert_eq!(auth["lease_duration"], 60);
        assert_eq!(auth["metadata"], serde_json::json!({}));
        for null in ["identity_policies", "mfa_requirement"] {
            assert!(auth.get(null).is_some_and(Value::is_null), "{null}: {auth}");
        }
        // What the client reads back is the same type.
        let back: hush_api::wire::Auth = serde_json::from_value(auth.clone()).unwrap();
        assert_eq!(back.accessor, "acc");
    }
}
