//! Watch hand-offs between sessions go through each handle's single namespace stream: no wait
//! takes etcd 3.4's 100 ms path for watches that start at a past revision.

use menagerie_core::{Client, CreateMode};
use menagerie_etcd::EtcdBackend;
use menagerie_integration::etcd::{options, shared_single};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two sessions take turns: each waits (get_and_watch) for the other's write, then writes.
/// A stream per wait at a past revision would stall about one hand-off in eight by ~95 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_handoffs_do_not_stall() {
    let server = shared_single();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let opts = options(server, &format!("/handoff-{nanos:x}"));
    let a = Client::new(Arc::new(
        EtcdBackend::connect(opts.clone()).await.expect("a"),
    ));
    let b = Client::new(Arc::new(EtcdBackend::connect(opts).await.expect("b")));
    a.create("/turn", b"0", CreateMode::Persistent)
        .await
        .expect("create");
    b.sync("/").await.expect("sync");
    let rounds = 80u32;
    let mut latencies = Vec::new();
    for i in 1..=rounds {
        let (writer, waiter) = if i % 2 == 1 { (&a, &b) } else { (&b, &a) };
        let (_, _, w) = waiter.get_and_watch("/turn").await.expect("watch");
        let t = Instant::now();
        writer
            .set("/turn", i.to_string().as_bytes(), None)
            .await
            .expect("set");
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("the watch fires")
            .expect("event");
        latencies.push(t.elapsed());
        let (data, _) = waiter.get("/turn").await.expect("get");
        assert_eq!(data, i.to_string().as_bytes(), "the waiter sees the write");
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p90 = latencies[latencies.len() * 9 / 10];
    eprintln!(
        "hand-off (set + other session's watch): p50 {p50:?}, p90 {p90:?}, max {:?}",
        latencies.last()
    );
    assert!(
        p90 < Duration::from_millis(80),
        "hand-offs stall: p90 {p90:?} (p50 {p50:?})"
    );
}
