//! [`RwLock`]: many readers or one writer, Curator's InterProcessReadWriteLock layout.

use crate::contend::{first_in_line, join, optional, wait_turn, Turn};
use crate::guard::HoldGuard;
use crate::liveness::SuspendPolicy;
use menagerie_core::{path, Client, Error, Op, Result};
use std::time::Duration;
use tokio::time::Instant;

/// Name part of read nodes: `_c_<uuid>-__READ__<seq10>`.
pub const READ_LABEL: &str = "__READ__";
/// Name part of write nodes: `_c_<uuid>-__WRIT__<seq10>`.
pub const WRITE_LABEL: &str = "__WRIT__";
/// Data a downgraded write node carries: readers no longer wait for it; writers still do.
const DOWNGRADED: &[u8] = b"menagerie:downgraded";

/// A distributed read/write lock: any number of readers, or one writer.
///
/// Readers and writers queue in one directory in sequence order. A writer holds the lock when it is
/// first in line and waits only for its predecessor; a reader holds it when no writer is ahead of it
/// and waits only for the first writer ahead of it. Node names are Curator's (`__READ__`,
/// `__WRIT__`), so Curator and menagerie clients exclude each other on ZooKeeper.
///
/// A writer can [`downgrade`](RwLock::downgrade) to a read hold without ever letting another writer
/// in: its node stays in line (so writers behind it keep waiting) and is marked so that readers
/// stop waiting for it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::RwLock;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let lock = RwLock::new(&client, "/locks/catalog");
/// let r1 = lock.read().await?;
/// let r2 = lock.read().await?;                  // readers share
/// assert!(lock.try_write().await?.is_none());   // a writer must wait
/// r1.release().await?;
/// r2.release().await?;
/// let w = lock.write().await?;
/// let r = lock.downgrade(w).await?;             // now a reader, no writer got in between
/// r.release().await?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RwLock {
    client: Client,
    path: String,
    data: Vec<u8>,
    policy: SuspendPolicy,
}

const LABELS: &[&str] = &[READ_LABEL, WRITE_LABEL];

impl RwLock {
    /// A read/write lock at `path`.
    pub fn new(client: &Client, path: &str) -> RwLock {
        RwLock {
            client: client.clone(),
            path: path.to_string(),
            data: Vec::new(),
            policy: SuspendPolicy::default(),
        }
    }

    /// Data stored in each contender's node.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> RwLock {
        self.data = data.into();
        self
    }

    /// What guards do on a suspended connection (default: lost immediately).
    pub fn with_suspend_policy(mut self, policy: SuspendPolicy) -> RwLock {
        self.policy = policy;
        self
    }

    /// Waits for a shared (read) hold.
    pub async fn read(&self) -> Result<HoldGuard> {
        self.acquire(READ_LABEL, None).await
    }

    /// Waits at most `timeout` for a read hold.
    pub async fn read_timeout(&self, timeout: Duration) -> Result<HoldGuard> {
        self.acquire(READ_LABEL, Some(Instant::now() + timeout))
            .await
    }

    /// Waits for the exclusive (write) hold.
    pub async fn write(&self) -> Result<HoldGuard> {
        self.acquire(WRITE_LABEL, None).await
    }

    /// Waits at most `timeout` for the write hold.
    pub async fn write_timeout(&self, timeout: Duration) -> Result<HoldGuard> {
        self.acquire(WRITE_LABEL, Some(Instant::now() + timeout))
            .await
    }

    /// The write hold only if it is free now.
    pub async fn try_write(&self) -> Result<Option<HoldGuard>> {
        optional(self.acquire(WRITE_LABEL, Some(Instant::now())).await)
    }

    /// Turns a write hold into a read hold atomically (while still holding it): writers queued
    /// behind keep waiting, readers may join. The returned guard keeps the same node and token.
    pub async fn downgrade(&self, write: HoldGuard) -> Result<HoldGuard> {
        let in_this_lock = path::parent(write.node()) == Some(self.path.as_str())
            && path::basename(write.node()).contains(WRITE_LABEL);
        if !in_this_lock {
            return Err(Error::BadArguments {
                reason: format!("{} is not a write hold of {}", write.node(), self.path),
            });
        }
        write
            .fenced(&[Op::set(write.node(), DOWNGRADED.to_vec(), None)])
            .await?;
        Ok(write)
    }

    async fn acquire(&self, label: &str, deadline: Option<Instant>) -> Result<HoldGuard> {
        let entry = join(&self.client, &self.path, label, &self.data, deadline).await?;
        let r = if label == WRITE_LABEL {
            wait_turn(&entry, &self.path, LABELS, deadline, first_in_line).await
        } else {
            let client = self.client.clone();
            let dir = self.path.clone();
            wait_turn(&entry, &self.path, LABELS, deadline, move |kids, me| {
                first_live_writer(client.clone(), dir.clone(), kids, me)
            })
            .await
        };
        match r {
            Ok(()) => Ok(HoldGuard::new(entry, self.policy)),
            Err(e) => {
                entry.abandon().await;
                Err(e)
            }
        }
    }
}

/// A reader's rule: go unless a (not downgraded) writer is ahead; then wait for the first one.
async fn first_live_writer(
    client: Client,
    dir: String,
    kids: Vec<String>,
    me: usize,
) -> Result<Turn> {
    for k in kids[..me].iter().filter(|k| k.contains(WRITE_LABEL)) {
        match client.get(&path::join(&dir, k)).await {
            Ok((data, _)) if data == DOWNGRADED => continue,
            Ok((_, stat)) => return Ok(Turn::WaitForUnchanged(k.clone(), stat.mzxid)),
            Err(Error::NoNode { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Turn::Go)
}
