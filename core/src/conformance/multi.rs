//! Checks: multi (all-or-nothing transactions with per-operation results).

use super::*;

/// A successful multi applies every operation in order (later ones see earlier ones) and returns
/// one result per operation: created path (with sequential suffix) and the node's Stat, the Stat
/// after each set, check, delete. An empty multi succeeds with no results.
pub async fn multi_applies_all_with_results(f: &dyn BackendFactory) {
    let s = scope(f, "multi_success").await;
    let c = &s.client;
    assert_eq!(
        ok(c.multi(&[]).await, "empty multi"),
        [],
        "an empty multi succeeds with no results"
    );
    let results = ok(
        c.multi(&[
            Op::create("/m", b"1".to_vec(), CreateMode::Persistent),
            Op::create("/m/c", b"".to_vec(), CreateMode::Persistent),
            Op::create("/m/s-", b"".to_vec(), CreateMode::PersistentSequential),
            Op::set("/m", b"2".to_vec(), Some(0)),
            Op::check("/m", Some(1)),
            Op::set("/m", b"three".to_vec(), Some(1)),
            Op::delete("/m/c", None),
        ])
        .await,
        "multi",
    );
    let seq = format!("/m/{}", seq_name("s-", 1));
    match &results[..] {
        [OpResult::Create { path: p0, stat: s0 }, OpResult::Create { path: p1, .. }, OpResult::Create { path: p2, .. }, OpResult::SetData { stat: s3 }, OpResult::Check, OpResult::SetData { stat: s5 }, OpResult::Delete] =>
        {
            assert_eq!((p0.as_str(), p1.as_str(), p2.as_str()), ("/m", "/m/c", seq.as_str()), "multi create results carry the created paths, sequential suffix included (counting the earlier create in the same multi)");
            // Only the creation is pinned: ZooKeeper before 3.9 returns no Stat for a create inside
            // a multi (ZOOKEEPER-4026), so a zookeeper backend reads it back after the multi.
            assert_eq!((s0.czxid, s0.ephemeral_owner), (s3.mzxid, 0), "a multi create's Stat is the new node's: created by the multi's zxid, persistent");
            assert_eq!((s3.version, s3.data_length), (1, 1), "a multi set's Stat is the node's after that set");
            assert_eq!((s5.version, s5.data_length), (2, 5), "a later set in the same multi sees the earlier one");
        }
        other => panic!("multi results: expected Create, Create, Create, SetData, Check, SetData, Delete; got {other:?}"),
    }
    assert_eq!(data_of(c, "/m").await, b"three");
    assert_eq!(
        ok(c.children("/m").await, "children /m").0,
        [seq_name("s-", 1)],
        "every operation of a multi is applied"
    );
}

/// A failing multi applies nothing and reports MultiFailed with the failing index and one result
/// per operation: RolledBack before it, Failed(kind) at it, NotRun after it.
pub async fn multi_failure_applies_nothing(f: &dyn BackendFactory) {
    let s = scope(f, "multi_failure").await;
    let c = &s.client;
    mk(c, "/keep", b"v").await;
    mk(c, "/gone", b"").await;
    let before = stat_of(c, "/").await;
    let r = c
        .multi(&[
            Op::create("/f1", b"".to_vec(), CreateMode::Persistent),
            Op::set("/keep", b"changed".to_vec(), None),
            Op::delete("/gone", None),
            Op::delete("/missing", None),
            Op::create("/f2", b"".to_vec(), CreateMode::Persistent),
        ])
        .await;
    assert_multi_failed(
        r,
        5,
        3,
        ErrorKind::NoNode,
        "multi whose 4th operation deletes a missing node",
    );
    assert_absent(
        c,
        "/f1",
        "a failed multi applies nothing (create rolled back)",
    )
    .await;
    assert_absent(
        c,
        "/f2",
        "a failed multi applies nothing (create after the failure)",
    )
    .await;
    assert_eq!(
        ok(c.get("/keep").await, "get /keep").0,
        b"v",
        "a failed multi applies nothing (set rolled back)"
    );
    assert_eq!(
        stat_of(c, "/keep").await.version,
        0,
        "a failed multi applies nothing (set rolled back)"
    );
    assert!(
        ok(c.exists("/gone").await, "exists").is_some(),
        "a failed multi applies nothing (delete rolled back)"
    );
    assert_eq!(
        stat_of(c, "/").await,
        before,
        "a failed multi changes no Stat"
    );
}

