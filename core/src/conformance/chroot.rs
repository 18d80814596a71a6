//! Checks: chroot — a client confined to a subtree sees only paths relative to it.

use super::*;

/// A chrooted client works with paths relative to its chroot: created paths (sequential too),
/// multi results, error paths and watch event paths (one-shot and persistent) are all relative.
pub async fn chroot_paths_are_relative(f: &dyn BackendFactory) {
    let s = scope(f, "chroot_relative").await;
    ok(s.client.ensure_path("/x").await, "ensure_path /x");
    let x = ok(s.client.with_chroot("/x"), "with_chroot /x");
    assert_eq!(
        x.chroot(),
        format!("{}/x", s.base),
        "a chroot nests inside the client's own chroot"
    );
    let (_, _, mut root_kids) = ok(
        x.children_and_watch("/").await,
        "children_and_watch of the chroot root",
    );
    let (_, created) = ok(x.exists_and_watch("/a").await, "exists_and_watch /a");
    // From another session: one session mixing watch modes on one path trips ZOOKEEPER-4466.
    let x2 = ok(s.other_client().await.with_chroot("/x"), "with_chroot /x");
    let pw = persistent_watch(&x2, "/", AddWatchMode::PersistentRecursive).await;
    let rule = "a chrooted client sees paths relative to its chroot";
    assert_eq!(
        ok(
            x.create("/a", b"v", CreateMode::Persistent).await,
            "create /a"
        ),
        "/a",
        "{rule}: create"
    );
    expect_event(
        &format!("{rule}: exists watch event"),
        created,
        EventType::NodeCreated,
        "/a",
    )
    .await;
    expect_event(
        &format!("{rule}: child watch on the chroot root"),
        &mut root_kids,
        EventType::NodeChildrenChanged,
        "/",
    )
    .await;
    assert_eq!(
        data_of(&s.client, "/x/a").await,
        b"v",
        "a chrooted create lands below the chroot"
    );
    let seq = ok(
        x.create("/s-", b"", CreateMode::EphemeralSequential).await,
        "sequential create",
    );
    assert_eq!(
        seq,
        format!("/{}", seq_name("s-", 1)),
        "{rule}: sequential create"
    );
    let r = ok(
        x.multi(&[
            Op::create("/m-", b"".to_vec(), CreateMode::PersistentSequential),
            Op::check("/a", Some(0)),
        ])
        .await,
        "multi",
    );
    let want = format!("/{}", seq_name("m-", 2));
    assert!(
        matches!(&r[..], [OpResult::Create { path, .. }, OpResult::Check] if *path == want),
        "{rule}: multi results, expected {want}, got {r:?}"
    );
    assert_eq!(
        ok(x.children("/").await, "children /").0,
        ["a", seq_name("m-", 2).as_str(), seq_name("s-", 1).as_str()],
        "{rule}: children of the chroot root"
    );
    assert_err_path(
        x.create("/a", b"", CreateMode::Persistent).await,
        ErrorKind::NodeExists,
        "/a",
        &format!("{rule}: NodeExists"),
    );
    assert_err_path(
        x.get("/nope").await,
        ErrorKind::NoNode,
        "/nope",
        &format!("{rule}: NoNode"),
    );
    assert_err_path(
        x.set("/a", b"", Some(9)).await,
        ErrorKind::BadVersion,
        "/a",
        &format!("{rule}: BadVersion"),
    );
    mk(&x, "/a/k", b"").await;
    assert_err_path(
        x.delete("/a", None).await,
        ErrorKind::NotEmpty,
        "/a",
        &format!("{rule}: NotEmpty"),
    );
    let (_, _, data_w) = ok(x.get_and_watch("/a/k").await, "get_and_watch /a/k");
    ok(x.delete("/a/k", None).await, "delete /a/k");
    expect_event(
        &format!("{rule}: data watch event"),
        data_w,
        EventType::NodeDeleted,
        "/a/k",
    )
    .await;
    if let Some(mut pw) = pw {
        expect_events(
            &format!("{rule}: persistent watch events"),
            &mut pw,
            &[
                (EventType::NodeCreated, "/a"),
                (EventType::NodeCreated, seq.as_str()),
                (EventType::NodeCreated, want.as_str()),
                (EventType::NodeCreated, "/a/k"),
                (EventType::NodeDeleted, "/a/k"),
            ],
        )
        .await;
    }
    assert_eq!(
        stat_of(&x, "/").await,
        stat_of(&s.client, "/x").await,
        "the chroot root is the chroot node"
    );
}

