//! Checks: sessions — ephemeral ownership, close, expiry and the connection-state stream.

use super::*;

/// Every session has its own non-zero id, starts Connected, and the ephemerals it creates carry
/// that id as ephemeralOwner, as every other session sees them.
pub async fn ephemeral_owner_is_creator_session(f: &dyn BackendFactory) {
    let s = scope(f, "ephemeral_owner").await;
    let a = &s.client;
    let b = s.other_client().await;
    for (c, who) in [(a, "first"), (&b, "second")] {
        assert_eq!(
            c.state(),
            SessionState::Connected,
            "a fresh {who} session is Connected"
        );
        assert_ne!(c.session_id(), 0, "a session id is never 0");
    }
    assert_ne!(
        a.session_id(),
        b.session_id(),
        "two sessions have distinct ids"
    );
    mk_mode(a, "/ea", b"", CreateMode::Ephemeral).await;
    let (eb, _) = mk_mode(&b, "/eb-", b"", CreateMode::EphemeralSequential).await;
    mk(&b, "/pb", b"").await;
    catch_up(a).await;
    catch_up(&b).await;
    assert_eq!(
        stat_of(&b, "/ea").await.ephemeral_owner,
        a.session_id(),
        "another session sees the creator's id as ephemeralOwner"
    );
    assert_eq!(
        ok(a.get(&eb).await, "get").1.ephemeral_owner,
        b.session_id(),
        "another session sees the creator's id as ephemeralOwner"
    );
    assert_eq!(
        stat_of(a, "/pb").await.ephemeral_owner,
        0,
        "a persistent node has no owner, whoever created it"
    );
}

/// Closing a session deletes its ephemerals (others see them gone, their watches fire NodeDeleted
/// and the parent's NodeChildrenChanged, the parent counts the deletes) and keeps its persistent nodes.
pub async fn ephemerals_deleted_on_close(f: &dyn BackendFactory) {
    let s = scope(f, "ephemerals_on_close").await;
    let observer = &s.client;
    let a = s.other_client().await;
    mk(&a, "/p", b"").await;
    mk_mode(&a, "/p/e", b"", CreateMode::Ephemeral).await;
    let (es, _) = mk_mode(&a, "/p/es-", b"", CreateMode::EphemeralSequential).await;
    catch_up(observer).await;
    let (stat, exists_w) = ok(observer.exists_and_watch("/p/e").await, "exists_and_watch");
    assert!(
        stat.is_some(),
        "the ephemeral is visible to another session"
    );
    let (_, _, data_w) = ok(observer.get_and_watch(&es).await, "get_and_watch");
    let (kids, _, child_w) = ok(
        observer.children_and_watch("/p").await,
        "children_and_watch",
    );
    assert_eq!(kids.len(), 2);
    ok(a.close().await, "close");
    expect_event(
        "closing a session fires other sessions' exists watches on its ephemerals",
        exists_w,
        EventType::NodeDeleted,
        "/p/e",
    )
    .await;
    expect_event(
        "closing a session fires other sessions' data watches on its ephemerals",
        data_w,
        EventType::NodeDeleted,
        &es,
    )
    .await;
    expect_event(
        "closing a session fires child watches on its ephemerals' parents",
        child_w,
        EventType::NodeChildrenChanged,
        "/p",
    )
    .await;
    assert_absent(
        observer,
        "/p/e",
        "a closed session's ephemerals are deleted",
    )
    .await;
    assert_absent(observer, &es, "a closed session's ephemerals are deleted").await;
    let st = stat_of(observer, "/p").await;
    assert_eq!((st.num_children, st.cversion), (0, 4), "a closed session's persistent node stays; its ephemeral children's deletes count in cversion");
}

