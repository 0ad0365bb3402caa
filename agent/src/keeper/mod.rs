//! The keeper: reads secrets, follows new versions, retries with backoff, keeps the last good
//! values.
//!
//! [`Keeper::cycle`] is one pass: have the token source re-read its file, look at every source (a cheap
//! metadata check for KV v2), and when anything changed render every file and hand the whole
//! set to the sink (the atomic writer, or the FUSE tree; either does nothing when the bytes are
//! the same). A file that fails to render keeps its last good content; a source that fails
//! keeps its last good data. The caller ([`crate::run`]) decides when the next cycle runs: the
//! refresh interval, or a backoff delay after transient failures.

pub mod handoff;
pub mod lease;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use hush_api::Client;
use zeroize::Zeroizing;

use crate::auth::{Recovery, TokenSource};
use crate::config::{Config, FileSpec};
use crate::render::Renderer;
use crate::retry::{classify, ErrorClass};
use crate::sink::{FileProjection, Sink, WriteError, WriteOutcome};
use crate::telemetry::Observer;
use hush_api::wire::agents::{AgentState, FileState, SourceState as ReportedSource};
use lease::Retiring;
use source::{Fetch, SourceState};

/// Secrets read from the store at once.
const FETCH_CONCURRENCY: usize = 16;

/// What one cycle did.
#[derive(Debug, Default)]
pub struct CycleReport {
    /// Some failure is worth a retry with backoff.
    pub transient: bool,
    /// Every file has content and the set is on disk.
    pub complete: bool,
    /// The set on disk changed (a new generation).
    pub written: Option<WriteOutcome>,
    /// Problems that keep the set from being complete, naming the secret or file.
    pub problems: Vec<String>,
}

/// Holds the state between cycles.
pub struct Keeper {
    config: Arc<Config>,
    base: Client,
    tokens: Arc<TokenSource>,
    renderer: Renderer,
    writer: Arc<dyn Sink>,
    observer: Arc<dyn Observer>,
    sources: Vec<SourceState>,
    /// The last good bytes of each file (indexed like `config.files`).
    rendered: Vec<Option<Zeroizing<Vec<u8>>>>,
    /// The data changed since the last render (or nothing was rendered yet).
    dirty: bool,
    /// The rendered set is not on disk yet (a change, or a failed write).
    write_owed: bool,
    /// A complete set has been written once.
    written_once: bool,
    /// Replaced leases waiting for their grace period, then revocation.
    retiring: Vec<Retiring>,
    /// Per source: read it. False for a lazy source until a file that reads it is opened.
    wanted: Vec<bool>,
    /// Per source: the end of its lease last told to the observer.
    lease_shown: Vec<Option<Instant>>,
    /// A reloaded config's set is not complete yet: the last set stays on disk until it is.
    reloading: bool,
    /// The generation of the set last written (0 before the first).
    generation: u64,
    /// API path -> when it was last looked at without a failure (for state reports).
    refreshed: BTreeMap<String, SystemTime>,
    /// How long the last render of every file took.
    render_time: Option<Duration>,
    /// The last render's failures (names and reasons, never values).
    render_errors: Vec<String>,
}

/// Where a file that reads lazy secrets stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LazyState {
    /// Its secrets are read (or it reads none): it has content, or will at the next write.
    Ready,
    /// Wanted, not read yet (or failing in a way worth retrying).
    Waiting,
    /// A secret it reads failed for good (refused, missing, or a bad request).
    Failed(ErrorClass),
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("sources", &self.sources)
            .field("written_once", &self.written_once)
            .finish_non_exhaustive()
    }
}

impl Keeper {
    pub fn new(
        config: Arc<Config>,
        base: Client,
        tokens: Arc<TokenSource>,
        renderer: Renderer,
        writer: Arc<dyn Sink>,
        observer: Arc<dyn Observer>,
    ) -> Keeper {
        let sources = config
            .sources
            .iter()
            .map(|_| SourceState::default())
            .collect();
        let rendered = config.files.iter().map(|_| None).collect();
        let wanted = config.sources.iter().map(|s| !s.lazy).collect();
        let lease_shown = config.sources.iter().map(|_| None).collect();
        Keeper {
            wanted,
            lease_shown,
            config,
            base,
            tokens,
            renderer,
            writer,
            observer,
            sources,
            rendered,
            dirty: true,
            write_owed: true,
            written_once: false,
            retiring: Vec::new(),
            reloading: false,
            generation: 0,
            refreshed: BTreeMap::new(),
            render_time: None,
            render_errors: Vec::new(),
        }
    }

