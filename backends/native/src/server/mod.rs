//! `menagerie-server`: the native tree served over ZooKeeper's client wire protocol (version 0,
//! the protocol of ZooKeeper 3.4 to 3.9), so every ZooKeeper client — the Rust `zookeeper-client`
//! crate, Python's kazoo, Java's client and Curator, zkCli.sh — works against it unchanged.
//!
//! - [`ServerConfig`] / [`Server::start`]: start a server in-process (tests use port 0 and read
//!   [`ServerHandle::local_addr`]); the `menagerie-server` binary is a thin wrapper.
//! - Storage: in memory, or durable in a data directory (transaction log with group commit,
//!   snapshots, recovery; see [`crate::durable`]). A reply is sent only once the writes it
//!   depends on are durable.
//! - Sessions: negotiated timeouts, re-attach with (id, password) also after a restart, expiry by
//!   the server, pings, closeSession.
//! - Four-letter words: ruok, srvr, stat, mntr, conf, envi, cons, wchs, dump, isro.
//!
//! ```no_run
//! use menagerie_native::server::{Server, ServerConfig, Storage};
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let config = ServerConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     storage: Storage::Directory("/var/lib/menagerie".into()),
//!     ..ServerConfig::default()
//! };
//! let server = Server::start(config).await.unwrap();
//! println!("serving ZooKeeper clients on {}", server.local_addr());
//! server.shutdown().await;
//! # });
//! ```

pub mod codec;
mod conn;
mod fourlw;
pub mod proto;
pub(crate) mod watches;

pub(crate) use conn::ConnSink;

use crate::durable::{DurableOptions, FsyncPolicy};
use crate::store::NativeStore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use watches::ConnId;

/// Where the server keeps its tree.
///
/// ```
/// use menagerie_native::server::Storage;
/// assert_eq!(Storage::default(), Storage::InMemory);
/// let durable = Storage::Directory("/var/lib/menagerie".into());
/// assert_ne!(durable, Storage::InMemory);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// In memory only: everything is gone when the server stops.
    #[default]
    InMemory,
    /// Durable in this directory (created if missing).
    Directory(PathBuf),
}

/// Server settings; the defaults are ZooKeeper's.
///
/// ```
/// use menagerie_native::server::ServerConfig;
/// let c = ServerConfig::default();
/// assert_eq!(c.tick_time_ms, 2000);
/// assert_eq!((c.min_session_timeout_ms(), c.max_session_timeout_ms()), (4000, 40000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// In memory or durable.
    pub storage: Storage,
    /// ZooKeeper's tickTime: the unit of the default session-timeout bounds.
    pub tick_time_ms: u32,
    /// Smallest negotiated session timeout (default 2 × tickTime).
    pub min_session_timeout: Option<u32>,
    /// Largest negotiated session timeout (default 20 × tickTime).
    pub max_session_timeout: Option<u32>,
    /// fsync policy of the transaction log (durable storage).
    pub fsync: FsyncPolicy,
    /// Transactions between snapshots (durable storage).
    pub snapshot_every: u64,
    /// Largest accepted frame (ZooKeeper's jute.maxbuffer, 0xfffff).
    pub max_frame: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2181)),
            storage: Storage::InMemory,
            tick_time_ms: 2000,
            min_session_timeout: None,
            max_session_timeout: None,
            fsync: FsyncPolicy::Always,
            snapshot_every: DurableOptions::default().snapshot_every,
            max_frame: 0xfffff,
        }
    }
}

impl ServerConfig {
    /// The smallest negotiated session timeout in ms.
    pub fn min_session_timeout_ms(&self) -> i32 {
        self.min_session_timeout
            .unwrap_or(self.tick_time_ms.saturating_mul(2))
            .min(i32::MAX as u32) as i32
    }

    /// The largest negotiated session timeout in ms (never below the smallest).
    pub fn max_session_timeout_ms(&self) -> i32 {
        let max = self
            .max_session_timeout
            .unwrap_or(self.tick_time_ms.saturating_mul(20))
            .min(i32::MAX as u32) as i32;
        max.max(self.min_session_timeout_ms())
    }
}

