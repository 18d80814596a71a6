//! Checks: one-shot watches (exists / data / child) and persistent watches.

use super::*;
use EventType::*;

/// An exists watch on a missing node fires NodeCreated when the node is created.
pub async fn exists_watch_fires_on_create(f: &dyn BackendFactory) {
    let s = scope(f, "exists_watch_create").await;
    let c = &s.client;
    for (p, mode) in [
        ("/a", CreateMode::Persistent),
        ("/e", CreateMode::Ephemeral),
    ] {
        let (stat, w) = ok(c.exists_and_watch(p).await, "exists_and_watch");
        assert_eq!(stat, None);
        mk_mode(c, p, b"", mode).await;
        expect_event(
            "an exists watch on a missing node fires NodeCreated",
            w,
            NodeCreated,
            p,
        )
        .await;
    }
}

/// An exists watch on an existing node fires NodeDataChanged on set and NodeDeleted on delete.
pub async fn exists_watch_fires_on_set_and_delete(f: &dyn BackendFactory) {
    let s = scope(f, "exists_watch_set_delete").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    let (_, w) = ok(c.exists_and_watch("/a").await, "exists_and_watch");
    ok(c.set("/a", b"x", None).await, "set");
    expect_event(
        "an exists watch fires NodeDataChanged on set",
        w,
        NodeDataChanged,
        "/a",
    )
    .await;
    let (_, w) = ok(c.exists_and_watch("/a").await, "exists_and_watch");
    ok(c.delete("/a", None).await, "delete");
    expect_event(
        "an exists watch fires NodeDeleted on delete",
        w,
        NodeDeleted,
        "/a",
    )
    .await;
}

/// A data watch (get) fires NodeDataChanged on set, also when the data is the same.
pub async fn data_watch_fires_on_set(f: &dyn BackendFactory) {
    let s = scope(f, "data_watch_set").await;
    let c = &s.client;
    mk(c, "/a", b"same").await;
    for _ in 0..2 {
        let (_, _, w) = ok(c.get_and_watch("/a").await, "get_and_watch");
        ok(c.set("/a", b"same", None).await, "set");
        expect_event(
            "a data watch fires NodeDataChanged on every set",
            w,
            NodeDataChanged,
            "/a",
        )
        .await;
    }
}

/// A data watch (get) fires NodeDeleted when the node is deleted.
pub async fn data_watch_fires_on_delete(f: &dyn BackendFactory) {
    let s = scope(f, "data_watch_delete").await;
    let c = &s.client;
    mk_mode(c, "/e", b"", CreateMode::Ephemeral).await;
    let (_, _, w) = ok(c.get_and_watch("/e").await, "get_and_watch");
    ok(c.delete("/e", None).await, "delete");
    expect_event(
        "a data watch fires NodeDeleted on delete",
        w,
        NodeDeleted,
        "/e",
    )
    .await;
}

/// A data watch ignores child creates and deletes; it fires on the node's own set.
pub async fn data_watch_ignores_child_changes(f: &dyn BackendFactory) {
    let s = scope(f, "data_watch_children").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    let (_, _, mut w) = ok(c.get_and_watch("/a").await, "get_and_watch");
    let (_, _, kids) = ok(c.children_and_watch("/a").await, "children_and_watch");
    mk(c, "/a/c", b"").await;
    expect_event(
        "a child create fires the child watch",
        kids,
        NodeChildrenChanged,
        "/a",
    )
    .await;
    stays_pending(
        "a child create must not fire the parent's data watch",
        &mut w,
    )
    .await;
    ok(c.delete("/a/c", None).await, "delete");
    expect_quiet(
        c,
        "a child delete must not fire the parent's data watch",
        &mut w,
    )
    .await;
    ok(c.set("/a", b"x", None).await, "set");
    expect_event(
        "the node's own set fires its data watch",
        w,
        NodeDataChanged,
        "/a",
    )
    .await;
}

/// A child watch fires NodeChildrenChanged (at the parent's path) on child create and delete.
pub async fn child_watch_fires_on_child_create_and_delete(f: &dyn BackendFactory) {
    let s = scope(f, "child_watch_create_delete").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    let rule = "a child watch fires NodeChildrenChanged at the parent on child create and delete";
    let (_, _, w) = ok(c.children_and_watch("/p").await, "children_and_watch");
    mk_mode(c, "/p/e", b"", CreateMode::Ephemeral).await;
    expect_event(rule, w, NodeChildrenChanged, "/p").await;
    let (_, _, w) = ok(c.children_and_watch("/p").await, "children_and_watch");
    let (seq, _) = mk_mode(c, "/p/s-", b"", CreateMode::PersistentSequential).await;
    expect_event(rule, w, NodeChildrenChanged, "/p").await;
    for child in ["/p/e", seq.as_str()] {
        let (_, _, w) = ok(c.children_and_watch("/p").await, "children_and_watch");
        ok(c.delete(child, None).await, "delete");
        expect_event(rule, w, NodeChildrenChanged, "/p").await;
    }
}

