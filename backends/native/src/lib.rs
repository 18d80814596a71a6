//! # menagerie-native
//!
//! The embedded backend: an in-memory (or durable) tree with ZooKeeper's exact semantics, shared by
//! any number of sessions in this process — and the server that serves it to ZooKeeper clients.
//!
//! - [`NativeStore`]: one tree (zxids, sessions, watches, container / TTL reaping).
//! - [`NativeSession`]: one client session on it, implementing [`menagerie_core::Backend`].
//! - [`tree::DataTree`]: the tree as a deterministic state machine (transactions in, results and
//!   watch-triggering changes out), which the server puts its log and wire protocol around.
//! - [`shared_store`]: process-wide named stores, behind `native:` URLs;
//!   [`shared_durable_store`] / [`NativeStore::open_durable`]: the durable store of a data
//!   directory (transaction log + snapshots, see [`durable`]), behind `native:///path` URLs.
//! - [`server`]: `menagerie-server`, the same tree served over ZooKeeper's client wire protocol
//!   to any ZooKeeper client (library API and the `menagerie-server` binary).
//!
//! ```
//! use menagerie_core::{Client, CreateMode};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = menagerie_native::NativeStore::new();
//! let client = Client::new(std::sync::Arc::new(store.session()));
//! client.create_all("/services/web/i-1", b"10.0.0.1:80", CreateMode::Ephemeral).await.unwrap();
//! assert_eq!(client.children("/services/web").await.unwrap().0, ["i-1"]);
//! # });
//! ```
#![warn(missing_docs)]

pub mod durable;
mod registry;
pub mod server;
mod session;
mod store;
pub mod tree;
pub mod watches;

#[cfg(feature = "conformance")]
mod factory;

#[cfg(feature = "conformance")]
pub use factory::NativeFactory;
pub use registry::{shared_durable_store, shared_store};
pub use session::NativeSession;
pub use store::{NativeStore, DEFAULT_SESSION_TIMEOUT, EPOCH};
