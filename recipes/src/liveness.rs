//! Liveness of something held through an ephemeral node (a lock, a lease, leadership): why it can
//! be lost, the policy for a suspended connection, and the monitor behind `lost()`.

use menagerie_core::{Client, EventType, SessionId, SessionState};
use std::fmt;
use std::time::Duration;
use tokio::sync::watch;

/// Why a lock, lease or leadership was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// The session expired: the server deleted the node.
    SessionExpired,
    /// The client was closed.
    SessionClosed,
    /// The node was deleted (by an operator, or by a concurrent release).
    NodeDeleted,
    /// The connection stayed suspended longer than the [`SuspendPolicy`] allows.
    Suspended {
        /// How long it had been suspended.
        after: Duration,
    },
    /// The owner released it.
    Released,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::SessionExpired => write!(f, "session expired"),
            LostReason::SessionClosed => write!(f, "session closed"),
            LostReason::NodeDeleted => write!(f, "node deleted"),
            LostReason::Suspended { after } => {
                write!(f, "connection suspended for {after:?} (policy limit)")
            }
            LostReason::Released => write!(f, "released"),
        }
    }
}

/// What a holder does when its connection is suspended (the session may or may not still be
/// alive on the server).
///
/// The default, [`SuspendPolicy::Immediately`], is the safe one: while suspended a holder cannot know
/// whether the server has already expired its session and handed the lock to someone else, so it
/// must stop acting at once. [`SuspendPolicy::After`] tolerates short blips: it is safe only if the
/// grace is shorter than the time the server still keeps the session after the client last heard
/// from it (session timeout minus the client's detection delay, about 1/3 of the timeout for
/// ZooKeeper clients). Fencing tokens remain the real protection against a stale holder.
///
/// ```
/// use std::time::Duration;
/// use menagerie_recipes::SuspendPolicy;
/// assert_eq!(SuspendPolicy::default(), SuspendPolicy::Immediately);
/// let tolerant = SuspendPolicy::After(Duration::from_millis(500));
/// assert_eq!(tolerant.grace(), Some(Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuspendPolicy {
    /// Lost as soon as the connection is suspended.
    #[default]
    Immediately,
    /// Lost if still suspended after this long; kept if the connection comes back (same session)
    /// and the node is still there.
    After(Duration),
}

impl SuspendPolicy {
    /// The grace period, if any.
    pub fn grace(&self) -> Option<Duration> {
        match self {
            SuspendPolicy::Immediately => None,
            SuspendPolicy::After(d) => Some(*d),
        }
    }
}

/// A shared "lost" signal: set once, observed by any number of waiters.
#[derive(Debug, Clone)]
pub(crate) struct LostSignal {
    rx: watch::Receiver<Option<LostReason>>,
}

impl LostSignal {
    /// Resolves when lost, with the reason.
    pub(crate) async fn wait(&self) -> LostReason {
        let mut rx = self.rx.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                // Monitor gone without a verdict: it only stops after setting one, or on release.
                return rx.borrow().clone().unwrap_or(LostReason::Released);
            }
        }
    }

    /// The reason, if already lost.
    pub(crate) fn reason(&self) -> Option<LostReason> {
        self.rx.borrow().clone()
    }
}

/// Starts a task that watches `node` (owned by `session`) and the connection state, and reports the
/// first reason the holder has lost it. Stops when `stop` is dropped or fires.
pub(crate) fn monitor(
    client: Client,
    node: String,
    session: SessionId,
    policy: SuspendPolicy,
) -> (LostSignal, watch::Sender<Option<LostReason>>) {
    let (tx, rx) = watch::channel(None);
    let signal = LostSignal { rx };
    let out = tx.clone();
    tokio::spawn(async move {
        let reason = watch_until_lost(&client, &node, session, policy, &tx).await;
        if let Some(reason) = reason {
            tracing::debug!(%node, %reason, "lost");
            tx.send_if_modified(|cur| {
                if cur.is_none() {
                    *cur = Some(reason);
                    true
                } else {
                    false
                }
            });
        }
    });
    (signal, out)
}

/// Returns `None` when the holder released (the sender was set or closed from outside).
async fn watch_until_lost(
    client: &Client,
    node: &str,
    session: SessionId,
    policy: SuspendPolicy,
    tx: &watch::Sender<Option<LostReason>>,
) -> Option<LostReason> {
    let mut states = client.state_stream();
    let released = || tx.borrow().is_some() || tx.is_closed();
    loop {
        if released() {
            return None;
        }
        if client.session_id() != session {
            return Some(LostReason::SessionExpired);
        }
        match client.state() {
            SessionState::Expired => return Some(LostReason::SessionExpired),
            SessionState::Closed => return Some(LostReason::SessionClosed),
            SessionState::Suspended => {
                if let Some(r) = ride_out_suspension(client, &mut states, policy, tx).await {
                    return r;
                }
                continue;
            }
            _ => {}
        }
        let watch = match client.exists_and_watch(node).await {
            Ok((None, _)) => return Some(LostReason::NodeDeleted),
            Ok((Some(stat), w)) if stat.ephemeral_owner == session || stat.ephemeral_owner == 0 => {
                w
            }
            Ok((Some(_), _)) => return Some(LostReason::NodeDeleted),
            Err(e) if e.is_session_gone() => {
                return Some(if e.kind() == menagerie_core::ErrorKind::Closed {
                    LostReason::SessionClosed
                } else {
                    LostReason::SessionExpired
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, %node, "liveness check failed; re-checking");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut closed_rx = tx.subscribe();
        tokio::select! {
            ev = watch => match ev {
                Ok(e) if e.event_type == EventType::NodeDeleted => {
                    // Deleted because the session died, or by someone else?
                    return Some(if client.session_id() != session || client.state() == SessionState::Expired {
                        LostReason::SessionExpired
                    } else {
                        LostReason::NodeDeleted
                    });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == menagerie_core::ErrorKind::Closed => return Some(LostReason::SessionClosed),
                Err(_) => return Some(LostReason::SessionExpired),
            },
            st = states.next() => match st {
                Some(SessionState::Expired) => return Some(LostReason::SessionExpired),
                Some(SessionState::Closed) | None => return Some(LostReason::SessionClosed),
                _ => continue,
            },
            _ = closed_rx.changed() => return None,
        }
    }
}

/// While suspended: `Some(verdict)` if the holder must give up (or released meanwhile), `None` when
/// the connection came back with the same session.
async fn ride_out_suspension(
    client: &Client,
    states: &mut menagerie_core::StateStream,
    policy: SuspendPolicy,
    tx: &watch::Sender<Option<LostReason>>,
) -> Option<Option<LostReason>> {
    let started = tokio::time::Instant::now();
    let Some(grace) = policy.grace() else {
        return Some(Some(LostReason::Suspended {
            after: Duration::ZERO,
        }));
    };
    let mut closed_rx = tx.subscribe();
    loop {
        if client.state().is_connected() {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + grace) => {
                return Some(Some(LostReason::Suspended { after: started.elapsed() }));
            }
            st = states.next() => match st {
                Some(SessionState::Reconnected) => return None,
                Some(SessionState::Expired) | Some(SessionState::Connected) => {
                    return Some(Some(LostReason::SessionExpired))
                }
                Some(SessionState::Closed) | None => return Some(Some(LostReason::SessionClosed)),
                Some(SessionState::Suspended) => {}
            },
            _ = closed_rx.changed() => return Some(None),
        }
    }
}