/// A child watch fires NodeDeleted when its node itself is deleted.
pub async fn child_watch_fires_on_node_delete(f: &dyn BackendFactory) {
    let s = scope(f, "child_watch_node_delete").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    let (_, _, w) = ok(c.children_and_watch("/p").await, "children_and_watch");
    ok(c.delete("/p", None).await, "delete");
    expect_event(
        "a child watch fires NodeDeleted when its node is deleted",
        w,
        NodeDeleted,
        "/p",
    )
    .await;
}

/// A child watch ignores data changes (of its children and of its node) and grandchild creates.
pub async fn child_watch_ignores_data_changes(f: &dyn BackendFactory) {
    let s = scope(f, "child_watch_data").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/p/c", b"").await;
    let (_, _, mut w) = ok(c.children_and_watch("/p").await, "children_and_watch");
    let (_, _, child_data) = ok(c.get_and_watch("/p/c").await, "get_and_watch /p/c");
    ok(c.set("/p/c", b"x", None).await, "set /p/c");
    expect_event(
        "a child's set fires the child's data watch",
        child_data,
        NodeDataChanged,
        "/p/c",
    )
    .await;
    stays_pending(
        "a child's data change must not fire the parent's child watch",
        &mut w,
    )
    .await;
    let (_, _, own_data) = ok(c.get_and_watch("/p").await, "get_and_watch /p");
    ok(c.set("/p", b"x", None).await, "set /p");
    expect_event(
        "the node's set fires its data watch",
        own_data,
        NodeDataChanged,
        "/p",
    )
    .await;
    stays_pending(
        "the node's own data change must not fire its child watch",
        &mut w,
    )
    .await;
    let (_, _, grandkids) = ok(
        c.children_and_watch("/p/c").await,
        "children_and_watch /p/c",
    );
    mk(c, "/p/c/g", b"").await;
    expect_event(
        "a grandchild create fires the child's child watch",
        grandkids,
        NodeChildrenChanged,
        "/p/c",
    )
    .await;
    stays_pending(
        "a grandchild create must not fire the grandparent's child watch",
        &mut w,
    )
    .await;
    mk(c, "/p/d", b"").await;
    expect_event(
        "a child create fires the child watch",
        w,
        NodeChildrenChanged,
        "/p",
    )
    .await;
}

/// A one-shot watch fires once, with the first change; later changes are not queued for the next
/// watch set on the same path.
pub async fn watch_fires_once(f: &dyn BackendFactory) {
    let s = scope(f, "watch_fires_once").await;
    let c = &s.client;
    mk(c, "/a", b"0").await;
    let (_, _, w1) = ok(c.get_and_watch("/a").await, "get_and_watch");
    ok(c.set("/a", b"1", None).await, "set 1");
    ok(c.set("/a", b"2", None).await, "set 2");
    expect_event(
        "a data watch fires on the first set",
        w1,
        NodeDataChanged,
        "/a",
    )
    .await;
    let (data, _, mut w2) = ok(c.get_and_watch("/a").await, "get_and_watch");
    assert_eq!(data, b"2");
    expect_quiet(
        c,
        "a change before a watch was set must not reach it (watches fire once, nothing is queued)",
        &mut w2,
    )
    .await;
    ok(c.set("/a", b"3", None).await, "set 3");
    expect_event(
        "a new watch fires on the next change",
        w2,
        NodeDataChanged,
        "/a",
    )
    .await;
    let (_, e1) = ok(c.exists_and_watch("/b").await, "exists_and_watch");
    mk(c, "/b", b"").await;
    ok(c.delete("/b", None).await, "delete");
    expect_event(
        "an exists watch reports the first change only",
        e1,
        NodeCreated,
        "/b",
    )
    .await;
    let (_, mut e2) = ok(c.exists_and_watch("/b").await, "exists_and_watch");
    expect_quiet(
        c,
        "a fired exists watch leaves nothing for the next one",
        &mut e2,
    )
    .await;
}

