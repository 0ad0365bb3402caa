//! Tests of the Shamir seal over the real in-memory backend and barrier.

use super::*;
use crate::storage::MemoryBackend;

struct Fixture {
    backend: Arc<MemoryBackend>,
    barrier: Barrier,
    seal: Seal,
}

fn fixture() -> Fixture {
    let backend = Arc::new(MemoryBackend::new());
    Fixture {
        barrier: Barrier::new(backend.clone()),
        seal: Seal::new(backend.clone()),
        backend,
    }
}

/// Fresh barrier and seal over the same storage, as after a restart.
fn restart(f: &Fixture) -> Fixture {
    fixture_over(f.backend.clone())
}

fn fixture_over(backend: Arc<MemoryBackend>) -> Fixture {
    Fixture {
        barrier: Barrier::new(backend.clone()),
        seal: Seal::new(backend.clone()),
        backend,
    }
}

async fn init(f: &Fixture, shares: u8, threshold: u8) -> Vec<Zeroizing<Vec<u8>>> {
    f.seal
        .initialize(&f.barrier, shares, threshold)
        .await
        .unwrap()
        .keys
}

#[tokio::test]
async fn init_5_of_3_stores_config_and_sealed_root_key() {
    let f = fixture();
    assert!(!f.seal.is_initialized().await.unwrap());
    assert_eq!(f.seal.config().await.unwrap(), None);
    let keys = init(&f, 5, 3).await;
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|k| k.len() == 33));
    let xs: std::collections::BTreeSet<u8> = keys.iter().map(|k| k[0]).collect();
    assert_eq!(xs.len(), 5, "distinct share indexes");
    assert!(!f.barrier.is_sealed(), "init leaves the barrier unsealed");
    assert!(f.seal.is_initialized().await.unwrap());
    assert_eq!(
        f.seal.config().await.unwrap(),
        Some(SealConfig {
            secret_shares: 5,
            secret_threshold: 3
        })
    );
    let raw = f.backend.get(CONFIG_PATH).await.unwrap().unwrap();
    assert_eq!(
        raw,
        br#"{"type":"shamir","secret_shares":5,"secret_threshold":3}"#
    );
    let root = f.seal.root_key().unwrap();
    let stored = f.backend.get(ROOT_KEY_PATH).await.unwrap().unwrap();
    assert!(
        !stored.windows(32).any(|w| w == root.0),
        "root key stored in the clear"
    );
    let dbg = format!("{:?}", InitOutput { keys: keys.clone() });
    assert!(!dbg.contains(&format!("{:?}", keys[0].as_slice())), "{dbg}");
    assert!(!format!("{:?}", f.seal).contains(&format!("{:?}", root.0)));
}

#[tokio::test]
async fn any_three_of_five_unseal_in_any_order() {
    let f = fixture();
    let keys = init(&f, 5, 3).await;
    f.barrier.put("data", b"kept".to_vec()).await.unwrap();
    let root = f.seal.root_key().unwrap();
    for pick in [[0, 1, 2], [4, 2, 0], [3, 1, 4], [2, 4, 3]] {
        let f = restart(&f);
        assert!(f.barrier.is_sealed());
        assert_eq!(f.seal.root_key().map(|k| k.0), None);
        let p1 = f.seal.submit(&f.barrier, &keys[pick[0]]).await.unwrap();
        assert_eq!(
            (p1.sealed, p1.progress, p1.threshold, p1.shares),
            (true, 1, 3, 5)
        );
        assert!(!p1.nonce.is_empty());
        let p2 = f.seal.submit(&f.barrier, &keys[pick[1]]).await.unwrap();
        assert_eq!((p2.sealed, p2.progress), (true, 2));
        assert_eq!(p2.nonce, p1.nonce, "one attempt, one nonce");
        let p3 = f.seal.submit(&f.barrier, &keys[pick[2]]).await.unwrap();
        assert_eq!((p3.sealed, p3.progress, p3.nonce.as_str()), (false, 0, ""));
        assert!(!f.barrier.is_sealed());
        assert_eq!(f.seal.root_key().unwrap().0, root.0);
        assert_eq!(
            f.barrier.get("data").await.unwrap().unwrap().as_slice(),
            b"kept"
        );
        // Submitting while unsealed changes nothing.
        let again = f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
        assert_eq!((again.sealed, again.progress), (false, 0));
    }
}

