//! Fault injection against real etcd: the cluster leader killed during a stream of writes, a
//! client cut off (loopback proxy) until its lease expires, and a short cut that the session
//! survives.

use menagerie_core::{Backend, Client, CreateMode, Error, EventType, SessionState};
use menagerie_etcd::EtcdBackend;
use menagerie_integration::etcd::{options, shared_single, EtcdCluster, Proxy};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for: {what}"),
    }
}

fn prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("/faults-{name}-{nanos:x}")
}

/// Records every state a handle reports.
fn record_states(b: &Arc<EtcdBackend>) -> Arc<Mutex<Vec<SessionState>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut states = b.state_stream();
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(s) = states.next().await {
            out.lock().unwrap().push(s);
        }
    });
    seen
}

async fn await_state(b: &EtcdBackend, want: SessionState, limit: Duration) {
    let deadline = Instant::now() + limit;
    while b.state() != want {
        assert!(
            Instant::now() < deadline,
            "expected state {want:?} within {limit:?}, still {:?}",
            b.state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `/w/<i>` until it is acknowledged; a retryable error is followed by a check (a create
/// that answered ConnectionLoss may have been applied: then NodeExists on the retry).
async fn write_one(c: &Client, i: usize) -> bool {
    let p = format!("/w/{i:05}");
    let data = i.to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        match c.create(&p, data.as_bytes(), CreateMode::Persistent).await {
            Ok(_) => return true,
            Err(Error::NodeExists { .. }) => return false, // applied by an earlier, unanswered try
            Err(e) if e.is_retryable() => {
                assert!(Instant::now() < deadline, "write {i} kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("write {i} failed for good: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_no_acknowledged_write_and_no_session() {
    let mut cluster = EtcdCluster::start(3).await;
    let opts = options(&cluster, &prefix("leader_kill"));
    let writer = Arc::new(EtcdBackend::connect(opts.clone()).await.expect("connect"));
    let states = record_states(&writer);
    let session = writer.session_id();
    let c = Client::new(writer.clone());
    c.create("/alive", b"", CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    c.create("/w", b"", CreateMode::Persistent)
        .await
        .expect("parent");

    let total = 300;
    let kill_at = 100;
    let mut acked = Vec::new();
    let mut killed = None;
    let started = Instant::now();
    for i in 0..total {
        if i == kill_at {
            let leader = cluster.leader().await.expect("a leader before the kill");
            cluster.kill(leader);
            killed = Some(leader);
        }
        if write_one(&c, i).await {
            acked.push(i);
        }
    }
    let killed = killed.expect("the leader was killed");
    let new_leader = cluster
        .wait_leader(WAIT)
        .await
        .expect("a new leader after the kill");
    assert_ne!(new_leader, killed, "the killed member cannot lead");
    eprintln!(
        "{} of {total} writes acknowledged in {:?} (leader m{killed} killed at write {kill_at}, new leader m{new_leader})",
        acked.len(),
        started.elapsed()
    );

    // Every acknowledged write is there, as another session sees it.
    let reader = Client::new(Arc::new(
        EtcdBackend::connect(opts.clone())
            .await
            .expect("connect reader"),
    ));
    reader.sync("/").await.expect("sync");
    let (kids, _) = reader.children("/w").await.expect("children");
    for i in &acked {
        let name = format!("{i:05}");
        assert!(kids.contains(&name), "acknowledged write {i} was lost");
        let (data, _) = reader.get(&format!("/w/{name}")).await.expect("get");
        assert_eq!(data, i.to_string().as_bytes(), "data of write {i}");
    }
    assert_eq!(kids.len(), total, "every write was applied exactly once");

    // No session was lost.
    assert_eq!(
        writer.session_id(),
        session,
        "the session survived the leader kill"
    );
    let seen = states.lock().unwrap().clone();
    assert!(
        !seen.contains(&SessionState::Expired),
        "the session must not expire during a leader change: {seen:?}"
    );
    let st = reader
        .exists("/alive")
        .await
        .expect("exists")
        .expect("the ephemeral survived");
    assert_eq!(st.ephemeral_owner, session);

    // The killed member comes back and catches up.
    cluster.restart(killed).await;
    let mut only_it = opts.clone();
    only_it.endpoints = vec![cluster.members()[killed].endpoint()];
    let back = Client::new(Arc::new(
        EtcdBackend::connect(only_it).await.expect("connect"),
    ));
    back.sync("/").await.expect("sync on the restarted member");
    assert_eq!(back.children("/w").await.expect("children").0.len(), total);
    writer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_removes_ephemerals_and_fires_watches() {
    let server = shared_single();
    let proxy = Proxy::start(server.members()[0].endpoint().parse().expect("addr"));
    let mut opts = options(server, &prefix("lease_expiry"));
    let direct = opts.clone();
    opts.endpoints = vec![proxy.endpoint()];
    opts.session_timeout = Duration::from_secs(2);
    let a = Arc::new(
        EtcdBackend::connect(opts)
            .await
            .expect("connect through the proxy"),
    );
    let states = record_states(&a);
    let observer = Client::new(Arc::new(
        EtcdBackend::connect(direct).await.expect("connect"),
    ));
    let ca = Client::new(a.clone());
    ca.create("/p", b"", CreateMode::Persistent)
        .await
        .expect("create /p");
    ca.create("/p/e", b"", CreateMode::Ephemeral)
        .await
        .expect("create /p/e");
    let es = ca
        .create("/es-", b"", CreateMode::EphemeralSequential)
        .await
        .expect("create /es-");
    let old = a.session_id();
    observer.sync("/").await.expect("sync");
    let (stat, exists_w) = observer
        .exists_and_watch("/p/e")
        .await
        .expect("exists_and_watch");
    assert_eq!(stat.expect("visible").ephemeral_owner, old);
    let (_, _, data_w) = observer.get_and_watch(&es).await.expect("get_and_watch");
    let (_, _, child_w) = observer
        .children_and_watch("/p")
        .await
        .expect("children_and_watch");
    let (_, _, own_w) = ca.get_and_watch("/p").await.expect("own watch");

    let cut = Instant::now();
    proxy.block();
    await_state(&a, SessionState::Suspended, Duration::from_secs(10)).await;
    let ev = within(
        "NodeDeleted of /p/e after the lease expired",
        WAIT,
        exists_w,
    )
    .await
    .expect("event");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDeleted, "/p/e")
    );
    let ev = within("NodeDeleted of the sequential ephemeral", WAIT, data_w)
        .await
        .expect("event");
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    let ev = within("NodeChildrenChanged of /p", WAIT, child_w)
        .await
        .expect("event");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/p")
    );
    let gone_after = cut.elapsed();
    assert!(
        gone_after >= Duration::from_millis(1500),
        "the ephemerals went before the lease could expire ({gone_after:?})"
    );
    assert!(observer.exists("/p/e").await.expect("exists").is_none());
    assert!(observer.exists(&es).await.expect("exists").is_none());
    let st = observer
        .exists("/p")
        .await
        .expect("exists")
        .expect("/p stays");
    assert_eq!(
        (st.num_children, st.cversion),
        (0, 2),
        "the parent counts the deletes"
    );

    // Back on the network: Expired, then Connected with a new lease.
    proxy.unblock();
    let r = within("the cut-off session's own watch to end", WAIT, own_w).await;
    assert_eq!(
        r,
        Err(Error::SessionExpired),
        "a watch of the expired session ends"
    );
    await_state(&a, SessionState::Connected, WAIT).await;
    let new = a.session_id();
    assert_ne!(new, old, "a new session after expiry");
    let seen = states.lock().unwrap().clone();
    let exp = seen.iter().position(|s| *s == SessionState::Expired);
    let con = seen.iter().rposition(|s| *s == SessionState::Connected);
    assert!(
        matches!((exp, con), (Some(e), Some(c)) if e < c),
        "states must go Suspended… Expired, then Connected: {seen:?}"
    );
    let (_, st) = ca
        .create_with_stat("/p/e", b"", CreateMode::Ephemeral)
        .await
        .expect("create after expiry");
    assert_eq!(st.ephemeral_owner, new);
    a.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_cut_suspends_and_reconnects_the_same_session() {
    let server = shared_single();
    let proxy = Proxy::start(server.members()[0].endpoint().parse().expect("addr"));
    let mut opts = options(server, &prefix("short_cut"));
    opts.endpoints = vec![proxy.endpoint()];
    opts.session_timeout = Duration::from_secs(6);
    let a = Arc::new(
        EtcdBackend::connect(opts)
            .await
            .expect("connect through the proxy"),
    );
    let ca = Client::new(a.clone());
    ca.create("/e", b"", CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    ca.create("/n", b"", CreateMode::Persistent)
        .await
        .expect("node");
    let (_, _, w) = ca.get_and_watch("/n").await.expect("watch");
    let sid = a.session_id();
    proxy.block();
    await_state(&a, SessionState::Suspended, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.unblock();
    await_state(&a, SessionState::Reconnected, WAIT).await;
    assert_eq!(a.session_id(), sid, "the same session after a short cut");
    let st = ca
        .exists("/e")
        .await
        .expect("exists")
        .expect("the ephemeral survived");
    assert_eq!(st.ephemeral_owner, sid);
    ca.set("/n", b"x", None).await.expect("set");
    let ev = within("the watch set before the cut", WAIT, w)
        .await
        .expect("event");
    assert_eq!(
        ev.event_type,
        EventType::NodeDataChanged,
        "watches survive a short cut"
    );
    a.close().await.expect("close");
}
