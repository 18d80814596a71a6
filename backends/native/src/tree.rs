//! The node tree as a deterministic state machine: [`DataTree::apply`] takes a [`Txn`] (with its
//! zxid and time already assigned) and returns its result plus the [`Change`]s that fire watches.
//!
//! Given the same sequence of transactions, two trees end in the same state — which is what the
//! server's transaction log replays. Reads never change the tree.

use crate::server::codec::{DecodeError, DecodeResult, Reader, Writer};
use menagerie_core::path::{self, validate_path};
use menagerie_core::sequence::format_sequence;
use menagerie_core::{
    CreateMode, Error, EventType, MultiOpError, Op, OpResult, Result, SessionId, Stat,
    DEFAULT_MAX_DATA_LEN,
};
use std::collections::{BTreeSet, HashMap};

/// One node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// A boxed slice, not a Vec: 8 bytes less per node, and no spare capacity.
    data: Box<[u8]>,
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    aversion: i32,
    ephemeral_owner: SessionId,
    pzxid: i64,
    /// Successful child creates since this node was created: the next sequence number.
    child_creates: i32,
    children: Children,
    kind: NodeKind,
}

/// Child names, sorted. Nothing is allocated for a leaf (most nodes): 16 bytes less per node than
/// an inline set, and names are boxed strs (8 bytes less per child than `String`).
// Boxed on purpose: 8 bytes inline instead of the set's 24, and leaves are most nodes.
#[allow(clippy::box_collection)]
#[derive(Debug, Clone, Default)]
struct Children(Option<Box<BTreeSet<Box<str>>>>);

impl Children {
    fn insert(&mut self, name: Box<str>) -> bool {
        self.0.get_or_insert_with(Box::default).insert(name)
    }

    fn remove(&mut self, name: &str) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        let removed = set.remove(name);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(name))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.iter().map(|n| &**n))
    }
}

/// Lifetime rule of a node beyond persistent / ephemeral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Plain,
    Container,
    /// Deleted when childless and unmodified for this many milliseconds.
    Ttl(i64),
}

impl Node {
    fn new(data: Vec<u8>, zxid: i64, time: i64, owner: SessionId, kind: NodeKind) -> Node {
        Node {
            data: data.into_boxed_slice(),
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: zxid,
            child_creates: 0,
            children: Children::default(),
            kind,
        }
    }

    fn stat(&self) -> Stat {
        let n = self.children.len() as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            // creates + deletes = 2 * creates - live children (ZooKeeper's cversion).
            cversion: self.child_creates.wrapping_mul(2).wrapping_sub(n),
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data.len() as i32,
            num_children: n,
            pzxid: self.pzxid,
        }
    }
}

/// A node change that watches react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where it happened.
    pub path: String,
    /// What happened.
    pub event: EventType,
}

/// A state-changing request with the zxid and wall-clock time assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The transaction id given to this write.
    pub zxid: i64,
    /// Milliseconds since the Unix epoch (ctime / mtime of what it creates or sets).
    pub time: i64,
    /// What to do.
    pub body: TxnBody,
}

/// The kinds of transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnBody {
    /// One operation on behalf of `session`.
    Op {
        /// The session the operation runs in (owner of ephemerals it creates).
        session: SessionId,
        /// The operation.
        op: Op,
    },
    /// Several operations, all or nothing.
    Multi {
        /// The session the operations run in.
        session: SessionId,
        /// The operations.
        ops: Vec<Op>,
    },
    /// A new session.
    CreateSession {
        /// Its id.
        session: SessionId,
        /// Its negotiated timeout.
        timeout_ms: i32,
    },
    /// Ends a session (closed or expired): deletes its ephemerals.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// Deletes a container or TTL node if it is still due for reaping.
    Reap {
        /// The node.
        path: String,
    },
    /// Sets a node's ACL (only at ACL version `version`, unless -1): every node stays open, but
    /// the ACL version grows, as in ZooKeeper. Fires no watch and leaves mzxid alone.
    SetAcl {
        /// The session asking.
        session: SessionId,
        /// The node.
        path: String,
        /// Expected ACL version (aversion), -1 for any.
        version: i32,
    },
}

