//! [`EtcdBackend`]: one menagerie session on etcd — a lease kept alive in the background, one
//! namespace-wide watch stream dispatched in-process, and every write as one transaction.

use crate::error::{is_lease_gone, map};
use crate::layout::{self, KeyKind, Kv, Layout, NodeKeys};
use crate::plan::{self, Pending, Plan, Sim, Snapshot, Stop};
use crate::watches::{Handle, NodeChange, WatchKind, WatchTable};
use etcd_client::{
    Client as EtcdClient, Compare, CompareOp, ConnectOptions, EventType as EtcdEventType,
    GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use menagerie_core::path::{self, validate_path};
use menagerie_core::{
    async_trait, AddWatchMode, Backend, Capabilities, CreateMode, Error, MultiOpError,
    OneshotWatch, Op, OpResult, PersistentWatch, Result, SessionEvents, SessionId, SessionState,
    Stat, StateStream, DEFAULT_MAX_DATA_LEN,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Default session timeout (the lease TTL, rounded up to whole seconds).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Smallest lease TTL etcd grants reliably (its default minimum is about 2 s).
const MIN_TTL_SECS: i64 = 2;

/// How long a write or read waits for the watch stream to deliver the events it has seen.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// Attempts at a write whose compares keep failing because of concurrent writers.
const MAX_ATTEMPTS: usize = 64;

/// Settings of an etcd session.
///
/// ```
/// use std::time::Duration;
/// let o = menagerie_etcd::EtcdOptions {
///     session_timeout: Duration::from_secs(4),
///     ..menagerie_etcd::EtcdOptions::new(vec!["127.0.0.1:2379".into()], "/app")
/// };
/// assert_eq!(o.prefix, "/app");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `host:port` of the cluster members (any subset works; requests are balanced over them).
    pub endpoints: Vec<String>,
    /// Namespace prefix of every key (`/menagerie` when empty).
    pub prefix: String,
    /// Session timeout: the lease TTL (whole seconds, at least 2 s).
    pub session_timeout: Duration,
    /// Timeout of one request to etcd.
    pub request_timeout: Duration,
    /// Timeout of establishing a connection to a member.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    /// Options with defaults for everything but the endpoints and the prefix.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            prefix: prefix.to_string(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }

    /// The lease TTL in seconds for this session timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut o = menagerie_etcd::EtcdOptions::new(vec![], "");
    /// o.session_timeout = Duration::from_millis(2500);
    /// assert_eq!(o.ttl_secs(), 3);
    /// o.session_timeout = Duration::from_millis(100);
    /// assert_eq!(o.ttl_secs(), 2);
    /// ```
    pub fn ttl_secs(&self) -> i64 {
        let ms = self.session_timeout.as_millis() as i64;
        ((ms + 999) / 1000).max(MIN_TTL_SECS)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sess {
    lease: i64,
    generation: u64,
}

/// State shared by the handle and its background tasks.
pub(crate) struct Shared {
    client: EtcdClient,
    layout: Layout,
    options: EtcdOptions,
    events: SessionEvents,
    sess: Mutex<Sess>,
    closed: AtomicBool,
    watches: Mutex<WatchTable>,
    /// Highest revision of this namespace the watch stream has dispatched.
    processed: watch::Sender<i64>,
    /// Woken when someone saw the session's lease disappear.
    lease_gone: Notify,
    /// Child-counter hints per parent path: (meta key, offsets key), from earlier answers.
    hints: Mutex<HashMap<String, (Kv, Option<Kv>)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One session on etcd, implementing [`Backend`].
///
/// The session is an etcd lease (id = [`session_id`](Backend::session_id)) kept alive in the
/// background; ephemeral nodes are attached to it. When keep-alives fail the state goes
/// `Suspended`, and `Reconnected` when they succeed again; when the lease is gone (expired or
/// revoked) the handle reports `Expired` — its ephemerals vanished atomically with the lease, its
/// watches end with `SessionExpired` — then grants a new lease and reports `Connected`.
///
/// ```no_run
/// # async fn demo() -> menagerie_core::Result<()> {
/// use menagerie_core::{Backend, CreateMode};
/// let b = menagerie_etcd::EtcdBackend::connect(menagerie_etcd::EtcdOptions::new(
///     vec!["127.0.0.1:2379".into()],
///     "/app",
/// ))
/// .await?;
/// b.create("/workers", b"", CreateMode::Persistent).await?;
/// let (path, stat) = b.create("/workers/w-", b"", CreateMode::EphemeralSequential).await?;
/// assert_eq!(stat.ephemeral_owner, b.session_id());
/// assert_eq!(path, "/workers/w-0000000000");
/// b.close().await
/// # }
/// ```
pub struct EtcdBackend {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("prefix", &self.shared.layout.prefix())
            .field("session_id", &format_args!("{:x}", self.session_id()))
            .field("state", &self.shared.events.current())
            .finish()
    }
}

async fn timed<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(map),
        Err(_) => Err(Error::OperationTimeout),
    }
}

fn header_revision(r: &TxnResponse) -> i64 {
    r.header().map(|h| h.revision()).unwrap_or(0)
}

fn gets_of(responses: &[TxnOpResponse]) -> Vec<etcd_client::GetResponse> {
    responses
        .iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.clone()),
            _ => None,
        })
        .collect()
}

