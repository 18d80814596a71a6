//! [`NativeStore`]: one tree shared by many sessions in this process, with its watches, session
//! table, zxid counter and reaper.

use crate::durable::{self, DurableLog, DurableMark, DurableOptions};
use crate::server::watches::{ConnId, WireWatches};
use crate::session::NativeSession;
use crate::tree::{Change, DataTree, Txn, TxnBody, TxnResult};
use crate::watches::WatchTable;
use menagerie_core::{Error, Result, SessionEvents, SessionId, SessionState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

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

/// A session not owned by an embedded handle: a wire client's, or one recovered from disk. It
/// expires when nothing was heard from it for its timeout.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    /// Negotiated timeout.
    pub(crate) timeout: Duration,
    /// When a packet was last received (or the session was opened / recovered / detached).
    pub(crate) last_heard: Instant,
    /// The connection currently serving it.
    pub(crate) conn: Option<ConnId>,
}

pub(crate) struct Inner {
    pub(crate) tree: DataTree,
    pub(crate) watches: WatchTable,
    /// Handles by their current session id.
    pub(crate) attached: HashMap<SessionId, Attachment>,
    /// Watches and notification sinks of wire connections.
    pub(crate) wire: WireWatches,
    /// Sessions of wire clients and sessions recovered from disk.
    pub(crate) live: HashMap<SessionId, Liveness>,
    /// The transaction log, for a durable store.
    pub(crate) log: Option<DurableLog>,
    /// Key of session passwords.
    secret: u64,
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

    /// Assigns a zxid and time, applies the transaction, queues it on the log (durable stores)
    /// and fires the watches it triggers. Nothing may be acknowledged before the zxid is durable
    /// ([`NativeStore::wait_durable`]).
    pub(crate) fn commit(&mut self, body: TxnBody) -> (i64, TxnResult) {
        let txn = Txn {
            zxid: self.next_zxid(),
            time: now_ms(),
            body,
        };
        let mut changes: Vec<Change> = Vec::new();
        let result = self.tree.apply(&txn, &mut changes);
        if let Some(log) = &mut self.log {
            log.append(&txn, &self.tree);
        }
        if !changes.is_empty() {
            self.watches.fire(&changes);
            self.wire.fire(&changes, txn.zxid);
        }
        (txn.zxid, result)
    }

    fn new_session_id(&mut self) -> SessionId {
        loop {
            let id = self.next_session;
            self.next_session += 1;
            if id != 0 && !self.tree.has_session(id) {
                return id;
            }
        }
    }

    /// The 16-byte password of a wire session (derived from the store's secret, so it survives
    /// restarts of a durable store).
    pub(crate) fn password(&self, session: SessionId) -> [u8; 16] {
        fn mix(mut z: u64) -> u64 {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let a = mix(self.secret ^ session as u64);
        let b = mix(a ^ self.secret.rotate_left(17));
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_be_bytes());
        out[8..].copy_from_slice(&b.to_be_bytes());
        out
    }

    /// Opens a session for a wire client.
    pub(crate) fn open_wire(&mut self, timeout: Duration, conn: ConnId) -> SessionId {
        let id = self.new_session_id();
        self.commit(TxnBody::CreateSession {
            session: id,
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
        });
        self.live.insert(
            id,
            Liveness {
                timeout,
                last_heard: Instant::now(),
                conn: Some(conn),
            },
        );
        id
    }

    /// Re-attaches a live wire session to a new connection; returns the connection it leaves, if
    /// any. `None` when the session is not a live wire session.
    pub(crate) fn reattach(
        &mut self,
        session: SessionId,
        timeout: Duration,
        conn: ConnId,
    ) -> Option<Option<ConnId>> {
        if !self.tree.has_session(session) {
            return None;
        }
        let l = self.live.get_mut(&session)?;
        l.timeout = timeout;
        l.last_heard = Instant::now();
        Some(l.conn.replace(conn).filter(|c| *c != conn))
    }

    /// Records that a packet arrived for `session`.
    pub(crate) fn touch(&mut self, session: SessionId) {
        if let Some(l) = self.live.get_mut(&session) {
            l.last_heard = Instant::now();
        }
    }

    /// The connection `conn` no longer serves `session` (which lives on until its timeout).
    pub(crate) fn detach(&mut self, session: SessionId, conn: ConnId) {
        if let Some(l) = self.live.get_mut(&session) {
            if l.conn == Some(conn) {
                l.conn = None;
                l.last_heard = Instant::now();
            }
        }
    }

    /// Ends a wire session on the client's request.
    pub(crate) fn close_wire(&mut self, session: SessionId) -> i64 {
        self.live.remove(&session);
        self.commit(TxnBody::CloseSession { session }).0
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
        // The dying session's own watches end first (as in ZooKeeper, where a dead session hears
        // no more events); then its ephemerals go, firing other sessions' watches.
        self.watches.end_session(session, error);
        if self.tree.has_session(session) {
            self.commit(TxnBody::CloseSession { session });
        }
    }

    /// Expires `session`; a connected handle gets a new session at once, a cut-off one on reconnect.
    /// A wire session's connection is closed (the client learns of the expiry when it reconnects).
    pub(crate) fn expire(&mut self, session: SessionId) -> bool {
        if !self.tree.has_session(session) {
            return false;
        }
        if let Some(l) = self.live.remove(&session) {
            tracing::debug!(session = format!("0x{session:x}"), "session expired");
            self.commit(TxnBody::CloseSession { session });
            if let Some(sink) = l.conn.and_then(|c| self.wire.sink(c)) {
                sink.close("session expired");
            }
            return true;
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
        let silent: Vec<SessionId> = self
            .live
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_heard) >= l.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
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
    /// How far the log is durable (durable stores only).
    durable: Option<watch::Receiver<DurableMark>>,
    /// The data directory (durable stores only).
    dir: Option<PathBuf>,
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
        Self::build(DataTree::new(), None, None, durable::random_u64(), None)
    }

