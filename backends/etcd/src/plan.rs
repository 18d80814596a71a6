//! Turning writes (single operations and multis) into ONE etcd transaction.
//!
//! The operations are simulated in order, ZooKeeper style (later operations see earlier ones),
//! against what is known of the keys they touch. Every fact about the current state the outcome
//! depends on (a node exists or not, is not ephemeral, has a version, has no children, the
//! parent's child counter) becomes a `Compare` of the transaction; the writes go in its success
//! branch. Where a fact is not known the simulation assumes the value under which the operation
//! succeeds — the compare makes the transaction fail if the assumption was wrong. The failure
//! branch reads every key involved, at the same revision; simulating again on that snapshot
//! names the operation that failed and why (ZooKeeper's per-operation results), or, when the
//! operations could succeed after all (a stale guess, e.g. of a sequence counter), gives the
//! facts for the next attempt. Nothing is ever decided from a read outside the transaction.

use crate::layout::{self, meta_value, node_value, offsets_of, offsets_value, Kind, Kv, Layout};
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, TxnOp};
use menagerie_core::path::{self, validate_path};
use menagerie_core::sequence::format_sequence;
use menagerie_core::{CreateMode, Error, Op, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What is known of the keys: `Some(None)` = known absent, missing = unknown.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    pub(crate) keys: HashMap<Vec<u8>, Option<Kv>>,
    /// Known child names of a path.
    pub(crate) kids: HashMap<String, BTreeSet<String>>,
    /// The revision every key was read at; 0 when the keys come from different answers (hints).
    pub(crate) rev: i64,
    /// Some keys were replaced by later knowledge (counter hints): good for guesses, which the
    /// compares check, but an operation is only failed on a snapshot read at one revision.
    pub(crate) mixed: bool,
}

/// Why a simulation stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A concrete value is needed that is not known (read the snapshot first).
    NeedRead,
    /// Operation `index` fails with `error` (decided on known facts only).
    Fail { index: usize, error: Error },
}

/// A result to complete once the transaction's revision (and post-state) is known.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Create {
        path: String,
        data_len: usize,
        owner: i64,
        time: i64,
    },
    Set {
        path: String,
        data_len: usize,
        /// Sets of the same node after this one in the multi.
        later_sets: i64,
        time: i64,
    },
    Delete,
    Check,
}

/// A transaction ready to run.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) compares: Vec<Compare>,
    pub(crate) writes: Vec<TxnOp>,
    pub(crate) results: Vec<Pending>,
    /// Paths whose post-transaction state is read in the success branch (for set results).
    pub(crate) post: Vec<String>,
    /// Paths whose N, M, O keys the failure branch reads.
    pub(crate) snap_paths: Vec<String>,
    /// Paths whose children the failure branch lists.
    pub(crate) snap_kids: Vec<String>,
    /// True when the plan writes nothing (only checks).
    pub(crate) read_only: bool,
    /// Parents whose child counter the plan compares: (path, etcd version of the meta key the
    /// plan expects; the transaction leaves it one higher).
    pub(crate) counters: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Default)]
struct VNode {
    /// Existence before the multi, once looked at.
    pre_exists: Option<bool>,
    /// The node key before the multi, when known.
    pre_n: Option<Kv>,
    /// (voff, coff) before the multi, once looked at; `pre_o_present` says if the key exists.
    pre_off: Option<(i64, i64)>,
    pre_o_present: bool,
    /// ZooKeeper version before the multi, once known or assumed.
    pre_version: Option<i64>,
    /// Child counter before the multi, once known.
    pre_counter: Option<i64>,
    /// Lease before the multi, once known or assumed.
    pre_lease: Option<i64>,
    /// Children before the multi deleted by it (names).
    kids_removed: BTreeSet<String>,
    /// Children created by the multi and still there.
    kids_added: BTreeSet<String>,
    /// Whether the pre-existing children were checked to be only `kids_removed`.
    exists_now: Option<bool>,
    created: bool,
    deleted_pre: bool,
    lease: i64,
    sets: i64,
    data: Option<Vec<u8>>,
    mtime: i64,
    child_creates: i64,
    child_deletes: i64,
}

