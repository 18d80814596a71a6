//! # menagerie-zookeeper
//!
//! The menagerie core contract on Apache ZooKeeper (standalone or an ensemble), through the
//! [`zookeeper-client`](https://docs.rs/zookeeper-client) crate.
//!
//! - [`connect`]: a [`Client`] for a `zk://h1:2181,h2:2181/chroot?session_timeout_ms=N` URL (what
//!   `menagerie::connect` calls with the `zookeeper` feature).
//! - [`ZkBackend`]: one session, implementing [`menagerie_core::Backend`]: every operation,
//!   one-shot and persistent watches, multi with per-operation results, connection states, and a
//!   new session after an expiry.
//! - [`ZkOptions`]: session / connect / operation timeouts and what to assume about the servers.
//! - `ZkFactory` (feature `conformance`): the conformance kit's factory, whose `expire` really
//!   expires the session on the server.
//!
//! ## What ZooKeeper cannot do as the contract says
//! - Data: a request frame is limited to `jute.maxbuffer` (1,048,575 bytes by default) and the
//!   server drops the connection when a frame is bigger. This backend refuses bigger data itself
//!   with `DataTooLarge`, at [`ZkOptions::max_data_len`] (frame limit − 1 KiB = 1,047,551 bytes by
//!   default), never sending such a frame; `capabilities().max_data_len` says so.
//! - TTL nodes need `-Dzookeeper.extendedTypesEnabled=true` on the servers, containers 3.5.3,
//!   persistent watches 3.6.0; otherwise `capabilities()` says no and those calls answer
//!   `Unsupported`.
//! - ZooKeeper 3.8 keeps one watch mode per path and session (ZOOKEEPER-4466, fixed in 3.9): a
//!   one-shot watch and a persistent watch on the same path of one session interfere.
//! - A persistent watch can miss events that happen while the connection is down
//!   (ZOOKEEPER-4698); the state stream's `Suspended` / `Reconnected` say when to re-read.
//!
//! ```no_run
//! use menagerie_core::url::ConnectUrl;
//! use menagerie_core::CreateMode;
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let url = ConnectUrl::parse("zk://127.0.0.1:2181/my-app?session_timeout_ms=6000")?;
//! let client = menagerie_zookeeper::connect(&url).await?;
//! client.ensure_path("/").await?;
//! let me = client.create("/member-", b"", CreateMode::EphemeralSequential).await?;
//! assert!(me.starts_with("/member-"));
//! # Ok::<_, menagerie_core::Error>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

mod backend;
mod convert;
mod expire;
#[cfg(feature = "conformance")]
mod factory;
mod options;
mod probe;
mod watch;

pub use backend::ZkBackend;
#[cfg(feature = "conformance")]
pub use factory::ZkFactory;
pub use options::{ServerVersion, ZkOptions, DEFAULT_MAX_FRAME_LEN, FRAME_RESERVE};
pub use probe::four_letter_word;

use menagerie_core::url::ConnectUrl;
use menagerie_core::{Client, Error, Result};
use std::sync::Arc;

/// Opens a session on the servers named by a `zk://` (or `zookeeper://`) URL and returns a
/// [`Client`] confined to the URL's path (the chroot; its node is not created).
///
/// The URL's `session_timeout_ms` sets [`ZkOptions::session_timeout`]; everything else takes
/// [`ZkOptions::default`] (use [`connect_with`] for more). Fails with ConnectionLoss when no
/// session could be opened within the connect timeout (15 s), BadArguments for a malformed URL.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let url = menagerie_core::url::ConnectUrl::parse("etcd://127.0.0.1:2379").unwrap();
/// let err = menagerie_zookeeper::connect(&url).await.unwrap_err();
/// assert_eq!(err.kind(), menagerie_core::ErrorKind::BadArguments);
/// # });
/// ```
pub async fn connect(url: &ConnectUrl) -> Result<Client> {
    let mut options = ZkOptions::default();
    if let Some(t) = url.connect_timeout {
        options.connect_timeout = t;
    }
    if let Some(t) = url.session_timeout {
        options.session_timeout = t;
    }
    connect_with(url, options).await
}

/// As [`connect`], with explicit options (the URL's `session_timeout_ms`, when present, wins).
///
/// ```
/// use std::time::Duration;
/// use menagerie_zookeeper::{connect_with, ZkOptions};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // Nothing listens on port 1: the connect gives up after the connect timeout.
/// let url = menagerie_core::url::ConnectUrl::parse("zk://127.0.0.1:1/app").unwrap();
/// let options = ZkOptions::default().with_connect_timeout(Duration::from_millis(300));
/// let err = connect_with(&url, options).await.unwrap_err();
/// assert!(err.is_retryable());
/// # });
/// ```
pub async fn connect_with(url: &ConnectUrl, mut options: ZkOptions) -> Result<Client> {
    if url.scheme != "zk" && url.scheme != "zookeeper" {
        return Err(Error::BadArguments {
            reason: format!(
                "the zookeeper backend takes zk:// URLs, not {}:",
                url.scheme
            ),
        });
    }
    if url.hosts.is_empty() {
        return Err(Error::BadArguments {
            reason: "zk:// URL without hosts (expected zk://host:port[,host:port…][/chroot])"
                .into(),
        });
    }
    if let Some(t) = url.connect_timeout {
        options.connect_timeout = t;
    }
    if let Some(t) = url.session_timeout {
        options.session_timeout = t;
    }
    let chroot = if url.path.is_empty() { "/" } else { &url.path };
    menagerie_core::path::validate_path(chroot, false)?;
    let backend = ZkBackend::connect(&url.hosts.join(","), options).await?;
    Client::new(Arc::new(backend)).with_chroot(chroot)
}
