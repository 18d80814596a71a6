//! Leader election: [`LeaderLatch`] (join and hold leadership until you leave) and
//! [`LeaderSelector`] (run a future while leader, then let the next one lead).

use crate::contend::{first_in_line, join, members, until_connected, wait_turn};
use crate::fanout::Fanout;
use crate::guard::{HoldGuard, HoldView};
use crate::liveness::{LostReason, SuspendPolicy};
use crate::mutex::Mutex;
use menagerie_core::{path, Client, Error, Result};
use std::future::Future;
use std::sync::Mutex as StdMutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Name part of latch nodes: `_c_<uuid>-latch-<seq10>`, as Curator's LeaderLatch.
pub const LATCH_LABEL: &str = "latch-";

/// A change of leadership seen by one participant.
#[derive(Debug, Clone)]
pub enum LeaderEvent {
    /// This participant became leader; the view carries the term's fencing token and `lost()`.
    Elected(HoldView),
    /// This participant is no longer leader.
    Revoked(LostReason),
    /// The latch was closed; nothing follows.
    Closed,
}

/// Leader election by latch, Curator's LeaderLatch layout: every participant keeps an
/// ephemeral-sequential node `<path>/_c_<uuid>-latch-<seq>` whose data is its participant id; the
/// first in sequence order leads, each other watches only its predecessor.
///
/// Leadership is a [`HoldView`]: its `token()` (the zxid / create revision of the leader's node) is
/// larger for every new term, so resources can refuse a deposed leader; `lost()` resolves when the
/// term ends. On a suspended connection the leader steps down as its [`SuspendPolicy`] says
/// (default: at once), deletes its node once it can, and joins the line again — so two leaders never
/// act with valid tokens at once.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::LeaderLatch;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let latch = LeaderLatch::new(&client, "/election/scheduler", "node-1").start().await?;
/// let term = latch.leadership().await?;
/// assert!(latch.is_leader());
/// assert_eq!(latch.leader_id().await?.as_deref(), Some("node-1"));
/// println!("leading with token {}", term.token());
/// latch.close().await?;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LeaderLatch {
    client: Client,
    path: String,
    id: String,
    policy: SuspendPolicy,
}

impl LeaderLatch {
    /// A latch at `path` for the participant `id`.
    pub fn new(client: &Client, path: &str, id: &str) -> LeaderLatch {
        LeaderLatch {
            client: client.clone(),
            path: path.to_string(),
            id: id.to_string(),
            policy: SuspendPolicy::default(),
        }
    }

    /// When a leader on a suspended connection steps down (default: at once).
    pub fn with_suspend_policy(mut self, policy: SuspendPolicy) -> LeaderLatch {
        self.policy = policy;
        self
    }

    /// Joins the election. Returns once this participant's node exists.
    pub async fn start(&self) -> Result<Latch> {
        let entry = join(
            &self.client,
            &self.path,
            LATCH_LABEL,
            self.id.as_bytes(),
            None,
        )
        .await?;
        let (state_tx, state_rx) = watch::channel(LatchState::Follower);
        let (stop_tx, stop_rx) = watch::channel(false);
        let listeners: Listeners = Fanout::default();
        let task = tokio::spawn(run_latch(
            self.clone(),
            Some(entry),
            state_tx,
            stop_rx,
            listeners.clone(),
        ));
        Ok(Latch {
            client: self.client.clone(),
            path: self.path.clone(),
            state: state_rx,
            stop: stop_tx,
            listeners,
            task: StdMutex::new(Some(task)),
        })
    }

    /// The current leader's participant id, if any.
    pub async fn current_leader(&self) -> Result<Option<String>> {
        first_member_data(&self.client, &self.path, LATCH_LABEL).await
    }
}

type Listeners = Fanout<LeaderEvent>;

#[derive(Debug, Clone)]
enum LatchState {
    Follower,
    Leader(HoldView),
    Closed,
}

fn publish(listeners: &Listeners, event: LeaderEvent) {
    listeners.publish(event);
}

