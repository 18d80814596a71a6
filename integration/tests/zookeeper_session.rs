//! Sessions, URLs, capabilities and limits of the ZooKeeper backend on a real ZooKeeper 3.8
//! (this binary's own standalone servers): a short outage keeps the session, a long one expires it
//! (and the handle opens a new one by itself), `zk://…/chroot` URLs isolate clients, capabilities
//! follow the server's configuration, and the data limit matches the server's frame limit exactly.
//! `MENAGERIE_TEST_LOG=debug` prints the backend's tracing.

use menagerie_core::conformance::fired_now;
use menagerie_core::url::ConnectUrl;
use menagerie_core::{
    AddWatchMode, Backend, Client, CreateMode, Error, ErrorKind, EventType, Op, OpResult,
    SessionState,
};
use menagerie_integration::process::{free_port, wait_until};
use menagerie_integration::zookeeper::{ZkCluster, ZkSettings};
use menagerie_zookeeper::{ServerVersion, ZkBackend, ZkOptions, DEFAULT_MAX_FRAME_LEN};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(30);

/// This binary's server; tests that pause it hold the lock.
fn server() -> &'static Mutex<ZkCluster> {
    static CLUSTER: OnceLock<Mutex<ZkCluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        Mutex::new(ZkCluster::standalone().unwrap_or_else(|e| panic!("start ZooKeeper: {e}")))
    })
}

async fn connect(hosts: &str, session: Duration) -> (Arc<ZkBackend>, Client) {
    let b = ZkBackend::connect(hosts, ZkOptions::default().with_session_timeout(session))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let b = Arc::new(b);
    (b.clone(), Client::new(b))
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("/session-tests/{name}-{nanos:x}")
}

