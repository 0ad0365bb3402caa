//! The pieces of an IAM login that need no network: decoding what the client sent
//! (base64 URL, body and headers), the checks on it (POST only, a GetCallerIdentity body,
//! the server-id header present, equal and signed), the STS answer (XML) and IAM ARNs.
//!
//! Nothing here logs or echoes a header value: the `Authorization` header and the session
//! token are credentials (for a few minutes, but still).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::logical::LogicalError;

/// The header a configured `iam_server_id_header_value` must come in.
pub const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

/// The only request body a login may carry (form fields, any order).
const ACTION: &str = "GetCallerIdentity";
const VERSION: &str = "2011-06-15";

/// Headers never forwarded: the connection's own, and those the caller sets.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

/// A signed GetCallerIdentity request as the client sent it, decoded and checked.
pub struct SignedRequest {
    /// The URL the client signed for (only its host is used, for a missing Host header).
    pub url: reqwest::Url,
    pub body: Vec<u8>,
    /// Header names lower-cased; one value each (a list is joined with `,` as HTTP does).
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("url", &self.url.as_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn b64(what: &str, text: &str) -> Result<Vec<u8>, LogicalError> {
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(text.trim())
        .map_err(|_| bad(format!("failed to base64 decode {what}")))
}

/// Headers as Vault's clients send them: a JSON object of string or list of strings.
pub fn parse_headers(json: &[u8]) -> Result<BTreeMap<String, String>, LogicalError> {
    let err = || bad("iam_request_headers must be a JSON object of strings or lists of strings");
    let Value::Object(map) = serde_json::from_slice(json).map_err(|_| err())? else {
        return Err(err());
    };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let value = match value {
            Value::String(s) => s,
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(err))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(err()),
        };
        out.insert(name.to_ascii_lowercase(), value);
    }
    Ok(out)
}

/// The body must be exactly the GetCallerIdentity call: `Action` and `Version`, once each.
fn check_body(body: &[u8]) -> Result<(), LogicalError> {
    let err = || {
        bad("iam_request_body must be a GetCallerIdentity request (Action=GetCallerIdentity&Version=2011-06-15)")
    };
    let text = std::str::from_utf8(body).map_err(|_| err())?;
    let (mut action, mut version) = (0, 0);
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(err)?;
        match (k, v) {
            ("Action", ACTION) => action += 1,
            ("Version", VERSION) => version += 1,
            _ => return Err(err()),
        }
    }
    if (action, version) != (1, 1) {
        return Err(err());
    }
    Ok(())
}

/// The `SignedHeaders` of a SigV4 `Authorization` header, lower-cased.
pub fn signed_headers(authorization: &str) -> Option<Vec<String>> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    rest.split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("SignedHeaders="))
        .map(|list| {
            list.split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect()
        })
}

impl SignedRequest {
    /// Decode and check the login fields. `server_id` is the mount's configured
    /// `iam_server_id_header_value` (empty: none required).
    pub fn decode(
        method: &str,
        url_b64: &str,
        body_b64: &str,
        headers_b64: &str,
        server_id: &str,
    ) -> Result<SignedRequest, LogicalError> {
        if method != "POST" {
            return Err(bad(
                "invalid iam_http_request_method; currently only 'POST' is supported",
            ));
        }
        let url = String::from_utf8(b64("iam_request_url", url_b64)?)
            .ok()
            .and_then(|u| reqwest::Url::parse(&u).ok())
            .ok_or_else(|| bad("error parsing iam_request_url"))?;
        if url.query().is_some() || !matches!(url.path(), "" | "/") {
            return Err(bad(
                "iam_request_url must be the STS root with no query parameters",
            ));
        }
        let body = b64("iam_request_body", body_b64)?;
        check_body(&body)?;
        if headers_b64.trim().is_empty() {
            return Err(bad("missing iam_request_headers"));
        }
        let headers = parse_headers(&b64("iam_request_headers", headers_b64)?)?;
        let req = SignedRequest { url, body, headers };
        let Some(auth) = req.header("authorization") else {
            return Err(bad("missing Authorization header"));
        };
        let Some(signed) = signed_headers(auth) else {
            return Err(bad(
                "unable to parse SignedHeaders from the Authorization header",
            ));
        };
        if !server_id.is_empty() {
            req.check_server_id(server_id, &signed)?;
        }
        Ok(req)
    }

    pub fn header(&self, lower_name: &str) -> Option<&str> {
        self.headers.get(lower_name).map(String::as_str)
    }

