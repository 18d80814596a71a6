//! [`Semaphore`]: N leases, Curator's InterProcessSemaphoreV2 layout.

use crate::contend::{check_session, join, members, optional};
use crate::guard::HoldGuard;
use crate::liveness::SuspendPolicy;
use crate::mutex::Mutex;
use menagerie_core::{path, Client, Error, Result, SessionState};
use std::time::Duration;
use tokio::time::Instant;

/// Name part of lease nodes: `<path>/leases/_c_<uuid>-lease-<seq10>`.
const LEASE_LABEL: &str = "lease-";

/// A distributed counting semaphore: at most `max_leases` holders at once.
///
/// Layout (Curator's InterProcessSemaphoreV2): an internal [`Mutex`] at `<path>/locks` orders the
/// acquirers (FIFO); the one holding it creates its lease `<path>/leases/_c_<uuid>-lease-<seq>` and
/// waits, watching the leases, until at most `max_leases` exist; then it lets the next acquirer in.
/// A lease is a [`HoldGuard`] with the same token, `lost()`, fencing and release as a lock. All
/// clients of one semaphore must agree on `max_leases`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::Semaphore;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let pool = Semaphore::new(&client, "/semaphores/db", 2);
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(pool.try_acquire().await?.is_none());
/// a.release().await?;
/// let c = pool.acquire().await?;
/// # b.release().await?; c.release().await?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    client: Client,
    path: String,
    leases: String,
    max_leases: usize,
    data: Vec<u8>,
    policy: SuspendPolicy,
    mutex: Mutex,
}

impl Semaphore {
    /// A semaphore at `path` with `max_leases` leases.
    pub fn new(client: &Client, path: &str, max_leases: usize) -> Semaphore {
        Semaphore {
            client: client.clone(),
            path: path.to_string(),
            leases: path::join(path, "leases"),
            max_leases: max_leases.max(1),
            data: Vec::new(),
            policy: SuspendPolicy::default(),
            mutex: Mutex::new(client, &path::join(path, "locks")),
        }
    }

    /// Data stored in each lease node.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Semaphore {
        self.data = data.into();
        self
    }

    /// What lease guards do on a suspended connection (default: lost immediately).
    pub fn with_suspend_policy(mut self, policy: SuspendPolicy) -> Semaphore {
        self.policy = policy;
        self
    }

    /// The semaphore's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for a lease.
    pub async fn acquire(&self) -> Result<HoldGuard> {
        self.acquire_until(None).await
    }

    /// Waits at most `timeout` for a lease (`Err(Timeout)` otherwise; nothing is left behind).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<HoldGuard> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// A lease only if one is free now.
    pub async fn try_acquire(&self) -> Result<Option<HoldGuard>> {
        optional(self.acquire_until(Some(Instant::now())).await)
    }

    /// Client-relative paths of the current lease nodes.
    pub async fn leases(&self) -> Result<Vec<String>> {
        match members(&self.client, &self.leases, &[LEASE_LABEL]).await {
            Ok(kids) => Ok(kids.iter().map(|k| path::join(&self.leases, k)).collect()),
            Err(Error::NoNode { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<HoldGuard> {
        let turn = match deadline {
            Some(d) => {
                self.mutex
                    .acquire_timeout(d.saturating_duration_since(Instant::now()))
                    .await
            }
            None => self.mutex.acquire().await,
        }?;
        let result = self.take_lease(deadline).await;
        if let Err(e) = turn.release().await {
            tracing::debug!(error = %e, "releasing the semaphore's internal lock failed");
        }
        result
    }

    async fn take_lease(&self, deadline: Option<Instant>) -> Result<HoldGuard> {
        let entry = join(
            &self.client,
            &self.leases,
            LEASE_LABEL,
            &self.data,
            deadline,
        )
        .await?;
        let mut states = self.client.state_stream();
        let outcome = loop {
            if let Err(e) = check_session(&self.client, entry.session) {
                break Err(e);
            }
            let (mut kids, _, watch) = match self.client.children_and_watch(&self.leases).await {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            kids.retain(|k| k.contains(LEASE_LABEL));
            if !kids.contains(&entry.name) {
                break Err(Error::Lost {
                    reason: format!("own lease node {} was deleted while waiting", entry.path),
                });
            }
            if kids.len() <= self.max_leases {
                break Ok(());
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = watch => if let Err(e) = ev { break Err(e) },
                st = states.next() => match st {
                    Some(SessionState::Expired) => break Err(Error::SessionExpired),
                    Some(SessionState::Closed) | None => break Err(Error::Closed),
                    _ => {}
                },
                _ = sleep => break Err(Error::Timeout),
            }
        };
        match outcome {
            Ok(()) => Ok(HoldGuard::new(entry, self.policy)),
            Err(e) => {
                entry.abandon().await;
                Err(e)
            }
        }
    }
}
