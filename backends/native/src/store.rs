//! [`NativeStore`]: one tree shared by many sessions in this process, with its watches, session
//! table, zxid counter and reaper.

use crate::session::NativeSession;
use crate::tree::{Change, DataTree, Txn, TxnBody, TxnResult};
use crate::watches::WatchTable;
use menagerie_core::{Error, Result, SessionEvents, SessionId, SessionState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The epoch of zxids issued by an embedded store.
pub const EPOCH: u32 = 1;

/// Default session timeout of embedded sessions.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the reaper looks at containers, TTL nodes and silent sessions.
const REAP_INTERVAL: Duration = Duration::from_millis(50);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A handle's view of its session, shared with the store so the store can expire and renew it.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// The handle's current session id.
    pub(crate) current: Arc<AtomicI64>,
    /// The handle's state stream.
    pub(crate) events: SessionEvents,
    /// Session timeout.
    pub(crate) timeout: Duration,
    /// Since when the handle is cut off (simulated partition), if it is.
    pub(crate) cut_since: Option<Instant>,
    /// The session expired while cut off: a new one is opened on reconnect.
    pub(crate) expired_while_cut: bool,
}

pub(crate) struct Inner {
    pub(crate) tree: DataTree,
    pub(crate) watches: WatchTable,
    /// Handles by their current session id.
    pub(crate) attached: HashMap<SessionId, Attachment>,
    next_session: i64,
    reaper_started: bool,
}

impl Inner {
    fn next_zxid(&self) -> i64 {
        let last = self.tree.last_zxid();
        let epoch_base = (EPOCH as i64) << 32;
        if last < epoch_base {
            epoch_base + 1
        } else {
            last + 1
        }
    }

    /// Assigns a zxid and time, applies the transaction and fires the watches it triggers.
    pub(crate) fn commit(&mut self, body: TxnBody) -> (i64, TxnResult) {
        let txn = Txn {
            zxid: self.next_zxid(),
            time: now_ms(),
            body,
        };
        let mut changes: Vec<Change> = Vec::new();
        let result = self.tree.apply(&txn, &mut changes);
        if !changes.is_empty() {
            self.watches.fire(&changes);
        }
        (txn.zxid, result)
    }

    fn new_session_id(&mut self) -> SessionId {
        let id = self.next_session;
        self.next_session += 1;
        id
    }

    /// Opens a session in the tree for a handle.
    pub(crate) fn open(&mut self, timeout: Duration, events: SessionEvents) -> Arc<AtomicI64> {
        let id = self.new_session_id();
        self.commit(TxnBody::CreateSession {
            session: id,
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
        });
        let current = Arc::new(AtomicI64::new(id));
        self.attached.insert(
            id,
            Attachment {
                current: current.clone(),
                events,
                timeout,
                cut_since: None,
                expired_while_cut: false,
            },
        );
        current
    }

    /// Ends `session` in the tree (ephemerals deleted, watches failed with `error`).
    fn end(&mut self, session: SessionId, error: &Error) {
        if self.tree.has_session(session) {
            self.commit(TxnBody::CloseSession { session });
        }
        self.watches.end_session(session, error);
    }

    /// Expires `session`; a connected handle gets a new session at once, a cut-off one on reconnect.
    pub(crate) fn expire(&mut self, session: SessionId) -> bool {
        if !self.tree.has_session(session) {
            return false;
        }
        tracing::debug!(session = format!("0x{session:x}"), "session expired");
        self.end(session, &Error::SessionExpired);
        if let Some(mut att) = self.attached.remove(&session) {
            att.events.publish(SessionState::Expired);
            if att.cut_since.is_some() {
                att.expired_while_cut = true;
                // Still reachable by its old id until it reconnects.
                self.attached.insert(session, att);
            } else {
                self.renew(att);
            }
        }
        true
    }

    /// Gives an attachment a new session and announces it.
    pub(crate) fn renew(&mut self, mut att: Attachment) {
        let id = self.new_session_id();
        self.commit(TxnBody::CreateSession {
            session: id,
            timeout_ms: att.timeout.as_millis().min(i32::MAX as u128) as i32,
        });
        att.current.store(id, Ordering::SeqCst);
        att.cut_since = None;
        att.expired_while_cut = false;
        att.events.publish(SessionState::Connected);
        self.attached.insert(id, att);
    }

