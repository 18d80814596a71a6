//! [`Queue`]: a distributed FIFO queue with stated delivery guarantees.
//!
//! Layout (items are Curator's SimpleDistributedQueue layout, so Java producers and consumers can
//! share the queue on ZooKeeper):
//!
//! | node | kind | meaning |
//! |---|---|---|
//! | `<path>/qn-<seq10>` | persistent-sequential | an item; data = payload |
//! | `<path>/claims/qn-<seq10>` | ephemeral | the item is being processed (data = consumer id) |
//! | `<path>/deliveries/qn-<seq10>` | persistent | deliveries so far (decimal); its version fences acks |
//! | `<path>/dead/qn-<seq10>` | persistent-sequential | dead letters (default dead-letter queue) |
//!
//! - [`take`](Queue::take) is **at-most-once**: it wins an item only if its delete succeeds, so no
//!   two consumers get the same item; an item taken by a consumer that then dies is gone.
//! - [`take_with_ack`](Queue::take_with_ack) is **at-least-once**: it claims the item with an
//!   ephemeral marker; [`Delivery::ack`] removes item and marker atomically. A consumer that dies (its
//!   session ends), drops the delivery, [`nack`](Delivery::nack)s it or exceeds the visibility timeout
//!   gives the item back. After `max_deliveries` deliveries without ack, the item moves to the
//!   dead-letter queue atomically.
//! - Items are handed out in strict FIFO order of their sequence numbers (overflow-safe); claimed
//!   items are skipped.

use crate::contend::{check_session, optional, ready_session};
use menagerie_core::sequence::sort_by_sequence;
use menagerie_core::{path, Client, CreateMode, Error, Op, OpResult, Result, SessionState};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Name prefix of queue items, as Curator's SimpleDistributedQueue.
pub const ITEM_PREFIX: &str = "qn-";

/// One item taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item id (its node name, `qn-<seq>`).
    pub id: String,
    /// The payload.
    pub data: Vec<u8>,
}

/// A distributed FIFO queue. See the [module docs](self) for layout and guarantees.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::Queue;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let jobs = Queue::new(&client, "/queues/jobs");
/// jobs.put(b"first").await?;
/// jobs.put(b"second").await?;
/// assert_eq!(jobs.take().await?.data, b"first");          // at-most-once
/// let delivery = jobs.take_with_ack().await?;             // at-least-once
/// assert_eq!(delivery.item().data, b"second");
/// delivery.ack().await?;
/// assert_eq!(jobs.len().await?, 0);
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    path: String,
    consumer: String,
    visibility: Option<Duration>,
    max_deliveries: Option<u32>,
    dead: String,
    meta_ready: Arc<AtomicBool>,
    cache: Arc<std::sync::Mutex<VecDeque<String>>>,
    ack_cache: Arc<std::sync::Mutex<VecDeque<String>>>,
}

impl Queue {
    /// A queue at `path` (created on first put).
    pub fn new(client: &Client, path: &str) -> Queue {
        Queue {
            client: client.clone(),
            path: path.to_string(),
            consumer: format!("session-{:x}", client.session_id()),
            visibility: None,
            max_deliveries: None,
            dead: path::join(path, "dead"),
            meta_ready: Arc::new(AtomicBool::new(false)),
            cache: Arc::default(),
            ack_cache: Arc::default(),
        }
    }

    /// Identifies this consumer in its claim markers (default: the session id).
    pub fn with_consumer_id(mut self, id: &str) -> Queue {
        self.consumer = id.to_string();
        self
    }

    /// A claim older than this is considered abandoned and the item is delivered again (needs
    /// client and server clocks roughly in sync: claim age is measured from the server's ctime).
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Queue {
        self.visibility = Some(timeout);
        self
    }

    /// After this many deliveries without ack, the item moves to the dead-letter queue.
    pub fn with_max_deliveries(mut self, n: u32) -> Queue {
        self.max_deliveries = Some(n.max(1));
        self
    }

    /// Where dead letters go (default `<path>/dead`).
    pub fn with_dead_letter_path(mut self, p: &str) -> Queue {
        self.dead = p.to_string();
        self
    }

    /// The dead-letter queue.
    pub fn dead_letters(&self) -> Queue {
        Queue::new(&self.client, &self.dead)
    }

    /// The queue's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Appends an item; returns its id.
    pub async fn put(&self, data: &[u8]) -> Result<String> {
        let p = path::join(&self.path, ITEM_PREFIX);
        let created = match self
            .client
            .create(&p, data, CreateMode::PersistentSequential)
            .await
        {
            Err(Error::NoNode { .. }) => {
                self.client.ensure_path(&self.path).await?;
                self.client
                    .create(&p, data, CreateMode::PersistentSequential)
                    .await?
            }
            other => other?,
        };
        Ok(path::basename(&created).to_string())
    }

