//! One benchmark table for every backend:
//! `cargo run --release -p menagerie-integration --bin bench [-- --quick] [--only native,server,zookeeper,etcd]`.
//!
//! Starts the servers it needs (real ZooKeeper 3.8 and etcd 3.4 from Debian's packages, on free
//! loopback ports in temp dirs) and measures, through the same `Client` API on each backend:
//! raw operations (sequential p50/p99 of create / get / set 1 KiB / delete; throughput with 64
//! requests in flight on one session), lock cycles/s alone and with 8 contenders plus hand-off
//! latency, leader-election failover, queue put / take items/s, config propagation to 100 watchers,
//! and the cost of a least-connections pick. Prints a Markdown table with ratios to ZooKeeper.

use menagerie_core::conformance::BackendFactory;
use menagerie_core::{Client, CreateMode};
use menagerie_recipes::{
    BalancerOptions, ConfigWatch, LeaderEvent, LeaderLatch, LeastConnections, Mutex, Queue,
    ServiceDiscovery, ServiceInstance, ServiceRegistry,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Target {
    name: &'static str,
    factory: Box<dyn BackendFactory>,
}

#[derive(Default, Clone)]
struct Row {
    values: BTreeMap<&'static str, f64>,
}

/// (key, label, unit, higher is better)
const METRICS: &[(&str, &str, &str, bool)] = &[
    ("create_p50", "create p50", "µs", false),
    ("create_p99", "create p99", "µs", false),
    ("get_p50", "get p50", "µs", false),
    ("get_p99", "get p99", "µs", false),
    ("set_p50", "set 1 KiB p50", "µs", false),
    ("set_p99", "set 1 KiB p99", "µs", false),
    ("delete_p50", "delete p50", "µs", false),
    ("delete_p99", "delete p99", "µs", false),
    ("get_64", "get, 64 in flight", "ops/s", true),
    ("set_64", "set 1 KiB, 64 in flight", "ops/s", true),
    ("lock_alone", "lock cycles alone", "cycles/s", true),
    ("lock_8", "lock cycles, 8 contenders", "cycles/s", true),
    ("handoff_p50", "lock hand-off p50", "µs", false),
    ("handoff_p99", "lock hand-off p99", "µs", false),
    ("failover_p50", "election failover p50", "µs", false),
    ("queue_put", "queue put", "items/s", true),
    ("queue_take", "queue take", "items/s", true),
    ("config_p50", "config → 100 watchers p50", "µs", false),
    ("config_p99", "config → 100 watchers p99", "µs", false),
    ("pick", "least-connections pick", "ns", false),
];

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

async fn client(f: &dyn BackendFactory, root: &str) -> Client {
    let c = Client::new(f.session().await.expect("session"));
    c.ensure_path(root).await.expect("bench root");
    c.with_chroot(root).expect("chroot")
}

async fn raw_ops(f: &dyn BackendFactory, n: usize, row: &mut Row) {
    let c = client(f, "/bench-raw").await;
    let data = vec![7u8; 1024];
    let mut lat: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for i in 0..n {
        let t = Instant::now();
        c.create(&format!("/n{i}"), &data, CreateMode::Persistent)
            .await
            .expect("create");
        lat.entry("create").or_default().push(t.elapsed());
    }
    for (op, key) in [("get", "get"), ("set", "set"), ("delete", "delete")] {
        for i in 0..n {
            let p = format!("/n{i}");
            let t = Instant::now();
            match op {
                "get" => drop(c.get(&p).await.expect("get")),
                "set" => drop(c.set(&p, &data, None).await.expect("set")),
                _ => c.delete(&p, None).await.expect("delete"),
            }
            lat.entry(key).or_default().push(t.elapsed());
        }
    }
    for (k, mut v) in lat {
        let (p50, p99): (&'static str, &'static str) = match k {
            "create" => ("create_p50", "create_p99"),
            "get" => ("get_p50", "get_p99"),
            "set" => ("set_p50", "set_p99"),
            _ => ("delete_p50", "delete_p99"),
        };
        row.values.insert(p50, pct(&mut v, 0.5));
        row.values.insert(p99, pct(&mut v, 0.99));
    }
    // 64 in flight on one session.
    c.create("/hot", &data, CreateMode::Persistent).await.ok();
    for (key, write) in [("get_64", false), ("set_64", true)] {
        let window = Duration::from_secs(2);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (c, data) = (c.clone(), data.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < window {
                    if write {
                        c.set("/hot", &data, None).await.expect("set");
                    } else {
                        c.get("/hot").await.expect("get");
                    }
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        row.values
            .insert(key, total as f64 / start.elapsed().as_secs_f64());
    }
    c.delete_all("/").await.ok();
}

async fn locks(f: &dyn BackendFactory, window: Duration, row: &mut Row) {
    let c = client(f, "/bench-lock").await;
    let lock = Mutex::new(&c, "/alone");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < window {
        lock.acquire()
            .await
            .expect("acquire")
            .release()
            .await
            .expect("release");
        n += 1;
    }
    row.values
        .insert("lock_alone", n as f64 / start.elapsed().as_secs_f64());

    let released = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let handoffs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = client(f, "/bench-lock").await;
        let (released, handoffs) = (released.clone(), handoffs.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Mutex::new(&c, "/contended");
            let mut n = 0u64;
            while start.elapsed() < window {
                let g = lock.acquire().await.expect("acquire");
                if let Some(at) = released.lock().unwrap().take() {
                    handoffs.lock().unwrap().push(at.elapsed());
                }
                n += 1;
                *released.lock().unwrap() = Some(Instant::now());
                g.release().await.expect("release");
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    row.values
        .insert("lock_8", total as f64 / start.elapsed().as_secs_f64());
    let mut h = handoffs.lock().unwrap().clone();
    row.values.insert("handoff_p50", pct(&mut h, 0.5));
    row.values.insert("handoff_p99", pct(&mut h, 0.99));
}

async fn election(f: &dyn BackendFactory, rounds: usize, row: &mut Row) {
    let mut times = Vec::new();
    for r in 0..rounds {
        let a = client(f, "/bench-election").await;
        let b = client(f, "/bench-election").await;
        let path = format!("/e{r}");
        let la = LeaderLatch::new(&a, &path, "a")
            .start()
            .await
            .expect("join");
        la.leadership().await.expect("a leads");
        let lb = LeaderLatch::new(&b, &path, "b")
            .start()
            .await
            .expect("join");
        let mut events = lb.events();
        let t = Instant::now();
        a.close().await.expect("close the leader");
        loop {
            match events.next().await {
                Some(LeaderEvent::Elected(_)) => break,
                Some(_) => continue,
                None => panic!("latch closed"),
            }
        }
        times.push(t.elapsed());
        lb.close().await.ok();
        drop(la);
        b.close().await.ok();
    }
    row.values.insert("failover_p50", pct(&mut times, 0.5));
}

async fn queue(f: &dyn BackendFactory, n: usize, row: &mut Row) {
    let c = client(f, "/bench-queue").await;
    let q = Queue::new(&c, "/q");
    let t = Instant::now();
    for i in 0..n {
        q.put(format!("item-{i}").as_bytes()).await.expect("put");
    }
    row.values
        .insert("queue_put", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..n {
        q.take().await.expect("take");
    }
    row.values
        .insert("queue_take", n as f64 / t.elapsed().as_secs_f64());
}

async fn config(f: &dyn BackendFactory, rounds: usize, row: &mut Row) {
    let admin = client(f, "/bench-config").await;
    let cfg = ConfigWatch::json(&admin, "/cfg", 0u64)
        .await
        .expect("config");
    cfg.compare_and_set(None, &0).await.ok();
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let c = client(f, "/bench-config").await;
        for _ in 0..10 {
            watchers.push(Arc::new(
                ConfigWatch::json(&c, "/cfg", 0u64).await.expect("watch"),
            ));
        }
    }
    let mut lat = Vec::new();
    for round in 1..=rounds as u64 {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in &watchers {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let mut ch = w.changes();
                while *w.current().value != round {
                    ch.next().await;
                }
                t.elapsed()
            }));
        }
        cfg.update(|_| round).await.expect("update");
        for task in tasks {
            lat.push(task.await.expect("watcher"));
        }
    }
    row.values.insert("config_p50", pct(&mut lat, 0.5));
    row.values.insert("config_p99", pct(&mut lat, 0.99));
}

async fn pick(f: &dyn BackendFactory, row: &mut Row) {
    let c = client(f, "/bench-lb").await;
    let reg = ServiceRegistry::new(&c, "/services");
    for i in 0..5 {
        reg.register(ServiceInstance::new("api", &format!("i{i}"), "h", 1))
            .await
            .expect("register");
    }
    let cache = ServiceDiscovery::new(&c, "/services")
        .cache("api")
        .await
        .expect("cache");
    while cache.instances().len() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lb = LeastConnections::start(
        &c,
        cache,
        BalancerOptions {
            counts_path: "/conns".into(),
            ..Default::default()
        },
    )
    .await
    .expect("balancer");
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        drop(lb.pick().expect("pick"));
    }
    row.values
        .insert("pick", t.elapsed().as_secs_f64() * 1e9 / n as f64);
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let wanted = |n: &str| only.as_ref().map_or(true, |o| o.iter().any(|x| x == n));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (raw_n, window, rounds, items) = if quick {
        (200, Duration::from_millis(500), 5, 200)
    } else {
        (2000, Duration::from_secs(3), 20, 2000)
    };
    let mut targets: Vec<Target> = Vec::new();
    if wanted("native") {
        targets.push(Target {
            name: "native (embedded)",
            factory: Box::new(menagerie_native::NativeFactory::new()),
        });
    }
    let _server_dir = tempfile::tempdir().expect("temp dir");
    let server = if wanted("server") {
        let config = menagerie_native::server::ServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            storage: menagerie_native::server::Storage::Directory(_server_dir.path().to_path_buf()),
            ..Default::default()
        };
        let handle = rt
            .block_on(menagerie_native::server::Server::start(config))
            .expect("start menagerie-server");
        targets.push(Target {
            name: "menagerie-server (fsync)",
            factory: Box::new(menagerie_zookeeper::ZkFactory::new(
                handle.local_addr().to_string(),
                menagerie_zookeeper::ZkOptions::default(),
            )),
        });
        Some(handle)
    } else {
        None
    };
    let zk = if wanted("zookeeper") && menagerie_integration::zookeeper::available() {
        // ZooKeeper's own durability defaults: it fsyncs before answering, as etcd and
        // menagerie-server do (the tests run it with forceSync=no for speed).
        let settings = menagerie_integration::zookeeper::ZkSettings {
            force_sync: true,
            ..Default::default()
        };
        let zk = menagerie_integration::zookeeper::ZkCluster::start(1, settings)
            .expect("start ZooKeeper");
        targets.push(Target {
            name: "ZooKeeper 3.8",
            factory: Box::new(menagerie_zookeeper::ZkFactory::new(
                zk.connect_string(),
                menagerie_zookeeper::ZkOptions::default(),
            )),
        });
        Some(zk)
    } else {
        None
    };
    let etcd = if wanted("etcd") && menagerie_integration::etcd::etcd_available() {
        let cluster = rt.block_on(menagerie_integration::etcd::EtcdCluster::start(1));
        targets.push(Target {
            name: "etcd 3.4",
            factory: Box::new(menagerie_etcd::EtcdFactory::new(
                menagerie_integration::etcd::options(&cluster, "/bench"),
            )),
        });
        Some(cluster)
    } else {
        None
    };
    let mut rows = Vec::new();
    for t in &targets {
        eprintln!("measuring {} …", t.name);
        let mut row = Row::default();
        rt.block_on(async {
            let f = t.factory.as_ref();
            raw_ops(f, raw_n, &mut row).await;
            locks(f, window, &mut row).await;
            election(f, rounds, &mut row).await;
            queue(f, items, &mut row).await;
            config(f, rounds.min(10), &mut row).await;
            pick(f, &mut row).await;
        });
        rows.push((t.name, row));
    }
    let zk_row = rows
        .iter()
        .find(|(n, _)| n.starts_with("ZooKeeper"))
        .map(|(_, r)| r.clone());
    println!(
        "menagerie benchmark ({}; 2 worker threads; servers on this machine)\n",
        if quick { "quick" } else { "full" }
    );
    let mut header = "| metric | unit |".to_string();
    let mut sep = "|---|---|".to_string();
    for (n, _) in &rows {
        header.push_str(&format!(" {n} |"));
        sep.push_str("---:|");
        if zk_row.is_some() && !n.starts_with("ZooKeeper") {
            header.push_str(" × ZK |");
            sep.push_str("---:|");
        }
    }
    println!("{header}\n{sep}");
    for (key, label, unit, higher) in METRICS {
        let mut line = format!("| {label} | {unit} |");
        for (n, r) in &rows {
            let v = r.values.get(key).copied().unwrap_or(f64::NAN);
            line.push_str(&format!(" {} |", fmt(v)));
            if let Some(z) = &zk_row {
                if !n.starts_with("ZooKeeper") {
                    let zv = z.values.get(key).copied().unwrap_or(f64::NAN);
                    let ratio = if *higher { v / zv } else { zv / v };
                    line.push_str(&format!(
                        " {} |",
                        if ratio.is_finite() {
                            format!("{ratio:.1}×")
                        } else {
                            "–".into()
                        }
                    ));
                }
            }
        }
        println!("{line}");
    }
    println!("\n× ZK: how many times better than ZooKeeper (higher is better for every column).");
    if let Some(zk) = &zk {
        if menagerie_integration::curator::available() {
            eprintln!("measuring Curator's InterProcessMutex on the same ZooKeeper …");
            match rt.block_on(curator_locks(&zk.connect_string(), window)) {
                Ok(curator) => print_curator(&curator, &rows),
                Err(e) => eprintln!("Curator comparison skipped: {e}"),
            }
        }
    }
    drop(zk);
    drop(etcd);
    if let Some(h) = server {
        rt.block_on(h.shutdown());
    }
}

