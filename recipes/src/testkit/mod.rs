//! Backend-independent tests of the lock recipes (feature `testkit`).
//!
//! Each test takes a [`BackendFactory`] and works below its own base node, like the conformance
//! kit; [`recipe_tests!`](crate::recipe_tests) expands to one `#[tokio::test]` per test, so every
//! backend runs the same list. Checkers keep their own log of critical-section entries and fencing
//! tokens, independent of the recipe under test.

mod coordination;
mod flaky;
mod services;

pub use coordination::*;
pub use services::*;

pub use flaky::{LossyReplies, OneShotOnly};

use crate::{HoldGuard, LostReason, Mutex, RwLock, Semaphore};
use menagerie_core::conformance::{scope, within, BackendFactory, Scope, QUIET};
use menagerie_core::{Client, Error, ErrorKind, Op};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Expands to one `#[tokio::test]` per recipe test, each calling it with `$factory`. The calling
/// crate needs `tokio` with `macros` and `rt-multi-thread`.
#[macro_export]
macro_rules! recipe_tests {
    ($factory:expr) => {
        $crate::recipe_tests!(@each $factory;
            mutex_exclusion_and_token_order,
            mutex_is_fifo_fair,
            mutex_holder_expiry_hands_over,
            mutex_waiter_expiry_ends_its_wait,
            mutex_cancelled_acquire_leaves_no_node,
            mutex_timeout_leaves_no_node,
            mutex_connection_loss_during_create_leaves_no_orphan,
            mutex_lost_when_node_deleted,
            rwlock_readers_share_writer_excludes,
            rwlock_reader_waits_for_writer_ahead,
            rwlock_downgrade_keeps_writers_out,
            rwlock_downgrade_between_read_and_watch,
            rwlock_mixed_load_checker,
            semaphore_never_exceeds_its_leases,
            semaphore_expired_holder_frees_its_lease,
            election_survives_20_leader_expiries,
            leader_selector_takes_turns,
            latch_reports_leader_and_participants,
            queue_is_fifo,
            queue_redelivery_and_dead_letters,
            queue_take_with_ack_loses_nothing,
            queue_take_never_duplicates,
            calls_between_sessions_wait_for_the_new_one,
            barrier_releases_waiters,
            double_barrier_with_a_dying_member,
            tree_cache_misses_nothing,
            tree_cache_resyncs_after_expiry,
            config_change_reaches_100_watchers,
            config_updates_are_compare_and_set,
            discovery_follows_instances,
            discovery_provider_strategies,
            dead_clients_connections_stop_counting,
            least_connections_avoids_the_loaded_instance,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                // Load tests against a real server on a 2-core machine: a few at a time.
                let _permit = $crate::testkit::gate().acquire().await.expect("test gate");
                let factory = $factory;
                $crate::testkit::$name(&factory).await;
            }
        )*
    };
}

/// Limits how many recipe tests of one binary run at once (`MENAGERIE_RECIPE_PARALLELISM`,
/// default 3): they are load tests, and the server under test shares the machine.
pub fn gate() -> &'static tokio::sync::Semaphore {
    static GATE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        let n = std::env::var("MENAGERIE_RECIPE_PARALLELISM")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        tokio::sync::Semaphore::new(n)
    })
}

/// An independent log of critical-section entries: who is inside, and every token in entry order.
#[derive(Debug, Default)]
pub struct Checker {
    inside_writers: AtomicUsize,
    inside_readers: AtomicUsize,
    max_readers: AtomicUsize,
    max_writers: AtomicUsize,
    tokens: std::sync::Mutex<Vec<i64>>,
    violations: std::sync::Mutex<Vec<String>>,
}

