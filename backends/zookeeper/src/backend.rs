//! [`ZkBackend`]: one menagerie session on a ZooKeeper ensemble.

use crate::convert::{self, map_error, OpKind};
use crate::options::{ServerVersion, ZkOptions};
use crate::watch::{self, Pump};
use crate::{expire, probe};
use menagerie_core::path::validate_path;
use menagerie_core::{
    async_trait, AddWatchMode, Backend, Capabilities, CreateMode, Error, MultiOpError,
    OneshotWatch, Op, OpResult, PersistentWatch, Result, SessionEvents, SessionId, SessionState,
    Stat, StateStream,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch as slot;
use tokio::time::Instant;
use zookeeper_client as zk;

/// First container-capable release.
const CONTAINER_SINCE: ServerVersion = ServerVersion::new(3, 5, 3);
/// First release with persistent (addWatch) watches.
const PERSISTENT_WATCHES_SINCE: ServerVersion = ServerVersion::new(3, 6, 0);
/// First release that keeps a one-shot and a persistent watch on one path apart (ZOOKEEPER-4466).
const WATCH_MODES_APART_SINCE: ServerVersion = ServerVersion::new(3, 9, 0);

/// One session on Apache ZooKeeper (standalone or an ensemble), implementing the core
/// [`Backend`] contract through the `zookeeper-client` crate.
///
/// - Connection states: the client's Disconnected is reported as
///   [`Suspended`](SessionState::Suspended) (operations then fail at once with ConnectionLoss), a
///   reconnection within the session as [`Reconnected`](SessionState::Reconnected). When the session
///   expires (the server says so on reconnection, or the client gives up after 7/5 of the session
///   timeout) the handle reports [`Expired`](SessionState::Expired), ends the session's watches with
///   `SessionExpired`, opens a new session by itself and reports
///   [`Connected`](SessionState::Connected); operations issued meanwhile wait (up to the connect
///   timeout) for the new session.
/// - Capabilities: containers from ZooKeeper 3.5.3, persistent watches from 3.6.0 (version from
///   `srvr`; a server that does not say is assumed current, and a refused operation answers
///   Unsupported), TTL nodes when the server accepts them (probed at connect), data up to
///   [`ZkOptions::max_data_len`] (the request-frame limit minus 1 KiB: 1,047,551 bytes by default).
/// - Paths are absolute on the server; use [`menagerie_core::Client::with_chroot`] for a chroot
///   (as [`connect`](crate::connect) does for the URL's path).
///
/// Dropping the last handle closes the session (asynchronously); [`close`](Backend::close) waits
/// for the server's acknowledgement.
///
/// ```no_run
/// use std::sync::Arc;
/// use menagerie_core::{Backend, Client, CreateMode};
/// use menagerie_zookeeper::{ZkBackend, ZkOptions};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let backend = ZkBackend::connect("127.0.0.1:2181", ZkOptions::default()).await?;
/// assert!(backend.capabilities().container);
/// let client = Client::new(Arc::new(backend)).with_chroot("/my-app")?;
/// client.ensure_path("/").await?;
/// client.create("/worker-", b"", CreateMode::EphemeralSequential).await?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct ZkBackend {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    hosts: String,
    options: ZkOptions,
    version: Option<ServerVersion>,
    capabilities: Capabilities,
    events: SessionEvents,
    /// The zookeeper client of the current session; `None` while a new session is being opened
    /// and after close.
    slot: slot::Sender<Option<zk::Client>>,
    session_id: AtomicI64,
    /// The last session a server answered `SessionExpired` for: the supervisor replaces it at
    /// once, without waiting for the zookeeper client to notice on its own.
    gone: slot::Sender<i64>,
    closed: Arc<AtomicBool>,
    pump: Arc<Pump>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The client goes with us: zookeeper-client closes its session once the last clone is gone.
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.events.publish(SessionState::Closed);
        }
    }
}

impl std::fmt::Debug for ZkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkBackend")
            .field("hosts", &self.shared.hosts)
            .field("session_id", &format_args!("0x{:x}", self.session_id()))
            .field("state", &self.shared.events.current())
            .field("server_version", &self.shared.version)
            .finish()
    }
}

