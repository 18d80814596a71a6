//! Failover on a real 3-node ZooKeeper 3.8 ensemble: killing the leader, killing or freezing the
//! member a client is connected to. Sessions, their ephemerals and their watches survive; the
//! client moves to another member within the session timeout and reports Suspended → Reconnected.
//!
//! The tests share one ensemble (this binary's own) and take turns; each leaves it whole again.
//! `MENAGERIE_TEST_LOG=debug` prints the backend's tracing.

use menagerie_core::conformance::fired_now;
use menagerie_core::{Backend, Client, CreateMode, ErrorKind, EventType, SessionState};
use menagerie_integration::zookeeper::ZkCluster;
use menagerie_zookeeper::{ZkBackend, ZkOptions};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Session timeout of the clients: long enough for a leader election on a loaded machine.
const SESSION: Duration = Duration::from_secs(8);
/// Bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(30);

fn ensemble() -> &'static Mutex<ZkCluster> {
    static CLUSTER: OnceLock<Mutex<ZkCluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        Mutex::new(ZkCluster::ensemble(3).unwrap_or_else(|e| panic!("start the ensemble: {e}")))
    })
}

async fn session(zk: &ZkCluster) -> (Arc<ZkBackend>, Client) {
    let b = ZkBackend::connect(
        &zk.connect_string(),
        ZkOptions::default().with_session_timeout(SESSION),
    )
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"));
    let b = Arc::new(b);
    let client = Client::new(b.clone());
    (b, client)
}

