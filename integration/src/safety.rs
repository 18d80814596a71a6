//! Safety scenarios under injected faults, with checkers that cannot be fooled: every critical
//! section and every leader action is written to a server-side log through a *fenced* write (it
//! applies only while the writer's lock / leadership node exists), and the log's sequence order is
//! the server's commit order. The checkers read that log afterwards:
//!
//! - lock: inside one holder's enter … exit pair no other holder's entry may appear, and tokens
//!   never go back;
//! - election: actions' tokens never go back (a deposed leader never acts after its successor);
//! - queue: every acknowledged put is consumed (`take_with_ack`), nothing is consumed twice (`take`).
//!
//! Each scenario returns a [`Table`] row: operations done, faults injected, violations.

use menagerie_core::sequence::sort_by_sequence;
use menagerie_core::{async_trait, Client, CreateMode, Error, Op};
use menagerie_recipes::{LeaderEvent, LeaderLatch, Mutex, Queue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that breaks the system under test on purpose.
#[async_trait]
pub trait Faults: Send {
    /// Injects fault number `round`; returns what it did.
    async fn inject(&mut self, round: usize) -> String;
    /// Undoes every lasting fault (restart what was killed, reconnect what was cut).
    async fn heal(&mut self);
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Table {
    /// Scenario name.
    pub scenario: String,
    /// Backend / deployment.
    pub target: String,
    /// Completed operations (critical sections, leader actions, items).
    pub operations: u64,
    /// Faults injected.
    pub faults: usize,
    /// Safety violations found by the checker (must be 0).
    pub violations: usize,
    /// Details (first violations, fault kinds).
    pub notes: String,
}

impl Table {
    /// Prints rows as a Markdown table.
    pub fn print(rows: &[Table]) {
        println!("| scenario | target | operations | faults | violations | notes |");
        println!("|---|---|---:|---:|---:|---|");
        for r in rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.scenario, r.target, r.operations, r.faults, r.violations, r.notes
            );
        }
    }
}

/// How long scenarios run: `MENAGERIE_SOAK_SECS` (the long soak), else `short`.
pub fn duration(short: Duration) -> Duration {
    std::env::var("MENAGERIE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(short)
}

/// Pause between faults: ~500 ms in the long soak (`MENAGERIE_SOAK_SECS`), else `short` (the
/// short runs in the test command space faults a little wider to stay quick and steady).
pub fn cadence(short: Duration) -> Duration {
    if std::env::var_os("MENAGERIE_SOAK_SECS").is_some() {
        Duration::from_millis(500)
    } else {
        short
    }
}

/// Injects a fault every `every` until `stop`; returns the fault descriptions.
async fn fault_loop(faults: &mut dyn Faults, every: Duration, stop: &AtomicBool) -> Vec<String> {
    let mut done = Vec::new();
    let mut round = 0;
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        if stop.load(Ordering::Acquire) {
            break;
        }
        done.push(faults.inject(round).await);
        round += 1;
    }
    faults.heal().await;
    done
}

/// Lets `tasks` run for `run_for` while faults are injected every `fault_every`, then stops them
/// (bounded) and heals; returns the faults injected.
async fn drive(
    faults: &mut dyn Faults,
    fault_every: Duration,
    run_for: Duration,
    stop: &Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Vec<String> {
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(run_for).await;
            stop.store(true, Ordering::Release);
        })
    };
    let injected = fault_loop(faults, fault_every, stop).await;
    let _ = stopper.await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    injected
}