/// Curator's InterProcessMutex on `connect`, measured as [`locks`] measures menagerie's Mutex.
async fn curator_locks(connect: &str, window: Duration) -> std::io::Result<Row> {
    use menagerie_integration::curator;
    let classes = tempfile::tempdir()?;
    curator::compile("CuratorLockBench", classes.path())?;
    let mut cmd = tokio::process::Command::from(curator::java("CuratorLockBench", classes.path()));
    cmd.arg(connect)
        .arg("/curator-bench")
        .arg("8")
        .arg(format!("{}", window.as_secs_f64()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(window * 4 + Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| std::io::Error::other("CuratorLockBench did not finish in time"))??;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut row = Row::default();
    for line in text.lines() {
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        match (line.split_whitespace().next(), f.as_slice()) {
            (Some("alone"), [a]) => {
                row.values.insert("lock_alone", *a);
            }
            (Some("contended"), [c, p50, p99]) => {
                row.values.insert("lock_8", *c);
                row.values.insert("handoff_p50", *p50);
                row.values.insert("handoff_p99", *p99);
            }
            _ => {}
        }
    }
    if row.values.len() == 4 {
        Ok(row)
    } else {
        Err(std::io::Error::other(format!(
            "unexpected CuratorLockBench output: {text:?}"
        )))
    }
}

/// The lock rows against Curator on the same ZooKeeper.
fn print_curator(curator: &Row, rows: &[(&str, Row)]) {
    let others: Vec<&(&str, Row)> = rows
        .iter()
        .filter(|(n, _)| n.starts_with("ZooKeeper") || n.starts_with("menagerie-server"))
        .collect();
    println!(
        "\nCurator's InterProcessMutex (Java, one session per contender) on the same ZooKeeper:\n"
    );
    let mut header = "| lock metric | unit | Curator on ZooKeeper |".to_string();
    let mut sep = "|---|---|---:|".to_string();
    for (n, _) in &others {
        let who = if n.starts_with("ZooKeeper") {
            "menagerie on ZooKeeper"
        } else {
            "menagerie-server"
        };
        header.push_str(&format!(" {who} | × Curator |"));
        sep.push_str("---:|---:|");
    }
    println!("{header}\n{sep}");
    for (key, label, unit, higher) in METRICS {
        let Some(c) = curator.values.get(key).copied() else {
            continue;
        };
        let mut line = format!("| {label} | {unit} | {} |", fmt(c));
        for (_, r) in &others {
            let v = r.values.get(key).copied().unwrap_or(f64::NAN);
            let ratio = if *higher { v / c } else { c / v };
            line.push_str(&format!(" {} | {ratio:.1}× |", fmt(v)));
        }
        println!("{line}");
    }
}