    fn build(
        tree: DataTree,
        log: Option<DurableLog>,
        durable: Option<watch::Receiver<DurableMark>>,
        secret: u64,
        dir: Option<PathBuf>,
    ) -> Arc<NativeStore> {
        // ZooKeeper's layout: server id in the top byte, time in the middle.
        let first_session = (1i64 << 56) | ((now_ms() << 24) as u64 >> 8) as i64;
        let now = Instant::now();
        // Sessions found on disk belong to clients of an earlier run: they get their timeout
        // anew from now, and expire unless a client re-attaches.
        let live = tree
            .sessions()
            .iter()
            .map(|(id, info)| {
                let timeout = Duration::from_millis(info.timeout_ms.max(0) as u64);
                (
                    *id,
                    Liveness {
                        timeout,
                        last_heard: now,
                        conn: None,
                    },
                )
            })
            .collect();
        Arc::new_cyclic(|weak| NativeStore {
            inner: Mutex::new(Inner {
                tree,
                watches: WatchTable::default(),
                attached: HashMap::new(),
                wire: WireWatches::default(),
                live,
                log,
                secret,
                next_session: first_session,
                reaper_started: false,
            }),
            weak: weak.clone(),
            durable,
            dir,
        })
    }

    /// Opens (or creates) a durable store in directory `dir`: the tree is recovered from the
    /// newest valid snapshot plus the transaction log, and every write from now on is logged
    /// and fsynced before it is acknowledged. Sessions of an earlier run survive for their
    /// timeout (a wire client may re-attach). The directory is locked while the store is open.
    ///
    /// ```no_run
    /// use menagerie_core::{Backend, CreateMode};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = menagerie_native::NativeStore::open_durable("/var/lib/menagerie").unwrap();
    /// let s = store.session();
    /// s.create("/kept", b"across restarts", CreateMode::Persistent).await.unwrap();
    /// # });
    /// ```
    pub fn open_durable(dir: impl AsRef<Path>) -> std::io::Result<Arc<NativeStore>> {
        Self::open_durable_with(dir, DurableOptions::default())
    }

    /// As [`NativeStore::open_durable`], with explicit [`DurableOptions`] (fsync policy,
    /// snapshot interval).
    ///
    /// ```
    /// use menagerie_core::{Backend, CreateMode};
    /// use menagerie_native::durable::{DurableOptions, FsyncPolicy};
    /// use menagerie_native::NativeStore;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let options = DurableOptions { fsync: FsyncPolicy::Never, ..DurableOptions::default() };
    /// {
    ///     let store = NativeStore::open_durable_with(dir.path(), options).unwrap();
    ///     assert!(store.is_durable());
    ///     assert_eq!(store.data_dir(), Some(dir.path()));
    ///     let (_, stat) = store.session().create("/a", b"1", CreateMode::Persistent).await.unwrap();
    ///     store.wait_durable(stat.czxid).await.unwrap(); // already durable: create waited for it
    ///     store.snapshot_now();
    ///     store.stop_log();
    /// }
    /// let store = NativeStore::open_durable(dir.path()).unwrap();
    /// assert_eq!(store.session().get("/a").await.unwrap().0, b"1");
    /// # });
    /// ```
    pub fn open_durable_with(
        dir: impl AsRef<Path>,
        options: DurableOptions,
    ) -> std::io::Result<Arc<NativeStore>> {
        let dir = dir.as_ref();
        let started = Instant::now();
        let r = durable::recover(dir, options)?;
        tracing::info!(
            dir = %dir.display(),
            zxid = format!("0x{:x}", r.tree.last_zxid()),
            nodes = r.tree.node_count(),
            sessions = r.tree.sessions().len(),
            replayed = r.replayed,
            ms = started.elapsed().as_millis() as u64,
            "durable store recovered"
        );
        let store = Self::build(
            r.tree,
            Some(r.log),
            Some(r.durable),
            r.secret,
            Some(dir.to_path_buf()),
        );
        store.start_reaper();
        Ok(store)
    }

    /// The data directory of a durable store.
    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// True for a store opened with [`NativeStore::open_durable`].
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Waits until every transaction up to `zxid` is durable (at once for in-memory stores).
    /// Fails if the transaction log failed.
    pub async fn wait_durable(&self, zxid: i64) -> Result<()> {
        let Some(rx) = &self.durable else {
            return Ok(());
        };
        let mut rx = rx.clone();
        let ok = match rx.wait_for(|m| m.failed || m.zxid >= zxid).await {
            Ok(m) => !m.failed,
            Err(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Backend {
                message: "the transaction log failed; the write may not be durable".into(),
            })
        }
    }

    /// A receiver of the durable mark (durable stores only).
    pub(crate) fn durable_receiver(&self) -> Option<watch::Receiver<DurableMark>> {
        self.durable.clone()
    }

    /// Takes a snapshot now (durable stores; a no-op otherwise).
    pub fn snapshot_now(&self) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(log) = &mut inner.log {
            log.snapshot(&inner.tree);
        }
    }

    /// Writes out the log and stops its threads (durable stores). Later writes are not logged;
    /// used by the server's shutdown.
    pub fn stop_log(&self) {
        let log = self.lock().log.take();
        if let Some(mut log) = log {
            log.stop();
        }
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
    pub(crate) fn start_reaper(&self) {
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
