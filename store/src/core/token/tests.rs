//! Tests of the token store and its endpoints over a real barrier on the in-memory backend,
//! with an injected clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::*;
use crate::barrier::{Barrier, BarrierView, KeyBytes};
use crate::core::policy::PolicyStore;
use crate::logical::{Auth, LogicalBackend, LogicalError, Operation, Request, Response};
use crate::storage::{Backend, MemoryBackend};

struct H {
    ts: TokenStore,
    ps: Arc<PolicyStore>,
    backend: Arc<MemoryBackend>,
    barrier: Arc<Barrier>,
    now: Arc<Mutex<DateTime<Utc>>>,
    root: SecretString,
}

async fn harness() -> H {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(backend.clone()));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let ps = Arc::new(
        PolicyStore::open(BarrierView::new(barrier.clone(), "sys/policy/"))
            .await
            .unwrap(),
    );
    let now = Arc::new(Mutex::new(Utc::now()));
    let clock_now = now.clone();
    let clock: Clock = Arc::new(move || *clock_now.lock());
    let ts = TokenStore::open_with_clock(BarrierView::new(barrier.clone(), "sys/token/"), clock)
        .await
        .unwrap()
        .with_policy_store(ps.clone());
    let root = ts.create_root_token().await.unwrap();
    H {
        ts,
        ps,
        backend,
        barrier,
        now,
        root,
    }
}

impl H {
    fn advance(&self, secs: i64) {
        *self.now.lock() += chrono::Duration::seconds(secs);
    }

    /// What the core does: authenticate, then route to the backend.
    async fn call(
        &self,
        op: Operation,
        rel: &str,
        token: &SecretString,
        body: Value,
    ) -> Result<Response, LogicalError> {
        let entry = self.ts.authenticate(token).await?;
        let mut req = Request::new(op, format!("auth/token/{rel}")).with_data(body);
        req.mount_point = "auth/token/".into();
        req.client_token = Some(token.clone());
        req.token_entry = Some(entry);
        self.ts.handle(&req).await
    }

    async fn post(
        &self,
        rel: &str,
        token: &SecretString,
        body: Value,
    ) -> Result<Response, LogicalError> {
        self.call(Operation::Update, rel, token, body).await
    }

    async fn create(&self, token: &SecretString, body: Value) -> Auth {
        self.post("create", token, body)
            .await
            .unwrap()
            .auth
            .unwrap()
    }

    async fn lookup(&self, token: &SecretString) -> Response {
        self.post(
            "lookup",
            &self.root,
            json!({"token": token.expose_secret()}),
        )
        .await
        .unwrap()
    }
}

fn status<T: std::fmt::Debug>(r: Result<T, LogicalError>) -> u16 {
    r.unwrap_err().status()
}

fn field(resp: &Response, key: &str) -> Value {
    resp.data.as_ref().unwrap()[key].clone()
}

fn is_bad_token(resp: &Response) -> bool {
    resp.status == Some(403) && resp.raw == Some(json!({"errors": ["bad token"]}))
}