async fn first_member_data(client: &Client, dir: &str, label: &str) -> Result<Option<String>> {
    let kids = match members(client, dir, &[label]).await {
        Ok(k) => k,
        Err(Error::NoNode { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    for k in kids {
        match client.get(&path::join(dir, &k)).await {
            Ok((data, _)) => return Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            Err(Error::NoNode { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

async fn run_latch(
    latch: LeaderLatch,
    mut entry: Option<crate::contend::Entry>,
    state: watch::Sender<LatchState>,
    mut stop: watch::Receiver<bool>,
    listeners: Listeners,
) {
    let client = &latch.client;
    let mut backoff = Duration::from_millis(10);
    loop {
        if *stop.borrow() {
            break;
        }
        let current = match entry.take() {
            Some(e) => e,
            None => {
                let connected = tokio::select! {
                    ok = until_connected(client) => ok,
                    _ = stop.changed() => false,
                };
                if !connected {
                    break;
                }
                match join(client, &latch.path, LATCH_LABEL, latch.id.as_bytes(), None).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::debug!(error = %e, path = %latch.path, "rejoining the election failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
            }
        };
        backoff = Duration::from_millis(10);
        state.send_replace(LatchState::Follower);
        let turn = tokio::select! {
            r = wait_turn(&current, &latch.path, &[LATCH_LABEL], None, first_in_line) => r,
            _ = stop.changed() => {
                current.abandon().await;
                break;
            }
        };
        if let Err(e) = turn {
            tracing::debug!(error = %e, path = %latch.path, "waiting for leadership ended");
            current.abandon().await;
            if e.kind() == menagerie_core::ErrorKind::Closed {
                break;
            }
            continue;
        }
        let guard = HoldGuard::new(current, latch.policy);
        let view = guard.view();
        tracing::info!(path = %latch.path, id = %latch.id, token = view.token(), "elected leader");
        state.send_replace(LatchState::Leader(view.clone()));
        publish(&listeners, LeaderEvent::Elected(view.clone()));
        let reason = tokio::select! {
            r = view.lost() => Some(r),
            _ = stop.changed() => None,
        };
        state.send_replace(LatchState::Follower);
        match reason {
            Some(reason) => {
                tracing::info!(path = %latch.path, id = %latch.id, %reason, "leadership lost");
                publish(&listeners, LeaderEvent::Revoked(reason));
                // Give the node up (it may still exist after a suspension) and join again.
                drop(guard);
            }
            None => {
                publish(&listeners, LeaderEvent::Revoked(LostReason::Released));
                if let Err(e) = guard.release().await {
                    tracing::debug!(error = %e, "releasing leadership failed");
                }
                break;
            }
        }
    }
    state.send_replace(LatchState::Closed);
    publish(&listeners, LeaderEvent::Closed);
}

/// A participant in a [`LeaderLatch`] election. Dropping it leaves the election in the background;
/// [`close`](Latch::close) leaves and waits.
#[derive(Debug)]
pub struct Latch {
    client: Client,
    path: String,
    state: watch::Receiver<LatchState>,
    stop: watch::Sender<bool>,
    listeners: Listeners,
    task: StdMutex<Option<JoinHandle<()>>>,
}

impl Latch {
    /// Waits until this participant leads; returns the term (token and `lost()`).
    pub async fn leadership(&self) -> Result<HoldView> {
        let mut rx = self.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                LatchState::Leader(v) if v.is_held() => return Ok(v.clone()),
                LatchState::Closed => return Err(Error::Closed),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// True while this participant leads (and has not detected a loss).
    pub fn is_leader(&self) -> bool {
        matches!(&*self.state.borrow(), LatchState::Leader(v) if v.is_held())
    }

    /// The current leader's participant id, if any.
    pub async fn leader_id(&self) -> Result<Option<String>> {
        first_member_data(&self.client, &self.path, LATCH_LABEL).await
    }

    /// Participant ids in line order (leader first).
    pub async fn participants(&self) -> Result<Vec<String>> {
        let kids = members(&self.client, &self.path, &[LATCH_LABEL]).await?;
        let mut out = Vec::new();
        for k in kids {
            if let Ok((data, _)) = self.client.get(&path::join(&self.path, &k)).await {
                out.push(String::from_utf8_lossy(&data).into_owned());
            }
        }
        Ok(out)
    }

    /// Leadership changes of this participant from now on.
    pub fn events(&self) -> LeaderEvents {
        let current = match &*self.state.borrow() {
            LatchState::Leader(v) => Some(LeaderEvent::Elected(v.clone())),
            _ => None,
        };
        LeaderEvents {
            rx: self.listeners.subscribe(current),
        }
    }

    /// Leaves the election (deleting this participant's node) and waits until done.
    pub async fn close(&self) -> Result<()> {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for Latch {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A stream of [`LeaderEvent`]s for one participant.
#[derive(Debug)]
pub struct LeaderEvents {
    rx: mpsc::UnboundedReceiver<LeaderEvent>,
}

impl LeaderEvents {
    /// The next change; `None` after `Closed`.
    pub async fn next(&mut self) -> Option<LeaderEvent> {
        self.rx.recv().await
    }
}

/// Leader election by lock, Curator's LeaderSelector: participants queue on a [`Mutex`] (data =
/// participant id); the holder runs the leadership future you give it; when the future returns —
/// or leadership is lost and the future does not stop within the grace — the lock is released and,
/// with [`requeue`](LeaderSelector::requeue), the participant queues again.
///
/// The future receives the term's [`HoldView`] (token, `lost()`): select on `lost()` to stop
/// promptly; a future that ignores it is cancelled (dropped) after the grace.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::LeaderSelector;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let selector = LeaderSelector::new(&client, "/election/jobs", "worker-1").start(move |term| {
///     let tx = tx.clone();
///     async move { let _ = tx.send(term.token()); }
/// });
/// let token = rx.recv().await.unwrap();
/// assert!(token > 0);
/// selector.close().await;
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LeaderSelector {
    mutex: Mutex,
    requeue: bool,
    grace: Duration,
}

impl LeaderSelector {
    /// A selector at `path` for participant `id` (no re-queue, 1 s grace).
    pub fn new(client: &Client, path: &str, id: &str) -> LeaderSelector {
        LeaderSelector {
            mutex: Mutex::new(client, path).with_data(id.as_bytes().to_vec()),
            requeue: false,
            grace: Duration::from_secs(1),
        }
    }

    /// Queue again after each term (until closed).
    pub fn requeue(mut self, requeue: bool) -> LeaderSelector {
        self.requeue = requeue;
        self
    }

    /// How long a leadership future may keep running after its term was lost (default 1 s).
    pub fn cancel_grace(mut self, grace: Duration) -> LeaderSelector {
        self.grace = grace;
        self
    }

    /// What the leader does on a suspended connection (default: step down at once).
    pub fn with_suspend_policy(mut self, policy: SuspendPolicy) -> LeaderSelector {
        self.mutex = self.mutex.with_suspend_policy(policy);
        self
    }

    /// Starts taking part; `lead` is called for every term this participant wins.
    pub fn start<F, Fut>(self, mut lead: F) -> SelectorHandle
    where
        F: FnMut(HoldView) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop_tx, mut stop) = watch::channel(false);
        let (leading_tx, leading) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let guard = tokio::select! {
                    g = self.mutex.acquire() => g,
                    _ = stop.changed() => break,
                };
                let guard = match guard {
                    Ok(g) => g,
                    Err(e) if e.kind() == menagerie_core::ErrorKind::Closed => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "leader selector: acquire failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                            _ = stop.changed() => break,
                        }
                    }
                };
                let view = guard.view();
                leading_tx.send_replace(true);
                let mut fut = Box::pin(lead(view.clone()));
                let stopped = tokio::select! {
                    _ = &mut fut => false,
                    _ = view.lost() => {
                        let _ = tokio::time::timeout(self.grace, &mut fut).await;
                        false
                    }
                    _ = stop.changed() => {
                        let _ = tokio::time::timeout(self.grace, &mut fut).await;
                        true
                    }
                };
                drop(fut);
                leading_tx.send_replace(false);
                if let Err(e) = guard.release().await {
                    tracing::debug!(error = %e, "leader selector: release failed");
                }
                if stopped || !self.requeue {
                    break;
                }
            }
        });
        SelectorHandle {
            stop: stop_tx,
            leading,
            task: StdMutex::new(Some(task)),
        }
    }
}

/// A running [`LeaderSelector`] participant.
#[derive(Debug)]
pub struct SelectorHandle {
    stop: watch::Sender<bool>,
    leading: watch::Receiver<bool>,
    task: StdMutex<Option<JoinHandle<()>>>,
}

impl SelectorHandle {
    /// True while this participant's leadership future runs.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops: the running leadership future is cancelled after the grace, the lock released.
    pub async fn close(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for SelectorHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
