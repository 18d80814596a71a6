//! The ZooKeeper client protocol: opcodes, error codes, and requests decoded from frames.

use super::codec::{read_acls, Acl, DecodeError, DecodeResult, Reader};
use menagerie_core::{Error, ErrorKind};

/// Opcodes of the client protocol (`ZooDefs.OpCode`).
#[allow(missing_docs)]
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Error codes of the client protocol (`KeeperException.Code`).
#[allow(missing_docs)]
pub mod err {
    pub const OK: i32 = 0;
    pub const SYSTEM_ERROR: i32 = -1;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const OPERATION_TIMEOUT: i32 = -7;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const SESSION_MOVED: i32 = -118;
    pub const NO_WATCHER: i32 = -121;
    pub const RECONFIG_DISABLED: i32 = -123;
}

/// Special xids.
#[allow(missing_docs)]
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// The wire error code for an error kind (for writes: invalid paths are BadArguments).
///
/// ```
/// use menagerie_core::ErrorKind;
/// use menagerie_native::server::proto::error_code;
/// assert_eq!(error_code(ErrorKind::NoNode), -101);
/// assert_eq!(error_code(ErrorKind::InvalidPath), -8);
/// ```
pub fn error_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NoNode => err::NO_NODE,
        ErrorKind::NodeExists => err::NODE_EXISTS,
        ErrorKind::BadVersion => err::BAD_VERSION,
        ErrorKind::NotEmpty => err::NOT_EMPTY,
        ErrorKind::NoChildrenForEphemerals => err::NO_CHILDREN_FOR_EPHEMERALS,
        ErrorKind::InvalidPath | ErrorKind::DataTooLarge | ErrorKind::BadArguments => {
            err::BAD_ARGUMENTS
        }
        ErrorKind::ConnectionLoss => err::CONNECTION_LOSS,
        ErrorKind::OperationTimeout => err::OPERATION_TIMEOUT,
        ErrorKind::SessionExpired | ErrorKind::Closed => err::SESSION_EXPIRED,
        ErrorKind::Unsupported => err::UNIMPLEMENTED,
        ErrorKind::NoWatcher => err::NO_WATCHER,
        ErrorKind::NoAuth => err::NO_AUTH,
        _ => err::SYSTEM_ERROR,
    }
}

/// The wire error code for an error.
pub fn code_of(e: &Error) -> i32 {
    error_code(e.kind())
}

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// The last zxid the client has seen.
    pub last_zxid_seen: i64,
    /// Requested session timeout (ms).
    pub timeout: i32,
    /// 0 for a new session, or the session to re-attach.
    pub session_id: i64,
    /// The session's password (re-attach).
    pub passwd: Vec<u8>,
    /// `Some(read_only)` when the client sent the optional byte.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// Decodes a connect request (the whole frame payload).
    ///
    /// ```
    /// use menagerie_native::server::codec::Writer;
    /// use menagerie_native::server::proto::ConnectRequest;
    /// let mut w = Writer::new();
    /// w.int(0).long(0).int(30_000).long(0).buffer(&[0; 16]).boolean(false);
    /// let c = ConnectRequest::decode(&w.into_bytes()).unwrap();
    /// assert_eq!(c.timeout, 30_000);
    /// assert_eq!(c.read_only, Some(false));
    /// ```
    pub fn decode(buf: &[u8]) -> DecodeResult<ConnectRequest> {
        let mut r = Reader::new(buf);
        let c = ConnectRequest {
            protocol_version: r.int("connect request")?,
            last_zxid_seen: r.long("connect request")?,
            timeout: r.int("connect request")?,
            session_id: r.long("connect request")?,
            passwd: r.buffer("connect password")?.to_vec(),
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.boolean("connect read-only flag")?)
            },
        };
        Ok(c)
    }
}

/// A create request (create, create2, createContainer, createTTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Path (prefix for sequential modes).
    pub path: String,
    /// Initial data.
    pub data: Vec<u8>,
    /// ACL (accepted and ignored: every node is open).
    pub acl: Vec<Acl>,
    /// CreateMode flag (0..=6).
    pub flags: i32,
    /// TTL in ms (createTTL only).
    pub ttl: i64,
}

