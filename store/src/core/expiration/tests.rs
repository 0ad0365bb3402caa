//! The expiration manager over a real barrier and a small leasing engine that counts calls.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::json;

use super::*;
use crate::barrier::{Barrier, BarrierView, KeyBytes};
use crate::core::lease::token_lease_id;
use crate::core::mount::MountConfig;
use crate::core::token::CreateParams;
use crate::logical::{Data, TokenEntry};
use crate::logical::{Operation, Response};

/// Issues leases on read; counts renewals and revocations; can be told to fail revoking.
#[derive(Default)]
struct Engine {
    renews: AtomicU32,
    revokes: AtomicU32,
    fail_revoke: AtomicBool,
}

#[async_trait::async_trait]
impl LogicalBackend for Engine {
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        match req.operation {
            Operation::Renew => {
                let lease = req.lease.as_ref().expect("renewals carry the lease");
                assert_eq!(lease.internal["username"], json!("internal-db-user"));
                self.renews.fetch_add(1, Ordering::SeqCst);
                let secret = SecretLease {
                    ttl: lease.increment,
                    renewable: true,
                    ..Default::default()
                };
                Ok(Response {
                    secret: Some(secret),
                    ..Default::default()
                })
            }
            Operation::Revoke => {
                assert!(req.lease.is_some());
                self.revokes.fetch_add(1, Ordering::SeqCst);
                if self.fail_revoke.load(Ordering::SeqCst) {
                    return Err(LogicalError::Internal("database unreachable".into()));
                }
                Ok(Response::empty())
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }
}

struct Mounted(Arc<MountEntry>, Arc<Engine>);

impl LeaseBackends for Mounted {
    fn lease_backend(&self, path: &str) -> Option<(Arc<MountEntry>, Arc<dyn LogicalBackend>)> {
        path.starts_with(&self.0.path)
            .then(|| (self.0.clone(), self.1.clone() as Arc<dyn LogicalBackend>))
    }
}

struct Harness {
    barrier: Arc<Barrier>,
    engine: Arc<Engine>,
    backends: Arc<dyn LeaseBackends>,
    mount: Arc<MountEntry>,
    offset: Arc<AtomicI64>,
    start: DateTime<Utc>,
    mgr: Arc<ExpirationManager>,
    tokens: Arc<TokenStore>,
}

fn mount(max_lease_ttl: u64) -> MountEntry {
    MountEntry {
        path: "db/".into(),
        kind: "test".into(),
        description: String::new(),
        uuid: "u".into(),
        accessor: "test_1".into(),
        options: Default::default(),
        config: MountConfig {
            default_lease_ttl: 0,
            max_lease_ttl,
        },
        created: Utc::now(),
    }
}

const FAST_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    base: std::time::Duration::ZERO,
    max: std::time::Duration::ZERO,
};

async fn harness() -> Harness {
    let barrier = Arc::new(Barrier::new(Arc::new(crate::storage::MemoryBackend::new())));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let engine = Arc::new(Engine::default());
    let mount = Arc::new(mount(0));
    let backends: Arc<dyn LeaseBackends> = Arc::new(Mounted(mount.clone(), engine.clone()));
    let offset = Arc::new(AtomicI64::new(0));
    // Whole milliseconds, as leases are stored.
    let start = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let (mgr, tokens) = manager(&barrier, &backends, &offset, start).await;
    Harness {
        barrier,
        engine,
        backends,
        mount,
        offset,
        start,
        mgr,
        tokens,
    }
}

/// A manager (and token store) over `barrier`, as after an unseal.
async fn manager(
    barrier: &Arc<Barrier>,
    backends: &Arc<dyn LeaseBackends>,
    offset: &Arc<AtomicI64>,
    start: DateTime<Utc>,
) -> (Arc<ExpirationManager>, Arc<TokenStore>) {
    let off = offset.clone();
    let clock: Clock =
        Arc::new(move || start + chrono::Duration::seconds(off.load(Ordering::SeqCst)));
    let index = Arc::new(LeaseIndex::new(BarrierView::new(
        barrier.clone(),
        "sys/expire/",
    )));
    let tokens = Arc::new(
        TokenStore::open_with_clock(
            BarrierView::new(barrier.clone(), "sys/token/"),
            clock.clone(),
        )
        .await
        .unwrap()
        .with_lease_index(index.clone()),
    );
    let mgr = ExpirationManager::with_options(
        index,
        tokens.clone(),
        Arc::downgrade(backends),
        clock,
        FAST_RETRY,
    );
    (mgr, tokens)
}

