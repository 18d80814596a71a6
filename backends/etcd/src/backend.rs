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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, OwnedMutexGuard};
use tokio::task::JoinHandle;

/// Default session timeout (the lease TTL, rounded up to whole seconds).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Smallest lease TTL etcd grants reliably (its default minimum is about 2 s).
const MIN_TTL_SECS: i64 = 2;

/// How long a write or read waits for the watch stream to deliver the events it has seen.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// Attempts at a write whose compares keep failing because of concurrent writers (each failed
/// attempt means another writer's transaction went through), and reads a write may need.
const MAX_ATTEMPTS: usize = 128;

/// Conflicts retried at once, on the failure branch's snapshot: it was read at the revision that
/// beat the attempt, so it is as fresh as anything the handle could learn.
const IMMEDIATE_RETRIES: usize = 2;

/// Longest pause between two attempts of a contended write (full jitter below it).
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Counter values one transaction of a sequential create tries: the one the handle knows of, and
/// the next ones (other clients' creates it has not heard of yet).
const COUNTER_GUESSES: usize = 8;

/// How long other clients' creates under a parent make a handle try several counter values.
const CONTENTION_MEMORY: Duration = Duration::from_secs(1);

/// etcd's default `--max-txn-ops`. It bounds a whole nest of transactions: each nested
/// transaction may use what its parents' largest part (compares, success or failure ops) left.
const TXN_OP_BUDGET: usize = 128;

/// Writes carrying more data than this try one counter value per transaction.
const GUESS_PAYLOAD_LIMIT: usize = 16 * 1024;

/// Parents whose counter hints (and sequential-create gates) a handle keeps at most.
const MAX_HINTS: usize = 4096;

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

/// What a handle knows of a parent's child counter: its meta and offsets keys as of revision
/// `rev`. Filled from reads and failed transactions, and kept current by the watch stream (every
/// child create re-puts the meta key), so a sequential create usually guesses the counter right
/// in its first transaction even when other clients create children of the same parent.
#[derive(Debug, Clone)]
struct CounterHint {
    m: Kv,
    o: Option<Kv>,
    rev: i64,
    /// The meta key's etcd version after this handle's last create under the parent (0: none
    /// yet). When the hint is beyond it, other clients create children here too.
    own: i64,
    /// Until when the parent counts as contended (other clients were seen creating children):
    /// sequential creates then try several counter values per transaction.
    contended_until: Option<Instant>,
}

/// A change of a meta or offsets key, as the watch stream delivered it.
struct CounterChange {
    path: String,
    meta: bool,
    kv: Option<Kv>,
    rev: i64,
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
    /// Child-counter hints per parent path.
    hints: Mutex<HashMap<String, CounterHint>>,
    /// One sequential create (or multi with some) per parent at a time in this handle: concurrent
    /// ones would only beat each other's counter guess.
    seq_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
            seq_gates: Mutex::new(HashMap::new()),
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

    /// A snapshot holding what the hints say of the counters of `parents` (nothing else).
    fn hint_snapshot(&self, parents: &[String]) -> Snapshot {
        let mut snap = Snapshot::default();
        let hints = lock(&self.hints);
        for parent in parents {
            if let Some(h) = hints.get(parent) {
                plan::counter_hint(&mut snap, &self.layout, parent, h.m.clone(), h.o.clone());
            }
        }
        snap
    }

    /// Keeps what a snapshot read at one revision says of the counters of `parents`, unless
    /// the hints already know a later state.
    fn remember_hints(&self, snap: &Snapshot, parents: &[String]) {
        if snap.rev <= 0 || parents.is_empty() {
            return;
        }
        let mut hints = lock(&self.hints);
        if hints.len() > MAX_HINTS {
            hints.clear();
        }
        for parent in parents {
            let Some(m) = snap.keys.get(&self.layout.meta(parent)) else {
                continue;
            };
            if hints.get(parent).is_some_and(|h| h.rev >= snap.rev) {
                continue;
            }
            match m {
                Some(m) => {
                    let o = snap
                        .keys
                        .get(&self.layout.offsets(parent))
                        .cloned()
                        .flatten();
                    let (own, contended_until) = hints
                        .get(parent)
                        .map_or((0, None), |h| (h.own, h.contended_until));
                    hints.insert(
                        parent.clone(),
                        CounterHint {
                            m: m.clone(),
                            o,
                            rev: snap.rev,
                            own,
                            contended_until,
                        },
                    );
                }
                None => {
                    hints.remove(parent);
                }
            }
        }
    }