    /// Take a reloaded config (`SIGHUP`). A source the new config still reads (same path)
    /// keeps its state: data, version, lease. New sources start empty; the leases of sources
    /// no longer read are retired (revoked after the grace period, once the new set is on
    /// disk). Every file is rendered again, and the set on disk is replaced only by a complete
    /// new set: until then the files stay as they are.
    pub fn reconfigure(&mut self, config: Arc<Config>, renderer: Renderer) {
        type Kept = (SourceState, bool, Option<Instant>, String);
        let mut old: BTreeMap<String, Kept> = BTreeMap::new();
        let states = std::mem::take(&mut self.sources);
        for (i, (src, state)) in self.config.sources.iter().zip(states).enumerate() {
            let name = src.names.first().unwrap_or(&src.path).clone();
            old.insert(
                src.path.clone(),
                (state, self.wanted[i], self.lease_shown[i], name),
            );
        }
        let (mut sources, mut wanted, mut lease_shown) = (Vec::new(), Vec::new(), Vec::new());
        for src in &config.sources {
            let (state, was_wanted, shown, _) = old.remove(&src.path).unwrap_or_default();
            sources.push(state);
            wanted.push(was_wanted || !src.lazy);
            lease_shown.push(shown);
        }
        let dropped: Vec<_> = old.into_iter().collect();
        self.config = config;
        self.renderer = renderer;
        self.sources = sources;
        self.wanted = wanted;
        self.lease_shown = lease_shown;
        for (path, (state, _, shown, name)) in dropped {
            if let Some(l) = state.lease {
                tracing::info!(secret = %path, lease = %l.id, "no longer read: retiring its lease");
                self.retire(l);
            }
            if shown.is_some() {
                self.observer.lease(&name, None);
            }
        }
        self.rendered = self.config.files.iter().map(|_| None).collect();
        self.dirty = true;
        self.write_owed = true;
        self.reloading = true;
    }

    /// An event said these sources changed: their next look reads them at once (one request,
    /// not a metadata check and then a read).
    pub fn pushed(&mut self, sources: &[usize]) {
        for &i in sources {
            if let Some(s) = self.sources.get_mut(i) {
                s.pushed = true;
            }
        }
    }

    /// A complete set has been on disk since.
    pub fn ready(&self) -> bool {
        self.written_once
    }

    /// The token source (the caller revokes with it on exit).
    pub fn tokens(&self) -> &Arc<TokenSource> {
        &self.tokens
    }