/// A write inside a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// create / create2 / createContainer / createTTL, with the opcode used.
    Create(i32, CreateRequest),
    /// delete.
    Delete {
        /// Path.
        path: String,
        /// Expected version (-1 any).
        version: i32,
    },
    /// setData.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version (-1 any).
        version: i32,
    },
    /// check.
    Check {
        /// Path.
        path: String,
        /// Expected version (-1 any).
        version: i32,
    },
}

/// A read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// getData.
    GetData(String),
    /// getChildren.
    GetChildren(String),
}

/// A decoded request body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    Create(i32, CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig,
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
    /// An opcode this server does not know.
    Unknown(i32),
}

/// Watches re-registered after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    /// The last zxid the client saw.
    pub relative_zxid: i64,
    /// Data watches.
    pub data: Vec<String>,
    /// Exist watches.
    pub exist: Vec<String>,
    /// Child watches.
    pub child: Vec<String>,
    /// Persistent watches (setWatches2).
    pub persistent: Vec<String>,
    /// Persistent recursive watches (setWatches2).
    pub recursive: Vec<String>,
}

fn path_watch(r: &mut Reader<'_>) -> DecodeResult<(String, bool)> {
    Ok((r.string("path")?, r.boolean("watch flag")?))
}

fn create(r: &mut Reader<'_>, ttl: bool) -> DecodeResult<CreateRequest> {
    Ok(CreateRequest {
        path: r.string("create path")?,
        data: r.buffer("create data")?.to_vec(),
        acl: read_acls(r)?,
        flags: r.int("create flags")?,
        ttl: if ttl { r.long("create ttl")? } else { -1 },
    })
}

fn multi_header(r: &mut Reader<'_>) -> DecodeResult<(i32, bool, i32)> {
    Ok((
        r.int("multi header")?,
        r.boolean("multi header")?,
        r.int("multi header")?,
    ))
}

/// Most operations a multi may hold (ZooKeeper has no limit but the frame size; each needs ≥ 9 bytes).
const MAX_MULTI_OPS: usize = 1 << 17;

