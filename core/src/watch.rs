//! Watches as values: a one-shot watch is a future, a persistent watch is a stream.
//!
//! Backends create them with [`OneshotWatch::channel`] and [`PersistentWatch::channel`] and keep the
//! trigger side; users await the watch. A watch whose session ends resolves to
//! [`Error::SessionExpired`] or [`Error::Closed`] instead of hanging.

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// What happened at the watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The node was created.
    NodeCreated,
    /// The node was deleted.
    NodeDeleted,
    /// The node's data was set.
    NodeDataChanged,
    /// A child was created or deleted.
    NodeChildrenChanged,
}

impl EventType {
    /// ZooKeeper's wire number for this event type.
    ///
    /// ```
    /// assert_eq!(menagerie_core::EventType::NodeDeleted.code(), 2);
    /// ```
    pub fn code(self) -> i32 {
        match self {
            EventType::NodeCreated => 1,
            EventType::NodeDeleted => 2,
            EventType::NodeDataChanged => 3,
            EventType::NodeChildrenChanged => 4,
        }
    }
}

/// One watch notification: what happened, and where. (Like ZooKeeper, it does not carry the data.)
///
/// ```
/// use menagerie_core::{EventType, WatchedEvent};
/// let e = WatchedEvent::new(EventType::NodeCreated, "/a");
/// assert_eq!(e.path, "/a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    /// What happened.
    pub event_type: EventType,
    /// The path it happened at.
    pub path: String,
}

impl WatchedEvent {
    /// Builds an event.
    pub fn new(event_type: EventType, path: impl Into<String>) -> WatchedEvent {
        WatchedEvent {
            event_type,
            path: path.into(),
        }
    }
}

/// Strips a chroot prefix from a server-side path (`/root/a` → `/a`, `/root` → `/`).
pub(crate) fn strip_root(root: &str, path: &str) -> String {
    match path.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// The backend's side of a one-shot watch.
#[derive(Debug)]
pub struct WatchTrigger {
    tx: oneshot::Sender<Result<WatchedEvent>>,
}

impl WatchTrigger {
    /// Fires the watch with an event.
    pub fn fire(self, event: WatchedEvent) {
        let _ = self.tx.send(Ok(event));
    }
    /// Ends the watch with an error (the session expired or was closed).
    pub fn fail(self, error: Error) {
        let _ = self.tx.send(Err(error));
    }
    /// True when the watch value was dropped: nobody waits any more.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A one-shot watch: a future that resolves once, with the first matching event.
///
/// It resolves to `Err(SessionExpired)` / `Err(Closed)` if the session ends first. Dropping it
/// cancels interest (the backend forgets it lazily).
///
/// ```
/// use menagerie_core::{EventType, OneshotWatch, WatchedEvent};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (trigger, watch) = OneshotWatch::channel();
/// trigger.fire(WatchedEvent::new(EventType::NodeDeleted, "/a"));
/// assert_eq!(watch.await.unwrap().event_type, EventType::NodeDeleted);
/// # });
/// ```
#[derive(Debug)]
pub struct OneshotWatch {
    rx: oneshot::Receiver<Result<WatchedEvent>>,
    chroot: Option<Arc<str>>,
}

impl OneshotWatch {
    /// Creates a watch and the trigger a backend keeps.
    pub fn channel() -> (WatchTrigger, OneshotWatch) {
        let (tx, rx) = oneshot::channel();
        (WatchTrigger { tx }, OneshotWatch { rx, chroot: None })
    }

    /// A watch that has already fired (or failed) with `result`.
    pub fn ready(result: Result<WatchedEvent>) -> OneshotWatch {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        OneshotWatch { rx, chroot: None }
    }

    pub(crate) fn with_chroot(mut self, root: Arc<str>) -> OneshotWatch {
        self.chroot = Some(root);
        self
    }
}

impl Future for OneshotWatch {
    type Output = Result<WatchedEvent>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
            Poll::Ready(Ok(Ok(mut ev))) => {
                if let Some(root) = &this.chroot {
                    ev.path = strip_root(root, &ev.path);
                }
                Poll::Ready(Ok(ev))
            }
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
        }
    }
}

/// Whether a persistent watch covers only its node or its whole subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddWatchMode {
    /// Created / deleted / data changed on the node, and children changed on the node.
    Persistent,
    /// Created / deleted / data changed on the node and every descendant (never children changed).
    PersistentRecursive,
}

/// The backend's side of a persistent watch.
#[derive(Debug, Clone)]
pub struct PersistentTrigger {
    tx: mpsc::UnboundedSender<Result<WatchedEvent>>,
}

impl PersistentTrigger {
    /// Delivers an event; returns false when the watch was dropped (the backend should forget it).
    pub fn send(&self, event: WatchedEvent) -> bool {
        self.tx.send(Ok(event)).is_ok()
    }
    /// Ends the stream with an error (session expired or closed).
    pub fn fail(&self, error: Error) {
        let _ = self.tx.send(Err(error));
    }
    /// True when the watch value was dropped.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A persistent (optionally recursive) watch: a stream of events until dropped or the session ends.
///
/// ```
/// use menagerie_core::{EventType, PersistentWatch, WatchedEvent};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (trigger, mut watch) = PersistentWatch::channel();
/// trigger.send(WatchedEvent::new(EventType::NodeCreated, "/a"));
/// trigger.send(WatchedEvent::new(EventType::NodeDeleted, "/a"));
/// assert_eq!(watch.next().await.unwrap().event_type, EventType::NodeCreated);
/// assert_eq!(watch.next().await.unwrap().event_type, EventType::NodeDeleted);
/// # });
/// ```
#[derive(Debug)]
pub struct PersistentWatch {
    rx: mpsc::UnboundedReceiver<Result<WatchedEvent>>,
    chroot: Option<Arc<str>>,
    done: bool,
}

impl PersistentWatch {
    /// Creates a persistent watch and the trigger a backend keeps.
    pub fn channel() -> (PersistentTrigger, PersistentWatch) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            PersistentTrigger { tx },
            PersistentWatch {
                rx,
                chroot: None,
                done: false,
            },
        )
    }

    pub(crate) fn with_chroot(mut self, root: Arc<str>) -> PersistentWatch {
        self.chroot = Some(root);
        self
    }

    /// The next event; `Err(SessionExpired | Closed)` once the session has ended (and from then on).
    pub async fn next(&mut self) -> Result<WatchedEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<WatchedEvent>> {
        if self.done {
            return Poll::Ready(Err(Error::Closed));
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Err(Error::Closed))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Err(e))
            }
            Poll::Ready(Some(Ok(mut ev))) => {
                if let Some(root) = &self.chroot {
                    ev.path = strip_root(root, &ev.path);
                }
                Poll::Ready(Ok(ev))
            }
        }
    }
}

impl futures_core::Stream for PersistentWatch {
    type Item = Result<WatchedEvent>;
    /// Yields events, then the error that ended the watch, then `None`.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.poll_event(cx).map(Some)
    }
}