    /// One pass over every source (with `only`, over those sources alone: the lazy ones a first
    /// open just asked for); renders and writes when something changed.
    pub async fn cycle(&mut self, only: Option<&[usize]>) -> CycleReport {
        let mut report = CycleReport::default();
        self.tokens.refresh();
        let mut client = self.base.with_token(Some(self.tokens.token()));
        let on_forbidden = self.config.on_forbidden;
        let mut relogin_tried = false;
        // Read every source, a few at a time (a start with 1,000 secrets spent 3/4 of its time
        // waiting on one request after another); results come back in order.
        let observer = self.observer.as_ref();
        let token_gen = self.tokens.generation();
        // Lazy sources nobody opened yet are left alone.
        let active: Vec<usize> = (0..self.sources.len())
            .filter(|i| self.wanted[*i] && only.is_none_or(|o| o.contains(i)))
            .collect();
        let sources = &self.sources;
        let config = self.config.clone();
        let fetches: Vec<Fetch> = stream::iter(&active)
            .map(|&i| {
                source::fetch(
                    &client,
                    &config.sources[i],
                    &sources[i],
                    observer,
                    token_gen,
                )
            })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        let mut replaced = Vec::new();
        for (&i, mut fetch) in active.iter().zip(fetches) {
            let src = &config.sources[i];
            let state = &mut self.sources[i];
            if let Fetch::MetadataDenied = fetch {
                tracing::info!(secret = %src.path, "the token may not read KV metadata; comparing full reads instead");
                state.metadata_denied = true;
                fetch = source::fetch(&client, src, state, self.observer.as_ref(), token_gen).await;
            }
            // A 403 may come from a token rotated under us, or one no longer valid: the token
            // source looks into it, and with another token the source is read once more.
            if matches!(&fetch, Fetch::Failed(e) if classify(e) == ErrorClass::Forbidden) {
                match self
                    .tokens
                    .after_forbidden(&self.base, &client, &mut relogin_tried)
                    .await
                {
                    Recovery::NewToken => {
                        client = self.base.with_token(Some(self.tokens.token()));
                        fetch =
                            source::fetch(&client, src, state, self.observer.as_ref(), token_gen)
                                .await;
                    }
                    Recovery::Stands => {}
                    Recovery::LoginFailed => report.transient = true,
                }
            }
            state.pushed = false;
            let applied = source::apply(src, state, fetch, on_forbidden);
            if state.failure.is_none() {
                self.refreshed.insert(src.path.clone(), SystemTime::now());
            }
            self.dirty |= applied.changed;
            report.transient |= applied.transient;
            replaced.extend(applied.replaced);
        }
        for old in replaced {
            self.retire(old);
        }
        if self.dirty {
            let started = Instant::now();
            self.render_all();
            self.render_time = Some(started.elapsed());
            self.dirty = false;
            self.write_owed = true;
        }
        let complete = self.all_rendered();
        // Nothing is written before every file has content; after that, always the whole set
        // (after a reload, again only a complete one).
        if self.write_owed && (complete || (self.written_once && !self.reloading)) {
            match self.write().await {
                Ok(outcome) => {
                    self.generation = outcome.generation;
                    self.write_owed = false;
                    self.written_once |= complete;
                    self.reloading &= !complete;
                    if outcome.changed {
                        tracing::info!(
                            generation = outcome.generation,
                            files = ?outcome.changed_files,
                            "files updated"
                        );
                        report.written = Some(outcome);
                    }
                }
                Err(e) => {
                    self.observer.write_error();
                    tracing::error!(error = %e, "could not write the files; keeping the last set and retrying");
                    report.transient = true;
                    report
                        .problems
                        .push(format!("could not write the files: {e}"));
                }
            }
        }
        // Old credentials go only once the new ones are on disk.
        if !self.write_owed {
            self.revoke_retired(&client, false).await;
        }
        for (i, (src, state)) in self.config.sources.iter().zip(&self.sources).enumerate() {
            if !self.wanted[i] {
                continue;
            }
            if let Some(p) = &state.problem {
                if state.data.is_none() || !self.written_once {
                    report.problems.push(format!("secret {}: {p}", src.label()));
                }
            }
        }
        report.complete = self.written_once && self.all_rendered();
        self.show_leases();
        report
    }