#[tokio::test]
async fn a_wrong_share_fails_and_stays_sealed() {
    let f = fixture();
    let keys = init(&f, 5, 3).await;
    f.seal.seal(&f.barrier);
    let mut wrong = keys[2].to_vec();
    wrong[0] = 200; // an index no real share has
    wrong[5] ^= 0xff;
    f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    f.seal.submit(&f.barrier, &keys[1]).await.unwrap();
    let err = f.seal.submit(&f.barrier, &wrong).await.unwrap_err();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    let msg = err.to_string();
    for k in keys.iter().map(|k| k.as_slice()).chain([wrong.as_slice()]) {
        assert!(
            !msg.contains(&hex::encode(k)) && !msg.contains(&format!("{k:?}")),
            "{msg}"
        );
    }
    assert!(f.barrier.is_sealed());
    assert!(f.seal.root_key().is_none());
    assert_eq!(
        f.seal.progress(),
        (0, String::new()),
        "a failed attempt resets progress"
    );
    // The right shares still work afterwards.
    for k in &keys[2..5] {
        f.seal.submit(&f.barrier, k).await.unwrap();
    }
    assert!(!f.barrier.is_sealed());
}

#[tokio::test]
async fn duplicate_conflicting_and_malformed_shares() {
    let f = fixture();
    let keys = init(&f, 5, 3).await;
    f.seal.seal(&f.barrier);
    let p = f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    let dup = f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    assert_eq!(dup.progress, 1, "a duplicate share makes no progress");
    assert_eq!(dup.nonce, p.nonce);

    let mut conflicting = keys[0].to_vec();
    conflicting[1] ^= 1;
    let err = f.seal.submit(&f.barrier, &conflicting).await.unwrap_err();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    assert_eq!(
        f.seal.progress().0,
        1,
        "refused share leaves progress alone"
    );

    let err = f.seal.submit(&f.barrier, &keys[1][..32]).await.unwrap_err();
    assert!(err.to_string().contains("expected 33 bytes"), "{err}");
    let err = f.seal.submit(&f.barrier, &[0u8; 33]).await.unwrap_err();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    assert_eq!(f.seal.progress().0, 1);
    assert!(f.barrier.is_sealed());
}

#[tokio::test]
async fn one_of_one_uses_the_unseal_key_itself() {
    let f = fixture();
    let keys = init(&f, 1, 1).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].len(), 32);
    f.seal.seal(&f.barrier);
    assert!(f.barrier.is_sealed());

    let err = f.seal.submit(&f.barrier, &[7u8; 33]).await.unwrap_err();
    assert!(err.to_string().contains("expected 32 bytes"), "{err}");
    let err = f.seal.submit(&f.barrier, &[7u8; 32]).await.unwrap_err();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    assert!(f.barrier.is_sealed());

    let p = f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    assert!(!p.sealed);
    assert_eq!((p.threshold, p.shares), (1, 1));
    assert!(!f.barrier.is_sealed());
}

#[tokio::test]
async fn bad_parameters_are_refused_and_store_nothing() {
    let f = fixture();
    for (shares, threshold) in [(0, 0), (0, 1), (1, 0), (3, 5), (5, 1), (2, 1), (1, 2)] {
        let err = f
            .seal
            .initialize(&f.barrier, shares, threshold)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SealError::InvalidParameters(_)),
            "{shares}/{threshold}: {err}"
        );
    }
    assert!(!f.seal.is_initialized().await.unwrap());
    assert!(f.backend.scan_prefix("").await.unwrap().is_empty());
    assert!(validate(255, 255).is_ok());
    assert!(validate(2, 2).is_ok());
}

#[tokio::test]
async fn submit_before_init_is_not_initialized() {
    let f = fixture();
    let err = f.seal.submit(&f.barrier, &[1u8; 33]).await.unwrap_err();
    assert!(matches!(err, SealError::NotInitialized), "{err}");
}

#[tokio::test]
async fn progress_and_reset() {
    let f = fixture();
    let keys = init(&f, 3, 2).await;
    f.seal.seal(&f.barrier);
    assert_eq!(f.seal.progress(), (0, String::new()));
    let p = f.seal.submit(&f.barrier, &keys[1]).await.unwrap();
    assert_eq!(f.seal.progress(), (1, p.nonce.clone()));
    f.seal.reset();
    assert_eq!(f.seal.progress(), (0, String::new()));
    let p2 = f.seal.submit(&f.barrier, &keys[2]).await.unwrap();
    assert!(p2.sealed, "reset forgot the first share");
    assert_ne!(p2.nonce, p.nonce, "a new attempt has a new nonce");
    let done = f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    assert!(!done.sealed);
}

