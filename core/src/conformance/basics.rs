//! Paths, create modes, reads, Stat, versions.

use super::*;
use crate::ErrorKind;

/// Invalid paths are refused with InvalidPath and create nothing.
pub async fn path_rules_enforced(f: &dyn BackendFactory) {
    let s = scope(f, "path_rules").await;
    let b = s.client.backend();
    for bad in ["", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\u{0}b", "/a\u{1}"] {
        let p = if bad.starts_with('/') {
            format!("{}{}", s.base, bad)
        } else {
            bad.to_string()
        };
        assert_err(
            b.create(&p, b"", CreateMode::Persistent).await,
            ErrorKind::InvalidPath,
            &format!("create {p:?}"),
        );
    }
    let (kids, _) = s.client.children("/").await.unwrap_or_else(|e| unexpected(e));
    assert!(kids.is_empty(), "invalid creates left nodes: {kids:?}");
}

/// A persistent node holds its data; its Stat says version 0, not ephemeral, czxid = mzxid.
pub async fn create_persistent_and_read_back(f: &dyn BackendFactory) {
    let s = scope(f, "create_persistent").await;
    let (p, stat) = s
        .client
        .create_with_stat("/a", b"hello", CreateMode::Persistent)
        .await
        .unwrap_or_else(|e| unexpected(e));
    assert_eq!(p, "/a");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.czxid, stat.mzxid);
    let (data, stat2) = s.client.get("/a").await.unwrap_or_else(|e| unexpected(e));
    assert_eq!(data, b"hello");
    assert_eq!(stat, stat2, "Stat from create and from get differ");
}