async fn next_state(states: &mut menagerie_core::StateStream) -> Option<SessionState> {
    tokio::time::timeout(WAIT, states.next())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_outage_keeps_the_session() {
    menagerie_integration::init_test_logs();
    let zk = server().lock().await;
    // Connection declared lost after 2/5 × 8 s; the outage (4 s) ends well within the session.
    let (_b, root) = connect(&zk.connect_string(), Duration::from_secs(8)).await;
    let base = unique("short-outage");
    root.ensure_path(&base).await.unwrap();
    let c = root.with_chroot(&base).unwrap();
    c.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    c.create("/n", b"", CreateMode::Persistent).await.unwrap();
    let (_, _, watch) = c.get_and_watch("/n").await.unwrap();
    let id = c.session_id();
    let mut states = c.state_stream();

    zk.pause(0);
    let paused = Instant::now();
    assert_eq!(next_state(&mut states).await, Some(SessionState::Suspended));
    assert_eq!(c.state(), SessionState::Suspended);
    // While Suspended, calls fail at once with the retryable ConnectionLoss.
    let started = Instant::now();
    let r = c.backend().get("/n").await;
    assert!(
        matches!(r, Err(Error::ConnectionLoss)),
        "a call while Suspended: {r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "it fails fast");
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(paused.elapsed())).await;
    zk.resume(0);

    assert_eq!(
        next_state(&mut states).await,
        Some(SessionState::Reconnected)
    );
    assert_eq!(c.session_id(), id, "the same session");
    assert_eq!(
        c.exists("/e").await.unwrap().map(|s| s.ephemeral_owner),
        Some(id),
        "the ephemeral survives"
    );
    c.set("/n", b"x", None).await.unwrap();
    match tokio::time::timeout(WAIT, watch).await {
        Ok(Ok(ev)) => assert_eq!(ev.event_type, EventType::NodeDataChanged),
        other => panic!("the watch set before the outage fires after it: {other:?}"),
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_expires_the_session_and_a_new_one_follows() {
    menagerie_integration::init_test_logs();
    let zk = server().lock().await;
    let hosts = zk.connect_string();
    let base = unique("long-outage");
    let (_b, root) = connect(&hosts, Duration::from_secs(2)).await;
    root.ensure_path(&base).await.unwrap();
    let c = root.with_chroot(&base).unwrap();
    c.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, _, data_watch) = c.get_and_watch("/e").await.unwrap();
    let mut persistent = c
        .watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let old = c.session_id();
    let mut states = c.state_stream();

    zk.pause(0);
    assert_eq!(next_state(&mut states).await, Some(SessionState::Suspended));
    // The client gives the session up after 7/5 of its timeout without the server.
    assert_eq!(next_state(&mut states).await, Some(SessionState::Expired));
    match tokio::time::timeout(WAIT, data_watch).await {
        Ok(Err(Error::SessionExpired)) => {}
        other => panic!("a watch of the expired session ends with SessionExpired: {other:?}"),
    }
    match tokio::time::timeout(WAIT, persistent.next()).await {
        Ok(Err(Error::SessionExpired)) => {}
        other => panic!("a persistent watch of the expired session ends: {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    zk.resume(0);

    assert_eq!(next_state(&mut states).await, Some(SessionState::Connected));
    let new = c.session_id();
    assert!(new != old && new != 0, "a new session ({old:x} → {new:x})");
    // The server expires the old session (and its ephemeral) once it runs again.
    let gone = wait_until(WAIT, || async { matches!(c.exists("/e").await, Ok(None)) }).await;
    assert!(gone, "the expired session's ephemeral is deleted");
    let (_, st) = c
        .create_with_stat("/e", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(
        st.ephemeral_owner, new,
        "new ephemerals belong to the new session"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_urls_isolate_clients() {
    menagerie_integration::init_test_logs();
    let hosts = server().lock().await.connect_string();
    let base = unique("chroot");
    let (_rb, root) = connect(&hosts, Duration::from_secs(4)).await;
    for t in ["a", "b"] {
        root.ensure_path(&format!("{base}/{t}")).await.unwrap();
    }
    let url = |t: &str| {
        ConnectUrl::parse(&format!("zk://{hosts}{base}/{t}?session_timeout_ms=4000")).unwrap()
    };
    let a = menagerie_zookeeper::connect(&url("a")).await.unwrap();
    let b = menagerie_zookeeper::connect(&url("b")).await.unwrap();
    assert_eq!(a.chroot(), format!("{base}/a"));

    let seq = a
        .create("/job-", b"1", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(seq, "/job-0000000000", "created paths come back relative");
    let (_, w) = a.exists_and_watch("/x").await.unwrap();
    let mut pw = a
        .watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    b.create("/x", b"b's", CreateMode::Persistent)
        .await
        .unwrap();
    a.create("/x", b"a's", CreateMode::Persistent)
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, w).await {
        Ok(Ok(ev)) => assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeCreated, "/x")
        ),
        other => panic!("watch paths come back relative: {other:?}"),
    }
    match tokio::time::timeout(WAIT, pw.next()).await {
        Ok(Ok(ev)) => assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeCreated, "/x")
        ),
        other => panic!("persistent watch paths come back relative: {other:?}"),
    }
    assert_eq!(a.get("/x").await.unwrap().0, b"a's");
    assert_eq!(b.get("/x").await.unwrap().0, b"b's");
    assert_eq!(
        b.children("/").await.unwrap().0,
        ["x"],
        "b does not see a's nodes"
    );
    assert_eq!(
        root.get(&format!("{base}/a/x")).await.unwrap().0,
        b"a's",
        "a's nodes live under its chroot"
    );
    match a.get("/missing/deeper").await {
        Err(Error::NoNode { path }) => {
            assert_eq!(path, "/missing/deeper", "error paths are relative")
        }
        other => panic!("{other:?}"),
    }
    let results = a
        .multi(&[Op::create(
            "/m-",
            b"".to_vec(),
            CreateMode::PersistentSequential,
        )])
        .await
        .unwrap();
    match &results[..] {
        [OpResult::Create { path, stat }] => {
            assert_eq!(path, "/m-0000000002", "multi paths come back relative");
            assert!(
                stat.czxid > 0,
                "a multi create's Stat is filled in: {stat:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A chroot whose node does not exist: the client works, its calls see NoNode.
    let ghost = menagerie_zookeeper::connect(&url("ghost")).await.unwrap();
    assert_eq!(
        ghost
            .create("/x", b"", CreateMode::Persistent)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_follow_the_server() {
    menagerie_integration::init_test_logs();
    let hosts = server().lock().await.connect_string();
    let (b, _) = connect(&hosts, Duration::from_secs(4)).await;
    assert_eq!(
        b.server_version().map(|v| (v.major, v.minor)),
        Some((3, 8)),
        "the version comes from srvr"
    );
    let caps = b.capabilities();
    assert!(
        caps.container && caps.persistent_watches && caps.ttl,
        "{caps:?}"
    );
    assert_eq!(caps.max_data_len, DEFAULT_MAX_FRAME_LEN - 1024);
    assert_eq!(b.negotiated_session_timeout(), Some(Duration::from_secs(4)));

    // A server without extended types: TTL creates are refused before they are sent.
    let plain = ZkCluster::start(
        1,
        ZkSettings {
            extended_types: false,
            ..ZkSettings::default()
        },
    )
    .unwrap();
    let (b2, c2) = connect(&plain.connect_string(), Duration::from_secs(4)).await;
    assert!(!b2.capabilities().ttl, "TTL probed as off");
    assert!(b2.capabilities().container);
    let r = c2
        .create(
            "/t",
            b"",
            CreateMode::PersistentWithTtl(Duration::from_secs(5)),
        )
        .await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Unsupported);
    assert!(c2.exists("/t").await.unwrap().is_none());
    // Told the truth by configuration instead, the server itself refuses (Unimplemented →
    // Unsupported) and the session carries on.
    let forced = ZkBackend::connect(&plain.connect_string(), ZkOptions::default().with_ttl(true))
        .await
        .unwrap();
    let r = forced
        .create(
            "/t",
            b"",
            CreateMode::PersistentWithTtl(Duration::from_secs(5)),
        )
        .await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Unsupported);
    assert!(forced.exists("/").await.unwrap().is_some());
    // A configured version wins over srvr.
    let old = ZkBackend::connect(
        &plain.connect_string(),
        ZkOptions::default().with_server_version(ServerVersion::new(3, 5, 2)),
    )
    .await
    .unwrap();
    let caps = old.capabilities();
    assert!(
        !caps.container && !caps.persistent_watches && !caps.ttl,
        "{caps:?}"
    );
    assert_eq!(
        old.watch("/", AddWatchMode::Persistent)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_limit_is_the_server_frame_limit() {
    menagerie_integration::init_test_logs();
    let hosts = server().lock().await.connect_string();
    let (b, root) = connect(&hosts, Duration::from_secs(4)).await;
    let base = unique("frame");
    root.ensure_path(&base).await.unwrap();
    let max = b.capabilities().max_data_len;
    let data = vec![1u8; max];
    let mut states = b.state_stream();
    // setData frame = 8 (header) + 4 + path + 4 + data + 4 (version). With data at max_data_len
    // and a path of 1004 bytes it is exactly 1,048,575 bytes: the largest the server accepts.
    let path_of = |len: usize| {
        let name_len = len - base.len() - 1;
        format!("{base}/{}", "p".repeat(name_len))
    };
    let exact = path_of(1004);
    root.create(&exact, b"", CreateMode::Persistent)
        .await
        .unwrap();
    root.set(&exact, &data, None).await.unwrap();
    assert_eq!(root.get(&exact).await.unwrap().0.len(), max);
    let over = path_of(1005);
    root.create(&over, b"", CreateMode::Persistent)
        .await
        .unwrap();
    match root.set(&over, &data, None).await {
        Err(Error::DataTooLarge { size, limit }) => assert_eq!((size, limit), (max, max - 1)),
        other => panic!("one byte over the frame limit: {other:?}"),
    }
    // create frame = 8 + 4 + path + 4 + data + 27 (ACL) + 4 (flags): a path of 977 bytes fits.
    root.create(
        &path_of(977).replace("/p", "/c"),
        &data,
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    assert_eq!(
        root.create(
            &path_of(978).replace("/p", "/c"),
            &data,
            CreateMode::Persistent
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::DataTooLarge
    );
    // Nothing oversized ever reached the server: the connection never dropped.
    assert!(
        fired_now_state(&mut states).await.is_none(),
        "the connection must not have been lost"
    );
    assert_eq!(b.state(), SessionState::Connected);
}

/// A state change already delivered, if any.
async fn fired_now_state(states: &mut menagerie_core::StateStream) -> Option<SessionState> {
    tokio::time::timeout(Duration::from_millis(100), states.next())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_within_the_connect_timeout() {
    menagerie_integration::init_test_logs();
    let url = ConnectUrl::parse(&format!("zk://127.0.0.1:{}/x", free_port())).unwrap();
    let started = Instant::now();
    let r = menagerie_zookeeper::connect_with(
        &url,
        ZkOptions::default().with_connect_timeout(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionLoss);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for bad in ["zk:///chroot", "zk://h:1/a/", "zk://h:notaport"] {
        let url = ConnectUrl::parse(bad).unwrap();
        let r = menagerie_zookeeper::connect_with(
            &url,
            ZkOptions::default().with_connect_timeout(Duration::from_secs(1)),
        )
        .await;
        let kind = r.unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::BadArguments | ErrorKind::InvalidPath),
            "{bad}: {kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_are_removed_from_the_server() {
    menagerie_integration::init_test_logs();
    let zk = server().lock().await;
    let member = zk.member(0).addr();
    let (_b, root) = connect(&zk.connect_string(), Duration::from_secs(4)).await;
    let base = unique("dropped-watches");
    root.ensure_path(&base).await.unwrap();
    let c = root.with_chroot(&base).unwrap();
    c.create("/n", b"", CreateMode::Persistent).await.unwrap();
    // wchp: each watched path, then the sessions watching it.
    let needle = format!("{base}/n\n");
    let watching = |m: String, needle: String| async move {
        menagerie_zookeeper::four_letter_word(&m, "wchp")
            .await
            .map(|t| t.contains(&needle))
            .unwrap_or(false)
    };
    let (_, _, mut w) = c.get_and_watch("/n").await.unwrap();
    assert!(fired_now(&mut w).await.is_none());
    assert!(
        watching(member.clone(), needle.clone()).await,
        "the server holds the watch"
    );
    drop(w);
    let gone = wait_until(WAIT, || {
        let (m, n) = (member.clone(), needle.clone());
        async move { !watching(m, n).await }
    })
    .await;
    assert!(gone, "a dropped watch is removed from the server");
    let pw = c.watch("/n", AddWatchMode::Persistent).await.unwrap();
    assert!(
        watching(member.clone(), needle.clone()).await,
        "the server holds the persistent watch"
    );
    drop(pw);
    let gone = wait_until(WAIT, || {
        let (m, n) = (member.clone(), needle.clone());
        async move { !watching(m, n).await }
    })
    .await;
    assert!(
        gone,
        "a dropped persistent watch is removed from the server"
    );
    c.close().await.unwrap();
}
