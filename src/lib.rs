//! # menagerie
//!
//! Distributed-coordination recipes for async Rust — locks, queues, leader election, service
//! discovery, config watch, least-connections balancing — over a pluggable backend: the embedded
//! native tree (default), Apache ZooKeeper or etcd. Pick the backend with a Cargo feature and a URL:
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `native:` | process-wide in-memory tree (every `native:` connection shares it) | `native` (default) |
//! | `native:NAME` | the process-wide in-memory tree called NAME | `native` |
//! | `native:///path` | durable native store in that directory (the one `menagerie-server` serves) | `native` |
//! | `zk://h1:2181,h2:2181/chroot` | Apache ZooKeeper 3.5+ or menagerie-server | `zookeeper` |
//! | `etcd://h1:2379/prefix` | etcd v3 (3.4+) | `etcd` |
//!
//! Query options: `?session_timeout_ms=N` (every backend) and `&connect_timeout_ms=N` (ZooKeeper).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use menagerie::{connect, CreateMode};
//! let client = connect("native:docs-example").await?;
//! client.create_all("/app/config", b"{}", CreateMode::Persistent).await?;
//! let (data, stat) = client.get("/app/config").await?;
//! assert_eq!((data.as_slice(), stat.version), (&b"{}"[..], 0));
//! # Ok::<_, menagerie::Error>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

pub use menagerie_core::{
    path, sequence, AddWatchMode, Backend, Capabilities, Client, CreateMode, Error, ErrorKind,
    EventType, MultiOpError, OneshotWatch, Op, OpResult, PersistentWatch, Result, RetryPolicy,
    SessionId, SessionState, Stat, StateStream, WatchedEvent, Zxid,
};

/// The core contract crate, re-exported.
pub use menagerie_core as core;
/// The recipes crate, re-exported.
pub use menagerie_recipes as recipes;

/// The embedded native backend, re-exported (feature `native`).
#[cfg(feature = "native")]
pub use menagerie_native as native;

pub use menagerie_core::url::ConnectUrl;

/// Opens a session on the backend named by `url` and returns a [`Client`] for it.
///
/// Schemes whose backend is not compiled in, or not available yet, answer
/// [`Error::Unsupported`] saying which; an unknown scheme is [`Error::BadArguments`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = menagerie::connect("carrier-pigeon://coop").await.unwrap_err();
/// assert_eq!(err.kind(), menagerie::ErrorKind::BadArguments);
/// # });
/// ```
pub async fn connect(url: &str) -> Result<Client> {
    let u = ConnectUrl::parse(url)?;
    match u.scheme.as_str() {
        "native" => connect_native(&u),
        #[cfg(feature = "zookeeper")]
        "zk" | "zookeeper" => menagerie_zookeeper::connect(&u).await,
        #[cfg(not(feature = "zookeeper"))]
        "zk" | "zookeeper" => Err(not_compiled("zookeeper")),
        #[cfg(feature = "etcd")]
        "etcd" => menagerie_etcd::connect(&u).await,
        #[cfg(not(feature = "etcd"))]
        "etcd" => Err(not_compiled("etcd")),
        other => Err(Error::BadArguments {
            reason: format!(
                "unknown backend scheme {other:?} in {url:?}: use native:, zk:// or etcd://"
            ),
        }),
    }
}

#[allow(dead_code)] // unused when every backend is compiled in
fn not_compiled(feature: &str) -> Error {
    Error::unsupported(format!(
        "the {feature} backend is not compiled in: enable menagerie's `{feature}` feature"
    ))
}

#[cfg(feature = "native")]
fn connect_native(u: &ConnectUrl) -> Result<Client> {
    if !u.hosts.is_empty() {
        return Err(Error::BadArguments {
            reason: "native URLs name no host: use native:, native:NAME or native:///path".into(),
        });
    }
    let store = if u.path.starts_with('/') {
        // Durable: the same store menagerie-server serves, opened in-process.
        menagerie_native::shared_durable_store(&u.path).map_err(|e| Error::Backend {
            message: format!("cannot open the durable store at {}: {e}", u.path),
        })?
    } else {
        menagerie_native::shared_store(&u.path)
    };
    let session = match u.session_timeout {
        Some(t) => store.session_with_timeout(t),
        None => store.session(),
    };
    Ok(Client::new(std::sync::Arc::new(session)))
}

#[cfg(not(feature = "native"))]
fn connect_native(_: &ConnectUrl) -> Result<Client> {
    Err(not_compiled("native"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "zookeeper"))]
    #[tokio::test]
    async fn missing_zookeeper_feature_is_a_typed_error() {
        let e = connect("zk://127.0.0.1:2181").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[cfg(not(feature = "etcd"))]
    #[tokio::test]
    async fn missing_etcd_feature_is_a_typed_error() {
        let e = connect("etcd://127.0.0.1:2379/p").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn bad_urls_are_typed_errors() {
        let e = connect("nonsense").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadArguments);
        let e = connect("native:?session_timeout_ms=abc").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadArguments);
    }

    #[cfg(feature = "native")]
    #[tokio::test]
    async fn durable_native_url_opens_one_store_per_directory() {
        let dir = std::env::temp_dir().join(format!("menagerie-facade-{}", std::process::id()));
        let url = format!("native://{}", dir.display());
        let a = connect(&url).await.unwrap();
        a.create("/kept", b"1", CreateMode::Persistent)
            .await
            .unwrap();
        let b = connect(&url).await.unwrap();
        assert_eq!(b.get("/kept").await.unwrap().0, b"1");
        let e = connect("native://somehost/x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadArguments);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "native")]
    #[tokio::test]
    async fn native_connections_share_one_tree() {
        let a = connect("native:facade-test").await.unwrap();
        let b = connect("native:facade-test?session_timeout_ms=2000")
            .await
            .unwrap();
        a.create("/x", b"1", CreateMode::Ephemeral).await.unwrap();
        assert_eq!(b.get("/x").await.unwrap().0, b"1");
        assert_ne!(a.session_id(), b.session_id());
        a.close().await.unwrap();
        assert!(b.exists("/x").await.unwrap().is_none());
    }
}