/// After close, every call fails with Closed, state() is Closed, the state stream reports Closed
/// and then ends, and a state stream taken afterwards ends at once.
pub async fn closed_handle_refuses_calls(f: &dyn BackendFactory) {
    let s = scope(f, "closed_handle").await;
    let a = s.other_client().await;
    mk(&a, "/n", b"").await;
    let mut states = a.state_stream();
    ok(a.close().await, "close");
    assert_eq!(
        within("state stream after close", states.next()).await,
        Some(SessionState::Closed),
        "close reports Closed on the state stream"
    );
    assert_eq!(
        within("state stream after Closed", states.next()).await,
        None,
        "the state stream ends after Closed"
    );
    assert_eq!(a.state(), SessionState::Closed, "state() after close");
    assert_eq!(
        within("a state stream taken after close", a.state_stream().next()).await,
        None,
        "a state stream taken after close ends at once"
    );
    let closed = |op: &str| format!("{op} after close must fail with Closed");
    assert_err(
        a.create("/x", b"", CreateMode::Persistent).await,
        ErrorKind::Closed,
        &closed("create"),
    );
    assert_err(a.get("/n").await, ErrorKind::Closed, &closed("get"));
    assert_err(
        a.get_and_watch("/n").await,
        ErrorKind::Closed,
        &closed("get_and_watch"),
    );
    assert_err(a.exists("/n").await, ErrorKind::Closed, &closed("exists"));
    assert_err(
        a.exists_and_watch("/n").await,
        ErrorKind::Closed,
        &closed("exists_and_watch"),
    );
    assert_err(
        a.set("/n", b"x", None).await,
        ErrorKind::Closed,
        &closed("set"),
    );
    assert_err(
        a.delete("/n", None).await,
        ErrorKind::Closed,
        &closed("delete"),
    );
    assert_err(
        a.children("/").await,
        ErrorKind::Closed,
        &closed("children"),
    );
    assert_err(
        a.children_and_watch("/").await,
        ErrorKind::Closed,
        &closed("children_and_watch"),
    );
    assert_err(
        a.multi(&[Op::check("/n", None)]).await,
        ErrorKind::Closed,
        &closed("multi"),
    );
    assert_err(a.sync("/").await, ErrorKind::Closed, &closed("sync"));
    catch_up(&s.client).await;
    assert_eq!(
        data_of(&s.client, "/n").await,
        b"",
        "a closed session's persistent nodes stay"
    );
}

/// Closing a session ends its pending watches (one-shot and persistent) with Closed.
pub async fn watches_end_when_session_closes(f: &dyn BackendFactory) {
    let s = scope(f, "watches_on_close").await;
    let a = s.other_client().await;
    mk(&a, "/n", b"").await;
    let (_, _, data_w) = ok(a.get_and_watch("/n").await, "get_and_watch");
    let (_, exists_w) = ok(a.exists_and_watch("/missing").await, "exists_and_watch");
    let (_, _, child_w) = ok(a.children_and_watch("/n").await, "children_and_watch");
    let pw = persistent_watch(&a, "/", AddWatchMode::PersistentRecursive).await;
    ok(a.close().await, "close");
    for (what, w) in [
        ("data watch", data_w),
        ("exists watch", exists_w),
        ("child watch", child_w),
    ] {
        match within(what, w).await {
            Err(Error::Closed) => {}
            other => {
                panic!("a {what} of a closed session must end with Err(Closed), got {other:?}")
            }
        }
    }
    if let Some(mut pw) = pw {
        assert_err(
            within("persistent watch", pw.next()).await,
            ErrorKind::Closed,
            "a persistent watch of a closed session must end with Err(Closed)",
        );
    }
}

/// Closing one session leaves the others alone: their ephemerals, watches and calls work on.
pub async fn closing_one_session_leaves_others_alone(f: &dyn BackendFactory) {
    let s = scope(f, "close_isolated").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    mk_mode(&a, "/ea", b"", CreateMode::Ephemeral).await;
    mk_mode(&b, "/eb", b"", CreateMode::Ephemeral).await;
    mk(&b, "/n", b"").await;
    let (_, _, w) = ok(b.get_and_watch("/n").await, "get_and_watch");
    ok(a.close().await, "close");
    assert_absent(&b, "/ea", "the closed session's ephemeral is gone").await;
    assert!(
        ok(b.exists("/eb").await, "exists").is_some(),
        "another session's ephemeral must survive a close"
    );
    assert_eq!(
        b.state(),
        SessionState::Connected,
        "another session stays Connected"
    );
    catch_up(&s.client).await;
    ok(s.client.set("/n", b"x", None).await, "set /n");
    expect_event(
        "another session's watch must survive a close",
        w,
        EventType::NodeDataChanged,
        "/n",
    )
    .await;
    mk_mode(&b, "/eb2", b"", CreateMode::Ephemeral).await;
}

