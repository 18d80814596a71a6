//! Backend-independent tests of election, queue and barriers.

use super::{ok, until_children, within_long};
use crate::{Barrier, DoubleBarrier, HoldView, LeaderEvent, LeaderLatch, LeaderSelector, Queue};
use menagerie_core::conformance::{scope, within, BackendFactory, QUIET};
use menagerie_core::sequence::sort_by_sequence;
use menagerie_core::{Client, CreateMode, Error, ErrorKind, Op};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Appends `token` to the server-side log `/log` through a fenced write; the log's sequence order
/// is the server's commit order, so it cannot be fooled by client-side timing.
async fn act_as_leader(view: &HoldView) -> bool {
    view.fenced(&[Op::create(
        "/log/entry-",
        view.token().to_string().into_bytes(),
        CreateMode::PersistentSequential,
    )])
    .await
    .is_ok()
}

/// Reads the log: tokens in commit order.
async fn read_log(c: &Client) -> Vec<i64> {
    let (mut kids, _) = ok(c.children("/log").await, "list log");
    sort_by_sequence(&mut kids);
    let mut out = Vec::new();
    for k in kids {
        let (d, _) = ok(c.get(&format!("/log/{k}")).await, "read log entry");
        out.push(String::from_utf8_lossy(&d).parse().expect("token"));
    }
    out
}

fn assert_tokens_never_go_back(log: &[i64]) {
    for w in log.windows(2) {
        assert!(
            w[1] >= w[0],
            "a deposed leader acted after its successor: token {} after {}",
            w[1],
            w[0]
        );
    }
}

