//! Checks: paths, create modes, reads, Stat, versions, the data limit, sync.

use super::*;

/// Invalid paths are refused with InvalidPath and create nothing, in every create mode.
pub async fn path_rules_enforced(f: &dyn BackendFactory) {
    let s = scope(f, "path_rules").await;
    let b = s.client.backend();
    let invalid_always = [
        "",
        "a",
        "a/b",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a/.",
        "/a/..",
        "/a\u{0}b",
        "/a\u{1}",
        "/a\u{7f}",
        "/a\u{e000}",
        "/a\u{fff5}",
    ];
    for (bad, modes) in [
        (
            &invalid_always[..],
            &[CreateMode::Persistent, CreateMode::Ephemeral][..],
        ),
        (
            &invalid_always[..],
            &[
                CreateMode::PersistentSequential,
                CreateMode::EphemeralSequential,
            ][..],
        ),
        // A trailing '/' is only allowed for sequential creates.
        (
            &["/a/"][..],
            &[CreateMode::Persistent, CreateMode::Ephemeral][..],
        ),
        (
            &["/a//", "/a/./", "/a\u{1}/"][..],
            &[
                CreateMode::PersistentSequential,
                CreateMode::EphemeralSequential,
            ][..],
        ),
    ] {
        for bad in bad {
            for mode in modes {
                let p = if bad.starts_with('/') {
                    format!("{}{}", s.base, bad)
                } else {
                    bad.to_string()
                };
                assert_err(
                    b.create(&p, b"", *mode).await,
                    ErrorKind::InvalidPath,
                    &format!("create {p:?} ({mode:?}) breaks ZooKeeper's path rules"),
                );
            }
        }
    }
    let (kids, _) = ok(s.client.children("/").await, "children of the base");
    assert!(kids.is_empty(), "invalid creates left nodes: {kids:?}");
}

/// A persistent node holds its data; its Stat says version 0, cversion 0, no children, not
/// ephemeral, czxid = mzxid = pzxid.
pub async fn create_persistent_and_read_back(f: &dyn BackendFactory) {
    let s = scope(f, "create_persistent").await;
    let (p, stat) = mk_mode(&s.client, "/a", b"hello", CreateMode::Persistent).await;
    assert_eq!(p, "/a", "create returns the path it created");
    assert_eq!(stat.version, 0, "a new node has version 0");
    assert_eq!(stat.cversion, 0, "a new node has cversion 0");
    assert_eq!(stat.num_children, 0, "a new node has no children");
    assert_eq!(
        stat.ephemeral_owner, 0,
        "a persistent node has ephemeralOwner 0"
    );
    assert_eq!(stat.data_length, 5, "dataLength is the data's length");
    assert_eq!(stat.czxid, stat.mzxid, "a new node has mzxid = czxid");
    assert_eq!(stat.czxid, stat.pzxid, "a new node has pzxid = czxid");
    let (data, stat2) = ok(s.client.get("/a").await, "get /a");
    assert_eq!(data, b"hello", "get returns the data given to create");
    assert_eq!(stat, stat2, "Stat from create and from get differ");
    assert_eq!(
        Some(stat),
        ok(s.client.exists("/a").await, "exists /a"),
        "exists returns the same Stat as get"
    );
}

/// A sequential create may end with '/': the 10-digit counter then is the whole node name.
pub async fn sequential_create_may_end_with_slash(f: &dyn BackendFactory) {
    let s = scope(f, "seq_trailing_slash").await;
    mk(&s.client, "/p", b"").await;
    let b = s.client.backend();
    let (p, _) = ok(
        b.create(
            &format!("{}/p/", s.base),
            b"x",
            CreateMode::PersistentSequential,
        )
        .await,
        "sequential create of <parent>/ on the backend",
    );
    assert_eq!(
        p,
        format!("{}/p/{}", s.base, seq_name("", 0)),
        "sequential create of P/ names the node by its counter alone"
    );
    let p = ok(
        s.client
            .create("/p/", b"", CreateMode::EphemeralSequential)
            .await,
        "ephemeral sequential create of /p/",
    );
    assert_eq!(
        p,
        format!("/p/{}", seq_name("", 1)),
        "sequential create of P/ names the node by its counter alone"
    );
    let (kids, _) = ok(s.client.children("/p").await, "children /p");
    assert_eq!(kids, [seq_name("", 0), seq_name("", 1)]);
}

