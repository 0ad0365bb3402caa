//! Lazy leasing: a file that reads a lazy secret is listed (empty) from the start, and its
//! first open (in fast mode, where opens never reach the agent, its first lookup) has the
//! agent lease the secret. The request is answered once the content is in the tree, or failed
//! when the secret is refused, missing, or not here within [`OPEN_TIMEOUT`].
//!
//! The fuser thread never waits: it keeps the reply here, asks the agent's loop once per file
//! (a channel the loop selects on), and goes on serving. The loop answers from its own thread
//! after each tree swap ([`Shared::answer_ready`]) and fails what cannot be served.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use fuser::{Errno, Generation, ReplyEntry, ReplyOpen};
use tokio::sync::mpsc::UnboundedSender;

use super::access_log::{Event, Outcome};
use super::fs::{Shared, Who};
use super::tree::Tree;
use crate::retry::ErrorClass;

/// How long an open waits for its lazy secret before it fails with `EIO`.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reasons in the access log for opens of a lazy file that failed.
pub const DENIED_REFUSED: &str = "lazy secret refused by the store";
pub const DENIED_MISSING: &str = "lazy secret not found";
pub const DENIED_FAILED: &str = "lazy secret could not be read or rendered";
pub const DENIED_TIMEOUT: &str = "lazy secret not leased within 10 s";

/// The kernel request waiting for a file's first content.
pub enum Waiter {
    Open(ReplyOpen),
    Lookup(ReplyEntry),
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waiter::Open(_) => "Waiter::Open",
            Waiter::Lookup(_) => "Waiter::Lookup",
        })
    }
}

impl Waiter {
    fn event(&self) -> Event {
        match self {
            Waiter::Open(_) => Event::Open,
            Waiter::Lookup(_) => Event::Lookup,
        }
    }

    fn fail(self, errno: Errno) {
        match self {
            Waiter::Open(r) => r.error(errno),
            Waiter::Lookup(r) => r.error(errno),
        }
    }
}

struct Pending {
    ino: u64,
    waiter: Waiter,
    who: Who,
    deadline: Instant,
}

/// The requests waiting, and the way to the agent's loop.
pub struct Lazy {
    pending: Vec<Pending>,
    /// Inodes the loop was asked for and that have waiters still.
    asked: BTreeSet<u64>,
    /// To the agent's loop: file indexes to lease.
    requests: UnboundedSender<usize>,
}

impl fmt::Debug for Lazy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy")
            .field("pending", &self.pending.len())
            .field("asked", &self.asked)
            .finish()
    }
}

impl Lazy {
    pub fn new(requests: UnboundedSender<usize>) -> Lazy {
        Lazy {
            pending: Vec::new(),
            asked: BTreeSet::new(),
            requests,
        }
    }

    /// Takes the waiters `pick` selects; the files left without waiters may be asked again.
    fn take(&mut self, mut pick: impl FnMut(&Pending) -> bool) -> Vec<Pending> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| pick(p));
        self.pending = kept;
        let still: BTreeSet<u64> = self.pending.iter().map(|p| p.ino).collect();
        self.asked.retain(|ino| still.contains(ino));
        taken
    }
}

impl Shared {
    /// A request for `ino`, a placeholder: ask the loop for its secret (once) and keep the
    /// reply until the content is here.
    pub fn wait_for_content(&self, ino: u64, waiter: Waiter, who: Who) {
        let mut lazy = self.lazy();
        // Under the lock: a swap that lands now answers this waiter in `answer_ready`.
        let tree = self.tree.load();
        match tree.node(ino) {
            None => return waiter.fail(Errno::ENOENT),
            Some(node) if !node.pending => {
                drop(lazy);
                return self.answer(ino, waiter, who, &tree);
            }
            Some(_) => {}
        }
        if lazy.asked.insert(ino) {
            if let Some(file) = Tree::index(ino) {
                // The loop is gone only at shutdown; the waiter then fails at its deadline.
                let _ = lazy.requests.send(file);
            }
        }
        lazy.pending.push(Pending {
            ino,
            waiter,
            who,
            deadline: Instant::now() + OPEN_TIMEOUT,
        });
    }

    /// After a tree swap: answers every waiter whose file now has content.
    pub fn answer_ready(&self) {
        let tree = self.tree.load_full();
        let ready = self
            .lazy()
            .take(|p| tree.node(p.ino).is_some_and(|n| !n.pending));
        for p in ready {
            self.answer(p.ino, p.waiter, p.who, &tree);
        }
    }

    fn answer(&self, ino: u64, waiter: Waiter, who: Who, tree: &Tree) {
        let Some(node) = tree.node(ino) else {
            return waiter.fail(Errno::ENOENT);
        };
        self.log(who, waiter.event(), node, tree.generation, Outcome::Allowed);
        match waiter {
            Waiter::Open(reply) => {
                let (fh, flags) = self.open_handle(ino, node);
                reply.opened(fh, flags);
            }
            Waiter::Lookup(reply) => {
                let (attr, ttl) = self.node_attr(ino, node);
                reply.entry(&ttl, &attr, Generation(0));
            }
        }
    }

    /// The files (indexes) that requests wait on.
    pub fn waited_files(&self) -> Vec<usize> {
        let lazy = self.lazy();
        lazy.asked
            .iter()
            .filter_map(|ino| Tree::index(*ino))
            .collect()
    }

    /// Fails the waiters of file `file`: its secret failed for good (`class`).
    pub fn fail_waiting(&self, file: usize, class: ErrorClass) {
        let ino = Tree::ino(file);
        let (errno, reason) = match class {
            ErrorClass::Forbidden => (Errno::EACCES, DENIED_REFUSED),
            ErrorClass::NotFound => (Errno::ENOENT, DENIED_MISSING),
            ErrorClass::Transient | ErrorClass::Other => (Errno::EIO, DENIED_FAILED),
        };
        let failed = self.lazy().take(|p| p.ino == ino);
        self.fail(failed, errno, reason);
    }

    /// Fails the waiters whose deadline passed, with `EIO`.
    pub fn expire_waiting(&self, now: Instant) {
        let late = self.lazy().take(|p| p.deadline <= now);
        self.fail(late, Errno::EIO, DENIED_TIMEOUT);
    }

    /// The soonest deadline of a waiter.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lazy().pending.iter().map(|p| p.deadline).min()
    }

    fn fail(&self, pending: Vec<Pending>, errno: Errno, reason: &'static str) {
        if pending.is_empty() {
            return;
        }
        let tree = self.tree.load();
        for p in pending {
            if let Some(node) = tree.node(p.ino) {
                tracing::warn!(file = %node.name, pid = p.who.pid, reason, "a request for a lazy file failed");
                let event = p.waiter.event();
                self.log(p.who, event, node, tree.generation, Outcome::Denied(reason));
            }
            p.waiter.fail(errno);
        }
    }
}
