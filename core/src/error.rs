//! Typed errors shared by every backend.
//!
//! Each variant maps to one ZooKeeper error code (where ZooKeeper has one), so recipes can match on
//! the same error whatever backend they run on. [`Error::is_retryable`] separates transient faults
//! (the operation may or may not have been applied) from final answers.

use std::fmt;

/// Result alias used throughout menagerie.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a backend or from the client layer.
///
/// ```
/// use menagerie_core::{Error, ErrorKind};
/// let e = Error::NoNode { path: "/a".into() };
/// assert_eq!(e.kind(), ErrorKind::NoNode);
/// assert!(!e.is_retryable());
/// assert!(Error::ConnectionLoss.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The node (or, for create, its parent) does not exist.
    NoNode {
        /// The path that was missing.
        path: String,
    },
    /// A node already exists at this path.
    NodeExists {
        /// The path that exists.
        path: String,
    },
    /// The expected version did not match the node's version.
    BadVersion {
        /// The node checked.
        path: String,
    },
    /// A node with children cannot be deleted.
    NotEmpty {
        /// The node that still has children.
        path: String,
    },
    /// Ephemeral nodes cannot have children.
    NoChildrenForEphemerals {
        /// The path of the child that was refused.
        path: String,
    },
    /// The path breaks ZooKeeper's path rules.
    InvalidPath {
        /// The offending path.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The data exceeds the backend's limit (1 MiB by default).
    DataTooLarge {
        /// Size that was given.
        size: usize,
        /// The largest size accepted.
        limit: usize,
    },
    /// The arguments are not acceptable (ZooKeeper's BadArguments), e.g. deleting `/`.
    BadArguments {
        /// What was wrong.
        reason: String,
    },
    /// The connection to the server was lost; the operation may or may not have been applied.
    ConnectionLoss,
    /// The operation did not complete in time; it may or may not have been applied.
    OperationTimeout,
    /// The session has expired: its ephemeral nodes and watches are gone.
    SessionExpired,
    /// The client or session was closed by its owner.
    Closed,
    /// The backend cannot do this (e.g. TTL nodes on a server without extended types).
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// A multi failed: nothing was applied. `results` has one entry per operation.
    MultiFailed {
        /// Index of the first operation that failed.
        index: usize,
        /// Outcome of every operation, in order.
        results: Vec<MultiOpError>,
    },
    /// No watch of the given kind is registered at the path.
    NoWatcher {
        /// The path.
        path: String,
    },
    /// Authentication or authorisation failed.
    NoAuth,
    /// A lock, lease or leadership was lost (recipes).
    Lost {
        /// What was lost and why.
        reason: String,
    },
    /// A wait ended because its deadline passed (recipes).
    Timeout,
    /// Any other failure reported by a backend, with its description.
    Backend {
        /// The backend's description of the failure.
        message: String,
    },
}

/// The kind of an [`Error`], without its details: convenient for comparisons.
///
/// ```
/// use menagerie_core::{Error, ErrorKind};
/// assert_eq!(Error::SessionExpired.kind(), ErrorKind::SessionExpired);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NoNode`].
    NoNode,
    /// See [`Error::NodeExists`].
    NodeExists,
    /// See [`Error::BadVersion`].
    BadVersion,
    /// See [`Error::NotEmpty`].
    NotEmpty,
    /// See [`Error::NoChildrenForEphemerals`].
    NoChildrenForEphemerals,
    /// See [`Error::InvalidPath`].
    InvalidPath,
    /// See [`Error::DataTooLarge`].
    DataTooLarge,
    /// See [`Error::BadArguments`].
    BadArguments,
    /// See [`Error::ConnectionLoss`].
    ConnectionLoss,
    /// See [`Error::OperationTimeout`].
    OperationTimeout,
    /// See [`Error::SessionExpired`].
    SessionExpired,
    /// See [`Error::Closed`].
    Closed,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::MultiFailed`].
    MultiFailed,
    /// See [`Error::NoWatcher`].
    NoWatcher,
    /// See [`Error::NoAuth`].
    NoAuth,
    /// See [`Error::Lost`].
    Lost,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::Backend`].
    Backend,
}

/// The outcome of one operation of a failed multi (ZooKeeper reports one per operation).
///
/// ```
/// use menagerie_core::{ErrorKind, MultiOpError};
/// let r = MultiOpError::Failed(ErrorKind::NoNode);
/// assert_eq!(r.failure(), Some(ErrorKind::NoNode));
/// assert_eq!(MultiOpError::RolledBack.failure(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiOpError {
    /// The operation would have succeeded but was rolled back with the rest.
    RolledBack,
    /// The operation failed with this error; it made the multi fail.
    Failed(ErrorKind),
    /// The operation came after the failing one and was not checked.
    NotRun,
}

impl MultiOpError {
    /// The failure kind if this operation is the one that failed.
    pub fn failure(&self) -> Option<ErrorKind> {
        match self {
            MultiOpError::Failed(k) => Some(*k),
            _ => None,
        }
    }

