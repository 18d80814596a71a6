//! Differential test: one seeded random stream of operations applied through the same client
//! (`zookeeper-client`) to a real ZooKeeper 3.8 (Debian's package, started as a child process) and
//! to menagerie-server; every result is compared: errors, data, children, sequential names, and
//! the Stat fields that must agree (versions, cversion, aversion, lengths, numChildren, whether
//! ephemeral, and czxid / mzxid / pzxid relative to the test's base node).
//!
//! Replay a failure with `DIFF_SEED=<seed>`.

mod common;

use common::*;
use menagerie_integration::zookeeper::ZkCluster;
use std::time::Duration;
use zkc::{Acls, CreateMode, Stat};
use zookeeper_client as zkc;

const OPS: usize = 1500;

#[derive(Debug, Clone)]
enum Step {
    Create(String, Vec<u8>, CreateMode),
    Delete(String, Option<i32>),
    Set(String, Vec<u8>, Option<i32>),
    Get(String),
    Exists(String),
    Children(String),
    Multi(Vec<Step>),
    Check(String, i32),
    /// An ephemeral create by the second session.
    OtherEphemeral(String, bool),
    /// The second session closes (its ephemerals go) and a new one opens.
    ReopenOther,
}

/// What the comparison looks at: base-relative zxids, no times, owner as a flag.
fn norm(s: &Stat, base: i64) -> String {
    format!(
        "cz={} mz={} pz={} v={} cv={} av={} len={} kids={} eph={}",
        s.czxid - base,
        s.mzxid - base,
        s.pzxid - base,
        s.version,
        s.cversion,
        s.aversion,
        s.data_length,
        s.num_children,
        s.ephemeral_owner != 0
    )
}

fn gen(rng: &mut Rng, paths: &[String], depth: usize) -> Step {
    let p = paths[rng.below(paths.len())].clone();
    let version = |rng: &mut Rng| match rng.below(3) {
        0 => None,
        _ => Some(rng.below(3) as i32),
    };
    let data = |rng: &mut Rng| {
        let n = rng.below(4) * 3;
        (0..n)
            .map(|i| b'a' + (i as u8 + rng.below(20) as u8) % 26)
            .collect::<Vec<u8>>()
    };
    if depth == 0 {
        match rng.below(40) {
            0..=2 => return Step::OtherEphemeral(p, rng.below(2) == 0),
            3 => return Step::ReopenOther,
            _ => {}
        }
    }
    match rng.below(if depth == 0 { 9 } else { 4 }) {
        0 | 1 => {
            let mode = [
                CreateMode::Persistent,
                CreateMode::Persistent,
                CreateMode::PersistentSequential,
                CreateMode::Ephemeral,
                CreateMode::EphemeralSequential,
            ][rng.below(5)];
            Step::Create(p, data(rng), mode)
        }
        2 => Step::Delete(p, version(rng)),
        3 => Step::Set(p, data(rng), version(rng)),
        4 => Step::Get(p),
        5 => Step::Exists(p),
        6 => Step::Children(p),
        7 => {
            let n = rng.below(4);
            let mut ops: Vec<Step> = (0..n).map(|_| gen(rng, paths, 1)).collect();
            if rng.below(3) == 0 {
                ops.push(Step::Check(
                    paths[rng.below(paths.len())].clone(),
                    rng.below(3) as i32,
                ));
            }
            Step::Multi(ops)
        }
        _ => Step::Check(p, rng.below(3) as i32),
    }
}

fn opts(mode: CreateMode) -> zkc::CreateOptions<'static> {
    mode.with_acls(Acls::anyone_all())
}

/// Applies one step; returns a comparable description of the outcome.
async fn apply(c: &zkc::Client, step: &Step, base: i64, root: &str) -> String {
    let full = |p: &str| format!("{root}{p}");
    let strip = |p: &str| p.strip_prefix(root).unwrap_or(p).to_string();
    match step {
        Step::Create(p, d, mode) => match c.create(&full(p), d, &opts(*mode)).await {
            Ok((stat, seq)) => format!("created seq={} {}", seq.into_i64(), norm(&stat, base)),
            Err(e) => format!("err {e:?}"),
        },
        Step::Delete(p, v) => format!("{:?}", c.delete(&full(p), *v).await),
        Step::Set(p, d, v) => match c.set_data(&full(p), d, *v).await {
            Ok(stat) => format!("set {}", norm(&stat, base)),
            Err(e) => format!("err {e:?}"),
        },
        Step::Get(p) => match c.get_data(&full(p)).await {
            Ok((d, stat)) => format!("data {:?} {}", d, norm(&stat, base)),
            Err(e) => format!("err {e:?}"),
        },
        Step::Exists(p) => match c.check_stat(&full(p)).await {
            Ok(Some(stat)) => format!("stat {}", norm(&stat, base)),
            Ok(None) => "absent".into(),
            Err(e) => format!("err {e:?}"),
        },
        Step::Children(p) => match c.get_children(&full(p)).await {
            Ok((mut kids, stat)) => {
                kids.sort();
                format!("children {kids:?} {}", norm(&stat, base))
            }
            Err(e) => format!("err {e:?}"),
        },
        Step::Check(p, v) => {
            // A check outside a multi is never answered by ZooKeeper: run it inside one.
            let mut m = c.new_multi_writer();
            m.add_check_version(&full(p), *v).unwrap();
            match m.commit().await {
                Ok(r) => format!("check ok {}", r.len()),
                Err(e) => format!("check err {e:?}"),
            }
        }
        Step::OtherEphemeral(..) | Step::ReopenOther => unreachable!("handled by the caller"),
        Step::Multi(ops) => {
            let mut m = c.new_multi_writer();
            for op in ops {
                match op {
                    Step::Create(p, d, mode) => m.add_create(&full(p), d, &opts(*mode)).unwrap(),
                    Step::Delete(p, v) => m.add_delete(&full(p), *v).unwrap(),
                    Step::Set(p, d, v) => m.add_set_data(&full(p), d, *v).unwrap(),
                    Step::Check(p, v) => m.add_check_version(&full(p), *v).unwrap(),
                    _ => {}
                }
            }
            match m.commit().await {
                Ok(results) => {
                    let out: Vec<String> = results
                        .iter()
                        .map(|r| match r {
                            // ZooKeeper 3.8.0 answers a create2 inside a multi without its Stat
                            // (ZOOKEEPER-4026); menagerie-server gives the Stat, as fixed
                            // releases do. Compare the paths only.
                            zkc::MultiWriteResult::Create { path, .. } => {
                                format!("create {}", strip(path))
                            }
                            zkc::MultiWriteResult::SetData { stat } => {
                                format!("set {}", norm(stat, base))
                            }
                            other => format!("{other:?}"),
                        })
                        .collect();
                    format!("multi ok {out:?}")
                }
                Err(e) => format!("multi err {e:?}"),
            }
        }
    }
}