impl Harness {
    fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::seconds(self.offset.load(Ordering::SeqCst))
    }

    async fn issue(&self, ttl: u64, max_ttl: u64, renewable: bool) -> LeaseInfo {
        self.issue_for(ttl, max_ttl, renewable, None).await
    }

    async fn issue_for(
        &self,
        ttl: u64,
        max_ttl: u64,
        renewable: bool,
        token: Option<Arc<TokenEntry>>,
    ) -> LeaseInfo {
        let mut req = Request::new(Operation::Read, "db/creds/ro");
        req.token_entry = token;
        let mut internal = Data::new();
        internal.insert("username".into(), json!("internal-db-user"));
        let secret = SecretLease {
            ttl,
            max_ttl,
            renewable,
            internal,
        };
        self.mgr.register(&req, &self.mount, &secret).await.unwrap()
    }

    fn revokes(&self) -> u32 {
        self.engine.revokes.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn register_lookup_renew_within_max_and_revoke() {
    let h = harness().await;
    let lease = h.issue(60, 300, true).await;
    assert!(lease.lease_id.starts_with("db/creds/ro/"));
    assert_eq!((lease.lease_duration, lease.renewable), (60, true));
    let entry = h.mgr.lookup(&lease.lease_id).await.unwrap();
    assert_eq!(entry.ttl(h.now()), 60);
    assert_eq!(
        entry.max_expire,
        Some(h.now() + chrono::Duration::seconds(300))
    );
    assert!(
        format!("{entry:?}").find("internal-db-user").is_none(),
        "Debug hides internal data"
    );

    h.advance(50);
    let r = h.mgr.renew(&lease.lease_id, 120).await.unwrap();
    assert_eq!(r.ttl, 120);
    assert!(r.warnings.is_empty());
    let entry = h.mgr.lookup(&lease.lease_id).await.unwrap();
    assert_eq!(entry.last_renewal, Some(h.now()));
    // Past what is left of the max TTL: capped, with Vault's warning.
    let r = h.mgr.renew(&lease.lease_id, 1000).await.unwrap();
    assert_eq!(r.ttl, 250);
    assert!(
        r.warnings[0].contains("exceeded the effective max_ttl"),
        "{:?}",
        r.warnings
    );
    assert_eq!(h.engine.renews.load(Ordering::SeqCst), 2);
    h.advance(250);
    let err = h.mgr.renew(&lease.lease_id, 10).await.unwrap_err();
    assert_eq!(err.status(), 400);

    h.mgr.revoke(&lease.lease_id, true).await.unwrap();
    assert_eq!(h.revokes(), 1);
    assert_eq!(
        h.mgr.lookup(&lease.lease_id).await.unwrap_err().status(),
        400
    );
    // Revoking what is gone succeeds; renewing it does not.
    h.mgr.revoke(&lease.lease_id, true).await.unwrap();
    assert_eq!(
        h.mgr.renew(&lease.lease_id, 10).await.unwrap_err().status(),
        400
    );
    assert_eq!(h.mgr.lookup("../sys/x").await.unwrap_err().status(), 400);
}

#[tokio::test]
async fn the_mount_max_caps_and_unrenewable_leases_are_refused() {
    let h = harness().await;
    let tuned = MountConfig {
        default_lease_ttl: 30,
        max_lease_ttl: 90,
    };
    assert_eq!(effective_ttls(&tuned, 0, 0), (30, 90));
    assert_eq!(effective_ttls(&tuned, 600, 6000), (90, 90));
    assert_eq!(effective_ttls(&MountConfig::default(), 0, 0).0, DEFAULT_TTL);
    let fixed = h.issue(60, 0, false).await;
    assert!(!fixed.renewable);
    let err = h.mgr.renew(&fixed.lease_id, 10).await.unwrap_err();
    assert!(err.to_string().contains("not renewable"), "{err}");
    assert_eq!(h.engine.renews.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn due_leases_are_revoked_by_the_expiry_pass_and_not_before() {
    let h = harness().await;
    let early = h.issue(60, 0, true).await;
    let late = h.issue(600, 0, true).await;
    let wait = h.mgr.expire_due().await.unwrap().expect("nothing due");
    assert!(wait <= std::time::Duration::from_secs(60));
    assert_eq!(h.revokes(), 0);
    h.advance(61);
    assert!(h.mgr.expire_due().await.unwrap().is_none(), "did work");
    assert_eq!(h.revokes(), 1);
    assert!(h.mgr.lookup(&early.lease_id).await.is_err());
    assert!(h.mgr.lookup(&late.lease_id).await.is_ok());
    // A renewal moves the lease in the index.
    h.mgr.renew(&late.lease_id, 3600).await.unwrap();
    h.advance(600);
    h.mgr.expire_due().await.unwrap();
    assert_eq!(h.revokes(), 1);
    assert!(h.mgr.lookup(&late.lease_id).await.is_ok());
}

#[tokio::test]
async fn failed_revocations_retry_then_become_irrevocable() {
    let h = harness().await;
    h.engine.fail_revoke.store(true, Ordering::SeqCst);
    let lease = h.issue(10, 0, true).await;
    let err = h.mgr.revoke(&lease.lease_id, true).await.unwrap_err();
    assert!(err.to_string().contains("database unreachable"), "{err}");
    for _ in 0..5 {
        h.mgr.expire_due().await.unwrap();
    }
    assert_eq!(h.revokes(), FAST_RETRY.attempts);
    let entry = h.mgr.lookup(&lease.lease_id).await.unwrap();
    assert_eq!(entry.revoke_attempts, FAST_RETRY.attempts);
    assert!(entry
        .irrevocable
        .as_deref()
        .unwrap()
        .contains("unreachable"));
    let listed = h.mgr.irrevocable().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, lease.lease_id);
    // No longer retried, still stored; a forced revoke removes it without the engine.
    h.advance(3600);
    h.mgr.expire_due().await.unwrap();
    assert_eq!(h.revokes(), FAST_RETRY.attempts);
    assert_eq!(h.mgr.count().await.unwrap(), 1);
    assert_eq!(
        h.mgr
            .revoke_prefix("db/creds", PrefixMode::Force)
            .await
            .unwrap(),
        1
    );
    assert_eq!(h.revokes(), FAST_RETRY.attempts);
    assert_eq!(h.mgr.count().await.unwrap(), 0);
    assert!(h.mgr.irrevocable().await.unwrap().is_empty());
}

#[tokio::test]
async fn revoke_prefix_matches_whole_segments() {
    let h = harness().await;
    let a = h.issue(60, 0, true).await;
    let b = h.issue(60, 0, true).await;
    assert_eq!(h.mgr.list("db/creds/").await.unwrap(), vec!["ro/"]);
    let mut keys = h.mgr.list("db/creds/ro/").await.unwrap();
    keys.sort();
    let mut want: Vec<String> = [&a, &b]
        .iter()
        .map(|l| l.lease_id.trim_start_matches("db/creds/ro/").to_string())
        .collect();
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(
        h.mgr
            .revoke_prefix("db/cr", PrefixMode::Sync)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.mgr
            .revoke_prefix("db/creds/", PrefixMode::Sync)
            .await
            .unwrap(),
        2
    );
    assert_eq!(h.revokes(), 2);
    // Async: due now, revoked by the next pass.
    let c = h.issue(60, 0, true).await;
    assert_eq!(
        h.mgr.revoke_prefix("db", PrefixMode::Async).await.unwrap(),
        1
    );
    assert_eq!(h.revokes(), 2);
    h.mgr.expire_due().await.unwrap();
    assert_eq!(h.revokes(), 3);
    assert!(h.mgr.lookup(&c.lease_id).await.is_err());
}

async fn token(h: &Harness, ttl: u64) -> (secrecy::SecretString, Arc<TokenEntry>) {
    let params = CreateParams {
        policies: vec!["a".into()],
        ttl: Some(ttl),
        path: "auth/token/create".into(),
        ..Default::default()
    };
    let auth = h.tokens.create(params, None).await.unwrap();
    let entry = h.tokens.authenticate(&auth.client_token).await.unwrap();
    (auth.client_token, entry)
}

#[tokio::test]
async fn revoking_a_token_revokes_the_leases_it_created() {
    let h = harness().await;
    let (_, entry) = token(&h, 3600).await;
    let mine = h.issue_for(600, 0, true, Some(entry.clone())).await;
    let other = h.issue(600, 0, true).await;
    h.tokens.revoke_tree(&entry.id_hash).await.unwrap();
    h.mgr.expire_due().await.unwrap();
    assert_eq!(h.revokes(), 1);
    assert!(h.mgr.lookup(&mine.lease_id).await.is_err());
    assert!(h.mgr.lookup(&other.lease_id).await.is_ok());
}

#[tokio::test]
async fn tokens_have_leases_that_expire_renew_and_revoke() {
    let h = harness().await;
    let (tok, entry) = token(&h, 60).await;
    let id = token_lease_id(&entry);
    assert!(id.starts_with("auth/token/create/"));
    let lease = h.mgr.lookup(&id).await.unwrap();
    assert_eq!((lease.kind, lease.ttl(h.now())), (LeaseKind::Token, 60));
    // Renewed through the manager: the token store moves token and lease together.
    h.advance(30);
    let r = h.mgr.renew(&id, 600).await.unwrap();
    assert_eq!(r.ttl, 600);
    assert_eq!(h.mgr.lookup(&id).await.unwrap().ttl(h.now()), 600);
    h.advance(100);
    h.mgr.expire_due().await.unwrap();
    assert!(
        h.tokens.authenticate(&tok).await.is_ok(),
        "renewed, not expired"
    );
    h.advance(600);
    h.mgr.expire_due().await.unwrap();
    assert!(h
        .tokens
        .lookup(tok.expose_secret())
        .await
        .unwrap()
        .is_none());
    assert!(
        h.mgr.lookup(&id).await.is_err(),
        "the lease went with the token"
    );
    // Revoked through the manager.
    let (tok, entry) = token(&h, 60).await;
    h.mgr.revoke(&token_lease_id(&entry), true).await.unwrap();
    assert!(h.tokens.authenticate(&tok).await.is_err());
    assert_eq!(h.mgr.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_new_manager_over_the_same_storage_still_expires_on_time() {
    let h = harness().await;
    let lease = h.issue(60, 0, true).await;
    let (tok, _) = token(&h, 90).await;
    // "Restart": fresh index, token store and manager; nothing is loaded.
    let (mgr, tokens) = manager(&h.barrier, &h.backends, &h.offset, h.start).await;
    drop(h.mgr.clone());
    let wait = mgr.expire_due().await.unwrap().unwrap();
    assert!(wait <= std::time::Duration::from_secs(60));
    h.advance(61);
    mgr.expire_due().await.unwrap();
    assert_eq!(h.revokes(), 1);
    assert!(mgr.lookup(&lease.lease_id).await.is_err());
    assert!(tokens.authenticate(&tok).await.is_ok());
    h.advance(30);
    mgr.expire_due().await.unwrap();
    assert!(tokens.lookup(tok.expose_secret()).await.unwrap().is_none());
    assert!(mgr.expire_due().await.unwrap().is_some(), "nothing left");
}

#[tokio::test]
async fn the_expiry_task_wakes_for_an_earlier_lease_and_stops_once_sealed() {
    // Real time here: the task sleeps on tokio's clock and reads the manager's.
    let barrier = Arc::new(Barrier::new(Arc::new(crate::storage::MemoryBackend::new())));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let engine = Arc::new(Engine::default());
    let m = Arc::new(mount(0));
    let backends: Arc<dyn LeaseBackends> = Arc::new(Mounted(m.clone(), engine.clone()));
    let index = Arc::new(LeaseIndex::new(BarrierView::new(
        barrier.clone(),
        "sys/expire/",
    )));
    let tokens = Arc::new(
        TokenStore::open(BarrierView::new(barrier.clone(), "sys/token/"))
            .await
            .unwrap(),
    );
    let mgr = ExpirationManager::new(index, tokens, Arc::downgrade(&backends));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = mgr.spawn_expiry(stop.clone());
    let req = Request::new(Operation::Read, "db/creds/ro");
    let long = SecretLease {
        ttl: 3600,
        ..Default::default()
    };
    mgr.register(&req, &m, &long).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let short = SecretLease {
        ttl: 1,
        ..Default::default()
    };
    mgr.register(&req, &m, &short).await.unwrap();
    let revoked = async {
        while engine.revokes.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), revoked)
        .await
        .expect("the 1s lease is revoked though the task slept for the 1h one");
    assert_eq!(mgr.count().await.unwrap(), 1);
    barrier.seal();
    let short = SecretLease {
        ttl: 0,
        ..Default::default()
    };
    // Sealed: the wake-up finds the barrier closed and the task ends.
    assert!(mgr.register(&req, &m, &short).await.is_err());
    mgr.index.wake.notify_one();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    assert!(ended.is_ok(), "a task that finds the store sealed ends");
}

#[test]
fn a_stored_entry_stays_small() {
    // SQLite keeps rows up to about 480 bytes in the b-tree page (2 KiB pages); a lease with a
    // creating token and a small internal map must fit, encryption and key included.
    let now = Utc::now();
    let mut internal = Data::new();
    internal.insert("username".into(), json!("v-token-ro-1a2b3c4d5e6f7g8h"));
    let entry = LeaseEntry {
        lease_id: format!("database/creds/ro/{}", "x".repeat(24)),
        kind: LeaseKind::Secret,
        mount_accessor: "database_0a1b2c3d".into(),
        internal,
        token_hash: Some("a".repeat(64)),
        issue_time: now,
        expire_time: now,
        max_expire: Some(now),
        last_renewal: Some(now),
        renewable: true,
        due: now,
        revoke_attempts: 0,
        irrevocable: None,
    };
    let json = serde_json::to_vec(&entry).unwrap();
    assert!(json.len() < 400, "{}", json.len());
    let back: LeaseEntry = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.path(), "database/creds/ro");
    assert_eq!(back.due.timestamp_millis(), now.timestamp_millis());
}

#[tokio::test]
async fn tokens_stored_before_leases_get_one_once() {
    let h = harness().await;
    // A token store without a lease index: tokens as stored before leases existed.
    let clock: Clock = Arc::new(Utc::now);
    let old = TokenStore::open_with_clock(BarrierView::new(h.barrier.clone(), "sys/token/"), clock)
        .await
        .unwrap();
    let params = CreateParams {
        ttl: Some(60),
        path: "auth/token/create".into(),
        ..Default::default()
    };
    let auth = old.create(params, None).await.unwrap();
    let hash = old.hmac(auth.client_token.expose_secret());
    assert_eq!(h.mgr.count().await.unwrap(), 0);
    assert_eq!(h.tokens.index_unleased_tokens().await.unwrap(), 1);
    let lease = h
        .mgr
        .lookup(&format!("auth/token/create/{hash}"))
        .await
        .unwrap();
    assert_eq!(lease.kind, LeaseKind::Token);
    // Once per store: a second token without a lease is not looked for again.
    let params = CreateParams {
        ttl: Some(60),
        ..Default::default()
    };
    old.create(params, None).await.unwrap();
    assert_eq!(h.tokens.index_unleased_tokens().await.unwrap(), 0);
    assert_eq!(h.mgr.count().await.unwrap(), 1);
}

#[tokio::test]
async fn moved_leases_keep_their_terms_under_the_new_prefix() {
    let h = harness().await;
    let a = h.issue(60, 300, true).await;
    let (_, tok) = token(&h, 600).await;
    let before = h.mgr.lookup(&a.lease_id).await.unwrap();
    assert_eq!(h.mgr.move_prefix("db/", "db2/").await.unwrap(), 1);
    assert!(h.mgr.lookup(&a.lease_id).await.is_err());
    let moved_id = a.lease_id.replacen("db/", "db2/", 1);
    let after = h.mgr.lookup(&moved_id).await.unwrap();
    assert_eq!(after.expire_time, before.expire_time);
    assert_eq!(after.internal, before.internal);
    assert_eq!(h.mgr.list("db2/creds/").await.unwrap(), vec!["ro/"]);
    // Token leases are not under a secrets mount and are never moved.
    assert!(h.mgr.lookup(&token_lease_id(&tok)).await.is_ok());
}

#[tokio::test]
async fn webhooks_hear_of_secret_leases_revoked_and_expired() {
    let h = harness().await;
    let hooks = crate::core::webhooks::Webhooks::open(
        h.barrier.clone(),
        BarrierView::new(h.barrier.clone(), "sys/webhooks/"),
        crate::metrics::Metrics::new().webhooks(),
    )
    .await
    .unwrap();
    let cfg = json!({"url": "http://127.0.0.1:9/", "events": ["lease.revoked", "lease.expired"],
        "paths": ["db/creds/*"], "secret": "0123456789abcdef"});
    hooks
        .write("leases", cfg.as_object().unwrap())
        .await
        .unwrap();
    h.mgr.set_webhooks(hooks.clone());
    let revoked = h.issue(60, 300, true).await;
    let expiring = h.issue(10, 300, true).await;
    h.mgr.revoke(&revoked.lease_id, true).await.unwrap();
    h.advance(11);
    assert_eq!(h.mgr.expire_due().await.unwrap(), None);
    let list = hooks.deliveries("leases", 10).await.unwrap();
    let mut seen: Vec<(String, String)> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["type"].as_str().unwrap().into(),
                d["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("lease.expired".to_string(), "db/creds/ro".to_string()),
            ("lease.revoked".to_string(), "db/creds/ro".to_string()),
        ]
    );
    // The lease ids are in the bodies, the engine's internal data is not.
    let bodies = hooks.queue().view().scan_prefix("delivery/").await.unwrap();
    for key in bodies {
        let d: crate::core::webhooks::queue::Delivery =
            hooks.queue().view().get_json(&key).await.unwrap().unwrap();
        assert!(d.body.contains(&expiring.lease_id) || d.body.contains(&revoked.lease_id));
        assert!(!d.body.contains("internal-db-user"), "{}", d.body);
    }
}