/// When a session expires its ephemerals are deleted: other sessions see them gone and their
/// watches fire NodeDeleted and the parent's NodeChildrenChanged.
pub async fn ephemerals_deleted_on_expiry(f: &dyn BackendFactory) {
    let s = scope(f, "ephemerals_on_expiry").await;
    let observer = &s.client;
    let a = s.other_client().await;
    mk(&a, "/p", b"").await;
    mk_mode(&a, "/p/e", b"", CreateMode::Ephemeral).await;
    let (es, _) = mk_mode(&a, "/es-", b"", CreateMode::EphemeralSequential).await;
    catch_up(observer).await;
    let (_, exists_w) = ok(observer.exists_and_watch("/p/e").await, "exists_and_watch");
    let (_, _, data_w) = ok(observer.get_and_watch(&es).await, "get_and_watch");
    let (_, _, child_w) = ok(
        observer.children_and_watch("/p").await,
        "children_and_watch",
    );
    s.expire(&a).await;
    assert_absent(
        observer,
        "/p/e",
        "an expired session's ephemerals are deleted",
    )
    .await;
    assert_absent(observer, &es, "an expired session's ephemerals are deleted").await;
    expect_event(
        "expiry fires other sessions' exists watches on its ephemerals",
        exists_w,
        EventType::NodeDeleted,
        "/p/e",
    )
    .await;
    expect_event(
        "expiry fires other sessions' data watches on its ephemerals",
        data_w,
        EventType::NodeDeleted,
        &es,
    )
    .await;
    expect_event(
        "expiry fires child watches on its ephemerals' parents",
        child_w,
        EventType::NodeChildrenChanged,
        "/p",
    )
    .await;
    assert!(
        ok(observer.exists("/p").await, "exists").is_some(),
        "an expired session's persistent nodes stay"
    );
}

/// After expiry the handle reports Expired, then Connected with a new session id; it works again,
/// and what it creates now belongs to the new session.
pub async fn expiry_reports_expired_then_new_session(f: &dyn BackendFactory) {
    let s = scope(f, "expiry_new_session").await;
    let a = s.other_client().await;
    let old = a.session_id();
    mk_mode(&a, "/old", b"", CreateMode::Ephemeral).await;
    let mut states = a.state_stream();
    s.expire(&a).await;
    use SessionState::*;
    await_state(
        &mut states,
        Expired,
        &[Suspended, Reconnected],
        "the state stream reports Expired after expiry",
    )
    .await;
    await_state(
        &mut states,
        Connected,
        &[Suspended],
        "after Expired, the handle reports Connected with a new session",
    )
    .await;
    let new = a.session_id();
    assert!(
        new != old && new != 0,
        "after expiry the handle has a new session id (old {old}, new {new})"
    );
    assert_absent(&a, "/old", "the old session's ephemerals are gone").await;
    let (_, st) = mk_mode(&a, "/new", b"", CreateMode::Ephemeral).await;
    assert_eq!(
        st.ephemeral_owner, new,
        "ephemerals created after expiry belong to the new session"
    );
    catch_up(&s.client).await;
    assert_eq!(
        stat_of(&s.client, "/new").await.ephemeral_owner,
        new,
        "others see the new session as owner"
    );
    assert_eq!(data_of(&a, "/").await, b"", "reads work after expiry");
}

/// When a session expires its pending watches (one-shot and persistent) end with an error
/// (SessionExpired or Closed); they never hang and never deliver an event.
pub async fn watches_end_when_session_expires(f: &dyn BackendFactory) {
    let s = scope(f, "watches_on_expiry").await;
    let a = s.other_client().await;
    mk(&a, "/n", b"").await;
    let (_, _, data_w) = ok(a.get_and_watch("/n").await, "get_and_watch");
    let (_, exists_w) = ok(a.exists_and_watch("/missing").await, "exists_and_watch");
    let (_, _, child_w) = ok(a.children_and_watch("/n").await, "children_and_watch");
    let pw = persistent_watch(&a, "/", AddWatchMode::Persistent).await;
    s.expire(&a).await;
    expect_watch_ended("a data watch of an expired session", data_w).await;
    expect_watch_ended("an exists watch of an expired session", exists_w).await;
    expect_watch_ended("a child watch of an expired session", child_w).await;
    if let Some(mut pw) = pw {
        expect_watch_ended("a persistent watch of an expired session", pw.next()).await;
    }
}