/// Each create mode yields the right path and owner: persistent modes have ephemeralOwner 0,
/// ephemeral modes the creating session's id; sequential modes append the 10-digit suffix.
pub async fn create_modes_report_path_and_owner(f: &dyn BackendFactory) {
    let s = scope(f, "create_modes").await;
    let c = &s.client;
    assert_eq!(
        c.state(),
        SessionState::Connected,
        "a fresh session is Connected"
    );
    let sid = c.session_id();
    assert_ne!(sid, 0, "a session id is never 0 (0 means 'not ephemeral')");
    mk(c, "/m", b"").await;
    let cases = [
        ("/m/p", CreateMode::Persistent, "/m/p".to_string(), 0),
        (
            "/m/ps-",
            CreateMode::PersistentSequential,
            format!("/m/{}", seq_name("ps-", 1)),
            0,
        ),
        ("/m/e", CreateMode::Ephemeral, "/m/e".to_string(), sid),
        (
            "/m/es-",
            CreateMode::EphemeralSequential,
            format!("/m/{}", seq_name("es-", 3)),
            sid,
        ),
    ];
    for (given, mode, want_path, want_owner) in cases {
        let (p, stat) = mk_mode(c, given, b"d", mode).await;
        assert_eq!(
            p, want_path,
            "{mode:?} create of {given} returns the created path"
        );
        assert_eq!(
            stat.ephemeral_owner, want_owner,
            "{mode:?}: ephemeralOwner is the creator's session id for ephemerals, 0 otherwise"
        );
        assert_eq!(
            stat.is_ephemeral(),
            mode.is_ephemeral(),
            "{mode:?}: is_ephemeral"
        );
        assert_eq!(
            stat_of(c, &p).await,
            stat,
            "{mode:?}: exists returns the Stat create returned"
        );
        assert_eq!(data_of(c, &p).await, b"d", "{mode:?}: data stored");
    }
}

/// Data round-trips byte for byte (all 256 byte values, and empty data with dataLength 0).
pub async fn data_round_trips(f: &dyn BackendFactory) {
    let s = scope(f, "data_round_trips").await;
    let c = &s.client;
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let (_, stat) = mk_mode(c, "/bin", &all, CreateMode::Persistent).await;
    assert_eq!(
        stat.data_length,
        all.len() as i32,
        "dataLength of binary data"
    );
    assert_eq!(
        data_of(c, "/bin").await,
        all,
        "binary data must round-trip unchanged"
    );
    let (_, stat) = mk_mode(c, "/empty", b"", CreateMode::Persistent).await;
    assert_eq!(stat.data_length, 0, "empty data has dataLength 0");
    assert!(
        data_of(c, "/empty").await.is_empty(),
        "empty data reads back empty"
    );
    let stat = ok(c.set("/bin", b"", None).await, "set /bin to empty");
    assert_eq!(stat.data_length, 0, "dataLength after setting empty data");
    assert!(
        data_of(c, "/bin").await.is_empty(),
        "data set to empty reads back empty"
    );
}