    /// What the agent holds now, for a state report (`sys/agents/report`): per file its paths
    /// and generation, per source its version, lease and last refresh, and the standing
    /// errors. Names, numbers and lease ids only. RSS, CPU and uptime are the caller's.
    pub fn agent_state(&self) -> AgentState {
        let now = (Instant::now(), SystemTime::now());
        let files = (0..self.config.files.len())
            .filter(|i| self.rendered[*i].is_some())
            .map(|i| FileState {
                file: self.config.files[i].name.clone(),
                paths: self.config.file_paths(i),
                generation: self.generation,
            })
            .collect();
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        for (i, (src, state)) in self.config.sources.iter().zip(&self.sources).enumerate() {
            if !self.wanted[i] {
                continue;
            }
            if let Some(p) = &state.problem {
                errors.push(format!("secret {}: {p}", src.label()));
            }
            sources.push(ReportedSource {
                path: src.path.clone(),
                version: state.version,
                lease_id: state.lease.as_ref().map(|l| l.id.clone()),
                lease_ttl_left: state
                    .lease
                    .as_ref()
                    .filter(|l| !l.ttl.is_zero())
                    .map(|l| l.expires.saturating_duration_since(now.0).as_secs()),
                last_refresh: self.refreshed.get(&src.path).map(|t| rfc3339(*t)),
                error: state.problem.clone(),
            });
        }
        errors.extend(self.render_errors.iter().cloned());
        errors.dedup();
        let wanted: Vec<usize> = (0..self.sources.len())
            .filter(|i| self.wanted[*i])
            .collect();
        // Every source is as fresh as the stalest one.
        let last_refresh = wanted
            .iter()
            .map(|i| self.refreshed.get(&self.config.sources[*i].path).copied())
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min())
            .filter(|_| !wanted.is_empty())
            .map(rfc3339);
        AgentState {
            files,
            sources,
            last_refresh,
            errors,
            render_latency_ms: self.render_time.map(|d| d.as_secs_f64() * 1000.0),
            ..AgentState::default()
        }
    }

    /// Tell the observer where each lease stands, when that changed (`None`: no lease held).
    /// A lease without a TTL never ends and is not shown.
    fn show_leases(&mut self) {
        let now = (Instant::now(), SystemTime::now());
        for (i, (src, state)) in self.config.sources.iter().zip(&self.sources).enumerate() {
            let expires = state
                .lease
                .as_ref()
                .filter(|l| !l.ttl.is_zero())
                .map(|l| l.expires);
            if self.lease_shown[i] != expires {
                self.lease_shown[i] = expires;
                let name = src.names.first().unwrap_or(&src.path);
                let at = expires.map(|e| now.1 + e.saturating_duration_since(now.0));
                self.observer.lease(name, at);
            }
        }
    }

    /// Every file has content, lazy files aside (they come at their first open, and do not
    /// hold back the others or readiness).
    fn all_rendered(&self) -> bool {
        (0..self.rendered.len())
            .all(|i| self.rendered[i].is_some() || !self.config.lazy_sources(i).is_empty())
    }

    /// File `file` reads a lazy secret that is not wanted yet (it has no content then).
    fn unopened(&self, file: usize) -> bool {
        self.config
            .lazy_sources(file)
            .iter()
            .any(|s| !self.wanted[*s])
    }

    /// File `file` was opened: read the lazy secrets it needs from now on. Returns them (for
    /// a cycle over just those, at once).
    pub fn want_file(&mut self, file: usize) -> Vec<usize> {
        let sources = self.config.lazy_sources(file);
        for &s in &sources {
            if !self.wanted[s] {
                tracing::info!(secret = %self.config.sources[s].label(), "first open: leasing the lazy secret");
                self.wanted[s] = true;
            }
        }
        sources
    }

    /// Where file `file` stands with its lazy secrets.
    pub fn lazy_state(&self, file: usize) -> LazyState {
        if self.rendered.get(file).is_some_and(Option::is_some) {
            return LazyState::Ready;
        }
        let mut waiting = false;
        for s in self.config.lazy_sources(file) {
            let src = &self.sources[s];
            match src.failure {
                _ if !self.wanted[s] => waiting = true,
                Some(class) if src.data.is_none() && class != ErrorClass::Transient => {
                    return LazyState::Failed(class)
                }
                _ if src.data.is_none() => waiting = true,
                _ => {}
            }
        }
        if waiting {
            LazyState::Waiting
        } else {
            // Its secrets are here but it did not render (a missing field, a template error).
            LazyState::Failed(ErrorClass::Other)
        }
    }

    /// Keep a replaced lease until its grace period ends (revoked then by [`Self::cycle`]).
    fn retire(&mut self, old: lease::Lease) {
        let now = Instant::now();
        match old.revoke_at(now, self.config.lease_grace) {
            Some(revoke_at) => self.retiring.push(Retiring {
                id: old.id,
                revoke_at,
                expires: (!old.ttl.is_zero()).then_some(old.expires),
            }),
            None => {
                tracing::debug!(lease = %old.id, "replaced lease expires within the grace period")
            }
        }
    }

    /// Revoke the replaced leases whose grace ended (all of them with `all`). A failure is
    /// retried at the next cycle, until the lease would have expired anyway.
    async fn revoke_retired(&mut self, client: &Client, all: bool) {
        let now = Instant::now();
        let mut keep = Vec::new();
        for r in std::mem::take(&mut self.retiring) {
            if !all && r.revoke_at > now {
                keep.push(r);
                continue;
            }
            let t = Instant::now();
            let res = client.lease_revoke(&r.id).await;
            let outcome = match &res {
                Ok(()) => "ok",
                Err(e) => classify(e).as_str(),
            };
            self.observer.store("lease_revoke", outcome, t.elapsed());
            match res {
                Ok(()) => tracing::info!(lease = %r.id, "revoked the replaced lease"),
                Err(e) if r.expires.is_some_and(|x| x <= now) || all => {
                    tracing::warn!(lease = %r.id, error = %e, "could not revoke the lease; it runs out by itself")
                }
                Err(e) => {
                    tracing::warn!(lease = %r.id, error = %e, "could not revoke the lease; retrying");
                    keep.push(r);
                }
            }
        }
        self.retiring = keep;
    }

    /// The next time a lease needs the keeper (renewal, new credentials, a revocation), if
    /// sooner than any refresh.
    pub fn next_due(&self) -> Option<Instant> {
        let (now, token_gen) = (Instant::now(), self.tokens.generation());
        let leases = self.sources.iter().filter_map(|s| {
            s.lease
                .as_ref()
                .and_then(|l| match l.action(now, token_gen) {
                    lease::Action::Wait(at) => at,
                    _ => Some(now),
                })
        });
        leases
            .chain(self.retiring.iter().map(|r| r.revoke_at))
            .min()
    }

    /// Revoke every lease held (at exit).
    pub async fn revoke_all_leases(&mut self) {
        let client = self.base.with_token(Some(self.tokens.token()));
        for s in &mut self.sources {
            if let Some(l) = s.lease.take() {
                self.retiring.push(Retiring {
                    id: l.id,
                    revoke_at: Instant::now(),
                    expires: None,
                });
            }
        }
        self.revoke_retired(&client, true).await;
    }

    /// The leases held, for the next agent to adopt (left by `--once`, and kept current by
    /// the long-running agent for its successor after a crash).
    pub async fn handoff_state(&self) -> handoff::State {
        let client = self.base.with_token(Some(self.tokens.token()));
        let token_expires_unix = match client.token_lookup_self().await {
            Ok(t) if t.ttl > 0 => Some(handoff::unix_now() + t.ttl),
            _ => None,
        };
        let now = Instant::now();
        let leases = self
            .config
            .sources
            .iter()
            .zip(&self.sources)
            .filter_map(|(src, st)| {
                let (l, data) = (st.lease.as_ref()?, st.data.as_ref()?);
                Some(handoff::Held {
                    path: src.path.clone(),
                    lease_id: l.id.clone(),
                    ttl: l.ttl.as_secs(),
                    renewable: l.renewable,
                    expires_unix: handoff::unix_now()
                        + l.expires.saturating_duration_since(now).as_secs(),
                    issued_unix: st
                        .created
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs()),
                    data: (**data).clone(),
                })
            })
            .collect();
        handoff::State {
            version: 1,
            token_expires_unix,
            leases,
        }
    }

    /// Take over the leases a once-run handed over, for the sources that have the same path
    /// and whose lease the store still knows. Returns how many were adopted.
    pub async fn adopt(&mut self, state: handoff::State) -> usize {
        let client = self.base.with_token(Some(self.tokens.token()));
        let token_gen = self.tokens.generation();
        let token_left = state.token_expires_unix.map(handoff::remaining);
        let mut adopted = 0;
        for held in state.leases {
            let Some(i) = self.config.sources.iter().position(|s| s.path == held.path) else {
                continue;
            };
            match client.lease_lookup(&held.lease_id).await {
                Ok((ttl, renewable)) if ttl > 0 => {
                    let now = Instant::now();
                    let mut l =
                        lease::Lease::issued(held.lease_id, held.ttl, renewable, now, token_gen);
                    let mut left = Duration::from_secs(ttl);
                    let mut capped = false;
                    if let Some(t) = token_left.filter(|t| *t < left) {
                        // The lease dies with the once-run's token: lease anew before then.
                        left = t;
                        capped = true;
                    }
                    l.adopted(now, left, capped);
                    tracing::info!(secret = %held.path, lease = %l.id, ttl_secs = left.as_secs(), "adopted the lease of the --once run");
                    self.sources[i].data = Some(Arc::new(held.data));
                    // Its data is as old as the once-run's lease.
                    self.sources[i].created = Some(match held.issued_unix {
                        Some(s) => UNIX_EPOCH + Duration::from_secs(s),
                        None => SystemTime::now(),
                    });
                    self.sources[i].lease = Some(l);
                    self.dirty = true;
                    adopted += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::info!(secret = %held.path, error = %e, "the handed-over lease is gone; leasing anew")
                }
            }
        }
        adopted
    }

    /// The ids of the leases whose data the files hold (what [`Keeper::handoff_state`] lists).
    pub fn lease_ids(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| s.data.is_some())
            .filter_map(|s| s.lease.as_ref().map(|l| l.id.clone()))
            .collect()
    }

    /// Whether any lease is held.
    pub fn holds_leases(&self) -> bool {
        self.sources.iter().any(|s| s.lease.is_some()) || !self.retiring.is_empty()
    }

    /// Render every file; a failure keeps the file's last good bytes, unless its secret was
    /// removed on a 403.
    fn render_all(&mut self) {
        let data: Vec<_> = self.sources.iter().map(|s| s.data.clone()).collect();
        let any_removed = self.sources.iter().any(|s| s.removed);
        self.render_errors.clear();
        for (i, spec) in self.config.files.iter().enumerate() {
            if self.unopened(i) {
                continue;
            }
            match self.renderer.render(spec, &data) {
                Ok(bytes) => {
                    let version = spec
                        .format
                        .source()
                        .and_then(|s| self.sources[s].version)
                        .unwrap_or(0);
                    // A template's data is as young as the youngest secret in it.
                    let created = match spec.format.source() {
                        Some(s) => self.sources[s].created,
                        None => self
                            .sources
                            .iter()
                            .filter(|s| s.data.is_some())
                            .filter_map(|s| s.created)
                            .max(),
                    };
                    let created = created.unwrap_or_else(SystemTime::now);
                    self.observer.render_ok(&spec.name, version, created);
                    self.rendered[i] = Some(bytes);
                }
                Err(e) => {
                    let removed = match spec.format.source() {
                        Some(s) => self.sources[s].removed,
                        None => any_removed,
                    };
                    if removed {
                        self.rendered[i] = None;
                    } else {
                        self.render_errors.push(e.to_string());
                        self.observer.render_error(&spec.name);
                        if self.rendered[i].is_some() {
                            tracing::error!(error = %e, "could not render; keeping the last content");
                        } else {
                            tracing::warn!(error = %e, "could not render yet");
                        }
                    }
                }
            }
        }
    }

    /// A rendered file's content as text (for the supervised child's environment).
    pub fn file_text(&self, name: &str) -> Option<Zeroizing<String>> {
        let i = self.config.files.iter().position(|f| f.name == name)?;
        let bytes = self.rendered[i].as_ref()?;
        let text = std::str::from_utf8(bytes).ok()?;
        Some(Zeroizing::new(text.to_string()))
    }

    /// Problems that keep a file from rendering (for `--once`).
    pub fn render_problems(&self) -> Vec<String> {
        let data: Vec<_> = self.sources.iter().map(|s| s.data.clone()).collect();
        self.config
            .files
            .iter()
            .filter_map(|spec| self.renderer.render(spec, &data).err())
            .map(|e| e.to_string())
            .collect()
    }

    async fn write(&self) -> Result<WriteOutcome, WriteError> {
        let payload = payload(&self.config.files, &self.rendered);
        let writer = self.writer.clone();
        match tokio::task::spawn_blocking(move || writer.write(&payload)).await {
            Ok(r) => r,
            Err(e) => Err(WriteError::Io {
                op: "write",
                path: self.writer.target().to_path_buf(),
                err: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

/// The set of files to write: every file that has content.
fn payload(
    files: &[FileSpec],
    rendered: &[Option<Zeroizing<Vec<u8>>>],
) -> BTreeMap<String, FileProjection> {
    files
        .iter()
        .zip(rendered)
        .filter_map(|(spec, bytes)| {
            let bytes = bytes.as_ref()?;
            Some((
                spec.name.clone(),
                FileProjection {
                    data: bytes.clone(),
                    mode: spec.mode,
                    uid: spec.uid,
                    gid: spec.gid,
                },
            ))
        })
        .collect()
}

/// RFC 3339 in UTC, to the millisecond (what reports carry).
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