/// Simulates `ops` on `snap` and plans the transaction.
pub(crate) struct Sim<'a> {
    layout: &'a Layout,
    snap: &'a Snapshot,
    lease: i64,
    now: i64,
    max_data: usize,
    nodes: BTreeMap<String, VNode>,
    compares: Vec<Compare>,
    seen_compares: HashSet<(Vec<u8>, Vec<u8>, u8, i64)>,
    assumed: bool,
    /// Paths whose children must be known to be empty (with exclusions): (path, excluded names).
    empty_checks: Vec<(String, BTreeSet<String>)>,
    snap_kids: BTreeSet<String>,
    counters: Vec<(String, i64)>,
}

/// Unsupported create modes (no containers or TTL nodes on etcd).
pub(crate) fn check_mode(mode: CreateMode) -> Result<()> {
    match mode {
        CreateMode::Container => Err(Error::unsupported(
            "container nodes on etcd (capabilities().container is false)",
        )),
        CreateMode::PersistentWithTtl(_) | CreateMode::PersistentSequentialWithTtl(_) => Err(
            Error::unsupported("TTL nodes on etcd (capabilities().ttl is false)"),
        ),
        _ => Ok(()),
    }
}

fn parent_of(p: &str) -> String {
    path::parent(p).unwrap_or("/").to_string()
}