    /// Closes `session` for good.
    pub(crate) fn close(&mut self, session: SessionId) {
        self.end(session, &Error::Closed);
        if let Some(att) = self.attached.remove(&session) {
            att.events.publish(SessionState::Closed);
        }
    }

    fn tick(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .attached
            .iter()
            .filter(|(_, a)| {
                !a.expired_while_cut
                    && a.cut_since
                        .is_some_and(|t| now.duration_since(t) >= a.timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.expire(id);
        }
        for path in self.tree.reapable(now_ms()) {
            tracing::debug!(%path, "reaping container / TTL node");
            self.commit(TxnBody::Reap { path });
        }
    }
}

/// One in-memory tree shared by many sessions (each [`NativeSession`] is one client).
///
/// ```
/// use menagerie_native::NativeStore;
/// use menagerie_core::{Backend, CreateMode};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = NativeStore::new();
/// let a = store.session();
/// let b = store.session();
/// a.create("/shared", b"hi", CreateMode::Persistent).await.unwrap();
/// assert_eq!(b.get("/shared").await.unwrap().0, b"hi");
/// # });
/// ```
pub struct NativeStore {
    inner: Mutex<Inner>,
    weak: Weak<NativeStore>,
}

impl std::fmt::Debug for NativeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("NativeStore")
            .field("nodes", &inner.tree.node_count())
            .field("sessions", &inner.tree.sessions().len())
            .field("last_zxid", &format_args!("0x{:x}", inner.tree.last_zxid()))
            .finish()
    }
}

impl NativeStore {
    /// A fresh, empty in-memory tree.
    pub fn new() -> Arc<NativeStore> {
        // ZooKeeper's layout: server id in the top byte, time in the middle.
        let first_session = (1i64 << 56) | ((now_ms() << 24) as u64 >> 8) as i64;
        Arc::new_cyclic(|weak| NativeStore {
            inner: Mutex::new(Inner {
                tree: DataTree::new(),
                watches: WatchTable::default(),
                attached: HashMap::new(),
                next_session: first_session,
                reaper_started: false,
            }),
            weak: weak.clone(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a new session (a new client) with the default timeout.
    pub fn session(&self) -> NativeSession {
        self.session_with_timeout(DEFAULT_SESSION_TIMEOUT)
    }

    /// Opens a new session with the given timeout (how long a cut-off client survives).
    pub fn session_with_timeout(&self, timeout: Duration) -> NativeSession {
        let store = self
            .weak
            .upgrade()
            .expect("a NativeStore is always held in an Arc");
        self.start_reaper();
        NativeSession::open(store, timeout)
    }

    /// Expires a session now, as the server does after its timeout. Returns false if it was not live.
    pub fn expire(&self, session: SessionId) -> bool {
        self.lock().expire(session)
    }

    /// Runs `f` on the tree (read-only), e.g. for inspection or statistics.
    pub fn with_tree<T>(&self, f: impl FnOnce(&DataTree) -> T) -> T {
        f(&self.lock().tree)
    }

    /// Number of watches and of watched paths.
    pub fn watch_counts(&self) -> (usize, usize) {
        self.lock().watches.counts()
    }

    /// Starts the background task that reaps containers and TTL nodes and expires cut-off sessions.
    /// Needs a Tokio runtime; without one, reaping happens on [`NativeStore::tick`].
    fn start_reaper(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut inner = self.lock();
            if inner.reaper_started {
                return;
            }
            inner.reaper_started = true;
        }
        let weak = self.weak.clone();
        handle.spawn(async move {
            let mut interval = tokio::time::interval(REAP_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(store) = weak.upgrade() else { return };
                store.tick();
            }
        });
    }

    /// One round of housekeeping: reap due containers / TTL nodes, expire sessions cut off longer
    /// than their timeout.
    pub fn tick(&self) {
        self.lock().tick(Instant::now());
    }
}

/// Checks that a store-level result came from the kind of transaction asked for.
pub(crate) fn unexpected_result(r: TxnResult) -> Error {
    Error::Backend {
        message: format!("internal: unexpected transaction result {r:?}"),
    }
}

/// Convenience for results of single operations.
pub(crate) fn op_result(r: TxnResult) -> Result<menagerie_core::OpResult> {
    match r {
        TxnResult::Op(r) => r,
        other => Err(unexpected_result(other)),
    }
}