impl EtcdBackend {
    /// Connects to the cluster, opens a session (a lease) and starts its keep-alive and watch
    /// tasks. Needs a Tokio runtime with the time driver.
    ///
    /// ```no_run
    /// # async fn demo() -> menagerie_core::Result<()> {
    /// let opts = menagerie_etcd::EtcdOptions::new(vec!["127.0.0.1:2379".into()], "/app");
    /// let backend = menagerie_etcd::EtcdBackend::connect(opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: EtcdOptions) -> Result<EtcdBackend> {
        if options.endpoints.is_empty() {
            return Err(Error::BadArguments {
                reason: "an etcd URL needs at least one host:port".into(),
            });
        }
        let endpoints: Vec<String> = options
            .endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let connect_options = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = timed(
            options.connect_timeout + options.request_timeout,
            EtcdClient::connect(&endpoints, Some(connect_options)),
        )
        .await?;
        let layout = Layout::new(&options.prefix);
        let (processed, _) = watch::channel(0i64);
        let shared = Arc::new(Shared {
            client,
            layout,
            options,
            events: SessionEvents::new(SessionState::Connected),
            sess: Mutex::new(Sess {
                lease: 0,
                generation: 1,
            }),
            closed: AtomicBool::new(false),
            watches: Mutex::new(WatchTable::default()),
            processed,
            lease_gone: Notify::new(),
            hints: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        // A member may be down: the balancer routes around it after a failed attempt or two.
        let setup_deadline = tokio::time::Instant::now() + shared.options.connect_timeout;
        let mut pause = Duration::from_millis(20);
        let (start, lease) = loop {
            let r = match shared.ensure_root().await {
                Ok(start) => shared.new_lease().await.map(|lease| (start, lease)),
                Err(e) => Err(e),
            };
            match r {
                Ok(v) => break v,
                Err(e) if e.is_retryable() && tokio::time::Instant::now() < setup_deadline => {
                    tracing::debug!(error = %e, "opening the etcd session failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        };
        lock(&shared.sess).lease = lease;
        shared.processed.send_replace(start);
        let dispatcher = tokio::spawn(dispatch_loop(shared.clone(), start + 1));
        let keeper = tokio::spawn(session_loop(shared.clone()));
        lock(&shared.tasks).extend([dispatcher, keeper]);
        tracing::debug!(
            lease = format!("{lease:x}"),
            prefix = shared.layout.prefix(),
            "etcd session opened"
        );
        Ok(EtcdBackend { shared })
    }

    /// The namespace prefix of this session's keys.
    pub fn prefix(&self) -> &str {
        self.shared.layout.prefix()
    }

    /// The underlying etcd client (shares this handle's connections).
    pub fn etcd_client(&self) -> EtcdClient {
        self.shared.client.clone()
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        shared.stop_tasks();
        lock(&shared.watches).end(u64::MAX, &Error::Closed);
        shared.events.publish(SessionState::Closed);
        let lease = lock(&shared.sess).lease;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let mut lc = shared.client.lease_client();
            handle.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), lc.revoke(lease)).await;
            });
        }
    }
}

