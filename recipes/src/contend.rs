//! Waiting in line on ephemeral-sequential nodes: the machinery under every lock, lease and latch.
//!
//! A contender creates a protected ephemeral-sequential node (`_c_<uuid>-<label><seq>`) in a
//! directory, then repeatedly lists the directory in sequence order (overflow-safe) and asks a rule
//! whether it may proceed or which node it must wait for. It waits on that one node only (no herd),
//! re-validates after every wake-up that its own node is still there and still its own, and gives up
//! with `SessionExpired` when the session dies, or `Timeout` at its deadline. If the waiting future
//! is dropped, its node is removed (cancellation safety).

use menagerie_core::sequence::sort_by_sequence;
use menagerie_core::{path, Client, CreateMode, Error, Result, SessionId, SessionState};
use std::time::Duration;
use tokio::time::Instant;

/// The verdict of a line rule for one listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The contender may proceed.
    Go,
    /// The contender must wait until this sibling (a name in the directory) changes.
    WaitFor(String),
    /// As `WaitFor`, for a rule that read the sibling's data: the sibling as it was when read
    /// (its mzxid). If it changed before the watch was set, the rule is asked again (a change in
    /// between would otherwise never wake the waiter).
    WaitForUnchanged(String, i64),
}

/// A contender's node in the line.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) client: Client,
    /// Client-relative path of the node.
    pub(crate) path: String,
    /// Its name in the directory.
    pub(crate) name: String,
    /// czxid of the node: a fencing token.
    pub(crate) token: i64,
    /// The session that owns it.
    pub(crate) session: SessionId,
    armed: bool,
}

impl Entry {
    /// Keeps the node (the caller now owns it: a guard will release it).
    pub(crate) fn disarm(mut self) -> (Client, String, String, i64, SessionId) {
        self.armed = false;
        (
            self.client.clone(),
            std::mem::take(&mut self.path),
            std::mem::take(&mut self.name),
            self.token,
            self.session,
        )
    }

    /// Deletes the node now (best effort, retried in the background if it fails).
    pub(crate) async fn abandon(mut self) {
        self.armed = false;
        delete_eventually(self.client.clone(), self.path.clone()).await;
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.armed {
            // The acquire future was dropped or failed: remove the node in the background.
            let client = self.client.clone();
            let p = std::mem::take(&mut self.path);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { delete_eventually(client, p).await });
            }
        }
    }
}

/// Deletes `p`, retrying retryable errors for a while. NoNode and a gone session count as done.
pub(crate) async fn delete_eventually(client: Client, p: String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(20);
    loop {
        match client.delete(&p, None).await {
            Ok(()) | Err(Error::NoNode { .. }) => return,
            Err(e) if e.is_session_gone() => return,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(path = %p, error = %e, "delete failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(path = %p, error = %e, "giving up deleting node");
                return;
            }
        }
    }
}

