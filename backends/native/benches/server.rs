//! menagerie-server against a real ZooKeeper 3.8, same `zookeeper-client` workload, printed side
//! by side with ratios:
//! - sequential latency (p50 / p99) of create, get, set (1 KiB) and delete;
//! - throughput of get and set (1 KiB) with 64 requests in flight on one connection, and on
//!   8 connections (8 in flight each);
//! - resident memory of the server process after creating BENCH_ZNODES znodes of 100 bytes.
//!
//! `cargo bench -p menagerie-native --bench server` (release build). Environment:
//! BENCH_SECS (seconds per throughput row, default 5), BENCH_SEQ (operations per latency row,
//! default 2000), BENCH_ZNODES (default 1,000,000; 0 skips the memory row).
//! Both servers run as child processes on free loopback ports with temp dirs. ZooKeeper runs with
//! its own durability defaults (forceSync=yes: it fsyncs its log before answering a write, as
//! menagerie-server with --fsync always does); menagerie-server runs twice, with --fsync always
//! and --fsync never.

use menagerie_integration::process::{free_port, wait_until, ServerProcess};
use menagerie_integration::zookeeper::{ruok, ZkCluster, ZkSettings};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zkc::{Acls, CreateMode};
use zookeeper_client as zkc;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn opts() -> zkc::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