impl Shared {
    fn stop_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    fn live(&self) -> Result<Sess> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(*lock(&self.sess))
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client.kv_client()
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut kv = self.kv();
        let r = timed(self.options.request_timeout, kv.txn(txn)).await;
        if let Err(Error::SessionExpired) = &r {
            self.lease_gone.notify_one();
        }
        r
    }

    /// Creates the root node if missing; returns the current revision.
    async fn ensure_root(&self) -> Result<i64> {
        let n = self.layout.node("/");
        let now = layout::now_ms();
        let txn = Txn::new()
            .when([Compare::create_revision(n.clone(), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(n, layout::node_value(now, b""), None),
                TxnOp::put(
                    self.layout.meta("/"),
                    layout::meta_value(now, layout::Kind::Plain),
                    None,
                ),
            ]);
        let r = self.txn(txn).await?;
        Ok(header_revision(&r))
    }

    /// Grants a lease and writes the session key.
    async fn new_lease(&self) -> Result<i64> {
        let mut lc = self.client.lease_client();
        let ttl = self.options.ttl_secs();
        let g = timed(self.options.request_timeout, lc.grant(ttl, None)).await?;
        let lease = g.id();
        let mut kv = self.kv();
        let key = self.layout.session(lease);
        let value = format!("menagerie session, ttl {ttl}s");
        timed(
            self.options.request_timeout,
            kv.put(key, value, Some(PutOptions::new().with_lease(lease))),
        )
        .await?;
        Ok(lease)
    }

    /// Waits (bounded) until the watch stream has dispatched every event up to `rev`.
    async fn caught_up(&self, rev: i64) {
        if *self.processed.borrow() >= rev {
            return;
        }
        let mut rx = self.processed.subscribe();
        let wait = rx.wait_for(|r| *r >= rev);
        if tokio::time::timeout(CATCH_UP_LIMIT, wait).await.is_err() {
            tracing::warn!(rev, "watch stream did not catch up in time");
        }
    }

    // ---- reads ----

    /// Reads the keys of node `p` (and the parent's delete marker) at one revision.
    async fn read_node(
        &self,
        p: &str,
        list_children: bool,
    ) -> Result<(NodeKeys, Vec<String>, i64)> {
        validate_path(p, false)?;
        Layout::check_depth(p)?;
        let l = &self.layout;
        let kids_prefix = l.children_prefix(p);
        let kids_opts = if list_children {
            GetOptions::new().with_prefix().with_keys_only()
        } else {
            GetOptions::new().with_prefix().with_count_only()
        };
        let parent = path::parent(p).unwrap_or("/");
        let txn = Txn::new().and_then([
            TxnOp::get(l.node(p), None),
            TxnOp::get(l.meta(p), None),
            TxnOp::get(l.offsets(p), None),
            TxnOp::get(l.deletes(p), None),
            TxnOp::get(kids_prefix.clone(), Some(kids_opts)),
            TxnOp::get(l.deletes(parent), None),
        ]);
        let r = self.txn(txn).await?;
        let rev = header_revision(&r);
        let gets = gets_of(&r.op_responses());
        let first = |i: usize| gets.get(i).and_then(|g| g.kvs().first()).map(Kv::from);
        let mut keys = NodeKeys {
            n: first(0),
            m: first(1),
            o: first(2),
            d: first(3),
            num_children: 0,
        };
        let mut names = Vec::new();
        let mut seen = keys.seen();
        if let Some(g) = gets.get(4) {
            if list_children {
                for kv in g.kvs() {
                    seen = seen.max(kv.mod_revision());
                    if let Some(name) = kv
                        .key()
                        .strip_prefix(kids_prefix.as_slice())
                        .and_then(|n| std::str::from_utf8(n).ok())
                    {
                        names.push(name.to_string());
                    }
                }
                keys.num_children = names.len() as i64;
            } else {
                keys.num_children = g.count();
            }
        }
        if let Some(d) = first(5) {
            seen = seen.max(d.mod_revision);
        }
        self.caught_up(seen).await;
        Ok((keys, names, rev))
    }

    fn register(&self, p: &str, kind: WatchKind, generation: u64) -> (u64, Handle) {
        lock(&self.watches).register(p, kind, generation)
    }

    fn arm(&self, id: u64, rev: i64) {
        lock(&self.watches).arm(id, rev);
    }

    fn unregister(&self, id: u64) {
        lock(&self.watches).unregister(id);
    }

    // ---- writes ----

    fn hint_snapshot(&self, ops: &[Op]) -> Snapshot {
        let mut snap = Snapshot::default();
        let hints = lock(&self.hints);
        for op in ops {
            if let Op::Create { path: p, mode, .. } = op {
                if mode.is_sequential() {
                    let slash = p.rfind('/').unwrap_or(0);
                    let parent = if slash == 0 { "/" } else { &p[..slash] };
                    if let Some((m, o)) = hints.get(parent) {
                        plan::counter_hint(&mut snap, &self.layout, parent, m.clone(), o.clone());
                    }
                }
            }
        }
        snap
    }

    fn remember_hints(&self, snap: &Snapshot, ops: &[Op]) {
        let mut hints = lock(&self.hints);
        if hints.len() > 4096 {
            hints.clear();
        }
        for op in ops {
            if let Op::Create { path: p, mode, .. } = op {
                if mode.is_sequential() {
                    let slash = p.rfind('/').unwrap_or(0);
                    let parent = if slash == 0 { "/" } else { &p[..slash] };
                    let m = snap.keys.get(&self.layout.meta(parent)).cloned().flatten();
                    let o = snap
                        .keys
                        .get(&self.layout.offsets(parent))
                        .cloned()
                        .flatten();
                    match m {
                        Some(m) => {
                            hints.insert(parent.to_string(), (m, o));
                        }
                        None => {
                            hints.remove(parent);
                        }
                    }
                }
            }
        }
    }

    /// After a successful write, the parent counters moved: update the hints we hold.
    fn bump_hints(&self, ops: &[Op]) {
        let mut hints = lock(&self.hints);
        let mut bumped: HashMap<String, i64> = HashMap::new();
        for op in ops {
            if let Op::Create { path: p, .. } = op {
                let slash = p.rfind('/').unwrap_or(0);
                let parent = if slash == 0 { "/" } else { &p[..slash] };
                *bumped.entry(parent.to_string()).or_default() += 1;
            }
        }
        for (parent, k) in bumped {
            if let Some((m, _)) = hints.get_mut(&parent) {
                if k == 1 {
                    m.version += 1;
                } else {
                    // The offsets key changed too: forget the hint.
                    hints.remove(&parent);
                }
            }
        }
    }

    async fn read_snapshot(&self, paths: &[String], kids: &[String]) -> Result<Snapshot> {
        let reads = plan::snapshot_reads(&self.layout, paths, kids);
        let r = self.txn(Txn::new().and_then(reads)).await?;
        Ok(plan::read_snapshot(
            &self.layout,
            paths,
            kids,
            &gets_of(&r.op_responses()),
        ))
    }

    /// Paths an operation list touches (targets and parents), for snapshot reads.
    fn op_paths(ops: &[Op]) -> (Vec<String>, Vec<String>) {
        let mut paths = Vec::new();
        let mut kids = Vec::new();
        let add = |p: &str, v: &mut Vec<String>| {
            if validate_path(p, true).is_ok() && !v.iter().any(|x| x == p) {
                v.push(p.to_string());
            }
        };
        for op in ops {
            let p = op.path();
            let slash = p.rfind('/').unwrap_or(0);
            let parent = if slash == 0 { "/" } else { &p[..slash] };
            if !p.ends_with('/') {
                add(p, &mut paths);
            }
            add(parent, &mut paths);
            if let Op::Delete { .. } = op {
                add(p, &mut kids);
            }
        }
        (paths, kids)
    }

    /// Runs `ops` as one transaction (retrying only when a guess was stale); `Err(Stop::Fail)`
    /// carries the first failing operation.
    async fn write(&self, ops: &[Op]) -> std::result::Result<Vec<OpResult>, WriteError> {
        let sess = self.live().map_err(WriteError::Other)?;
        let mut snap = self.hint_snapshot(ops);
        let (mut extra_paths, op_kids) = Shared::op_paths(ops);
        let mut reads = 0;
        let mut attempts = 0;
        loop {
            let lease = sess.lease;
            let sim = Sim::new(&self.layout, &snap, lease, DEFAULT_MAX_DATA_LEN);
            let (result, touched) = sim.run_tracked(ops);
            let plan = match result {
                Ok(plan) => plan,
                Err(Stop::Fail { index, error }) => return Err(WriteError::Op { index, error }),
                Err(Stop::NeedRead) => {
                    reads += 1;
                    if reads > MAX_ATTEMPTS {
                        return Err(WriteError::Other(Error::OperationTimeout));
                    }
                    for p in touched {
                        if !extra_paths.contains(&p) {
                            extra_paths.push(p);
                        }
                    }
                    snap = self
                        .read_snapshot(&extra_paths, &op_kids)
                        .await
                        .map_err(WriteError::Other)?;
                    self.remember_hints(&snap, ops);
                    continue;
                }
            };
            attempts += 1;
            let r = self.run_plan(&plan).await.map_err(WriteError::Other)?;
            match r {
                PlanOutcome::Done(results) => {
                    self.bump_hints(ops);
                    return Ok(results);
                }
                PlanOutcome::Conflict(s) => {
                    snap = s;
                    self.remember_hints(&snap, ops);
                    if attempts >= MAX_ATTEMPTS {
                        return Err(WriteError::Other(Error::OperationTimeout));
                    }
                    if attempts > 2 {
                        // Contention: back off a little, with jitter.
                        let ms = (attempts as u64 * 3) + (layout::now_ms() as u64 % 7);
                        tokio::time::sleep(Duration::from_millis(ms.min(100))).await;
                    }
                }
            }
        }
    }

    async fn run_plan(&self, plan: &Plan) -> Result<PlanOutcome> {
        let l = &self.layout;
        let mut success = plan.writes.clone();
        for p in &plan.post {
            success.push(TxnOp::get(l.node(p), None));
            success.push(TxnOp::get(l.meta(p), None));
            success.push(TxnOp::get(l.offsets(p), None));
            success.push(TxnOp::get(l.deletes(p), None));
            success.push(TxnOp::get(
                l.children_prefix(p),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ));
        }
        let failure = plan::snapshot_reads(l, &plan.snap_paths, &plan.snap_kids);
        let txn = Txn::new()
            .when(plan.compares.clone())
            .and_then(success)
            .or_else(failure);
        let r = self.txn(txn).await?;
        let rev = header_revision(&r);
        let responses = r.op_responses();
        if !r.succeeded() {
            let snap =
                plan::read_snapshot(l, &plan.snap_paths, &plan.snap_kids, &gets_of(&responses));
            return Ok(PlanOutcome::Conflict(snap));
        }
        let gets = gets_of(&responses[plan.writes.len().min(responses.len())..]);
        let mut post: HashMap<&str, NodeKeys> = HashMap::new();
        for (i, p) in plan.post.iter().enumerate() {
            let first = |j: usize| {
                gets.get(i * 5 + j)
                    .and_then(|g| g.kvs().first())
                    .map(Kv::from)
            };
            post.insert(
                p.as_str(),
                NodeKeys {
                    n: first(0),
                    m: first(1),
                    o: first(2),
                    d: first(3),
                    num_children: gets.get(i * 5 + 4).map(|g| g.count()).unwrap_or(0),
                },
            );
        }
        let results = plan
            .results
            .iter()
            .map(|pending| match pending {
                Pending::Create {
                    path,
                    data_len,
                    owner,
                    time,
                } => OpResult::Create {
                    path: path.clone(),
                    stat: Stat {
                        czxid: rev,
                        mzxid: rev,
                        ctime: *time,
                        mtime: *time,
                        version: 0,
                        cversion: 0,
                        aversion: 0,
                        ephemeral_owner: *owner,
                        data_length: *data_len as i32,
                        num_children: 0,
                        pzxid: rev,
                    },
                },
                Pending::Set {
                    path,
                    data_len,
                    later_sets,
                    time,
                } => {
                    let mut stat = post
                        .get(path.as_str())
                        .and_then(NodeKeys::stat)
                        .unwrap_or_default();
                    stat.version = stat.version.wrapping_sub(*later_sets as i32);
                    stat.data_length = *data_len as i32;
                    stat.mzxid = rev;
                    stat.mtime = *time;
                    OpResult::SetData { stat }
                }
                Pending::Delete => OpResult::Delete,
                Pending::Check => OpResult::Check,
            })
            .collect();
        if !plan.read_only {
            self.caught_up(rev).await;
        }
        Ok(PlanOutcome::Done(results))
    }
}

