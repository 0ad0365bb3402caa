//! One secret source: how it is fetched (cheap metadata check first for KV v2) and how a
//! fetch changes what the agent holds. Errors never throw away the last good data, except a
//! 403 when the config says `remove`.

use std::sync::Arc;
use std::time::Instant;

use hush_api::wire::Data;
use hush_api::{Client, ClientError};

use super::{classify, ErrorClass, Observer};
use crate::config::{OnForbidden, Source, SourceKind};

/// What the agent holds for one source.
#[derive(Default)]
pub struct SourceState {
    /// The last good data; `None` before the first read (or after a 403 with `remove`).
    pub data: Option<Arc<Data>>,
    /// KV v2 version of `data` (or of the deleted version last seen).
    pub version: Option<u64>,
    /// The token may not read `MOUNT/metadata/...`: compare versions of full reads instead.
    pub metadata_denied: bool,
    /// The files of this source were removed after a 403.
    pub removed: bool,
    /// The last problem, for logging only when it changes, and for `--once`'s message.
    pub problem: Option<String>,
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceState")
            .field("has_data", &self.data.is_some())
            .field("version", &self.version)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

/// The result of one look at a source.
pub enum Fetch {
    /// Same version (or same data) as held.
    Unchanged,
    /// New data.
    New {
        data: Data,
        version: Option<u64>,
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

/// Look at `source` once.
pub async fn fetch(
    client: &Client,
    source: &Source,
    state: &SourceState,
    observer: &dyn Observer,
) -> Fetch {
    match &source.kind {
        SourceKind::KvV2 { mount, path } => {
            if state.data.is_some() && state.version.is_some() && !state.metadata_denied {
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
                    match s.data {
                        None => Fetch::Gone { version },
                        Some(data) => {
                            let same = version == state.version
                                && state.data.as_deref().is_some_and(|d| *d == data);
                            if same {
                                Fetch::Unchanged
                            } else {
                                Fetch::New { data, version }
                            }
                        }
                    }
                }
                Err(e) => Fetch::Failed(e),
            }
        }
        SourceKind::Generic => {
            let t = Instant::now();
            let read = client.read(&source.path).await;
            timed(observer, "read", t, &read);
            match read {
                Ok(None) => Fetch::Gone { version: None },
                Ok(Some(resp)) => match resp.data {
                    None => Fetch::Gone { version: None },
                    Some(data) if state.data.as_deref() == Some(&data) => Fetch::Unchanged,
                    Some(data) => Fetch::New {
                        data,
                        version: None,
                    },
                },
                Err(e) => Fetch::Failed(e),
            }
        }
    }
}

/// What applying a fetch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The data held changed (new, or removed).
    pub changed: bool,
    /// The failure is worth a quick retry with backoff (unreachable, 5xx, sealed).
    pub transient: bool,
}

/// Fold a fetch into the state. Logs problems when they change.
pub fn apply(
    source: &Source,
    state: &mut SourceState,
    fetch: Fetch,
    on_forbidden: OnForbidden,
) -> Applied {
    let label = source.label();
    let mut applied = Applied::default();
    let problem = match fetch {
        Fetch::Unchanged => None,
        Fetch::MetadataDenied => None,
        Fetch::New { data, version } => {
            tracing::info!(secret = %label, version = ?version, "read a new version");
            state.data = Some(Arc::new(data));
            state.version = version;
            state.removed = false;
            applied.changed = true;
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
            },
            OnForbidden::Keep,
        );
        assert!(a.changed && !a.transient);
        assert_eq!(st.version, Some(1));

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
            },
            OnForbidden::Remove,
        );
        assert!(a.changed && !st.removed);
    }
}
