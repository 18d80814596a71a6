//! Sessions and the connection-state stream.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Identifies a session (ZooKeeper's session id, etcd's lease id). Owners of ephemeral nodes.
pub type SessionId = i64;

/// The state of a client's connection and session, as Curator names them.
///
/// ```
/// use menagerie_core::SessionState;
/// assert!(SessionState::Connected.is_connected());
/// assert!(!SessionState::Suspended.is_connected());
/// assert!(SessionState::Expired.is_terminal_for_session());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Connected with a (new) session.
    Connected,
    /// Connection lost; the session may still be alive on the server.
    Suspended,
    /// Connection back, same session: ephemerals and watches survived.
    Reconnected,
    /// The session is gone (its ephemerals were deleted). A new session follows with `Connected`.
    Expired,
    /// Closed by its owner; nothing follows.
    Closed,
}

impl SessionState {
    /// True for the states in which operations can be served.
    pub fn is_connected(self) -> bool {
        matches!(self, SessionState::Connected | SessionState::Reconnected)
    }
    /// True when the session that was current before this state is gone for good.
    pub fn is_terminal_for_session(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }
}

/// A stream of [`SessionState`] changes, from the moment it was taken.
///
/// Every change is delivered (none is coalesced), in order. It ends after `Closed`.
///
/// ```
/// use menagerie_core::{SessionEvents, SessionState};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let events = SessionEvents::new(SessionState::Connected);
/// let mut states = events.subscribe();
/// events.publish(SessionState::Suspended);
/// events.publish(SessionState::Reconnected);
/// assert_eq!(states.next().await, Some(SessionState::Suspended));
/// assert_eq!(states.next().await, Some(SessionState::Reconnected));
/// # });
/// ```
#[derive(Debug)]
pub struct StateStream {
    rx: mpsc::UnboundedReceiver<SessionState>,
}

impl StateStream {
    /// The next state change; `None` after `Closed`.
    pub async fn next(&mut self) -> Option<SessionState> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for StateStream {
    type Item = SessionState;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionState>> {
        self.rx.poll_recv(cx)
    }
}

/// Below this many subscribers dropped ones are only pruned on the next state change.
const MIN_PRUNE: usize = 64;

/// The backend's side of the state stream: remembers the current state and fans changes out to
/// every subscriber. Backends embed one.

#[derive(Debug, Clone)]
pub struct SessionEvents {
    inner: Arc<Mutex<EventsInner>>,
}

#[derive(Debug)]
struct EventsInner {
    current: SessionState,
    subscribers: Vec<mpsc::UnboundedSender<SessionState>>,
    /// Subscriber count at which dropped streams are pruned next (keeps the list bounded by the
    /// live streams while no state changes for a long time).
    prune_at: usize,
}

impl SessionEvents {
    /// Starts in `initial`.
    pub fn new(initial: SessionState) -> SessionEvents {
        SessionEvents {
            inner: Arc::new(Mutex::new(EventsInner {
                current: initial,
                subscribers: Vec::new(),
                prune_at: MIN_PRUNE,
            })),
        }
    }

    /// The current state.
    pub fn current(&self) -> SessionState {
        self.lock().current
    }

    /// A stream of the changes from now on (after `Closed` the stream ends at once).
    pub fn subscribe(&self) -> StateStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        if inner.current != SessionState::Closed {
            if inner.subscribers.len() >= inner.prune_at {
                inner.subscribers.retain(|s| !s.is_closed());
                inner.prune_at = (inner.subscribers.len() * 2).max(MIN_PRUNE);
            }
            inner.subscribers.push(tx);
        }
        StateStream { rx }
    }

    /// Records and broadcasts a state change. After `Closed`, subscribers are dropped.
    pub fn publish(&self, state: SessionState) {
        let mut inner = self.lock();
        if inner.current == SessionState::Closed {
            return;
        }
        inner.current = state;
        inner.subscribers.retain(|s| s.send(state).is_ok());
        if state == SessionState::Closed {
            inner.subscribers.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EventsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_streams_do_not_accumulate_without_state_changes() {
        let events = SessionEvents::new(SessionState::Connected);
        let kept: Vec<StateStream> = (0..10).map(|_| events.subscribe()).collect();
        for _ in 0..100_000 {
            drop(events.subscribe());
        }
        let held = events.lock().subscribers.len();
        assert!(
            held <= 2 * MIN_PRUNE + kept.len(),
            "{held} subscribers held"
        );
        events.publish(SessionState::Suspended);
        assert_eq!(events.lock().subscribers.len(), kept.len());
    }

    #[tokio::test]
    async fn live_streams_survive_pruning() {
        let events = SessionEvents::new(SessionState::Connected);
        let mut kept = events.subscribe();
        for _ in 0..1_000 {
            drop(events.subscribe());
        }
        events.publish(SessionState::Suspended);
        assert_eq!(kept.next().await, Some(SessionState::Suspended));
    }
}
