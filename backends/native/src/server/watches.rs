//! Watches of wire clients: registered per connection (as ZooKeeper does: a reconnecting client
//! re-registers them with setWatches), delivered as `xid -1` notification frames into the
//! connection's outgoing queue, one notification per path and connection even when several of
//! its watches match.

use super::codec::Writer;
use super::conn::ConnSink;
use super::proto::xid;
use crate::tree::Change;
use menagerie_core::{path, EventType};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A connection's id, unique for the server's lifetime.
pub type ConnId = u64;

/// Kinds of wire watch registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// One-shot data / exist watch.
    Data = 0,
    /// One-shot child watch.
    Child = 1,
    /// Persistent watch on one node.
    Persistent = 2,
    /// Persistent recursive watch on a subtree.
    Recursive = 3,
}

/// The wire watch table and the connections notifications go to.
#[derive(Default)]
pub struct WireWatches {
    tables: [HashMap<String, HashSet<ConnId>>; 4],
    by_conn: HashMap<ConnId, HashSet<(WireKind, String)>>,
    sinks: HashMap<ConnId, Arc<ConnSink>>,
}

impl std::fmt::Debug for WireWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireWatches")
            .field("connections", &self.sinks.len())
            .field("watches", &self.count())
            .finish()
    }
}

/// A notification frame: ReplyHeader{-1, zxid, 0} + WatcherEvent{type, SyncConnected, path}.
pub(crate) fn notification(event: EventType, p: &str, zxid: i64) -> Vec<u8> {
    let mut w = Writer::frame();
    w.int(xid::NOTIFICATION)
        .long(zxid)
        .int(0)
        .int(event.code())
        .int(3)
        .string(p);
    w.finish_frame()
}

impl WireWatches {
    /// Registers a connection that can receive notifications.
    pub(crate) fn add_conn(&mut self, id: ConnId, sink: Arc<ConnSink>) {
        self.sinks.insert(id, sink);
    }

    /// Forgets a connection and all its watches.
    pub(crate) fn remove_conn(&mut self, id: ConnId) {
        self.sinks.remove(&id);
        if let Some(set) = self.by_conn.remove(&id) {
            for (kind, p) in set {
                let table = &mut self.tables[kind as usize];
                if let Some(s) = table.get_mut(&p) {
                    s.remove(&id);
                    if s.is_empty() {
                        table.remove(&p);
                    }
                }
            }
        }
    }

    /// The sink of a connection.
    pub(crate) fn sink(&self, id: ConnId) -> Option<&Arc<ConnSink>> {
        self.sinks.get(&id)
    }

    /// Adds a watch (set semantics: adding it twice is one watch).
    pub(crate) fn add(&mut self, id: ConnId, kind: WireKind, p: &str) {
        self.tables[kind as usize]
            .entry(p.to_string())
            .or_default()
            .insert(id);
        self.by_conn
            .entry(id)
            .or_default()
            .insert((kind, p.to_string()));
    }

    /// True when connection `id` has a watch of `kind` at `p`.
    pub(crate) fn has(&self, id: ConnId, kind: WireKind, p: &str) -> bool {
        self.tables[kind as usize]
            .get(p)
            .is_some_and(|s| s.contains(&id))
    }

    /// Removes one watch; returns whether it was there.
    pub(crate) fn remove(&mut self, id: ConnId, kind: WireKind, p: &str) -> bool {
        let table = &mut self.tables[kind as usize];
        let Some(s) = table.get_mut(p) else {
            return false;
        };
        let was = s.remove(&id);
        if s.is_empty() {
            table.remove(p);
        }
        if was {
            if let Some(set) = self.by_conn.get_mut(&id) {
                set.remove(&(kind, p.to_string()));
                if set.is_empty() {
                    self.by_conn.remove(&id);
                }
            }
        }
        was
    }

    fn take_oneshots(&mut self, kind: WireKind, p: &str, out: &mut Vec<ConnId>) {
        if let Some(set) = self.tables[kind as usize].remove(p) {
            for id in set {
                if let Some(c) = self.by_conn.get_mut(&id) {
                    c.remove(&(kind, p.to_string()));
                    if c.is_empty() {
                        self.by_conn.remove(&id);
                    }
                }
                out.push(id);
            }
        }
    }

    /// Sends the notifications `changes` (made by the write with `zxid`) trigger.
    pub(crate) fn fire(&mut self, changes: &[Change], zxid: i64) {
        if self.by_conn.is_empty() {
            return;
        }
        let mut targets: Vec<ConnId> = Vec::new();
        for c in changes {
            targets.clear();
            match c.event {
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    self.take_oneshots(WireKind::Data, &c.path, &mut targets);
                }
                EventType::NodeDeleted => {
                    self.take_oneshots(WireKind::Data, &c.path, &mut targets);
                    self.take_oneshots(WireKind::Child, &c.path, &mut targets);
                }
                EventType::NodeChildrenChanged => {
                    self.take_oneshots(WireKind::Child, &c.path, &mut targets);
                }
            }
            if let Some(s) = self.tables[WireKind::Persistent as usize].get(&c.path) {
                targets.extend(s.iter().copied());
            }
            let recursive = &self.tables[WireKind::Recursive as usize];
            if c.event != EventType::NodeChildrenChanged && !recursive.is_empty() {
                if let Some(s) = recursive.get(&c.path) {
                    targets.extend(s.iter().copied());
                }
                if c.path != "/" {
                    if let Some(s) = recursive.get("/") {
                        targets.extend(s.iter().copied());
                    }
                    for a in path::ancestors(&c.path) {
                        if a != "/" {
                            if let Some(s) = recursive.get(a) {
                                targets.extend(s.iter().copied());
                            }
                        }
                    }
                }
            }
            if targets.is_empty() {
                continue;
            }
            targets.sort_unstable();
            targets.dedup();
            let frame = notification(c.event, &c.path, zxid);
            for id in &targets {
                if let Some(sink) = self.sinks.get(id) {
                    sink.push(zxid, frame.clone(), None);
                }
            }
        }
    }

    /// Number of watches.
    pub fn count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.values().map(HashSet::len).sum::<usize>())
            .sum()
    }

    /// Number of watched paths.
    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&String> = HashSet::new();
        for t in &self.tables {
            paths.extend(t.keys());
        }
        paths.len()
    }

    /// Number of connections with at least one watch.
    pub fn watching_conns(&self) -> usize {
        self.by_conn.len()
    }
}
