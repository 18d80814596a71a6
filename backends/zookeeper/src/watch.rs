//! Bridges zookeeper-client's watchers to core's watch values.
//!
//! Each watch is a [`Cell`] holding the zookeeper watcher's future and the core trigger. A small
//! task drives it, and — so that a watch has fired by the time its session can see the change that
//! fired it, as ZooKeeper promises — every operation of the session ends with [`Pump::flush`],
//! which advances the cells woken meanwhile. (ZooKeeper sends a notification before the reply of
//! any later request on the connection; zookeeper-client hands it to the watcher, waking its cell,
//! before it completes that reply.)
//!
//! A cell whose watch value was dropped is dropped too, which removes the zookeeper watcher (and,
//! for the last one on a path, the server's watch).

use crate::convert::event_type;
use menagerie_core::{
    AddWatchMode, Error, OneshotWatch, PersistentTrigger, PersistentWatch, WatchTrigger,
    WatchedEvent,
};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use zookeeper_client as zk;

/// How often a watch task checks whether its watch value was dropped.
/// (core's triggers offer no "receiver dropped" future to wait on instead.)
const ABANDON_CHECK: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error that ends a watch when the session ends with `state`.
fn end_error(state: zk::SessionState, closed: &AtomicBool) -> Error {
    match state {
        zk::SessionState::Closed if closed.load(Ordering::Acquire) => Error::Closed,
        _ => Error::SessionExpired,
    }
}

/// The watches of one handle whose zookeeper watcher was woken since the last flush, plus the
/// persistent watches it holds (by path and mode).
#[derive(Debug, Default)]
pub(crate) struct Pump {
    dirty: Mutex<Vec<Weak<Cell>>>,
    persistent: Mutex<HashMap<(String, bool), usize>>,
}

impl Pump {
    /// Advances every watch woken since the last flush (delivers what its watcher received).
    pub(crate) fn flush(&self) {
        let cells = std::mem::take(&mut *lock(&self.dirty));
        for cell in cells {
            if let Some(cell) = cell.upgrade() {
                cell.advance();
            }
        }
    }

    /// True while this handle holds a persistent watch of `mode` at exactly `path`.
    pub(crate) fn has_persistent(&self, path: &str, mode: AddWatchMode) -> bool {
        let key = (path.to_string(), mode == AddWatchMode::PersistentRecursive);
        lock(&self.persistent).get(&key).is_some_and(|n| *n > 0)
    }

    fn add_persistent(&self, key: &(String, bool)) {
        *lock(&self.persistent).entry(key.clone()).or_insert(0) += 1;
    }

    fn remove_persistent(&self, key: &(String, bool)) {
        let mut map = lock(&self.persistent);
        if let Some(n) = map.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(key);
            }
        }
    }
}

/// One side of a bridge: advances until it is finished.
trait Bridge: Send {
    /// Moves events along; `Ready` once the watch is over (fired, ended or abandoned).
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// True when nobody waits for the watch any more.
    fn abandoned(&self) -> bool;
}

type EventFuture = Pin<Box<dyn Future<Output = zk::WatchedEvent> + Send>>;

struct OneshotBridge {
    event: EventFuture,
    trigger: Option<WatchTrigger>,
    closed: Arc<AtomicBool>,
}

impl Bridge for OneshotBridge {
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.abandoned() {
            return Poll::Ready(());
        }
        let event = match self.event.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(e) => e,
        };
        if let Some(trigger) = self.trigger.take() {
            match event_type(event.event_type) {
                Some(t) => trigger.fire(WatchedEvent::new(t, event.path)),
                None => trigger.fail(end_error(event.session_state, &self.closed)),
            }
        }
        Poll::Ready(())
    }

    fn abandoned(&self) -> bool {
        self.trigger
            .as_ref()
            .map_or(true, WatchTrigger::is_abandoned)
    }
}

type NextFuture = Pin<Box<dyn Future<Output = (zk::WatchedEvent, zk::PersistentWatcher)> + Send>>;

fn next_event(mut watcher: zk::PersistentWatcher) -> NextFuture {
    Box::pin(async move {
        let event = watcher.changed().await;
        (event, watcher)
    })
}