    /// Number of items (claimed ones included).
    pub async fn len(&self) -> Result<usize> {
        Ok(self.items().await?.0.len())
    }

    /// True when the queue holds no item.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The item at the head, without taking it.
    pub async fn peek(&self) -> Result<Option<Item>> {
        for id in self.items().await?.0 {
            match self.client.get(&path::join(&self.path, &id)).await {
                Ok((data, _)) => return Ok(Some(Item { id, data })),
                Err(Error::NoNode { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Sorted item ids, and whether claim markers exist at all.
    async fn items(&self) -> Result<(Vec<String>, bool)> {
        let kids = match self.client.children(&self.path).await {
            Ok((k, _)) => k,
            Err(Error::NoNode { .. }) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e),
        };
        Ok(sorted_items(kids))
    }

    /// Takes the head item, waiting for one. At-most-once.
    pub async fn take(&self) -> Result<Item> {
        self.take_until(None).await
    }

    /// Takes the head item, waiting at most `timeout` (`Err(Timeout)`).
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Item> {
        self.take_until(Some(Instant::now() + timeout)).await
    }

    /// Takes the head item if there is one now.
    pub async fn try_take(&self) -> Result<Option<Item>> {
        optional(self.take_until(Some(Instant::now())).await)
    }

    async fn take_until(&self, deadline: Option<Instant>) -> Result<Item> {
        let session = ready_session(&self.client, deadline).await?;
        let mut states = self.client.state_stream();
        loop {
            check_session(&self.client, session)?;
            // Items seen in an earlier listing are still the oldest ones: try them first, so a
            // listing serves many takes (items are immutable and only ever appended behind).
            while let Some(id) = self.next_cached() {
                if let Some(item) = self.try_take_item(&id, false).await? {
                    return Ok(item);
                }
            }
            let (kids, watch) = self.list_and_watch().await?;
            let (items, has_claims) = sorted_items(kids);
            if has_claims {
                // Claims come and go: no caching, skip what is claimed now.
                let claimed = self.claimed().await?;
                for id in items.iter().filter(|i| !claimed.contains(*i)) {
                    if let Some(item) = self.try_take_item(id, true).await? {
                        return Ok(item);
                    }
                }
            } else if !items.is_empty() {
                *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = items.into();
                continue;
            }
            self.wait(watch, None, deadline, &mut states, None).await?;
        }
    }

    fn next_ack_cached(&self) -> Option<String> {
        self.ack_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn next_cached(&self) -> Option<String> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Reads then deletes one item: `Some` if this consumer won it.
    async fn try_take_item(&self, id: &str, has_claims: bool) -> Result<Option<Item>> {
        let item_path = path::join(&self.path, id);
        let data = match self.client.get(&item_path).await {
            Ok((d, _)) => d,
            Err(Error::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.client.delete(&item_path, None).await {
            Ok(()) => {
                if has_claims {
                    let d = path::join(&self.deliveries_dir(), id);
                    let _ = self.client.delete(&d, None).await;
                }
                Ok(Some(Item {
                    id: id.to_string(),
                    data,
                }))
            }
            Err(Error::NoNode { .. }) => Ok(None), // another consumer won it
            Err(e) => Err(e),
        }
    }

    async fn list_and_watch(&self) -> Result<(Vec<String>, menagerie_core::OneshotWatch)> {
        match self.client.children_and_watch(&self.path).await {
            Ok((k, _, w)) => Ok((k, w)),
            Err(Error::NoNode { .. }) => {
                self.client.ensure_path(&self.path).await?;
                let (k, _, w) = self.client.children_and_watch(&self.path).await?;
                Ok((k, w))
            }
            Err(e) => Err(e),
        }
    }

    async fn claimed(&self) -> Result<HashSet<String>> {
        match self.client.children(&self.claims_dir()).await {
            Ok((k, _)) => Ok(k.into_iter().collect()),
            Err(Error::NoNode { .. }) => Ok(HashSet::new()),
            Err(e) => Err(e),
        }
    }

    fn claims_dir(&self) -> String {
        path::join(&self.path, "claims")
    }

    fn deliveries_dir(&self) -> String {
        path::join(&self.path, "deliveries")
    }

    async fn wait(
        &self,
        items: menagerie_core::OneshotWatch,
        claims: Option<menagerie_core::OneshotWatch>,
        deadline: Option<Instant>,
        states: &mut menagerie_core::StateStream,
        wake_at: Option<Instant>,
    ) -> Result<()> {
        let until = match (deadline, wake_at) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        };
        let sleep = async {
            match until {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let claims = async {
            match claims {
                Some(w) => w.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = items => { ev?; }
            ev = claims => { ev?; }
            st = states.next() => match st {
                Some(SessionState::Expired) => return Err(Error::SessionExpired),
                Some(SessionState::Closed) | None => return Err(Error::Closed),
                _ => {}
            },
            _ = sleep => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::Timeout);
                }
            }
        }
        Ok(())
    }

    async fn ensure_meta(&self) -> Result<()> {
        if self.meta_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.client.ensure_path(&self.claims_dir()).await?;
        self.client.ensure_path(&self.deliveries_dir()).await?;
        self.meta_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Claims the head unclaimed item, waiting for one. At-least-once: ack the delivery when done.
    pub async fn take_with_ack(&self) -> Result<Delivery> {
        self.take_with_ack_until(None).await
    }

    /// As [`take_with_ack`](Queue::take_with_ack), waiting at most `timeout`.
    pub async fn take_with_ack_timeout(&self, timeout: Duration) -> Result<Delivery> {
        self.take_with_ack_until(Some(Instant::now() + timeout))
            .await
    }

    /// Claims the head unclaimed item if there is one now.
    pub async fn try_take_with_ack(&self) -> Result<Option<Delivery>> {
        optional(self.take_with_ack_until(Some(Instant::now())).await)
    }

    async fn take_with_ack_until(&self, deadline: Option<Instant>) -> Result<Delivery> {
        let session = ready_session(&self.client, deadline).await?;
        self.ensure_meta().await?;
        let mut states = self.client.state_stream();
        loop {
            check_session(&self.client, session)?;
            // Unclaimed items from an earlier listing first: a listing serves many claims.
            while let Some(id) = self.next_ack_cached() {
                if let Some(d) = self.try_claim(&id).await? {
                    return Ok(d);
                }
            }
            let (kids, items_watch) = self.list_and_watch().await?;
            let (items, _) = sorted_items(kids);
            let (claims, _, claims_watch) =
                self.client.children_and_watch(&self.claims_dir()).await?;
            let claimed: HashSet<String> = claims.into_iter().collect();
            let mut wake_at = None;
            let mut candidates = VecDeque::new();
            for id in &items {
                if claimed.contains(id) {
                    match self.reclaim_if_stale(id).await? {
                        Staleness::Freed => {}
                        Staleness::FreshUntil(t) => {
                            wake_at = Some(wake_at.map_or(t, |w: Instant| w.min(t)));
                            continue;
                        }
                        Staleness::NotApplicable => continue,
                    }
                }
                candidates.push_back(id.clone());
            }
            if !candidates.is_empty() {
                *self.ack_cache.lock().unwrap_or_else(|e| e.into_inner()) = candidates;
                continue;
            }
            self.wait(
                items_watch,
                Some(claims_watch),
                deadline,
                &mut states,
                wake_at,
            )
            .await?;
        }
    }

    async fn reclaim_if_stale(&self, id: &str) -> Result<Staleness> {
        let Some(timeout) = self.visibility else {
            return Ok(Staleness::NotApplicable);
        };
        let claim = path::join(&self.claims_dir(), id);
        let Some(stat) = self.client.exists(&claim).await? else {
            return Ok(Staleness::Freed);
        };
        let age_ms = now_ms().saturating_sub(stat.ctime).max(0) as u64;
        let limit = timeout.as_millis() as u64;
        if age_ms < limit {
            return Ok(Staleness::FreshUntil(
                Instant::now() + Duration::from_millis(limit - age_ms),
            ));
        }
        tracing::info!(item = %id, age_ms, "claim exceeded the visibility timeout; redelivering");
        match self.client.delete(&claim, Some(stat.version)).await {
            Ok(()) | Err(Error::NoNode { .. }) => Ok(Staleness::Freed),
            Err(Error::BadVersion { .. }) => Ok(Staleness::NotApplicable),
            Err(e) => Err(e),
        }
    }

    /// Tries to claim one item: `Ok(None)` if it is gone, claimed or being dead-lettered.
    async fn try_claim(&self, id: &str) -> Result<Option<Delivery>> {
        let item_path = path::join(&self.path, id);
        let deliveries = path::join(&self.deliveries_dir(), id);
        let (count, version) = match self.client.get(&deliveries).await {
            Ok((d, stat)) => (parse_count(&d), Some(stat.version)),
            Err(Error::NoNode { .. }) => (0, None),
            Err(e) => return Err(e),
        };
        let data = match self.client.get(&item_path).await {
            Ok((d, _)) => d,
            Err(Error::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.max_deliveries.is_some_and(|max| count >= max) {
            self.dead_letter(id, &data, version).await?;
            return Ok(None);
        }
        let next = (count + 1).to_string().into_bytes();
        let ops = [
            Op::check(item_path.clone(), None),
            Op::create(
                path::join(&self.claims_dir(), id),
                self.consumer.as_bytes().to_vec(),
                CreateMode::Ephemeral,
            ),
            match version {
                Some(v) => Op::set(deliveries.clone(), next, Some(v)),
                None => Op::create(deliveries.clone(), next, CreateMode::Persistent),
            },
        ];
        match self.client.multi(&ops).await {
            Ok(results) => {
                let fence = match results.get(2) {
                    Some(OpResult::SetData { stat }) => stat.version,
                    _ => 0,
                };
                Ok(Some(Delivery {
                    client: self.client.clone(),
                    item: Item {
                        id: id.to_string(),
                        data,
                    },
                    attempt: count + 1,
                    item_path,
                    claim: path::join(&self.claims_dir(), id),
                    deliveries,
                    fence,
                    done: false,
                }))
            }
            Err(Error::MultiFailed { .. }) => Ok(None), // gone, claimed or raced: next item
            Err(e) => Err(e),
        }
    }

    async fn dead_letter(&self, id: &str, data: &[u8], version: Option<i32>) -> Result<()> {
        self.client.ensure_path(&self.dead).await?;
        let mut ops = vec![
            Op::create(
                path::join(&self.dead, ITEM_PREFIX),
                data.to_vec(),
                CreateMode::PersistentSequential,
            ),
            Op::delete(path::join(&self.path, id), None),
        ];
        if let Some(v) = version {
            ops.push(Op::delete(path::join(&self.deliveries_dir(), id), Some(v)));
        }
        match self.client.multi(&ops).await {
            Ok(_) => {
                tracing::warn!(item = %id, queue = %self.path, "moved to the dead-letter queue");
                Ok(())
            }
            Err(Error::MultiFailed { .. }) => Ok(()), // someone else moved or took it
            Err(e) => Err(e),
        }
    }
}

enum Staleness {
    Freed,
    FreshUntil(Instant),
    NotApplicable,
}

fn sorted_items(kids: Vec<String>) -> (Vec<String>, bool) {
    let has_claims = kids.iter().any(|k| k == "claims");
    let mut items: Vec<String> = kids
        .into_iter()
        .filter(|k| k.starts_with(ITEM_PREFIX))
        .collect();
    sort_by_sequence(&mut items);
    (items, has_claims)
}

fn parse_count(d: &[u8]) -> u32 {
    std::str::from_utf8(d)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An item claimed by [`Queue::take_with_ack`]: ack it when processed. Dropping it unacked gives
/// the item back to the queue (in the background).
#[derive(Debug)]
pub struct Delivery {
    client: Client,
    item: Item,
    attempt: u32,
    item_path: String,
    claim: String,
    deliveries: String,
    fence: i32,
    done: bool,
}

impl Delivery {
    /// The item.
    pub fn item(&self) -> &Item {
        &self.item
    }

    /// Which delivery of this item this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Acknowledges: removes the item for good. Fails with `Lost` if the claim was lost meanwhile
    /// (session expired, visibility timeout passed and the item was delivered again).
    pub async fn ack(mut self) -> Result<()> {
        self.done = true;
        let ops = [
            Op::check(self.deliveries.clone(), Some(self.fence)),
            Op::delete(self.claim.clone(), None),
            Op::delete(self.item_path.clone(), None),
            Op::delete(self.deliveries.clone(), None),
        ];
        match self.client.multi(&ops).await {
            Ok(_) => Ok(()),
            Err(Error::MultiFailed { .. }) => Err(Error::Lost {
                reason: format!(
                    "claim on {} was lost before the ack; the item is delivered again",
                    self.item.id
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Gives the item back to the queue now (it counts as a failed delivery). A no-op if the claim
    /// was already lost.
    pub async fn nack(mut self) -> Result<()> {
        self.done = true;
        release_claim(&self.client, &self.deliveries, self.fence, &self.claim).await
    }
}

/// Deletes a claim only if it is still ours (the deliveries version has not moved).
async fn release_claim(client: &Client, deliveries: &str, fence: i32, claim: &str) -> Result<()> {
    let ops = [
        Op::check(deliveries.to_string(), Some(fence)),
        Op::delete(claim.to_string(), None),
    ];
    match client.multi(&ops).await {
        Ok(_) | Err(Error::MultiFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let client = self.client.clone();
        let (deliveries, fence, claim) = (self.deliveries.clone(), self.fence, self.claim.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = release_claim(&client, &deliveries, fence, &claim).await {
                    tracing::debug!(%claim, error = %e, "giving a dropped delivery back failed");
                }
            });
        }
    }
}