impl Checker {
    /// An exclusive (writer) entry with `token`.
    pub fn enter_exclusive(&self, token: i64) {
        let w = self.inside_writers.fetch_add(1, Ordering::SeqCst);
        let r = self.inside_readers.load(Ordering::SeqCst);
        if w != 0 || r != 0 {
            self.violation(format!(
                "exclusive entry with {w} writer(s) and {r} reader(s) inside"
            ));
        }
        self.max_writers.fetch_max(w + 1, Ordering::SeqCst);
        let mut tokens = self.tokens.lock().unwrap();
        if let Some(last) = tokens.last() {
            if token <= *last {
                self.violation(format!("token {token} after {last}: not increasing"));
            }
        }
        tokens.push(token);
    }

    /// Leaves an exclusive section.
    pub fn leave_exclusive(&self) {
        self.inside_writers.fetch_sub(1, Ordering::SeqCst);
    }

    /// A shared (reader / lease) entry.
    pub fn enter_shared(&self) {
        let r = self.inside_readers.fetch_add(1, Ordering::SeqCst) + 1;
        let w = self.inside_writers.load(Ordering::SeqCst);
        if w != 0 {
            self.violation(format!("shared entry while {w} writer(s) inside"));
        }
        self.max_readers.fetch_max(r, Ordering::SeqCst);
    }

    /// Leaves a shared section.
    pub fn leave_shared(&self) {
        self.inside_readers.fetch_sub(1, Ordering::SeqCst);
    }

    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    /// Panics if any rule was broken.
    pub fn assert_clean(&self) {
        let v = self.violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "{} violation(s): {:?}",
            v.len(),
            &v[..v.len().min(5)]
        );
    }

    /// Number of exclusive entries logged.
    pub fn exclusive_entries(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }

    /// Most shared holders seen at once.
    pub fn max_shared(&self) -> usize {
        self.max_readers.load(Ordering::SeqCst)
    }
}

/// Like `within`, for load tests: bounded by 10 × WAIT.
pub(crate) async fn within_long<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    let limit = menagerie_core::conformance::WAIT * 10;
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for: {what}"),
    }
}

/// Scale factor for the load tests: `MENAGERIE_RECIPE_SCALE` (default 1.0; CI may lower it).
pub(crate) fn scaled(n: usize) -> usize {
    let f: f64 = std::env::var("MENAGERIE_RECIPE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * f).round() as usize).max(1)
}

async fn clients(s: &Scope<'_>, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(s.other_client().await);
    }
    out
}

async fn node_count(c: &Client, dir: &str) -> usize {
    match c.children(dir).await {
        Ok((kids, _)) => kids.len(),
        Err(Error::NoNode { .. }) => 0,
        Err(e) => panic!("listing {dir}: {e}"),
    }
}

