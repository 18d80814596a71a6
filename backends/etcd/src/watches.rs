//! Watch registrations of one handle and ZooKeeper's firing rules, fed by the handle's single
//! namespace-wide etcd watch stream.
//!
//! A registration is made *before* the read it belongs to and armed with the read's revision R
//! afterwards: events the stream delivers in between are kept, and on arming only those with a
//! revision above R count. So nothing between a read and its watch is lost, and no watch needs a
//! stream of its own (etcd 3.4 serves watches that start in the past from a 100 ms loop).

use menagerie_core::path;
use menagerie_core::{
    Error, EventType, OneshotWatch, PersistentTrigger, PersistentWatch, WatchTrigger, WatchedEvent,
};
use std::collections::HashMap;

/// What a registration watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    /// get / exists: created, data changed, deleted at the path.
    Data,
    /// children: children changed at the path, and its deletion.
    Child,
    /// Persistent: everything at the path, children changed included.
    Persistent,
    /// Persistent recursive: created / data changed / deleted at the path and below.
    Recursive,
}

/// What happened to a node key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeChange {
    Created,
    Changed,
    Deleted,
}

#[derive(Debug)]
enum Sink {
    Once(WatchTrigger),
    Stream(PersistentTrigger),
}

#[derive(Debug)]
struct Reg {
    id: u64,
    kind: WatchKind,
    generation: u64,
    armed: Option<i64>,
    pending: Vec<(i64, WatchedEvent)>,
    sink: Sink,
}

impl Reg {
    fn abandoned(&self) -> bool {
        match &self.sink {
            Sink::Once(t) => t.is_abandoned(),
            Sink::Stream(t) => t.is_abandoned(),
        }
    }
}

/// Every watch of one handle.
#[derive(Debug, Default)]
pub(crate) struct WatchTable {
    next_id: u64,
    by_path: HashMap<String, Vec<Reg>>,
    paths: HashMap<u64, String>,
    recursive: usize,
}

/// A value returned to the user for a registration.
pub(crate) enum Handle {
    Once(OneshotWatch),
    Stream(PersistentWatch),
}

impl WatchTable {
    /// Registers a watch (not armed yet) for `generation` of the session; returns its id.
    pub(crate) fn register(&mut self, p: &str, kind: WatchKind, generation: u64) -> (u64, Handle) {
        self.next_id += 1;
        let id = self.next_id;
        let (sink, handle) = match kind {
            WatchKind::Data | WatchKind::Child => {
                let (t, w) = OneshotWatch::channel();
                (Sink::Once(t), Handle::Once(w))
            }
            WatchKind::Persistent | WatchKind::Recursive => {
                let (t, w) = PersistentWatch::channel();
                (Sink::Stream(t), Handle::Stream(w))
            }
        };
        if kind == WatchKind::Recursive {
            self.recursive += 1;
        }
        let list = self.by_path.entry(p.to_string()).or_default();
        let before = list.len();
        let mut dropped_recursive = 0;
        list.retain(|r| {
            let keep = !r.abandoned();
            if !keep {
                dropped_recursive += usize::from(r.kind == WatchKind::Recursive);
            }
            keep
        });
        if list.len() != before {
            let live: std::collections::HashSet<u64> = list.iter().map(|r| r.id).collect();
            self.paths.retain(|id, q| q != p || live.contains(id));
        }
        self.recursive -= dropped_recursive;
        list.push(Reg {
            id,
            kind,
            generation,
            armed: None,
            pending: Vec::new(),
            sink,
        });
        self.paths.insert(id, p.to_string());
        (id, handle)
    }

    fn take(&mut self, id: u64) -> Option<Reg> {
        let p = self.paths.remove(&id)?;
        let list = self.by_path.get_mut(&p)?;
        let i = list.iter().position(|r| r.id == id)?;
        let reg = list.remove(i);
        if list.is_empty() {
            self.by_path.remove(&p);
        }
        if reg.kind == WatchKind::Recursive {
            self.recursive -= 1;
        }
        Some(reg)
    }

    /// Forgets a registration (its read failed).
    pub(crate) fn unregister(&mut self, id: u64) {
        self.take(id);
    }

    /// Arms a registration with the revision of its read: events after `rev` fire it.
    pub(crate) fn arm(&mut self, id: u64, rev: i64) {
        let Some(p) = self.paths.get(&id).cloned() else {
            return;
        };
        let Some(list) = self.by_path.get_mut(&p) else {
            return;
        };
        let Some(reg) = list.iter_mut().find(|r| r.id == id) else {
            return;
        };
        let pending = std::mem::take(&mut reg.pending);
        reg.armed = Some(rev);
        let mut fire_once = None;
        for (_, ev) in pending.into_iter().filter(|(r, _)| *r > rev) {
            match &reg.sink {
                Sink::Once(_) => {
                    fire_once = Some(ev);
                    break;
                }
                Sink::Stream(t) => {
                    t.send(ev);
                }
            }
        }
        if let Some(ev) = fire_once {
            if let Some(Reg {
                sink: Sink::Once(t),
                ..
            }) = self.take(id)
            {
                t.fire(ev);
            }
        }
    }