/// The four scenarios (lock with 8 clients, election with 3, queue with and without ack) on
/// sessions from `factory`, each under `/safety-<i>`, with `faults`; returns the table rows.
pub async fn run_all(
    target: &str,
    factory: &dyn menagerie_core::conformance::BackendFactory,
    faults: &mut dyn FaultsWithClients,
    run_for: Duration,
    every: Duration,
) -> Vec<Table> {
    let mut rows = Vec::new();
    for (i, scenario) in ["lock", "election", "queue-ack", "queue-take"]
        .iter()
        .enumerate()
    {
        let n = match *scenario {
            "lock" => 8,
            "election" => 3,
            _ => 5,
        };
        let (mut clients, admin) = clients_from(factory, n, &format!("/safety-{i}")).await;
        faults.set_clients(clients.clone());
        let f = faults.as_faults();
        rows.push(match *scenario {
            "lock" => lock_scenario(target, clients, admin, run_for, every, f).await,
            "election" => election_scenario(target, clients, admin, run_for, every, f).await,
            s => {
                let consumers = clients.split_off(2);
                queue_scenario(
                    target,
                    clients,
                    consumers,
                    admin,
                    s == "queue-ack",
                    run_for,
                    every,
                    f,
                )
                .await
            }
        });
    }
    rows
}

/// Faults that can also expire the scenario's clients' sessions.
pub trait FaultsWithClients: Faults {
    /// The clients of the next scenario.
    fn set_clients(&mut self, clients: Vec<Client>);
    /// As plain faults.
    fn as_faults(&mut self) -> &mut dyn Faults;
}

impl FaultsWithClients for EtcdFaults {
    fn set_clients(&mut self, clients: Vec<Client>) {
        self.clients = clients;
    }
    fn as_faults(&mut self) -> &mut dyn Faults {
        self
    }
}

impl FaultsWithClients for ZkFaults {
    fn set_clients(&mut self, clients: Vec<Client>) {
        self.clients = clients;
    }
    fn as_faults(&mut self) -> &mut dyn Faults {
        self
    }
}

/// Asserts that every row is clean (no violation) and that work and faults both happened.
pub fn assert_clean(rows: &[Table]) {
    Table::print(rows);
    for r in rows {
        assert_eq!(r.violations, 0, "{}: {}", r.scenario, r.notes);
        assert!(r.operations > 0, "{}: nothing was done", r.scenario);
        assert!(r.faults > 0, "{}: no fault was injected", r.scenario);
    }
}

fn summarize(faults: &[String]) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for f in faults {
        let kind = f.split(':').next().unwrap_or(f).to_string();
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a fenced log (`<dir>/e-<seq>` entries) in commit order, retrying through faults.
async fn read_log(admin: &Client, dir: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r: menagerie_core::Result<Vec<String>> = async {
            let (mut kids, _) = admin.children(dir).await?;
            sort_by_sequence(&mut kids);
            let mut out = Vec::with_capacity(kids.len());
            for k in kids {
                out.push(
                    String::from_utf8_lossy(&admin.get(&format!("{dir}/{k}")).await?.0)
                        .into_owned(),
                );
            }
            Ok(out)
        }
        .await;
        match r {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "reading the log failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot read the log: {e}"),
        }
    }
}

fn fenced_log_op(dir: &str, entry: String) -> Op {
    Op::create(
        format!("{dir}/e-"),
        entry.into_bytes(),
        CreateMode::PersistentSequential,
    )
}

