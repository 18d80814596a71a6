//! Conversions between zookeeper-client's types and menagerie-core's, and request-size arithmetic.

use menagerie_core::{CreateMode, Error, EventType, Op, Stat};
use zookeeper_client as zk;

/// What an operation was, for error messages and path attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Create,
    Read,
    Set,
    Delete,
    Sync,
    Watch,
    Multi,
}

/// The parent of `path` (`/` for a top-level node).
pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Maps a zookeeper-client error to a core error. `path` is the path the operation was about;
/// `closed` says whether the handle was closed by its owner (a dead client then means Closed,
/// otherwise the session is gone: SessionExpired).
pub(crate) fn map_error(e: zk::Error, kind: OpKind, path: &str, closed: bool) -> Error {
    let p = || path.to_string();
    match e {
        zk::Error::NoNode => Error::NoNode {
            // ZooKeeper's create fails with NoNode when the parent is missing: name the parent.
            path: if kind == OpKind::Create {
                parent_of(path).to_string()
            } else {
                p()
            },
        },
        zk::Error::NodeExists => Error::NodeExists { path: p() },
        zk::Error::BadVersion => Error::BadVersion { path: p() },
        zk::Error::NotEmpty => Error::NotEmpty { path: p() },
        zk::Error::NoChildrenForEphemerals => Error::NoChildrenForEphemerals { path: p() },
        zk::Error::NoWatcher => Error::NoWatcher { path: p() },
        zk::Error::ConnectionLoss
        | zk::Error::NoHosts
        | zk::Error::SessionMoved
        | zk::Error::NotReadOnly => Error::ConnectionLoss,
        zk::Error::Timeout | zk::Error::Throttled => Error::OperationTimeout,
        zk::Error::SessionExpired => Error::SessionExpired,
        zk::Error::ClientClosed => {
            if closed {
                Error::Closed
            } else {
                Error::SessionExpired
            }
        }
        zk::Error::Unimplemented => Error::unsupported(format!(
            "{} at {path}: the server answered Unimplemented",
            kind_name(kind)
        )),
        zk::Error::ReconfigDisabled => Error::unsupported("reconfig is disabled on the server"),
        zk::Error::BadArguments(reason) => Error::BadArguments {
            reason: format!("{reason} ({path})"),
        },
        zk::Error::NoAuth | zk::Error::AuthFailed | zk::Error::InvalidAcl => Error::NoAuth,
        other => Error::Backend {
            message: format!("zookeeper {} at {path}: {other}", kind_name(kind)),
        },
    }
}

fn kind_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Create => "create",
        OpKind::Read => "read",
        OpKind::Set => "set",
        OpKind::Delete => "delete",
        OpKind::Sync => "sync",
        OpKind::Watch => "watch",
        OpKind::Multi => "multi",
    }
}

/// A zookeeper-client Stat as a core Stat.
pub(crate) fn stat(s: &zk::Stat) -> Stat {
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

/// A node event type (None for session events).
pub(crate) fn event_type(t: zk::EventType) -> Option<EventType> {
    match t {
        zk::EventType::NodeCreated => Some(EventType::NodeCreated),
        zk::EventType::NodeDeleted => Some(EventType::NodeDeleted),
        zk::EventType::NodeDataChanged => Some(EventType::NodeDataChanged),
        zk::EventType::NodeChildrenChanged => Some(EventType::NodeChildrenChanged),
        zk::EventType::Session => None,
    }
}

/// zookeeper-client's create options for a core mode (world:anyone, all permissions).
pub(crate) fn create_options(mode: CreateMode) -> zk::CreateOptions<'static> {
    let acls = zk::Acls::anyone_all();
    match mode {
        CreateMode::Persistent => zk::CreateMode::Persistent.with_acls(acls),
        CreateMode::PersistentSequential => zk::CreateMode::PersistentSequential.with_acls(acls),
        CreateMode::Ephemeral => zk::CreateMode::Ephemeral.with_acls(acls),
        CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential.with_acls(acls),
        CreateMode::Container => zk::CreateMode::Container.with_acls(acls),
        CreateMode::PersistentWithTtl(ttl) => {
            zk::CreateMode::Persistent.with_acls(acls).with_ttl(ttl)
        }
        CreateMode::PersistentSequentialWithTtl(ttl) => zk::CreateMode::PersistentSequential
            .with_acls(acls)
            .with_ttl(ttl),
    }
}