    fn check_server_id(&self, want: &str, signed: &[String]) -> Result<(), LogicalError> {
        let prefix = format!("error validating {SERVER_ID_HEADER} header");
        let name = SERVER_ID_HEADER.to_ascii_lowercase();
        let Some(got) = self.header(&name) else {
            return Err(bad(format!(
                "{prefix}: missing header {SERVER_ID_HEADER:?}"
            )));
        };
        if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            return Err(bad(format!(
                "{prefix}: the value is not the one this server expects"
            )));
        }
        if !signed.contains(&name) {
            return Err(bad(format!("{prefix}: the header was not signed")));
        }
        Ok(())
    }

    /// The headers to forward to STS: `Authorization` and the signed ones, less `Host`,
    /// `Content-Length` (set by the caller) and hop-by-hop headers.
    pub fn forward_headers(&self) -> Vec<(&str, &str)> {
        let signed = self
            .header("authorization")
            .and_then(signed_headers)
            .unwrap_or_default();
        self.headers
            .iter()
            .filter(|(k, _)| {
                *k == "authorization"
                    || (signed.contains(k) && !NOT_FORWARDED.contains(&k.as_str()))
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The Host the client signed: its `Host` header, else its URL's host.
    pub fn host(&self) -> Option<String> {
        if let Some(h) = self.header("host") {
            return Some(h.to_string());
        }
        let host = self.url.host_str()?;
        Some(match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    }
}

/// What STS says about the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerIdentity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

/// Parse a `GetCallerIdentityResponse` document.
pub fn parse_caller_identity(xml: &[u8]) -> Result<CallerIdentity, String> {
    use quick_xml::events::Event;
    let xml = std::str::from_utf8(xml).map_err(|_| "the STS answer is not UTF-8".to_string())?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut id = CallerIdentity::default();
    let mut path: Vec<String> = Vec::new();
    let malformed = || "the STS answer is not well-formed XML".to_string();
    loop {
        // Text of an element under GetCallerIdentityResponse/GetCallerIdentityResult.
        let slot = match path.as_slice() {
            [a, b, c] if a == "GetCallerIdentityResponse" && b == "GetCallerIdentityResult" => {
                match c.as_str() {
                    "Arn" => Some(&mut id.arn),
                    "UserId" => Some(&mut id.user_id),
                    "Account" => Some(&mut id.account),
                    _ => None,
                }
            }
            _ => None,
        };
        match reader.read_event().map_err(|_| malformed())? {
            Event::Start(e) => path.push(e.local_name().as_ref().to_string()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                // Trimmed once at the end: text around an entity comes in pieces, and trimming
                // each piece would drop the spaces next to the entity.
                if let Some(s) = slot {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(s) = slot {
                    let name = r.xml10_content();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => s.push_str(v),
                        None => s.push(r.resolve_char_ref().ok().flatten().ok_or_else(malformed)?),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    for field in [&mut id.arn, &mut id.user_id, &mut id.account] {
        *field = field.trim().to_string();
    }
    if id.arn.is_empty() || id.account.is_empty() {
        return Err("the STS answer has no GetCallerIdentityResult".into());
    }
    Ok(id)
}

/// The `Code` of an STS error document, when it has one of plain letters.
pub fn error_code(xml: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(xml).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

/// An IAM principal's ARN, as Vault reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub partition: String,
    pub account: String,
    /// `user` or `role` (an assumed role is its role).
    pub entity_type: String,
    /// The user's or role's name (without path).
    pub friendly_name: String,
}

impl Principal {
    /// Parse `arn:PART:iam::ACCT:user/PATH/NAME`, `...:role/PATH/NAME` or
    /// `arn:PART:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub fn parse(arn: &str) -> Result<Principal, String> {
        let err = || format!("unrecognized IAM principal ARN {arn:?}");
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [scheme, partition, service, region, account, resource] = parts[..] else {
            return Err(err());
        };
        if scheme != "arn" || partition.is_empty() || !region.is_empty() || account.is_empty() {
            return Err(err());
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let (entity_type, friendly_name) = match (service, segments.as_slice()) {
            ("iam", [kind @ ("user" | "role"), .., name]) if !name.is_empty() => (*kind, *name),
            ("sts", ["assumed-role", role, session]) if !role.is_empty() && !session.is_empty() => {
                ("role", *role)
            }
            _ => return Err(err()),
        };
        Ok(Principal {
            partition: partition.to_string(),
            account: account.to_string(),
            entity_type: entity_type.to_string(),
            friendly_name: friendly_name.to_string(),
        })
    }

    /// `arn:PART:iam::ACCT:TYPE/NAME`: what roles bind to (no path, no session).
    pub fn canonical_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:{}/{}",
            self.partition, self.account, self.entity_type, self.friendly_name
        )
    }
}