/// Reads and writes of a missing node fail with NoNode naming it; exists answers Ok(None).
pub async fn missing_nodes_are_no_node(f: &dyn BackendFactory) {
    let s = scope(f, "missing_nodes").await;
    let c = &s.client;
    for p in ["/nope", "/nope/deeper"] {
        let rule = |op: &str| format!("{op} of missing {p} must fail with NoNode naming it");
        assert_err_path(c.get(p).await, ErrorKind::NoNode, p, &rule("get"));
        assert_err_path(
            c.get_and_watch(p).await,
            ErrorKind::NoNode,
            p,
            &rule("get_and_watch"),
        );
        assert_err_path(
            c.set(p, b"x", None).await,
            ErrorKind::NoNode,
            p,
            &rule("set"),
        );
        assert_err_path(
            c.set(p, b"x", Some(0)).await,
            ErrorKind::NoNode,
            p,
            &rule("versioned set"),
        );
        assert_err_path(
            c.delete(p, None).await,
            ErrorKind::NoNode,
            p,
            &rule("delete"),
        );
        assert_err_path(
            c.delete(p, Some(0)).await,
            ErrorKind::NoNode,
            p,
            &rule("versioned delete"),
        );
        assert_err_path(c.children(p).await, ErrorKind::NoNode, p, &rule("children"));
        assert_err_path(
            c.children_and_watch(p).await,
            ErrorKind::NoNode,
            p,
            &rule("children_and_watch"),
        );
        assert_eq!(
            ok(c.exists(p).await, "exists of a missing node"),
            None,
            "exists of a missing node is Ok(None)"
        );
        let (stat, _watch) = ok(
            c.exists_and_watch(p).await,
            "exists_and_watch of a missing node",
        );
        assert_eq!(stat, None, "exists_and_watch of a missing node is Ok(None)");
    }
}

/// Creating under a missing parent fails with NoNode in every mode and creates nothing.
pub async fn create_under_missing_parent_is_no_node(f: &dyn BackendFactory) {
    let s = scope(f, "missing_parent").await;
    let c = &s.client;
    for (p, mode) in [
        ("/nope/a", CreateMode::Persistent),
        ("/nope/a-", CreateMode::PersistentSequential),
        ("/nope/a", CreateMode::Ephemeral),
        ("/nope/a-", CreateMode::EphemeralSequential),
        ("/nope/", CreateMode::PersistentSequential),
        ("/nope/x/y", CreateMode::Persistent),
    ] {
        assert_err(
            c.create(p, b"", mode).await,
            ErrorKind::NoNode,
            &format!("create {p} ({mode:?}) under a missing parent"),
        );
    }
    let (kids, _) = ok(c.children("/").await, "children of the base");
    assert!(
        kids.is_empty(),
        "failed creates under a missing parent left nodes: {kids:?}"
    );
}

/// Creating an existing node fails with NodeExists naming it and leaves the node unchanged.
pub async fn create_existing_is_node_exists(f: &dyn BackendFactory) {
    let s = scope(f, "node_exists").await;
    let c = &s.client;
    let (_, before) = mk_mode(c, "/a", b"v", CreateMode::Persistent).await;
    let (_, eph) = mk_mode(c, "/e", b"w", CreateMode::Ephemeral).await;
    for mode in [CreateMode::Persistent, CreateMode::Ephemeral] {
        assert_err_path(
            c.create("/a", b"other", mode).await,
            ErrorKind::NodeExists,
            "/a",
            &format!("create of existing /a ({mode:?})"),
        );
        assert_err_path(
            c.create("/e", b"other", mode).await,
            ErrorKind::NodeExists,
            "/e",
            &format!("create of existing ephemeral /e ({mode:?})"),
        );
    }
    assert_eq!(
        ok(c.get("/a").await, "get /a"),
        (b"v".to_vec(), before),
        "a refused create must not change the node"
    );
    assert_eq!(
        ok(c.get("/e").await, "get /e"),
        (b"w".to_vec(), eph),
        "a refused create must not change the node"
    );
}