#[tokio::test]
async fn root_token_authenticates_and_garbage_does_not() {
    let h = harness().await;
    let t = h.root.expose_secret();
    assert!(t.starts_with("hvs.") && t.len() == 28);
    assert!(t[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    let entry = h.ts.authenticate(&h.root).await.unwrap();
    assert!(entry.is_root());
    assert_eq!(entry.id_hash, h.ts.hmac(t));
    for bad in [
        "",
        "hvs.short",
        "s.abcdefghijklmnopqrstuvwx",
        "hvs.abcdefghijklmnopqrstuvw!",
    ] {
        let r =
            h.ts.authenticate(&SecretString::from(bad.to_string()))
                .await;
        assert!(matches!(r, Err(LogicalError::PermissionDenied)), "{bad}");
    }
    let unknown = SecretString::from("hvs.abcdefghijklmnopqrstuvwx".to_string());
    assert!(matches!(
        h.ts.authenticate(&unknown).await,
        Err(LogicalError::PermissionDenied)
    ));
}

#[tokio::test]
async fn create_sets_policies_ttl_meta_and_display_name() {
    let h = harness().await;
    let auth = h
        .create(
            &h.root,
            json!({"policies": ["b", "A"], "ttl": "1h", "meta": {"app": "x"},
                   "display_name": "my app", "num_uses": 0}),
        )
        .await;
    assert_eq!(auth.policies, vec!["a", "b", "default"]);
    assert_eq!(auth.lease_duration, 3600);
    assert!(auth.renewable && !auth.orphan);
    assert_eq!(auth.metadata.as_ref().unwrap()["app"], "x");
    assert_eq!(auth.token_type, "service");
    assert_eq!(auth.accessor.len(), 24);
    let look = h.lookup(&auth.client_token).await;
    assert_eq!(field(&look, "display_name"), "token-my-app");
    assert_eq!(field(&look, "path"), "auth/token/create");
    assert_eq!(field(&look, "creation_ttl"), 3600);
    assert_eq!(field(&look, "ttl"), 3600);
    assert_eq!(field(&look, "meta"), json!({"app": "x"}));
    // Integer seconds and the default TTL.
    assert_eq!(
        h.create(&h.root, json!({"ttl": 90})).await.lease_duration,
        90
    );
    assert_eq!(
        h.create(&h.root, json!({"policies": ["a"]}))
            .await
            .lease_duration,
        crate::logical::ttl::DEFAULT_TTL
    );
}

#[tokio::test]
async fn create_refuses_bad_input() {
    let h = harness().await;
    let err = h
        .post("create", &h.root, json!({"ttl": "soon"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("\"ttl\""), "{err}");
    let err = h
        .post("create", &h.root, json!({"explicit_max_ttl": "1y"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("explicit_max_ttl"), "{err}");
    for body in [
        json!({"id": "hvs.mychosenvalueforthetoken"}),
        json!({"type": "batch"}),
        json!({"type": "weird"}),
        json!({"num_uses": -1}),
        json!({"meta": {"a": {"nested": 1}}}),
        json!({"policies": [1]}),
        json!({"renewable": "maybe"}),
        json!({"entity_alias": "x"}),
    ] {
        assert_eq!(
            status(h.post("create", &h.root, body.clone()).await),
            400,
            "{body}"
        );
    }
    assert_eq!(
        status(h.post("create/somerole", &h.root, json!({})).await),
        400
    );
}

#[tokio::test]
async fn child_policies_must_be_subset_of_parent_unless_sudo() {
    let h = harness().await;
    let parent = h
        .create(&h.root, json!({"policies": ["a", "b"]}))
        .await
        .client_token;
    let child = h.create(&parent, json!({"policies": ["a"]})).await;
    assert_eq!(child.policies, vec!["a", "default"]);
    let err = h
        .post("create", &parent, json!({"policies": ["c"]}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_string(), "child policies must be subset of parent");
    // No policies: inherit the parent's.
    assert_eq!(
        h.create(&parent, json!({})).await.policies,
        vec!["a", "b", "default"]
    );

    // sudo on auth/token/create lifts the rule, but never up to root.
    h.ps.set(
        "creator",
        r#"path "auth/token/create" { capabilities = ["update", "sudo"] }"#,
    )
    .await
    .unwrap();
    let sudo = h
        .create(&h.root, json!({"policies": ["creator"]}))
        .await
        .client_token;
    assert_eq!(
        h.create(&sudo, json!({"policies": ["c"]})).await.policies,
        vec!["c", "default"]
    );
    let err = h
        .post("create", &sudo, json!({"policies": ["root"]}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("root tokens may not be created"),
        "{err}"
    );
}

#[tokio::test]
async fn default_policy_and_no_default_policy() {
    let h = harness().await;
    let t = h
        .create(
            &h.root,
            json!({"policies": ["a"], "no_default_policy": true}),
        )
        .await;
    assert_eq!(t.policies, vec!["a"]);
    // A parent without `default` does not hand it down unless it is asked for by a sudo caller.
    let child = h.create(&t.client_token, json!({"policies": ["a"]})).await;
    assert_eq!(child.policies, vec!["a"]);
    // The root parent with no policies asked: the child is a root token that never expires.
    let r = h.create(&h.root, json!({})).await;
    assert_eq!(r.policies, vec!["root"]);
    assert_eq!(r.lease_duration, 0);
    assert!(!r.renewable);
}

#[tokio::test]
async fn no_parent_needs_sudo_create_orphan_needs_its_acl() {
    let h = harness().await;
    let plain = h
        .create(&h.root, json!({"policies": ["a"]}))
        .await
        .client_token;
    let err = h
        .post("create", &plain, json!({"no_parent": true}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    // `create-orphan` needs no sudo (the ACL on its path decides, as in Vault), but the
    // policy-subset rule still holds and `no_parent` still needs sudo.
    let o = h.post("create-orphan", &plain, json!({})).await.unwrap();
    let o = o.auth.unwrap();
    assert!(o.orphan);
    assert_eq!(o.policies, vec!["a", "default"]);
    for body in [
        json!({"policies": ["b"]}),
        json!({"policies": ["root"]}),
        json!({"no_parent": true}),
    ] {
        assert_eq!(status(h.post("create-orphan", &plain, body).await), 400);
    }
    let o = h
        .create(&h.root, json!({"policies": ["a"], "no_parent": true}))
        .await;
    assert!(o.orphan);
    let o = h
        .post("create-orphan", &h.root, json!({"policies": ["a"]}))
        .await
        .unwrap();
    let o = o.auth.unwrap();
    assert!(o.orphan);
    assert_eq!(
        field(&h.lookup(&o.client_token).await, "path"),
        "auth/token/create-orphan"
    );
    assert_eq!(h.ts.root_paths(), &["revoke-orphan"]);
    // Periodic tokens too.
    assert_eq!(
        status(h.post("create", &plain, json!({"period": "1h"})).await),
        400
    );
}

#[tokio::test]
async fn lookup_endpoints() {
    let h = harness().await;
    let t = h
        .create(&h.root, json!({"policies": ["a"], "ttl": "10m"}))
        .await;
    let look = h.lookup(&t.client_token).await;
    assert_eq!(field(&look, "id"), t.client_token.expose_secret());
    assert_eq!(field(&look, "accessor"), t.accessor.as_str());
    assert_eq!(field(&look, "policies"), json!(["a", "default"]));
    assert_eq!(field(&look, "orphan"), false);
    assert_eq!(field(&look, "renewable"), true);
    assert_eq!(field(&look, "type"), "service");
    assert_eq!(field(&look, "meta"), Value::Null);
    assert!(field(&look, "expire_time").is_string() && field(&look, "issue_time").is_string());
    assert!(field(&look, "creation_time").is_i64());
    assert_eq!(status(h.post("lookup", &h.root, json!({})).await), 400);
    let unknown = json!({"token": "hvs.abcdefghijklmnopqrstuvwx"});
    assert!(is_bad_token(
        &h.post("lookup", &h.root, unknown).await.unwrap()
    ));

    // lookup-self, by GET.
    let me = h
        .call(Operation::Read, "lookup-self", &t.client_token, json!({}))
        .await
        .unwrap();
    assert_eq!(field(&me, "id"), t.client_token.expose_secret());
    let mut anon = Request::new(Operation::Read, "auth/token/lookup-self");
    anon.mount_point = "auth/token/".into();
    assert!(matches!(
        h.ts.handle(&anon).await,
        Err(LogicalError::PermissionDenied)
    ));

    // lookup-accessor never shows the token.
    let by_acc = h
        .post("lookup-accessor", &h.root, json!({"accessor": t.accessor}))
        .await
        .unwrap();
    assert_eq!(field(&by_acc, "id"), "");
    assert_eq!(field(&by_acc, "accessor"), t.accessor.as_str());
    assert_eq!(
        status(h.post("lookup-accessor", &h.root, json!({})).await),
        400
    );
    let err = h
        .post(
            "lookup-accessor",
            &h.root,
            json!({"accessor": "x".repeat(24)}),
        )
        .await;
    assert_eq!(err.unwrap_err().to_string(), "invalid accessor");
    assert_eq!(
        status(
            h.post("lookup-accessor", &h.root, json!({"accessor": "../x"}))
                .await
        ),
        400
    );
}

#[tokio::test]
async fn renew_endpoints() {
    let h = harness().await;
    let t = h
        .create(
            &h.root,
            json!({"policies": ["a"], "ttl": "10m", "explicit_max_ttl": "1h"}),
        )
        .await;
    h.advance(300);
    let r = h.post(
        "renew",
        &h.root,
        json!({"token": t.client_token.expose_secret(), "increment": "30m"}),
    );
    let r = r.await.unwrap();
    assert_eq!(r.auth.as_ref().unwrap().lease_duration, 1800);
    assert!(r.warnings.is_empty());
    assert_eq!(field(&h.lookup(&t.client_token).await, "ttl"), 1800);
    // Capped by the explicit max TTL, counted from creation, with a warning.
    let r = h
        .post("renew-self", &t.client_token, json!({"increment": "2h"}))
        .await
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 3300);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    // No increment: the token's own TTL again.
    let r = h
        .post("renew-self", &t.client_token, json!({}))
        .await
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 600);

    let fixed = h
        .create(&h.root, json!({"policies": ["a"], "renewable": false}))
        .await;
    let err = h
        .post("renew-self", &fixed.client_token, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "lease is not renewable");
    assert_eq!(status(h.post("renew", &h.root, json!({})).await), 400);
    let unknown = json!({"token": "hvs.abcdefghijklmnopqrstuvwx"});
    assert_eq!(
        h.post("renew", &h.root, unknown)
            .await
            .unwrap_err()
            .to_string(),
        "token not found"
    );
    // The root token has no TTL: nothing to renew.
    assert_eq!(status(h.post("renew-self", &h.root, json!({})).await), 400);
    let bad = json!({"token": t.client_token.expose_secret(), "increment": "lots"});
    assert!(h
        .post("renew", &h.root, bad)
        .await
        .unwrap_err()
        .to_string()
        .contains("increment"));
}

#[tokio::test]
async fn periodic_tokens_renew_to_their_period() {
    let h = harness().await;
    let t = h
        .create(
            &h.root,
            json!({"policies": ["a"], "period": "240h", "ttl": "1m"}),
        )
        .await;
    assert_eq!(t.lease_duration, 240 * 3600);
    // Renewed every 200h, it lives past the 768h system maximum; renewals ignore the increment.
    for _ in 0..4 {
        h.advance(200 * 3600);
        let r = h
            .post("renew-self", &t.client_token, json!({"increment": "5h"}))
            .await
            .unwrap();
        assert_eq!(r.auth.unwrap().lease_duration, 240 * 3600);
    }
    assert_eq!(
        field(&h.lookup(&t.client_token).await, "period"),
        240 * 3600
    );
    // Not renewed in time, it expires.
    h.advance(241 * 3600);
    assert!(h.ts.authenticate(&t.client_token).await.is_err());
}

#[tokio::test]
async fn revoke_endpoints() {
    let h = harness().await;
    let a = h.create(&h.root, json!({"policies": ["a"]})).await;
    assert!(h
        .post(
            "revoke",
            &h.root,
            json!({"token": a.client_token.expose_secret()})
        )
        .await
        .unwrap()
        .data
        .is_none());
    assert!(is_bad_token(&h.lookup(&a.client_token).await));
    assert_eq!(status(h.post("revoke", &h.root, json!({})).await), 400);
    // Revoking what is gone is fine.
    h.post(
        "revoke",
        &h.root,
        json!({"token": a.client_token.expose_secret()}),
    )
    .await
    .unwrap();

    let b = h.create(&h.root, json!({"policies": ["a"]})).await;
    h.post("revoke-self", &b.client_token, json!({}))
        .await
        .unwrap();
    assert!(h.ts.authenticate(&b.client_token).await.is_err());

    let c = h.create(&h.root, json!({"policies": ["a"]})).await;
    let r = h
        .post("revoke-accessor", &h.root, json!({"accessor": c.accessor}))
        .await
        .unwrap();
    assert!(r.warnings.is_empty());
    assert!(h.ts.authenticate(&c.client_token).await.is_err());
    let r = h
        .post("revoke-accessor", &h.root, json!({"accessor": c.accessor}))
        .await
        .unwrap();
    assert_eq!(r.warnings, vec!["No token found with this accessor"]);
    assert_eq!(
        status(h.post("revoke-accessor", &h.root, json!({})).await),
        400
    );
}

#[tokio::test]
async fn revoke_orphan_keeps_children_as_orphans() {
    let h = harness().await;
    let parent = h.create(&h.root, json!({"policies": ["a"]})).await;
    let child = h.create(&parent.client_token, json!({})).await;
    let grandchild = h.create(&child.client_token, json!({})).await;
    let plain = h.create(&h.root, json!({"policies": ["a"]})).await;
    let body = json!({"token": parent.client_token.expose_secret()});
    assert_eq!(
        status(
            h.post("revoke-orphan", &plain.client_token, body.clone())
                .await
        ),
        400
    );
    h.post("revoke-orphan", &h.root, body.clone())
        .await
        .unwrap();
    assert!(h.ts.authenticate(&parent.client_token).await.is_err());
    assert_eq!(field(&h.lookup(&child.client_token).await, "orphan"), true);
    assert_eq!(
        field(&h.lookup(&grandchild.client_token).await, "orphan"),
        false
    );
    let err = h.post("revoke-orphan", &h.root, body).await.unwrap_err();
    assert_eq!(err.to_string(), "token to revoke not found");
    assert_eq!(
        status(h.post("revoke-orphan", &h.root, json!({})).await),
        400
    );
    // The orphaned child still takes its own subtree with it.
    h.ts.revoke_tree(&h.ts.hmac(child.client_token.expose_secret()))
        .await
        .unwrap();
    assert!(h.ts.authenticate(&grandchild.client_token).await.is_err());
}

#[tokio::test]
async fn revoking_a_parent_revokes_three_levels_and_cleans_indexes() {
    let h = harness().await;
    let a = h.create(&h.root, json!({"policies": ["a"]})).await;
    let b = h.create(&a.client_token, json!({})).await;
    let c = h.create(&b.client_token, json!({})).await;
    let b2 = h.create(&a.client_token, json!({})).await;
    let other = h.create(&h.root, json!({"policies": ["a"]})).await;
    h.post(
        "revoke",
        &h.root,
        json!({"token": a.client_token.expose_secret()}),
    )
    .await
    .unwrap();
    for t in [&a, &b, &c, &b2] {
        assert!(h.ts.authenticate(&t.client_token).await.is_err());
        assert!(h
            .post("lookup-accessor", &h.root, json!({"accessor": t.accessor}))
            .await
            .is_err());
    }
    assert!(h.ts.authenticate(&other.client_token).await.is_ok());
    assert!(h.ts.authenticate(&h.root).await.is_ok());
    // Nothing of the revoked tree is left in storage.
    let keys = h.backend.scan_prefix("sys/token/").await.unwrap();
    for t in [&a, &b, &c, &b2] {
        let hash = h.ts.hmac(t.client_token.expose_secret());
        assert!(
            !keys
                .iter()
                .any(|k| k.contains(&hash) || k.contains(&t.accessor)),
            "{keys:?}"
        );
    }
    let root_hash = h.ts.hmac(h.root.expose_secret());
    let other_hash = h.ts.hmac(other.client_token.expose_secret());
    let live: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("sys/token/id/"))
        .collect();
    assert_eq!(live.len(), 2);
    assert!(live
        .iter()
        .all(|k| k.ends_with(&root_hash) || k.ends_with(&other_hash)));
}

#[tokio::test]
async fn num_uses_run_out() {
    let h = harness().await;
    let t = h
        .create(&h.root, json!({"policies": ["a"], "num_uses": 2}))
        .await;
    assert_eq!(t.num_uses, 2);
    let first = h.ts.authenticate(&t.client_token).await.unwrap();
    assert_eq!(first.num_uses, 1);
    // The last use succeeds, then the token is gone.
    let last = h.ts.authenticate(&t.client_token).await.unwrap();
    assert_eq!(last.num_uses, 0);
    assert!(matches!(
        h.ts.authenticate(&t.client_token).await,
        Err(LogicalError::PermissionDenied)
    ));
    assert!(is_bad_token(&h.lookup(&t.client_token).await));

    // A use-limited token cannot make children that would escape its count.
    let limited = h
        .create(&h.root, json!({"policies": ["a"], "num_uses": 5}))
        .await;
    let err = h
        .post("create", &limited.client_token, json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "restricted use token cannot generate child tokens"
    );
    assert_eq!(field(&h.lookup(&limited.client_token).await, "num_uses"), 4);
}

#[tokio::test]
async fn expired_tokens_are_refused_and_removed() {
    let h = harness().await;
    let t = h
        .create(&h.root, json!({"policies": ["a"], "ttl": 60}))
        .await;
    h.advance(59);
    assert!(h.ts.authenticate(&t.client_token).await.is_ok());
    h.advance(1);
    assert!(matches!(
        h.ts.authenticate(&t.client_token).await,
        Err(LogicalError::PermissionDenied)
    ));
    let hash = h.ts.hmac(t.client_token.expose_secret());
    assert!(h
        .backend
        .get(&format!("sys/token/id/{hash}"))
        .await
        .unwrap()
        .is_none());
    assert!(is_bad_token(&h.lookup(&t.client_token).await));
}

#[tokio::test]
async fn children_outlive_their_parents_ttl_until_the_parent_is_revoked() {
    let h = harness().await;
    let parent = h
        .create(&h.root, json!({"policies": ["a"], "ttl": 60}))
        .await;
    let child = h.create(&parent.client_token, json!({"ttl": "1h"})).await;
    assert_eq!(child.lease_duration, 3600);
    h.advance(120);
    // Revoking the expired parent (the expiry task's job) takes the child with it.
    let parent_hash = h.ts.hmac(parent.client_token.expose_secret());
    h.ts.revoke_tree(&parent_hash).await.unwrap();
    assert!(h.ts.authenticate(&child.client_token).await.is_err());
    assert!(h.ts.authenticate(&h.root).await.is_ok());
}

#[tokio::test]
async fn expiring_root_tokens_cannot_make_eternal_ones() {
    let h = harness().await;
    let r = h.create(&h.root, json!({"ttl": "1h"})).await;
    assert_eq!(r.policies, vec!["root"]);
    let err = h
        .post("create", &r.client_token, json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("non-expiring"), "{err}");
    assert_eq!(
        h.create(&r.client_token, json!({"ttl": "10m"}))
            .await
            .lease_duration,
        600
    );
}

#[tokio::test]
async fn tokens_never_reach_storage() {
    let h = harness().await;
    let mut tokens = vec![h.root.expose_secret().to_string()];
    for body in [
        json!({"policies": ["a"]}),
        json!({"num_uses": 3}),
        json!({"no_parent": true}),
    ] {
        tokens.push(
            h.create(&h.root, body)
                .await
                .client_token
                .expose_secret()
                .to_string(),
        );
    }
    h.post(
        "renew-self",
        &SecretString::from(tokens[1].clone()),
        json!({}),
    )
    .await
    .unwrap();
    let keys = h.backend.scan_prefix("").await.unwrap();
    assert!(keys.iter().any(|k| k.starts_with("sys/token/id/")));
    for key in &keys {
        let raw = h.backend.get(key).await.unwrap().unwrap();
        let plain = match h.barrier.get(key).await {
            Ok(Some(p)) => p.to_vec(),
            _ => Vec::new(), // the keyring and seal entries are not barrier values
        };
        for t in &tokens {
            let random = &t[4..];
            for hay in [key.as_bytes(), &raw, &plain] {
                assert!(
                    !String::from_utf8_lossy(hay).contains(random),
                    "token found at {key}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_hmac_key_persists_and_differs_between_stores() {
    let h = harness().await;
    let again = TokenStore::open(BarrierView::new(h.barrier.clone(), "sys/token/"))
        .await
        .unwrap();
    assert_eq!(again.hmac("x"), h.ts.hmac("x"));
    assert!(again.authenticate(&h.root).await.is_ok());
    let other = harness().await;
    assert_ne!(other.ts.hmac("x"), h.ts.hmac("x"));
}

#[tokio::test]
async fn wrong_operations_and_paths() {
    let h = harness().await;
    assert_eq!(
        status(
            h.call(Operation::Delete, "create", &h.root, json!({}))
                .await
        ),
        405
    );
    assert_eq!(
        status(
            h.call(Operation::Read, "revoke-self", &h.root, json!({}))
                .await
        ),
        405
    );
    assert_eq!(status(h.post("nope", &h.root, json!({})).await), 404);
    // The core may turn a write into Create; endpoints accept it.
    let r = h
        .call(
            Operation::Create,
            "create",
            &h.root,
            json!({"policies": ["a"]}),
        )
        .await;
    assert!(r.unwrap().auth.is_some());
}

#[tokio::test]
async fn unknown_policies_are_warned_about() {
    let h = harness().await;
    let r = h
        .post("create", &h.root, json!({"policies": ["nosuch"]}))
        .await
        .unwrap();
    assert_eq!(r.warnings, vec!["Policy \"nosuch\" does not exist"]);
    h.ps.set("real", "").await.unwrap();
    let r = h
        .post("create", &h.root, json!({"policies": ["real"]}))
        .await
        .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[tokio::test]
async fn token_roles_grant_policies_orphans_and_periods_a_caller_lacks() {
    let h = harness().await;
    h.post(
        "roles/Web",
        &h.root,
        json!({"allowed_policies": ["a", "b"], "disallowed_policies": "c",
               "orphan": true, "token_period": "1h", "path_suffix": "v1",
               "token_bound_cidrs": ["127.0.0.1/32"]}),
    )
    .await
    .unwrap();
    let read = h
        .call(Operation::Read, "roles/web", &h.root, json!({}))
        .await
        .unwrap();
    let data = read.data.unwrap();
    assert_eq!(data["name"], "web");
    assert_eq!(data["token_period"], 3600);
    assert_eq!(data["token_type"], "default-service");
    // A caller holding only "x" creates, through the role, an orphan with "a" and a period.
    let caller = h
        .create(&h.root, json!({"policies": ["x"]}))
        .await
        .client_token;
    let auth = h
        .post("create/web", &caller, json!({"policies": ["a"]}))
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.policies, vec!["a", "default"]);
    assert!(auth.orphan);
    assert_eq!(auth.lease_duration, 3600);
    let entry =
        h.ts.lookup(auth.client_token.expose_secret())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(entry.path, "auth/token/create/web/v1");
    assert_eq!(entry.bound_cidrs, vec!["127.0.0.1/32"]);
    // Outside the allowed set, or disallowed: 400.
    for body in [json!({"policies": ["z"]}), json!({"policies": ["c"]})] {
        let err = h.post("create/web", &caller, body).await.unwrap_err();
        assert_eq!(err.status(), 400);
    }
    let err = h.post("create/nope", &caller, json!({})).await.unwrap_err();
    assert_eq!(err.messages(), vec!["unknown role nope"]);
    // Without allowed_policies the parent's set is the limit, and no sudo: no period.
    h.post("roles/plain", &h.root, json!({"renewable": false}))
        .await
        .unwrap();
    let err = h
        .post("create/plain", &caller, json!({"policies": ["a"]}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let err = h
        .post("create/plain", &caller, json!({"period": "1h"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let plain = h
        .post("create/plain", &caller, json!({"ttl": "1h"}))
        .await
        .unwrap()
        .auth
        .unwrap();
    assert!(!plain.renewable && !plain.orphan);
    let list = h
        .call(Operation::List, "roles", &h.root, json!({}))
        .await
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["plain", "web"]));
    h.call(Operation::Delete, "roles/web", &h.root, json!({}))
        .await
        .unwrap();
    let err = h
        .call(Operation::Read, "roles/web", &h.root, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
}