    /// Delivers the change of node `p` at revision `rev` to every matching registration.
    pub(crate) fn dispatch(&mut self, rev: i64, p: &str, change: NodeChange) {
        let (at_node, for_recursive) = match change {
            NodeChange::Created => (EventType::NodeCreated, EventType::NodeCreated),
            NodeChange::Changed => (EventType::NodeDataChanged, EventType::NodeDataChanged),
            NodeChange::Deleted => (EventType::NodeDeleted, EventType::NodeDeleted),
        };
        // At the node itself.
        self.deliver(p, rev, |kind| match (kind, change) {
            (WatchKind::Data | WatchKind::Persistent | WatchKind::Recursive, _) => {
                Some(WatchedEvent::new(at_node, p))
            }
            (WatchKind::Child, NodeChange::Deleted) => {
                Some(WatchedEvent::new(EventType::NodeDeleted, p))
            }
            (WatchKind::Child, _) => None,
        });
        // At the parent: children changed on create / delete.
        if change != NodeChange::Changed {
            if let Some(parent) = path::parent(p) {
                self.deliver(parent, rev, |kind| match kind {
                    WatchKind::Child | WatchKind::Persistent => {
                        Some(WatchedEvent::new(EventType::NodeChildrenChanged, parent))
                    }
                    _ => None,
                });
            }
        }
        // Recursive watches on the ancestors.
        if self.recursive > 0 {
            let mut ancestors: Vec<&str> = path::ancestors(p);
            if p != "/" {
                ancestors.insert(0, "/");
            }
            for a in ancestors {
                self.deliver(a, rev, |kind| {
                    (kind == WatchKind::Recursive).then(|| WatchedEvent::new(for_recursive, p))
                });
            }
        }
    }

    fn deliver(
        &mut self,
        p: &str,
        rev: i64,
        event_for: impl Fn(WatchKind) -> Option<WatchedEvent>,
    ) {
        let Some(list) = self.by_path.get_mut(p) else {
            return;
        };
        // Watches that fire once, and those nobody awaits any more: both go.
        let mut fired = Vec::new();
        let mut dropped = Vec::new();
        for reg in list.iter_mut() {
            let Some(ev) = event_for(reg.kind) else {
                continue;
            };
            // Nobody awaits it any more (a dropped watch, or a read cancelled before arming):
            // forget it rather than keep collecting events for it.
            if reg.abandoned() {
                dropped.push(reg.id);
                continue;
            }
            match reg.armed {
                None => reg.pending.push((rev, ev)),
                Some(r) if rev > r => match &reg.sink {
                    Sink::Once(_) => fired.push((reg.id, ev)),
                    Sink::Stream(t) => {
                        if !t.send(ev) {
                            dropped.push(reg.id);
                        }
                    }
                },
                Some(_) => {}
            }
        }
        for id in dropped {
            self.take(id);
        }
        for (id, ev) in fired {
            if let Some(Reg {
                sink: Sink::Once(t),
                ..
            }) = self.take(id)
            {
                t.fire(ev);
            }
        }
    }

    /// Ends every registration of a generation up to `generation` with `error`.
    pub(crate) fn end(&mut self, generation: u64, error: &Error) {
        let ids: Vec<u64> = self
            .by_path
            .values()
            .flatten()
            .filter(|r| r.generation <= generation)
            .map(|r| r.id)
            .collect();
        for id in ids {
            if let Some(reg) = self.take(id) {
                match reg.sink {
                    Sink::Once(t) => t.fail(error.clone()),
                    Sink::Stream(t) => t.fail(error.clone()),
                }
            }
        }
    }

    /// Number of registrations.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.paths.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(h: Handle) -> OneshotWatch {
        match h {
            Handle::Once(w) => w,
            Handle::Stream(_) => panic!("expected a one-shot watch"),
        }
    }

    #[tokio::test]
    async fn events_between_read_and_arm_count_only_after_the_read() {
        let mut t = WatchTable::default();
        let (id, h) = t.register("/a", WatchKind::Data, 1);
        let w = once(h);
        t.dispatch(5, "/a", NodeChange::Changed); // seen by the read at 7
        t.arm(id, 7);
        assert_eq!(t.len(), 1);
        t.dispatch(8, "/a", NodeChange::Deleted);
        assert_eq!(t.len(), 0);
        assert_eq!(w.await.unwrap().event_type, EventType::NodeDeleted);

        let (id, h) = t.register("/a", WatchKind::Data, 1);
        let w = once(h);
        t.dispatch(9, "/a", NodeChange::Created); // after the read at 8
        t.arm(id, 8);
        assert_eq!(w.await.unwrap().event_type, EventType::NodeCreated);
    }

    #[tokio::test]
    async fn child_watch_rules() {
        let mut t = WatchTable::default();
        let (id, h) = t.register("/p", WatchKind::Child, 1);
        t.arm(id, 1);
        let w = once(h);
        t.dispatch(2, "/p/c", NodeChange::Changed);
        t.dispatch(3, "/p/c/d", NodeChange::Created);
        assert_eq!(
            t.len(),
            1,
            "data changes and grandchildren do not fire a child watch"
        );
        t.dispatch(4, "/p/c", NodeChange::Deleted);
        let ev = w.await.unwrap();
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeChildrenChanged, "/p")
        );
    }

    #[test]
    fn abandoned_registrations_are_forgotten_at_their_next_event() {
        let mut t = WatchTable::default();
        // A read cancelled between registering and arming: its handle is dropped.
        let (_, h) = t.register("/a", WatchKind::Data, 1);
        drop(h);
        // A watch armed, then dropped by its caller.
        let (id, h) = t.register("/b", WatchKind::Child, 1);
        t.arm(id, 1);
        drop(h);
        assert_eq!(t.len(), 2);
        t.dispatch(2, "/a", NodeChange::Changed);
        t.dispatch(3, "/b/c", NodeChange::Changed); // not for a child watch: kept
        assert_eq!(t.len(), 1);
        t.dispatch(4, "/b/c", NodeChange::Created);
        assert_eq!(t.len(), 0);
    }

    #[tokio::test]
    async fn expiry_ends_watches() {
        let mut t = WatchTable::default();
        let (_, h) = t.register("/p", WatchKind::Data, 1);
        t.end(1, &Error::SessionExpired);
        assert_eq!(once(h).await, Err(Error::SessionExpired));
    }
}
