//! Operations of a multi (transaction) and their results.

use crate::mode::CreateMode;
use crate::stat::Stat;

/// One operation of a [`multi`](crate::Backend::multi): all of them apply, or none.
///
/// ```
/// use menagerie_core::{CreateMode, Op};
/// let ops = vec![
///     Op::check("/config", Some(3)),
///     Op::create("/config/item", b"x".to_vec(), CreateMode::Persistent),
/// ];
/// assert_eq!(ops[1].path(), "/config/item");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a node.
    Create {
        /// Path (or prefix, for sequential modes).
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// Kind of node.
        mode: CreateMode,
    },
    /// Set a node's data, optionally only at an expected version.
    SetData {
        /// Path of the node.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version; `None` for any.
        version: Option<i32>,
    },
    /// Delete a node, optionally only at an expected version.
    Delete {
        /// Path of the node.
        path: String,
        /// Expected version; `None` for any.
        version: Option<i32>,
    },
    /// Require that a node exists (at an expected version, if given); changes nothing.
    Check {
        /// Path of the node.
        path: String,
        /// Expected version; `None` for any.
        version: Option<i32>,
    },
}

impl Op {
    /// A create operation.
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }
    /// A set-data operation.
    pub fn set(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::SetData {
            path: path.into(),
            data: data.into(),
            version,
        }
    }
    /// A delete operation.
    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }
    /// A check operation.
    pub fn check(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }
    /// The path the operation acts on.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::SetData { path, .. }
            | Op::Delete { path, .. }
            | Op::Check { path, .. } => path,
        }
    }
    /// The same operation on another path (used by chroot).
    pub fn with_path(&self, new_path: String) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::Create { path, .. }
            | Op::SetData { path, .. }
            | Op::Delete { path, .. }
            | Op::Check { path, .. } => *path = new_path,
        }
        op
    }
}

/// The result of one operation of a successful multi.
///
/// ```
/// use menagerie_core::OpResult;
/// assert_eq!(OpResult::Delete, OpResult::Delete);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The node was created at `path`.
    Create {
        /// The actual path (with the sequential suffix, if any).
        path: String,
        /// The new node's Stat.
        stat: Stat,
    },
    /// The data was set.
    SetData {
        /// The node's Stat after the change.
        stat: Stat,
    },
    /// The node was deleted.
    Delete,
    /// The check passed.
    Check,
}