#[derive(Default, Clone)]
struct Row {
    p50_us: [f64; 4],
    p99_us: [f64; 4],
    get_1: f64,
    set_1: f64,
    get_8: f64,
    set_8: f64,
    rss_mb: f64,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

async fn connect(addr: &str) -> zkc::Client {
    tokio::time::timeout(
        Duration::from_secs(30),
        zkc::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(addr),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// ops/s of `op` run by `per_conn` tasks on each of `clients`, for `secs`.
async fn throughput(clients: &[zkc::Client], per_conn: usize, secs: u64, set: bool) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let payload = vec![7u8; 1024];
    let mut tasks = Vec::new();
    for (ci, c) in clients.iter().enumerate() {
        for t in 0..per_conn {
            let c = c.clone();
            let count = count.clone();
            let payload = payload.clone();
            let path = format!("/bench/t{}", (ci * per_conn + t) % 64);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < stop {
                    if set {
                        c.set_data(&path, &payload, None).await.expect("set");
                    } else {
                        c.get_data(&path).await.expect("get");
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let started = Instant::now();
    for t in tasks {
        t.await.expect("worker");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The pid of the process whose command line mentions `needle`.
fn pid_with(needle: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && pid != std::process::id() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.trim() != "sh" {
                return Some(pid);
            }
        }
    }
    None
}

async fn run(addr: &str, pid: u32, label: &str) -> Row {
    let secs = env_num("BENCH_SECS", 5);
    let seq = env_num("BENCH_SEQ", 2000) as usize;
    let znodes = env_num("BENCH_ZNODES", 1_000_000);
    let c = connect(addr).await;
    let _ = c.create("/bench", b"", &opts()).await;
    for i in 0..64 {
        let _ = c
            .create(&format!("/bench/t{i}"), &[1u8; 1024], &opts())
            .await;
    }
    let kib = vec![3u8; 1024];
    // Warm-up (the JVM's JIT, caches), not measured.
    let warm = vec![c.clone()];
    throughput(&warm, 64, secs.min(3), false).await;
    throughput(&warm, 64, secs.min(3), true).await;
    let mut row = Row::default();
    let mut lat: [Vec<Duration>; 4] = Default::default();
    for i in 0..seq {
        let p = format!("/bench/seq-{i}");
        let t = Instant::now();
        c.create(&p, &kib, &opts()).await.expect("create");
        lat[0].push(t.elapsed());
        let t = Instant::now();
        c.get_data(&p).await.expect("get");
        lat[1].push(t.elapsed());
        let t = Instant::now();
        c.set_data(&p, &kib, None).await.expect("set");
        lat[2].push(t.elapsed());
        let t = Instant::now();
        c.delete(&p, None).await.expect("delete");
        lat[3].push(t.elapsed());
    }
    for (k, l) in lat.iter_mut().enumerate() {
        row.p50_us[k] = pct(l, 0.50);
        row.p99_us[k] = pct(l, 0.99);
    }
    let one = vec![c.clone()];
    row.get_1 = throughput(&one, 64, secs, false).await;
    row.set_1 = throughput(&one, 64, secs, true).await;
    let mut eight = Vec::new();
    for _ in 0..8 {
        eight.push(connect(addr).await);
    }
    row.get_8 = throughput(&eight, 8, secs, false).await;
    row.set_8 = throughput(&eight, 8, secs, true).await;
    if znodes > 0 {
        let _ = c.create("/mem", b"", &opts()).await;
        let started = Instant::now();
        let per = znodes.div_ceil(64);
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let data = [9u8; 100];
                for i in 0..per {
                    let n = t * per + i;
                    if n >= znodes {
                        break;
                    }
                    c.create(&format!("/mem/n{n:07}"), &data, &opts())
                        .await
                        .expect("create znode");
                }
            }));
        }
        for t in tasks {
            t.await.expect("loader");
        }
        eprintln!(
            "{label}: {znodes} znodes created in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        row.rss_mb = rss_mb(pid);
    }
    row
}

async fn menagerie(fsync: &str) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let args: Vec<String> = [
        "--listen",
        &addr,
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--fsync",
        fsync,
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = ServerProcess::spawn(
        "menagerie-server",
        env!("CARGO_BIN_EXE_menagerie-server"),
        &args,
        &[],
        &dir.path().join("server.log"),
    )
    .expect("spawn menagerie-server");
    assert!(
        wait_until(Duration::from_secs(30), || ruok(&addr)).await,
        "{}",
        server.log_tail(20)
    );
    run(&addr, server.pid(), &format!("menagerie fsync={fsync}")).await
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let znodes = env_num("BENCH_ZNODES", 1_000_000);
    rt.block_on(async {
        let settings = ZkSettings {
            heap_mb: if znodes > 200_000 { 4096 } else { 1024 },
            force_sync: true,
            ..ZkSettings::default()
        };
        let zk = tokio::task::spawn_blocking(move || ZkCluster::start(1, settings))
            .await
            .unwrap()
            .expect("start ZooKeeper 3.8");
        let zk_dir = zk.member(0).dir().to_string_lossy().into_owned();
        let zk_pid = pid_with(&zk_dir).expect("ZooKeeper's pid");
        let zk_row = run(&zk.connect_string(), zk_pid, "ZooKeeper").await;
        drop(zk);
        let always = menagerie("always").await;
        let never = menagerie("never").await;
        let names = ["create", "get", "set 1 KiB", "delete"];
        println!("\nmenagerie-server vs ZooKeeper 3.8 (same zookeeper-client workload, loopback, this machine)");
        println!("ZooKeeper with its default forceSync=yes (fsync before answering, like --fsync always). ratio = menagerie / ZooKeeper (latency: lower is better).\n");
        println!(
            "| measure | ZooKeeper 3.8 | menagerie fsync=always | ratio | menagerie fsync=never | ratio |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (k, name) in names.iter().enumerate() {
            for (label, f) in [("p50", 0), ("p99", 1)] {
                let get = |r: &Row| if f == 0 { r.p50_us[k] } else { r.p99_us[k] };
                println!(
                    "| {name} {label} (µs) | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                    get(&zk_row),
                    get(&always),
                    get(&always) / get(&zk_row),
                    get(&never),
                    get(&never) / get(&zk_row)
                );
            }
        }
        type Pick = fn(&Row) -> f64;
        let tp: [(&str, Pick); 4] = [
            ("get/s, 64 in flight, 1 connection", |r| r.get_1),
            ("set/s, 64 in flight, 1 connection", |r| r.set_1),
            ("get/s, 8 connections × 8 in flight", |r| r.get_8),
            ("set/s, 8 connections × 8 in flight", |r| r.set_8),
        ];
        for (label, f) in tp {
            println!(
                "| {label} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                f(&zk_row),
                f(&always),
                f(&always) / f(&zk_row),
                f(&never),
                f(&never) / f(&zk_row)
            );
        }
        if znodes > 0 {
            println!(
                "| resident memory after {znodes} znodes of 100 B (MiB) | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                zk_row.rss_mb,
                always.rss_mb,
                always.rss_mb / zk_row.rss_mb,
                never.rss_mb,
                never.rss_mb / zk_row.rss_mb
            );
        }
    });
}
