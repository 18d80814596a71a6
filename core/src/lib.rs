//! # menagerie-core
//!
//! The contract every menagerie backend honours — ZooKeeper's data model with watches as values —
//! and the [`Client`] that recipes are written against.
//!
//! - [`Backend`]: one session on a node tree: create in every [`CreateMode`], get / exists / set /
//!   delete with versions, children, [`multi`](Backend::multi), sync, one-shot watches
//!   ([`OneshotWatch`], a future) and persistent watches ([`PersistentWatch`], a stream), a
//!   connection-state stream ([`StateStream`]).
//! - [`Client`]: a backend plus chroot, retries with backoff and helpers (`ensure_path`,
//!   `create_all`, `delete_all`, `create_protected`).
//! - [`path`], [`sequence`]: ZooKeeper's path rules and overflow-safe sequence ordering.
//! - `conformance` (feature `conformance`): the checks every backend must pass.
//!
//! ```
//! use menagerie_core::{Client, CreateMode, EventType};
//! async fn wait_for_config(client: &Client) -> menagerie_core::Result<Vec<u8>> {
//!     loop {
//!         let (stat, watch) = client.exists_and_watch("/config").await?;
//!         if stat.is_some() {
//!             return Ok(client.get("/config").await?.0);
//!         }
//!         let event = watch.await?;
//!         assert_eq!(event.event_type, EventType::NodeCreated);
//!     }
//! }
//! ```
#![warn(missing_docs)]

pub mod backend;
pub mod client;
pub mod error;
pub mod mode;
pub mod op;
pub mod path;
pub mod sequence;
pub mod session;
pub mod stat;
pub mod url;
pub mod watch;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backend::{Backend, Capabilities, DEFAULT_MAX_DATA_LEN};
pub use client::{Client, RetryPolicy};
pub use error::{Error, ErrorKind, MultiOpError, Result};
pub use mode::CreateMode;
pub use op::{Op, OpResult};
pub use session::{SessionEvents, SessionId, SessionState, StateStream};
pub use stat::{Stat, Zxid};
pub use watch::{
    AddWatchMode, EventType, OneshotWatch, PersistentTrigger, PersistentWatch, WatchTrigger,
    WatchedEvent,
};

/// Re-exported so backends implement [`Backend`] with the same macro.
pub use async_trait::async_trait;