    /// `snap` with the counter keys of `parents` replaced by what the hints know of a later
    /// revision (the watch stream often has seen the creates that beat a failed attempt).
    fn freshen(&self, mut snap: Snapshot, parents: &[String]) -> Snapshot {
        let hints = lock(&self.hints);
        for parent in parents {
            if let Some(h) = hints.get(parent).filter(|h| h.rev > snap.rev) {
                plan::counter_hint(&mut snap, &self.layout, parent, h.m.clone(), h.o.clone());
                snap.mixed = true;
            }
        }
        snap
    }

    /// Applies meta / offsets key changes from the watch stream (in revision order) to the
    /// hints held; parents without a hint are not tracked.
    fn observe_counters(&self, changes: Vec<CounterChange>) {
        let mut hints = lock(&self.hints);
        if hints.is_empty() {
            return;
        }
        for c in changes {
            let Some(h) = hints.get_mut(&c.path) else {
                continue;
            };
            if c.rev < h.rev {
                continue;
            }
            h.rev = c.rev;
            match (c.meta, c.kv) {
                (true, Some(m)) => h.m = m,
                (true, None) => {
                    // The parent is gone: its next incarnation starts a new counter.
                    hints.remove(&c.path);
                }
                (false, o) => h.o = o,
            }
        }
    }

    /// How many counter values the first transaction of a write tries: several while its (single)
    /// sequential parent is contended — other clients were seen creating children there in the
    /// last [`CONTENTION_MEMORY`] — or nothing is known of it yet; one for a writer that has the
    /// parent to itself.
    fn guess_window(&self, parents: &[String]) -> usize {
        let [parent] = parents else {
            return 1;
        };
        let mut hints = lock(&self.hints);
        let Some(h) = hints.get_mut(parent) else {
            return COUNTER_GUESSES;
        };
        if h.own == 0 {
            return COUNTER_GUESSES;
        }
        let now = Instant::now();
        if h.m.version > h.own {
            // Children were created since this handle's last create: someone else's.
            h.contended_until = Some(now + CONTENTION_MEMORY);
        }
        if h.contended_until.is_some_and(|t| t > now) {
            COUNTER_GUESSES
        } else {
            1
        }
    }

    /// Records that other clients create children of `parents` (a conflict, or a later counter
    /// guess applied).
    fn note_contention(&self, parents: &[String]) {
        let until = Instant::now() + CONTENTION_MEMORY;
        let mut hints = lock(&self.hints);
        for parent in parents {
            if let Some(h) = hints.get_mut(parent) {
                h.contended_until = Some(until);
            }
        }
    }

    /// Notes the meta versions a successful transaction left behind (see [`CounterHint::own`]).
    fn note_own_creates(&self, counters: &[(String, i64)]) {
        let mut hints = lock(&self.hints);
        for (parent, pre) in counters {
            if let Some(h) = hints.get_mut(parent) {
                h.own = h.own.max(pre + 1);
            }
        }
    }

    /// Waits for this handle's other sequential creates under `parents` (sorted, so two writes
    /// never wait for each other).
    async fn seq_gates(&self, parents: &[String]) -> Vec<OwnedMutexGuard<()>> {
        let mut guards = Vec::with_capacity(parents.len());
        for p in parents {
            let gate = {
                let mut gates = lock(&self.seq_gates);
                if gates.len() > MAX_HINTS {
                    gates.retain(|_, g| Arc::strong_count(g) > 1);
                }
                gates.entry(p.clone()).or_default().clone()
            };
            guards.push(gate.lock_owned().await);
        }
        guards
    }