/// Request latencies (ms), as ZooKeeper's `srvr` reports them.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    count: AtomicU64,
    total_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Latency {
    pub(crate) fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        if n == 0 {
            self.min_us.store(us, Ordering::Relaxed);
        } else {
            self.min_us.fetch_min(us, Ordering::Relaxed);
        }
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// (min, avg, max) in ms.
    pub(crate) fn snapshot(&self) -> (f64, f64, f64) {
        let n = self.count.load(Ordering::Relaxed);
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        (
            ms(self.min_us.load(Ordering::Relaxed)),
            ms(self.total_us.load(Ordering::Relaxed)) / n as f64,
            ms(self.max_us.load(Ordering::Relaxed)),
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) latency: Latency,
}

/// State shared by the listener and every connection.
pub(crate) struct Shared {
    pub(crate) store: Arc<NativeStore>,
    pub(crate) config: ServerConfig,
    pub(crate) local_addr: SocketAddr,
    pub(crate) stats: Stats,
    pub(crate) started: SystemTime,
    pub(crate) conns: Mutex<BTreeMap<ConnId, Arc<ConnSink>>>,
    pub(crate) shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
}

impl Shared {
    pub(crate) fn register(&self, sink: Arc<ConnSink>) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sink.id, sink);
    }

    pub(crate) fn unregister(&self, id: ConnId) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub(crate) fn connections(&self) -> Vec<Arc<ConnSink>> {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// A running server; dropping the handle does not stop it, [`ServerHandle::shutdown`] does.
///
/// ```no_run
/// use menagerie_native::server::{Server, ServerConfig};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
/// let server = Server::start(config).await.unwrap();
/// let addr = server.local_addr(); // the port the OS picked
/// assert_eq!(server.connection_count(), 0);
/// let nodes = server.store().with_tree(|t| t.node_count());
/// assert_eq!(nodes, 4); // /, /zookeeper, /zookeeper/quota, /zookeeper/config
/// server.shutdown().await;
/// # let _ = addr;
/// # });
/// ```
pub struct ServerHandle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

/// Starts servers (see [`Server::start`]).
///
/// ```no_run
/// use menagerie_native::server::{Server, ServerConfig, Storage};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// // Serve a store that embedded sessions of this process use too.
/// let store = menagerie_native::NativeStore::new();
/// let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
/// let server = Server::start_with_store(config, store.clone()).await.unwrap();
/// assert!(std::sync::Arc::ptr_eq(server.store(), &store));
/// # });
/// ```
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Opens the storage (recovering a durable directory), binds the listener and starts serving.
    pub async fn start(config: ServerConfig) -> std::io::Result<ServerHandle> {
        let store = match &config.storage {
            Storage::InMemory => NativeStore::new(),
            Storage::Directory(dir) => {
                let dir = dir.clone();
                let options = DurableOptions {
                    fsync: config.fsync,
                    snapshot_every: config.snapshot_every,
                    ..DurableOptions::default()
                };
                tokio::task::spawn_blocking(move || NativeStore::open_durable_with(dir, options))
                    .await
                    .map_err(std::io::Error::other)??
            }
        };
        Self::start_with_store(config, store).await
    }

    /// Serves an existing store (e.g. one that embedded sessions use too).
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<NativeStore>,
    ) -> std::io::Result<ServerHandle> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store,
            config,
            local_addr,
            stats: Stats::default(),
            started: SystemTime::now(),
            conns: Mutex::new(BTreeMap::new()),
            shutdown,
            next_conn: AtomicU64::new(1),
        });
        tracing::info!(%local_addr, storage = ?shared.config.storage, "menagerie-server listening");
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        let ticker = tokio::spawn(tick_loop(shared.clone()));
        Ok(ServerHandle {
            shared,
            tasks: vec![accept, ticker],
        })
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(conn::serve(stream, shared.clone(), id));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Expires silent sessions and reaps containers / TTL nodes.
async fn tick_loop(shared: Arc<Shared>) {
    let every = Duration::from_millis(u64::from(shared.config.tick_time_ms / 4).clamp(10, 100));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = interval.tick() => shared.store.tick(),
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The store behind the server.
    pub fn store(&self) -> &Arc<NativeStore> {
        &self.shared.store
    }

    /// Expires a session now, as the server does after its timeout (tests). False if it was
    /// not live.
    pub fn expire_session(&self, session: menagerie_core::SessionId) -> bool {
        self.shared.store.expire(session)
    }

    /// Number of open client connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connections().len()
    }

    /// Stops accepting, closes every connection after what it has queued, writes out the log and
    /// stops its threads. Sessions stay in a durable store: clients may re-attach after a restart.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        self.shared.shutdown.send_replace(true);
        for sink in self.shared.connections() {
            sink.close("server shutting down");
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.shared.connections().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.stop_log()).await;
        tracing::info!(local_addr = %self.shared.local_addr, "menagerie-server stopped");
    }
}
