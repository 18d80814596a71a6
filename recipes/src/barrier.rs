//! [`Barrier`] (set / remove / wait) and [`DoubleBarrier`] (enter together, leave together).

use crate::contend::{check_session, ready_session};
use menagerie_core::{path, Client, CreateMode, Error, Result, SessionState, StateStream};
use std::time::Duration;
use tokio::time::Instant;

/// A distributed barrier, Curator's DistributedBarrier: while the node at `path` exists, waiters
/// block; removing it releases them all.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::Barrier;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let gate = Barrier::new(&client, "/barriers/deploy");
/// gate.set().await?;
/// let waiter = { let g = gate.clone(); tokio::spawn(async move { g.wait().await }) };
/// gate.remove().await?;
/// waiter.await.unwrap()?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// A barrier at `path`.
    pub fn new(client: &Client, path: &str) -> Barrier {
        Barrier {
            client: client.clone(),
            path: path.to_string(),
        }
    }

    /// Raises the barrier (idempotent).
    pub async fn set(&self) -> Result<()> {
        match self
            .client
            .create_all(&self.path, &[], CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(Error::NodeExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the barrier, releasing every waiter (idempotent).
    pub async fn remove(&self) -> Result<()> {
        match self.client.delete(&self.path, None).await {
            Ok(()) | Err(Error::NoNode { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the barrier is removed (returns at once if it is not set).
    pub async fn wait(&self) -> Result<()> {
        self.wait_until(None).await
    }

    /// Waits at most `timeout` (`Err(Timeout)`).
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Some(Instant::now() + timeout)).await
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<()> {
        let session = ready_session(&self.client, deadline).await?;
        let mut states = self.client.state_stream();
        loop {
            check_session(&self.client, session)?;
            let (stat, watch) = self.client.exists_and_watch(&self.path).await?;
            if stat.is_none() {
                return Ok(());
            }
            wait_event(watch, &mut states, deadline).await?;
        }
    }
}

/// Waits for a watch, a session end or the deadline.
async fn wait_event(
    watch: menagerie_core::OneshotWatch,
    states: &mut StateStream,
    deadline: Option<Instant>,
) -> Result<()> {
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        ev = watch => { ev?; Ok(()) }
        st = states.next() => match st {
            Some(SessionState::Expired) => Err(Error::SessionExpired),
            Some(SessionState::Closed) | None => Err(Error::Closed),
            _ => Ok(()),
        },
        _ = sleep => Err(Error::Timeout),
    }
}

const READY: &str = "ready";

/// A double barrier (the seed's synchronous queue; Curator's DistributedDoubleBarrier layout):
/// members are ephemeral children `<path>/<member id>`; [`enter`](DoubleBarrier::enter) waits until
/// `size` members are present (the one that completes the set creates `<path>/ready`),
/// [`leave`](DoubleBarrier::leave) removes the member and waits until every member has left. A member
/// whose session dies leaves by itself (its node is ephemeral), so survivors are not stuck leaving.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::DoubleBarrier;
/// let store = menagerie_native::NativeStore::new();
/// let a = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let b = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let (ba, bb) = (DoubleBarrier::new(&a, "/batch/7", 2, "a"), DoubleBarrier::new(&b, "/batch/7", 2, "b"));
/// let (ra, rb) = tokio::join!(ba.enter(), bb.enter());
/// ra?; rb?;
/// let (la, lb) = tokio::join!(ba.leave(), bb.leave());
/// la?; lb?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    size: usize,
    id: String,
}

impl DoubleBarrier {
    /// A double barrier of `size` members at `path`; `member_id` must be unique per member.
    pub fn new(client: &Client, path: &str, size: usize, member_id: &str) -> DoubleBarrier {
        DoubleBarrier {
            client: client.clone(),
            path: path.to_string(),
            size: size.max(1),
            id: member_id.to_string(),
        }
    }

    fn me(&self) -> String {
        path::join(&self.path, &self.id)
    }

    async fn members(&self) -> Result<(Vec<String>, menagerie_core::OneshotWatch)> {
        let (mut kids, _, w) = self.client.children_and_watch(&self.path).await?;
        kids.retain(|k| k != READY);
        Ok((kids, w))
    }

    /// Joins and waits until `size` members are present.
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await
    }

    /// As [`enter`](DoubleBarrier::enter), waiting at most `timeout`; on timeout the member leaves
    /// again.
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<()> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<()> {
        let session = ready_session(&self.client, deadline).await?;
        let mut states = self.client.state_stream();
        let ready = path::join(&self.path, READY);
        match self
            .client
            .create_all(&self.me(), &[], CreateMode::Ephemeral)
            .await
        {
            Ok(_) | Err(Error::NodeExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let r = async {
            loop {
                check_session(&self.client, session)?;
                let (ready_stat, ready_watch) = self.client.exists_and_watch(&ready).await?;
                if ready_stat.is_some() {
                    return Ok(());
                }
                let (kids, _) = self.members().await?;
                if kids.len() >= self.size {
                    match self
                        .client
                        .create(&ready, &[], CreateMode::Persistent)
                        .await
                    {
                        Ok(_) | Err(Error::NodeExists { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                wait_event(ready_watch, &mut states, deadline).await?;
            }
        }
        .await;
        if r.is_err() {
            let _ = self.client.delete(&self.me(), None).await;
        }
        r
    }

    /// Leaves and waits until every member has left (dead members count as left).
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await
    }

    /// As [`leave`](DoubleBarrier::leave), waiting at most `timeout`.
    pub async fn leave_timeout(&self, timeout: Duration) -> Result<()> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<()> {
        let session = ready_session(&self.client, deadline).await?;
        let mut states = self.client.state_stream();
        match self.client.delete(&self.me(), None).await {
            Ok(()) | Err(Error::NoNode { .. }) => {}
            Err(e) => return Err(e),
        }
        loop {
            check_session(&self.client, session)?;
            let (kids, watch) = match self.members().await {
                Ok(r) => r,
                Err(Error::NoNode { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if kids.is_empty() {
                // The last to see it empty removes the ready marker (several may try).
                let ready = path::join(&self.path, READY);
                return match self.client.delete(&ready, None).await {
                    Ok(()) | Err(Error::NoNode { .. }) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            wait_event(watch, &mut states, deadline).await?;
        }
    }
}
