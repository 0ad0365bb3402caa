//! The rewrap: after `sys/rotate`, one background task (while unsealed) moves every entry
//! encrypted under an older key term to the newest, then marks the older terms retired.
//!
//! It walks the whole key space in key order, [`BATCH`] keys a page (only the page is
//! loaded); [`Barrier::rewrap_page`] re-encrypts what is under an older term while holding the
//! keys' write locks, so a client write of one of them waits and is never overwritten with the
//! older value. The task stores its cursor and counts at [`STATE_PATH`] (through the barrier), and
//! pauses [`PAUSE`] between pages: at most 128 entries per 25 ms, about 5,000 entries/s,
//! whatever the storage could take. After a restart (or a seal and unseal) it resumes from the
//! stored cursor. A rotation during a walk starts a new walk for the new term (entries the old
//! walk moved are on a term that is now older too).
//!
//! When a walk reaches the end with no unreadable entry, every entry is under its target term:
//! entries it passed were moved, and every write since the rotation used that term or a newer
//! one (a write takes its keys' locks before it picks the term). The older terms are then
//! marked retired in the keyring ([`Barrier::retire_below`]): kept, never used to encrypt.
//! They are not dropped: a key taken out of the keyring would make anything still under it
//! unreadable for ever (an old entry put back into storage by hand, a stale node of an HA
//! cluster writing with the keyring it loaded before the rotation), and the
//! barrier must never hold data it cannot open. `sys/key-status` shows the terms, the walk and
//! `oldest_term`, the oldest term an entry may still be under.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::barrier::{Barrier, BarrierError, KeyBytes};

/// Where the walk's cursor and counts are kept (encrypted, as any entry).
pub const STATE_PATH: &str = "core/rewrap";
/// Keys per page.
pub const BATCH: usize = 128;
/// Pause between pages.
pub const PAUSE: Duration = Duration::from_millis(25);
/// Pause after a failed page (storage unreachable...), before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// The walk for one target term, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrapState {
    pub target_term: u32,
    /// The last key done; `None`: from the start. Not shown (keys name secrets' paths).
    #[serde(default)]
    cursor: Option<String>,
    pub scanned: u64,
    pub rewrapped: u64,
    pub unreadable: u64,
    pub started_time: DateTime<Utc>,
    pub finished_time: Option<DateTime<Utc>>,
}

impl RewrapState {
    fn new(target_term: u32) -> RewrapState {
        RewrapState {
            target_term,
            cursor: None,
            scanned: 0,
            rewrapped: 0,
            unreadable: 0,
            started_time: Utc::now(),
            finished_time: None,
        }
    }
}

/// The stored walk, if one ever started.
pub async fn load(barrier: &Barrier) -> Result<Option<RewrapState>, BarrierError> {
    let Some(raw) = barrier.get(STATE_PATH).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&raw).ok())
}

async fn save(barrier: &Barrier, state: &RewrapState) -> Result<(), BarrierError> {
    barrier
        .put(STATE_PATH, serde_json::to_vec(state).expect("json"))
        .await
}

/// Start the rewrap task; it stops when `stop` is cancelled (at seal). `root_key` re-encrypts
/// the keyring when terms are retired (`None`: they are not).
pub fn spawn(
    barrier: Arc<Barrier>,
    root_key: Option<KeyBytes>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut terms = barrier.active_term_changes();
        loop {
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = walk(&barrier, root_key.as_ref()) => outcome,
            };
            let wait = match outcome {
                Ok(()) => None,
                Err(_) if stop.is_cancelled() || barrier.is_sealed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "rewrap: a page failed; trying again");
                    Some(ERROR_PAUSE)
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                changed = terms.changed(), if wait.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            }
        }
    })
}

