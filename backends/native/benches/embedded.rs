//! Embedded native backend throughput: `cargo bench -p menagerie-native --bench embedded`.
//!
//! Prints one table: create / get / set / delete operations per second from one task and from 8
//! tasks (8 sessions), 100-byte data, plus listing the children of a node with 10,000 children.
//! Targets (issue 2): ≥ 1,000,000 get/s and ≥ 300,000 set/s from one task.

use menagerie_core::{Backend, Client, CreateMode};
use menagerie_native::{NativeSession, NativeStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DATA: [u8; 100] = [7u8; 100];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Create,
    Get,
    Set,
    Delete,
}

async fn run_one(s: &NativeSession, kind: Kind, prefix: &str, n: usize) {
    for i in 0..n {
        let p = format!("{prefix}/n{i}");
        let r = match kind {
            Kind::Create => s
                .create(&p, &DATA, CreateMode::Persistent)
                .await
                .map(|_| ()),
            Kind::Get => s.get(&p).await.map(|_| ()),
            Kind::Set => s.set(&p, &DATA, None).await.map(|_| ()),
            Kind::Delete => s.delete(&p, None).await,
        };
        r.expect("benchmark operation");
    }
}

/// Runs create, get, set, delete in that order with `tasks` tasks of `n` ops each; returns ops/s.
async fn phase(store: &Arc<NativeStore>, tasks: usize, n: usize) -> Vec<(Kind, f64)> {
    let sessions: Vec<Arc<NativeSession>> = (0..tasks).map(|_| Arc::new(store.session())).collect();
    let root = Client::new(sessions[0].clone());
    let base = format!("/bench-{tasks}");
    for t in 0..tasks {
        root.ensure_path(&format!("{base}/t{t}")).await.unwrap();
    }
    let mut out = Vec::new();
    for kind in [Kind::Create, Kind::Get, Kind::Set, Kind::Delete] {
        let start = Instant::now();
        let mut handles = Vec::new();
        for (t, s) in sessions.iter().enumerate() {
            let s = s.clone();
            let prefix = format!("{base}/t{t}");
            handles.push(tokio::spawn(
                async move { run_one(&s, kind, &prefix, n).await },
            ));
        }
        for h in handles {
            h.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        out.push((kind, (tasks * n) as f64 / secs));
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let quick = std::env::args().any(|a| a == "--quick");
        let n = if quick { 20_000 } else { 300_000 };
        let store = NativeStore::new();
        // Warm-up.
        phase(&store, 1, n / 10).await;
        let one = phase(&store, 1, n).await;
        let eight = phase(&store, 8, n / 8).await;

        let s = store.session();
        s.create("/big", b"", CreateMode::Persistent).await.unwrap();
        for i in 0..10_000 {
            s.create(&format!("/big/child-{i:05}"), b"", CreateMode::Persistent)
                .await
                .unwrap();
        }
        let rounds = if quick { 50 } else { 500 };
        let start = Instant::now();
        for _ in 0..rounds {
            let (kids, _) = s.children("/big").await.unwrap();
            assert_eq!(kids.len(), 10_000);
        }
        let per_list = start.elapsed() / rounds;

        println!("menagerie-native embedded backend ({} ops per row, 100-byte data, 2 worker threads)", n);
        println!();
        println!("| operation | 1 task (ops/s) | 8 tasks (ops/s) |");
        println!("|---|---:|---:|");
        for ((kind, a), (_, b)) in one.iter().zip(eight.iter()) {
            println!("| {:?} | {:>12.0} | {:>12.0} |", kind, a, b);
        }
        println!(
            "| children of a node with 10,000 children | {:>9.2} ms per listing | {:.0} listings/s |",
            ms(per_list),
            1.0 / per_list.as_secs_f64()
        );
        let get = one.iter().find(|(k, _)| matches!(k, Kind::Get)).map(|x| x.1).unwrap_or(0.0);
        let set = one.iter().find(|(k, _)| matches!(k, Kind::Set)).map(|x| x.1).unwrap_or(0.0);
        println!();
        println!(
            "targets: get ≥ 1,000,000/s from one task: {}; set ≥ 300,000/s from one task: {}",
            if get >= 1_000_000.0 { "met" } else { "NOT met" },
            if set >= 300_000.0 { "met" } else { "NOT met" }
        );
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