/// The reported index is the first operation that fails, judged against the effects of the
/// operations before it in the same multi.
pub async fn multi_failure_index_is_first_failing_op(f: &dyn BackendFactory) {
    let s = scope(f, "multi_failure_index").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    let r = c
        .multi(&[
            Op::check("/a", Some(3)),
            Op::create("/a", b"".to_vec(), CreateMode::Persistent),
        ])
        .await;
    assert_multi_failed(
        r,
        2,
        0,
        ErrorKind::BadVersion,
        "the first failing operation is reported, the rest NotRun",
    );
    let r = c
        .multi(&[Op::delete("/a", None), Op::check("/a", None)])
        .await;
    assert_multi_failed(
        r,
        2,
        1,
        ErrorKind::NoNode,
        "a check after a delete of the same node in one multi",
    );
    let r = c
        .multi(&[
            Op::create("/b", b"".to_vec(), CreateMode::Persistent),
            Op::create("/b", b"".to_vec(), CreateMode::Persistent),
        ])
        .await;
    assert_multi_failed(
        r,
        2,
        1,
        ErrorKind::NodeExists,
        "a second create of a node created earlier in the multi",
    );
    let r = c
        .multi(&[Op::create("/x/y", b"".to_vec(), CreateMode::Persistent)])
        .await;
    assert_multi_failed(
        r,
        1,
        0,
        ErrorKind::NoNode,
        "a create under a missing parent in a multi",
    );
    assert!(
        ok(c.exists("/a").await, "exists").is_some(),
        "a failed multi applies nothing"
    );
    assert_absent(c, "/b", "a failed multi applies nothing").await;
}

/// A check operation passes on an existing node at the given version (or any, with None) and fails
/// with BadVersion / NoNode otherwise.
pub async fn multi_check_op_versions(f: &dyn BackendFactory) {
    let s = scope(f, "multi_check").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    ok(c.set("/a", b"x", None).await, "set /a");
    assert_eq!(
        ok(
            c.multi(&[Op::check("/a", Some(1))]).await,
            "check at the current version"
        ),
        [OpResult::Check]
    );
    assert_eq!(
        ok(
            c.multi(&[Op::check("/a", None)]).await,
            "check at any version"
        ),
        [OpResult::Check]
    );
    assert_multi_failed(
        c.multi(&[Op::check("/a", Some(0))]).await,
        1,
        0,
        ErrorKind::BadVersion,
        "check at a stale version",
    );
    assert_multi_failed(
        c.multi(&[Op::check("/nope", None)]).await,
        1,
        0,
        ErrorKind::NoNode,
        "check of a missing node",
    );
    let r = c
        .multi(&[Op::check("/a", Some(0)), Op::set("/a", b"y".to_vec(), None)])
        .await;
    assert_multi_failed(
        r,
        2,
        0,
        ErrorKind::BadVersion,
        "a failed check guards the rest of the multi",
    );
    assert_eq!(
        data_of(c, "/a").await,
        b"x",
        "a failed check guards the rest of the multi"
    );
}