#[tokio::test]
async fn initialize_twice_is_already_initialized() {
    let f = fixture();
    init(&f, 3, 2).await;
    let err = f.seal.initialize(&f.barrier, 3, 2).await.unwrap_err();
    assert!(matches!(err, SealError::AlreadyInitialized), "{err}");
    let f = restart(&f);
    let err = f.seal.initialize(&f.barrier, 1, 1).await.unwrap_err();
    assert!(matches!(err, SealError::AlreadyInitialized), "{err}");

    // A barrier initialised some other way also counts.
    let g = fixture();
    g.barrier.initialize(&KeyBytes::random()).await.unwrap();
    let err = g.seal.initialize(&g.barrier, 1, 1).await.unwrap_err();
    assert!(matches!(err, SealError::AlreadyInitialized), "{err}");
    assert!(g.backend.get(CONFIG_PATH).await.unwrap().is_none());
}

#[tokio::test]
async fn root_key_survives_rotation_seal_and_unseal() {
    let f = fixture();
    let keys = init(&f, 5, 3).await;
    let root = f.seal.root_key().unwrap();
    f.barrier
        .put("old", b"before rotation".to_vec())
        .await
        .unwrap();
    let st = f.barrier.rotate(&f.seal.root_key().unwrap()).await.unwrap();
    assert_eq!(st.term, 2);
    f.barrier
        .put("new", b"after rotation".to_vec())
        .await
        .unwrap();

    f.seal.seal(&f.barrier);
    assert!(f.barrier.is_sealed());
    assert!(f.seal.root_key().is_none());
    assert!(matches!(
        f.barrier.get("old").await,
        Err(BarrierError::Sealed)
    ));

    for k in [&keys[3], &keys[0], &keys[4]] {
        f.seal.submit(&f.barrier, k).await.unwrap();
    }
    assert_eq!(f.seal.root_key().unwrap().0, root.0);
    assert_eq!(
        f.barrier.get("old").await.unwrap().unwrap().as_slice(),
        b"before rotation"
    );
    assert_eq!(
        f.barrier.get("new").await.unwrap().unwrap().as_slice(),
        b"after rotation"
    );
    assert_eq!(f.barrier.key_status().unwrap().term, 2);
}

#[tokio::test]
async fn a_tampered_root_key_entry_does_not_unseal() {
    let f = fixture();
    let keys = init(&f, 3, 2).await;
    f.seal.seal(&f.barrier);
    let mut entry = f.backend.get(ROOT_KEY_PATH).await.unwrap().unwrap();
    let last = entry.len() - 1;
    entry[last] ^= 1;
    f.backend
        .write(vec![Op::Put {
            key: ROOT_KEY_PATH.into(),
            value: entry,
        }])
        .await
        .unwrap();
    f.seal.submit(&f.barrier, &keys[0]).await.unwrap();
    let err = f.seal.submit(&f.barrier, &keys[1]).await.unwrap_err();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    assert!(f.barrier.is_sealed());
}

#[tokio::test]
async fn the_barrier_refuses_seal_paths() {
    let f = fixture();
    init(&f, 1, 1).await;
    assert!(f.barrier.put(CONFIG_PATH, b"x".to_vec()).await.is_err());
    assert!(f.barrier.get(ROOT_KEY_PATH).await.is_err());
}

/// Start a rekey to `shares`/`threshold` and give it `keys`; the last must complete it.
async fn rekey(
    f: &Fixture,
    keys: &[Zeroizing<Vec<u8>>],
    shares: u8,
    threshold: u8,
) -> Result<(InitOutput, SealConfig), SealError> {
    let config = f.seal.config().await.unwrap().unwrap();
    let new = SealConfig {
        secret_shares: shares,
        secret_threshold: threshold,
    };
    let attempt = Rekey::new(new, false);
    let nonce = attempt.quorum.nonce.clone();
    *f.seal.rekey_attempt() = Some(attempt);
    for (i, key) in keys.iter().enumerate() {
        let step = {
            let mut guard = f.seal.rekey_attempt();
            let attempt = guard.as_mut().unwrap();
            attempt.quorum.submit(&config, &nonce, key)?
        };
        match step {
            QuorumStep::Complete(parts) => {
                assert_eq!(i + 1, keys.len(), "complete only at the last share");
                let done = f.seal.rekey(&nonce, parts).await?;
                assert!(done.verification_nonce.is_none());
                return Ok((done.keys, done.config));
            }
            QuorumStep::More => assert_eq!(
                f.seal.rekey_attempt().as_ref().unwrap().quorum.progress() as usize,
                i + 1
            ),
            QuorumStep::Duplicate => panic!("unexpected duplicate"),
        }
    }
    panic!("the threshold was not reached");
}

