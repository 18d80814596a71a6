//! [`Mutex`]: a distributed exclusive lock, Curator's InterProcessMutex layout.

use crate::contend::{first_in_line, join, optional, wait_turn};
use crate::guard::HoldGuard;
use crate::liveness::SuspendPolicy;
use menagerie_core::{Client, Error, Result};
use std::time::Duration;
use tokio::time::Instant;

/// The name part of lock nodes: `_c_<uuid>-lock-<seq10>`, as Curator.
pub const LOCK_LABEL: &str = "lock-";

/// A distributed, FIFO-fair exclusive lock at a path.
///
/// Each contender creates an ephemeral-sequential node `<path>/_c_<uuid>-lock-<seq>`; the first in
/// sequence order (overflow-safe) holds the lock, every other watches only its predecessor. The node
/// layout is Curator's, so Java services using `InterProcessMutex` on the same ZooKeeper path and
/// menagerie services exclude each other.
///
/// - `acquire` is cancellation-safe: dropping the future removes the contender's node.
/// - Waits end with `SessionExpired` when the session dies, `Timeout` at the deadline.
/// - The [`HoldGuard`] carries the fencing token, `lost()`, fenced writes and release.
///
/// Not reentrant: acquiring twice from one client waits for itself (use the guard you have).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::Mutex;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let lock = Mutex::new(&client, "/locks/report");
/// let guard = lock.acquire().await?;
/// let t1 = guard.token();
/// guard.release().await?;
/// let guard = lock.acquire().await?;
/// assert!(guard.token() > t1);
/// # guard.release().await?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Mutex {
    client: Client,
    path: String,
    data: Vec<u8>,
    policy: SuspendPolicy,
}

impl Mutex {
    /// A lock at `path` (created on first use).
    pub fn new(client: &Client, path: &str) -> Mutex {
        Mutex {
            client: client.clone(),
            path: path.to_string(),
            data: Vec::new(),
            policy: SuspendPolicy::default(),
        }
    }

    /// Data stored in the contender's node (Curator stores the participant id or IP there).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Mutex {
        self.data = data.into();
        self
    }

    /// What the guard does on a suspended connection (default: lost immediately).
    pub fn with_suspend_policy(mut self, policy: SuspendPolicy) -> Mutex {
        self.policy = policy;
        self
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits until the lock is held.
    pub async fn acquire(&self) -> Result<HoldGuard> {
        self.acquire_until(None).await
    }

    /// Waits at most `timeout`; `Err(Timeout)` if the lock was not obtained (no node is left behind).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<HoldGuard> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// Takes the lock only if nobody holds it or waits for it now.
    pub async fn try_acquire(&self) -> Result<Option<HoldGuard>> {
        optional(self.acquire_until(Some(Instant::now())).await)
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<HoldGuard> {
        let entry = join(&self.client, &self.path, LOCK_LABEL, &self.data, deadline).await?;
        let r = wait_turn(&entry, &self.path, &[LOCK_LABEL], deadline, first_in_line).await;
        match r {
            Ok(()) => Ok(HoldGuard::new(entry, self.policy)),
            Err(e) => {
                entry.abandon().await;
                Err(e)
            }
        }
    }

    /// The current holder's node name and data, if any (for diagnostics).
    pub async fn holder(&self) -> Result<Option<(String, Vec<u8>)>> {
        let kids = match crate::contend::members(&self.client, &self.path, &[LOCK_LABEL]).await {
            Ok(k) => k,
            Err(Error::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        for k in kids {
            match self
                .client
                .get(&menagerie_core::path::join(&self.path, &k))
                .await
            {
                Ok((data, _)) => return Ok(Some((k, data))),
                Err(Error::NoNode { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