/// A node created and deleted in the same multi is gone afterwards; the parent counts both
/// changes (cversion + 2) and its counter moved by one.
pub async fn multi_create_then_delete_same_node(f: &dyn BackendFactory) {
    let s = scope(f, "multi_create_delete").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    let r = ok(
        c.multi(&[
            Op::create("/p/t", b"".to_vec(), CreateMode::Persistent),
            Op::delete("/p/t", Some(0)),
        ])
        .await,
        "multi create + delete",
    );
    assert!(
        matches!(&r[..], [OpResult::Create { path, .. }, OpResult::Delete] if path == "/p/t"),
        "results of create + delete: {r:?}"
    );
    assert_absent(
        c,
        "/p/t",
        "a node created then deleted in one multi is gone",
    )
    .await;
    let st = stat_of(c, "/p").await;
    assert_eq!(
        (st.cversion, st.num_children),
        (2, 0),
        "the parent counts the create and the delete"
    );
    let p = ok(
        c.create("/p/s-", b"", CreateMode::PersistentSequential)
            .await,
        "sequential create",
    );
    assert_eq!(
        p,
        format!("/p/{}", seq_name("s-", 1)),
        "a create inside a multi counts for the sequence"
    );
}

/// A multi is one atomic step: every node it creates or sets carries the same zxid, which is also
/// the parents' new pzxid, and it comes after the writes before it.
pub async fn multi_is_one_atomic_step(f: &dyn BackendFactory) {
    let s = scope(f, "multi_atomic_zxid").await;
    let c = &s.client;
    let (_, earlier) = mk_mode(c, "/c", b"", CreateMode::Persistent).await;
    let r = ok(
        c.multi(&[
            Op::create("/a", b"".to_vec(), CreateMode::Persistent),
            Op::create("/b", b"".to_vec(), CreateMode::Ephemeral),
            Op::create("/a/x", b"".to_vec(), CreateMode::PersistentSequential),
            Op::set("/c", b"x".to_vec(), None),
        ])
        .await,
        "multi",
    );
    let zxids: Vec<i64> = r
        .iter()
        .map(|res| match res {
            OpResult::Create { stat, .. } => stat.czxid,
            OpResult::SetData { stat } => stat.mzxid,
            other => panic!("unexpected result {other:?}"),
        })
        .collect();
    let z = zxids[0];
    assert!(
        zxids.iter().all(|x| *x == z),
        "all operations of one multi share one zxid: {zxids:?}"
    );
    assert!(
        z > earlier.czxid,
        "the multi's zxid comes after earlier writes"
    );
    for p in ["/a", "/b", "/a/x0000000000"] {
        assert_eq!(
            stat_of(c, p).await.czxid,
            z,
            "{p} was created by the multi: czxid = the multi's zxid"
        );
    }
    assert_eq!(
        stat_of(c, "/c").await.mzxid,
        z,
        "set by the multi: mzxid = the multi's zxid"
    );
    assert_eq!(
        stat_of(c, "/a").await.pzxid,
        z,
        "a child created by the multi: pzxid = the multi's zxid"
    );
    assert_eq!(
        stat_of(c, "/").await.pzxid,
        z,
        "children created by the multi: pzxid = the multi's zxid"
    );
}

/// A failed multi consumes no sequence number; a successful one does.
pub async fn multi_failure_consumes_no_sequence(f: &dyn BackendFactory) {
    let s = scope(f, "multi_sequence").await;
    let c = &s.client;
    mk(c, "/q", b"").await;
    let r = c
        .multi(&[
            Op::create("/q/s-", b"".to_vec(), CreateMode::PersistentSequential),
            Op::create("/q/plain", b"".to_vec(), CreateMode::Persistent),
            Op::check("/missing", None),
        ])
        .await;
    assert_multi_failed(
        r,
        3,
        2,
        ErrorKind::NoNode,
        "multi ending in a failing check",
    );
    let r = ok(
        c.multi(&[Op::create(
            "/q/s-",
            b"".to_vec(),
            CreateMode::EphemeralSequential,
        )])
        .await,
        "multi",
    );
    let want = format!("/q/{}", seq_name("s-", 0));
    assert!(
        matches!(&r[..], [OpResult::Create { path, .. }] if *path == want),
        "rolled-back creates consume no number: expected {want}, got {r:?}"
    );
    let p = ok(
        c.create("/q/s-", b"", CreateMode::PersistentSequential)
            .await,
        "sequential create",
    );
    assert_eq!(
        p,
        format!("/q/{}", seq_name("s-", 1)),
        "a create inside a successful multi counts"
    );
}