impl<'a> Sim<'a> {
    pub(crate) fn new(
        layout: &'a Layout,
        snap: &'a Snapshot,
        lease: i64,
        max_data: usize,
    ) -> Sim<'a> {
        Sim {
            layout,
            snap,
            lease,
            now: layout::now_ms(),
            max_data,
            nodes: BTreeMap::new(),
            compares: Vec::new(),
            seen_compares: HashSet::new(),
            assumed: snap.mixed,
            empty_checks: Vec::new(),
            snap_kids: BTreeSet::new(),
            counters: Vec::new(),
        }
    }

    fn cmp(&mut self, key: Vec<u8>, end: Option<Vec<u8>>, what: u8, op: CompareOp, v: i64) {
        let sig = (
            key.clone(),
            end.clone().unwrap_or_default(),
            what * 8 + op as u8,
            v,
        );
        if !self.seen_compares.insert(sig) {
            return;
        }
        let mut c = match what {
            0 => Compare::create_revision(key, op, v),
            1 => Compare::mod_revision(key, op, v),
            2 => Compare::version(key, op, v),
            _ => Compare::lease(key, op, v),
        };
        if let Some(end) = end {
            c = c.with_range(end);
        }
        self.compares.push(c);
    }

    fn known(&self, key: &[u8]) -> Option<Option<&Kv>> {
        self.snap.keys.get(key).map(|o| o.as_ref())
    }

    fn node(&mut self, p: &str) -> &mut VNode {
        self.nodes.entry(p.to_string()).or_default()
    }

    /// Does `p` exist now? `want` is the answer under which the caller succeeds (assumed when unknown).
    fn exists(&mut self, p: &str, want: bool) -> bool {
        if let Some(now) = self.node(p).exists_now {
            return now;
        }
        let key = self.layout.node(p);
        let pre = match self.known(&key) {
            Some(kv) => {
                let kv = kv.cloned();
                let e = kv.is_some();
                self.node(p).pre_n = kv;
                e
            }
            None => {
                self.assumed = true;
                want
            }
        };
        if pre {
            self.cmp(key, None, 0, CompareOp::Greater, 0);
        } else {
            self.cmp(key, None, 0, CompareOp::Equal, 0);
        }
        let v = self.node(p);
        v.pre_exists = Some(pre);
        v.exists_now = Some(pre);
        pre
    }

    /// Lease of existing `p`; `want` is assumed when unknown (only for nodes that existed before).
    fn lease_of(&mut self, p: &str, want: Option<i64>) -> std::result::Result<i64, Stop> {
        let v = self.node(p);
        if v.created {
            return Ok(v.lease);
        }
        if let Some(l) = v.pre_lease {
            return Ok(l);
        }
        let l = match v.pre_n.as_ref().map(|n| n.lease) {
            Some(l) => l,
            None => match want {
                Some(w) => {
                    self.assumed = true;
                    w
                }
                None => return Err(Stop::NeedRead),
            },
        };
        self.cmp(self.layout.node(p), None, 3, CompareOp::Equal, l);
        self.node(p).pre_lease = Some(l);
        Ok(l)
    }

    /// (voff, coff) of `p` before the multi (assumed (0, 0), i.e. no offsets key, when unknown).
    fn offsets(&mut self, p: &str) -> (i64, i64) {
        if let Some(off) = self.node(p).pre_off {
            return off;
        }
        let key = self.layout.offsets(p);
        let (off, present) = match self.known(&key) {
            Some(Some(o)) => {
                let r = o.mod_revision;
                let off = offsets_of(Some(o));
                self.cmp(key, None, 1, CompareOp::Equal, r);
                (off, true)
            }
            Some(None) => {
                self.cmp(key, None, 0, CompareOp::Equal, 0);
                ((0, 0), false)
            }
            None => {
                self.assumed = true;
                self.cmp(key, None, 0, CompareOp::Equal, 0);
                ((0, 0), false)
            }
        };
        let v = self.node(p);
        v.pre_off = Some(off);
        v.pre_o_present = present;
        off
    }

    /// The current ZooKeeper version of existing `p`; `want` is assumed when unknown.
    fn version(&mut self, p: &str, want: Option<i64>) -> std::result::Result<i64, Stop> {
        let v = self.node(p);
        if v.created {
            return Ok(v.sets);
        }
        if let Some(pre) = v.pre_version {
            return Ok(pre + v.sets);
        }
        let sets = v.sets;
        let (voff, _) = self.offsets(p);
        let key = self.layout.node(p);
        let pre = match self.node(p).pre_n.clone() {
            Some(n) => {
                self.cmp(key, None, 2, CompareOp::Equal, n.version);
                n.version - 1 + voff
            }
            None => match want {
                Some(w) => {
                    self.assumed = true;
                    let pre = w - sets;
                    self.cmp(key, None, 2, CompareOp::Equal, pre + 1 - voff);
                    pre
                }
                None => return Err(Stop::NeedRead),
            },
        };
        self.node(p).pre_version = Some(pre);
        Ok(pre + sets)
    }

    /// The current child counter of existing `p` (needs a known meta key).
    fn counter(&mut self, p: &str) -> std::result::Result<i64, Stop> {
        let v = self.node(p);
        if v.created {
            return Ok(v.child_creates);
        }
        if let Some(c) = v.pre_counter {
            return Ok(c + v.child_creates);
        }
        let key = self.layout.meta(p);
        let m = match self.known(&key) {
            Some(Some(m)) => m.clone(),
            _ => return Err(Stop::NeedRead),
        };
        let (_, coff) = self.offsets(p);
        self.cmp(key, None, 2, CompareOp::Equal, m.version);
        self.counters.push((p.to_string(), m.version));
        let pre = m.version - 1 + coff;
        let v = self.node(p);
        v.pre_counter = Some(pre);
        Ok(pre + v.child_creates)
    }

    /// Fails operation `index` with `error`: final only if no assumption was made before.
    fn fail(&self, index: usize, error: Error) -> Stop {
        if self.assumed {
            Stop::NeedRead
        } else {
            Stop::Fail { index, error }
        }
    }

    fn check_version(
        &mut self,
        index: usize,
        p: &str,
        version: Option<i32>,
    ) -> std::result::Result<(), Stop> {
        match version {
            Some(v) if v != -1 => {
                let cur = self.version(p, Some(v as i64))?;
                if cur as i32 != v {
                    return Err(self.fail(index, Error::BadVersion { path: p.into() }));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn check_data(&self, index: usize, data: &[u8]) -> std::result::Result<(), Stop> {
        if data.len() > self.max_data {
            return Err(self.fail(
                index,
                Error::DataTooLarge {
                    size: data.len(),
                    limit: self.max_data,
                },
            ));
        }
        Ok(())
    }

    fn static_path(&self, index: usize, p: &str, seq: bool) -> std::result::Result<(), Stop> {
        validate_path(p, seq)
            .and_then(|_| Layout::check_depth(p))
            .map_err(|e| self.fail(index, e))
    }

    /// Simulates one operation.
    pub(crate) fn op(&mut self, index: usize, op: &Op) -> std::result::Result<Pending, Stop> {
        match op {
            Op::Create { path, data, mode } => self.create(index, path, data, *mode),
            Op::SetData {
                path,
                data,
                version,
            } => {
                self.static_path(index, path, false)?;
                self.check_data(index, data)?;
                if !self.exists(path, true) {
                    return Err(self.fail(index, Error::NoNode { path: path.clone() }));
                }
                self.check_version(index, path, *version)?;
                let now = self.now;
                let v = self.node(path);
                v.sets += 1;
                v.data = Some(data.clone());
                v.mtime = now;
                Ok(Pending::Set {
                    path: path.clone(),
                    data_len: data.len(),
                    later_sets: 0,
                    time: now,
                })
            }
            Op::Delete { path, version } => {
                self.static_path(index, path, false)?;
                if path == "/" {
                    return Err(self.fail(
                        index,
                        Error::BadArguments {
                            reason: "the root node cannot be deleted".into(),
                        },
                    ));
                }
                if !self.exists(path, true) {
                    return Err(self.fail(index, Error::NoNode { path: path.clone() }));
                }
                self.check_version(index, path, *version)?;
                self.check_empty(index, path)?;
                let created = self.node(path).created;
                {
                    let v = self.node(path);
                    v.exists_now = Some(false);
                    if created {
                        v.created = false;
                    } else {
                        v.deleted_pre = true;
                    }
                    v.sets = 0;
                    v.data = None;
                }
                let parent = parent_of(path);
                let name = path::basename(path).to_string();
                let pv = self.node(&parent);
                if pv.exists_now.is_none() {
                    // The child existed, so its parent does (no compare needed).
                    pv.pre_exists = Some(true);
                    pv.exists_now = Some(true);
                }
                pv.child_deletes += 1;
                if !pv.kids_added.remove(&name) {
                    pv.kids_removed.insert(name);
                }
                Ok(Pending::Delete)
            }
            Op::Check { path, version } => {
                self.static_path(index, path, false)?;
                if !self.exists(path, true) {
                    return Err(self.fail(index, Error::NoNode { path: path.clone() }));
                }
                self.check_version(index, path, *version)?;
                Ok(Pending::Check)
            }
        }
    }

    fn check_empty(&mut self, index: usize, p: &str) -> std::result::Result<(), Stop> {
        let v = self.node(p);
        if !v.kids_added.is_empty() {
            return Err(self.fail(index, Error::NotEmpty { path: p.into() }));
        }
        if v.created {
            return Ok(());
        }
        let removed = v.kids_removed.clone();
        self.snap_kids.insert(p.to_string());
        match self.snap.kids.get(p) {
            Some(kids) => {
                if kids.iter().any(|k| !removed.contains(k)) {
                    return Err(self.fail(index, Error::NotEmpty { path: p.into() }));
                }
            }
            None => self.assumed = true,
        }
        self.empty_checks.push((p.to_string(), removed));
        Ok(())
    }

    fn create(
        &mut self,
        index: usize,
        p: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> std::result::Result<Pending, Stop> {
        let seq = mode.is_sequential();
        self.static_path(index, p, seq)?;
        if let Err(e) = check_mode(mode) {
            return Err(self.fail(index, e));
        }
        self.check_data(index, data)?;
        if p == "/" && !seq {
            return Err(self.fail(index, Error::NodeExists { path: p.into() }));
        }
        // The parent of `/a/` (sequential) is `/a`; of `/a/b` it is `/a`.
        let slash = p.rfind('/').unwrap_or(0);
        let parent = if slash == 0 {
            "/".to_string()
        } else {
            p[..slash].to_string()
        };
        if !self.exists(&parent, true) {
            return Err(self.fail(index, Error::NoNode { path: parent }));
        }
        if self.lease_of(&parent, Some(0))? != 0 {
            return Err(self.fail(index, Error::NoChildrenForEphemerals { path: p.into() }));
        }
        let full = if seq {
            let n = self.counter(&parent)?;
            format!("{p}{}", format_sequence(n as i32))
        } else {
            p.to_string()
        };
        if let Err(e) = Layout::check_depth(&full) {
            return Err(self.fail(index, e));
        }
        if self.node(&full).deleted_pre {
            return Err(self.fail(
                index,
                Error::unsupported(format!(
                    "deleting and re-creating {full} in one multi on etcd"
                )),
            ));
        }
        if self.exists(&full, false) {
            return Err(self.fail(index, Error::NodeExists { path: full }));
        }
        let owner = if mode.is_ephemeral() { self.lease } else { 0 };
        let now = self.now;
        {
            let v = self.node(&full);
            v.exists_now = Some(true);
            v.created = true;
            v.lease = owner;
            v.sets = 0;
            v.data = Some(data.to_vec());
            v.mtime = now;
            v.child_creates = 0;
            v.child_deletes = 0;
        }
        let name = path::basename(&full).to_string();
        let pv = self.node(&parent);
        pv.child_creates += 1;
        pv.kids_added.insert(name);
        Ok(Pending::Create {
            path: full,
            data_len: data.len(),
            owner,
            time: now,
        })
    }

    /// Simulates every operation; then plans the transaction.
    #[cfg(test)]
    pub(crate) fn run(self, ops: &[Op]) -> std::result::Result<Plan, Stop> {
        self.run_tracked(ops).0
    }

    /// As `run`, also returning every path the simulation looked at (to read on `NeedRead`).
    pub(crate) fn run_tracked(
        mut self,
        ops: &[Op],
    ) -> (std::result::Result<Plan, Stop>, Vec<String>) {
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.op(i, op) {
                Ok(r) => results.push(r),
                Err(stop) => {
                    let touched = self.nodes.keys().cloned().collect();
                    return (Err(stop), touched);
                }
            }
        }
        // Later sets of the same node, for each set's own Stat.
        let mut sets_seen: HashMap<String, i64> = HashMap::new();
        for r in results.iter_mut().rev() {
            if let Pending::Set {
                path, later_sets, ..
            } = r
            {
                let n = sets_seen.entry(path.clone()).or_insert(0);
                *later_sets = *n;
                *n += 1;
            }
        }
        let touched = self.nodes.keys().cloned().collect();
        (self.finish(results), touched)
    }

    fn finish(mut self, results: Vec<Pending>) -> std::result::Result<Plan, Stop> {
        // Emptiness compares (ranges of child keys, skipping the children the multi deletes).
        for (p, removed) in std::mem::take(&mut self.empty_checks) {
            let prefix = self.layout.children_prefix(&p);
            let end = layout::prefix_end(&prefix);
            let mut start = prefix;
            for name in &removed {
                let k = self.layout.child(&p, name);
                if k > start {
                    self.cmp(start.clone(), Some(k.clone()), 0, CompareOp::Equal, 0);
                }
                start = layout::key_after(&k);
            }
            if end > start {
                self.cmp(start, Some(end), 0, CompareOp::Equal, 0);
            }
        }
        let mut writes = Vec::new();
        let paths: Vec<String> = self.nodes.keys().cloned().collect();
        for p in &paths {
            let v = self.nodes.get(p).cloned().unwrap_or_default();
            let exists_now = v.exists_now.unwrap_or(false);
            let n_key = self.layout.node(p);
            let m_key = self.layout.meta(p);
            let o_key = self.layout.offsets(p);
            let d_key = self.layout.deletes(p);
            if v.created && exists_now {
                let data = v.data.clone().unwrap_or_default();
                let lease_opts = || {
                    if v.lease != 0 {
                        Some(PutOptions::new().with_lease(v.lease))
                    } else {
                        None
                    }
                };
                writes.push(TxnOp::put(n_key, node_value(v.mtime, &data), lease_opts()));
                writes.push(TxnOp::put(
                    m_key,
                    meta_value(v.mtime, Kind::Plain),
                    lease_opts(),
                ));
                let (voff, coff) = (v.sets, v.child_creates);
                if voff != 0 || coff != 0 {
                    writes.push(TxnOp::put(o_key, offsets_value(voff, coff), lease_opts()));
                }
                if v.child_deletes > 0 {
                    writes.push(TxnOp::put(d_key, Vec::new(), None));
                }
            } else if v.deleted_pre {
                writes.push(TxnOp::delete(n_key, None));
                writes.push(TxnOp::delete(m_key, None));
                writes.push(TxnOp::delete(o_key, None));
                writes.push(TxnOp::delete(d_key, None));
            } else if exists_now && v.pre_exists == Some(true) {
                if v.sets > 0 {
                    let data = v.data.clone().unwrap_or_default();
                    writes.push(TxnOp::put(
                        n_key,
                        node_value(v.mtime, &data),
                        Some(PutOptions::new().with_ignore_lease()),
                    ));
                }
                if v.child_creates > 0 {
                    writes.push(TxnOp::put(
                        m_key,
                        Vec::new(),
                        Some(PutOptions::new().with_ignore_value().with_ignore_lease()),
                    ));
                }
                let extra_v = (v.sets - 1).max(0);
                let extra_c = (v.child_creates - 1).max(0);
                if extra_v > 0 || extra_c > 0 {
                    let (voff, coff) = self.offsets(p);
                    let present = self.node(p).pre_o_present;
                    let value = offsets_value(voff + extra_v, coff + extra_c);
                    if present {
                        writes.push(TxnOp::put(
                            o_key,
                            value,
                            Some(PutOptions::new().with_ignore_lease()),
                        ));
                    } else {
                        let lease = self.lease_of(p, None)?;
                        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                        writes.push(TxnOp::put(o_key, value, opts));
                    }
                }
                if v.child_deletes > 0 {
                    writes.push(TxnOp::put(d_key, Vec::new(), None));
                }
            }
        }
        let mut post = Vec::new();
        for r in &results {
            if let Pending::Set { path, .. } = r {
                if !post.contains(path) {
                    post.push(path.clone());
                }
            }
        }
        let read_only = writes.is_empty();
        Ok(Plan {
            compares: self.compares,
            writes,
            results,
            post,
            snap_paths: paths,
            snap_kids: self.snap_kids.into_iter().collect(),
            read_only,
            counters: self.counters,
        })
    }
}

/// The reads that give a snapshot of `paths` (N, M, O keys) and of the children of `kids`,
/// in the order [`read_snapshot`] expects.
pub(crate) fn snapshot_reads(layout: &Layout, paths: &[String], kids: &[String]) -> Vec<TxnOp> {
    let mut ops = Vec::with_capacity(paths.len() * 3 + kids.len());
    for p in paths {
        ops.push(TxnOp::get(layout.node(p), None));
        ops.push(TxnOp::get(layout.meta(p), None));
        ops.push(TxnOp::get(layout.offsets(p), None));
    }
    for p in kids {
        ops.push(TxnOp::get(
            layout.children_prefix(p),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ));
    }
    ops
}

/// Builds a snapshot from the responses to [`snapshot_reads`], all read at revision `rev`.
pub(crate) fn read_snapshot(
    layout: &Layout,
    paths: &[String],
    kids: &[String],
    gets: &[etcd_client::GetResponse],
    rev: i64,
) -> Snapshot {
    let mut snap = Snapshot {
        rev,
        ..Snapshot::default()
    };
    let mut it = gets.iter();
    for p in paths {
        for key in [layout.node(p), layout.meta(p), layout.offsets(p)] {
            let kv = it.next().and_then(|g| g.kvs().first()).map(Kv::from);
            snap.keys.insert(key, kv);
        }
    }
    for p in kids {
        let prefix = layout.children_prefix(p);
        let names: BTreeSet<String> = it
            .next()
            .map(|g| {
                g.kvs()
                    .iter()
                    .filter_map(|kv| kv.key().strip_prefix(prefix.as_slice()))
                    .filter_map(|n| std::str::from_utf8(n).ok())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        snap.kids.insert(p.clone(), names);
    }
    snap
}

/// `snap` with `p`'s child counter `ahead` creates further on (`None` when the counter is not
/// known): the plan made on it is the plan for the case that `ahead` other children were created
/// meanwhile, which the same transaction can try when the first guess's compare fails.
pub(crate) fn counter_ahead(
    snap: &Snapshot,
    layout: &Layout,
    p: &str,
    ahead: i64,
) -> Option<Snapshot> {
    let key = layout.meta(p);
    let mut m = snap.keys.get(&key)?.clone()?;
    m.version += ahead;
    let mut s = snap.clone();
    s.keys.insert(key, Some(m));
    s.mixed = true;
    Some(s)
}

/// Adds what is known of `p`'s child counter (its meta and offsets keys) to a snapshot.
pub(crate) fn counter_hint(snap: &mut Snapshot, layout: &Layout, p: &str, m: Kv, o: Option<Kv>) {
    snap.keys.insert(layout.meta(p), Some(m));
    snap.keys.insert(layout.offsets(p), o);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(snap: &Snapshot, ops: &[Op]) -> std::result::Result<Plan, Stop> {
        let l = Layout::new("/t");
        Sim::new(&l, snap, 7, 1024).run(ops)
    }

    #[test]
    fn plain_create_needs_no_read() {
        let p = plan(
            &Snapshot::default(),
            &[Op::create("/a", b"x".to_vec(), CreateMode::Persistent)],
        )
        .unwrap();
        // root exists, root not ephemeral, /a absent
        assert_eq!(p.compares.len(), 3);
        // N(/a), M(/a), M(/) bump
        assert_eq!(p.writes.len(), 3);
    }

    #[test]
    fn sequential_create_needs_the_counter() {
        assert!(matches!(
            plan(
                &Snapshot::default(),
                &[Op::create(
                    "/a-",
                    b"".to_vec(),
                    CreateMode::PersistentSequential
                )]
            ),
            Err(Stop::NeedRead)
        ));
    }

    #[test]
    fn failures_on_assumptions_ask_for_a_read_and_static_ones_do_not() {
        assert!(matches!(
            plan(
                &Snapshot::default(),
                &[Op::create("bad", b"".to_vec(), CreateMode::Persistent)]
            ),
            Err(Stop::Fail { index: 0, .. })
        ));
        assert!(matches!(
            plan(
                &Snapshot::default(),
                &[
                    Op::create("/b", b"".to_vec(), CreateMode::Persistent),
                    Op::create("/b", b"".to_vec(), CreateMode::Persistent)
                ]
            ),
            Err(Stop::NeedRead)
        ));
    }
}