/// Waits until `dir` has exactly `n` children (bounded by WAIT).
pub(crate) async fn until_children(c: &Client, dir: &str, n: usize, what: &str) {
    within(what, async {
        while node_count(c, dir).await != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

pub(crate) fn ok<T>(r: menagerie_core::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e} ({e:?})"))
}

/// 8 contenders × 500 acquisitions: never two holders, tokens strictly increasing.
pub async fn mutex_exclusion_and_token_order(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_exclusion").await;
    let checker = Arc::new(Checker::default());
    let rounds = scaled(500);
    let mut tasks = Vec::new();
    for c in clients(&s, 8).await {
        let checker = checker.clone();
        tasks.push(tokio::spawn(async move {
            let lock = Mutex::new(&c, "/lock");
            for _ in 0..rounds {
                let g = ok(lock.acquire().await, "acquire");
                checker.enter_exclusive(g.token());
                tokio::task::yield_now().await;
                checker.leave_exclusive();
                ok(g.release().await, "release");
            }
        }));
    }
    within_long("8 contenders to finish", async {
        for t in tasks {
            t.await.expect("contender task");
        }
    })
    .await;
    checker.assert_clean();
    assert_eq!(checker.exclusive_entries(), 8 * rounds);
    until_children(&s.client, "/lock", 0, "all lock nodes gone").await;
}

async fn start_acquire(
    c: &Client,
    path: &str,
) -> tokio::task::JoinHandle<menagerie_core::Result<HoldGuard>> {
    let lock = Mutex::new(c, path);
    tokio::spawn(async move { lock.acquire().await })
}

/// Waiters get the lock in the order they asked for it.
pub async fn mutex_is_fifo_fair(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_fifo").await;
    let holder = ok(
        Mutex::new(&s.client, "/lock").acquire().await,
        "first acquire",
    );
    let cs = clients(&s, 3).await;
    let mut waiting = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        waiting.push(start_acquire(c, "/lock").await);
        until_children(&s.client, "/lock", i + 2, "waiter's node").await;
    }
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    ok(holder.release().await, "release");
    for (i, w) in waiting.into_iter().enumerate() {
        let g = within("next waiter to acquire", w).await.expect("task");
        let g = ok(g, "waiter acquire");
        order.lock().unwrap().push(i);
        ok(g.release().await, "release");
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
}

/// The holder's session expires: its guard reports lost, the next waiter gets the lock with a
/// larger token.
pub async fn mutex_holder_expiry_hands_over(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_holder_expiry").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    let ga = ok(Mutex::new(&a, "/lock").acquire().await, "a acquires");
    let wb = start_acquire(&b, "/lock").await;
    until_children(&s.client, "/lock", 2, "b waits").await;
    ok(f.expire(a.backend()).await, "expire a");
    let reason = within("a's guard to report lost", ga.lost()).await;
    // Whichever the client learns first: the expiry, the deletion it caused, or (on ZooKeeper)
    // the dropped connection that precedes it — all must end the hold.
    assert_ne!(reason, LostReason::Released, "lost for {reason:?}");
    assert!(!ga.is_held());
    let gb = ok(
        within("b to get the lock", wb).await.expect("task"),
        "b acquires",
    );
    assert!(gb.token() > ga.token(), "token must grow across holders");
    assert_err_kind(
        ga.fenced(&[]).await,
        ErrorKind::Lost,
        "fenced op of a lost guard",
    );
    ok(ga.release().await, "releasing a lost lock is a no-op");
    assert!(gb.is_held(), "b's hold must survive a's release");
    ok(gb.release().await, "b releases");
}

fn assert_err_kind<T: std::fmt::Debug>(r: menagerie_core::Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected {kind:?}, got {other:?}"),
    }
}

/// A waiter whose session expires stops waiting with SessionExpired; the holder keeps the lock.
pub async fn mutex_waiter_expiry_ends_its_wait(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_waiter_expiry").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    let ga = ok(Mutex::new(&a, "/lock").acquire().await, "a acquires");
    let wb = start_acquire(&b, "/lock").await;
    until_children(&s.client, "/lock", 2, "b waits").await;
    ok(f.expire(b.backend()).await, "expire b");
    let r = within("b's wait to end", wb).await.expect("task");
    assert_err_kind(r, ErrorKind::SessionExpired, "b's acquire");
    until_children(&s.client, "/lock", 1, "b's node gone").await;
    assert!(ga.is_held());
    ok(ga.release().await, "a releases");
}

/// Dropping an acquire future removes its node.
pub async fn mutex_cancelled_acquire_leaves_no_node(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_cancel").await;
    let b = s.other_client().await;
    let ga = ok(Mutex::new(&s.client, "/lock").acquire().await, "a acquires");
    let lock_b = Mutex::new(&b, "/lock");
    let r = tokio::time::timeout(QUIET, lock_b.acquire()).await;
    assert!(r.is_err(), "b cannot get a held lock");
    until_children(&s.client, "/lock", 1, "the cancelled waiter's node to go").await;
    ok(ga.release().await, "release");
    let gb = ok(
        within("b acquires after", lock_b.acquire()).await,
        "b acquires",
    );
    ok(gb.release().await, "release");
}

/// acquire_timeout returns Timeout and leaves nothing behind.
pub async fn mutex_timeout_leaves_no_node(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_timeout").await;
    let b = s.other_client().await;
    let ga = ok(Mutex::new(&s.client, "/lock").acquire().await, "a acquires");
    let r = Mutex::new(&b, "/lock")
        .acquire_timeout(Duration::from_millis(100))
        .await;
    assert_err_kind(r, ErrorKind::Timeout, "acquire_timeout on a held lock");
    assert_eq!(
        node_count(&s.client, "/lock").await,
        1,
        "timed-out waiter left a node"
    );
    assert!(Mutex::new(&b, "/lock")
        .try_acquire()
        .await
        .unwrap()
        .is_none());
    ok(ga.release().await, "release");
}

/// A create whose reply is lost (applied, but ConnectionLoss) is found again: no orphan node.
pub async fn mutex_connection_loss_during_create_leaves_no_orphan(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_conn_loss").await;
    let lossy = Arc::new(LossyReplies::new(ok(f.session().await, "session")));
    let c = Client::new(lossy.clone())
        .with_chroot(&s.base)
        .expect("chroot");
    // Someone holds the lock, so its directory exists and the lost reply hits the contender's node.
    let holder = ok(Mutex::new(&s.client, "/lock").acquire().await, "holder");
    lossy.lose_next_create_replies(1);
    let waiter = {
        let lock = Mutex::new(&c, "/lock");
        tokio::spawn(async move { lock.acquire().await })
    };
    until_children(&s.client, "/lock", 2, "the lossy contender's node").await;
    ok(holder.release().await, "holder releases");
    let g = ok(
        within("acquire despite a lost reply", waiter)
            .await
            .expect("task"),
        "acquire",
    );
    assert_eq!(
        node_count(&s.client, "/lock").await,
        1,
        "an orphan node was left"
    );
    ok(g.release().await, "release");
    until_children(&s.client, "/lock", 0, "lock empty").await;
}

/// Deleting the holder's node (e.g. by an operator) makes the guard report NodeDeleted; fenced
/// operations then fail, release is a no-op.
pub async fn mutex_lost_when_node_deleted(f: &dyn BackendFactory) {
    let s = scope(f, "mutex_node_deleted").await;
    let a = s.other_client().await;
    let g = ok(Mutex::new(&a, "/lock").acquire().await, "acquire");
    ok(
        s.client.create("/resource", b"0", Default::default()).await,
        "resource",
    );
    ok(
        g.fenced(&[Op::set("/resource", b"1".to_vec(), None)]).await,
        "fenced write while held",
    );
    ok(
        s.client.delete(g.node(), None).await,
        "operator deletes the node",
    );
    let reason = within("lost after node deletion", g.lost()).await;
    assert_eq!(reason, LostReason::NodeDeleted);
    let r = g.fenced(&[Op::set("/resource", b"2".to_vec(), None)]).await;
    assert_err_kind(r, ErrorKind::Lost, "fenced write after loss");
    assert_eq!(
        ok(s.client.get("/resource").await, "get").0,
        b"1",
        "fenced write leaked"
    );
    ok(g.release().await, "release of a lost lock");
}

/// Two readers hold together; a writer cannot get in until both leave.
pub async fn rwlock_readers_share_writer_excludes(f: &dyn BackendFactory) {
    let s = scope(f, "rwlock_share").await;
    let b = s.other_client().await;
    let r1 = ok(RwLock::new(&s.client, "/rw").read().await, "r1");
    let r2 = ok(
        within("second reader", RwLock::new(&b, "/rw").read()).await,
        "r2",
    );
    assert!(ok(RwLock::new(&b, "/rw").try_write().await, "try_write").is_none());
    let w = {
        let lock = RwLock::new(&b, "/rw");
        tokio::spawn(async move { lock.write().await })
    };
    until_children(&s.client, "/rw", 3, "writer waits").await;
    ok(r1.release().await, "r1 release");
    tokio::time::sleep(QUIET).await;
    assert!(!w.is_finished(), "writer got in while a reader held");
    ok(r2.release().await, "r2 release");
    let w = ok(within("writer acquires", w).await.expect("task"), "writer");
    ok(w.release().await, "writer release");
}

/// A reader arriving after a waiting writer waits for that writer (no writer starvation).
pub async fn rwlock_reader_waits_for_writer_ahead(f: &dyn BackendFactory) {
    let s = scope(f, "rwlock_order").await;
    let b = s.other_client().await;
    let c = s.other_client().await;
    let r1 = ok(RwLock::new(&s.client, "/rw").read().await, "r1");
    let w = {
        let lock = RwLock::new(&b, "/rw");
        tokio::spawn(async move { lock.write().await })
    };
    until_children(&s.client, "/rw", 2, "writer queued").await;
    let r2 = {
        let lock = RwLock::new(&c, "/rw");
        tokio::spawn(async move { lock.read().await })
    };
    until_children(&s.client, "/rw", 3, "second reader queued").await;
    tokio::time::sleep(QUIET).await;
    assert!(!r2.is_finished(), "reader jumped ahead of a waiting writer");
    ok(r1.release().await, "r1 release");
    let w = ok(within("writer acquires", w).await.expect("task"), "writer");
    tokio::time::sleep(QUIET).await;
    assert!(!r2.is_finished(), "reader got in while the writer held");
    ok(w.release().await, "writer release");
    let r2 = ok(within("reader acquires", r2).await.expect("task"), "r2");
    ok(r2.release().await, "r2 release");
}

/// A reader that saw a live writer ahead and set its watch only after that writer downgraded
/// still joins the downgraded hold: the change between its read and its watch is noticed.
pub async fn rwlock_downgrade_between_read_and_watch(f: &dyn BackendFactory) {
    let s = scope(f, "rwlock_downgrade_race").await;
    let slow = Arc::new(LossyReplies::new(ok(f.session().await, "session")));
    slow.delay_exists_watches(Duration::from_millis(600));
    let c = Client::new(slow.clone())
        .with_chroot(&s.base)
        .expect("chroot");
    let lock = RwLock::new(&s.client, "/rw");
    let w = ok(lock.write().await, "write");
    let reader = {
        let lock = RwLock::new(&c, "/rw");
        tokio::spawn(async move { lock.read().await })
    };
    until_children(&s.client, "/rw", 2, "reader queued").await;
    // The reader has read the writer's node and is setting its watch, slowly: downgrade now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = ok(lock.downgrade(w).await, "downgrade");
    let reader = ok(
        within("the reader joins the downgraded hold", reader)
            .await
            .expect("task"),
        "reader",
    );
    ok(reader.release().await, "reader release");
    ok(r.release().await, "downgraded release");
}

/// A downgraded writer admits the readers queued behind it but never lets a queued writer in
/// before it releases.
pub async fn rwlock_downgrade_keeps_writers_out(f: &dyn BackendFactory) {
    let s = scope(f, "rwlock_downgrade").await;
    let b = s.other_client().await;
    let c = s.other_client().await;
    let lock = RwLock::new(&s.client, "/rw");
    let w = ok(lock.write().await, "write");
    let token = w.token();
    let reader = {
        let lock = RwLock::new(&c, "/rw");
        tokio::spawn(async move { lock.read().await })
    };
    until_children(&s.client, "/rw", 2, "reader queued").await;
    let w2 = {
        let lock = RwLock::new(&b, "/rw");
        tokio::spawn(async move { lock.write().await })
    };
    until_children(&s.client, "/rw", 3, "second writer queued").await;
    let r = ok(lock.downgrade(w).await, "downgrade");
    assert_eq!(r.token(), token, "downgrade keeps the node and token");
    let reader = ok(
        within("the queued reader joins the downgraded hold", reader)
            .await
            .expect("task"),
        "reader",
    );
    tokio::time::sleep(QUIET).await;
    assert!(
        !w2.is_finished(),
        "a writer got in during a downgraded hold"
    );
    ok(reader.release().await, "reader release");
    tokio::time::sleep(QUIET).await;
    assert!(
        !w2.is_finished(),
        "a writer got in while the downgraded hold remained"
    );
    ok(r.release().await, "downgraded release");
    let w2 = ok(
        within("queued writer acquires", w2).await.expect("task"),
        "w2",
    );
    ok(w2.release().await, "w2 release");
}

/// 6 clients mixing reads and writes: writers exclusive, tokens of writers increasing.
pub async fn rwlock_mixed_load_checker(f: &dyn BackendFactory) {
    let s = scope(f, "rwlock_load").await;
    let checker = Arc::new(Checker::default());
    let rounds = scaled(60);
    let mut tasks = Vec::new();
    for (i, c) in clients(&s, 6).await.into_iter().enumerate() {
        let checker = checker.clone();
        tasks.push(tokio::spawn(async move {
            let lock = RwLock::new(&c, "/rw");
            for round in 0..rounds {
                if (i + round) % 3 == 0 {
                    let g = ok(lock.write().await, "write");
                    checker.enter_exclusive(g.token());
                    tokio::task::yield_now().await;
                    checker.leave_exclusive();
                    ok(g.release().await, "release");
                } else {
                    let g = ok(lock.read().await, "read");
                    checker.enter_shared();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    checker.leave_shared();
                    ok(g.release().await, "release");
                }
            }
        }));
    }
    within_long("mixed load to finish", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    checker.assert_clean();
}

/// 6 clients × 30 acquisitions of a 2-lease semaphore: never more than 2 holders.
pub async fn semaphore_never_exceeds_its_leases(f: &dyn BackendFactory) {
    let s = scope(f, "semaphore_limit").await;
    let checker = Arc::new(Checker::default());
    let rounds = scaled(30);
    let mut tasks = Vec::new();
    for c in clients(&s, 6).await {
        let checker = checker.clone();
        tasks.push(tokio::spawn(async move {
            let sem = Semaphore::new(&c, "/sem", 2);
            for _ in 0..rounds {
                let g = ok(sem.acquire().await, "lease");
                checker.enter_shared();
                tokio::time::sleep(Duration::from_millis(2)).await;
                checker.leave_shared();
                ok(g.release().await, "release");
            }
        }));
    }
    within_long("semaphore load to finish", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    checker.assert_clean();
    assert!(
        checker.max_shared() <= 2,
        "{} holders at once",
        checker.max_shared()
    );
    assert!(ok(
        Semaphore::new(&s.client, "/sem", 2).leases().await,
        "leases"
    )
    .is_empty());
}

/// A lease holder whose session expires loses its lease (lost fires) and frees it for a waiter.
pub async fn semaphore_expired_holder_frees_its_lease(f: &dyn BackendFactory) {
    let s = scope(f, "semaphore_expiry").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    let ga = ok(Semaphore::new(&a, "/sem", 1).acquire().await, "a's lease");
    let wb = {
        let sem = Semaphore::new(&b, "/sem", 1);
        tokio::spawn(async move { sem.acquire().await })
    };
    until_children(&s.client, "/sem/leases", 2, "b's lease node waits").await;
    ok(f.expire(a.backend()).await, "expire a");
    let reason = within("a's lease lost", ga.lost()).await;
    assert_ne!(reason, LostReason::Released, "lost for {reason:?}");
    let gb = ok(
        within("b gets the lease", wb).await.expect("task"),
        "b's lease",
    );
    assert!(gb.token() > ga.token());
    ok(gb.release().await, "release");
}
