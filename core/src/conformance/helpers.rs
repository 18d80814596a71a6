//! Checks: the [`Client`] helpers — ensure_path, create_all, delete_all, create_protected.

use super::*;
use crate::path::basename;
use crate::sequence::parse_sequence;

/// ensure_path creates the node and every missing ancestor (persistent, empty), is idempotent and
/// leaves existing nodes untouched.
pub async fn ensure_path_creates_ancestors(f: &dyn BackendFactory) {
    let s = scope(f, "ensure_path").await;
    let c = &s.client;
    ok(c.ensure_path("/a/b/c").await, "ensure_path /a/b/c");
    for p in ["/a", "/a/b", "/a/b/c"] {
        let (data, stat) = ok(c.get(p).await, "get");
        assert!(
            data.is_empty() && stat.ephemeral_owner == 0,
            "ensure_path creates {p} persistent and empty"
        );
    }
    ok(c.ensure_path("/a/b/c").await, "ensure_path is idempotent");
    ok(c.ensure_path("/").await, "ensure_path of the root");
    mk(c, "/x", b"keep").await;
    ok(
        c.ensure_path("/x/y").await,
        "ensure_path below an existing node",
    );
    assert_eq!(
        ok(c.get("/x").await, "get").0,
        b"keep",
        "ensure_path leaves existing nodes untouched"
    );
    assert!(ok(c.exists("/x/y").await, "exists").is_some());
}

/// create_all creates missing parents (persistent, empty) and then the node in its mode, sequential
/// modes included; an existing node still gives NodeExists.
pub async fn create_all_creates_parents(f: &dyn BackendFactory) {
    let s = scope(f, "create_all").await;
    let c = &s.client;
    assert_eq!(
        ok(
            c.create_all("/a/b/c", b"leaf", CreateMode::Persistent)
                .await,
            "create_all"
        ),
        "/a/b/c"
    );
    assert_eq!(
        data_of(c, "/a/b/c").await,
        b"leaf",
        "create_all gives the leaf its data"
    );
    for p in ["/a", "/a/b"] {
        let (data, stat) = ok(c.get(p).await, "get");
        assert!(
            data.is_empty() && stat.ephemeral_owner == 0,
            "create_all creates parent {p} persistent and empty"
        );
    }
    let e = ok(
        c.create_all("/q/r/e-", b"", CreateMode::EphemeralSequential)
            .await,
        "create_all sequential",
    );
    assert_eq!(
        e,
        format!("/q/r/{}", seq_name("e-", 0)),
        "create_all returns the sequential path"
    );
    assert_eq!(
        stat_of(c, &e).await.ephemeral_owner,
        c.session_id(),
        "create_all creates the leaf in the given mode"
    );
    let t = ok(
        c.create_all("/t/", b"", CreateMode::PersistentSequential)
            .await,
        "create_all of P/",
    );
    assert_eq!(
        t,
        format!("/t/{}", seq_name("", 0)),
        "create_all of a sequential P/ creates P then P/<counter>"
    );
    assert_err_path(
        c.create_all("/a/b/c", b"", CreateMode::Persistent).await,
        ErrorKind::NodeExists,
        "/a/b/c",
        "create_all of an existing node",
    );
}

/// delete_all deletes a node and its whole subtree (ephemerals included), leaves prefix-sharing
/// siblings alone, and treats a missing node as done.
pub async fn delete_all_removes_subtree(f: &dyn BackendFactory) {
    let s = scope(f, "delete_all").await;
    let c = &s.client;
    ok(c.ensure_path("/t/a/b/c").await, "ensure_path");
    mk(c, "/t/a/x", b"").await;
    mk_mode(c, "/t/e", b"", CreateMode::Ephemeral).await;
    mk_mode(c, "/t/a/s-", b"", CreateMode::PersistentSequential).await;
    ok(c.ensure_path("/t2/k").await, "ensure_path");
    ok(c.delete_all("/t").await, "delete_all /t");
    assert_absent(c, "/t", "delete_all removes the node").await;
    assert!(
        ok(c.exists("/t2/k").await, "exists").is_some(),
        "delete_all must not touch a sibling sharing the name as a prefix"
    );
    ok(
        c.delete_all("/t").await,
        "delete_all of a missing node is fine",
    );
    ok(c.delete_all("/t2/k").await, "delete_all of a leaf");
    assert_absent(c, "/t2/k", "delete_all of a leaf removes it").await;
}

/// Checks a protected name `_c_<uuid>-<name><%010d>` and returns its sequence number.
fn protected_sequence(name: &str, given: &str) -> i32 {
    let bad = |why: &str| -> ! {
        panic!("protected name {name:?} must be _c_<uuid>-{given}<10 digits>: {why}")
    };
    let rest = name
        .strip_prefix("_c_")
        .unwrap_or_else(|| bad("no _c_ prefix"));
    if rest.len() < 37 || !rest.is_char_boundary(36) {
        bad("too short");
    }
    let (uuid, tail) = rest.split_at(36);
    let uuid_ok = uuid.char_indices().all(|(i, ch)| {
        if [8, 13, 18, 23].contains(&i) {
            ch == '-'
        } else {
            ch.is_ascii_hexdigit()
        }
    });
    if !uuid_ok {
        bad("not a hyphenated uuid");
    }
    let seq_part = tail
        .strip_prefix('-')
        .and_then(|t| t.strip_prefix(given))
        .unwrap_or_else(|| bad("the uuid is not followed by '-' and the name"));
    if seq_part.len() != 10 {
        bad("the sequence suffix is not 10 characters");
    }
    parse_sequence(seq_part).unwrap_or_else(|| bad("no numeric sequence suffix"))
}

/// create_protected names the node `_c_<uuid>-<name><%010d>` under the parent, in the given mode,
/// with a fresh uuid each time; a missing parent gives NoNode.
pub async fn create_protected_name_format(f: &dyn BackendFactory) {
    let s = scope(f, "create_protected").await;
    let c = &s.client;
    mk(c, "/locks", b"").await;
    let p1 = ok(
        c.create_protected("/locks", "lock-", b"d", CreateMode::EphemeralSequential)
            .await,
        "create_protected",
    );
    let p2 = ok(
        c.create_protected("/locks", "lock-", b"", CreateMode::PersistentSequential)
            .await,
        "create_protected",
    );
    for p in [&p1, &p2] {
        assert!(
            p.starts_with("/locks/_c_"),
            "create_protected creates under the parent: {p}"
        );
    }
    let (n1, n2) = (basename(&p1), basename(&p2));
    assert_eq!(
        (
            protected_sequence(n1, "lock-"),
            protected_sequence(n2, "lock-")
        ),
        (0, 1),
        "protected names carry the parent's counter"
    );
    assert_ne!(n1[..40], n2[..40], "each protected create has its own uuid");
    let (data, stat) = ok(c.get(&p1).await, "get");
    assert_eq!(
        (data.as_slice(), stat.ephemeral_owner),
        (&b"d"[..], c.session_id()),
        "create_protected creates in the given mode, with the data"
    );
    assert_eq!(stat_of(c, &p2).await.ephemeral_owner, 0);
    assert_err(
        c.create_protected("/missing", "x-", b"", CreateMode::EphemeralSequential)
            .await,
        ErrorKind::NoNode,
        "create_protected under a missing parent",
    );
}