fn is_read_only(step: &Step) -> bool {
    matches!(step, Step::Get(_) | Step::Exists(_) | Step::Children(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_stream_same_results_as_zookeeper_3_8() {
    let seed = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("differential seed {seed} (DIFF_SEED={seed} to replay)");
    let zookeeper = tokio::task::spawn_blocking(ZkCluster::standalone)
        .await
        .unwrap()
        .expect("start ZooKeeper 3.8 (apt-get install zookeeper; .ci/run installs it)");
    let ours = start_in_memory().await;
    let theirs_client = zk_at(&zookeeper.connect_string()).await;
    let ours_client = zk(&ours).await;
    let addrs = [zookeeper.connect_string(), ours.local_addr().to_string()];
    let mut others = [zk_at(&addrs[0]).await, zk_at(&addrs[1]).await];
    let root = "/diff";
    let mut bases = Vec::new();
    for c in [&theirs_client, &ours_client] {
        let (stat, _) = c
            .create(root, b"", &opts(CreateMode::Persistent))
            .await
            .unwrap();
        bases.push(stat.czxid);
    }
    // Paths: a small tree so that creates, deletes and conflicts all happen often.
    let mut paths = Vec::new();
    for a in ["a", "b", "c"] {
        paths.push(format!("/{a}"));
        for b in ["x", "y", "s"] {
            paths.push(format!("/{a}/{b}"));
            paths.push(format!("/{a}/{b}/z"));
        }
    }
    let mut rng = Rng(seed);
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut compared = 0;
    for i in 0..OPS {
        assert!(
            std::time::Instant::now() < deadline,
            "differential test over its time budget"
        );
        let step = gen(&mut rng, &paths, 0);
        let (theirs, mine) = match &step {
            Step::OtherEphemeral(p, seq) => {
                let mode = if *seq {
                    CreateMode::EphemeralSequential
                } else {
                    CreateMode::Ephemeral
                };
                let s = Step::Create(p.clone(), b"e".to_vec(), mode);
                (
                    apply(&others[0], &s, bases[0], root).await,
                    apply(&others[1], &s, bases[1], root).await,
                )
            }
            Step::ReopenOther => {
                for (k, addr) in addrs.iter().enumerate() {
                    let old = std::mem::replace(&mut others[k], zk_at(addr).await);
                    // Close the old session and wait until the server has done it, so both
                    // servers see the same order of transactions.
                    let mut states = old.state_watcher();
                    drop(old);
                    tokio::time::timeout(WAIT, async {
                        while !states.peek_state().is_terminated() {
                            states.changed().await;
                        }
                    })
                    .await
                    .expect("session closed in time");
                }
                ("reopened".to_string(), "reopened".to_string())
            }
            _ => (
                apply(&theirs_client, &step, bases[0], root).await,
                apply(&ours_client, &step, bases[1], root).await,
            ),
        };
        assert_eq!(
            mine, theirs,
            "step {i} (seed {seed}) differs: {step:?}\n menagerie: {mine}\n ZooKeeper: {theirs}"
        );
        if !is_read_only(&step) {
            // After every write, the whole tree under the root must agree too.
            for p in &paths {
                let a = apply(&theirs_client, &Step::Exists(p.clone()), bases[0], root).await;
                let b = apply(&ours_client, &Step::Exists(p.clone()), bases[1], root).await;
                assert_eq!(b, a, "after step {i} (seed {seed}) {p} differs");
            }
        }
        compared += 1;
    }
    eprintln!("{compared} operations gave the same results on ZooKeeper 3.8 and menagerie-server");
    ours.shutdown().await;
}
