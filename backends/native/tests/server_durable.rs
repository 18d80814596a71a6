//! Durability of menagerie-server and of the embedded durable store: restarts keep data, zxids
//! and sessions; a torn log tail is tolerated; snapshots are taken, purged and recovered from.

mod common;

use common::*;
use menagerie_core::{Backend, CreateMode as Mode};
use menagerie_native::durable::{DurableOptions, FsyncPolicy};
use menagerie_native::server::{Server, Storage};
use menagerie_native::NativeStore;
use std::time::Duration;
use zkc::{Acls, CreateMode};
use zookeeper_client as zkc;

fn opts(mode: CreateMode) -> zkc::CreateOptions<'static> {
    mode.with_acls(Acls::anyone_all())
}

fn files(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_zxid_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_durable(dir.path()).await;
    let addr = server.local_addr();
    let keeper = zkc::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .with_detached()
        .connect(&addr.to_string())
        .await
        .unwrap();
    keeper
        .create("/kept", b"v0", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    keeper.set_data("/kept", b"v1", None).await.unwrap();
    keeper
        .create("/kept/s-", b"", &opts(CreateMode::PersistentSequential))
        .await
        .unwrap();
    keeper
        .create("/eph", b"", &opts(CreateMode::Ephemeral))
        .await
        .unwrap();
    let mut t = keeper.new_multi_writer();
    t.add_create("/kept/m", b"multi", &opts(CreateMode::Persistent))
        .unwrap();
    t.add_delete("/kept/s-0000000000", None).unwrap();
    t.commit().await.unwrap();
    // A session nobody re-attaches: its ephemeral goes once its timeout passes after restart.
    let orphan = zkc::Client::connector()
        .with_session_timeout(Duration::from_millis(300))
        .with_detached()
        .connect(&addr.to_string())
        .await
        .unwrap();
    orphan
        .create("/orphan", b"", &opts(CreateMode::Ephemeral))
        .await
        .unwrap();
    let before = keeper.check_stat("/kept").await.unwrap().unwrap();
    let session = keeper.into_session();
    drop(orphan.into_session());
    server.shutdown().await;

    let mut config = config(Storage::Directory(dir.path().to_path_buf()));
    config.listen = addr;
    let server = Server::start(config)
        .await
        .expect("restart on the same port");
    let back = zkc::Client::connector()
        .with_session(session)
        .connect(&addr.to_string())
        .await
        .expect("the session re-attaches after the restart");
    let (data, st) = back.get_data("/kept").await.unwrap();
    assert_eq!((data.as_slice(), st), (&b"v1"[..], before));
    let (kids, _) = back.get_children("/kept").await.unwrap();
    assert_eq!(kids, vec!["m".to_string()]);
    assert!(
        back.check_stat("/eph").await.unwrap().is_some(),
        "re-attached session keeps its ephemeral"
    );
    let (st2, _) = back
        .create("/after", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    assert!(st2.czxid > before.pzxid, "zxids continue after a restart");
    eventually("the orphaned session expires after its timeout", || async {
        back.check_stat("/orphan").await.unwrap().is_none()
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_durable(dir.path()).await;
    let c = zk(&server).await;
    for i in 0..20 {
        c.create(&format!("/n{i}"), b"x", &opts(CreateMode::Persistent))
            .await
            .unwrap();
    }
    drop(c);
    server.shutdown().await;
    // Half a record at the end of the newest log, as a crash mid-write leaves it.
    let logs = files(dir.path(), "log.");
    let newest_nonempty = logs
        .iter()
        .rev()
        .find(|l| std::fs::metadata(dir.path().join(l)).unwrap().len() > 0)
        .unwrap()
        .clone();
    let path = dir.path().join(&newest_nonempty);
    let mut bytes = std::fs::read(&path).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 40, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    // And a torn final record: the last record cut short.
    let server = start_durable(dir.path()).await;
    let c = zk(&server).await;
    for i in 0..20 {
        assert!(
            c.check_stat(&format!("/n{i}")).await.unwrap().is_some(),
            "/n{i} lost"
        );
    }
    c.create("/more", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    drop(c);
    server.shutdown().await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        whole,
        "torn tail truncated"
    );
    let server = start_durable(dir.path()).await;
    let c = zk(&server).await;
    assert!(c.check_stat("/more").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_purged_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Storage::Directory(dir.path().to_path_buf()));
    cfg.snapshot_every = 50;
    let server = Server::start(cfg.clone()).await.unwrap();
    let c = zk(&server).await;
    c.create("/s", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    for i in 0..400 {
        c.create(
            &format!("/s/n{i}"),
            format!("{i}").as_bytes(),
            &opts(CreateMode::Persistent),
        )
        .await
        .unwrap();
    }
    eventually("snapshots written and old ones purged", || async {
        let snaps = files(dir.path(), "snapshot.");
        !snaps.is_empty() && snaps.len() <= 2
    })
    .await;
    drop(c);
    server.shutdown().await;
    let logs = files(dir.path(), "log.");
    assert!(logs.len() < 8, "old logs purged: {logs:?}");
    // Damage the newest snapshot: recovery falls back to the older one plus the log.
    let snaps = files(dir.path(), "snapshot.");
    let newest = dir.path().join(snaps.last().unwrap());
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    let server = Server::start(cfg).await.unwrap();
    let c = zk(&server).await;
    let (kids, st) = c.get_children("/s").await.unwrap();
    assert_eq!((kids.len(), st.cversion), (400, 400));
    assert_eq!(c.get_data("/s/n399").await.unwrap().0, b"399");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_durable_store_reopens_and_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let options = DurableOptions {
        fsync: FsyncPolicy::Always,
        snapshot_every: 7,
        ..DurableOptions::default()
    };
    {
        let store = NativeStore::open_durable_with(dir.path(), options).unwrap();
        assert!(
            NativeStore::open_durable(dir.path()).is_err(),
            "second open of a locked dir"
        );
        let s = store.session();
        for i in 0..20 {
            s.create(&format!("/k{i}"), b"v", Mode::Persistent)
                .await
                .unwrap();
        }
        s.set("/k3", b"changed", Some(0)).await.unwrap();
        s.create("/gone-with-session", b"", Mode::Ephemeral)
            .await
            .unwrap();
        s.close().await.unwrap();
    }
    let store = NativeStore::open_durable(dir.path()).unwrap();
    assert!(store.is_durable());
    let s = store.session();
    assert_eq!(s.get("/k3").await.unwrap().0, b"changed");
    assert!(s.exists("/k19").await.unwrap().is_some());
    assert!(s.exists("/gone-with-session").await.unwrap().is_none());
}