/// Waits for Suspended and then Reconnected; any Expired or Connected (a new session) fails.
async fn expect_suspended_then_reconnected(
    states: &mut menagerie_core::StateStream,
    what: &str,
) -> Duration {
    let started = Instant::now();
    let mut suspended = false;
    let r = tokio::time::timeout(WAIT, async {
        loop {
            match states.next().await {
                Some(SessionState::Suspended) => suspended = true,
                Some(SessionState::Reconnected) if suspended => return,
                other => panic!("{what}: expected Suspended then Reconnected, got {other:?}"),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "{what}: no Reconnected within {WAIT:?}");
    started.elapsed()
}

/// A unique base node for one test.
async fn base(c: &Client, name: &str) -> Client {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = format!("/failover/{name}-{nanos:x}");
    c.ensure_path(&path).await.unwrap();
    c.with_chroot(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_keeps_sessions_ephemerals_and_watches() {
    menagerie_integration::init_test_logs();
    let mut zk = ensemble().lock().await;
    zk.heal().unwrap();
    let (a_backend, a) = session(&zk).await;
    let (_b_backend, b) = session(&zk).await;
    let a = base(&a, "leader-kill").await;
    let b = b.with_chroot(a.chroot()).unwrap();
    let (_, eph) = a
        .create_with_stat("/e", b"mine", CreateMode::Ephemeral)
        .await
        .unwrap();
    let seq = a
        .create("/s-", b"", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    b.sync("/").await.unwrap();
    let (_, mut watch) = b.exists_and_watch("/e").await.unwrap();
    let id_a = a.session_id();
    let id_b = b.session_id();
    let mut states_a = a.state_stream();
    let mut states_b = b.state_stream();

    let leader = zk.leader().expect("a leader");
    zk.kill(leader);
    let took =
        expect_suspended_then_reconnected(&mut states_a, "session a after the leader kill").await;
    expect_suspended_then_reconnected(&mut states_b, "session b after the leader kill").await;
    assert!(
        took < SESSION,
        "the client must be back within the session timeout ({took:?})"
    );
    assert_eq!(a.session_id(), id_a, "the session survives the leader kill");
    assert_eq!(b.session_id(), id_b, "the session survives the leader kill");
    assert_eq!(a_backend.state(), SessionState::Reconnected);
    let new_leader = zk.leader();
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "a new leader is elected ({new_leader:?}, old {leader})"
    );

    b.sync("/").await.unwrap();
    let st = b
        .exists("/e")
        .await
        .unwrap()
        .expect("the ephemeral survives");
    assert_eq!((st.ephemeral_owner, st.czxid), (id_a, eph.czxid));
    assert!(b.exists(&seq).await.unwrap().is_some());
    assert!(
        fired_now(&mut watch).await.is_none(),
        "nothing happened to /e, so its watch must not fire"
    );
    a.set("/e", b"changed", None).await.unwrap();
    match tokio::time::timeout(WAIT, watch).await {
        Ok(Ok(ev)) => assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDataChanged, "/e"),
            "a watch set before the leader kill fires after it"
        ),
        other => panic!("the watch set before the leader kill must fire after it: {other:?}"),
    }
    // Writes and ephemerals work on the new leader.
    a.create("/after", b"", CreateMode::Ephemeral)
        .await
        .unwrap();

    zk.restart(leader).unwrap();
    zk.wait_serving(WAIT).unwrap();
    a.close().await.unwrap();
    b.sync("/").await.unwrap();
    assert!(
        b.exists("/e").await.unwrap().is_none(),
        "close deletes the ephemerals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_moves_off_a_killed_member() {
    menagerie_integration::init_test_logs();
    let mut zk = ensemble().lock().await;
    zk.heal().unwrap();
    let (backend, a) = session(&zk).await;
    let a = base(&a, "member-kill").await;
    a.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    let id = a.session_id();
    let member = zk
        .session_member(id)
        .expect("cons shows the member holding the session");
    let mut states = a.state_stream();
    zk.kill(member);
    let took = expect_suspended_then_reconnected(&mut states, "after its member was killed").await;
    assert!(took < SESSION, "back within the session timeout ({took:?})");
    assert_eq!(a.session_id(), id, "same session on another member");
    let now_on = zk.session_member(id);
    assert!(
        now_on.is_some_and(|m| m != member),
        "the session moved to another member ({now_on:?}, was {member})"
    );
    a.sync("/").await.unwrap();
    assert_eq!(
        a.exists("/e").await.unwrap().map(|s| s.ephemeral_owner),
        Some(id),
        "the ephemeral survives the move"
    );
    drop(backend);
    zk.restart(member).unwrap();
    zk.wait_serving(WAIT).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaves_a_frozen_member() {
    menagerie_integration::init_test_logs();
    let mut zk = ensemble().lock().await;
    zk.heal().unwrap();
    // A session on a follower: freezing it leaves the quorum intact.
    let mut picked = None;
    for _ in 0..20 {
        let (backend, client) = session(&zk).await;
        let member = zk.session_member(client.session_id());
        if member.is_some_and(|m| zk.followers().contains(&m)) {
            picked = Some((backend, client, member.unwrap_or(0)));
            break;
        }
        client.close().await.unwrap();
    }
    let (_backend, a, member) = picked.expect("a session on a follower within 20 tries");
    let a = base(&a, "member-pause").await;
    a.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    let id = a.session_id();
    let mut states = a.state_stream();
    zk.pause(member);
    // The frozen member answers nothing: the client declares the connection lost after 2/5 of
    // the session timeout, fails calls fast meanwhile, and moves on.
    let suspended = tokio::time::timeout(WAIT, states.next()).await;
    assert_eq!(suspended.ok().flatten(), Some(SessionState::Suspended));
    let r = a.backend().get("/").await;
    if let Err(e) = &r {
        assert_eq!(
            e.kind(),
            ErrorKind::ConnectionLoss,
            "calls while Suspended: {e}"
        );
    }
    let back = tokio::time::timeout(WAIT, states.next()).await;
    assert_eq!(back.ok().flatten(), Some(SessionState::Reconnected));
    assert_eq!(a.session_id(), id);
    let now_on = zk.session_member(id);
    assert!(
        now_on.is_some_and(|m| m != member),
        "moved off the frozen member"
    );
    a.sync("/").await.unwrap();
    assert_eq!(
        a.exists("/e").await.unwrap().map(|s| s.ephemeral_owner),
        Some(id)
    );
    zk.resume(member);
    zk.wait_serving(WAIT).unwrap();
}
