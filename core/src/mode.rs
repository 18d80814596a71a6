//! How a node is created: [`CreateMode`].

use std::time::Duration;

/// The kind of node to create.
///
/// The four modes of ZooKeeper's original model are always available; `Container` and the TTL modes
/// exist where the backend says so in [`Capabilities`](crate::Capabilities) (otherwise creating one
/// returns [`Error::Unsupported`](crate::Error::Unsupported)).
///
/// ```
/// use menagerie_core::CreateMode;
/// assert!(CreateMode::EphemeralSequential.is_sequential());
/// assert!(CreateMode::EphemeralSequential.is_ephemeral());
/// assert!(!CreateMode::Persistent.is_sequential());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CreateMode {
    /// Lives until deleted.
    #[default]
    Persistent,
    /// Lives until deleted; the name gets a 10-digit counter from the parent.
    PersistentSequential,
    /// Deleted when the creating session ends.
    Ephemeral,
    /// Deleted when the creating session ends; the name gets a 10-digit counter.
    EphemeralSequential,
    /// Deleted by the server once it has had children and has none left.
    Container,
    /// Persistent, deleted by the server when it has no children and was not modified for the TTL.
    PersistentWithTtl(Duration),
    /// As `PersistentWithTtl`, with a sequential suffix.
    PersistentSequentialWithTtl(Duration),
}

impl CreateMode {
    /// True when the created name gets a sequential suffix.
    pub fn is_sequential(&self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl(_)
        )
    }
    /// True when the node dies with its session.
    pub fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
    /// True for container nodes.
    pub fn is_container(&self) -> bool {
        matches!(self, CreateMode::Container)
    }
    /// The TTL, for the TTL modes.
    pub fn ttl(&self) -> Option<Duration> {
        match self {
            CreateMode::PersistentWithTtl(t) | CreateMode::PersistentSequentialWithTtl(t) => {
                Some(*t)
            }
            _ => None,
        }
    }
    /// ZooKeeper's wire flag for this mode (0..=6).
    ///
    /// ```
    /// use menagerie_core::CreateMode;
    /// assert_eq!(CreateMode::EphemeralSequential.flag(), 3);
    /// ```
    pub fn flag(&self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl(_) => 5,
            CreateMode::PersistentSequentialWithTtl(_) => 6,
        }
    }
}