/// Makes sure the line's directory exists, as a container where the backend has them (so empty
/// lock directories are reaped), else persistent.
pub(crate) async fn ensure_dir(client: &Client, dir: &str) -> Result<()> {
    if client.exists(dir).await?.is_some() {
        return Ok(());
    }
    if let Some(parent) = path::parent(dir) {
        if parent != "/" {
            client.ensure_path(parent).await?;
        }
    }
    let mode = if client.capabilities().container {
        CreateMode::Container
    } else {
        CreateMode::Persistent
    };
    match client.retrying(|| client.create(dir, &[], mode)).await {
        Ok(_) | Err(Error::NodeExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Joins the line: creates the contender's protected ephemeral-sequential node (first waiting,
/// until `deadline`, for a new session if the last one just expired).
pub(crate) async fn join(
    client: &Client,
    dir: &str,
    label: &str,
    data: &[u8],
    deadline: Option<Instant>,
) -> Result<Entry> {
    ready_session(client, deadline).await?;
    let mut attempts = 0;
    loop {
        // Create first, as Curator does: the directory usually exists, and making sure of it
        // before every join would cost a round trip per acquisition.
        match client
            .create_protected_with_stat(dir, label, data, CreateMode::EphemeralSequential)
            .await
        {
            Ok((p, stat)) => {
                let name = path::basename(&p).to_string();
                return Ok(Entry {
                    client: client.clone(),
                    path: p,
                    name,
                    token: stat.czxid,
                    session: stat.ephemeral_owner,
                    armed: true,
                });
            }
            // No directory yet (or a container directory reaped meanwhile): make it, try again.
            Err(Error::NoNode { .. }) if attempts < 5 => {
                attempts += 1;
                ensure_dir(client, dir).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sorted names of the line's members carrying one of `labels`.
pub(crate) async fn members(client: &Client, dir: &str, labels: &[&str]) -> Result<Vec<String>> {
    let (mut kids, _) = client.children(dir).await?;
    kids.retain(|k| labels.iter().any(|l| k.contains(l)));
    sort_by_sequence(&mut kids);
    Ok(kids)
}

/// The simplest rule: go when first, otherwise wait for the predecessor.
pub(crate) async fn first_in_line(kids: Vec<String>, me: usize) -> Result<Turn> {
    Ok(if me == 0 {
        Turn::Go
    } else {
        Turn::WaitFor(kids[me - 1].clone())
    })
}

/// Waits until `rule(sorted members, my index)` says Go, or the deadline passes (`Timeout`), or the
/// session dies (`SessionExpired`), or the entry's node disappears (`Lost`).
pub(crate) async fn wait_turn<F, Fut>(
    entry: &Entry,
    dir: &str,
    labels: &[&str],
    deadline: Option<Instant>,
    mut rule: F,
) -> Result<()>
where
    F: FnMut(Vec<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Turn>>,
{
    let client = &entry.client;
    let mut states = client.state_stream();
    loop {
        check_session(client, entry.session)?;
        let kids = members(client, dir, labels).await?;
        let Some(me) = kids.iter().position(|k| *k == entry.name) else {
            check_session(client, entry.session)?;
            return Err(Error::Lost {
                reason: format!("own node {} was deleted while waiting", entry.path),
            });
        };
        let (target, seen) = match rule(kids, me).await? {
            Turn::Go => return Ok(()),
            Turn::WaitFor(name) => (path::join(dir, &name), None),
            Turn::WaitForUnchanged(name, mzxid) => (path::join(dir, &name), Some(mzxid)),
        };
        let watch = match client.exists_and_watch(&target).await? {
            (None, _) => continue, // it went meanwhile: look again
            (Some(stat), _) if seen.is_some_and(|m| m != stat.mzxid) => continue, // changed: again
            (Some(_), w) => w,
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = watch => {
                if let Err(e) = ev {
                    check_session(client, entry.session)?;
                    return Err(e);
                }
            }
            st = states.next() => match st {
                Some(SessionState::Expired) => return Err(Error::SessionExpired),
                Some(SessionState::Closed) | None => return Err(Error::Closed),
                _ => {}
            },
            _ = sleep => return Err(Error::Timeout),
        }
    }
}

/// Errors when the session that owns the entry is no longer the client's session.
pub(crate) fn check_session(client: &Client, session: SessionId) -> Result<()> {
    match client.state() {
        SessionState::Closed => Err(Error::Closed),
        _ if client.session_id() != session => Err(Error::SessionExpired),
        SessionState::Expired => Err(Error::SessionExpired),
        _ => Ok(()),
    }
}

/// The session a new call works in. Right after an expiry, until the backend has opened its new
/// session, the client reports `Expired`; a call that starts then waits for the new session (until
/// `deadline`: `Timeout`) instead of failing at once, so a caller that simply retries after
/// `SessionExpired` waits rather than spinning.
pub(crate) async fn ready_session(client: &Client, deadline: Option<Instant>) -> Result<SessionId> {
    if client.state() == SessionState::Expired {
        let connected = match deadline {
            Some(d) => tokio::time::timeout_at(d, until_connected(client))
                .await
                .map_err(|_| Error::Timeout)?,
            None => until_connected(client).await,
        };
        if !connected {
            return Err(Error::Closed);
        }
    }
    match client.state() {
        SessionState::Closed => Err(Error::Closed),
        _ => Ok(client.session_id()),
    }
}

/// Waits until the client is connected again; false if it was closed. Bounded polling backs up
/// the state stream, so a missed state change costs at most 200 ms.
pub(crate) async fn until_connected(client: &Client) -> bool {
    let mut states = client.state_stream();
    loop {
        match client.state() {
            s if s.is_connected() => return true,
            SessionState::Closed => return false,
            _ => {}
        }
        tokio::select! {
            _ = states.next() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `Timeout` as `None`: the shape of every `try_*` call.
pub(crate) fn optional<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Timeout) => Ok(None),
        Err(e) => Err(e),
    }
}