/// Nothing can be created under an ephemeral node (NoChildrenForEphemerals, in every mode).
pub async fn no_children_for_ephemerals(f: &dyn BackendFactory) {
    let s = scope(f, "no_children_for_ephemerals").await;
    let c = &s.client;
    mk_mode(c, "/e", b"", CreateMode::Ephemeral).await;
    let (es, _) = mk_mode(c, "/es-", b"", CreateMode::EphemeralSequential).await;
    for parent in ["/e", es.as_str()] {
        for (name, mode) in [
            ("c", CreateMode::Persistent),
            ("c-", CreateMode::PersistentSequential),
            ("c", CreateMode::Ephemeral),
            ("c-", CreateMode::EphemeralSequential),
            ("", CreateMode::PersistentSequential),
        ] {
            let p = format!("{parent}/{name}");
            assert_err(
                c.create(&p, b"", mode).await,
                ErrorKind::NoChildrenForEphemerals,
                &format!("create {p} ({mode:?}) under an ephemeral"),
            );
        }
        let stat = stat_of(c, parent).await;
        assert_eq!(
            (stat.num_children, stat.cversion),
            (0, 0),
            "refused children must leave the ephemeral {parent} childless"
        );
    }
}

/// children lists the direct children's names, sorted, and the parent's Stat.
pub async fn children_are_listed_sorted(f: &dyn BackendFactory) {
    let s = scope(f, "children_sorted").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/p/b", b"").await;
    mk(c, "/p/a", b"").await;
    mk_mode(c, "/p/c", b"", CreateMode::Ephemeral).await;
    mk(c, "/p/a/deep", b"").await;
    mk(c, "/pa", b"").await;
    let (kids, stat) = ok(c.children("/p").await, "children /p");
    assert_eq!(
        kids,
        ["a", "b", "c"],
        "children: direct children's names (ephemerals included), sorted"
    );
    assert_eq!(
        stat.num_children, 3,
        "numChildren counts the direct children"
    );
    assert_eq!(
        stat,
        stat_of(c, "/p").await,
        "children returns the parent's Stat"
    );
    let (kids, _) = ok(c.children("/p/b").await, "children /p/b");
    assert!(kids.is_empty(), "a leaf has no children, got {kids:?}");
}

/// set bumps version by one (even with the same data) and moves mzxid; czxid, ctime, cversion,
/// pzxid, numChildren and ephemeralOwner stay; set returns the Stat get then reports.
pub async fn set_updates_stat(f: &dyn BackendFactory) {
    let s = scope(f, "set_updates_stat").await;
    let c = &s.client;
    for (p, mode) in [
        ("/a", CreateMode::Persistent),
        ("/e", CreateMode::Ephemeral),
    ] {
        let (_, mut prev) = mk_mode(c, p, b"x", mode).await;
        for (i, data) in [&b"hello"[..], b"", b"", b"hello"].into_iter().enumerate() {
            let st = ok(c.set(p, data, None).await, "set");
            let rule = format!("{p} after set #{}", i + 1);
            assert_eq!(
                st.version,
                prev.version + 1,
                "{rule}: version grows by one per set"
            );
            assert!(
                st.mzxid > prev.mzxid,
                "{rule}: mzxid must move forward ({} -> {})",
                prev.mzxid,
                st.mzxid
            );
            assert_eq!(st.data_length, data.len() as i32, "{rule}: dataLength");
            assert_eq!(
                (st.czxid, st.ctime, st.cversion, st.pzxid, st.num_children, st.ephemeral_owner),
                (prev.czxid, prev.ctime, prev.cversion, prev.pzxid, prev.num_children, prev.ephemeral_owner),
                "{rule}: czxid, ctime, cversion, pzxid, numChildren, ephemeralOwner must not change"
            );
            assert_eq!(
                ok(c.get(p).await, "get"),
                (data.to_vec(), st),
                "{rule}: get returns the new data and the Stat set returned"
            );
            prev = st;
        }
    }
}