/// ZooKeeper's TTL range check (the crate's own check answers with a static message).
pub(crate) fn check_ttl(mode: CreateMode) -> Result<(), Error> {
    if let Some(ttl) = mode.ttl() {
        let ms = ttl.as_millis();
        if ms == 0 || ms > 0xFF_FFFF_FFFF {
            return Err(Error::BadArguments {
                reason: format!("TTL of {ms} ms is out of range (1 ms ..= 1099511627775 ms)"),
            });
        }
    }
    Ok(())
}

// ---- request sizes, as the server counts them (the frame after its 4-byte length prefix) ----

/// Request header: xid + type.
const HEADER: usize = 8;
/// One ACL vector with world:anyone: count + perms + "world" + "anyone".
const ACL_VEC: usize = 4 + 4 + (4 + 5) + (4 + 6);
/// MultiHeader: type + done + err.
const MULTI_HEADER: usize = 4 + 1 + 4;

fn string_len(s: &str) -> usize {
    4 + s.len()
}

/// The body of an operation (no header).
pub(crate) fn op_body_len(op: &Op) -> usize {
    match op {
        Op::Create { path, data, mode } => {
            string_len(path)
                + 4
                + data.len()
                + ACL_VEC
                + 4
                + if mode.ttl().is_some() { 8 } else { 0 }
        }
        Op::SetData { path, data, .. } => string_len(path) + 4 + data.len() + 4,
        Op::Delete { path, .. } | Op::Check { path, .. } => string_len(path) + 4,
    }
}

/// The frame of a single-operation request.
pub(crate) fn single_frame_len(op: &Op) -> usize {
    HEADER + op_body_len(op)
}

/// The frame of a multi request.
pub(crate) fn multi_frame_len(ops: &[Op]) -> usize {
    HEADER
        + ops
            .iter()
            .map(|op| MULTI_HEADER + op_body_len(op))
            .sum::<usize>()
        + MULTI_HEADER
}

/// The data an operation carries.
pub(crate) fn op_data_len(op: &Op) -> usize {
    match op {
        Op::Create { data, .. } | Op::SetData { data, .. } => data.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_match_the_wire_layout() {
        // setData: header 8 + path (4 + 2) + data (4 + 3) + version 4.
        assert_eq!(single_frame_len(&Op::set("/a", b"xyz".to_vec(), None)), 25);
        // create: header 8 + path 6 + data 7 + acl 27 + flags 4.
        assert_eq!(
            single_frame_len(&Op::create("/a", b"xyz".to_vec(), CreateMode::Persistent)),
            52
        );
        assert_eq!(
            multi_frame_len(&[Op::check("/a", None)]),
            8 + 9 + (6 + 4) + 9
        );
    }

    #[test]
    fn create_no_node_names_the_parent() {
        let e = map_error(zk::Error::NoNode, OpKind::Create, "/a/b", false);
        assert_eq!(e, Error::NoNode { path: "/a".into() });
        let e = map_error(zk::Error::NoNode, OpKind::Read, "/a/b", false);
        assert_eq!(
            e,
            Error::NoNode {
                path: "/a/b".into()
            }
        );
        assert_eq!(parent_of("/a"), "/");
    }

    #[test]
    fn retryable_and_final_errors() {
        assert!(map_error(zk::Error::ConnectionLoss, OpKind::Read, "/", false).is_retryable());
        assert!(map_error(zk::Error::Timeout, OpKind::Read, "/", false).is_retryable());
        assert_eq!(
            map_error(zk::Error::ClientClosed, OpKind::Read, "/", true),
            Error::Closed
        );
        assert_eq!(
            map_error(zk::Error::ClientClosed, OpKind::Read, "/", false),
            Error::SessionExpired
        );
        assert_eq!(
            map_error(zk::Error::Unimplemented, OpKind::Create, "/t", false).kind(),
            menagerie_core::ErrorKind::Unsupported
        );
    }
}