struct PersistentBridge {
    next: Option<NextFuture>,
    trigger: PersistentTrigger,
    closed: Arc<AtomicBool>,
    key: (String, bool),
    pump: Weak<Pump>,
}

impl Drop for PersistentBridge {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.upgrade() {
            pump.remove_persistent(&self.key);
        }
    }
}

impl Bridge for PersistentBridge {
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.abandoned() {
                return Poll::Ready(());
            }
            let Some(next) = self.next.as_mut() else {
                return Poll::Ready(());
            };
            let (event, watcher) = match next.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            if let Some(t) = event_type(event.event_type) {
                if !self.trigger.send(WatchedEvent::new(t, event.path)) {
                    return Poll::Ready(());
                }
            } else if event.session_state.is_terminated() {
                // Never poll this watcher again: it panics after a terminal state.
                self.next = None;
                self.trigger
                    .fail(end_error(event.session_state, &self.closed));
                return Poll::Ready(());
            }
            // Other session events (Disconnected, SyncConnected): the state stream reports them.
            self.next = Some(next_event(watcher));
        }
    }

    fn abandoned(&self) -> bool {
        self.trigger.is_abandoned()
    }
}

/// A watch being bridged, shared by its task and the handle's [`Pump`].
struct Cell {
    bridge: Mutex<Option<Box<dyn Bridge>>>,
    task: Mutex<Option<Waker>>,
    pump: Weak<Pump>,
}

impl Wake for Cell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(pump) = self.pump.upgrade() {
            lock(&pump.dirty).push(Arc::downgrade(self));
        }
        let task = lock(&self.task).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Cell {
    /// Advances the bridge once; true when it is finished.
    fn advance(self: &Arc<Self>) -> bool {
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let mut bridge = lock(&self.bridge);
        let done = match bridge.as_mut() {
            None => true,
            Some(b) => b.advance(&mut cx).is_ready(),
        };
        if done {
            // Dropping the zookeeper watcher removes it.
            *bridge = None;
            drop(bridge);
            // Let the task end (it may be waiting for a wake that will not come).
            let task = lock(&self.task).take();
            if let Some(task) = task {
                task.wake();
            }
        }
        done
    }

    fn abandoned(&self) -> bool {
        lock(&self.bridge).as_ref().map_or(true, |b| b.abandoned())
    }

    fn start(bridge: Box<dyn Bridge>, pump: &Arc<Pump>) {
        let cell = Arc::new(Cell {
            bridge: Mutex::new(Some(bridge)),
            task: Mutex::new(None),
            pump: Arc::downgrade(pump),
        });
        // A first step now registers the cell with the zookeeper watcher, so an event arriving
        // before the task first runs still marks it for the next flush.
        if cell.advance() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ABANDON_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let driven = std::future::poll_fn(|cx| {
                    *lock(&cell.task) = Some(cx.waker().clone());
                    if cell.advance() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                });
                tokio::select! {
                    _ = driven => return,
                    _ = tick.tick() => {
                        if cell.abandoned() {
                            *lock(&cell.bridge) = None;
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// A one-shot watch fed by a zookeeper-client one-shot watcher.
pub(crate) fn oneshot(
    watcher: zk::OneshotWatcher,
    closed: Arc<AtomicBool>,
    pump: &Arc<Pump>,
) -> OneshotWatch {
    let (trigger, watch) = OneshotWatch::channel();
    let bridge = OneshotBridge {
        event: Box::pin(watcher.changed()),
        trigger: Some(trigger),
        closed,
    };
    Cell::start(Box::new(bridge), pump);
    watch
}

/// A persistent watch fed by a zookeeper-client persistent watcher.
pub(crate) fn persistent(
    watcher: zk::PersistentWatcher,
    path: &str,
    mode: AddWatchMode,
    closed: Arc<AtomicBool>,
    pump: &Arc<Pump>,
) -> PersistentWatch {
    let (trigger, watch) = PersistentWatch::channel();
    let key = (path.to_string(), mode == AddWatchMode::PersistentRecursive);
    pump.add_persistent(&key);
    let bridge = PersistentBridge {
        next: Some(next_event(watcher)),
        trigger,
        closed,
        key,
        pump: Arc::downgrade(pump),
    };
    Cell::start(Box::new(bridge), pump);
    watch
}