/// Walk to the end for the active term (or resume the stored walk), then retire older terms.
async fn walk(barrier: &Barrier, root_key: Option<&KeyBytes>) -> Result<(), BarrierError> {
    let active = barrier.active_term()?;
    let mut st = match load(barrier).await? {
        Some(st) if st.target_term == active => st,
        _ => {
            let st = RewrapState::new(active);
            save(barrier, &st).await?;
            st
        }
    };
    if st.finished_time.is_none() {
        let nothing_older = barrier
            .terms()?
            .iter()
            .all(|t| t.term >= active || t.retired_time.is_some());
        if nothing_older && st.cursor.is_none() {
            st.finished_time = Some(Utc::now());
            save(barrier, &st).await?;
        } else {
            tracing::info!(
                term = active,
                resumed = st.cursor.is_some(),
                scanned = st.scanned,
                "rewrap: moving entries to the newest key term"
            );
        }
    }
    while st.finished_time.is_none() {
        if barrier.active_term()? != st.target_term {
            return Ok(()); // rotated meanwhile: the caller starts a walk for the new term
        }
        let (count, last) = barrier.rewrap_page(st.cursor.as_deref(), BATCH).await?;
        let Some(last) = last else {
            st.finished_time = Some(Utc::now());
            save(barrier, &st).await?;
            tracing::info!(
                term = st.target_term,
                scanned = st.scanned,
                rewrapped = st.rewrapped,
                unreadable = st.unreadable,
                "rewrap: done"
            );
            break;
        };
        st.scanned += count.scanned;
        st.rewrapped += count.rewrapped;
        st.unreadable += count.unreadable;
        st.cursor = Some(last);
        save(barrier, &st).await?;
        tokio::time::sleep(PAUSE).await;
    }
    if st.unreadable > 0 {
        tracing::warn!(
            unreadable = st.unreadable,
            "rewrap: entries could not be read, so older key terms are not retired"
        );
        return Ok(());
    }
    if let Some(root) = root_key {
        let retired = barrier.retire_below(root, st.target_term).await?;
        if !retired.is_empty() {
            tracing::info!(?retired, term = st.target_term, "key terms retired");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::barrier::entry_term;
    use crate::storage::{Backend, MemoryBackend};

    async fn wait_done(barrier: &Barrier, term: u32) -> RewrapState {
        for _ in 0..1000 {
            if let Some(st) = load(barrier).await.unwrap() {
                if st.target_term == term && st.finished_time.is_some() {
                    return st;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the rewrap to term {term} did not finish");
    }

    #[tokio::test]
    async fn moves_everything_resumes_and_follows_rotations() {
        let backend = Arc::new(MemoryBackend::new());
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let root = KeyBytes::random();
        barrier.initialize(&root).await.unwrap();
        for i in 0..300 {
            barrier.put(&format!("d/{i:04}"), vec![1; 8]).await.unwrap();
        }
        // A walk stopped after its first page resumes there.
        barrier.rotate(&root).await.unwrap();
        let stop = CancellationToken::new();
        let task = spawn(barrier.clone(), Some(root.clone()), stop.clone());
        while load(&barrier).await.unwrap().is_none_or(|s| s.scanned == 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.cancel();
        task.await.unwrap();
        let stopped = load(&barrier).await.unwrap().unwrap();
        assert!(stopped.finished_time.is_none() && stopped.scanned >= BATCH as u64 / 2);
        let stop = CancellationToken::new();
        let task = spawn(barrier.clone(), Some(root.clone()), stop.clone());
        let st = wait_done(&barrier, 2).await;
        assert_eq!(
            st.started_time, stopped.started_time,
            "resumed, not restarted"
        );
        assert_eq!(st.scanned, 301, "every entry once (and the state itself)");
        assert_eq!(st.rewrapped, 300);
        // A second rotation: a new walk, and both older terms retired.
        barrier.rotate(&root).await.unwrap();
        wait_done(&barrier, 3).await;
        for k in backend.scan_prefix("d/").await.unwrap() {
            let raw = backend.get(&k).await.unwrap().unwrap();
            assert_eq!(entry_term(&k, &raw).unwrap(), 3, "{k}");
        }
        for _ in 0..100 {
            if barrier.terms().unwrap()[1].retired_time.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let terms = barrier.terms().unwrap();
        assert!(terms[0].retired_time.is_some() && terms[1].retired_time.is_some());
        assert!(terms[2].retired_time.is_none());
        stop.cancel();
        task.await.unwrap();
    }
}
