//! Checks: capability-gated create modes (containers, TTL). Persistent watches are gated in each
//! watch check (see [`persistent_watch`](super::persistent_watch)).

use super::*;

/// With `container`: a container node (ephemeralOwner 0) survives while it has a child and is
/// reaped once its last child is deleted. Without: creating one is Unsupported and creates nothing.
pub async fn container_reaped_after_last_child(f: &dyn BackendFactory) {
    let s = scope(f, "container").await;
    let c = &s.client;
    if !c.capabilities().container {
        assert_err(
            c.create("/c", b"", CreateMode::Container).await,
            ErrorKind::Unsupported,
            "capabilities().container is false, so creating a container must answer Unsupported",
        );
        assert_absent(c, "/c", "an unsupported create creates nothing").await;
        return;
    }
    let (p, stat) = mk_mode(c, "/c", b"", CreateMode::Container).await;
    assert_eq!(
        (p.as_str(), stat.ephemeral_owner),
        ("/c", 0),
        "a container is created at its path and has ephemeralOwner 0"
    );
    mk(c, "/c/a", b"").await;
    mk_mode(c, "/c/b", b"", CreateMode::Ephemeral).await;
    ok(c.delete("/c/a", None).await, "delete /c/a");
    tokio::time::sleep(QUIET).await;
    assert!(
        ok(c.exists("/c").await, "exists").is_some(),
        "a container with a child left must not be reaped"
    );
    ok(c.delete("/c/b", None).await, "delete /c/b");
    wait_absent(
        c,
        "/c",
        "a container must be reaped once its last child is deleted",
    )
    .await;
}

/// With `ttl`: a childless, unmodified TTL node (sequential too) disappears after its TTL.
/// Without: creating one is Unsupported and creates nothing.
pub async fn ttl_node_expires(f: &dyn BackendFactory) {
    let s = scope(f, "ttl").await;
    let c = &s.client;
    let ttl = Duration::from_millis(500);
    let modes = [
        CreateMode::PersistentWithTtl(ttl),
        CreateMode::PersistentSequentialWithTtl(ttl),
    ];
    if !c.capabilities().ttl {
        for mode in modes {
            assert_err(
                c.create("/t", b"", mode).await,
                ErrorKind::Unsupported,
                &format!("capabilities().ttl is false, so creating a {mode:?} node must answer Unsupported"),
            );
        }
        let (kids, _) = ok(c.children("/").await, "children");
        assert!(
            kids.is_empty(),
            "an unsupported create creates nothing: {kids:?}"
        );
        return;
    }
    let (plain, _) = mk_mode(c, "/t", b"", modes[0]).await;
    let (seq, _) = mk_mode(c, "/ts-", b"", modes[1]).await;
    assert_eq!(plain, "/t");
    assert_eq!(
        seq,
        format!("/{}", seq_name("ts-", 1)),
        "a sequential TTL node gets the suffix"
    );
    wait_absent(
        c,
        &plain,
        "a childless, unmodified TTL node disappears after its TTL",
    )
    .await;
    wait_absent(
        c,
        &seq,
        "a childless, unmodified TTL node disappears after its TTL",
    )
    .await;
}