enum PlanOutcome {
    Done(Vec<OpResult>),
    Conflict(Snapshot),
}

enum WriteError {
    Op { index: usize, error: Error },
    Other(Error),
}

impl Shared {
    async fn single(&self, op: Op) -> Result<OpResult> {
        match self.write(std::slice::from_ref(&op)).await {
            Ok(mut r) => r.pop().ok_or_else(|| Error::Backend {
                message: "internal: no result for a single operation".into(),
            }),
            Err(WriteError::Op { error, .. }) | Err(WriteError::Other(error)) => Err(error),
        }
    }
}

// ---- background: the watch stream ----

async fn dispatch_loop(shared: Arc<Shared>, mut next: i64) {
    let ns = shared.layout.namespace();
    let mut backoff = Duration::from_millis(50);
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let mut wc = shared
            .client
            .watch_client()
            .max_decoding_message_size(64 << 20);
        let opts = WatchOptions::new().with_prefix().with_start_revision(next);
        let stream = tokio::time::timeout(
            shared.options.request_timeout,
            wc.watch(ns.clone(), Some(opts)),
        )
        .await;
        let mut stream = match stream {
            Ok(Ok(s)) => s,
            other => {
                tracing::debug!(?other, "etcd watch stream: could not open, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        loop {
            let msg = stream.message().await;
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::debug!("etcd watch stream ended, reopening");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "etcd watch stream failed, reopening");
                    break;
                }
            };
            backoff = Duration::from_millis(50);
            if resp.compact_revision() > 0 {
                tracing::error!(
                    compacted = resp.compact_revision(),
                    wanted = next,
                    "etcd compacted revisions the watch stream still needed: ending the watches that may have missed events"
                );
                lock(&shared.watches).end(
                    u64::MAX,
                    &Error::Backend {
                        message: "etcd compacted the history this watch needed; read again and set a new watch".into(),
                    },
                );
                next = resp.compact_revision();
                break;
            }
            if resp.canceled() {
                tracing::debug!(
                    reason = resp.cancel_reason(),
                    "etcd watch canceled, reopening"
                );
                break;
            }
            let mut top = 0;
            {
                let lease = lock(&shared.sess).lease;
                let mut table = lock(&shared.watches);
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let rev = kv.mod_revision();
                    top = top.max(rev);
                    match shared.layout.classify(kv.key()) {
                        KeyKind::Node(p) => {
                            let change = match ev.event_type() {
                                EtcdEventType::Delete => NodeChange::Deleted,
                                EtcdEventType::Put if kv.version() == 1 => NodeChange::Created,
                                EtcdEventType::Put => NodeChange::Changed,
                            };
                            table.dispatch(rev, &p, change);
                        }
                        KeyKind::Session(l) => {
                            if l == lease && ev.event_type() == EtcdEventType::Delete {
                                shared.lease_gone.notify_one();
                            }
                        }
                        KeyKind::Other => {}
                    }
                }
            }
            if top > 0 {
                next = next.max(top + 1);
                shared.processed.send_if_modified(|r| {
                    if top > *r {
                        *r = top;
                        true
                    } else {
                        false
                    }
                });
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

// ---- background: the lease ----

enum LeaseEnd {
    Gone,
    Closed,
}

async fn session_loop(shared: Arc<Shared>) {
    loop {
        let sess = *lock(&shared.sess);
        match keep_alive(&shared, sess.lease).await {
            LeaseEnd::Closed => return,
            LeaseEnd::Gone => {}
        }
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        tracing::info!(lease = format!("{:x}", sess.lease), "etcd session expired");
        lock(&shared.watches).end(sess.generation, &Error::SessionExpired);
        shared.events.publish(SessionState::Expired);
        let mut wait = Duration::from_millis(50);
        loop {
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            match shared.new_lease().await {
                Ok(lease) => {
                    {
                        let mut s = lock(&shared.sess);
                        s.lease = lease;
                        s.generation = sess.generation + 1;
                    }
                    tracing::info!(lease = format!("{lease:x}"), "etcd session renewed");
                    shared.events.publish(SessionState::Connected);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "granting a new lease failed, retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Keeps `lease` alive until it is gone or the handle closes, reporting Suspended / Reconnected.
async fn keep_alive(shared: &Arc<Shared>, lease: i64) -> LeaseEnd {
    let ttl = Duration::from_secs(shared.options.ttl_secs() as u64);
    let interval = (ttl / 3).min(Duration::from_secs(1));
    let answer_limit = shared
        .options
        .request_timeout
        .min(ttl / 2)
        .max(Duration::from_millis(500));
    let mut suspended = false;
    let mut stream = None;
    let mut lc = shared.client.lease_client();
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return LeaseEnd::Closed;
        }
        let ok = if stream.is_none() {
            match tokio::time::timeout(answer_limit, lc.keep_alive(lease)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    true
                }
                Ok(Err(e)) if is_lease_gone(&e) => return LeaseEnd::Gone,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "lease keep-alive failed");
                    false
                }
                Err(_) => false,
            }
        } else {
            let Some((keeper, responses)) = stream.as_mut() else {
                continue;
            };
            let sent = keeper.keep_alive().await.is_ok();
            let answer = if sent {
                tokio::time::timeout(answer_limit, responses.message()).await
            } else {
                Ok(Ok(None))
            };
            match answer {
                Ok(Ok(Some(r))) if r.ttl() <= 0 => return LeaseEnd::Gone,
                Ok(Ok(Some(_))) => true,
                Ok(Err(e)) if is_lease_gone(&e) => return LeaseEnd::Gone,
                _ => {
                    stream = None;
                    false
                }
            }
        };
        if ok && suspended {
            suspended = false;
            shared.events.publish(SessionState::Reconnected);
        } else if !ok && !suspended {
            suspended = true;
            tracing::info!(
                lease = format!("{lease:x}"),
                "etcd keep-alive lost: suspended"
            );
            shared.events.publish(SessionState::Suspended);
        }
        let pause = if ok {
            interval
        } else {
            Duration::from_millis(200)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.lease_gone.notified() => {
                // Someone saw the lease disappear: ask at once (the answer decides).
                stream = None;
            }
        }
    }
}

// ---- the contract ----

fn multi_error(len: usize, index: usize, error: Error) -> Error {
    Error::MultiFailed {
        index,
        results: MultiOpError::for_failure(len, index, error.kind()),
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn session_id(&self) -> SessionId {
        lock(&self.shared.sess).lease
    }

    fn state(&self) -> SessionState {
        self.shared.events.current()
    }

    fn state_stream(&self) -> StateStream {
        self.shared.events.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            container: false,
            ttl: false,
            persistent_watches: true,
            max_data_len: DEFAULT_MAX_DATA_LEN,
        }
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat)> {
        match self.shared.single(Op::create(path, data, mode)).await? {
            OpResult::Create { path, stat } => Ok((path, stat)),
            other => Err(Error::Backend {
                message: format!("internal: create answered {other:?}"),
            }),
        }
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        self.shared.live()?;
        let (keys, _, _) = self.shared.read_node(path, false).await?;
        let stat = keys
            .stat()
            .ok_or_else(|| Error::NoNode { path: path.into() })?;
        let data = keys
            .n
            .as_ref()
            .map(|n| layout::split_node_value(&n.value).1.to_vec())
            .unwrap_or_default();
        Ok((data, stat))
    }

    async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)> {
        let sess = self.shared.live()?;
        validate_path(path, false)?;
        let (id, handle) = self.shared.register(path, WatchKind::Data, sess.generation);
        let r = self.shared.read_node(path, false).await;
        match r {
            Ok((keys, _, rev)) => match keys.stat() {
                Some(stat) => {
                    self.shared.arm(id, rev);
                    let data = keys
                        .n
                        .as_ref()
                        .map(|n| layout::split_node_value(&n.value).1.to_vec())
                        .unwrap_or_default();
                    match handle {
                        Handle::Once(w) => Ok((data, stat, w)),
                        Handle::Stream(_) => Err(internal_watch()),
                    }
                }
                None => {
                    self.shared.unregister(id);
                    Err(Error::NoNode { path: path.into() })
                }
            },
            Err(e) => {
                self.shared.unregister(id);
                Err(e)
            }
        }
    }

    async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.shared.live()?;
        let (keys, _, _) = self.shared.read_node(path, false).await?;
        Ok(keys.stat())
    }

    async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        let sess = self.shared.live()?;
        validate_path(path, false)?;
        let (id, handle) = self.shared.register(path, WatchKind::Data, sess.generation);
        match self.shared.read_node(path, false).await {
            Ok((keys, _, rev)) => {
                self.shared.arm(id, rev);
                match handle {
                    Handle::Once(w) => Ok((keys.stat(), w)),
                    Handle::Stream(_) => Err(internal_watch()),
                }
            }
            Err(e) => {
                self.shared.unregister(id);
                Err(e)
            }
        }
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        match self.shared.single(Op::set(path, data, version)).await? {
            OpResult::SetData { stat } => Ok(stat),
            other => Err(Error::Backend {
                message: format!("internal: set answered {other:?}"),
            }),
        }
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        self.shared
            .single(Op::delete(path, version))
            .await
            .map(|_| ())
    }

    async fn children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.shared.live()?;
        let (keys, names, _) = self.shared.read_node(path, true).await?;
        let stat = keys
            .stat()
            .ok_or_else(|| Error::NoNode { path: path.into() })?;
        Ok((names, stat))
    }

    async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneshotWatch)> {
        let sess = self.shared.live()?;
        validate_path(path, false)?;
        let (id, handle) = self
            .shared
            .register(path, WatchKind::Child, sess.generation);
        match self.shared.read_node(path, true).await {
            Ok((keys, names, rev)) => match keys.stat() {
                Some(stat) => {
                    self.shared.arm(id, rev);
                    match handle {
                        Handle::Once(w) => Ok((names, stat, w)),
                        Handle::Stream(_) => Err(internal_watch()),
                    }
                }
                None => {
                    self.shared.unregister(id);
                    Err(Error::NoNode { path: path.into() })
                }
            },
            Err(e) => {
                self.shared.unregister(id);
                Err(e)
            }
        }
    }

    async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        self.shared.live()?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        match self.shared.write(ops).await {
            Ok(r) => Ok(r),
            Err(WriteError::Op { index, error }) => Err(multi_error(ops.len(), index, error)),
            Err(WriteError::Other(e)) => Err(e),
        }
    }

    async fn sync(&self, path: &str) -> Result<()> {
        let sess = self.shared.live()?;
        validate_path(path, false)?;
        // A write of this session's own key: once its event is dispatched, every earlier
        // write of the namespace has been too.
        let mut kv = self.shared.kv();
        let r = timed(
            self.shared.options.request_timeout,
            kv.put(
                self.shared.layout.session(sess.lease),
                format!("menagerie session, ttl {}s", self.shared.options.ttl_secs()),
                Some(PutOptions::new().with_lease(sess.lease)),
            ),
        )
        .await;
        let r = match r {
            Err(Error::SessionExpired) => {
                self.shared.lease_gone.notify_one();
                return Err(Error::SessionExpired);
            }
            other => other?,
        };
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.shared.caught_up(rev).await;
        Ok(())
    }

    async fn watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        let sess = self.shared.live()?;
        validate_path(path, false)?;
        Layout::check_depth(path)?;
        let kind = match mode {
            AddWatchMode::Persistent => WatchKind::Persistent,
            AddWatchMode::PersistentRecursive => WatchKind::Recursive,
        };
        let (id, handle) = self.shared.register(path, kind, sess.generation);
        // The current revision: events after it are reported.
        let txn = Txn::new().and_then([TxnOp::get(
            self.shared.layout.node(path),
            Some(GetOptions::new().with_count_only()),
        )]);
        match self.shared.txn(txn).await {
            Ok(r) => {
                self.shared.arm(id, header_revision(&r));
                match handle {
                    Handle::Stream(w) => Ok(w),
                    Handle::Once(_) => Err(internal_watch()),
                }
            }
            Err(e) => {
                self.shared.unregister(id);
                Err(e)
            }
        }
    }

    async fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        self.shared.stop_tasks();
        let lease = lock(&self.shared.sess).lease;
        let mut lc = self.shared.client.lease_client();
        match tokio::time::timeout(self.shared.options.request_timeout, lc.revoke(lease)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if is_lease_gone(&e) => {}
            other => tracing::warn!(
                ?other,
                "revoking the session's lease failed; it expires after its TTL"
            ),
        }
        lock(&self.shared.watches).end(u64::MAX, &Error::Closed);
        self.shared.events.publish(SessionState::Closed);
        Ok(())
    }
}

fn internal_watch() -> Error {
    Error::Backend {
        message: "internal: watch of the wrong kind".into(),
    }
}