/// A versioned set applies only at the node's current version; otherwise BadVersion, no change.
pub async fn versioned_set_checks_version(f: &dyn BackendFactory) {
    let s = scope(f, "versioned_set").await;
    let c = &s.client;
    mk(c, "/a", b"v0").await;
    assert_err_path(
        c.set("/a", b"no", Some(1)).await,
        ErrorKind::BadVersion,
        "/a",
        "set at version 1 of a version-0 node",
    );
    let (data, stat) = ok(c.get("/a").await, "get /a");
    assert_eq!(
        (data.as_slice(), stat.version),
        (&b"v0"[..], 0),
        "a refused set must change nothing"
    );
    assert_eq!(
        ok(
            c.set("/a", b"v1", Some(0)).await,
            "set at the current version"
        )
        .version,
        1
    );
    assert_err(
        c.set("/a", b"no", Some(0)).await,
        ErrorKind::BadVersion,
        "set at a stale version",
    );
    assert_eq!(
        ok(
            c.set("/a", b"v2", Some(1)).await,
            "set at the current version"
        )
        .version,
        2
    );
    assert_eq!(data_of(c, "/a").await, b"v2");
}

/// A versioned delete applies only at the node's current version; otherwise BadVersion, node kept.
pub async fn versioned_delete_checks_version(f: &dyn BackendFactory) {
    let s = scope(f, "versioned_delete").await;
    let c = &s.client;
    mk(c, "/a", b"").await;
    ok(c.set("/a", b"x", None).await, "set /a");
    for wrong in [0, 2] {
        assert_err_path(
            c.delete("/a", Some(wrong)).await,
            ErrorKind::BadVersion,
            "/a",
            &format!("delete at version {wrong} of a version-1 node"),
        );
        assert!(
            ok(c.exists("/a").await, "exists").is_some(),
            "a refused delete must keep the node"
        );
    }
    ok(
        c.delete("/a", Some(1)).await,
        "delete at the current version",
    );
    assert_absent(c, "/a", "delete at the current version removes the node").await;
}

/// A node with children cannot be deleted (NotEmpty naming it), whatever kind its children are.
pub async fn delete_with_children_is_not_empty(f: &dyn BackendFactory) {
    let s = scope(f, "not_empty").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/p/c", b"").await;
    mk_mode(c, "/p/e", b"", CreateMode::Ephemeral).await;
    assert_err_path(
        c.delete("/p", None).await,
        ErrorKind::NotEmpty,
        "/p",
        "delete of a node with children",
    );
    assert_eq!(
        ok(c.children("/p").await, "children").0,
        ["c", "e"],
        "a refused delete must keep the children"
    );
    ok(c.delete("/p/c", None).await, "delete /p/c");
    assert_err_path(
        c.delete("/p", Some(0)).await,
        ErrorKind::NotEmpty,
        "/p",
        "delete of a node with an ephemeral child",
    );
    ok(c.delete("/p/e", None).await, "delete /p/e");
    ok(
        c.delete("/p", Some(0)).await,
        "delete of a node whose children are gone",
    );
    assert_absent(c, "/p", "delete of an empty node").await;
}

/// delete checks the version before emptiness: a non-empty node with a wrong version gives BadVersion.
pub async fn delete_checks_version_before_emptiness(f: &dyn BackendFactory) {
    let s = scope(f, "delete_version_first").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/p/c", b"").await;
    assert_err(
        c.delete("/p", Some(7)).await,
        ErrorKind::BadVersion,
        "delete of a non-empty node at a wrong version (ZooKeeper checks the version first)",
    );
    assert_err(
        c.delete("/p", Some(0)).await,
        ErrorKind::NotEmpty,
        "delete of a non-empty node at its version",
    );
    assert!(ok(c.exists("/p/c").await, "exists").is_some());
}