/// Opens a zookeeper-client session, retrying until `deadline`.
async fn open_client(hosts: &str, options: &ZkOptions, deadline: Instant) -> Result<zk::Client> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::BadArguments {
            reason: "the zookeeper backend needs a Tokio runtime".into(),
        });
    }
    let mut pause = Duration::from_millis(50);
    loop {
        let connector = zk::Client::connector().with_session_timeout(options.session_timeout);
        let attempt = tokio::time::timeout_at(deadline, connector.connect(hosts)).await;
        let error = match attempt {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(zk::Error::BadArguments(reason))) => {
                return Err(Error::BadArguments {
                    reason: format!("zookeeper hosts {hosts:?}: {reason}"),
                })
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timeout".to_string(),
        };
        if Instant::now() + pause >= deadline {
            tracing::warn!(%hosts, %error, "could not open a zookeeper session");
            return Err(Error::ConnectionLoss);
        }
        tracing::debug!(%hosts, %error, "zookeeper connect attempt failed, retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

impl ZkBackend {
    /// Opens a session on the servers `hosts` (`"h1:2181,h2:2181"`, no chroot), probing what they
    /// support. Fails with ConnectionLoss when no session could be opened within
    /// [`ZkOptions::connect_timeout`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use menagerie_core::Backend;
    /// use menagerie_zookeeper::{ZkBackend, ZkOptions};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let options = ZkOptions::default().with_session_timeout(Duration::from_secs(6));
    /// let b = ZkBackend::connect("10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181", options).await?;
    /// println!("session 0x{:x} on ZooKeeper {:?}", b.session_id(), b.server_version());
    /// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
    /// ```
    pub async fn connect(hosts: &str, options: ZkOptions) -> Result<ZkBackend> {
        let host_list: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        let has_chroot = host_list
            .iter()
            .any(|h| h.strip_prefix("tcp://").unwrap_or(h).contains('/'));
        if host_list.is_empty() || has_chroot {
            return Err(Error::BadArguments {
                reason: format!(
                    "zookeeper hosts {hosts:?}: expected host:port[,host:port…] without a chroot"
                ),
            });
        }
        let hosts = host_list.join(",");
        let deadline = Instant::now() + options.connect_timeout;
        let client = open_client(&hosts, &options, deadline).await?;
        let version = match options.server_version {
            Some(v) => Some(v),
            None => probe::server_version(&host_list).await,
        };
        let current = version.map_or(true, |v| v >= CONTAINER_SINCE);
        let ttl = match options.ttl {
            Some(t) => t,
            None if current => probe::ttl_enabled(&client).await.unwrap_or(false),
            None => false,
        };
        let capabilities = Capabilities {
            container: current,
            ttl,
            persistent_watches: version.map_or(true, |v| v >= PERSISTENT_WATCHES_SINCE),
            max_data_len: options.max_data_len(),
        };
        tracing::debug!(%hosts, ?version, ?capabilities, session = format!("0x{:x}", client.session_id().0), "zookeeper session opened");
        let states = client.state_watcher();
        let (tx, _) = slot::channel(None);
        let (gone, gone_rx) = slot::channel(0);
        let shared = Arc::new(Shared {
            hosts,
            options,
            version,
            capabilities,
            events: SessionEvents::new(SessionState::Connected),
            slot: tx,
            session_id: AtomicI64::new(client.session_id().0),
            gone,
            closed: Arc::new(AtomicBool::new(false)),
            pump: Arc::new(Pump::default()),
        });
        shared.slot.send_replace(Some(client));
        tokio::spawn(supervise(Arc::downgrade(&shared), states, gone_rx));
        Ok(ZkBackend { shared })
    }

    /// The server version (from `srvr`, or as configured); `None` when the servers did not say.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.shared.version
    }

    /// The servers this backend connects to (`h1:2181,h2:2181`).
    pub fn hosts(&self) -> &str {
        &self.shared.hosts
    }

    /// The options it was opened with.
    pub fn options(&self) -> &ZkOptions {
        &self.shared.options
    }

    /// The session timeout the server granted to the current session (`None` while a new session is
    /// being opened or after close).
    pub fn negotiated_session_timeout(&self) -> Option<Duration> {
        self.shared
            .slot
            .borrow()
            .as_ref()
            .map(|c| c.session_timeout())
    }

    /// Makes the current session expire on the server, the way ZooKeeper's own tests do: a second
    /// connection attaches to the session (with its id and password) and closes it. The handle then
    /// finds its session gone, reports `Expired`, and opens a new one. Returns once the session is
    /// gone on the server and, within `wait`, the handle reports a new session (`Connected`).
    ///
    /// For tests and fault drills; applications never need it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use menagerie_core::Backend;
    /// # async fn demo(b: &menagerie_zookeeper::ZkBackend) -> menagerie_core::Result<()> {
    /// let old = b.session_id();
    /// b.expire_session(Duration::from_secs(20)).await?;
    /// assert_ne!(b.session_id(), old);
    /// # Ok(()) }
    /// ```
    pub async fn expire_session(&self, wait: Duration) -> Result<()> {
        let shared = &self.shared;
        let deadline = Instant::now() + wait;
        let client = match shared.slot.borrow().clone() {
            Some(c) => c,
            None if shared.closed.load(Ordering::Acquire) => return Err(Error::Closed),
            None => return Err(Error::SessionExpired),
        };
        let old = client.session_id().0;
        let info = client.session().clone();
        let timeout_ms = i32::try_from(client.session_timeout().as_millis()).unwrap_or(i32::MAX);
        drop(client);
        let (session, password) =
            expire::capture_credentials(info, deadline)
                .await
                .map_err(|e| Error::Backend {
                    message: format!("expire: could not learn the session's password: {e}"),
                })?;
        let hosts: Vec<&str> = shared.hosts.split(',').collect();
        let mut attempt = 0usize;
        loop {
            let host = hosts[attempt % hosts.len()];
            attempt += 1;
            let r = tokio::time::timeout_at(
                deadline,
                expire::close_session(host, session, &password, timeout_ms),
            )
            .await;
            match r {
                Ok(Ok(outcome)) => {
                    tracing::debug!(session = format!("0x{old:x}"), ?outcome, %host, "session taken over and closed");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(session = format!("0x{old:x}"), error = %e, %host, "takeover failed, retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => {
                    tracing::warn!(
                        session = format!("0x{old:x}"),
                        attempts = attempt,
                        "expire: no takeover before the deadline"
                    );
                    return Err(Error::OperationTimeout);
                }
            }
        }
        // Wait for the handle to notice and open its new session. When the handle's client won
        // the race back onto the same server just before the close went through, the server
        // keeps that connection open for a session it no longer has (reads on it still work):
        // a write — deleting a node that never exists — makes the server say SessionExpired.
        let mut nudge_at = Instant::now() + Duration::from_millis(500);
        loop {
            if Instant::now() >= nudge_at {
                nudge_at = Instant::now() + Duration::from_millis(500);
                let client = shared.slot.borrow().clone();
                if let Some(c) = client.filter(|c| c.session_id().0 == old) {
                    tracing::debug!(
                        session = format!("0x{old:x}"),
                        "expire: nudging a client that has not noticed"
                    );
                    let probe = format!(
                        "/zookeeper/{}menagerie-expiry-nudge",
                        menagerie_core::client::protected_prefix()
                    );
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), c.delete(&probe, None)).await;
                }
            }
            if shared.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if shared.session_id.load(Ordering::Acquire) != old
                && shared.events.current() == SessionState::Connected
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(session = format!("0x{old:x}"), state = ?shared.events.current(), "expire: the session is gone but the handle has no new session yet");
                return Err(Error::OperationTimeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[cfg_attr(not(feature = "conformance"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    #[cfg_attr(not(feature = "conformance"), allow(dead_code))]
    pub(crate) fn upgrade(weak: &Weak<Shared>) -> Option<ZkBackend> {
        weak.upgrade().map(|shared| ZkBackend { shared })
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn closed_flag(&self) -> Arc<AtomicBool> {
        self.shared.closed.clone()
    }

    /// The zookeeper client of the current session, once usable: ConnectionLoss at once while
    /// disconnected; while a new session is being opened, waits for it up to the connect timeout.
    async fn client(&self) -> Result<zk::Client> {
        let shared = &self.shared;
        let mut rx = shared.slot.subscribe();
        let deadline = Instant::now() + shared.options.connect_timeout;
        loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            let current = rx.borrow_and_update().clone();
            if let Some(c) = current {
                return match c.state() {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => Ok(c),
                    zk::SessionState::Disconnected => Err(Error::ConnectionLoss),
                    // Dead: the supervisor is about to replace it.
                    _ => Err(self.session_gone(c.session_id().0).await),
                };
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(Error::ConnectionLoss),
            }
        }
    }

    /// `session` is gone (a server said so, or its client is dead): has the supervisor replace it
    /// and waits (briefly, bounded) until the handle no longer reports it as current, so that a
    /// caller who sees `SessionExpired` and looks at the state finds `Expired`, not `Connected`.
    async fn session_gone(&self, session: i64) -> Error {
        let shared = &self.shared;
        shared.gone.send_replace(session);
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.session_id.load(Ordering::Acquire) == session
            && !shared.events.current().is_terminal_for_session()
            && !self.is_closed()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Error::SessionExpired
    }

    /// Runs one zookeeper operation on the current session, mapping its errors.
    async fn run<T, F, Fut>(&self, kind: OpKind, path: &str, f: F) -> Result<T>
    where
        F: FnOnce(zk::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, zk::Error>>,
    {
        let client = self.client().await?;
        let session = client.session_id().0;
        let r = tokio::time::timeout(self.shared.options.operation_timeout, f(client)).await;
        // Watch events that came before this reply are delivered before the caller sees it.
        self.shared.pump.flush();
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => match map_error(e, kind, path, self.is_closed()) {
                Error::SessionExpired => Err(self.session_gone(session).await),
                e => Err(e),
            },
            Err(_) => Err(Error::OperationTimeout),
        }
    }

    fn oneshot(&self, w: zk::OneshotWatcher) -> OneshotWatch {
        watch::oneshot(w, self.closed_flag(), &self.shared.pump)
    }

    /// ZooKeeper before 3.9 keeps one watch mode per path and session (ZOOKEEPER-4466): a
    /// one-shot watch set where this session has a persistent one turns the persistent one into
    /// a one-shot. Setting the persistent mode again afterwards keeps both working (the one-shot
    /// watcher still ends after its first event on the client side).
    async fn restore_persistent(&self, path: &str, child_watch: bool) {
        if self
            .shared
            .version
            .is_some_and(|v| v >= WATCH_MODES_APART_SINCE)
        {
            return;
        }
        let pump = &self.shared.pump;
        let mode = if pump.has_persistent(path, AddWatchMode::Persistent) {
            zk::AddWatchMode::Persistent
        } else if !child_watch && pump.has_persistent(path, AddWatchMode::PersistentRecursive) {
            zk::AddWatchMode::PersistentRecursive
        } else {
            return;
        };
        let r = self
            .run(
                OpKind::Watch,
                path,
                |c| async move { c.watch(path, mode).await },
            )
            .await;
        match r {
            // The extra watcher is dropped at once; the first one stays registered.
            Ok(extra) => drop(extra),
            Err(e) => tracing::debug!(%path, error = %e, "could not restore a persistent watch"),
        }
    }

    /// Refuses data the servers would not take (they would drop the connection instead of
    /// answering).
    fn check_size(&self, op: &Op) -> Result<()> {
        let data = convert::op_data_len(op);
        let max = self.shared.options.max_data_len();
        if data > max {
            return Err(Error::DataTooLarge {
                size: data,
                limit: max,
            });
        }
        let frame = convert::single_frame_len(op);
        let frame_max = self.shared.options.max_frame_len;
        if frame > frame_max {
            return Err(Error::DataTooLarge {
                size: data,
                limit: data.saturating_sub(frame - frame_max),
            });
        }
        Ok(())
    }

    /// Refuses create modes the server cannot do (Unsupported).
    fn check_caps(&self, mode: CreateMode) -> Result<()> {
        let caps = &self.shared.capabilities;
        if mode.is_container() && !caps.container {
            return Err(Error::unsupported(format!(
                "container nodes (ZooKeeper {} has none; they need 3.5.3)",
                self.version_text()
            )));
        }
        if mode.ttl().is_some() && !caps.ttl {
            return Err(Error::unsupported(
                "TTL nodes (the server runs without zookeeper.extendedTypesEnabled=true)",
            ));
        }
        Ok(())
    }

    fn version_text(&self) -> String {
        self.shared
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "of unknown version".into())
    }

    /// Checks one operation of a multi before it is sent (the error a server-side check would give).
    fn precheck(&self, op: &Op) -> Result<()> {
        match op {
            Op::Create { path, mode, .. } => {
                validate_path(path, mode.is_sequential())?;
                if path == "/" {
                    return Err(Error::NodeExists { path: path.clone() });
                }
            }
            Op::Delete { path, .. } => {
                validate_path(path, false)?;
                if path == "/" {
                    return Err(Error::BadArguments {
                        reason: "the root node cannot be deleted".into(),
                    });
                }
            }
            Op::SetData { path, .. } | Op::Check { path, .. } => validate_path(path, false)?,
        }
        let data = convert::op_data_len(op);
        let max = self.shared.options.max_data_len();
        if data > max {
            return Err(Error::DataTooLarge {
                size: data,
                limit: max,
            });
        }
        Ok(())
    }

    /// Sends `ops` as one multi; `sentinel` appends a check that always fails (used to learn
    /// whether a prefix would have applied, without applying it).
    async fn send_multi(
        &self,
        ops: &[Op],
        sentinel: bool,
    ) -> Result<std::result::Result<Vec<zk::MultiWriteResult>, (usize, Error)>> {
        let client = self.client().await?;
        let closed = self.is_closed();
        let fut = async {
            let mut writer = client.new_multi_writer();
            for op in ops {
                let added = match op {
                    Op::Create { path, data, mode } => {
                        writer.add_create(path, data, &convert::create_options(*mode))
                    }
                    Op::SetData {
                        path,
                        data,
                        version,
                    } => writer.add_set_data(path, data, *version),
                    Op::Delete { path, version } => writer.add_delete(path, *version),
                    Op::Check { path, version } => {
                        writer.add_check_version(path, version.unwrap_or(-1))
                    }
                };
                if let Err(e) = added {
                    return Err(map_error(e, OpKind::Multi, op.path(), closed));
                }
            }
            if sentinel {
                // Versions start at 0 and only grow: no node is ever at version -2.
                if let Err(e) = writer.add_check_version("/", -2) {
                    return Err(map_error(e, OpKind::Multi, "/", closed));
                }
            }
            match writer.commit().await {
                Ok(results) => Ok(Ok(results)),
                Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                    let path = ops.get(index).map(Op::path).unwrap_or("/");
                    let kind = match ops.get(index) {
                        Some(Op::Create { .. }) => OpKind::Create,
                        _ => OpKind::Multi,
                    };
                    Ok(Err((index, map_error(source, kind, path, closed))))
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    Err(map_error(source, OpKind::Multi, "/", closed))
                }
            }
        };
        let session = client.session_id().0;
        let r = tokio::time::timeout(self.shared.options.operation_timeout, fut).await;
        self.shared.pump.flush();
        match r {
            Ok(Err(Error::SessionExpired)) => Err(self.session_gone(session).await),
            Ok(r) => r,
            Err(_) => Err(Error::OperationTimeout),
        }
    }

    /// Core results for a successful multi. ZooKeeper 3.8 answers a create inside a multi with
    /// its path only (ZOOKEEPER-4026, fixed in 3.9), so such a Stat is rebuilt: everything about a
    /// new node is known (version 0, no children, the data's length, its owner) except the
    /// transaction's zxid and time, which come from another result of the same multi or from
    /// reading the node back (its czxid and ctime never change).
    async fn multi_results(
        &self,
        ops: &[Op],
        results: Vec<zk::MultiWriteResult>,
        session: SessionId,
    ) -> Result<Vec<OpResult>> {
        let mut txn: Option<(i64, i64)> = results.iter().find_map(|r| match r {
            zk::MultiWriteResult::SetData { stat } => Some((stat.mzxid, stat.mtime)),
            zk::MultiWriteResult::Create { stat, .. } if stat.czxid != -1 => {
                Some((stat.czxid, stat.ctime))
            }
            _ => None,
        });
        if txn.is_none() {
            for r in &results {
                if let zk::MultiWriteResult::Create { path, .. } = r {
                    if let Ok(Some(st)) = self.exists(path).await {
                        // A node re-created since has a later czxid: keep the earliest.
                        if txn.map_or(true, |(z, _)| st.czxid < z) {
                            txn = Some((st.czxid, st.ctime));
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(results.len());
        for (op, r) in ops.iter().zip(results) {
            out.push(match r {
                zk::MultiWriteResult::Create { path, stat } => {
                    let stat = if stat.czxid != -1 {
                        convert::stat(&stat)
                    } else {
                        let (data_len, ephemeral) = match op {
                            Op::Create { data, mode, .. } => (data.len(), mode.is_ephemeral()),
                            _ => (0, false),
                        };
                        let (zxid, time) = txn.unwrap_or((-1, 0));
                        Stat {
                            czxid: zxid,
                            mzxid: zxid,
                            pzxid: zxid,
                            ctime: time,
                            mtime: time,
                            version: 0,
                            cversion: 0,
                            aversion: 0,
                            ephemeral_owner: if ephemeral { session } else { 0 },
                            data_length: i32::try_from(data_len).unwrap_or(i32::MAX),
                            num_children: 0,
                        }
                    };
                    OpResult::Create { path, stat }
                }
                zk::MultiWriteResult::SetData { stat } => OpResult::SetData {
                    stat: convert::stat(&stat),
                },
                zk::MultiWriteResult::Delete => OpResult::Delete,
                zk::MultiWriteResult::Check => OpResult::Check,
                other => {
                    return Err(Error::Backend {
                        message: format!("zookeeper multi: unexpected result {other:?}"),
                    })
                }
            });
        }
        Ok(out)
    }
}

/// Follows the zookeeper client's state and maps it onto the core state stream; replaces an
/// expired session with a new one.
async fn supervise(
    weak: Weak<Shared>,
    mut states: zk::StateWatcher,
    mut gone: slot::Receiver<i64>,
) {
    // A change between connect and subscribing would otherwise go unseen.
    let mut pending = Some(states.peek_state());
    loop {
        let state = match pending.take() {
            Some(s) => s,
            None => tokio::select! {
                s = states.changed() => s,
                r = gone.changed() => {
                    if r.is_err() {
                        return; // the handle is gone
                    }
                    let session = *gone.borrow_and_update();
                    let Some(shared) = weak.upgrade() else { return };
                    if shared.session_id.load(Ordering::Acquire) != session {
                        continue; // about a session already replaced
                    }
                    zk::SessionState::Expired
                }
            },
        };
        let Some(shared) = weak.upgrade() else { return };
        match state {
            zk::SessionState::Disconnected => {
                tracing::info!(
                    session = format!("0x{:x}", shared.session_id.load(Ordering::Acquire)),
                    "zookeeper connection lost"
                );
                shared.events.publish(SessionState::Suspended);
            }
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                if shared.events.current() == SessionState::Suspended {
                    tracing::info!(
                        session = format!("0x{:x}", shared.session_id.load(Ordering::Acquire)),
                        "zookeeper connection back"
                    );
                    shared.events.publish(SessionState::Reconnected);
                }
            }
            zk::SessionState::Expired | zk::SessionState::AuthFailed | zk::SessionState::Closed => {
                if shared.closed.load(Ordering::Acquire) {
                    return;
                }
                tracing::warn!(
                    session = format!("0x{:x}", shared.session_id.load(Ordering::Acquire)),
                    ?state,
                    "zookeeper session ended; opening a new one"
                );
                shared.slot.send_replace(None);
                shared.events.publish(SessionState::Expired);
                drop(shared);
                match reopen(&weak).await {
                    Some(next) => {
                        states = next;
                        pending = Some(states.peek_state());
                    }
                    None => return,
                }
            }
        }
    }
}

/// Opens a new session for the handle behind `weak` (retrying while it is alive and not closed),
/// installs it and reports `Connected`.
async fn reopen(weak: &Weak<Shared>) -> Option<zk::StateWatcher> {
    let mut pause = Duration::from_millis(50);
    loop {
        let (hosts, options) = {
            let shared = weak.upgrade()?;
            if shared.closed.load(Ordering::Acquire) {
                return None;
            }
            (shared.hosts.clone(), shared.options.clone())
        };
        let deadline = Instant::now() + options.connect_timeout;
        match open_client(&hosts, &options, deadline).await {
            Ok(client) => {
                let shared = weak.upgrade()?;
                if shared.closed.load(Ordering::Acquire) {
                    return None; // dropping the client closes the new session
                }
                let states = client.state_watcher();
                let id = client.session_id().0;
                shared.session_id.store(id, Ordering::Release);
                shared.slot.send_replace(Some(client));
                tracing::info!(session = format!("0x{id:x}"), "new zookeeper session");
                shared.events.publish(SessionState::Connected);
                return Some(states);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not open a new zookeeper session yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[async_trait]
impl Backend for ZkBackend {
    fn session_id(&self) -> SessionId {
        self.shared.session_id.load(Ordering::Acquire)
    }

    fn state(&self) -> SessionState {
        self.shared.events.current()
    }

    fn state_stream(&self) -> StateStream {
        self.shared.events.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.capabilities
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat)> {
        validate_path(path, mode.is_sequential())?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let op = Op::create(path, data, mode);
        self.check_size(&op)?;
        self.check_caps(mode)?;
        convert::check_ttl(mode)?;
        if path == "/" {
            // What the server answers; the crate refuses to send it.
            return Err(Error::NodeExists { path: "/".into() });
        }
        let options = convert::create_options(mode);
        let (stat, seq) = self
            .run(OpKind::Create, path, |c| async move {
                c.create(path, data, &options).await
            })
            .await?;
        let created = if mode.is_sequential() {
            format!("{path}{seq}")
        } else {
            path.to_string()
        };
        Ok((created, convert::stat(&stat)))
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        validate_path(path, false)?;
        let (data, stat) = self
            .run(
                OpKind::Read,
                path,
                |c| async move { c.get_data(path).await },
            )
            .await?;
        Ok((data, convert::stat(&stat)))
    }

    async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)> {
        validate_path(path, false)?;
        let (data, stat, w) = self
            .run(OpKind::Read, path, |c| async move {
                c.get_and_watch_data(path).await
            })
            .await?;
        let w = self.oneshot(w);
        self.restore_persistent(path, false).await;
        Ok((data, convert::stat(&stat), w))
    }

    async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        validate_path(path, false)?;
        let stat = self
            .run(
                OpKind::Read,
                path,
                |c| async move { c.check_stat(path).await },
            )
            .await?;
        Ok(stat.as_ref().map(convert::stat))
    }

    async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        validate_path(path, false)?;
        let (stat, w) = self
            .run(OpKind::Read, path, |c| async move {
                c.check_and_watch_stat(path).await
            })
            .await?;
        let w = self.oneshot(w);
        self.restore_persistent(path, false).await;
        Ok((stat.as_ref().map(convert::stat), w))
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        validate_path(path, false)?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.check_size(&Op::set(path, data, version))?;
        let stat = self
            .run(OpKind::Set, path, |c| async move {
                c.set_data(path, data, version).await
            })
            .await?;
        Ok(convert::stat(&stat))
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        if path == "/" {
            return Err(Error::BadArguments {
                reason: "the root node cannot be deleted".into(),
            });
        }
        self.run(OpKind::Delete, path, |c| async move {
            c.delete(path, version).await
        })
        .await
    }

    async fn children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        validate_path(path, false)?;
        let (mut kids, stat) = self
            .run(
                OpKind::Read,
                path,
                |c| async move { c.get_children(path).await },
            )
            .await?;
        kids.sort_unstable();
        Ok((kids, convert::stat(&stat)))
    }

    async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneshotWatch)> {
        validate_path(path, false)?;
        let (mut kids, stat, w) = self
            .run(OpKind::Read, path, |c| async move {
                c.get_and_watch_children(path).await
            })
            .await?;
        kids.sort_unstable();
        let w = self.oneshot(w);
        self.restore_persistent(path, true).await;
        Ok((kids, convert::stat(&stat), w))
    }

    async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let len = ops.len();
        let failed = |index: usize, e: Error| Error::MultiFailed {
            index,
            results: MultiOpError::for_failure(len, index, e.kind()),
        };
        for op in ops {
            if let Op::Create { mode, .. } = op {
                self.check_caps(*mode)?;
            }
        }
        // An operation the server would never receive (invalid path, too much data, bad TTL):
        // ask the server about the operations before it, with a check that always fails at the
        // end, so the first failure is reported exactly as an all-server multi would.
        let local = ops.iter().enumerate().find_map(|(i, op)| {
            let mut r = self.precheck(op);
            if let (Ok(()), Op::Create { mode, .. }) = (&r, op) {
                r = convert::check_ttl(*mode);
            }
            r.err().map(|e| (i, e))
        });
        if let Some((index, error)) = local {
            if index == 0 {
                return Err(failed(0, error));
            }
            let prefix = &ops[..index];
            return match self.send_multi(prefix, true).await? {
                Err((i, e)) if i < index => Err(failed(i, e)),
                _ => Err(failed(index, error)),
            };
        }
        let frame = convert::multi_frame_len(ops);
        if frame > self.shared.options.max_frame_len {
            let data: usize = ops.iter().map(convert::op_data_len).sum();
            return Err(Error::DataTooLarge {
                size: data,
                limit: data.saturating_sub(frame - self.shared.options.max_frame_len),
            });
        }
        let session = self.session_id();
        let results = match self.send_multi(ops, false).await? {
            Ok(results) => results,
            Err((index, e)) => return Err(failed(index, e)),
        };
        if results.len() != ops.len() {
            return Err(Error::Backend {
                message: format!(
                    "zookeeper multi: {} results for {} operations",
                    results.len(),
                    ops.len()
                ),
            });
        }
        self.multi_results(ops, results, session).await
    }

    async fn sync(&self, path: &str) -> Result<()> {
        validate_path(path, false)?;
        self.run(OpKind::Sync, path, |c| async move { c.sync(path).await })
            .await
    }

    async fn watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        validate_path(path, false)?;
        if !self.shared.capabilities.persistent_watches {
            return Err(Error::unsupported(format!(
                "persistent watches (ZooKeeper {} has none; they need 3.6.0)",
                self.version_text()
            )));
        }
        let zk_mode = match mode {
            AddWatchMode::Persistent => zk::AddWatchMode::Persistent,
            AddWatchMode::PersistentRecursive => zk::AddWatchMode::PersistentRecursive,
        };
        let w = self
            .run(OpKind::Watch, path, |c| async move {
                c.watch(path, zk_mode).await
            })
            .await?;
        Ok(watch::persistent(
            w,
            path,
            mode,
            self.closed_flag(),
            &self.shared.pump,
        ))
    }

    async fn close(&self) -> Result<()> {
        let shared = &self.shared;
        if shared.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        if let Some(client) = shared.slot.send_replace(None) {
            let mut states = client.state_watcher();
            let wait = client.session_timeout().max(Duration::from_secs(1));
            drop(client); // the last clone: zookeeper-client sends closeSession
            let done = tokio::time::timeout(wait, async {
                while !states.peek_state().is_terminated() {
                    states.changed().await;
                }
            })
            .await;
            if done.is_err() {
                tracing::warn!(
                    session = format!("0x{:x}", self.session_id()),
                    "no close acknowledgement from zookeeper; the session will expire on its own"
                );
            }
        }
        shared.events.publish(SessionState::Closed);
        Ok(())
    }
}