impl Request {
    /// Decodes the body of a request with opcode `op` (the request header already read).
    ///
    /// ```
    /// use menagerie_native::server::codec::Writer;
    /// use menagerie_native::server::proto::{op, Request};
    /// let mut w = Writer::new();
    /// w.string("/a").boolean(true);
    /// let r = Request::decode(op::GET_DATA, &w.into_bytes()).unwrap();
    /// assert_eq!(r, Request::GetData { path: "/a".into(), watch: true });
    /// ```
    pub fn decode(opcode: i32, body: &[u8]) -> DecodeResult<Request> {
        let mut r = Reader::new(body);
        let req = match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => {
                Request::Create(opcode, create(&mut r, false)?)
            }
            op::CREATE_TTL => Request::Create(opcode, create(&mut r, true)?),
            op::DELETE => Request::Delete {
                path: r.string("delete path")?,
                version: r.int("delete version")?,
            },
            op::EXISTS => {
                let (path, watch) = path_watch(&mut r)?;
                Request::Exists { path, watch }
            }
            op::GET_DATA => {
                let (path, watch) = path_watch(&mut r)?;
                Request::GetData { path, watch }
            }
            op::SET_DATA => Request::SetData {
                path: r.string("setData path")?,
                data: r.buffer("setData data")?.to_vec(),
                version: r.int("setData version")?,
            },
            op::GET_ACL => Request::GetAcl {
                path: r.string("getACL path")?,
            },
            op::SET_ACL => Request::SetAcl {
                path: r.string("setACL path")?,
                acl: read_acls(&mut r)?,
                version: r.int("setACL version")?,
            },
            op::GET_CHILDREN => {
                let (path, watch) = path_watch(&mut r)?;
                Request::GetChildren { path, watch }
            }
            op::GET_CHILDREN2 => {
                let (path, watch) = path_watch(&mut r)?;
                Request::GetChildren2 { path, watch }
            }
            op::SYNC => Request::Sync {
                path: r.string("sync path")?,
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.string("check path")?,
                version: r.int("check version")?,
            },
            op::MULTI => Request::Multi(Self::decode_multi(&mut r)?),
            op::MULTI_READ => Request::MultiRead(Self::decode_multi_read(&mut r)?),
            op::RECONFIG => Request::Reconfig,
            op::CHECK_WATCHES | op::REMOVE_WATCHES => {
                let path = r.string("watch path")?;
                let kind = r.int("watcher type")?;
                if opcode == op::CHECK_WATCHES {
                    Request::CheckWatches { path, kind }
                } else {
                    Request::RemoveWatches { path, kind }
                }
            }
            op::AUTH => {
                let _type = r.int("auth type")?;
                Request::Auth {
                    scheme: r.string("auth scheme")?,
                    auth: r.buffer("auth data")?.to_vec(),
                }
            }
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let mut s = SetWatches {
                    relative_zxid: r.long("setWatches zxid")?,
                    data: r.strings("setWatches data")?,
                    exist: r.strings("setWatches exist")?,
                    child: r.strings("setWatches child")?,
                    ..SetWatches::default()
                };
                if opcode == op::SET_WATCHES2 {
                    s.persistent = r.strings("setWatches2 persistent")?;
                    s.recursive = r.strings("setWatches2 recursive")?;
                }
                Request::SetWatches(s)
            }
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.string("getEphemerals prefix")?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: r.string("getAllChildrenNumber path")?,
            },
            op::ADD_WATCH => Request::AddWatch {
                path: r.string("addWatch path")?,
                mode: r.int("addWatch mode")?,
            },
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Ok(Request::Unknown(other)),
        };
        Ok(req)
    }

    fn decode_multi(r: &mut Reader<'_>) -> DecodeResult<Vec<MultiOp>> {
        let mut ops = Vec::new();
        loop {
            let (t, done, _err) = multi_header(r)?;
            if done {
                return Ok(ops);
            }
            if ops.len() >= MAX_MULTI_OPS {
                return Err(DecodeError {
                    what: "multi",
                    why: "too many operations",
                });
            }
            let op = match t {
                op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => {
                    MultiOp::Create(t, create(r, false)?)
                }
                op::CREATE_TTL => MultiOp::Create(t, create(r, true)?),
                op::DELETE => MultiOp::Delete {
                    path: r.string("multi delete path")?,
                    version: r.int("multi delete version")?,
                },
                op::SET_DATA => MultiOp::SetData {
                    path: r.string("multi setData path")?,
                    data: r.buffer("multi setData data")?.to_vec(),
                    version: r.int("multi setData version")?,
                },
                op::CHECK => MultiOp::Check {
                    path: r.string("multi check path")?,
                    version: r.int("multi check version")?,
                },
                _ => {
                    return Err(DecodeError {
                        what: "multi",
                        why: "operation type not allowed in a multi",
                    })
                }
            };
            ops.push(op);
        }
    }

    fn decode_multi_read(r: &mut Reader<'_>) -> DecodeResult<Vec<ReadOp>> {
        let mut ops = Vec::new();
        loop {
            let (t, done, _err) = multi_header(r)?;
            if done {
                return Ok(ops);
            }
            if ops.len() >= MAX_MULTI_OPS {
                return Err(DecodeError {
                    what: "multiRead",
                    why: "too many operations",
                });
            }
            let op = match t {
                op::GET_DATA => ReadOp::GetData(path_watch(r)?.0),
                op::GET_CHILDREN => ReadOp::GetChildren(path_watch(r)?.0),
                _ => {
                    return Err(DecodeError {
                        what: "multiRead",
                        why: "operation type not allowed in a multiRead",
                    })
                }
            };
            ops.push(op);
        }
    }
}
