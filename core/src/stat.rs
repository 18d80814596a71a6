//! Node metadata ([`Stat`]) and zxids.

/// A ZooKeeper transaction id: `epoch << 32 | counter`. Totally ordered per backend; usable as a
/// fencing token.
///
/// ```
/// use menagerie_core::Zxid;
/// let z = Zxid::new(1, 7);
/// assert_eq!(z.epoch(), 1);
/// assert_eq!(z.counter(), 7);
/// assert!(Zxid::new(2, 0) > Zxid::new(1, u32::MAX));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// Builds a zxid from an epoch and a counter.
    pub fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid(((epoch as i64) << 32) | counter as i64)
    }
    /// The epoch (high 32 bits).
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// The counter (low 32 bits).
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for Zxid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// Metadata of a node, with every field ZooKeeper reports.
///
/// ```
/// use menagerie_core::Stat;
/// let s = Stat::default();
/// assert_eq!(s.version, 0);
/// assert!(!s.is_ephemeral());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Stat {
    /// zxid of the change that created the node.
    pub czxid: i64,
    /// zxid of the change that last modified the node's data.
    pub mzxid: i64,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: i64,
    /// Last data modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// Number of changes to the data.
    pub version: i32,
    /// Number of changes to the children (creates + deletes).
    pub cversion: i32,
    /// Number of changes to the ACL.
    pub aversion: i32,
    /// Session id of the owner of an ephemeral node, 0 otherwise.
    pub ephemeral_owner: i64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the change that last created or deleted a child of this node.
    pub pzxid: i64,
}

impl Stat {
    /// True for ephemeral nodes (those owned by a session).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral_owner != 0
    }
}
