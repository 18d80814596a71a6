//! [`HoldGuard`]: what a lock, a read/write lock or a semaphore lease gives its holder — a fencing
//! token, a `lost()` future, fenced writes and a release that never fails silently.

use crate::contend::{delete_eventually, Entry};
use crate::liveness::{monitor, LostReason, LostSignal, SuspendPolicy};
use menagerie_core::{Client, Error, Op, OpResult, Result, SessionId};
use tokio::sync::watch;

/// Proof of holding a lock or lease, as long as [`lost`](HoldGuard::lost) has not resolved.
///
/// - [`token`](HoldGuard::token): a fencing token (the zxid / create revision of the holder's node),
///   strictly increasing across successive holders. Pass it to the resource you protect and have it
///   refuse smaller tokens than it has seen.
/// - [`lost`](HoldGuard::lost): resolves when the hold is gone for any reason (session expired or
///   closed, node deleted, connection suspended beyond the [`SuspendPolicy`]).
/// - [`fenced`](HoldGuard::fenced): a multi that applies only while the holder's node still exists.
/// - [`release`](HoldGuard::release): deletes the node, retrying until done; releasing something
///   already lost is a no-op. Dropping the guard releases in the background.
///
/// ```
/// # use menagerie_recipes::Mutex;
/// # async fn demo(client: menagerie_core::Client) -> menagerie_core::Result<()> {
/// let lock = Mutex::new(&client, "/locks/invoice-42");
/// let guard = lock.acquire().await?;
/// tokio::select! {
///     _ = guard.lost() => { /* stop touching the resource */ }
///     _ = do_work(guard.token()) => {}
/// }
/// guard.release().await
/// # }
/// # async fn do_work(_token: i64) {}
/// ```
#[derive(Debug)]
pub struct HoldGuard {
    view: HoldView,
    stop: watch::Sender<Option<LostReason>>,
    released: bool,
}

/// What a holder can see and do without being able to release: the token, `lost()`, fenced writes.
/// A [`HoldGuard`] derefs to it; leadership hands one out per term.
#[derive(Debug, Clone)]
pub struct HoldView {
    client: Client,
    path: String,
    token: i64,
    session: SessionId,
    lost: LostSignal,
}

impl std::ops::Deref for HoldGuard {
    type Target = HoldView;
    fn deref(&self) -> &HoldView {
        &self.view
    }
}

impl HoldGuard {
    pub(crate) fn new(entry: Entry, policy: SuspendPolicy) -> HoldGuard {
        let (client, path, _name, token, session) = entry.disarm();
        let (lost, stop) = monitor(client.clone(), path.clone(), session, policy);
        HoldGuard {
            view: HoldView {
                client,
                path,
                token,
                session,
                lost,
            },
            stop,
            released: false,
        }
    }

    /// A clonable view of this hold (token, `lost()`, fenced writes), without release rights.
    pub fn view(&self) -> HoldView {
        self.view.clone()
    }
}

impl HoldView {
    /// The fencing token: strictly increasing across successive holders of the same lock.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The holder's node (client-relative path).
    pub fn node(&self) -> &str {
        &self.path
    }

    /// The session that holds it.
    pub fn session_id(&self) -> SessionId {
        self.session
    }

    /// Resolves when the hold is lost, with the reason. Can be awaited many times, from many tasks.
    pub async fn lost(&self) -> LostReason {
        self.lost.wait().await
    }

    /// The reason, if the hold is already known to be lost.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.lost.reason()
    }

    /// True while no loss has been detected (and the holding session is still the client's).
    pub fn is_held(&self) -> bool {
        self.lost.reason().is_none() && self.client.session_id() == self.session
    }

    /// Applies `ops` atomically only if the holder's node still exists (a check is prepended).
    /// The results returned are those of `ops` (without the check). Fails with `Lost` if the hold
    /// is already known to be lost.
    pub async fn fenced(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        if let Some(reason) = self.lost.reason() {
            return Err(Error::Lost {
                reason: reason.to_string(),
            });
        }
        let mut all = Vec::with_capacity(ops.len() + 1);
        all.push(Op::check(self.path.clone(), None));
        all.extend_from_slice(ops);
        match self.client.multi(&all).await {
            Ok(mut results) => {
                results.remove(0);
                Ok(results)
            }
            Err(Error::MultiFailed { index: 0, .. }) => Err(Error::Lost {
                reason: format!("fencing check failed: {} is gone", self.path),
            }),
            Err(Error::MultiFailed { index, results }) => Err(Error::MultiFailed {
                index: index - 1,
                results: results.into_iter().skip(1).collect(),
            }),
            Err(e) => Err(e),
        }
    }
}

impl HoldGuard {
    /// Releases: deletes the node, retrying retryable errors until done. A hold that was already
    /// lost (node gone, session expired) releases as a no-op.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.stop.send_replace(Some(LostReason::Released));
        let HoldView {
            client,
            path,
            session,
            ..
        } = self.view.clone();
        if client.session_id() != session {
            return Ok(()); // the session that held it is gone, and the node with it
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut wait = std::time::Duration::from_millis(10);
        loop {
            match client.delete(&path, None).await {
                Ok(()) | Err(Error::NoNode { .. }) => return Ok(()),
                Err(e) if e.is_session_gone() => return Ok(()),
                Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%path, error = %e, "release failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                    if client.session_id() != session {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.stop.send_replace(Some(LostReason::Released));
        if self.view.client.session_id() != self.view.session {
            return;
        }
        let client = self.view.client.clone();
        let p = self.view.path.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { delete_eventually(client, p).await });
        }
    }
}
