//! One secret source: how it is fetched (cheap metadata check first for KV v2) and how a
//! fetch changes what the agent holds. Errors never throw away the last good data, except a
//! 403 when the config says `remove`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hush_api::wire::Data;
use hush_api::{Client, ClientError};

use super::lease::{Action, Lease};
use crate::config::{OnForbidden, Source, SourceKind};
use crate::retry::{classify, ErrorClass};
use crate::telemetry::Observer;

/// How soon a lease action that failed is tried again (the backoff applies on top for
/// transient failures).
const LEASE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the agent holds for one source.
#[derive(Default)]
pub struct SourceState {
    /// The last good data; `None` before the first read (or after a 403 with `remove`).
    pub data: Option<Arc<Data>>,
    /// KV v2 version of `data` (or of the deleted version last seen).
    pub version: Option<u64>,
    /// When `data` was made: the KV v2 version's `created_time`, a lease's issue time,
    /// otherwise when the agent first read it.
    pub created: Option<SystemTime>,
    /// The token may not read `MOUNT/metadata/...`: compare versions of full reads instead.
    pub metadata_denied: bool,
    /// An event said it changed: the next look reads it without the metadata check first.
    pub pushed: bool,
    /// The files of this source were removed after a 403.
    pub removed: bool,
    /// The last problem, for logging only when it changes, and for `--once`'s message.
    pub problem: Option<String>,
    /// The lease `data` came with (dynamic secrets), while it is held.
    pub lease: Option<Lease>,
    /// How the last look failed (`NotFound` for a missing or deleted secret); `None` when it
    /// went fine.
    pub failure: Option<ErrorClass>,
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceState")
            .field("has_data", &self.data.is_some())
            .field("version", &self.version)
            .field("problem", &self.problem)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The result of one look at a source.
pub enum Fetch {
    /// Same version (or same data) as held.
    Unchanged,
    /// New data (with its lease, for a dynamic secret), made at `created`.
    New {
        data: Data,
        version: Option<u64>,
        lease: Option<Lease>,
        created: SystemTime,
    },
    /// The lease was renewed at `at` for `granted` seconds.
    Renewed {
        granted: u64,
        renewable: bool,
        at: Instant,
    },
    /// The secret does not exist, or its current version is deleted or destroyed.
    Gone {
        version: Option<u64>,
    },
    /// The metadata endpoint is forbidden to this token; try again with full reads.
    MetadataDenied,
    Failed(ClientError),
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetch::Unchanged => f.write_str("Unchanged"),
            Fetch::New { version, .. } => f
                .debug_struct("New")
                .field("version", version)
                .finish_non_exhaustive(),
            Fetch::Renewed { granted, .. } => f
                .debug_struct("Renewed")
                .field("granted", granted)
                .finish_non_exhaustive(),
            Fetch::Gone { version } => f.debug_struct("Gone").field("version", version).finish(),
            Fetch::MetadataDenied => f.write_str("MetadataDenied"),
            Fetch::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

fn timed<T>(
    observer: &dyn Observer,
    op: &'static str,
    started: Instant,
    r: &Result<T, ClientError>,
) {
    let outcome = match r {
        Ok(_) => "ok",
        Err(e) => classify(e).as_str(),
    };
    observer.store(op, outcome, started.elapsed());
}

/// Look at `source` once; `token_gen` is the agent token's generation (a new token means
/// new leases).
pub async fn fetch(
    client: &Client,
    source: &Source,
    state: &SourceState,
    observer: &dyn Observer,
    token_gen: u64,
) -> Fetch {
    match &source.kind {
        SourceKind::KvV2 { mount, path } => {
            let check_first = !state.metadata_denied && !state.pushed;
            if state.data.is_some() && state.version.is_some() && check_first {
                let t = Instant::now();
                let meta = client.kv_metadata_get(mount, path).await;
                timed(observer, "kv_metadata", t, &meta);
                match meta {
                    Ok(None) => return Fetch::Gone { version: None },
                    Ok(Some(m)) if Some(m.current_version) == state.version => {
                        return Fetch::Unchanged
                    }
                    Ok(Some(_)) => {}
                    Err(e) if classify(&e) == ErrorClass::Forbidden => {
                        return Fetch::MetadataDenied
                    }
                    Err(e) => return Fetch::Failed(e),
                }
            }
            let t = Instant::now();
            let read = client.kv_get(mount, path, None).await;
            timed(observer, "kv_read", t, &read);
            match read {
                Ok(None) => Fetch::Gone { version: None },
                Ok(Some(s)) => {
                    let version = Some(s.metadata.version);
                    let created =
                        created_time(&s.metadata.created_time).unwrap_or_else(SystemTime::now);
                    match s.data {
                        None => Fetch::Gone { version },
                        Some(data) => {
                            let same = version == state.version
                                && state.data.as_deref().is_some_and(|d| *d == data);
                            if same {
                                Fetch::Unchanged
                            } else {
                                Fetch::New {
                                    data,
                                    version,
                                    lease: None,
                                    created,
                                }
                            }
                        }
                    }
                }
                Err(e) => Fetch::Failed(e),
            }
        }
        SourceKind::Generic => {
            if let (Some(lease), Some(_)) = (&state.lease, &state.data) {
                match lease.action(Instant::now(), token_gen) {
                    Action::Wait(_) => return Fetch::Unchanged,
                    Action::Renew => {
                        if let Some(f) = renew(client, source, lease, observer).await {
                            return f;
                        }
                    }
                    Action::NewLease => {
                        tracing::info!(secret = %source.path, lease = %lease.id, "leasing new credentials");
                    }
                }
            }
            let (t, issued) = (Instant::now(), SystemTime::now());
            let read = client.read(&source.path).await;
            timed(observer, "read", t, &read);
            match read {
                Ok(None) => Fetch::Gone { version: None },
                Ok(Some(resp)) => {
                    let lease = (!resp.lease_id.is_empty()).then(|| {
                        Lease::issued(
                            resp.lease_id.clone(),
                            resp.lease_duration,
                            resp.renewable,
                            t,
                            token_gen,
                        )
                    });
                    match resp.data {
                        None => Fetch::Gone { version: None },
                        Some(data) if lease.is_none() && state.data.as_deref() == Some(&data) => {
                            Fetch::Unchanged
                        }
                        Some(data) => Fetch::New {
                            data,
                            version: None,
                            lease,
                            created: issued,
                        },
                    }
                }
                Err(e) => Fetch::Failed(e),
            }
        }
    }
}

/// A KV v2 `created_time` (RFC 3339).
fn created_time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(SystemTime::from)
}

/// Renew `lease`: the fetch to apply, or `None` when the store refused (read anew then).
async fn renew(
    client: &Client,
    source: &Source,
    lease: &Lease,
    observer: &dyn Observer,
) -> Option<Fetch> {
    let t = Instant::now();
    let r = client.lease_renew(&lease.id, lease.ttl.as_secs()).await;
    timed(observer, "lease_renew", t, &r);
    match r {
        Ok(terms) => Some(Fetch::Renewed {
            granted: terms.lease_duration,
            renewable: terms.renewable,
            at: t,
        }),
        Err(e) if classify(&e) == ErrorClass::Transient => Some(Fetch::Failed(e)),
        Err(e) => {
            tracing::info!(secret = %source.path, lease = %lease.id, error = %e, "renewal refused; leasing new credentials");
            None
        }
    }
}

/// What applying a fetch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The data held changed (new, or removed).
    pub changed: bool,
    /// The failure is worth a quick retry with backoff (unreachable, 5xx, sealed).
    pub transient: bool,
    /// A lease replaced by this fetch (to revoke after the grace period).
    pub replaced: Option<Lease>,
}