/// Lock safety: `clients` contend for one lock; each critical section writes `E <token>` and
/// `X <token>` to the log through fenced writes. Violations: another token inside an E…X pair, or
/// a token smaller than one already logged.
pub async fn lock_scenario(
    target: &str,
    clients: Vec<Client>,
    admin: Client,
    run_for: Duration,
    fault_every: Duration,
    faults: &mut dyn Faults,
) -> Table {
    admin.ensure_path("/log").await.expect("log");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in clients {
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Mutex::new(&c, "/lock");
            while !stop.load(Ordering::Acquire) {
                let g = match lock.acquire_timeout(Duration::from_secs(3)).await {
                    Ok(g) => g,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let t = g.token();
                let entered = g
                    .fenced(&[fenced_log_op("/log", format!("E {t}"))])
                    .await
                    .is_ok();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let exited = entered
                    && g.fenced(&[fenced_log_op("/log", format!("X {t}"))])
                        .await
                        .is_ok();
                if exited {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), g.release()).await;
            }
        }));
    }
    let injected = drive(faults, fault_every, run_for, &stop, tasks).await;
    let log = read_log(&admin, "/log").await;
    let mut violations = Vec::new();
    let mut open: Option<i64> = None;
    let mut max = i64::MIN;
    for (i, e) in log.iter().enumerate() {
        let (kind, t) = e.split_once(' ').unwrap_or(("?", "0"));
        let t: i64 = t.parse().unwrap_or(0);
        if t < max {
            violations.push(format!("entry {i}: token {t} after {max}"));
        }
        max = max.max(t);
        match (kind, open) {
            ("E", _) => open = Some(t),
            ("X", Some(o)) if o == t => open = None,
            ("X", Some(o)) => violations.push(format!("entry {i}: exit of {t} inside section {o}")),
            ("X", None) => {} // its section's enter was followed by a newer holder: checked above
            _ => violations.push(format!("entry {i}: malformed {e:?}")),
        }
    }
    Table {
        scenario: "lock, 8 clients".into(),
        target: target.into(),
        operations: done.load(Ordering::Relaxed),
        faults: injected.len(),
        violations: violations.len(),
        notes: format!(
            "{}; {} log entries{}",
            summarize(&injected),
            log.len(),
            first(&violations)
        ),
    }
}

fn first(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!("; first: {}", v[..v.len().min(3)].join(" / "))
    }
}

/// Election safety: participants act (fenced log writes) while they lead. Violation: an action
/// with a smaller token after one with a larger token.
pub async fn election_scenario(
    target: &str,
    clients: Vec<Client>,
    admin: Client,
    run_for: Duration,
    fault_every: Duration,
    faults: &mut dyn Faults,
) -> Table {
    admin.ensure_path("/log").await.expect("log");
    let stop = Arc::new(AtomicBool::new(false));
    let actions = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (stop, actions) = (stop.clone(), actions.clone());
        tasks.push(tokio::spawn(async move {
            let latch = match LeaderLatch::new(&c, "/leader", &format!("p{i}"))
                .start()
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "participant could not join");
                    return;
                }
            };
            let mut events = latch.events();
            while !stop.load(Ordering::Acquire) {
                let ev = tokio::select! {
                    ev = events.next() => ev,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                };
                let Some(LeaderEvent::Elected(term)) = ev else {
                    continue;
                };
                while term.is_held() && !stop.load(Ordering::Acquire) {
                    if term
                        .fenced(&[fenced_log_op("/log", term.token().to_string())])
                        .await
                        .is_ok()
                    {
                        actions.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), latch.close()).await;
        }));
    }
    let injected = drive(faults, fault_every, run_for, &stop, tasks).await;
    let log = read_log(&admin, "/log").await;
    let tokens: Vec<i64> = log.iter().filter_map(|e| e.parse().ok()).collect();
    let mut violations = Vec::new();
    for (i, w) in tokens.windows(2).enumerate() {
        if w[1] < w[0] {
            violations.push(format!("action {}: token {} after {}", i + 1, w[1], w[0]));
        }
    }
    let terms: BTreeSet<i64> = tokens.iter().copied().collect();
    Table {
        scenario: "election, 3 participants".into(),
        target: target.into(),
        operations: actions.load(Ordering::Relaxed),
        faults: injected.len(),
        violations: violations.len(),
        notes: format!(
            "{}; {} terms acted{}",
            summarize(&injected),
            terms.len(),
            first(&violations)
        ),
    }
}

