//! Checks: sequential numbering (the parent's child-create counter) and the ordering helper.

use super::*;
use crate::sequence::{parse_sequence, sort_by_sequence, strip_sequence};

/// Creates `p` sequentially and asserts the created path is `want`.
async fn seq_create(c: &Client, p: &str, mode: CreateMode, want: &str, rule: &str) {
    let got = ok(
        c.create(p, b"", mode).await,
        &format!("sequential create {p}"),
    );
    assert_eq!(got, want, "{rule}");
}

/// In a fresh parent the suffix starts at 0 and counts up: `%010d` of the parent's counter.
pub async fn sequence_starts_at_zero_in_fresh_parent(f: &dyn BackendFactory) {
    let s = scope(f, "seq_from_zero").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    for i in 0..3 {
        let want = format!("/p/n-{}", seq_name("", i));
        seq_create(
            c,
            "/p/n-",
            CreateMode::PersistentSequential,
            &want,
            "the sequence of a fresh parent starts at 0000000000 and counts up by one",
        )
        .await;
    }
    assert_eq!(
        seq_name("n-", 2),
        "n-0000000002",
        "the suffix is 10 digits, zero-padded"
    );
}

/// The suffix is appended to the name exactly as given (digits, dots, unicode included).
pub async fn sequence_suffix_appended_to_name_as_given(f: &dyn BackendFactory) {
    let s = scope(f, "seq_name_as_given").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    for (i, name) in ["x9", "lock-", "a.b_c", "ünï", "-"].into_iter().enumerate() {
        let want = format!("/p/{}", seq_name(name, i as i32));
        seq_create(
            c,
            &format!("/p/{name}"),
            CreateMode::PersistentSequential,
            &want,
            "the suffix is appended to the name as given",
        )
        .await;
    }
}

/// The counter counts every child create of the parent — sequential or not, persistent or
/// ephemeral — and not grandchildren; each parent has its own counter.
pub async fn sequence_counts_every_child_create(f: &dyn BackendFactory) {
    let s = scope(f, "seq_counts_all").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/q", b"").await;
    let rule = "the suffix is the number of earlier child creates of the parent, of any mode";
    mk(c, "/p/plain", b"").await; // 0
    mk_mode(c, "/p/e", b"", CreateMode::Ephemeral).await; // 1
    seq_create(
        c,
        "/p/s-",
        CreateMode::PersistentSequential,
        &format!("/p/{}", seq_name("s-", 2)),
        rule,
    )
    .await;
    seq_create(
        c,
        "/p/es-",
        CreateMode::EphemeralSequential,
        &format!("/p/{}", seq_name("es-", 3)),
        rule,
    )
    .await;
    mk(c, "/p/plain2", b"").await; // 4
    mk(c, "/p/plain/deep", b"").await; // a grandchild: not counted
    seq_create(
        c,
        "/p/s-",
        CreateMode::PersistentSequential,
        &format!("/p/{}", seq_name("s-", 5)),
        rule,
    )
    .await;
    seq_create(
        c,
        "/q/s-",
        CreateMode::EphemeralSequential,
        &format!("/q/{}", seq_name("s-", 0)),
        "each parent has its own counter",
    )
    .await;
}

/// Deletes do not rewind the counter: a number is never reused under the same parent.
pub async fn sequence_not_reused_after_delete(f: &dyn BackendFactory) {
    let s = scope(f, "seq_not_reused").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    for i in 0..3 {
        seq_create(
            c,
            "/p/s-",
            CreateMode::PersistentSequential,
            &format!("/p/{}", seq_name("s-", i)),
            "fresh parent",
        )
        .await;
    }
    ok(
        c.delete(&format!("/p/{}", seq_name("s-", 2)), None).await,
        "delete the newest",
    );
    let rule = "deletes do not change the counter: the next number follows the last one issued";
    seq_create(
        c,
        "/p/s-",
        CreateMode::PersistentSequential,
        &format!("/p/{}", seq_name("s-", 3)),
        rule,
    )
    .await;
    for i in [0, 1, 3] {
        ok(
            c.delete(&format!("/p/{}", seq_name("s-", i)), None).await,
            "delete",
        );
    }
    seq_create(
        c,
        "/p/s-",
        CreateMode::EphemeralSequential,
        &format!("/p/{}", seq_name("s-", 4)),
        rule,
    )
    .await;
}

/// Failed creates do not consume a number.
pub async fn sequence_skips_failed_creates(f: &dyn BackendFactory) {
    let s = scope(f, "seq_failed_creates").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    mk(c, "/p/a", b"").await; // 0
    assert_err(
        c.create("/p/a", b"", CreateMode::Persistent).await,
        ErrorKind::NodeExists,
        "create existing /p/a",
    );
    assert_err(
        c.create("/p/a", b"", CreateMode::Ephemeral).await,
        ErrorKind::NodeExists,
        "create existing /p/a",
    );
    let big = vec![0u8; c.capabilities().max_data_len + 1];
    assert_err(
        c.create("/p/s-", &big, CreateMode::PersistentSequential)
            .await,
        ErrorKind::DataTooLarge,
        "oversized sequential create",
    );
    seq_create(
        c,
        "/p/s-",
        CreateMode::PersistentSequential,
        &format!("/p/{}", seq_name("s-", 1)),
        "only successful child creates count",
    )
    .await;
}

/// A re-created parent starts its counter at 0 again.
pub async fn sequence_restarts_in_recreated_parent(f: &dyn BackendFactory) {
    let s = scope(f, "seq_recreated_parent").await;
    let c = &s.client;
    mk(c, "/p", b"").await;
    for i in 0..2 {
        seq_create(
            c,
            "/p/s-",
            CreateMode::PersistentSequential,
            &format!("/p/{}", seq_name("s-", i)),
            "fresh parent",
        )
        .await;
    }
    ok(c.delete_all("/p").await, "delete_all /p");
    mk(c, "/p", b"").await;
    seq_create(
        c,
        "/p/s-",
        CreateMode::PersistentSequential,
        &format!("/p/{}", seq_name("s-", 0)),
        "the counter belongs to the node: a re-created parent starts at 0",
    )
    .await;
}

/// The sequence helpers order real sequential names by creation, whatever their prefixes.
pub async fn sequence_ordering_helper_on_real_names(f: &dyn BackendFactory) {
    let s = scope(f, "seq_ordering").await;
    let c = &s.client;
    mk(c, "/q", b"").await;
    let prefixes = ["z-", "a-", "m-", "a-", "lock-"];
    let mut created = Vec::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let mode = if i % 2 == 0 {
            CreateMode::EphemeralSequential
        } else {
            CreateMode::PersistentSequential
        };
        let p = ok(
            c.create(&format!("/q/{prefix}"), b"", mode).await,
            "sequential create",
        );
        let name = crate::path::basename(&p).to_string();
        assert_eq!(
            parse_sequence(&name),
            Some(i as i32),
            "parse_sequence of {name}"
        );
        assert_eq!(
            strip_sequence(&name),
            Some(*prefix),
            "strip_sequence of {name}"
        );
        created.push(name);
    }
    let (mut kids, _) = ok(c.children("/q").await, "children /q");
    sort_by_sequence(&mut kids);
    assert_eq!(
        kids, created,
        "sort_by_sequence must restore creation order"
    );
}