/// Expire the leader 20 times: one leader at a time, each new term with a larger token, fenced
/// actions never from a deposed leader; prints the failover times.
pub async fn election_survives_20_leader_expiries(f: &dyn BackendFactory) {
    let s = scope(f, "election_failover").await;
    ok(s.client.ensure_path("/log").await, "log");
    let mut clients = Vec::new();
    let mut latches = Vec::new();
    let (tx, mut elected) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, Instant)>();
    let (acted_tx, mut acted) = tokio::sync::mpsc::unbounded_channel::<i64>();
    for i in 0..3 {
        let c = s.other_client().await;
        let latch = ok(
            LeaderLatch::new(&c, "/leader", &format!("p{i}"))
                .start()
                .await,
            "join",
        );
        let mut events = latch.events();
        let (tx, acted_tx) = (tx.clone(), acted_tx.clone());
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if let LeaderEvent::Elected(view) = ev {
                    let _ = tx.send((i, view.token(), Instant::now()));
                    // Act while leading, until the term ends.
                    while view.is_held() {
                        if act_as_leader(&view).await {
                            let _ = acted_tx.send(view.token());
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                            _ = view.lost() => {}
                        }
                    }
                }
            }
        });
        clients.push(c);
        latches.push(latch);
    }
    let mut tokens = Vec::new();
    let mut failovers = Vec::new();
    let (mut leader, mut token, _) = within("first leader", elected.recv()).await.expect("event");
    tokens.push(token);
    for round in 0..20 {
        // A deposed leader learns of its loss a little after its successor is elected (that is
        // what the fencing tokens are for); it must step down promptly.
        within("the deposed leader to step down", async {
            while (0..3).filter(|i| latches[*i].is_leader()).count() > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let leaders: Vec<usize> = (0..3).filter(|i| latches[*i].is_leader()).collect();
        assert!(
            leaders.len() <= 1,
            "round {round}: several leaders {leaders:?}"
        );
        let started = Instant::now();
        ok(
            f.expire(clients[leader].backend()).await,
            "expire the leader",
        );
        let (next, next_token, at) = loop {
            let (who, t, at) = within("a new leader", elected.recv()).await.expect("event");
            if t > token {
                break (who, t, at);
            }
        };
        failovers.push(at.saturating_duration_since(started));
        assert!(next_token > token, "new term's token must be larger");
        leader = next;
        token = next_token;
        tokens.push(token);
        within("the new leader to act", async {
            while acted.recv().await.expect("acting tasks") != token {}
        })
        .await;
    }
    tokio::time::sleep(QUIET).await;
    let leaders = (0..3).filter(|i| latches[*i].is_leader()).count();
    assert_eq!(leaders, 1, "exactly one leader at the end");
    for l in &latches {
        ok(l.close().await, "close");
    }
    let log = read_log(&s.client).await;
    assert_tokens_never_go_back(&log);
    let distinct: HashSet<i64> = log.iter().copied().collect();
    // Every term we caused acted (another term may slip in between, e.g. a re-election while
    // the expired leader rejoins; the token order above covers it).
    for t in &tokens {
        assert!(distinct.contains(t), "the term with token {t} never acted");
    }
    failovers.sort();
    println!(
        "election failover over 20 expiries: p50 {:?}, max {:?}",
        failovers[failovers.len() / 2],
        failovers.last().copied().unwrap_or_default()
    );
}

/// Three selectors with re-queue take turns; tokens grow term after term; a closed selector's
/// running term is told and cancelled.
pub async fn leader_selector_takes_turns(f: &dyn BackendFactory) {
    let s = scope(f, "leader_selector").await;
    ok(s.client.ensure_path("/log").await, "log");
    let mut handles = Vec::new();
    let terms = Arc::new(std::sync::Mutex::new(Vec::<(usize, i64)>::new()));
    for i in 0..3 {
        let c = s.other_client().await;
        let terms = terms.clone();
        let h = LeaderSelector::new(&c, "/selector", &format!("s{i}"))
            .requeue(true)
            .start(move |view| {
                let terms = terms.clone();
                async move {
                    terms.lock().unwrap().push((i, view.token()));
                    for _ in 0..3 {
                        act_as_leader(&view).await;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            });
        handles.push(h);
    }
    within("9 terms", async {
        while terms.lock().unwrap().len() < 9 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for h in &handles {
        h.close().await;
    }
    let t = terms.lock().unwrap().clone();
    for w in t.windows(2) {
        assert!(w[1].1 > w[0].1, "term tokens must grow: {t:?}");
    }
    let who: HashSet<usize> = t.iter().map(|x| x.0).collect();
    assert_eq!(
        who.len(),
        3,
        "every selector led at least once (FIFO re-queue): {t:?}"
    );
    assert_tokens_never_go_back(&read_log(&s.client).await);
}

/// 3 producers × 3 consumers × 2,000 items with `take_with_ack`, consumers' sessions expired
/// mid-flight (holding unacked deliveries): nothing is lost.
pub async fn queue_take_with_ack_loses_nothing(f: &dyn BackendFactory) {
    queue_load(f, "queue_ack", true).await;
}

/// The same load with at-most-once `take`: nothing is delivered twice.
pub async fn queue_take_never_duplicates(f: &dyn BackendFactory) {
    queue_load(f, "queue_take", false).await;
}

/// Calls started while a session is being replaced (after its expiry, before the backend's new
/// session is up) wait for the new session: a caller that simply retries after `SessionExpired`,
/// as user code does, sees it once per expiry and never spins (a spin starves the runtime and,
/// before a fix, leaked a state subscription per call until the process ran out of memory).
pub async fn calls_between_sessions_wait_for_the_new_one(f: &dyn BackendFactory) {
    let s = scope(f, "between_sessions").await;
    let c = s.other_client().await;
    let holder = ok(
        crate::Mutex::new(&s.client, "/lock").acquire().await,
        "holder acquires",
    );
    let q = Queue::new(&c, "/q");
    let m = crate::Mutex::new(&c, "/lock");
    let consumer = tokio::spawn(async move {
        let item = retry_like_a_user("take", || q.take_timeout(Duration::from_secs(5))).await;
        let guard =
            retry_like_a_user("acquire", || m.acquire_timeout(Duration::from_secs(5))).await;
        (item, guard)
    });
    until_children(&s.client, "/lock", 1, "holder only").await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the take is waiting
    ok(f.expire(c.backend()).await, "expire the consumer");
    ok(Queue::new(&s.client, "/q").put(b"x").await, "put");
    tokio::time::sleep(Duration::from_millis(100)).await;
    ok(f.expire(c.backend()).await, "expire the consumer again");
    ok(holder.release().await, "release");
    let ((item, takes), (guard, acquires)) = within_long("the consumer", consumer)
        .await
        .expect("consumer task");
    assert_eq!(item.data, b"x");
    assert!(guard.is_held());
    ok(guard.release().await, "release");
    for (what, errors) in [("take", takes), ("acquire", acquires)] {
        assert!(
            errors <= 2,
            "{what} failed {errors} times with SessionExpired across two expiries"
        );
    }
}

/// Calls `op` until it succeeds, counting `SessionExpired` answers (bounded, so that a spin ends).
async fn retry_like_a_user<T, F, Fut>(what: &str, mut op: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = menagerie_core::Result<T>>,
{
    let mut expired = 0;
    for _ in 0..100_000 {
        match op().await {
            Ok(v) => return (v, expired),
            Err(Error::SessionExpired) => expired += 1,
            Err(e) if e.is_retryable() || matches!(e, Error::Timeout) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
    panic!("{what}: 100000 attempts ({expired} SessionExpired) without success");
}

async fn queue_load(f: &dyn BackendFactory, name: &str, with_ack: bool) {
    let s = scope(f, name).await;
    let per_producer = super::scaled(2000);
    let total = 3 * per_producer;
    let mut producers = Vec::new();
    for p in 0..3 {
        let c = s.other_client().await;
        producers.push(tokio::spawn(async move {
            let q = Queue::new(&c, "/q");
            for i in 0..per_producer {
                ok(q.put(format!("{p}-{i}").as_bytes()).await, "put");
            }
        }));
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_lost = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut consumers = Vec::new();
    for k in 0..3 {
        let c = s.other_client().await;
        let seen = seen.clone();
        let backend = c.backend().clone();
        consumers.push((
            backend,
            tokio::spawn(async move {
                let q = Queue::new(&c, "/q").with_consumer_id(&format!("c{k}"));
                loop {
                    let got = if with_ack {
                        match q.take_with_ack_timeout(Duration::from_secs(2)).await {
                            Ok(d) => {
                                let item = d.item().clone();
                                seen.lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&item.data).into());
                                match d.ack().await {
                                    // A claim lost to an expiry is delivered again: allowed.
                                    Ok(()) | Err(Error::Lost { .. }) => {}
                                    Err(e) if e.is_session_gone() || e.is_retryable() => {}
                                    Err(e) => panic!("ack: {e}"),
                                }
                                true
                            }
                            Err(Error::Timeout) => false,
                            Err(e) if e.is_session_gone() || e.is_retryable() => true,
                            Err(e) => panic!("take_with_ack: {e}"),
                        }
                    } else {
                        match q.take_timeout(Duration::from_secs(2)).await {
                            Ok(item) => {
                                seen.lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&item.data).into());
                                true
                            }
                            Err(Error::Timeout) => false,
                            // A take whose delete lost its answer may have taken the item:
                            // at-most-once allows losing it, never delivering it twice.
                            Err(e) if e.is_session_gone() || e.is_retryable() => true,
                            Err(e) => panic!("take: {e}"),
                        }
                    };
                    if !got && q.is_empty().await.unwrap_or(false) {
                        return;
                    }
                }
            }),
        ));
    }
    // A consumer that dies holding work: it takes 5 items, never finishes them, and its session
    // expires. With take_with_ack they must come back; with take they are gone (at-most-once).
    let doomed = s.other_client().await;
    {
        let q = Queue::new(&doomed, "/q").with_consumer_id("doomed");
        let mut held = Vec::new();
        for _ in 0..5 {
            if with_ack {
                held.push(ok(
                    within("doomed claim", q.take_with_ack()).await,
                    "doomed claim",
                ));
            } else {
                let item = ok(within("doomed take", q.take()).await, "doomed take");
                seen_lost
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&item.data).into());
            }
        }
        ok(
            f.expire(doomed.backend()).await,
            "expire the doomed consumer",
        );
        std::mem::forget(held); // died: no nack, no drop handler
    }
    // Kill consumers mid-flight: expire two consumers' sessions while they work.
    within_long("items to flow", async {
        while seen.lock().unwrap().len() < total / 4 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    ok(f.expire(&consumers[0].0).await, "expire consumer 0");
    within_long("more items", async {
        while seen.lock().unwrap().len() < total / 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    ok(f.expire(&consumers[1].0).await, "expire consumer 1");
    for p in producers {
        within_long("producers", p).await.expect("producer");
    }
    let deadline = Duration::from_secs(300);
    for (_, c) in consumers {
        tokio::time::timeout(deadline, c)
            .await
            .expect("consumers finish")
            .expect("consumer");
    }
    let seen = seen.lock().unwrap().clone();
    let lost = seen_lost.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for x in &seen {
        *counts.entry(x.as_str()).or_default() += 1;
    }
    if with_ack {
        assert_eq!(counts.len(), total, "items lost with take_with_ack");
    } else {
        for x in &lost {
            *counts.entry(x.as_str()).or_default() += 1;
        }
        let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            dups.is_empty(),
            "items delivered twice with take: {:?}",
            &dups[..dups.len().min(5)]
        );
        assert!(counts.len() <= total);
    }
    // Strict FIFO per producer within one consumer's view is not promised across consumers, but
    // the queue must end empty.
    assert_eq!(ok(Queue::new(&s.client, "/q").len().await, "len"), 0);
    println!(
        "queue {}: {} items, {} deliveries ({} redelivered)",
        if with_ack { "take_with_ack" } else { "take" },
        total,
        seen.len(),
        seen.len().saturating_sub(counts.len())
    );
}

/// One consumer sees items in exactly the order they were put.
pub async fn queue_is_fifo(f: &dyn BackendFactory) {
    let s = scope(f, "queue_fifo").await;
    let q = Queue::new(&s.client, "/q");
    for i in 0..20 {
        ok(q.put(format!("{i}").as_bytes()).await, "put");
    }
    assert_eq!(ok(q.peek().await, "peek").expect("head").data, b"0");
    let mut got = Vec::new();
    for i in 0..20 {
        let item = if i % 2 == 0 {
            ok(q.take().await, "take")
        } else {
            let d = ok(q.take_with_ack().await, "take_with_ack");
            let item = d.item().clone();
            ok(d.ack().await, "ack");
            item
        };
        got.push(String::from_utf8(item.data).unwrap());
    }
    let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    assert!(ok(q.try_take().await, "try_take").is_none());
    let r = q.take_timeout(Duration::from_millis(50)).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
}

/// Unacked deliveries come back (nack, drop, visibility timeout); after N deliveries the item is
/// dead-lettered; a stale ack fails with Lost.
pub async fn queue_redelivery_and_dead_letters(f: &dyn BackendFactory) {
    let s = scope(f, "queue_redelivery").await;
    let q = Queue::new(&s.client, "/q")
        .with_max_deliveries(3)
        .with_visibility_timeout(Duration::from_millis(300));
    ok(q.put(b"x").await, "put");
    let d1 = ok(q.take_with_ack().await, "first delivery");
    assert_eq!(d1.attempt(), 1);
    assert!(ok(q.try_take_with_ack().await, "claimed item is skipped").is_none());
    ok(d1.nack().await, "nack");
    let d2 = ok(
        within("redelivery after nack", q.take_with_ack()).await,
        "second",
    );
    assert_eq!(d2.attempt(), 2);
    // Not acked within the visibility timeout: delivered again, and the stale ack fails.
    let d3 = ok(
        within("redelivery after the visibility timeout", q.take_with_ack()).await,
        "third",
    );
    assert_eq!(d3.attempt(), 3);
    assert_eq!(d2.ack().await.unwrap_err().kind(), ErrorKind::Lost);
    drop(d3); // dropped unacked: given back
    within("the item is dead-lettered after 3 deliveries", async {
        loop {
            let _ = q.try_take_with_ack().await;
            if ok(q.dead_letters().len().await, "dead len") == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(ok(q.len().await, "len"), 0);
    assert_eq!(ok(q.dead_letters().take().await, "dead letter").data, b"x");
}

/// Barrier: 5 waiters, one dies (its wait ends with SessionExpired); removing the barrier releases
/// the other 4.
pub async fn barrier_releases_waiters(f: &dyn BackendFactory) {
    let s = scope(f, "barrier").await;
    let gate = Barrier::new(&s.client, "/gate");
    ok(gate.set().await, "set");
    let mut waiters = Vec::new();
    let mut backends = Vec::new();
    for _ in 0..5 {
        let c = s.other_client().await;
        backends.push(c.backend().clone());
        let g = Barrier::new(&c, "/gate");
        waiters.push(tokio::spawn(async move { g.wait().await }));
    }
    tokio::time::sleep(QUIET).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "waiters passed a set barrier"
    );
    ok(f.expire(&backends[0]).await, "expire waiter 0");
    let dead = waiters.remove(0);
    let r = within("the dead waiter's wait ends", dead)
        .await
        .expect("task");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::SessionExpired);
    ok(gate.remove().await, "remove");
    for w in waiters {
        ok(within("waiter released", w).await.expect("task"), "wait");
    }
}

/// Double barrier of 5: nobody passes `enter` before all 5 are in; one member dies inside; the
/// other 4 still get through `leave`.
pub async fn double_barrier_with_a_dying_member(f: &dyn BackendFactory) {
    let s = scope(f, "double_barrier").await;
    let mut members = Vec::new();
    for i in 0..5 {
        let c = s.other_client().await;
        members.push((
            c.backend().clone(),
            DoubleBarrier::new(&c, "/batch", 5, &format!("m{i}")),
        ));
    }
    let mut entering = Vec::new();
    for (_, m) in members.iter().take(4) {
        let m = m.clone();
        entering.push(tokio::spawn(async move { m.enter().await }));
    }
    until_children(&s.client, "/batch", 4, "4 members in").await;
    tokio::time::sleep(QUIET).await;
    assert!(
        entering.iter().all(|e| !e.is_finished()),
        "entered with only 4 of 5"
    );
    ok(members[4].1.enter().await, "fifth enters");
    for e in entering {
        ok(within("enter completes", e).await.expect("task"), "enter");
    }
    ok(
        f.expire(&members[0].0).await,
        "member 0 dies inside the barrier",
    );
    let mut leaving = Vec::new();
    for (_, m) in members.iter().skip(1) {
        let m = m.clone();
        leaving.push(tokio::spawn(async move { m.leave().await }));
    }
    for l in leaving {
        ok(within("leave completes", l).await.expect("task"), "leave");
    }
    let (kids, _) = ok(s.client.children("/batch").await, "list");
    assert!(kids.is_empty(), "barrier not cleaned up: {kids:?}");
}

/// Leadership ids: the latch reports the current leader's participant id and the line order.
pub async fn latch_reports_leader_and_participants(f: &dyn BackendFactory) {
    let s = scope(f, "latch_ids").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    let la = ok(
        LeaderLatch::new(&a, "/l", "alpha").start().await,
        "alpha joins",
    );
    ok(
        within("alpha leads", la.leadership()).await,
        "alpha leadership",
    );
    let lb = ok(
        LeaderLatch::new(&b, "/l", "beta").start().await,
        "beta joins",
    );
    assert_eq!(
        ok(lb.leader_id().await, "leader id").as_deref(),
        Some("alpha")
    );
    assert_eq!(
        ok(lb.participants().await, "participants"),
        vec!["alpha", "beta"]
    );
    assert!(!lb.is_leader());
    let mut events = lb.events();
    ok(la.close().await, "alpha leaves");
    match within("beta elected", events.next()).await {
        Some(LeaderEvent::Elected(v)) => assert!(v.is_held()),
        other => panic!("expected Elected, got {other:?}"),
    }
    assert!(lb.is_leader());
    ok(lb.close().await, "beta leaves");
    assert_eq!(lb.leadership().await.unwrap_err().kind(), ErrorKind::Closed);
}