/// A watch fires for changes made by another session.
pub async fn watch_fires_for_other_sessions_changes(f: &dyn BackendFactory) {
    let s = scope(f, "watch_other_session").await;
    let c = &s.client;
    let other = s.other_client().await;
    let (_, w) = ok(c.exists_and_watch("/a").await, "exists_and_watch");
    mk(&other, "/a", b"").await;
    expect_event(
        "an exists watch fires for another session's create",
        w,
        NodeCreated,
        "/a",
    )
    .await;
    let (_, _, w) = ok(c.get_and_watch("/a").await, "get_and_watch");
    catch_up(&other).await;
    ok(other.set("/a", b"x", None).await, "set");
    expect_event(
        "a data watch fires for another session's set",
        w,
        NodeDataChanged,
        "/a",
    )
    .await;
    let (_, _, w) = ok(c.children_and_watch("/").await, "children_and_watch");
    mk_mode(&other, "/b", b"", CreateMode::Ephemeral).await;
    expect_event(
        "a child watch fires for another session's create",
        w,
        NodeChildrenChanged,
        "/",
    )
    .await;
    let (_, _, w) = ok(c.get_and_watch("/a").await, "get_and_watch");
    ok(other.delete("/a", None).await, "delete");
    expect_event(
        "a data watch fires for another session's delete",
        w,
        NodeDeleted,
        "/a",
    )
    .await;
}

/// Every watch value set on a path fires (several from one session, of several kinds, and from
/// other sessions), each once; a child watch on the same path does not fire on set.
pub async fn every_watch_on_a_path_fires(f: &dyn BackendFactory) {
    let s = scope(f, "every_watch_fires").await;
    let c = &s.client;
    let other = s.other_client().await;
    mk(c, "/a", b"").await;
    catch_up(&other).await;
    let (_, _, g1) = ok(c.get_and_watch("/a").await, "get_and_watch");
    let (_, _, g2) = ok(c.get_and_watch("/a").await, "get_and_watch");
    let (_, e1) = ok(c.exists_and_watch("/a").await, "exists_and_watch");
    let (_, _, mut kids) = ok(c.children_and_watch("/a").await, "children_and_watch");
    let (_, _, og) = ok(other.get_and_watch("/a").await, "get_and_watch");
    let (_, oe) = ok(other.exists_and_watch("/a").await, "exists_and_watch");
    ok(other.set("/a", b"x", None).await, "set");
    for (who, w) in [
        ("first data watch", g1),
        ("second data watch", g2),
        ("exists watch", e1),
        ("other session's data watch", og),
        ("other session's exists watch", oe),
    ] {
        expect_event(
            &format!("every watch on the path fires: {who}"),
            w,
            NodeDataChanged,
            "/a",
        )
        .await;
    }
    expect_quiet(
        c,
        "a set must not fire a child watch on the same path",
        &mut kids,
    )
    .await;
}

