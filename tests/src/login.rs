//! Helpers for the auth method tests: a `{role, jwt}` login without a token, and the check
//! that a refused login is a 400 naming the reason without echoing the token.

use serde_json::{json, Value};

use crate::Hushd;

/// `POST auth/<mount>/login` with `{role, jwt}` and no token.
pub async fn jwt_login(h: &Hushd, mount: &str, role: &str, jwt: &str) -> (u16, Value) {
    h.call_as(
        None,
        "POST",
        &format!("auth/{mount}/login"),
        Some(json!({"role": role, "jwt": jwt})),
    )
    .await
}

/// The login is refused with a 400 whose first error contains `want` and no part of it
/// repeats the token. `what` names the case in failures.
pub async fn assert_jwt_refused(
    h: &Hushd,
    mount: &str,
    what: &str,
    role: &str,
    jwt: &str,
    want: &str,
) {
    let (s, b) = jwt_login(h, mount, role, jwt).await;
    assert_eq!(s, 400, "{what}: {b}");
    let msg = b["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains(want), "{what}: {msg}");
    assert!(!b.to_string().contains(jwt), "{what}: token echoed");
}