/// A parent's Stat tracks its children: cversion = child creates + deletes, numChildren, pzxid =
/// zxid of the last child create/delete; its version, mzxid and data are untouched; a child's
/// data change or a grandchild's creation changes none of it.
pub async fn parent_stat_tracks_children(f: &dyn BackendFactory) {
    let s = scope(f, "parent_stat").await;
    let c = &s.client;
    let (_, p0) = mk_mode(c, "/p", b"pd", CreateMode::Persistent).await;
    let (_, a) = mk_mode(c, "/p/a", b"", CreateMode::Persistent).await;
    let s1 = stat_of(c, "/p").await;
    assert_eq!(
        (s1.cversion, s1.num_children),
        (1, 1),
        "after one child create: cversion 1, numChildren 1"
    );
    assert_eq!(s1.pzxid, a.czxid, "pzxid is the zxid of the child create");
    assert_eq!(
        (s1.version, s1.mzxid, s1.czxid),
        (p0.version, p0.mzxid, p0.czxid),
        "a child create must not change the parent's version, mzxid, czxid"
    );
    let (_, b) = mk_mode(c, "/p/b", b"", CreateMode::Ephemeral).await;
    let s2 = stat_of(c, "/p").await;
    assert_eq!(
        (s2.cversion, s2.num_children, s2.pzxid),
        (2, 2, b.czxid),
        "after a second child create"
    );
    ok(c.delete("/p/a", None).await, "delete /p/a");
    let s3 = stat_of(c, "/p").await;
    assert_eq!(
        (s3.cversion, s3.num_children),
        (3, 1),
        "cversion counts child deletes too; numChildren drops"
    );
    assert!(
        s3.pzxid > s2.pzxid,
        "pzxid must move on child delete ({} -> {})",
        s2.pzxid,
        s3.pzxid
    );
    assert_eq!(
        (s3.version, s3.mzxid),
        (p0.version, p0.mzxid),
        "a child delete must not change the parent's version or mzxid"
    );
    let (_, probe) = mk_mode(c, "/probe", b"", CreateMode::Persistent).await;
    assert!(
        s3.pzxid < probe.czxid,
        "pzxid after a child delete is that delete's zxid, before any later write"
    );
    ok(c.set("/p/b", b"changed", None).await, "set /p/b");
    mk(c, "/p/q", b"").await;
    let s4 = stat_of(c, "/p").await;
    mk(c, "/p/q/deep", b"").await;
    let s5 = stat_of(c, "/p").await;
    assert_eq!(
        s4, s5,
        "a grandchild create must not change the grandparent's Stat"
    );
    assert_eq!(
        (s5.cversion, s5.num_children),
        (4, 2),
        "a child's data change is not a child change"
    );
    assert_eq!(
        data_of(c, "/p").await,
        b"pd",
        "child changes must not touch the parent's data"
    );
    assert_eq!(
        ok(c.children("/p").await, "children /p").1,
        s5,
        "children returns the parent's Stat"
    );
}

