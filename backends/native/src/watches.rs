//! Watch registrations and ZooKeeper's firing rules.
//!
//! - create at P: data/exists watches on P (NodeCreated), child watches on parent(P).
//! - delete at P: data and child watches on P (NodeDeleted), child watches on parent(P).
//! - set at P: data watches on P (NodeDataChanged). A child's set never reaches the parent's
//!   child watch.
//! - persistent watches on P see every event at P, children changed included; recursive ones see
//!   created / deleted / data changed at P and below, never children changed.
//!
//! One-shot watches are removed when they fire; every watch belongs to a session and ends with an
//! error when that session does.

use crate::tree::Change;
use menagerie_core::path;
use menagerie_core::{
    AddWatchMode, Error, EventType, OneshotWatch, PersistentTrigger, PersistentWatch, SessionId,
    WatchTrigger, WatchedEvent,
};
use std::collections::HashMap;

type Oneshots = HashMap<String, Vec<(SessionId, WatchTrigger)>>;

#[derive(Debug)]
struct Persistent {
    session: SessionId,
    trigger: PersistentTrigger,
    recursive: bool,
}

/// All watches registered on one tree.
#[derive(Debug, Default)]
pub struct WatchTable {
    data: Oneshots,
    child: Oneshots,
    persistent: HashMap<String, Vec<Persistent>>,
    recursive: usize,
}

fn add_oneshot(table: &mut Oneshots, p: &str, session: SessionId) -> OneshotWatch {
    let (trigger, watch) = OneshotWatch::channel();
    let list = table.entry(p.to_string()).or_default();
    // Forget watches nobody waits for any more, so abandoned waits cannot pile up.
    list.retain(|(_, t)| !t.is_abandoned());
    list.push((session, trigger));
    watch
}

fn fire_oneshots(table: &mut Oneshots, p: &str, event: EventType, out: &mut usize) {
    if let Some(list) = table.remove(p) {
        for (_, t) in list {
            *out += 1;
            t.fire(WatchedEvent::new(event, p));
        }
    }
}

impl WatchTable {
    /// A data watch (set by get, or by exists whatever the node's presence).
    pub fn add_data(&mut self, p: &str, session: SessionId) -> OneshotWatch {
        add_oneshot(&mut self.data, p, session)
    }

    /// A child watch.
    pub fn add_child(&mut self, p: &str, session: SessionId) -> OneshotWatch {
        add_oneshot(&mut self.child, p, session)
    }

    /// A persistent watch.
    pub fn add_persistent(
        &mut self,
        p: &str,
        session: SessionId,
        mode: AddWatchMode,
    ) -> PersistentWatch {
        let (trigger, watch) = PersistentWatch::channel();
        let recursive = mode == AddWatchMode::PersistentRecursive;
        if recursive {
            self.recursive += 1;
        }
        let list = self.persistent.entry(p.to_string()).or_default();
        list.push(Persistent {
            session,
            trigger,
            recursive,
        });
        watch
    }

    /// Fires every watch the changes trigger; returns how many notifications were sent.
    pub fn fire(&mut self, changes: &[Change]) -> usize {
        let mut sent = 0;
        for c in changes {
            match c.event {
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    fire_oneshots(&mut self.data, &c.path, c.event, &mut sent);
                }
                EventType::NodeDeleted => {
                    fire_oneshots(&mut self.data, &c.path, c.event, &mut sent);
                    fire_oneshots(&mut self.child, &c.path, c.event, &mut sent);
                }
                EventType::NodeChildrenChanged => {
                    fire_oneshots(&mut self.child, &c.path, c.event, &mut sent);
                }
            }
            if !self.persistent.is_empty() {
                sent += self.fire_persistent(c);
            }
        }
        sent
    }

    fn fire_persistent(&mut self, c: &Change) -> usize {
        let mut sent = 0;
        let mut dropped = 0;
        let children_changed = c.event == EventType::NodeChildrenChanged;
        let mut visit = |list: &mut Vec<Persistent>, exact: bool| {
            list.retain(|w| {
                let wants = if w.recursive {
                    !children_changed
                } else {
                    exact
                };
                if !wants {
                    return true;
                }
                if w.trigger.send(WatchedEvent::new(c.event, c.path.clone())) {
                    sent += 1;
                    true
                } else {
                    dropped += usize::from(w.recursive);
                    false
                }
            });
        };
        if let Some(list) = self.persistent.get_mut(&c.path) {
            visit(list, true);
        }
        if self.recursive > 0 && !children_changed {
            let mut ancestors: Vec<&str> = path::ancestors(&c.path);
            if c.path != "/" {
                ancestors.insert(0, "/");
            }
            for a in ancestors {
                if let Some(list) = self.persistent.get_mut(a) {
                    visit(list, false);
                }
            }
        }
        self.recursive -= dropped;
        self.persistent.retain(|_, l| !l.is_empty());
        sent
    }

    /// Ends every watch of `session` with `error` (SessionExpired or Closed).
    pub fn end_session(&mut self, session: SessionId, error: &Error) {
        for table in [&mut self.data, &mut self.child] {
            for list in table.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    if list[i].0 == session {
                        let (_, t) = list.swap_remove(i);
                        t.fail(error.clone());
                    } else {
                        i += 1;
                    }
                }
            }
            table.retain(|_, l| !l.is_empty());
        }
        let mut dropped = 0;
        for list in self.persistent.values_mut() {
            list.retain(|w| {
                if w.session == session {
                    w.trigger.fail(error.clone());
                    dropped += usize::from(w.recursive);
                    false
                } else {
                    true
                }
            });
        }
        self.recursive -= dropped;
        self.persistent.retain(|_, l| !l.is_empty());
    }

    /// Number of registered watches (one-shot and persistent) and watched paths.
    pub fn counts(&self) -> (usize, usize) {
        let watches = self.data.values().map(Vec::len).sum::<usize>()
            + self.child.values().map(Vec::len).sum::<usize>()
            + self.persistent.values().map(Vec::len).sum::<usize>();
        let mut paths: std::collections::HashSet<&String> = self.data.keys().collect();
        paths.extend(self.child.keys());
        paths.extend(self.persistent.keys());
        (watches, paths.len())
    }
}
