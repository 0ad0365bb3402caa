//! AppRole through the whole core (sys/auth, ACL, login, token) and, for time, directly.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::AppRoleBackend;
use crate::barrier::BarrierView;
use crate::core::Core;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

struct Dev {
    core: Arc<Core>,
}

impl Dev {
    async fn new() -> Dev {
        let core = Core::new(
            Arc::new(crate::storage::MemoryBackend::new()),
            crate::backends(),
        );
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        let dev = Dev { core };
        dev.root(
            Operation::Update,
            "sys/auth/approle",
            json!({"type": "approle"}),
        )
        .await
        .unwrap();
        dev
    }

    async fn call(
        &self,
        token: Option<&str>,
        addr: Option<&str>,
        op: Operation,
        path: &str,
        body: Value,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(body);
        req.client_token = token.map(SecretString::from);
        req.remote_addr = addr.map(|a| a.parse::<IpAddr>().unwrap());
        self.core.handle(req).await
    }

    /// A read of `path` as `token`, from no particular address.
    async fn read_as(&self, token: &str, path: &str) -> Result<Response, LogicalError> {
        self.call(Some(token), None, Operation::Read, path, json!({}))
            .await
    }

    async fn root(&self, op: Operation, path: &str, body: Value) -> Result<Response, LogicalError> {
        self.call(Some("root"), None, op, path, body).await
    }

    async fn role_id(&self, role: &str) -> String {
        let r = self
            .root(
                Operation::Read,
                &format!("auth/approle/role/{role}/role-id"),
                json!({}),
            )
            .await
            .unwrap();
        r.data.unwrap()["role_id"].as_str().unwrap().to_string()
    }

    async fn secret_id(&self, role: &str, body: Value) -> (String, String) {
        let r = self
            .root(
                Operation::Update,
                &format!("auth/approle/role/{role}/secret-id"),
                body,
            )
            .await
            .unwrap();
        let d = r.data.unwrap();
        (
            d["secret_id"].as_str().unwrap().to_string(),
            d["secret_id_accessor"].as_str().unwrap().to_string(),
        )
    }