/// Queue safety. With `ack`: every item whose put was acknowledged is consumed at least once
/// (violation = lost item). Without: no item is consumed twice (violation = duplicate).
#[allow(clippy::too_many_arguments)]
pub async fn queue_scenario(
    target: &str,
    producers: Vec<Client>,
    consumers: Vec<Client>,
    admin: Client,
    ack: bool,
    run_for: Duration,
    fault_every: Duration,
    faults: &mut dyn Faults,
) -> Table {
    let stop = Arc::new(AtomicBool::new(false));
    let acked_puts = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let consumed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for (p, c) in producers.into_iter().enumerate() {
        let (stop, acked_puts) = (stop.clone(), acked_puts.clone());
        tasks.push(tokio::spawn(async move {
            let q = Queue::new(&c, "/q");
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let item = format!("p{p}-{i}");
                i += 1;
                if q.put(item.as_bytes()).await.is_ok() {
                    acked_puts.lock().unwrap().insert(item);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let consume = |c: Client,
                   until_empty: bool,
                   stop: Arc<AtomicBool>,
                   consumed: Arc<std::sync::Mutex<Vec<String>>>| async move {
        // A claim whose reply was lost (connection cut mid-request) stays with a live session:
        // the visibility timeout hands it out again.
        let q = Queue::new(&c, "/q").with_visibility_timeout(Duration::from_secs(3));
        loop {
            if stop.load(Ordering::Acquire) && !until_empty {
                return;
            }
            if ack {
                match q.take_with_ack_timeout(Duration::from_millis(500)).await {
                    Ok(d) => {
                        consumed
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&d.item().data).into_owned());
                        let _ = d.ack().await;
                    }
                    Err(Error::Timeout) if until_empty => {
                        if q.is_empty().await.unwrap_or(false) {
                            return;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            } else {
                match q.take_timeout(Duration::from_millis(500)).await {
                    Ok(item) => consumed
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&item.data).into_owned()),
                    Err(Error::Timeout) if until_empty => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
    };
    for c in consumers {
        tasks.push(tokio::spawn(consume(
            c,
            false,
            stop.clone(),
            consumed.clone(),
        )));
    }
    let injected = drive(faults, fault_every, run_for, &stop, tasks).await;
    // Drain what is left with a healthy consumer (claims of dead consumers come back).
    let _ = tokio::time::timeout(
        Duration::from_secs(120),
        consume(
            admin.clone(),
            true,
            Arc::new(AtomicBool::new(true)),
            consumed.clone(),
        ),
    )
    .await;
    let acked = acked_puts.lock().unwrap().clone();
    let consumed = consumed.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for c in &consumed {
        *counts.entry(c.as_str()).or_default() += 1;
    }
    let violations: Vec<String> = if ack {
        acked
            .iter()
            .filter(|a| !counts.contains_key(a.as_str()))
            .map(|a| format!("lost {a}"))
            .collect()
    } else {
        counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect()
    };
    let redelivered = consumed.len().saturating_sub(counts.len());
    Table {
        scenario: if ack {
            "queue take_with_ack: lost".into()
        } else {
            "queue take: duplicated".into()
        },
        target: target.into(),
        operations: consumed.len() as u64,
        faults: injected.len(),
        violations: violations.len(),
        notes: format!(
            "{}; {} acknowledged puts, {} redelivered{}",
            summarize(&injected),
            acked.len(),
            redelivered,
            first(&violations)
        ),
    }
}

/// Faults on the embedded native backend: session expiries and client partitions (a session cut
/// off for a while, as a network failure would; long enough cuts expire it).
pub struct NativeFaults {
    /// The store the sessions live on.
    pub store: Arc<menagerie_native::NativeStore>,
    /// The clients' sessions.
    pub sessions: Vec<Arc<menagerie_native::NativeSession>>,
}

#[async_trait]
impl Faults for NativeFaults {
    async fn inject(&mut self, round: usize) -> String {
        use menagerie_core::Backend;
        let s = self.sessions[fastrand::usize(..self.sessions.len())].clone();
        if round % 2 == 0 {
            self.store.expire(s.session_id());
            "session expired".into()
        } else {
            s.disconnect();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                s.reconnect();
            });
            "client cut off for 300 ms".into()
        }
    }

    async fn heal(&mut self) {
        for s in &self.sessions {
            s.reconnect();
        }
    }
}

/// Native sessions on one store, chrooted to `base`, and their fault injector.
pub async fn native_clients(n: usize, base: &str) -> (Vec<Client>, Client, NativeFaults) {
    let store = menagerie_native::NativeStore::new();
    let admin = Client::new(Arc::new(store.session()));
    admin.ensure_path(base).await.expect("base");
    let mut sessions = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..n {
        let s = Arc::new(store.session_with_timeout(Duration::from_millis(1000)));
        clients.push(Client::new(s.clone()).with_chroot(base).expect("chroot"));
        sessions.push(s);
    }
    (
        clients,
        admin.with_chroot(base).expect("chroot"),
        NativeFaults { store, sessions },
    )
}

/// Which member a member-killing fault hits: the leader on rounds ≡ 0 (mod 3), a follower
/// otherwise (any member when no leader is known).
fn victim(round: usize, leader: Option<usize>, members: usize) -> usize {
    match (round % 3, leader) {
        (0, Some(l)) => l,
        (_, Some(l)) => (l + 1) % members,
        (_, None) => fastrand::usize(..members),
    }
}

/// Expires the session of one of `clients`, chosen at random; describes what happened.
pub async fn expire_one(
    factory: &dyn menagerie_core::conformance::BackendFactory,
    clients: &[Client],
) -> String {
    let c = &clients[fastrand::usize(..clients.len())];
    match factory.expire(c.backend()).await {
        Ok(()) => "session expired".into(),
        Err(e) => format!("session expiry failed: {e}"),
    }
}

fn killed(round: usize) -> String {
    let who = if round % 3 == 0 { "leader" } else { "follower" };
    format!("{who} killed (SIGKILL) and restarted")
}

/// Sessions from `factory`, chrooted to `base`, plus an admin client.
pub async fn clients_from(
    factory: &dyn menagerie_core::conformance::BackendFactory,
    n: usize,
    base: &str,
) -> (Vec<Client>, Client) {
    let admin = Client::new(factory.session().await.expect("session"));
    admin.ensure_path(base).await.expect("base");
    let mut clients = Vec::new();
    for _ in 0..n {
        let b = factory.session().await.expect("session");
        clients.push(Client::new(b).with_chroot(base).expect("chroot"));
    }
    (clients, admin.with_chroot(base).expect("chroot"))
}

/// Faults on a 3-member etcd cluster: the leader killed and restarted, a follower killed and
/// restarted, a client's lease revoked (session expiry).
pub struct EtcdFaults {
    /// The cluster.
    pub cluster: crate::etcd::EtcdCluster,
    /// Factory of the clients (for expiries).
    pub factory: menagerie_etcd::EtcdFactory,
    /// The clients whose sessions may be expired.
    pub clients: Vec<Client>,
}

#[async_trait]
impl Faults for EtcdFaults {
    async fn inject(&mut self, round: usize) -> String {
        match round % 3 {
            0 | 1 => {
                let victim = victim(
                    round,
                    self.cluster.leader().await,
                    self.cluster.members().len(),
                );
                self.cluster.kill(victim);
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.cluster.restart(victim).await;
                killed(round)
            }
            _ => expire_one(&self.factory, &self.clients).await,
        }
    }

    async fn heal(&mut self) {
        let _ = self.cluster.wait_leader(Duration::from_secs(20)).await;
    }
}

/// Faults on a 3-member ZooKeeper ensemble: the leader killed and restarted, a follower killed
/// and restarted, a client's session expired.
pub struct ZkFaults {
    /// The ensemble.
    pub cluster: crate::zookeeper::ZkCluster,
    /// Factory of the clients (for expiries).
    pub factory: Arc<menagerie_zookeeper::ZkFactory>,
    /// The clients whose sessions may be expired.
    pub clients: Vec<Client>,
}

#[async_trait]
impl Faults for ZkFaults {
    async fn inject(&mut self, round: usize) -> String {
        match round % 3 {
            0 | 1 => {
                let victim = victim(round, self.cluster.leader(), self.cluster.members().len());
                self.cluster.kill(victim);
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Err(e) = self.cluster.restart(victim) {
                    return format!("restart failed: {e}");
                }
                killed(round)
            }
            _ => expire_one(&*self.factory, &self.clients).await,
        }
    }

    async fn heal(&mut self) {
        let _ = self.cluster.wait_serving(Duration::from_secs(30));
    }
}