/// Clients chrooted to different subtrees (in different sessions) are isolated: same relative
/// paths, different nodes, no visibility of each other's nodes or events.
pub async fn chroots_are_isolated(f: &dyn BackendFactory) {
    let s = scope(f, "chroot_isolated").await;
    ok(s.client.ensure_path("/x").await, "ensure_path /x");
    ok(s.client.ensure_path("/y").await, "ensure_path /y");
    let x = ok(s.client.with_chroot("/x"), "with_chroot /x");
    let y = ok(s.other_client().await.with_chroot("/y"), "with_chroot /y");
    mk(&x, "/a", b"x-data").await;
    catch_up(&y).await;
    assert_eq!(
        ok(y.exists("/a").await, "exists"),
        None,
        "a node in another chroot must be invisible"
    );
    assert!(
        ok(y.children("/").await, "children").0.is_empty(),
        "another chroot's nodes must not be listed"
    );
    let (_, mut y_watch) = ok(y.exists_and_watch("/b").await, "exists_and_watch /b");
    mk(&y, "/a", b"y-data").await;
    mk(&x, "/b", b"").await;
    expect_quiet(
        &y,
        "a create in another chroot must not fire a watch on the same relative path",
        &mut y_watch,
    )
    .await;
    catch_up(&x).await;
    assert_eq!(
        data_of(&x, "/a").await,
        b"x-data",
        "same relative path, different nodes"
    );
    assert_eq!(
        data_of(&y, "/a").await,
        b"y-data",
        "same relative path, different nodes"
    );
    ok(x.delete("/a", None).await, "delete");
    catch_up(&y).await;
    assert!(
        ok(y.exists("/a").await, "exists").is_some(),
        "a delete in another chroot must not touch this one"
    );
    mk(&y, "/b", b"").await;
    expect_event(
        "a create in the watch's own chroot fires it",
        y_watch,
        EventType::NodeCreated,
        "/b",
    )
    .await;
}

/// A sequential create of `/` in a chroot (directly or in a multi) names a child of the chroot,
/// never a sibling outside it.
pub async fn chroot_sequential_root_create_stays_inside(f: &dyn BackendFactory) {
    let s = scope(f, "chroot_seq_root").await;
    ok(s.client.ensure_path("/x").await, "ensure_path /x");
    let x = ok(s.client.with_chroot("/x"), "with_chroot /x");
    let p = ok(
        x.create("/", b"", CreateMode::PersistentSequential).await,
        "sequential create of / in a chroot",
    );
    assert_eq!(
        p, "/0000000000",
        "the node is a child of the chroot, path relative"
    );
    let r = ok(
        x.multi(&[Op::create(
            "/",
            b"".to_vec(),
            CreateMode::PersistentSequential,
        )])
        .await,
        "sequential create of / in a chrooted multi",
    );
    match &r[0] {
        OpResult::Create { path, .. } => assert_eq!(path, "/0000000001"),
        other => panic!("expected a create result, got {other:?}"),
    }
    let (kids, _) = ok(s.client.children("/").await, "children of the base");
    assert_eq!(kids, ["x"], "nothing was created beside the chroot");
    let (kids, _) = ok(x.children("/").await, "children of the chroot");
    assert_eq!(kids, ["0000000000", "0000000001"]);
}
