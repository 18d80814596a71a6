//! Concurrent sequential creates under one parent (the lock-queue pattern): the counter is a
//! compare in every transaction, so concurrent creators retry and never share or skip a number.

use menagerie_core::{Client, CreateMode, Op};
use menagerie_etcd::EtcdBackend;
use menagerie_integration::etcd::{options, shared_single};
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequential_creates_get_distinct_contiguous_numbers() {
    let server = shared_single();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let opts = options(server, &format!("/seq-{nanos:x}"));
    let setup = Client::new(Arc::new(
        EtcdBackend::connect(opts.clone()).await.expect("setup"),
    ));
    setup
        .create("/q", b"", CreateMode::Persistent)
        .await
        .expect("parent");
    let sessions = 6;
    let each = 15;
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let c = Client::new(Arc::new(EtcdBackend::connect(opts).await.expect("connect")));
            let mut names = Vec::new();
            for i in 0..each {
                let mode = if (s + i) % 2 == 0 {
                    CreateMode::EphemeralSequential
                } else {
                    CreateMode::PersistentSequential
                };
                if i % 5 == 4 {
                    // Some numbers are taken inside multis, together with a plain create.
                    let r = c
                        .multi(&[
                            Op::create("/q/m-", b"".to_vec(), mode),
                            Op::create(
                                format!("/q/plain-{s}-{i}"),
                                b"".to_vec(),
                                CreateMode::Persistent,
                            ),
                        ])
                        .await
                        .expect("multi");
                    if let menagerie_core::OpResult::Create { path, .. } = &r[0] {
                        names.push(path.clone());
                    }
                } else {
                    names.push(
                        c.create("/q/n-", b"", mode)
                            .await
                            .expect("sequential create"),
                    );
                }
            }
            (names, c)
        }));
    }
    let mut all = BTreeSet::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (names, c) = t.await.expect("task");
        for n in names {
            let seq = menagerie_core::sequence::parse_sequence(&n).expect("a sequence suffix");
            assert!(all.insert(seq), "sequence number {seq} given twice ({n})");
        }
        clients.push(c);
    }
    // Every child create counts: the numbers of sequential children plus the plain creates
    // fill 0..total without a gap.
    let total = sessions * each + sessions * (each / 5);
    let (kids, stat) = setup.children("/q").await.expect("children");
    assert_eq!(kids.len(), total, "every create applied once");
    assert_eq!(
        stat.cversion as usize, total,
        "cversion counts every child create"
    );
    let plain = sessions * (each / 5);
    assert_eq!(all.len(), total - plain);
    assert!(
        *all.iter().max().expect("some") < total as i32,
        "numbers stay below the create count"
    );
}