    /// Builds ZooKeeper-style per-operation results for `len` operations where `index` failed.
    ///
    /// ```
    /// use menagerie_core::{ErrorKind, MultiOpError};
    /// let r = MultiOpError::for_failure(3, 1, ErrorKind::BadVersion);
    /// assert_eq!(r, vec![MultiOpError::RolledBack, MultiOpError::Failed(ErrorKind::BadVersion), MultiOpError::NotRun]);
    /// ```
    pub fn for_failure(len: usize, index: usize, kind: ErrorKind) -> Vec<MultiOpError> {
        (0..len)
            .map(|i| match i.cmp(&index) {
                std::cmp::Ordering::Less => MultiOpError::RolledBack,
                std::cmp::Ordering::Equal => MultiOpError::Failed(kind),
                std::cmp::Ordering::Greater => MultiOpError::NotRun,
            })
            .collect()
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoNode { .. } => ErrorKind::NoNode,
            Error::NodeExists { .. } => ErrorKind::NodeExists,
            Error::BadVersion { .. } => ErrorKind::BadVersion,
            Error::NotEmpty { .. } => ErrorKind::NotEmpty,
            Error::NoChildrenForEphemerals { .. } => ErrorKind::NoChildrenForEphemerals,
            Error::InvalidPath { .. } => ErrorKind::InvalidPath,
            Error::DataTooLarge { .. } => ErrorKind::DataTooLarge,
            Error::BadArguments { .. } => ErrorKind::BadArguments,
            Error::ConnectionLoss => ErrorKind::ConnectionLoss,
            Error::OperationTimeout => ErrorKind::OperationTimeout,
            Error::SessionExpired => ErrorKind::SessionExpired,
            Error::Closed => ErrorKind::Closed,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::MultiFailed { .. } => ErrorKind::MultiFailed,
            Error::NoWatcher { .. } => ErrorKind::NoWatcher,
            Error::NoAuth => ErrorKind::NoAuth,
            Error::Lost { .. } => ErrorKind::Lost,
            Error::Timeout => ErrorKind::Timeout,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// True for transient faults after which the operation may be retried: the connection was lost
    /// or the operation timed out (it may or may not have been applied).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::ConnectionLoss | Error::OperationTimeout)
    }

    /// True when the session is gone for good (expired or closed).
    ///
    /// ```
    /// use menagerie_core::Error;
    /// assert!(Error::SessionExpired.is_session_gone());
    /// assert!(!Error::ConnectionLoss.is_session_gone());
    /// ```
    pub fn is_session_gone(&self) -> bool {
        matches!(self, Error::SessionExpired | Error::Closed)
    }

    /// Shorthand for an [`Error::Unsupported`].
    ///
    /// ```
    /// let e = menagerie_core::Error::unsupported("TTL nodes");
    /// assert_eq!(e.to_string(), "unsupported by this backend: TTL nodes");
    /// ```
    pub fn unsupported(what: impl Into<String>) -> Error {
        Error::Unsupported { what: what.into() }
    }

    /// Returns a copy of this error with every path in it passed through `f` (used by chroot).
    pub fn map_path(self, f: impl Fn(&str) -> String) -> Error {
        match self {
            Error::NoNode { path } => Error::NoNode { path: f(&path) },
            Error::NodeExists { path } => Error::NodeExists { path: f(&path) },
            Error::BadVersion { path } => Error::BadVersion { path: f(&path) },
            Error::NotEmpty { path } => Error::NotEmpty { path: f(&path) },
            Error::NoChildrenForEphemerals { path } => {
                Error::NoChildrenForEphemerals { path: f(&path) }
            }
            Error::InvalidPath { path, reason } => Error::InvalidPath {
                path: f(&path),
                reason,
            },
            Error::NoWatcher { path } => Error::NoWatcher { path: f(&path) },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoNode { path } => write!(f, "no node at {path}"),
            Error::NodeExists { path } => write!(f, "node already exists at {path}"),
            Error::BadVersion { path } => write!(f, "version mismatch at {path}"),
            Error::NotEmpty { path } => write!(f, "node {path} has children"),
            Error::NoChildrenForEphemerals { path } => {
                write!(
                    f,
                    "cannot create {path}: ephemeral nodes cannot have children"
                )
            }
            Error::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            Error::DataTooLarge { size, limit } => {
                write!(f, "data of {size} bytes exceeds the limit of {limit} bytes")
            }
            Error::BadArguments { reason } => write!(f, "bad arguments: {reason}"),
            Error::ConnectionLoss => {
                write!(f, "connection lost (the operation may have been applied)")
            }
            Error::OperationTimeout => {
                write!(
                    f,
                    "operation timed out (the operation may have been applied)"
                )
            }
            Error::SessionExpired => write!(f, "session expired"),
            Error::Closed => write!(f, "client closed"),
            Error::Unsupported { what } => write!(f, "unsupported by this backend: {what}"),
            Error::MultiFailed { index, results } => {
                let kind = results.get(*index).and_then(|r| r.failure());
                match kind {
                    Some(k) => write!(f, "multi failed at operation {index}: {k:?}"),
                    None => write!(f, "multi failed at operation {index}"),
                }
            }
            Error::NoWatcher { path } => write!(f, "no watch registered at {path}"),
            Error::NoAuth => write!(f, "not authorised"),
            Error::Lost { reason } => write!(f, "lost: {reason}"),
            Error::Timeout => write!(f, "timed out waiting"),
            Error::Backend { message } => write!(f, "backend error: {message}"),
        }
    }
}

impl std::error::Error for Error {}