/// What applying a transaction produced.
#[derive(Debug)]
pub enum TxnResult {
    /// Result of a single operation.
    Op(Result<OpResult>),
    /// Result of a multi.
    Multi(Result<Vec<OpResult>>),
    /// Result of a setACL: the node's Stat afterwards.
    Acl(Result<Stat>),
    /// Session bookkeeping (create / close / reap) done.
    Done,
}

/// A live session as the tree knows it.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    /// Negotiated timeout.
    pub timeout_ms: i32,
    /// Paths of the ephemerals it owns.
    pub ephemerals: BTreeSet<String>,
}

/// Undo record for rolling a failed multi back.
enum Undo {
    Created {
        path: String,
        parent: String,
        parent_before: (i64, i32),
    },
    Deleted {
        path: String,
        node: Box<Node>,
        parent: String,
        parent_pzxid: i64,
    },
    Set {
        path: String,
        node: Box<Node>,
    },
}

/// The znode tree plus the session table.
#[derive(Debug, Clone)]
pub struct DataTree {
    /// Boxed: a sparse hash table of small slots costs far less memory than one of whole nodes;
    /// keys are boxed strs (a 24-byte slot instead of 32).
    nodes: HashMap<Box<str>, Box<Node>>,
    sessions: HashMap<SessionId, SessionInfo>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    last_zxid: i64,
    max_data_len: usize,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

/// System nodes that clients may read but not change.
fn is_protected(path: &str) -> bool {
    path == "/" || path == "/zookeeper" || path == "/zookeeper/config" || path == "/zookeeper/quota"
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`, all empty, zxid 0.
    pub fn new() -> DataTree {
        let mut nodes = HashMap::new();
        let mut root = Node::new(Vec::new(), 0, 0, 0, NodeKind::Plain);
        root.children.insert("zookeeper".into());
        let mut zk = Node::new(Vec::new(), 0, 0, 0, NodeKind::Plain);
        zk.children.insert("quota".into());
        zk.children.insert("config".into());
        nodes.insert("/".into(), Box::new(root));
        nodes.insert("/zookeeper".into(), Box::new(zk));
        for p in ["/zookeeper/quota", "/zookeeper/config"] {
            nodes.insert(
                p.into(),
                Box::new(Node::new(Vec::new(), 0, 0, 0, NodeKind::Plain)),
            );
        }
        DataTree {
            nodes,
            sessions: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            last_zxid: 0,
            max_data_len: DEFAULT_MAX_DATA_LEN,
        }
    }

    /// The zxid of the last applied transaction.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The largest accepted data.
    pub fn max_data_len(&self) -> usize {
        self.max_data_len
    }

    /// Number of nodes (system nodes included).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The live sessions.
    pub fn sessions(&self) -> &HashMap<SessionId, SessionInfo> {
        &self.sessions
    }

    /// True when `session` is live.
    pub fn has_session(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Total number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.sessions.values().map(|s| s.ephemerals.len()).sum()
    }

    /// Approximate bytes of data held.
    pub fn approximate_data_size(&self) -> usize {
        self.nodes.iter().map(|(k, n)| k.len() + n.data.len()).sum()
    }

    fn node(&self, p: &str) -> Result<&Node> {
        validate_path(p, false)?;
        self.nodes
            .get(p)
            .map(|n| &**n)
            .ok_or_else(|| Error::NoNode { path: p.into() })
    }

    /// Data and Stat of a node.
    pub fn get(&self, p: &str) -> Result<(Vec<u8>, Stat)> {
        self.node(p).map(|n| (n.data.to_vec(), n.stat()))
    }

    /// Stat of a node, `None` if absent.
    pub fn exists(&self, p: &str) -> Result<Option<Stat>> {
        validate_path(p, false)?;
        Ok(self.nodes.get(p).map(|n| n.stat()))
    }

    /// Child names (sorted) and Stat.
    pub fn children(&self, p: &str) -> Result<(Vec<String>, Stat)> {
        self.node(p)
            .map(|n| (n.children.iter().map(|c| c.to_string()).collect(), n.stat()))
    }

    /// Number of nodes below `p` (not counting `p`).
    pub fn all_children_number(&self, p: &str) -> Result<usize> {
        let n = self.node(p)?;
        let mut count = 0;
        let mut stack: Vec<String> = n.children.iter().map(|c| path::join(p, c)).collect();
        while let Some(c) = stack.pop() {
            count += 1;
            if let Some(node) = self.nodes.get(c.as_str()) {
                stack.extend(node.children.iter().map(|k| path::join(&c, k)));
            }
        }
        Ok(count)
    }

    /// Ephemeral paths of `session` that start with `prefix` (plain string match, as ZooKeeper).
    pub fn ephemerals_of(&self, session: SessionId, prefix: &str) -> Vec<String> {
        self.sessions
            .get(&session)
            .map(|s| {
                s.ephemerals
                    .iter()
                    .filter(|p| p.starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Containers and TTL nodes due for reaping at `now` (ms since the epoch).
    pub fn reapable(&self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.containers.iter().chain(self.ttls.iter()) {
            if let Some(n) = self.nodes.get(p.as_str()) {
                if self.due(n, now) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    fn due(&self, n: &Node, now: i64) -> bool {
        if !n.children.is_empty() {
            return false;
        }
        match n.kind {
            NodeKind::Container => n.child_creates > 0,
            NodeKind::Ttl(ttl) => now.saturating_sub(n.mtime) > ttl,
            NodeKind::Plain => false,
        }
    }

    /// Applies a transaction. Writes that fail still consume their zxid, as in ZooKeeper.
    pub fn apply(&mut self, txn: &Txn, changes: &mut Vec<Change>) -> TxnResult {
        if txn.zxid > self.last_zxid {
            self.last_zxid = txn.zxid;
        }
        match &txn.body {
            TxnBody::Op { session, op } => {
                let mut undo = Vec::new();
                let r = self.apply_op(*session, op, txn.zxid, txn.time, changes, &mut undo);
                TxnResult::Op(r)
            }
            TxnBody::Multi { session, ops } => {
                TxnResult::Multi(self.apply_multi(*session, ops, txn.zxid, txn.time, changes))
            }
            TxnBody::CreateSession {
                session,
                timeout_ms,
            } => {
                self.sessions.entry(*session).or_default().timeout_ms = *timeout_ms;
                TxnResult::Done
            }
            TxnBody::CloseSession { session } => {
                if let Some(info) = self.sessions.remove(session) {
                    // Deepest first so no delete meets a child (ephemerals have none anyway).
                    for p in info.ephemerals.iter().rev() {
                        self.remove_node(p, txn.zxid, changes, &mut Vec::new());
                    }
                }
                TxnResult::Done
            }
            TxnBody::SetAcl { path, version, .. } => TxnResult::Acl(self.set_acl(path, *version)),
            TxnBody::Reap { path } => {
                let due = self
                    .nodes
                    .get(path.as_str())
                    .map(|n| self.due(n, txn.time))
                    .unwrap_or(false);
                if due {
                    self.remove_node(path, txn.zxid, changes, &mut Vec::new());
                }
                TxnResult::Done
            }
        }
    }

    fn set_acl(&mut self, p: &str, version: i32) -> Result<Stat> {
        validate_path(p, false)?;
        let n = self
            .nodes
            .get_mut(p)
            .ok_or_else(|| Error::NoNode { path: p.into() })?;
        if version != -1 && version != n.aversion {
            return Err(Error::BadVersion { path: p.into() });
        }
        n.aversion = n.aversion.wrapping_add(1);
        Ok(n.stat())
    }

    /// The error ZooKeeper's server gives for a create whose path breaks the path rules: it looks
    /// at the parent (everything before the last `/`) first, so a missing parent is NoNode, and
    /// only then rejects the name with BadArguments. `None` when the path is valid.
    ///
    /// ```
    /// use menagerie_core::ErrorKind;
    /// use menagerie_native::tree::DataTree;
    /// let t = DataTree::new();
    /// assert_eq!(t.wire_create_path_error("/zookeeper/", false).unwrap().kind(), ErrorKind::BadArguments);
    /// assert_eq!(t.wire_create_path_error("/nope/", false).unwrap().kind(), ErrorKind::NoNode);
    /// assert!(t.wire_create_path_error("/ok", false).is_none());
    /// ```
    pub fn wire_create_path_error(&self, p: &str, sequential: bool) -> Option<Error> {
        let invalid = validate_path(p, sequential).err()?;
        let bad = Error::BadArguments {
            reason: invalid.to_string(),
        };
        let Some(slash) = p.rfind('/') else {
            return Some(bad);
        };
        if p.contains('\0') {
            return Some(bad);
        }
        let parent = if slash == 0 { "/" } else { &p[..slash] };
        if self.nodes.contains_key(parent) {
            Some(bad)
        } else {
            Some(Error::NoNode {
                path: parent.to_string(),
            })
        }
    }

    /// Data and Stat of a node looked up without path validation (as ZooKeeper's server reads:
    /// an invalid path is simply not found).
    pub fn lookup(&self, p: &str) -> Option<(&[u8], Stat)> {
        self.nodes.get(p).map(|n| (&*n.data, n.stat()))
    }

    /// Children of a node looked up without path validation.
    pub fn lookup_children(&self, p: &str) -> Option<(Vec<String>, Stat)> {
        self.nodes
            .get(p)
            .map(|n| (n.children.iter().map(|c| c.to_string()).collect(), n.stat()))
    }

    fn apply_multi(
        &mut self,
        session: SessionId,
        ops: &[Op],
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Vec<OpResult>> {
        let mut undo = Vec::new();
        let mut local = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.apply_op(session, op, zxid, time, &mut local, &mut undo) {
                Ok(r) => results.push(r),
                Err(e) => {
                    self.rollback(undo);
                    return Err(Error::MultiFailed {
                        index: i,
                        results: MultiOpError::for_failure(ops.len(), i, e.kind()),
                    });
                }
            }
        }
        changes.extend(local);
        Ok(results)
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created {
                    path,
                    parent,
                    parent_before,
                } => {
                    if let Some(n) = self.nodes.remove(path.as_str()) {
                        self.forget_special(&path, &n);
                    }
                    if let Some(p) = self.nodes.get_mut(parent.as_str()) {
                        p.children.remove(path::basename(&path));
                        (p.pzxid, p.child_creates) = parent_before;
                    }
                }
                Undo::Deleted {
                    path,
                    node,
                    parent,
                    parent_pzxid,
                } => {
                    self.remember_special(&path, &node);
                    if let Some(p) = self.nodes.get_mut(parent.as_str()) {
                        p.children.insert(path::basename(&path).into());
                        p.pzxid = parent_pzxid;
                    }
                    self.nodes.insert(path.into(), node);
                }
                Undo::Set { path, node } => {
                    self.nodes.insert(path.into(), node);
                }
            }
        }
    }

    fn remember_special(&mut self, p: &str, n: &Node) {
        if n.ephemeral_owner != 0 {
            if let Some(s) = self.sessions.get_mut(&n.ephemeral_owner) {
                s.ephemerals.insert(p.to_string());
            }
        }
        match n.kind {
            NodeKind::Container => {
                self.containers.insert(p.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(p.to_string());
            }
            NodeKind::Plain => {}
        }
    }

    fn forget_special(&mut self, p: &str, n: &Node) {
        if n.ephemeral_owner != 0 {
            if let Some(s) = self.sessions.get_mut(&n.ephemeral_owner) {
                s.ephemerals.remove(p);
            }
        }
        match n.kind {
            NodeKind::Container => {
                self.containers.remove(p);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(p);
            }
            NodeKind::Plain => {}
        }
    }

    fn check_version(p: &str, n: &Node, version: Option<i32>) -> Result<()> {
        match version {
            Some(v) if v != -1 && v != n.version => Err(Error::BadVersion { path: p.into() }),
            _ => Ok(()),
        }
    }

    fn apply_op(
        &mut self,
        session: SessionId,
        op: &Op,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
        undo: &mut Vec<Undo>,
    ) -> Result<OpResult> {
        match op {
            Op::Create { path, data, mode } => {
                self.create(session, path, data, *mode, zxid, time, changes, undo)
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                validate_path(path, false)?;
                self.check_data(data)?;
                if path == "/zookeeper/config" {
                    return Err(Error::BadArguments {
                        reason: "/zookeeper/config is read-only".into(),
                    });
                }
                let n = self
                    .nodes
                    .get_mut(path.as_str())
                    .ok_or_else(|| Error::NoNode { path: path.clone() })?;
                Self::check_version(path, n, *version)?;
                undo.push(Undo::Set {
                    path: path.clone(),
                    node: n.clone(),
                });
                n.data = data.as_slice().into();
                n.version = n.version.wrapping_add(1);
                n.mzxid = zxid;
                n.mtime = time;
                let stat = n.stat();
                changes.push(Change {
                    path: path.clone(),
                    event: EventType::NodeDataChanged,
                });
                Ok(OpResult::SetData { stat })
            }
            Op::Delete { path, version } => {
                validate_path(path, false)?;
                if is_protected(path) {
                    return Err(Error::BadArguments {
                        reason: format!("{path} cannot be deleted"),
                    });
                }
                let n = self
                    .nodes
                    .get(path.as_str())
                    .ok_or_else(|| Error::NoNode { path: path.clone() })?;
                Self::check_version(path, n, *version)?;
                if !n.children.is_empty() {
                    return Err(Error::NotEmpty { path: path.clone() });
                }
                self.remove_node(path, zxid, changes, undo);
                Ok(OpResult::Delete)
            }
            Op::Check { path, version } => {
                validate_path(path, false)?;
                let n = self
                    .nodes
                    .get(path.as_str())
                    .ok_or_else(|| Error::NoNode { path: path.clone() })?;
                Self::check_version(path, n, *version)?;
                Ok(OpResult::Check)
            }
        }
    }

    fn check_data(&self, data: &[u8]) -> Result<()> {
        if data.len() > self.max_data_len {
            return Err(Error::DataTooLarge {
                size: data.len(),
                limit: self.max_data_len,
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        session: SessionId,
        p: &str,
        data: &[u8],
        mode: CreateMode,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
        undo: &mut Vec<Undo>,
    ) -> Result<OpResult> {
        validate_path(p, mode.is_sequential())?;
        self.check_data(data)?;
        let kind = match mode {
            CreateMode::Container => NodeKind::Container,
            CreateMode::PersistentWithTtl(t) | CreateMode::PersistentSequentialWithTtl(t) => {
                let ms = t.as_millis();
                if ms == 0 || ms > 0xFF_FFFF_FFFF {
                    return Err(Error::BadArguments {
                        reason: format!("TTL of {ms} ms is out of range"),
                    });
                }
                NodeKind::Ttl(ms as i64)
            }
            _ => NodeKind::Plain,
        };
        if mode.is_ephemeral() && !self.sessions.contains_key(&session) {
            return Err(Error::SessionExpired);
        }
        // validate_path guarantees a leading '/'.
        let slash = p.rfind('/').unwrap_or(0);
        let parent_path = if slash == 0 { "/" } else { &p[..slash] };
        let parent = self
            .nodes
            .get_mut(parent_path)
            .ok_or_else(|| Error::NoNode {
                path: parent_path.into(),
            })?;
        if parent.ephemeral_owner != 0 {
            return Err(Error::NoChildrenForEphemerals { path: p.into() });
        }
        let full = if mode.is_sequential() {
            format!("{p}{}", format_sequence(parent.child_creates))
        } else {
            p.to_string()
        };
        let name = &full[parent_path.len() + usize::from(parent_path != "/")..];
        if parent.children.contains(name) {
            return Err(Error::NodeExists { path: full });
        }
        if full == "/zookeeper/config" || full.starts_with("/zookeeper/config/") {
            return Err(Error::BadArguments {
                reason: "/zookeeper/config is read-only".into(),
            });
        }
        undo.push(Undo::Created {
            path: full.clone(),
            parent: parent_path.to_string(),
            parent_before: (parent.pzxid, parent.child_creates),
        });
        parent.children.insert(name.into());
        parent.child_creates = parent.child_creates.wrapping_add(1);
        parent.pzxid = zxid;
        let owner = if mode.is_ephemeral() { session } else { 0 };
        let node = Node::new(data.to_vec(), zxid, time, owner, kind);
        let stat = node.stat();
        self.remember_special(&full, &node);
        self.nodes.insert(full.as_str().into(), Box::new(node));
        changes.push(Change {
            path: full.clone(),
            event: EventType::NodeCreated,
        });
        changes.push(Change {
            path: parent_path.to_string(),
            event: EventType::NodeChildrenChanged,
        });
        Ok(OpResult::Create { path: full, stat })
    }

    /// Removes a node known to exist and to have no children.
    fn remove_node(&mut self, p: &str, zxid: i64, changes: &mut Vec<Change>, undo: &mut Vec<Undo>) {
        let Some(node) = self.nodes.remove(p) else {
            return;
        };
        self.forget_special(p, &node);
        let parent_path = path::parent(p).unwrap_or("/").to_string();
        if let Some(parent) = self.nodes.get_mut(parent_path.as_str()) {
            undo.push(Undo::Deleted {
                path: p.to_string(),
                node,
                parent: parent_path.clone(),
                parent_pzxid: parent.pzxid,
            });
            parent.children.remove(path::basename(p));
            parent.pzxid = zxid;
        }
        changes.push(Change {
            path: p.to_string(),
            event: EventType::NodeDeleted,
        });
        changes.push(Change {
            path: parent_path,
            event: EventType::NodeChildrenChanged,
        });
    }
}

/// Magic at the start of a snapshot body.
const SNAPSHOT_MAGIC: &[u8; 8] = b"MNGSNAP1";

impl DataTree {
    /// Serialises the whole tree (nodes, sessions, last zxid) for a snapshot.
    ///
    /// ```
    /// use menagerie_native::server::codec::{Reader, Writer};
    /// use menagerie_native::tree::DataTree;
    /// let t = DataTree::new();
    /// let mut w = Writer::new();
    /// t.encode_snapshot(&mut w);
    /// let bytes = w.into_bytes();
    /// let back = DataTree::decode_snapshot(&mut Reader::new(&bytes)).unwrap();
    /// assert_eq!(back.node_count(), t.node_count());
    /// ```
    pub fn encode_snapshot(&self, w: &mut Writer) {
        w.raw(SNAPSHOT_MAGIC);
        w.long(self.last_zxid);
        w.long(self.nodes.len() as i64);
        for (p, n) in &self.nodes {
            w.string(p)
                .buffer(&n.data)
                .long(n.czxid)
                .long(n.mzxid)
                .long(n.ctime)
                .long(n.mtime)
                .int(n.version)
                .int(n.aversion)
                .long(n.ephemeral_owner)
                .long(n.pzxid)
                .int(n.child_creates);
            match n.kind {
                NodeKind::Plain => w.byte(0).long(0),
                NodeKind::Container => w.byte(1).long(0),
                NodeKind::Ttl(ttl) => w.byte(2).long(ttl),
            };
        }
        w.long(self.sessions.len() as i64);
        for (id, s) in &self.sessions {
            w.long(*id).int(s.timeout_ms);
        }
    }

    /// Rebuilds a tree serialised by [`DataTree::encode_snapshot`]; an inconsistent snapshot
    /// (a node without its parent, a bad magic) is an error, never a panic.
    pub fn decode_snapshot(r: &mut Reader<'_>) -> DecodeResult<DataTree> {
        let bad = |why: &'static str| DecodeError {
            what: "snapshot",
            why,
        };
        let magic = (0..8)
            .map(|_| r.byte("snapshot magic"))
            .collect::<DecodeResult<Vec<u8>>>()?;
        if magic != SNAPSHOT_MAGIC {
            return Err(bad("not a menagerie snapshot"));
        }
        let last_zxid = r.long("snapshot zxid")?;
        let count = r.long("snapshot node count")?;
        if count < 0 || count as u64 > r.remaining() as u64 / 60 {
            return Err(bad("node count larger than the snapshot"));
        }
        let mut nodes: HashMap<Box<str>, Box<Node>> = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let p = r.string("snapshot path")?;
            let data = r.buffer("snapshot data")?.to_vec();
            let mut n = Node::new(data, 0, 0, 0, NodeKind::Plain);
            n.czxid = r.long("snapshot node")?;
            n.mzxid = r.long("snapshot node")?;
            n.ctime = r.long("snapshot node")?;
            n.mtime = r.long("snapshot node")?;
            n.version = r.int("snapshot node")?;
            n.aversion = r.int("snapshot node")?;
            n.ephemeral_owner = r.long("snapshot node")?;
            n.pzxid = r.long("snapshot node")?;
            n.child_creates = r.int("snapshot node")?;
            let kind = r.byte("snapshot node kind")?;
            let ttl = r.long("snapshot node ttl")?;
            n.kind = match kind {
                0 => NodeKind::Plain,
                1 => NodeKind::Container,
                2 => NodeKind::Ttl(ttl),
                _ => return Err(bad("unknown node kind")),
            };
            if p != "/" && validate_path(&p, false).is_err() {
                return Err(bad("invalid node path"));
            }
            if nodes.insert(p.into(), Box::new(n)).is_some() {
                return Err(bad("duplicate node"));
            }
        }
        if !nodes.contains_key("/") {
            return Err(bad("no root node"));
        }
        let scount = r.long("snapshot session count")?;
        if scount < 0 || scount as u64 > r.remaining() as u64 / 12 {
            return Err(bad("session count larger than the snapshot"));
        }
        let mut sessions: HashMap<SessionId, SessionInfo> = HashMap::new();
        for _ in 0..scount {
            let id = r.long("snapshot session")?;
            let timeout_ms = r.int("snapshot session")?;
            sessions.insert(
                id,
                SessionInfo {
                    timeout_ms,
                    ephemerals: BTreeSet::new(),
                },
            );
        }
        let mut tree = DataTree {
            nodes: HashMap::new(),
            sessions,
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            last_zxid,
            max_data_len: DEFAULT_MAX_DATA_LEN,
        };
        let paths: Vec<String> = nodes.keys().map(|p| p.to_string()).collect();
        for p in &paths {
            if p == "/" {
                continue;
            }
            let parent = path::parent(p).unwrap_or("/");
            match nodes.get_mut(parent) {
                Some(parent) => {
                    parent.children.insert(path::basename(p).into());
                }
                None => return Err(bad("node without its parent")),
            }
        }
        for p in &paths {
            if let Some(n) = nodes.get(p.as_str()) {
                if n.ephemeral_owner != 0 {
                    match tree.sessions.get_mut(&n.ephemeral_owner) {
                        Some(s) => {
                            s.ephemerals.insert(p.clone());
                        }
                        None => return Err(bad("ephemeral node of an unknown session")),
                    }
                }
                match n.kind {
                    NodeKind::Container => {
                        tree.containers.insert(p.clone());
                    }
                    NodeKind::Ttl(_) => {
                        tree.ttls.insert(p.clone());
                    }
                    NodeKind::Plain => {}
                }
            }
        }
        tree.nodes = nodes;
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(zxid: i64, body: TxnBody) -> Txn {
        Txn {
            zxid,
            time: 1000 + zxid,
            body,
        }
    }

    /// A node costs one allocation of this size plus its data, path and name: keep it within
    /// the 112-byte allocator class (the server's memory per znode depends on it).
    #[test]
    fn node_stays_small() {
        assert!(
            std::mem::size_of::<Node>() <= 104,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn children_set_comes_and_goes() {
        let mut c = Children::default();
        assert!(c.is_empty() && c.iter().next().is_none());
        assert!(c.insert("b".into()) && c.insert("a".into()) && !c.insert("a".into()));
        assert_eq!(c.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(c.contains("a") && !c.contains("c"));
        assert!(c.remove("a") && !c.remove("a") && c.remove("b"));
        assert!(c.is_empty() && c.0.is_none());
        assert_eq!(c.len(), 0);
    }

    fn op(zxid: i64, op: Op) -> (Txn, Vec<Change>) {
        (txn(zxid, TxnBody::Op { session: 7, op }), Vec::new())
    }

    #[test]
    fn fresh_tree_matches_zookeeper() {
        let t = DataTree::new();
        assert_eq!(t.exists("/").unwrap().unwrap().cversion, -1);
        assert_eq!(t.exists("/zookeeper").unwrap().unwrap().cversion, -2);
        assert_eq!(t.get("/zookeeper/config").unwrap().0, b"");
    }

    #[test]
    fn sequence_counter_and_cversion() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        let (x, _) = op(1, Op::create("/p", b"".to_vec(), CreateMode::Persistent));
        t.apply(&x, &mut ch);
        let (x, _) = op(2, Op::create("/p/a", b"".to_vec(), CreateMode::Persistent));
        t.apply(&x, &mut ch);
        let (x, _) = op(3, Op::delete("/p/a", None));
        t.apply(&x, &mut ch);
        let (x, _) = op(
            4,
            Op::create("/p/s", b"".to_vec(), CreateMode::PersistentSequential),
        );
        match t.apply(&x, &mut ch) {
            TxnResult::Op(Ok(OpResult::Create { path, .. })) => assert_eq!(path, "/p/s0000000001"),
            other => panic!("{other:?}"),
        }
        let s = t.exists("/p").unwrap().unwrap();
        assert_eq!(s.cversion, 3);
        assert_eq!(s.pzxid, 4);
        assert_eq!(s.num_children, 1);
    }

    #[test]
    fn failed_multi_rolls_back_everything() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        let before = t.clone();
        let m = txn(
            1,
            TxnBody::Multi {
                session: 7,
                ops: vec![
                    Op::create("/a", b"x".to_vec(), CreateMode::Persistent),
                    Op::create("/a/b", b"".to_vec(), CreateMode::PersistentSequential),
                    Op::set("/a", b"y".to_vec(), Some(0)),
                    Op::delete("/zookeeper/quota", Some(9)),
                ],
            },
        );
        match t.apply(&m, &mut ch) {
            TxnResult::Multi(Err(Error::MultiFailed { index: 3, .. })) => {}
            other => panic!("{other:?}"),
        }
        assert!(ch.is_empty());
        assert!(t.exists("/a").unwrap().is_none());
        assert_eq!(
            t.exists("/").unwrap(),
            before.exists("/").unwrap(),
            "root Stat restored"
        );
    }
}