async fn unseals(f: &Fixture, keys: &[Zeroizing<Vec<u8>>]) -> bool {
    f.seal.seal(&f.barrier);
    for key in keys {
        match f.seal.submit(&f.barrier, key).await {
            Ok(p) if !p.sealed => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn rekey_5_of_3_to_3_of_2_keeps_the_root_key_and_retires_the_old_shares() {
    let f = fixture();
    let old = init(&f, 5, 3).await;
    let root = f.seal.root_key().unwrap();
    let (out, new) = rekey(&f, &old[1..4], 3, 2).await.unwrap();
    assert_eq!(
        new,
        SealConfig {
            secret_shares: 3,
            secret_threshold: 2
        }
    );
    assert_eq!(out.keys.len(), 3);
    assert!(out.keys.iter().all(|k| k.len() == 33));
    assert!(f.seal.rekey_attempt().is_none(), "the attempt is over");
    assert!(!f.barrier.is_sealed(), "rekey does not seal");
    // Durable: a restarted seal reads the new configuration; old shares fail, new ones open
    // the same root key.
    let g = restart(&f);
    assert_eq!(g.seal.config().await.unwrap(), Some(new));
    assert!(!unseals(&g, &old[..3]).await, "old shares still unseal");
    assert!(unseals(&g, &out.keys[1..]).await);
    assert_eq!(g.seal.root_key().unwrap().0, root.0);
    assert!(unseals(&g, &[out.keys[2].clone(), out.keys[0].clone()]).await);
}

#[tokio::test]
async fn rekey_to_one_share_and_back() {
    let f = fixture();
    let old = init(&f, 3, 2).await;
    let (one, _) = rekey(&f, &old[..2], 1, 1).await.unwrap();
    assert_eq!(one.keys.len(), 1);
    assert_eq!(one.keys[0].len(), 32, "one share: the unseal key itself");
    let (five, _) = rekey(&f, &one.keys, 5, 3).await.unwrap();
    assert!(unseals(&restart(&f), &five.keys[2..]).await);
}

#[tokio::test]
async fn quorum_checks_nonce_duplicates_and_conflicts() {
    let f = fixture();
    let keys = init(&f, 5, 3).await;
    let config = f.seal.config().await.unwrap().unwrap();
    let mut q = Quorum::new();
    let nonce = q.nonce.clone();
    assert!(matches!(
        q.submit(&config, "other", &keys[0]),
        Err(SealError::WrongNonce)
    ));
    assert_eq!(q.progress(), 0);
    assert!(matches!(
        q.submit(&config, &nonce, &keys[0]),
        Ok(QuorumStep::More)
    ));
    assert!(matches!(
        q.submit(&config, &nonce, &keys[0]),
        Ok(QuorumStep::Duplicate)
    ));
    let mut conflicting = keys[1].clone();
    conflicting[0] = keys[0][0];
    assert!(matches!(
        q.submit(&config, &nonce, &conflicting),
        Err(SealError::InvalidKey(_))
    ));
    assert!(matches!(
        q.submit(&config, &nonce, &keys[0][..10]),
        Err(SealError::InvalidKey(_))
    ));
    assert_eq!(q.progress(), 1);
    assert!(matches!(
        q.submit(&config, &nonce, &keys[1]),
        Ok(QuorumStep::More)
    ));
    assert!(matches!(
        q.submit(&config, &nonce, &keys[2]),
        Ok(QuorumStep::Complete(_))
    ));
    assert_eq!(q.progress(), 0, "the shares were taken out");
    assert!(!format!("{q:?}").contains(&format!("{:?}", keys[0].as_slice())));
}

#[tokio::test]
async fn a_wrong_combination_fails_resets_and_changes_nothing() {
    let f = fixture();
    let keys = init(&f, 3, 2).await;
    let other = fixture();
    let foreign = init(&other, 3, 2).await;
    let before = f.backend.get(ROOT_KEY_PATH).await.unwrap();
    let err = rekey(&f, &foreign[..2], 5, 3).await.err().unwrap();
    assert!(matches!(err, SealError::InvalidKey(_)), "{err}");
    let progress = f.seal.rekey_attempt().as_ref().map(|a| a.quorum.progress());
    assert_eq!(progress, Some(0), "reset, the attempt stays");
    assert_eq!(f.backend.get(ROOT_KEY_PATH).await.unwrap(), before);
    assert_eq!(f.seal.config().await.unwrap().unwrap().secret_shares, 3);
    assert!(unseals(&restart(&f), &keys[..2]).await);
}

#[tokio::test]
async fn a_rekey_cancelled_meanwhile_writes_nothing_and_sealing_drops_it() {
    let f = fixture();
    let keys = init(&f, 3, 2).await;
    let config = f.seal.config().await.unwrap().unwrap();
    let mut q = Quorum::new();
    let nonce = q.nonce.clone();
    q.submit(&config, &nonce, &keys[0]).unwrap();
    let QuorumStep::Complete(parts) = q.submit(&config, &nonce, &keys[1]).unwrap() else {
        panic!("threshold");
    };
    // No attempt with this nonce (cancelled): nothing is written.
    assert!(matches!(
        f.seal.rekey(&nonce, parts).await,
        Err(SealError::NoRekey)
    ));
    assert!(unseals(&restart(&f), &keys[1..]).await);
    *f.seal.rekey_attempt() = Some(Rekey::new(config, false));
    f.seal.seal(&f.barrier);
    assert!(f.seal.rekey_attempt().is_none());
}

#[tokio::test]
async fn a_verified_rekey_takes_effect_only_once_the_new_keys_are_given_back() {
    let f = fixture();
    let old = init(&f, 3, 2).await;
    let config = f.seal.config().await.unwrap().unwrap();
    let new = SealConfig {
        secret_shares: 3,
        secret_threshold: 2,
    };
    let attempt = Rekey::new(new, true);
    let nonce = attempt.quorum.nonce.clone();
    *f.seal.rekey_attempt() = Some(attempt);
    let take = |q: &mut Quorum, nonce: &str, key: &[u8], config: &SealConfig| match q
        .submit(config, nonce, key)
        .unwrap()
    {
        QuorumStep::Complete(parts) => Some(parts),
        _ => None,
    };
    let mut parts = None;
    for key in &old[..2] {
        let mut guard = f.seal.rekey_attempt();
        parts = take(&mut guard.as_mut().unwrap().quorum, &nonce, key, &config);
    }
    let done = f.seal.rekey(&nonce, parts.unwrap()).await.unwrap();
    let vnonce = done
        .verification_nonce
        .clone()
        .expect("awaits verification");
    let newkeys = done.keys.keys;
    // Not in force yet: the old keys still unseal after a restart; the new ones do not.
    assert!(unseals(&restart(&f), &old[1..]).await);
    assert!(!unseals(&restart(&f), &newkeys[..2]).await);
    // A second completion of the quorum is refused while verification is pending.
    assert!(matches!(
        f.seal.rekey(&nonce, Shares::default()).await,
        Err(SealError::InvalidKey(_) | SealError::NoRekey)
    ));
    // Wrong new shares (old ones, same length): refused, still pending.
    let mut wrong = None;
    for key in &old[..2] {
        let mut guard = f.seal.rekey_attempt();
        let p = guard.as_mut().unwrap().pending.as_mut().unwrap();
        wrong = take(&mut p.quorum, &vnonce, key, &new);
    }
    assert!(matches!(
        f.seal.rekey_verify(&vnonce, wrong.unwrap()).await,
        Err(SealError::InvalidKey(_))
    ));
    assert!(f.seal.rekey_attempt().as_ref().unwrap().pending.is_some());
    let mut right = None;
    for key in &newkeys[1..] {
        let mut guard = f.seal.rekey_attempt();
        let p = guard.as_mut().unwrap().pending.as_mut().unwrap();
        right = take(&mut p.quorum, &vnonce, key, &new);
    }
    assert!(matches!(
        f.seal.rekey_verify("other", Shares::default()).await,
        Err(SealError::NoRekeyVerification)
    ));
    assert_eq!(
        f.seal.rekey_verify(&vnonce, right.unwrap()).await.unwrap(),
        new
    );
    assert!(f.seal.rekey_attempt().is_none());
    assert!(!unseals(&restart(&f), &old[..2]).await);
    assert!(unseals(&restart(&f), &newkeys[..2]).await);
}