/// Fold a fetch into the state. Logs problems when they change.
pub fn apply(
    source: &Source,
    state: &mut SourceState,
    fetch: Fetch,
    on_forbidden: OnForbidden,
) -> Applied {
    let label = source.path.as_str();
    let mut applied = Applied::default();
    state.failure = match &fetch {
        Fetch::Failed(e) => Some(classify(e)),
        Fetch::Gone { .. } => Some(ErrorClass::NotFound),
        _ => None,
    };
    let problem = match fetch {
        Fetch::Unchanged => None,
        Fetch::MetadataDenied => None,
        Fetch::New {
            data,
            version,
            lease,
            created,
        } => {
            match &lease {
                Some(l) => {
                    tracing::info!(secret = %label, lease = %l.id, ttl_secs = l.ttl.as_secs(), "leased new credentials")
                }
                None => {
                    tracing::info!(secret = %label, version = version.unwrap_or(0), "read a new version")
                }
            }
            state.data = Some(Arc::new(data));
            state.version = version;
            state.created = Some(created);
            state.removed = false;
            applied.replaced = std::mem::replace(&mut state.lease, lease);
            applied.changed = true;
            None
        }
        Fetch::Renewed {
            granted,
            renewable,
            at,
        } => {
            if let Some(l) = &mut state.lease {
                l.renewed(granted, renewable, at);
                tracing::info!(secret = %label, lease = %l.id, ttl_secs = granted, capped = l.capped, "renewed the lease");
            }
            None
        }
        Fetch::Gone { version } => {
            if version.is_some() {
                state.version = version;
            }
            Some(if state.data.is_some() {
                "not found or deleted; keeping the last files".to_string()
            } else {
                "not found or deleted".to_string()
            })
        }
        Fetch::Failed(e) => {
            // A lease that was due stays due: look again in a second, not in a busy loop.
            if let Some(l) = &mut state.lease {
                let now = Instant::now();
                if l.due <= now {
                    l.due = now + LEASE_RETRY;
                }
            }
            let class = classify(&e);
            match class {
                ErrorClass::Transient => {
                    applied.transient = true;
                    Some(format!("{e}; keeping the last files and retrying"))
                }
                ErrorClass::Forbidden if on_forbidden == OnForbidden::Remove => {
                    if state.data.take().is_some() {
                        applied.changed = true;
                    }
                    applied.replaced = state.lease.take();
                    state.removed = true;
                    Some(format!("{e}; removing its files (on_forbidden = remove)"))
                }
                _ => Some(e.to_string()),
            }
        }
    };
    if problem != state.problem {
        match &problem {
            Some(p) => tracing::warn!(secret = %label, problem = %p, "secret unavailable"),
            None if state.problem.is_some() => {
                tracing::info!(secret = %label, "secret available again")
            }
            None => {}
        }
        state.problem = problem;
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source() -> Source {
        Source {
            names: vec!["db".into()],
            path: "secret/data/app/db".into(),
            kind: SourceKind::KvV2 {
                mount: "secret".into(),
                path: "app/db".into(),
            },
            lazy: false,
        }
    }

    fn data(v: &str) -> Data {
        json!({ "password": v })
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn api(status: u16) -> Fetch {
        Fetch::Failed(ClientError::Api {
            status,
            errors: vec![],
        })
    }

    #[test]
    fn new_data_replaces_and_errors_keep_it() {
        let s = source();
        let mut st = SourceState::default();
        let a = apply(
            &s,
            &mut st,
            Fetch::New {
                data: data("one"),
                version: Some(1),
                lease: None,
                created: SystemTime::UNIX_EPOCH,
            },
            OnForbidden::Keep,
        );
        assert!(a.changed && !a.transient);
        assert_eq!(st.version, Some(1));
        assert_eq!(st.created, Some(SystemTime::UNIX_EPOCH));

        for f in [
            api(503),
            api(500),
            Fetch::Failed(ClientError::Transport {
                url: "u".into(),
                reason: "refused".into(),
            }),
        ] {
            let a = apply(&s, &mut st, f, OnForbidden::Keep);
            assert!(!a.changed && a.transient);
            assert_eq!(st.data.as_deref(), Some(&data("one")));
        }
        assert!(st
            .problem
            .as_deref()
            .unwrap()
            .contains("keeping the last files"));

        let a = apply(
            &s,
            &mut st,
            Fetch::Gone { version: Some(2) },
            OnForbidden::Keep,
        );
        assert!(!a.changed && !a.transient);
        assert_eq!(
            st.data.as_deref(),
            Some(&data("one")),
            "a deleted version keeps the files"
        );
        assert_eq!(st.version, Some(2));

        let a = apply(&s, &mut st, Fetch::Unchanged, OnForbidden::Keep);
        assert_eq!(a, Applied::default());
        assert!(st.problem.is_none());
    }

    #[test]
    fn forbidden_keeps_or_removes_as_configured() {
        let s = source();
        let mut st = SourceState::default();
        apply(
            &s,
            &mut st,
            Fetch::New {
                data: data("one"),
                version: Some(1),
                lease: None,
                created: SystemTime::UNIX_EPOCH,
            },
            OnForbidden::Keep,
        );
        let a = apply(&s, &mut st, api(403), OnForbidden::Keep);
        assert!(!a.changed && !a.transient);
        assert!(st.data.is_some() && !st.removed);

        let a = apply(&s, &mut st, api(403), OnForbidden::Remove);
        assert!(a.changed);
        assert!(st.data.is_none() && st.removed);
        let a = apply(&s, &mut st, api(403), OnForbidden::Remove);
        assert!(!a.changed, "already removed");

        let a = apply(
            &s,
            &mut st,
            Fetch::New {
                data: data("two"),
                version: Some(1),
                lease: None,
                created: SystemTime::UNIX_EPOCH,
            },
            OnForbidden::Remove,
        );
        assert!(a.changed && !st.removed);
    }

    #[test]
    fn kv_created_time_is_read_as_rfc3339() {
        let t = created_time("2026-01-02T03:04:05.5Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(secs.as_millis(), 1_767_323_045_500);
        assert_eq!(created_time("yesterday"), None);
    }
}
