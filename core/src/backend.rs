//! The [`Backend`] trait: the one contract every backend implements.

use crate::error::Result;
use crate::mode::CreateMode;
use crate::op::{Op, OpResult};
use crate::session::{SessionId, SessionState, StateStream};
use crate::stat::Stat;
use crate::watch::{AddWatchMode, OneshotWatch, PersistentWatch};
use async_trait::async_trait;

/// The largest node data ZooKeeper accepts by default (1 MiB).
pub const DEFAULT_MAX_DATA_LEN: usize = 1024 * 1024;

/// What a backend can do beyond the always-available core.
///
/// ```
/// use menagerie_core::Capabilities;
/// let c = Capabilities::default();
/// assert!(!c.ttl);
/// assert_eq!(c.max_data_len, 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Container nodes (deleted once their last child goes).
    pub container: bool,
    /// TTL nodes.
    pub ttl: bool,
    /// Persistent and persistent-recursive watches.
    pub persistent_watches: bool,
    /// The largest data a node can hold, in bytes.
    pub max_data_len: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            container: false,
            ttl: false,
            persistent_watches: false,
            max_data_len: DEFAULT_MAX_DATA_LEN,
        }
    }
}

/// One session on a coordination backend: the ZooKeeper data model, watches as values, and a
/// connection-state stream.
///
/// A handle has one current session. When that session expires the handle reports
/// [`SessionState::Expired`], opens a new session (with a new [`session_id`](Backend::session_id)) and
/// reports [`SessionState::Connected`]; the old session's ephemerals and watches are gone. Every rule
/// here is pinned by the conformance kit (`menagerie_core::conformance`).
///
/// Paths are absolute ZooKeeper paths; versions are `None` for "any version".
///
/// ```
/// use menagerie_core::{Backend, CreateMode};
/// async fn demo(b: &dyn Backend) -> menagerie_core::Result<()> {
///     let (path, _stat) = b.create("/app", b"v1", CreateMode::Persistent).await?;
///     let (data, stat) = b.get(&path).await?;
///     assert_eq!(data, b"v1");
///     b.set(&path, b"v2", Some(stat.version)).await?;
///     b.delete(&path, None).await
/// }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The current session's id (owner of the ephemerals this handle creates).
    fn session_id(&self) -> SessionId;

    /// The current connection state.
    fn state(&self) -> SessionState;

    /// A stream of connection-state changes from now on.
    fn state_stream(&self) -> StateStream;

    /// What this backend supports beyond the core.
    fn capabilities(&self) -> Capabilities;

    /// Creates a node; returns its actual path (with the sequential suffix) and Stat.
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat)>;

    /// Reads a node's data and Stat.
    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)>;

    /// Reads a node and leaves a one-shot data watch (fires on set or delete). No watch is left
    /// when the node does not exist.
    async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)>;

    /// The node's Stat, or `None` when it does not exist.
    async fn exists(&self, path: &str) -> Result<Option<Stat>>;

    /// As `exists`, leaving a one-shot watch that fires on create, set or delete — also when the
    /// node does not exist yet.
    async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)>;

    /// Sets a node's data (only at `version`, if given); returns the new Stat.
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat>;

    /// Deletes a node (only at `version`, if given). Fails with NotEmpty if it has children.
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<()>;

    /// The names of a node's children (sorted) and the node's Stat.
    async fn children(&self, path: &str) -> Result<(Vec<String>, Stat)>;

    /// As `children`, leaving a one-shot child watch (fires when a child is created or deleted, or
    /// the node is deleted; not when a child's data changes).
    async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneshotWatch)>;

    /// Applies all operations atomically, or none (then [`Error::MultiFailed`](crate::Error::MultiFailed)
    /// with one result per operation).
    async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>>;

    /// Waits until this session has seen every write committed before the call.
    async fn sync(&self, path: &str) -> Result<()>;

    /// A persistent (optionally recursive) watch at `path`, as a stream; Unsupported where the
    /// backend has none (see [`Capabilities::persistent_watches`]).
    async fn watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch>;

    /// Closes the session: its ephemerals are deleted, its watches end with `Closed`, the state
    /// stream reports `Closed`. Later calls fail with `Closed`.
    async fn close(&self) -> Result<()>;
}