/// zxids strictly increase across successive writes, whoever makes them (creates, sets, deletes,
/// multis, other sessions).
pub async fn zxids_increase_across_writes(f: &dyn BackendFactory) {
    let s = scope(f, "zxid_order").await;
    let c = &s.client;
    let other = s.other_client().await;
    let mut zxids = Vec::new();
    zxids.push((
        "create /a",
        mk_mode(c, "/a", b"", CreateMode::Persistent).await.1.czxid,
    ));
    zxids.push(("set /a", ok(c.set("/a", b"x", None).await, "set /a").mzxid));
    zxids.push((
        "create /b",
        mk_mode(c, "/b", b"", CreateMode::Ephemeral).await.1.czxid,
    ));
    zxids.push((
        "create /c by another session",
        mk_mode(&other, "/c", b"", CreateMode::Persistent)
            .await
            .1
            .czxid,
    ));
    catch_up(&other).await;
    zxids.push((
        "set /c by another session",
        ok(other.set("/c", b"y", None).await, "set /c").mzxid,
    ));
    catch_up(c).await;
    let multi = ok(
        c.multi(&[Op::create("/d", b"".to_vec(), CreateMode::Persistent)])
            .await,
        "multi",
    );
    match &multi[..] {
        [OpResult::Create { stat, .. }] => zxids.push(("multi create /d", stat.czxid)),
        other => panic!("multi of one create returned {other:?}"),
    }
    ok(c.delete("/a", None).await, "delete /a");
    zxids.push(("delete /a (base pzxid)", stat_of(c, "/").await.pzxid));
    zxids.push((
        "create /e",
        mk_mode(c, "/e", b"", CreateMode::PersistentSequential)
            .await
            .1
            .czxid,
    ));
    for w in zxids.windows(2) {
        assert!(
            w[0].1 < w[1].1,
            "zxids must strictly increase across successive writes: {} ({}) then {} ({})",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
}

/// ctime and mtime are wall-clock milliseconds: equal at creation, ctime kept and mtime not going
/// back on set.
pub async fn stat_times_are_wall_clock_millis(f: &dyn BackendFactory) {
    let s = scope(f, "stat_times").await;
    let c = &s.client;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (_, st) = mk_mode(c, "/a", b"", CreateMode::Persistent).await;
    let day = 24 * 3600 * 1000;
    assert!(
        (st.ctime - now).abs() < day,
        "ctime is milliseconds since the Unix epoch: got {} (now {now})",
        st.ctime
    );
    assert_eq!(st.mtime, st.ctime, "mtime = ctime at creation");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let st2 = ok(c.set("/a", b"x", None).await, "set /a");
    assert_eq!(st2.ctime, st.ctime, "set must not change ctime");
    assert!(
        st2.mtime >= st.mtime,
        "mtime must not go back on set ({} -> {})",
        st.mtime,
        st2.mtime
    );
}

/// Data of exactly capabilities().max_data_len bytes is accepted; one byte more fails with
/// DataTooLarge and changes nothing.
pub async fn data_limit_enforced(f: &dyn BackendFactory) {
    let s = scope(f, "data_limit").await;
    let c = &s.client;
    let max = c.capabilities().max_data_len;
    let at_limit = vec![7u8; max];
    let over = vec![9u8; max + 1];
    let (_, st) = mk_mode(c, "/big", &at_limit, CreateMode::Persistent).await;
    assert_eq!(
        st.data_length as usize, max,
        "dataLength of data at the limit"
    );
    assert_eq!(
        data_of(c, "/big").await.len(),
        max,
        "data at the limit reads back whole"
    );
    assert_err(
        c.create("/over", &over, CreateMode::Persistent).await,
        ErrorKind::DataTooLarge,
        "create with max_data_len + 1 bytes",
    );
    assert_absent(c, "/over", "a create refused for its size creates nothing").await;
    assert_err(
        c.set("/big", &over, None).await,
        ErrorKind::DataTooLarge,
        "set with max_data_len + 1 bytes",
    );
    let (data, st2) = ok(c.get("/big").await, "get /big");
    assert_eq!(
        (data.len(), st2),
        (max, st),
        "a set refused for its size changes nothing"
    );
    ok(
        c.set("/big", &at_limit, Some(0)).await,
        "set with max_data_len bytes",
    );
}

/// After sync, a session reads every write committed before it, including other sessions' writes.
pub async fn sync_makes_other_sessions_writes_visible(f: &dyn BackendFactory) {
    let s = scope(f, "sync").await;
    let c = &s.client;
    let other = s.other_client().await;
    mk(&other, "/a", b"v1").await;
    ok(c.sync("/").await, "sync /");
    assert_eq!(
        data_of(c, "/a").await,
        b"v1",
        "after sync, another session's create is visible"
    );
    ok(other.set("/a", b"v2", None).await, "set /a");
    ok(c.sync("/a").await, "sync /a");
    assert_eq!(
        data_of(c, "/a").await,
        b"v2",
        "after sync, another session's set is visible"
    );
}
