//! menagerie-server through a real ZooKeeper client (the `zookeeper-client` crate) and, for what
//! real clients never send, through raw frames.

mod common;

use common::*;
use menagerie_native::server::codec::{Reader, Writer};
use menagerie_native::server::proto::{err, op};
use std::time::Duration;
use zkc::{Acls, AddWatchMode, CreateMode, EventType};
use zookeeper_client as zkc;

fn opts(mode: CreateMode) -> zkc::CreateOptions<'static> {
    mode.with_acls(Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_stat_sequence_and_errors() {
    let server = start_in_memory().await;
    let c = zk(&server).await;
    let (stat, _) = c
        .create("/a", b"one", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    assert_eq!(
        (stat.version, stat.data_length, stat.num_children),
        (0, 3, 0)
    );
    let (data, st) = c.get_data("/a").await.unwrap();
    assert_eq!((data.as_slice(), st.czxid), (&b"one"[..], stat.czxid));
    assert!(matches!(
        c.create("/a", b"", &opts(CreateMode::Persistent)).await,
        Err(zkc::Error::NodeExists)
    ));
    assert!(matches!(
        c.create("/x/y", b"", &opts(CreateMode::Persistent)).await,
        Err(zkc::Error::NoNode)
    ));
    let st2 = c.set_data("/a", b"two", Some(0)).await.unwrap();
    assert_eq!(st2.version, 1);
    assert!(st2.mzxid > st.mzxid);
    assert!(matches!(
        c.set_data("/a", b"x", Some(0)).await,
        Err(zkc::Error::BadVersion)
    ));
    // Sequential names come from the parent's child-create counter.
    for i in 0..3 {
        let (_, seq) = c
            .create("/a/s-", b"", &opts(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), i);
    }
    c.create("/a/plain", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    let (_, seq) = c
        .create("/a/s-", b"", &opts(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 4);
    let (kids, pst) = c.get_children("/a").await.unwrap();
    assert_eq!(kids.len(), 5);
    assert_eq!((pst.num_children, pst.cversion), (5, 5));
    assert!(matches!(
        c.delete("/a", None).await,
        Err(zkc::Error::NotEmpty)
    ));
    // Version is checked before emptiness.
    assert!(matches!(
        c.delete("/a", Some(7)).await,
        Err(zkc::Error::BadVersion)
    ));
    c.delete("/a/plain", Some(0)).await.unwrap();
    assert_eq!(c.get_children("/a").await.unwrap().1.cversion, 6);
    assert!(matches!(c.get_data("/nope").await, Err(zkc::Error::NoNode)));
    assert_eq!(c.check_stat("/nope").await.unwrap(), None);
    assert_eq!(c.count_descendants_number("/a").await.unwrap(), 4);
    // The fresh tree's system nodes, as ZooKeeper shows them.
    let root = c.check_stat("/").await.unwrap().unwrap();
    assert_eq!(root.num_children, 2);
    let (config, _) = c.get_config().await.unwrap();
    assert!(config.is_empty());
    let (acl, _) = c.get_acl("/a").await.unwrap();
    assert_eq!(acl.len(), 1);
    let st = c.set_acl("/a", &Acls::anyone_all(), Some(0)).await.unwrap();
    assert_eq!(st.aversion, 1);
    assert!(matches!(
        c.set_acl("/a", &Acls::anyone_all(), Some(0)).await,
        Err(zkc::Error::BadVersion)
    ));
    c.sync("/").await.unwrap();
    let users = c.list_auth_users().await.unwrap();
    assert_eq!(users.len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_die_with_their_session_and_are_listed() {
    let server = start_in_memory().await;
    let a = zk(&server).await;
    let b = zk(&server).await;
    a.create("/e", b"", &opts(CreateMode::Ephemeral))
        .await
        .unwrap();
    a.create("/ex", b"", &opts(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    assert!(matches!(
        a.create("/e/child", b"", &opts(CreateMode::Persistent))
            .await,
        Err(zkc::Error::NoChildrenForEphemerals)
    ));
    let st = b.check_stat("/e").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, a.session_id().0);
    // getEphemerals matches its prefix as a plain string.
    let mut mine = a.list_ephemerals("/e").await.unwrap();
    mine.sort();
    assert_eq!(mine.len(), 2);
    assert!(b.list_ephemerals("/").await.unwrap().is_empty());
    let (gone, _) = b
        .get_and_watch_data("/e")
        .await
        .map(|(d, s, w)| ((d, s), w))
        .unwrap();
    let _ = gone;
    drop(a);
    eventually("ephemerals deleted after close", || async {
        b.check_stat("/e").await.unwrap().is_none()
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_once_and_before_the_writers_reply() {
    let server = start_in_memory().await;
    let w = zk(&server).await;
    let r = zk(&server).await;
    w.create("/w", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    let (_, _, data_watch) = r.get_and_watch_data("/w").await.unwrap();
    let (_, _, child_watch) = r.get_and_watch_children("/w").await.unwrap();
    let exist_watch = r.check_and_watch_stat("/w/new").await.unwrap().1;
    let mut persistent = r.watch("/w", AddWatchMode::Persistent).await.unwrap();
    let mut recursive = r
        .watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    // The writer's own watch fires before the reply to its write.
    let (_, _, own) = w.get_and_watch_data("/w").await.unwrap();
    w.set_data("/w", b"1", None).await.unwrap();
    let mut own = Box::pin(own.changed());
    let polled = futures_poll_once(&mut own).await;
    assert_eq!(
        polled.map(|e| e.event_type),
        Some(EventType::NodeDataChanged),
        "own notification came after the reply"
    );
    let e = tokio::time::timeout(WAIT, data_watch.changed())
        .await
        .unwrap();
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    w.create("/w/new", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    let e = tokio::time::timeout(WAIT, exist_watch.changed())
        .await
        .unwrap();
    assert_eq!(e.event_type, EventType::NodeCreated);
    let e = tokio::time::timeout(WAIT, child_watch.changed())
        .await
        .unwrap();
    assert_eq!(e.event_type, EventType::NodeChildrenChanged);
    let seen: Vec<_> = [
        tokio::time::timeout(WAIT, persistent.changed())
            .await
            .unwrap(),
        tokio::time::timeout(WAIT, persistent.changed())
            .await
            .unwrap(),
    ]
    .iter()
    .map(|e| (e.event_type, e.path.clone()))
    .collect();
    assert_eq!(
        seen,
        vec![
            (EventType::NodeDataChanged, "/w".to_string()),
            (EventType::NodeChildrenChanged, "/w".to_string())
        ]
    );
    let rec: Vec<_> = [
        tokio::time::timeout(WAIT, recursive.changed())
            .await
            .unwrap(),
        tokio::time::timeout(WAIT, recursive.changed())
            .await
            .unwrap(),
    ]
    .iter()
    .map(|e| (e.event_type, e.path.clone()))
    .collect();
    // Recursive watches never deliver NodeChildrenChanged.
    assert_eq!(
        rec,
        vec![
            (EventType::NodeDataChanged, "/w".to_string()),
            (EventType::NodeCreated, "/w/new".to_string())
        ]
    );
    assert_eq!(
        four_letter(server.local_addr(), "wchs")
            .await
            .lines()
            .count(),
        2
    );
    server.shutdown().await;
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing_and_multi_read_is_independent() {
    let server = start_in_memory().await;
    let c = zk(&server).await;
    c.create("/m", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    let mut t = c.new_multi_writer();
    t.add_create("/m/a", b"x", &opts(CreateMode::Persistent))
        .unwrap();
    t.add_set_data("/m", b"y", Some(0)).unwrap();
    t.add_check_version("/m", 1).unwrap();
    t.add_create("/m/s-", b"", &opts(CreateMode::PersistentSequential))
        .unwrap();
    let results = t.commit().await.unwrap();
    assert_eq!(results.len(), 4);
    let mut t = c.new_multi_writer();
    t.add_delete("/m/a", None).unwrap();
    t.add_check_version("/m", 9).unwrap();
    t.add_create("/m/b", b"", &opts(CreateMode::Persistent))
        .unwrap();
    match t.commit().await {
        Err(zkc::MultiWriteError::OperationFailed {
            index: 1,
            source: zkc::Error::BadVersion,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        c.check_stat("/m/a").await.unwrap().is_some(),
        "nothing applied"
    );
    let mut r = c.new_multi_reader();
    r.add_get_data("/m").unwrap();
    r.add_get_data("/missing").unwrap();
    r.add_get_children("/m").unwrap();
    let out = r.commit().await.unwrap();
    assert!(matches!(&out[0], zkc::MultiReadResult::Data { data, .. } if data == b"y"));
    assert!(matches!(
        &out[1],
        zkc::MultiReadResult::Error {
            err: zkc::Error::NoNode
        }
    ));
    assert!(matches!(&out[2], zkc::MultiReadResult::Children { children } if children.len() == 2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_ttl_nodes_are_reaped() {
    let server = start_in_memory().await;
    let c = zk(&server).await;
    c.create("/box", b"", &opts(CreateMode::Container))
        .await
        .unwrap();
    c.create("/box/item", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    let st = c.check_stat("/box").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, 0);
    c.delete("/box/item", None).await.unwrap();
    c.create(
        "/ttl",
        b"",
        &opts(CreateMode::Persistent).with_ttl(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    eventually("container and TTL node reaped", || async {
        c.check_stat("/box").await.unwrap().is_none()
            && c.check_stat("/ttl").await.unwrap().is_none()
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reattaches_on_a_new_connection() {
    let server = start_in_memory().await;
    let addr = server.local_addr().to_string();
    let a = zkc::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_detached()
        .connect(&addr)
        .await
        .unwrap();
    a.create("/mine", b"", &opts(CreateMode::Ephemeral))
        .await
        .unwrap();
    let id = a.session_id();
    let info = a.into_session();
    let b = zkc::Client::connector()
        .with_session(info)
        .connect(&addr)
        .await
        .unwrap();
    assert_eq!(b.session_id(), id);
    assert!(b.check_stat("/mine").await.unwrap().is_some());
    // A wrong password is refused as an expired session.
    let mut raw = Raw::open(server.local_addr()).await;
    let reply = raw
        .connect(10_000, id.0, &[7u8; 16], 0, Some(false))
        .await
        .unwrap();
    assert_eq!((reply.timeout, reply.session), (0, 0));
    assert!(raw.closed().await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sessions_expire_and_timeouts_are_negotiated() {
    let server = start_in_memory().await;
    let observer = zk(&server).await;
    let mut raw = Raw::open(server.local_addr()).await;
    // 1 ms is clamped up to the minimum (200 ms here); the reply echoes the read-only byte.
    let reply = raw.connect(1, 0, &[0; 16], 0, Some(false)).await.unwrap();
    assert_eq!(reply.timeout, 200);
    assert_eq!(reply.len, 37);
    let mut w = Writer::new();
    w.string("/eph")
        .buffer(b"")
        .int(1)
        .int(31)
        .string("world")
        .string("anyone")
        .int(1);
    let (_, _, e, _) = raw.call(1, op::CREATE, &w.into_bytes()).await.unwrap();
    assert_eq!(e, 0);
    assert!(observer.check_stat("/eph").await.unwrap().is_some());
    // Then silence: the server expires the session and closes the connection.
    assert!(
        raw.closed().await,
        "server closes an expired session's connection"
    );
    assert!(observer.check_stat("/eph").await.unwrap().is_none());
    // Without the read-only byte the reply has none either (36 bytes).
    let mut raw = Raw::open(server.local_addr()).await;
    let reply = raw.connect(999_999, 0, &[0; 16], 0, None).await.unwrap();
    assert_eq!((reply.timeout, reply.len), (30_000, 36));
    // A client that saw a newer zxid than the server has is refused without a reply.
    let mut raw = Raw::open(server.local_addr()).await;
    assert!(raw
        .connect(10_000, 0, &[0; 16], i64::MAX, Some(false))
        .await
        .is_none());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_connection() {
    let server = start_in_memory().await;
    let good = zk(&server).await;
    good.create("/alive", b"", &opts(CreateMode::Persistent))
        .await
        .unwrap();
    // A frame over 1 MiB.
    let mut raw = Raw::open(server.local_addr()).await;
    raw.connect(10_000, 0, &[0; 16], 0, Some(false))
        .await
        .unwrap();
    let big = vec![0u8; 0x100000];
    let _ = tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &(big.len() as i32).to_be_bytes())
        .await;
    assert!(raw.closed().await);
    // A malformed record (a string longer than the frame).
    let mut raw = Raw::open(server.local_addr()).await;
    raw.connect(10_000, 0, &[0; 16], 0, Some(false))
        .await
        .unwrap();
    let mut w = Writer::new();
    w.int(1).int(op::GET_DATA).int(1000).raw(b"/x");
    raw.send(&w.into_bytes()).await;
    assert!(raw.closed().await);
    // Garbage instead of a connect request.
    let mut raw = Raw::open(server.local_addr()).await;
    raw.send(b"nonsense").await;
    assert!(raw.closed().await);
    // An unknown opcode: Unimplemented, then the connection closes.
    let mut raw = Raw::open(server.local_addr()).await;
    raw.connect(10_000, 0, &[0; 16], 0, Some(false))
        .await
        .unwrap();
    let (xid, _, e, _) = raw.call(5, 9999, &[]).await.unwrap();
    assert_eq!((xid, e), (5, err::UNIMPLEMENTED));
    assert!(raw.closed().await);
    // Invalid paths: a create is refused as ZooKeeper does (BadArguments, or NoNode when the
    // parent is missing), reads just do not find the node.
    let mut raw = Raw::open(server.local_addr()).await;
    raw.connect(10_000, 0, &[0; 16], 0, Some(false))
        .await
        .unwrap();
    let create = |p: &str| {
        let mut w = Writer::new();
        w.string(p)
            .buffer(b"")
            .int(1)
            .int(31)
            .string("world")
            .string("anyone")
            .int(0);
        w.into_bytes()
    };
    assert_eq!(
        raw.call(1, op::CREATE, &create("/alive/")).await.unwrap().2,
        err::BAD_ARGUMENTS
    );
    assert_eq!(
        raw.call(2, op::CREATE, &create("/none/")).await.unwrap().2,
        err::NO_NODE
    );
    assert_eq!(
        raw.call(3, op::CREATE, &create("/a//b")).await.unwrap().2,
        err::NO_NODE
    );
    assert_eq!(
        raw.call(4, op::CREATE, &create("/alive/."))
            .await
            .unwrap()
            .2,
        err::BAD_ARGUMENTS
    );
    let mut w = Writer::new();
    w.string("/alive/").boolean(false);
    assert_eq!(
        raw.call(5, op::GET_DATA, &w.into_bytes()).await.unwrap().2,
        err::NO_NODE
    );
    let mut w = Writer::new();
    w.string("/").int(-1);
    assert_eq!(
        raw.call(6, op::DELETE, &w.into_bytes()).await.unwrap().2,
        err::BAD_ARGUMENTS
    );
    let mut w = Writer::new();
    w.string("/zookeeper/config").buffer(b"x").int(-1);
    assert_eq!(
        raw.call(7, op::SET_DATA, &w.into_bytes()).await.unwrap().2,
        err::BAD_ARGUMENTS
    );
    // Watches that are not there.
    let mut w = Writer::new();
    w.string("/alive").int(3);
    assert_eq!(
        raw.call(8, op::CHECK_WATCHES, &w.into_bytes())
            .await
            .unwrap()
            .2,
        err::NO_WATCHER
    );
    // reconfig is disabled.
    assert_eq!(
        raw.call(9, op::RECONFIG, &[]).await.unwrap().2,
        err::RECONFIG_DISABLED
    );
    // The well-behaved client never noticed.
    assert!(good.check_stat("/alive").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_and_empty_multi_consume_a_zxid() {
    let server = start_in_memory().await;
    let mut raw = Raw::open(server.local_addr()).await;
    raw.connect(10_000, 0, &[0; 16], 0, Some(false))
        .await
        .unwrap();
    let mut w = Writer::new();
    w.string("/nope").int(-1);
    let (_, z1, e, _) = raw.call(1, op::DELETE, &w.into_bytes()).await.unwrap();
    assert_eq!(e, err::NO_NODE);
    let mut w = Writer::new();
    w.int(-1).boolean(true).int(-1);
    let (_, z2, e, body) = raw.call(2, op::MULTI, &w.into_bytes()).await.unwrap();
    assert_eq!((e, z2), (0, z1 + 1));
    let mut r = Reader::new(&body);
    assert_eq!(
        (
            r.int("t").unwrap(),
            r.boolean("d").unwrap(),
            r.int("e").unwrap()
        ),
        (-1, true, -1)
    );
    // A failed multi: header err 0, per-op results 0 / the error / -2.
    let mut w = Writer::new();
    w.int(op::CHECK).boolean(false).int(-1).string("/").int(-1);
    w.int(op::CHECK)
        .boolean(false)
        .int(-1)
        .string("/missing")
        .int(-1);
    w.int(op::CHECK).boolean(false).int(-1).string("/").int(-1);
    w.int(-1).boolean(true).int(-1);
    let (_, z3, e, body) = raw.call(3, op::MULTI, &w.into_bytes()).await.unwrap();
    assert_eq!((e, z3), (0, z2 + 1));
    let mut r = Reader::new(&body);
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (t, _, e) = (
            r.int("t").unwrap(),
            r.boolean("d").unwrap(),
            r.int("e").unwrap(),
        );
        assert_eq!(t, -1);
        assert_eq!(r.int("err").unwrap(), e);
        codes.push(e);
    }
    assert_eq!(codes, vec![0, err::NO_NODE, err::RUNTIME_INCONSISTENCY]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let server = start_in_memory().await;
    let c = zk(&server).await;
    c.create("/e", b"", &opts(CreateMode::Ephemeral))
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(four_letter(addr, "ruok").await, "imok");
    assert_eq!(four_letter(addr, "isro").await, "rw");
    let srvr = four_letter(addr, "srvr").await;
    assert!(
        srvr.starts_with("Zookeeper version: 3.8.0-menagerie"),
        "{srvr}"
    );
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    assert!(srvr.contains("Node count: 5"), "{srvr}");
    let stat = four_letter(addr, "stat").await;
    assert!(stat.contains("Clients:"), "{stat}");
    let mntr = four_letter(addr, "mntr").await;
    assert!(mntr.contains("zk_server_state\tstandalone"), "{mntr}");
    assert!(mntr.contains("zk_ephemerals_count\t1"), "{mntr}");
    assert!(
        mntr.lines()
            .all(|l| l.starts_with("zk_") && l.contains('\t')),
        "{mntr}"
    );
    let conf = four_letter(addr, "conf").await;
    assert!(
        conf.contains(&format!("clientPort={}", addr.port())),
        "{conf}"
    );
    assert!(conf.contains("tickTime=100"), "{conf}");
    assert!(four_letter(addr, "envi").await.starts_with("Environment:"));
    let cons = four_letter(addr, "cons").await;
    assert!(
        cons.contains(&format!("sid=0x{:x}", c.session_id().0)),
        "{cons}"
    );
    let wchs = four_letter(addr, "wchs").await;
    assert!(wchs.starts_with("0 connections watching 0 paths"), "{wchs}");
    let dump = four_letter(addr, "dump").await;
    assert!(dump.contains("\t/e"), "{dump}");
    server.shutdown().await;
}