    async fn read_snapshot(&self, paths: &[String], kids: &[String]) -> Result<Snapshot> {
        let reads = plan::snapshot_reads(&self.layout, paths, kids);
        let r = self.txn(Txn::new().and_then(reads)).await?;
        Ok(plan::read_snapshot(
            &self.layout,
            paths,
            kids,
            &gets_of(&r.op_responses()),
            header_revision(&r),
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

    /// `plan`, followed by the plans for the cases that 1, 2, … other children of the parent were
    /// created since `snap` (`window` plans at most, as many as fit [`TXN_OP_BUDGET`]): one
    /// transaction tries them in turn, so a create whose counter hint lags a few creates behind
    /// still succeeds at once. Only for writes whose sequential creates share one parent, and
    /// small ones (every guess carries the data).
    fn counter_guesses(
        &self,
        plan: Plan,
        snap: &Snapshot,
        ops: &[Op],
        parents: &[String],
        lease: i64,
        window: usize,
    ) -> Vec<Plan> {
        let mut plans = vec![plan];
        if window <= 1 {
            return plans;
        }
        let [parent] = parents else {
            return plans;
        };
        let payload: usize = ops
            .iter()
            .map(|op| match op {
                Op::Create { data, .. } | Op::SetData { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        if payload > GUESS_PAYLOAD_LIMIT {
            return plans;
        }
        // What each nesting level costs of etcd's op budget: its largest part. A level's failure
        // branch is the next level, the last one's the reads of the first plan's keys.
        let reads = plans[0].snap_paths.len() * 3 + plans[0].snap_kids.len();
        let part = |p: &Plan, failure: usize| {
            p.compares
                .len()
                .max(p.writes.len() + 5 * p.post.len())
                .max(failure)
        };
        let mut above = 0;
        for ahead in 1..window.min(COUNTER_GUESSES) as i64 {
            let Some(s) = plan::counter_ahead(snap, &self.layout, parent, ahead) else {
                break;
            };
            let Ok(p) = Sim::new(&self.layout, &s, lease, DEFAULT_MAX_DATA_LEN)
                .run_tracked(ops)
                .0
            else {
                break;
            };
            let prev = plans.last().map_or(0, |q| part(q, 1));
            if above + prev + part(&p, reads) > TXN_OP_BUDGET {
                break;
            }
            above += prev;
            plans.push(p);
        }
        plans
    }

    /// Runs `plans`; if etcd refuses the nest as too large (a cluster with a `--max-txn-ops`
    /// below the default), the first plan alone. A refused request was not applied.
    async fn run_guesses(&self, plans: &[Plan]) -> Result<PlanOutcome> {
        match self.run_plans(plans).await {
            Err(Error::BadArguments { reason })
                if plans.len() > 1 && reason.contains("too many operations") =>
            {
                tracing::debug!(
                    guesses = plans.len(),
                    "etcd refused the nested counter guesses; trying one"
                );
                self.run_plans(&plans[..1]).await
            }
            other => other,
        }
    }

    /// Runs `ops` as one transaction (retrying only when a guess was stale); `Err(Stop::Fail)`
    /// carries the first failing operation.
    ///
    /// A failed attempt (its compares failed) means another writer's transaction changed a key
    /// the attempt depended on — typically the child counter, for sequential creates under a
    /// busy parent — so every round of conflicting attempts lets one writer through. The loser
    /// retries at once on the failure branch's snapshot, read at the revision that beat it; after
    /// [`IMMEDIATE_RETRIES`] it first backs off (full jitter, up to [`MAX_BACKOFF`]). Either way
    /// the counters it guesses are the latest the handle knows — the watch stream keeps the hints
    /// current, also while the writer sleeps — never ones that went stale during the pause.
    async fn write(&self, ops: &[Op]) -> std::result::Result<Vec<OpResult>, WriteError> {
        let sess = self.live().map_err(WriteError::Other)?;
        let parents = sequential_parents(ops);
        let _gates = self.seq_gates(&parents).await;
        let mut snap = self.hint_snapshot(&parents);
        let (mut extra_paths, op_kids) = Shared::op_paths(ops);
        let mut reads = 0;
        let mut conflicts = 0;
        let mut window = self.guess_window(&parents);
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
                        tracing::warn!(reads, "a write kept needing reads; giving up");
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
                    self.remember_hints(&snap, &parents);
                    continue;
                }
            };
            let plans = self.counter_guesses(plan, &snap, ops, &parents, lease, window);
            match self.run_guesses(&plans).await.map_err(WriteError::Other)? {
                PlanOutcome::Done {
                    results,
                    counters,
                    guess,
                } => {
                    if guess > 0 {
                        self.note_contention(&parents);
                    }
                    self.note_own_creates(&counters);
                    return Ok(results);
                }
                PlanOutcome::Conflict(s) => {
                    conflicts += 1;
                    window = COUNTER_GUESSES;
                    if !parents.is_empty() {
                        self.note_contention(&parents);
                    }
                    self.remember_hints(&s, &parents);
                    if conflicts >= MAX_ATTEMPTS {
                        tracing::warn!(
                            conflicts,
                            "a write lost every attempt to concurrent writers; giving up"
                        );
                        return Err(WriteError::Other(Error::OperationTimeout));
                    }
                    tracing::trace!(conflicts, rev = s.rev, "write conflicted, retrying");
                    if conflicts > IMMEDIATE_RETRIES {
                        tokio::time::sleep(backoff(conflicts - IMMEDIATE_RETRIES)).await;
                    }
                    snap = self.freshen(s, &parents);
                }
            }
        }
    }

    /// Runs `plans` — alternatives for successive counter values, the first the likeliest — as
    /// ONE transaction: each plan's compares guard its writes, and its failure branch holds the
    /// next plan as a nested transaction; the last one's failure branch reads the first plan's
    /// keys. etcd applies at most one plan's writes, at one revision.
    async fn run_plans(&self, plans: &[Plan]) -> Result<PlanOutcome> {
        let l = &self.layout;
        let Some(first) = plans.first() else {
            return Err(Error::Backend {
                message: "internal: no plan to run".into(),
            });
        };
        let mut nested: Option<Txn> = None;
        for plan in plans.iter().rev() {
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
            let failure = match nested.take() {
                Some(next) => vec![TxnOp::txn(next)],
                None => plan::snapshot_reads(l, &first.snap_paths, &first.snap_kids),
            };
            nested = Some(
                Txn::new()
                    .when(plan.compares.clone())
                    .and_then(success)
                    .or_else(failure),
            );
        }
        let Some(txn) = nested else {
            return Err(Error::Backend {
                message: "internal: no plan to run".into(),
            });
        };
        let top = self.txn(txn).await?;
        let rev = header_revision(&top);
        // Down the failure branches to the plan that was applied, if any.
        let mut r = top;
        let mut applied = 0;
        while !r.succeeded() && applied + 1 < plans.len() {
            match r.op_responses().into_iter().next() {
                Some(TxnOpResponse::Txn(inner)) => {
                    r = inner;
                    applied += 1;
                }
                _ => {
                    return Err(Error::Backend {
                        message: "internal: etcd answered a nested transaction without its \
                                  response"
                            .into(),
                    })
                }
            }
        }
        let responses = r.op_responses();
        if !r.succeeded() {
            let snap = plan::read_snapshot(
                l,
                &first.snap_paths,
                &first.snap_kids,
                &gets_of(&responses),
                rev,
            );
            return Ok(PlanOutcome::Conflict(snap));
        }
        if applied > 0 {
            tracing::trace!(applied, "a later counter guess of the transaction applied");
        }
        let plan = &plans[applied];
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
        Ok(PlanOutcome::Done {
            results,
            counters: plan.counters.clone(),
            guess: applied,
        })
    }
}

/// The parents of the sequential creates among `ops`, sorted and distinct.
fn sequential_parents(ops: &[Op]) -> Vec<String> {
    let mut parents: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Create { path: p, mode, .. } if mode.is_sequential() => {
                // The parent of `/a/` (sequential) is `/a`; of `/a/b-` it is `/a`.
                let slash = p.rfind('/').unwrap_or(0);
                Some(if slash == 0 { "/" } else { &p[..slash] }.to_string())
            }
            _ => None,
        })
        .collect();
    parents.sort();
    parents.dedup();
    parents
}

/// The pause before attempt `n` (1, 2, …) after the immediate retries: uniformly random below
/// min(2^(n-1) ms, [`MAX_BACKOFF`]), so contenders spread out instead of colliding again.
fn backoff(n: usize) -> Duration {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let cap = Duration::from_millis(1u64 << (n.saturating_sub(1)).min(16)).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 over a per-process sequence mixed with the clock.
    let mut z = SEED
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(nanos);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let micros = cap.as_micros() as u64;
    Duration::from_micros(z % (micros + 1))
}

enum PlanOutcome {
    Done {
        results: Vec<OpResult>,
        /// The applied plan's [`Plan::counters`].
        counters: Vec<(String, i64)>,
        /// Which of the plans applied (0: the first).
        guess: usize,
    },
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
            let mut counters = Vec::new();
            let track_counters = !lock(&shared.hints).is_empty();
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
                        KeyKind::Meta(path) if track_counters => counters.push(CounterChange {
                            path,
                            meta: true,
                            kv: (ev.event_type() == EtcdEventType::Put).then(|| Kv::from(kv)),
                            rev,
                        }),
                        KeyKind::Offsets(path) if track_counters => counters.push(CounterChange {
                            path,
                            meta: false,
                            kv: (ev.event_type() == EtcdEventType::Put).then(|| Kv::from(kv)),
                            rev,
                        }),
                        KeyKind::Meta(_) | KeyKind::Offsets(_) => {}
                        KeyKind::Session(l) => {
                            if l == lease && ev.event_type() == EtcdEventType::Delete {
                                shared.lease_gone.notify_one();
                            }
                        }
                        KeyKind::Other => {}
                    }
                }
            }
            // Before `processed` moves: a write that waited for its own events finds the
            // counter hints it will use next already up to date.
            if !counters.is_empty() {
                shared.observe_counters(counters);
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
