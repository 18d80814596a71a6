//! Sequential creates and deletes under ONE contended parent (the queue pattern): producers'
//! sequential creates all compare the parent's child counter, consumers delete children of the
//! same parent. Every create must succeed without `OperationTimeout` under the contention of a
//! few clients, the numbers must stay exact (distinct, no gap), and the throughput benchmark
//! (`#[ignore]`d) prints puts/s and takes/s for one and for three clients:
//!
//! ```text
//! cargo test -p menagerie-integration --test etcd_contention -- --ignored --nocapture
//! ```

use menagerie_core::sequence::parse_sequence;
use menagerie_core::{Client, CreateMode, Error, Op};
use menagerie_etcd::{EtcdBackend, EtcdOptions};
use menagerie_integration::etcd::{options, shared_single};
use menagerie_recipes::Queue;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fresh_options(name: &str) -> EtcdOptions {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    options(shared_single(), &format!("/{name}-{nanos:x}"))
}

async fn client(opts: &EtcdOptions) -> Client {
    Client::new(Arc::new(
        EtcdBackend::connect(opts.clone()).await.expect("connect"),
    ))
}

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Three producers create sequential children of `/q` while three consumers delete them (list,
/// then delete each child, as `Queue::take` does): every create succeeds, and the numbers are
/// exactly 0..total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_creates_and_deletes_under_one_parent_make_progress() {
    menagerie_integration::init_test_logs();
    let opts = fresh_options("contention");
    let setup = client(&opts).await;
    setup
        .create("/q", b"", CreateMode::Persistent)
        .await
        .expect("parent");
    let each = count("MENAGERIE_CONTENTION_N", 300);
    let producers_done = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let c = client(&opts).await;
        let (done, deleted) = (producers_done.clone(), deleted.clone());
        consumers.push(tokio::spawn(async move {
            loop {
                let finished = done.load(Ordering::Acquire);
                let (mut kids, _) = c.children("/q").await.expect("children");
                kids.sort();
                if kids.is_empty() {
                    if finished {
                        return c;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for k in kids {
                    match c.delete(&format!("/q/{k}"), None).await {
                        Ok(()) => {
                            deleted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::NoNode { .. }) => {}
                        Err(e) => panic!("delete /q/{k}: {e}"),
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..3 {
        let c = client(&opts).await;
        producers.push(tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..each {
                let r = if i % 50 == 49 {
                    // Now and then inside a multi, with a plain create: both count.
                    c.multi(&[
                        Op::create("/q/qn-", b"x".to_vec(), CreateMode::PersistentSequential),
                        Op::create(
                            format!("/q/plain-{p}-{i}"),
                            b"".to_vec(),
                            CreateMode::Persistent,
                        ),
                    ])
                    .await
                    .map(|r| match &r[0] {
                        menagerie_core::OpResult::Create { path, .. } => path.clone(),
                        other => panic!("multi answered {other:?}"),
                    })
                } else {
                    c.create("/q/qn-", b"x", CreateMode::PersistentSequential)
                        .await
                };
                match r {
                    Ok(n) => names.push(n),
                    Err(e) => panic!("producer {p}, create {i}: {e}"),
                }
            }
            (names, c)
        }));
    }
    let mut numbers = BTreeSet::new();
    let mut keep = Vec::new();
    for t in producers {
        let (names, c) = tokio::time::timeout(Duration::from_secs(300), t)
            .await
            .expect("producers finish")
            .expect("producer");
        for n in names {
            let seq = parse_sequence(&n).expect("a sequence suffix");
            assert!(
                numbers.insert(seq),
                "sequence number {seq} given twice ({n})"
            );
        }
        keep.push(c);
    }
    let elapsed = started.elapsed();
    producers_done.store(true, Ordering::Release);
    for t in consumers {
        keep.push(
            tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .expect("consumers finish")
                .expect("consumer"),
        );
    }
    let sequential = 3 * each;
    let plain = 3 * (each / 50);
    let total = sequential + plain;
    // The plain creates inside multis take a number too: sequential numbers + plain creates
    // fill 0..total without a gap.
    assert_eq!(numbers.len(), sequential);
    assert!(
        numbers.iter().all(|n| (*n as usize) < total),
        "a number beyond {total}"
    );
    assert_eq!(
        deleted.load(Ordering::Relaxed),
        total,
        "every child deleted once"
    );
    let (kids, stat) = setup.children("/q").await.expect("children");
    assert!(kids.is_empty());
    assert_eq!(stat.cversion as usize, 2 * total, "creates + deletes");
    assert_eq!(stat.num_children, 0);
    // The next number continues the sequence.
    let next = setup
        .create("/q/qn-", b"", CreateMode::PersistentSequential)
        .await
        .expect("one more");
    assert_eq!(parse_sequence(&next), Some(total as i32));
    println!(
        "{sequential} sequential + {plain} plain creates by 3 producers, deleted by 3 consumers, in {elapsed:.2?}"
    );
}

/// A handle's first sequential create under a parent tries several counter values in one
/// (nested) transaction, as it does under contention: a multi that also deletes, creates and sets
/// children of that parent must be accepted by etcd and applied exactly once, with exact numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_with_a_sequential_create_under_a_busy_parent_applies_once() {
    menagerie_integration::init_test_logs();
    let opts = fresh_options("guesses");
    let a = client(&opts).await;
    a.create("/p", b"", CreateMode::Persistent)
        .await
        .expect("parent");
    for name in ["old", "kept"] {
        a.create(&format!("/p/{name}"), b"", CreateMode::Persistent)
            .await
            .expect("child");
    }
    // b has never created a sequential child of /p: like a handle that sees other clients
    // create there, it tries several counter values in one nested transaction.
    let b = client(&opts).await;
    for _ in 0..3 {
        a.create("/p/s-", b"", CreateMode::PersistentSequential)
            .await
            .expect("a's sequential create");
    }
    let r = b
        .multi(&[
            Op::delete("/p/old", None),
            Op::create("/p/s-", b"x".to_vec(), CreateMode::PersistentSequential),
            Op::create("/p/new", b"".to_vec(), CreateMode::Persistent),
            Op::set("/p/kept", b"v".to_vec(), Some(0)),
        ])
        .await
        .expect("multi");
    // Children created before: old, kept, s-2, s-3, s-4 (numbers 0..5): the multi's is 5.
    match &r[1] {
        menagerie_core::OpResult::Create { path, .. } => assert_eq!(path, "/p/s-0000000005"),
        other => panic!("multi answered {other:?}"),
    }
    match &r[3] {
        menagerie_core::OpResult::SetData { stat } => assert_eq!(stat.version, 1),
        other => panic!("multi answered {other:?}"),
    }
    let (mut kids, stat) = a.children("/p").await.expect("children");
    kids.sort();
    assert_eq!(
        kids,
        [
            "kept",
            "new",
            "s-0000000002",
            "s-0000000003",
            "s-0000000004",
            "s-0000000005"
        ]
    );
    // 7 creates and 1 delete.
    assert_eq!(stat.cversion, 8);
    // A failing multi with a sequential create answers ZooKeeper's error and changes nothing.
    let e = b
        .multi(&[
            Op::create("/p/s-", b"".to_vec(), CreateMode::PersistentSequential),
            Op::check("/p/kept", Some(0)),
        ])
        .await
        .expect_err("stale check");
    match e {
        Error::MultiFailed { index, .. } => assert_eq!(index, 1),
        other => panic!("multi failed with {other}"),
    }
    assert_eq!(
        a.create("/p/s-", b"", CreateMode::PersistentSequential)
            .await
            .expect("next"),
        "/p/s-0000000007"
    );
}

/// Transactions etcd has answered so far (its `/metrics`): the benchmark's cost in round trips,
/// independent of how loaded the machine is.
fn etcd_txns() -> u64 {
    use std::io::{Read, Write};
    let endpoint = shared_single().endpoints()[0].clone();
    let Ok(mut conn) = std::net::TcpStream::connect(&endpoint) else {
        return 0;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(conn, "GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body.lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total{")
                && l.contains("grpc_code=\"OK\"")
                && l.contains("grpc_method=\"Txn\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Puts `n` items; returns the slowest put and when the last one finished.
async fn put_all(q: Queue, n: usize) -> (Duration, Instant) {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        q.put(format!("{i}").as_bytes()).await.expect("put");
        slowest = slowest.max(t.elapsed());
    }
    (slowest, Instant::now())
}

/// Waits for the producers: (slowest put, first finish to last finish).
async fn producers_done(
    tasks: Vec<tokio::task::JoinHandle<(Duration, Instant)>>,
) -> (Duration, Duration) {
    let mut slowest = Duration::ZERO;
    let mut ends = Vec::new();
    for task in tasks {
        let (s, end) = task.await.expect("producer");
        slowest = slowest.max(s);
        ends.push(end);
    }
    let first = ends.iter().min().copied().unwrap_or_else(Instant::now);
    let last = ends.iter().max().copied().unwrap_or_else(Instant::now);
    (slowest, last - first)
}

async fn take_until(q: Queue, taken: Arc<AtomicUsize>, total: usize) {
    while taken.load(Ordering::Acquire) < total {
        match q.take_timeout(Duration::from_millis(500)).await {
            Ok(_) => {
                taken.fetch_add(1, Ordering::AcqRel);
            }
            Err(Error::Timeout) => {}
            Err(e) => panic!("take: {e}"),
        }
    }
}

async fn take_with_ack_until(q: Queue, taken: Arc<AtomicUsize>, total: usize) {
    while taken.load(Ordering::Acquire) < total {
        match q.take_with_ack_timeout(Duration::from_millis(500)).await {
            Ok(d) => {
                d.ack().await.expect("ack");
                taken.fetch_add(1, Ordering::AcqRel);
            }
            Err(Error::Timeout) => {}
            Err(e) => panic!("take_with_ack: {e}"),
        }
    }
}

/// puts/s and takes/s on one queue (one parent), for one client and for three concurrent ones,
/// producing alone, taking alone, and both at once. Prints the figures; asserts nothing timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn queue_throughput_on_one_parent() {
    menagerie_integration::init_test_logs();
    let n = count("MENAGERIE_BENCH_N", 300);
    let opts = fresh_options("bench");
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(client(&opts).await);
    }
    for k in [1usize, 3] {
        let path = format!("/bench{k}");
        let total = k * n;
        // Puts alone.
        let txns = etcd_txns();
        let t = Instant::now();
        let tasks: Vec<_> = (0..k)
            .map(|i| tokio::spawn(put_all(Queue::new(&clients[i], &path), n)))
            .collect();
        let (slowest, spread) = producers_done(tasks).await;
        let put_rate = total as f64 / t.elapsed().as_secs_f64();
        let put_txns = (etcd_txns() - txns) as f64 / total as f64;
        // Takes alone.
        let taken = Arc::new(AtomicUsize::new(0));
        let txns = etcd_txns();
        let t = Instant::now();
        let tasks: Vec<_> = (0..k)
            .map(|i| {
                tokio::spawn(take_until(
                    Queue::new(&clients[i], &path),
                    taken.clone(),
                    total,
                ))
            })
            .collect();
        for task in tasks {
            task.await.expect("consumer");
        }
        let take_rate = total as f64 / t.elapsed().as_secs_f64();
        let take_txns = (etcd_txns() - txns) as f64 / total as f64;
        // Both at once: k producers and k consumers.
        let path = format!("/mixed{k}");
        let taken = Arc::new(AtomicUsize::new(0));
        let txns = etcd_txns();
        let t = Instant::now();
        let producers: Vec<_> = (0..k)
            .map(|i| tokio::spawn(put_all(Queue::new(&clients[i], &path), n)))
            .collect();
        let consumers: Vec<_> = (0..k)
            .map(|i| {
                tokio::spawn(take_until(
                    Queue::new(&clients[3 + i], &path),
                    taken.clone(),
                    total,
                ))
            })
            .collect();
        let (mixed_slowest, _) = producers_done(producers).await;
        let put_time = t.elapsed();
        for task in consumers {
            task.await.expect("consumer");
        }
        let mixed_put = total as f64 / put_time.as_secs_f64();
        let mixed_take = total as f64 / t.elapsed().as_secs_f64();
        let mixed_txns = (etcd_txns() - txns) as f64 / total as f64;
        // take_with_ack + ack alone, on the items of a fresh queue.
        let path = format!("/acked{k}");
        let tasks: Vec<_> = (0..k)
            .map(|i| tokio::spawn(put_all(Queue::new(&clients[i], &path), n)))
            .collect();
        producers_done(tasks).await;
        let taken = Arc::new(AtomicUsize::new(0));
        let txns = etcd_txns();
        let t = Instant::now();
        let tasks: Vec<_> = (0..k)
            .map(|i| {
                tokio::spawn(take_with_ack_until(
                    Queue::new(&clients[3 + i], &path),
                    taken.clone(),
                    total,
                ))
            })
            .collect();
        for task in tasks {
            task.await.expect("consumer");
        }
        let ack_rate = total as f64 / t.elapsed().as_secs_f64();
        let ack_txns = (etcd_txns() - txns) as f64 / total as f64;
        println!(
            "{k} client(s) x {n}: puts alone {put_rate:.0}/s ({put_txns:.2} etcd txns/put, \
             slowest put {slowest:.0?}, producers finished {spread:.0?} apart), takes alone \
             {take_rate:.0}/s ({take_txns:.2} txns/take); {k} producers + {k} consumers at once: \
             puts {mixed_put:.0}/s (slowest {mixed_slowest:.0?}), takes {mixed_take:.0}/s \
             ({mixed_txns:.2} txns/item); take_with_ack+ack alone {ack_rate:.0}/s ({ack_txns:.2} \
             txns/item)"
        );
    }
}