    async fn login(
        &self,
        addr: Option<&str>,
        role_id: &str,
        secret_id: &str,
    ) -> Result<Response, LogicalError> {
        self.call(
            None,
            addr,
            Operation::Update,
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await
    }
}

fn status(r: Result<Response, LogicalError>) -> u16 {
    r.map(|r| r.status.unwrap_or(200))
        .unwrap_or_else(|e| e.status())
}

#[tokio::test]
async fn login_mints_a_token_with_the_roles_policies_and_ttl() {
    let dev = Dev::new().await;
    dev.root(
        Operation::Update,
        "sys/policies/acl/app",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await
    .unwrap();
    dev.root(
        Operation::Update,
        "auth/approle/role/web",
        json!({"token_policies": "app", "token_ttl": "10m", "token_max_ttl": "1h"}),
    )
    .await
    .unwrap();
    let (secret_id, _) = dev
        .secret_id("web", json!({"metadata": "{\"team\":\"a\"}"}))
        .await;
    let role_id = dev.role_id("web").await;
    let resp = dev
        .login(Some("10.0.0.1"), &role_id, &secret_id)
        .await
        .unwrap();
    assert!(resp.login.is_none());
    let auth = resp.auth.unwrap();
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert_eq!(auth.lease_duration, 600);
    assert!(auth.orphan && auth.renewable);
    assert_eq!(auth.metadata.as_ref().unwrap()["role_name"], "web");
    assert_eq!(auth.metadata.as_ref().unwrap()["team"], "a");
    let token = auth.client_token.expose_secret().to_string();
    let lookup = dev
        .read_as(&token, "auth/token/lookup-self")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(lookup["display_name"], "approle");
    assert_eq!(lookup["path"], "auth/approle/login");
    // The token works where its policy allows, and nowhere else.
    let denied = dev.read_as(&token, "secret/data/other").await;
    assert_eq!(status(denied), 403);
    let allowed = dev.read_as(&token, "secret/data/app/x").await;
    assert_eq!(status(allowed), 404);
}

#[tokio::test]
async fn bad_logins_are_refused() {
    let dev = Dev::new().await;
    dev.root(Operation::Update, "auth/approle/role/web", json!({}))
        .await
        .unwrap();
    let role_id = dev.role_id("web").await;
    let (secret_id, _) = dev.secret_id("web", json!({})).await;
    for (i, (r, s)) in [
        ("nope", secret_id.as_str()),
        (role_id.as_str(), "wrong"),
        (role_id.as_str(), ""),
        ("", secret_id.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        // Each from its own address: the rate limit is tested apart.
        let addr = format!("10.0.1.{i}");
        let err = dev.login(Some(&addr), r, s).await.unwrap_err();
        assert_eq!(err.status(), 400, "{i}");
        assert!(!err.to_string().contains(&secret_id));
    }
    // The real pair still works.
    assert!(dev.login(None, &role_id, &secret_id).await.is_ok());
    // A GET on login is not a login.
    let get = dev
        .call(None, None, Operation::Read, "auth/approle/login", json!({}))
        .await;
    assert_eq!(status(get), 405);
}

#[tokio::test]
async fn secret_ids_are_spent_by_their_uses_and_bound_to_cidrs() {
    let dev = Dev::new().await;
    dev.root(
        Operation::Update,
        "auth/approle/role/web",
        json!({"secret_id_num_uses": 2}),
    )
    .await
    .unwrap();
    let role_id = dev.role_id("web").await;
    let (secret_id, accessor) = dev.secret_id("web", json!({})).await;
    assert!(dev.login(None, &role_id, &secret_id).await.is_ok());
    let lookup = dev
        .root(
            Operation::Update,
            "auth/approle/role/web/secret-id-accessor/lookup",
            json!({"secret_id_accessor": accessor}),
        )
        .await
        .unwrap();
    assert_eq!(lookup.data.unwrap()["secret_id_num_uses"], 1);
    assert!(dev.login(None, &role_id, &secret_id).await.is_ok());
    assert_eq!(status(dev.login(None, &role_id, &secret_id).await), 400);
    // More uses than the role allows cannot be asked for.
    let r = dev
        .root(
            Operation::Update,
            "auth/approle/role/web/secret-id",
            json!({"num_uses": 5}),
        )
        .await;
    assert_eq!(status(r), 400);

    let (bound, _) = dev
        .secret_id("web", json!({"cidr_list": "192.168.0.0/24"}))
        .await;
    assert_eq!(
        status(dev.login(Some("10.9.9.9"), &role_id, &bound).await),
        400
    );
    assert_eq!(status(dev.login(None, &role_id, &bound).await), 400);
    assert!(dev
        .login(Some("192.168.0.7"), &role_id, &bound)
        .await
        .is_ok());
}

#[tokio::test]
async fn roles_without_bind_secret_id_need_a_cidr_and_log_in_from_it() {
    let dev = Dev::new().await;
    let r = dev
        .root(
            Operation::Update,
            "auth/approle/role/ci",
            json!({"bind_secret_id": false}),
        )
        .await;
    assert_eq!(status(r), 400);
    dev.root(
        Operation::Update,
        "auth/approle/role/ci",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": ["127.0.0.0/8"]}),
    )
    .await
    .unwrap();
    let role_id = dev.role_id("ci").await;
    let ok = dev
        .call(
            None,
            Some("127.0.0.1"),
            Operation::Update,
            "auth/approle/login",
            json!({"role_id": role_id}),
        )
        .await;
    assert_eq!(status(ok), 200);
    let far = dev
        .call(
            None,
            Some("10.0.0.1"),
            Operation::Update,
            "auth/approle/login",
            json!({"role_id": role_id}),
        )
        .await;
    assert_eq!(status(far), 400);
    let gen = dev
        .root(
            Operation::Update,
            "auth/approle/role/ci/secret-id",
            json!({}),
        )
        .await;
    assert_eq!(status(gen), 400);
}

#[tokio::test]
async fn role_crud_and_secret_id_management() {
    let dev = Dev::new().await;
    assert_eq!(
        status(
            dev.root(Operation::List, "auth/approle/role", json!({}))
                .await
        ),
        404
    );
    dev.root(
        Operation::Update,
        "auth/approle/role/a",
        json!({"token_policies": ["x"]}),
    )
    .await
    .unwrap();
    let read = dev
        .root(Operation::Read, "auth/approle/role/a", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["token_policies"], json!(["x"]));
    assert_eq!(read["bind_secret_id"], true);
    let list = dev
        .root(Operation::List, "auth/approle/role", json!({}))
        .await
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["a"]));
    // A custom role ID replaces the generated one.
    dev.root(
        Operation::Update,
        "auth/approle/role/a/role-id",
        json!({"role_id": "custom-id"}),
    )
    .await
    .unwrap();
    assert_eq!(dev.role_id("a").await, "custom-id");
    let (s1, a1) = dev.secret_id("a", json!({})).await;
    let (s2, _) = dev.secret_id("a", json!({})).await;
    let listed = dev
        .root(Operation::List, "auth/approle/role/a/secret-id", json!({}))
        .await
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"].as_array().unwrap().len(), 2);
    let looked = dev
        .root(
            Operation::Update,
            "auth/approle/role/a/secret-id/lookup",
            json!({"secret_id": s1}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(looked["secret_id_accessor"], json!(a1));
    assert!(looked.get("secret_id").is_none());
    dev.root(
        Operation::Update,
        "auth/approle/role/a/secret-id/destroy",
        json!({"secret_id": s1}),
    )
    .await
    .unwrap();
    assert_eq!(status(dev.login(None, "custom-id", &s1).await), 400);
    // As Vault: a destroyed secret ID looks up as 204 (no data), an unknown accessor as 404.
    let gone = dev
        .root(
            Operation::Update,
            "auth/approle/role/a/secret-id/lookup",
            json!({"secret_id": s1}),
        )
        .await
        .unwrap();
    assert!(gone.data.is_none());
    let err = dev
        .root(
            Operation::Update,
            "auth/approle/role/a/secret-id-accessor/lookup",
            json!({"secret_id_accessor": "9f0c4f3e-0000-4000-8000-000000000000"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(
        err.to_string().contains("failed to find accessor entry"),
        "{err}"
    );
    dev.root(
        Operation::Update,
        "auth/approle/role/a/secret-id-accessor/destroy",
        json!({"secret_id_accessor": a1}),
    )
    .await
    .unwrap();
    assert!(dev.login(None, "custom-id", &s2).await.is_ok());
    // Unknown roles and missing fields.
    for (path, body) in [
        ("auth/approle/role/ghost/secret-id", json!({})),
        ("auth/approle/role/a/secret-id/lookup", json!({})),
        ("auth/approle/role/a/secret-id-accessor/lookup", json!({})),
        ("auth/approle/role/bad name", json!({})),
    ] {
        assert_eq!(
            status(dev.root(Operation::Update, path, body).await),
            400,
            "{path}"
        );
    }
    assert_eq!(
        status(
            dev.root(Operation::Read, "auth/approle/role/ghost", json!({}))
                .await
        ),
        404
    );
    // Deleting the role takes its role ID and secret IDs with it.
    dev.root(Operation::Delete, "auth/approle/role/a", json!({}))
        .await
        .unwrap();
    assert_eq!(status(dev.login(None, "custom-id", &s2).await), 400);
    // Role management needs a token.
    let anon = dev
        .call(
            None,
            None,
            Operation::Update,
            "auth/approle/role/b",
            json!({}),
        )
        .await;
    assert_eq!(status(anon), 403);
}

#[tokio::test]
async fn failed_logins_lock_out_their_role_id_only() {
    let dev = Dev::new().await;
    for role in ["web", "db"] {
        dev.root(
            Operation::Update,
            &format!("auth/approle/role/{role}"),
            json!({}),
        )
        .await
        .unwrap();
    }
    let (web, db) = (dev.role_id("web").await, dev.role_id("db").await);
    let (web_secret, _) = dev.secret_id("web", json!({})).await;
    let (db_secret, _) = dev.secret_id("db", json!({})).await;
    for _ in 0..crate::core::login::limiter::LOCKOUT_THRESHOLD {
        assert_eq!(status(dev.login(Some("10.1.1.1"), &web, "bad").await), 400);
    }
    // The locked role ID is turned away even with the right secret ID, from any address.
    for addr in ["10.1.1.1", "10.1.1.2"] {
        let limited = dev.login(Some(addr), &web, &web_secret).await.unwrap_err();
        assert_eq!(limited.status(), 429);
        assert!(limited.retry_after().is_some_and(|s| s > 0 && s <= 900));
    }
    // Another role ID logs in from the same address.
    assert!(dev.login(Some("10.1.1.1"), &db, &db_secret).await.is_ok());
}

#[tokio::test]
async fn sys_auth_lists_enables_tunes_and_disables() {
    let dev = Dev::new().await;
    let list = dev
        .root(Operation::Read, "sys/auth", json!({}))
        .await
        .unwrap();
    let body = list.raw.unwrap();
    assert_eq!(body["approle/"]["type"], "approle");
    assert_eq!(body["token/"]["type"], "token");
    let unknown = dev
        .root(Operation::Update, "sys/auth/ldap", json!({"type": "ldap"}))
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), 400);
    assert!(unknown.to_string().contains("approle"));
    let dup = dev
        .root(
            Operation::Update,
            "sys/auth/approle",
            json!({"type": "approle"}),
        )
        .await;
    assert_eq!(status(dup), 400);
    dev.root(
        Operation::Update,
        "sys/auth/ci",
        json!({"type": "approle", "config": {"max_lease_ttl": "1h"}}),
    )
    .await
    .unwrap();
    let tune = dev
        .root(Operation::Read, "sys/auth/ci/tune", json!({}))
        .await
        .unwrap();
    // Vault answers sys/auth/ reads with the data at the top level too.
    let body = tune.raw.unwrap();
    assert_eq!(body["data"]["max_lease_ttl"], 3600);
    assert_eq!(body["max_lease_ttl"], 3600);
    dev.root(
        Operation::Update,
        "sys/auth/ci/tune",
        json!({"default_lease_ttl": "5m"}),
    )
    .await
    .unwrap();
    dev.root(
        Operation::Update,
        "auth/ci/role/r",
        json!({"token_ttl": "2h"}),
    )
    .await
    .unwrap();
    let role_id = dev
        .root(Operation::Read, "auth/ci/role/r/role-id", json!({}))
        .await
        .unwrap()
        .data
        .unwrap()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = dev
        .root(Operation::Update, "auth/ci/role/r/secret-id", json!({}))
        .await
        .unwrap()
        .data
        .unwrap()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = dev
        .call(
            None,
            None,
            Operation::Update,
            "auth/ci/login",
            json!({"role_id": role_id, "secret_id": sid}),
        )
        .await
        .unwrap();
    // The role asks for 2h; the mount caps it at 1h.
    assert_eq!(login.auth.unwrap().lease_duration, 3600);
    // A token without sudo cannot enable auth methods.
    let narrow = dev
        .root(
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["default"]}),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token
        .expose_secret()
        .to_string();
    let r = dev
        .call(
            Some(&narrow),
            None,
            Operation::Update,
            "sys/auth/x",
            json!({"type": "approle"}),
        )
        .await;
    assert_eq!(status(r), 403);
    assert_eq!(
        status(
            dev.root(Operation::Delete, "sys/auth/token", json!({}))
                .await
        ),
        400
    );
    dev.root(Operation::Delete, "sys/auth/ci", json!({}))
        .await
        .unwrap();
    let gone = dev
        .call(
            None,
            None,
            Operation::Update,
            "auth/ci/login",
            json!({"role_id": "x"}),
        )
        .await;
    assert_eq!(status(gone), 403);
}

#[tokio::test]
async fn expired_secret_ids_are_refused() {
    let backend = Arc::new(crate::storage::MemoryBackend::new());
    let barrier = Arc::new(crate::barrier::Barrier::new(backend));
    barrier
        .initialize(&crate::barrier::KeyBytes::random())
        .await
        .unwrap();
    let view = BarrierView::new(barrier, "logical/approle/");
    let now: Arc<Mutex<DateTime<Utc>>> = Arc::new(Mutex::new(Utc::now()));
    let clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().unwrap())
    };
    let b = AppRoleBackend::with_clock(view, clock).await.unwrap();
    let call = |op, path: &str, body: Value| {
        let mut req = Request::new(op, format!("auth/approle/{path}")).with_data(body);
        req.mount_point = "auth/approle/".into();
        req
    };
    b.handle(&call(
        Operation::Update,
        "role/r",
        json!({"secret_id_ttl": "1m"}),
    ))
    .await
    .unwrap();
    let role_id = b
        .handle(&call(Operation::Read, "role/r/role-id", json!({})))
        .await
        .unwrap()
        .data
        .unwrap()["role_id"]
        .clone();
    let gen = b
        .handle(&call(
            Operation::Update,
            "role/r/secret-id",
            json!({"ttl": "1h"}),
        ))
        .await
        .unwrap()
        .data
        .unwrap();
    // The role's secret_id_ttl caps the requested one.
    assert_eq!(gen["secret_id_ttl"], 60);
    let login = json!({"role_id": role_id, "secret_id": gen["secret_id"]});
    let grant = b
        .handle(&call(Operation::Update, "login", login.clone()))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(grant.metadata["role_name"], "r");
    *now.lock().unwrap() += chrono::TimeDelta::seconds(61);
    let err = b
        .handle(&call(Operation::Update, "login", login))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    // And it is gone from storage.
    assert!(b.view.list("secret_id/r/").await.unwrap().is_empty());
}

#[tokio::test]
async fn auth_mounts_and_roles_survive_a_reseal() {
    let core = Core::new(
        Arc::new(crate::storage::MemoryBackend::new()),
        crate::backends(),
    );
    let (_, key) = core
        .init_dev(Some(SecretString::from("root")))
        .await
        .unwrap();
    let dev = Dev { core: core.clone() };
    dev.root(
        Operation::Update,
        "sys/auth/approle",
        json!({"type": "approle"}),
    )
    .await
    .unwrap();
    dev.root(Operation::Update, "auth/approle/role/web", json!({}))
        .await
        .unwrap();
    let role_id = dev.role_id("web").await;
    let (secret_id, _) = dev.secret_id("web", json!({})).await;
    core.seal().await;
    assert_eq!(status(dev.login(None, &role_id, &secret_id).await), 503);
    core.unseal_with(&key).await.unwrap();
    assert!(dev.login(None, &role_id, &secret_id).await.is_ok());
}

#[tokio::test]
async fn tokens_from_a_role_with_token_bound_cidrs_only_work_from_there() {
    let dev = Dev::new().await;
    dev.root(
        Operation::Update,
        "auth/approle/role/edge",
        json!({"token_policies": ["default"], "token_bound_cidrs": ["10.1.0.0/16"]}),
    )
    .await
    .unwrap();
    let role_id = dev.role_id("edge").await;
    let (secret_id, _) = dev.secret_id("edge", json!({})).await;
    let auth = dev
        .login(Some("10.1.2.3"), &role_id, &secret_id)
        .await
        .unwrap()
        .auth
        .unwrap();
    let token = auth.client_token.expose_secret().to_string();
    let lookup = |addr: &'static str| {
        dev.call(
            Some(&token),
            Some(addr),
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
        )
    };
    let inside = lookup("10.1.9.9").await.unwrap();
    assert_eq!(inside.data.unwrap()["bound_cidrs"], json!(["10.1.0.0/16"]));
    assert_eq!(status(lookup("10.2.0.1").await), 403);
    assert_eq!(status(lookup("127.0.0.1").await), 403);
    // Unmounted paths too: the bound token cannot probe from outside.
    let probe = dev
        .call(
            Some(&token),
            Some("127.0.0.1"),
            Operation::Read,
            "nomount/x",
            json!({}),
        )
        .await;
    assert_eq!(status(probe), 403);
}