/// A watch event reaches its session before the session can see the change: the writer's watch
/// has fired when its write returns, another session's when it reads the new data.
pub async fn watch_event_precedes_new_data(f: &dyn BackendFactory) {
    let s = scope(f, "watch_before_data").await;
    let c = &s.client;
    let other = s.other_client().await;
    mk(c, "/a", b"0").await;
    let (_, _, mut w) = ok(c.get_and_watch("/a").await, "get_and_watch");
    let (_, _, mut kids) = ok(c.children_and_watch("/").await, "children_and_watch");
    ok(c.set("/a", b"1", None).await, "set");
    match fired_now(&mut w).await {
        Some(Ok(ev)) if ev.event_type == NodeDataChanged => {}
        other => panic!(
            "the writer's own data watch must have fired when its set returns, got {other:?}"
        ),
    }
    mk(c, "/b", b"").await;
    match fired_now(&mut kids).await {
        Some(Ok(ev)) if ev.event_type == NodeChildrenChanged => {}
        other => panic!(
            "the writer's own child watch must have fired when its create returns, got {other:?}"
        ),
    }
    let (_, _, mut w) = ok(c.get_and_watch("/a").await, "get_and_watch");
    catch_up(&other).await;
    ok(other.set("/a", b"2", None).await, "set by another session");
    within("the new data to become visible", async {
        while data_of(c, "/a").await != b"2" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    match fired_now(&mut w).await {
        Some(Ok(ev)) if ev.event_type == NodeDataChanged => {}
        other => panic!(
            "a session must get the watch event before it can read the new data, got {other:?}"
        ),
    }
}

/// Watches are for exact paths: changes to siblings, to nodes sharing the name as a prefix, or
/// deeper descendants do not fire them.
pub async fn unrelated_changes_do_not_fire(f: &dyn BackendFactory) {
    let s = scope(f, "unrelated_changes").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    mk(c, "/b", b"").await;
    let (_, _, mut data) = ok(c.get_and_watch("/a").await, "get_and_watch /a");
    let (_, _, mut kids) = ok(c.children_and_watch("/a").await, "children_and_watch /a");
    let (_, mut missing) = ok(c.exists_and_watch("/a/x").await, "exists_and_watch /a/x");
    let (_, canary) = ok(c.exists_and_watch("/ab").await, "exists_and_watch /ab");
    mk(c, "/ab", b"").await;
    mk(c, "/ab/x", b"").await;
    mk(c, "/a-x", b"").await;
    ok(c.set("/b", b"x", None).await, "set /b");
    ok(c.set("/ab", b"x", None).await, "set /ab");
    expect_event("the canary watch on /ab fires", canary, NodeCreated, "/ab").await;
    let rule = "changes to other paths (siblings, prefix-sharing names) must not fire a watch";
    stays_pending(rule, &mut data).await;
    stays_pending(rule, &mut kids).await;
    stays_pending(rule, &mut missing).await;
    mk(c, "/a/y", b"").await;
    mk(c, "/a/y/z", b"").await;
    expect_event(
        "a child create fires the child watch",
        kids,
        NodeChildrenChanged,
        "/a",
    )
    .await;
    expect_quiet(
        c,
        "a child create must not fire the exists watch of another child name",
        &mut missing,
    )
    .await;
    stays_pending("child creates must not fire the data watch", &mut data).await;
}

/// A persistent watch reports created / data changed / deleted on its node and children changed
/// on its node — many events, in order, from any session — and stays through delete and
/// re-create; it ignores the children's data, grandchildren and prefix-sharing siblings.
pub async fn persistent_watch_sees_node_and_child_events(f: &dyn BackendFactory) {
    let s = scope(f, "persistent_watch").await;
    let c = &s.client;
    let Some(mut w) = persistent_watch(c, "/n", AddWatchMode::Persistent).await else {
        return;
    };
    let other = s.other_client().await;
    mk(c, "/n", b"").await;
    catch_up(&other).await;
    ok(other.set("/n", b"x", None).await, "set /n");
    mk(&other, "/n/c", b"").await;
    catch_up(c).await;
    ok(c.set("/n/c", b"x", None).await, "set /n/c");
    mk(c, "/n/c/g", b"").await;
    mk(c, "/nx", b"").await;
    ok(c.set("/nx", b"x", None).await, "set /nx");
    ok(c.delete("/n/c/g", None).await, "delete /n/c/g");
    catch_up(&other).await;
    ok(other.delete("/n/c", None).await, "delete /n/c");
    catch_up(c).await;
    ok(c.delete("/n", None).await, "delete /n");
    catch_up(&other).await;
    mk_mode(&other, "/n", b"", CreateMode::Ephemeral).await;
    catch_up(c).await;
    ok(c.set("/n", b"y", None).await, "set /n");
    expect_events(
        "a persistent watch: its node's created/changed/deleted and children changed, nothing else",
        &mut w,
        &[
            (NodeCreated, "/n"),
            (NodeDataChanged, "/n"),
            (NodeChildrenChanged, "/n"),
            (NodeChildrenChanged, "/n"),
            (NodeDeleted, "/n"),
            (NodeCreated, "/n"),
            (NodeDataChanged, "/n"),
        ],
    )
    .await;
    expect_no_more_events(c, "a persistent watch delivers each change once", &mut w).await;
}

/// A recursive persistent watch reports created / data changed / deleted on its node and every
/// descendant, never NodeChildrenChanged, nothing outside its subtree, and stays.
pub async fn recursive_watch_sees_subtree_without_child_events(f: &dyn BackendFactory) {
    let s = scope(f, "recursive_watch").await;
    let c = &s.client;
    let Some(mut w) = persistent_watch(c, "/n", AddWatchMode::PersistentRecursive).await else {
        return;
    };
    let other = s.other_client().await;
    mk(c, "/n", b"").await;
    catch_up(&other).await;
    mk(&other, "/n/a", b"").await;
    catch_up(c).await;
    mk_mode(c, "/n/a/b", b"", CreateMode::Ephemeral).await;
    catch_up(&other).await;
    ok(other.set("/n/a/b", b"x", None).await, "set /n/a/b");
    catch_up(c).await;
    ok(c.set("/n", b"x", None).await, "set /n");
    mk(c, "/nx", b"").await;
    mk(c, "/nx/y", b"").await;
    ok(c.set("/nx", b"x", None).await, "set /nx");
    ok(c.delete("/n/a/b", None).await, "delete /n/a/b");
    catch_up(&other).await;
    ok(other.delete("/n/a", None).await, "delete /n/a");
    catch_up(c).await;
    ok(c.delete("/n", None).await, "delete /n");
    mk(c, "/n", b"").await;
    expect_events(
        "a recursive watch: created/changed/deleted in its subtree, never NodeChildrenChanged",
        &mut w,
        &[
            (NodeCreated, "/n"),
            (NodeCreated, "/n/a"),
            (NodeCreated, "/n/a/b"),
            (NodeDataChanged, "/n/a/b"),
            (NodeDataChanged, "/n"),
            (NodeDeleted, "/n/a/b"),
            (NodeDeleted, "/n/a"),
            (NodeDeleted, "/n"),
            (NodeCreated, "/n"),
        ],
    )
    .await;
    expect_no_more_events(c, "a recursive watch delivers each change once", &mut w).await;
}

/// Dropping a persistent watch is fine: writes go on, other watches on the same path keep
/// working, and a new watch can be set.
pub async fn persistent_watch_can_be_dropped(f: &dyn BackendFactory) {
    let s = scope(f, "persistent_watch_drop").await;
    let c = &s.client;
    let Some(dropped) = persistent_watch(c, "/n", AddWatchMode::Persistent).await else {
        return;
    };
    let Some(mut kept) = persistent_watch(c, "/n", AddWatchMode::Persistent).await else {
        return;
    };
    let Some(recursive) = persistent_watch(c, "/", AddWatchMode::PersistentRecursive).await else {
        return;
    };
    drop(dropped);
    drop(recursive);
    mk(c, "/n", b"").await;
    mk(c, "/n/c", b"").await;
    ok(c.set("/n", b"x", None).await, "set");
    ok(c.delete("/n/c", None).await, "delete");
    ok(c.delete("/n", None).await, "delete");
    expect_events(
        "dropping one persistent watch leaves the others on the path working",
        &mut kept,
        &[
            (NodeCreated, "/n"),
            (NodeChildrenChanged, "/n"),
            (NodeDataChanged, "/n"),
            (NodeChildrenChanged, "/n"),
            (NodeDeleted, "/n"),
        ],
    )
    .await;
    drop(kept);
    let Some(mut again) = persistent_watch(c, "/n", AddWatchMode::PersistentRecursive).await else {
        return;
    };
    mk(c, "/n", b"").await;
    expect_events(
        "a new persistent watch after dropped ones",
        &mut again,
        &[(NodeCreated, "/n")],
    )
    .await;
}

/// Persistent and one-shot watches on one path, in one session, coexist: a change reaches both,
/// after which only the persistent one remains.
///
/// ZooKeeper before 3.9 keeps one watch mode per session and path (ZOOKEEPER-4466): a one-shot
/// watch registered on the server over a persistent one turns it one-shot. A zookeeper backend on
/// such a server must serve one-shot watches on persistently watched paths from the persistent one.
pub async fn persistent_and_oneshot_watches_coexist(f: &dyn BackendFactory) {
    let s = scope(f, "persistent_and_oneshot").await;
    let c = &s.client;
    mk(c, "/n", b"").await;
    let Some(mut w) = persistent_watch(c, "/n", AddWatchMode::Persistent).await else {
        return;
    };
    let (_, _, once) = ok(c.get_and_watch("/n").await, "get_and_watch");
    let (_, _, kids) = ok(c.children_and_watch("/n").await, "children_and_watch");
    ok(c.set("/n", b"x", None).await, "set");
    expect_event(
        "a one-shot watch fires next to a persistent one",
        once,
        NodeDataChanged,
        "/n",
    )
    .await;
    mk(c, "/n/c", b"").await;
    expect_event(
        "a one-shot child watch fires next to a persistent one",
        kids,
        NodeChildrenChanged,
        "/n",
    )
    .await;
    ok(c.set("/n", b"y", None).await, "set");
    expect_events(
        "a persistent watch next to one-shot ones",
        &mut w,
        &[
            (NodeDataChanged, "/n"),
            (NodeChildrenChanged, "/n"),
            (NodeDataChanged, "/n"),
        ],
    )
    .await;
    expect_no_more_events(c, "a persistent watch delivers each change once", &mut w).await;
}