/// A multi's writes fire watches as single writes do; a failed multi fires none.
pub async fn multi_fires_watches(f: &dyn BackendFactory) {
    let s = scope(f, "multi_watches").await;
    let c = &s.client;
    mk(c, "/d", b"").await;
    mk(c, "/gone", b"").await;
    let (_, mut created) = ok(c.exists_and_watch("/w").await, "exists_and_watch /w");
    let (_, _, mut changed) = ok(c.get_and_watch("/d").await, "get_and_watch /d");
    let (_, _, deleted) = ok(c.get_and_watch("/gone").await, "get_and_watch /gone");
    let (_, _, mut kids) = ok(c.children_and_watch("/").await, "children_and_watch /");
    let r = c
        .multi(&[
            Op::create("/w", b"".to_vec(), CreateMode::Persistent),
            Op::set("/d", b"x".to_vec(), None),
            Op::check("/missing", None),
        ])
        .await;
    assert_multi_failed(
        r,
        3,
        2,
        ErrorKind::NoNode,
        "multi ending in a failing check",
    );
    expect_quiet(c, "a failed multi fires no watch", &mut created).await;
    stays_pending("a failed multi fires no watch", &mut changed).await;
    stays_pending("a failed multi fires no watch", &mut kids).await;
    ok(
        c.multi(&[
            Op::create("/w", b"".to_vec(), CreateMode::Persistent),
            Op::set("/d", b"x".to_vec(), None),
            Op::delete("/gone", None),
        ])
        .await,
        "multi",
    );
    expect_event(
        "multi create fires the exists watch",
        created,
        EventType::NodeCreated,
        "/w",
    )
    .await;
    expect_event(
        "multi set fires the data watch",
        changed,
        EventType::NodeDataChanged,
        "/d",
    )
    .await;
    expect_event(
        "multi delete fires the data watch",
        deleted,
        EventType::NodeDeleted,
        "/gone",
    )
    .await;
    expect_event(
        "multi create/delete of children fires the parent's child watch",
        kids,
        EventType::NodeChildrenChanged,
        "/",
    )
    .await;
}

/// A multi obeys the ephemeral rules: no child under an ephemeral created earlier in the same
/// multi (NoChildrenForEphemerals), and ephemerals it creates belong to the session.
pub async fn multi_respects_ephemeral_rules(f: &dyn BackendFactory) {
    let s = scope(f, "multi_ephemerals").await;
    let c = &s.client;
    let r = c
        .multi(&[
            Op::create("/e", b"".to_vec(), CreateMode::Ephemeral),
            Op::create("/e/c", b"".to_vec(), CreateMode::Persistent),
        ])
        .await;
    assert_multi_failed(
        r,
        2,
        1,
        ErrorKind::NoChildrenForEphemerals,
        "a child under an ephemeral created in the same multi",
    );
    assert_absent(c, "/e", "a failed multi applies nothing").await;
    let r = ok(
        c.multi(&[
            Op::create("/e", b"".to_vec(), CreateMode::Ephemeral),
            Op::create("/es-", b"".to_vec(), CreateMode::EphemeralSequential),
        ])
        .await,
        "multi of ephemerals",
    );
    let sid = c.session_id();
    for res in &r {
        match res {
            OpResult::Create { path, stat } => {
                assert_eq!(
                    stat.ephemeral_owner, sid,
                    "an ephemeral created by a multi belongs to the session ({path})"
                );
                assert_eq!(
                    stat_of(c, path).await.ephemeral_owner,
                    sid,
                    "an ephemeral created by a multi belongs to the session ({path})"
                );
            }
            other => panic!("unexpected result {other:?}"),
        }
    }
}
