//! Caches without gaps: [`TreeCache`] (a subtree, optionally depth-limited — a children cache at
//! depth 1) and [`NodeCache`] (one node), kept current in the background.
//!
//! Where the backend has persistent watches, one recursive watch is registered *before* the initial
//! scan, so no change can fall between them; each event re-reads the node it names. Otherwise
//! one-shot data and child watches are re-armed by the very read that refreshes the node (get and
//! watch are one atomic step), so again nothing falls between. Every refresh compares zxids:
//! a node whose `czxid` changed was deleted and re-created (reported as `Removed` then `Added`, even
//! if the two events were coalesced), a larger `mzxid` is an update, anything else is a duplicate.
//!
//! After a reconnect or a session expiry the cache rescans, reports the differences, then
//! [`CacheEvent::Resynced`]: changes made while disconnected may have been coalesced.

use crate::contend::until_connected;
use crate::fanout::Fanout;
use menagerie_core::{
    path, AddWatchMode, Client, Error, EventType, OneshotWatch, Result, SessionState, Stat,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// A cached node: its data and Stat as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedNode {
    /// The data.
    pub data: Vec<u8>,
    /// The Stat.
    pub stat: Stat,
}

/// A change seen by a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// A node appeared (created, or re-created after a delete).
    Added {
        /// Its path (client-relative).
        path: String,
        /// Its data and Stat.
        node: CachedNode,
    },
    /// A node's data changed.
    Updated {
        /// Its path.
        path: String,
        /// Its new data and Stat.
        node: CachedNode,
    },
    /// A node went away.
    Removed {
        /// Its path.
        path: String,
    },
    /// The initial scan is complete.
    Initialized,
    /// The cache rescanned after a reconnect or session expiry; events before this one already
    /// brought it up to date, but intermediate changes may have been coalesced.
    Resynced,
}

type Snapshot = BTreeMap<String, CachedNode>;

#[derive(Debug)]
struct Shared {
    nodes: Mutex<Snapshot>,
    events: Fanout<CacheEvent>,
    initialized: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a read of `p`; publishes what changed.
    fn upsert(&self, p: &str, node: CachedNode) {
        let event = {
            let mut nodes = self.lock();
            match nodes.get(p) {
                Some(old) if old.stat.czxid == node.stat.czxid => {
                    if node.stat.mzxid > old.stat.mzxid
                        || (node.stat.mzxid == old.stat.mzxid && node.stat != old.stat)
                    {
                        nodes.insert(p.to_string(), node.clone());
                        vec![CacheEvent::Updated {
                            path: p.to_string(),
                            node,
                        }]
                    } else {
                        Vec::new()
                    }
                }
                Some(old) if old.stat.czxid > node.stat.czxid => Vec::new(), // stale read
                Some(_) => {
                    nodes.insert(p.to_string(), node.clone());
                    vec![
                        CacheEvent::Removed {
                            path: p.to_string(),
                        },
                        CacheEvent::Added {
                            path: p.to_string(),
                            node,
                        },
                    ]
                }
                None => {
                    nodes.insert(p.to_string(), node.clone());
                    vec![CacheEvent::Added {
                        path: p.to_string(),
                        node,
                    }]
                }
            }
        };
        for e in event {
            self.events.publish(e);
        }
    }

    /// Forgets `p` and everything below it.
    fn remove_subtree(&self, p: &str) {
        let gone: Vec<String> = {
            let mut nodes = self.lock();
            let keys: Vec<String> = nodes
                .keys()
                .filter(|k| path::is_within(k, p))
                .cloned()
                .collect();
            for k in &keys {
                nodes.remove(k);
            }
            keys
        };
        for k in gone.into_iter().rev() {
            self.events.publish(CacheEvent::Removed { path: k });
        }
    }

    /// Replaces the whole snapshot with a fresh scan, publishing the differences.
    fn replace(&self, fresh: Snapshot) {
        let old: Snapshot = self.lock().clone();
        for k in old.keys().rev() {
            if !fresh.contains_key(k) {
                self.remove_subtree(k);
            }
        }
        for (k, n) in fresh {
            self.upsert(&k, n);
        }
    }
}

/// A subtree kept current in memory. See the [module docs](self) for how it avoids gaps.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::{CacheEvent, TreeCache};
/// use menagerie_core::CreateMode;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// client.create_all("/apps/a", b"1", CreateMode::Persistent).await?;
/// let cache = TreeCache::start(&client, "/apps").await?;
/// let mut events = cache.events();
/// client.create("/apps/b", b"2", CreateMode::Persistent).await?;
/// loop {
///     if let Some(CacheEvent::Added { path, .. }) = events.next().await {
///         if path == "/apps/b" { break; }
///     }
/// }
/// assert_eq!(cache.children("/apps"), ["a", "b"]);
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct TreeCache {
    shared: Arc<Shared>,
    root: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Events of a cache, in order, from when [`TreeCache::events`] was called.
#[derive(Debug)]
pub struct CacheEvents {
    rx: mpsc::UnboundedReceiver<CacheEvent>,
}

impl CacheEvents {
    /// The next event (`None` once the cache is dropped).
    pub async fn next(&mut self) -> Option<CacheEvent> {
        self.rx.recv().await
    }
}

impl TreeCache {
    /// Caches the whole subtree at `root`; returns once the initial scan is done.
    pub async fn start(client: &Client, root: &str) -> Result<TreeCache> {
        TreeCache::with_depth(client, root, usize::MAX).await
    }

    /// Caches `root` and its descendants down to `depth` levels below it (0 = the node only,
    /// 1 = the node and its children).
    pub async fn with_depth(client: &Client, root: &str, depth: usize) -> Result<TreeCache> {
        path::validate_path(root, false)?;
        let (init_tx, mut init_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            nodes: Mutex::new(BTreeMap::new()),
            events: Fanout::default(),
            initialized: init_tx,
        });
        let (err_tx, mut err_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            client.clone(),
            root.to_string(),
            depth,
            shared.clone(),
            err_tx,
        ));
        let cache = TreeCache {
            shared,
            root: root.to_string(),
            task,
        };
        tokio::select! {
            r = init_rx.wait_for(|v| *v) => { r.map_err(|_| Error::Closed)?; }
            e = err_rx.recv() => return Err(e.unwrap_or(Error::Closed)),
        }
        Ok(cache)
    }

    /// The cached node at `p`, if any.
    pub fn get(&self, p: &str) -> Option<CachedNode> {
        self.shared.lock().get(p).cloned()
    }

    /// The cached children names of `p`, sorted.
    pub fn children(&self, p: &str) -> Vec<String> {
        let nodes = self.shared.lock();
        let prefix = if p == "/" {
            "/".to_string()
        } else {
            format!("{p}/")
        };
        nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/') && k.len() > prefix.len())
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect()
    }

    /// Everything cached, by path.
    pub fn snapshot(&self) -> BTreeMap<String, CachedNode> {
        self.shared.lock().clone()
    }

    /// The cached root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Changes from now on.
    pub fn events(&self) -> CacheEvents {
        CacheEvents {
            rx: self.shared.events.subscribe(None),
        }
    }
}

fn depth_of(root: &str, p: &str) -> usize {
    if p == root {
        0
    } else {
        path::components(p).len() - path::components(root).len()
    }
}

/// Reads the subtree at `root` down to `depth`.
async fn scan(client: &Client, root: &str, depth: usize) -> Result<Snapshot> {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        let (data, stat) = match client.get(&p).await {
            Ok(r) => r,
            Err(Error::NoNode { .. }) => continue,
            Err(e) => return Err(e),
        };
        if depth_of(root, &p) < depth && stat.num_children > 0 {
            match client.children(&p).await {
                Ok((kids, _)) => stack.extend(kids.iter().map(|k| path::join(&p, k))),
                Err(Error::NoNode { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        out.insert(p, CachedNode { data, stat });
    }
    Ok(out)
}

async fn run(
    client: Client,
    root: String,
    depth: usize,
    shared: Arc<Shared>,
    first_error: mpsc::UnboundedSender<Error>,
) {
    let persistent = client.capabilities().persistent_watches;
    let mut first = true;
    loop {
        if !until_connected(&client).await {
            let _ = first_error.send(Error::Closed);
            return;
        }
        let mut states = client.state_stream();
        let outcome = if persistent {
            follow_persistent(&client, &root, depth, &shared, &mut states, &mut first).await
        } else {
            follow_oneshot(&client, &root, depth, &shared, &mut states, &mut first).await
        };
        match outcome {
            Err(e) if first => {
                // The initial scan failed: tell the caller of start().
                let _ = first_error.send(e);
                return;
            }
            Err(Error::Closed) => return,
            Err(e) => {
                tracing::debug!(%root, error = %e, "cache lost its watch; resyncing");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(()) => {}
        }
    }
}

fn announce_scan(shared: &Shared, fresh: Snapshot, first: &mut bool) {
    shared.replace(fresh);
    if *first {
        *first = false;
        shared.initialized.send_replace(true);
        shared.events.publish(CacheEvent::Initialized);
    } else {
        shared.events.publish(CacheEvent::Resynced);
    }
}

/// True when the state change means watches may have missed something: resync.
fn needs_resync(state: Option<SessionState>) -> bool {
    !matches!(state, Some(SessionState::Suspended))
}

async fn follow_persistent(
    client: &Client,
    root: &str,
    depth: usize,
    shared: &Shared,
    states: &mut menagerie_core::StateStream,
    first: &mut bool,
) -> Result<()> {
    let mode = if depth == 0 {
        AddWatchMode::Persistent
    } else {
        AddWatchMode::PersistentRecursive
    };
    // The watch first, then the scan: nothing can fall between them.
    let mut w = client.watch(root, mode).await?;
    announce_scan(shared, scan(client, root, depth).await?, first);
    loop {
        tokio::select! {
            ev = w.next() => {
                let ev = ev?;
                if depth_of(root, &ev.path) > depth || !path::is_within(&ev.path, root) {
                    continue;
                }
                match ev.event_type {
                    EventType::NodeDeleted => shared.remove_subtree(&ev.path),
                    EventType::NodeCreated | EventType::NodeDataChanged => {
                        match client.get(&ev.path).await {
                            Ok((data, stat)) => shared.upsert(&ev.path, CachedNode { data, stat }),
                            Err(Error::NoNode { .. }) => shared.remove_subtree(&ev.path),
                            Err(e) => return Err(e),
                        }
                    }
                    EventType::NodeChildrenChanged => {}
                }
            }
            st = states.next() => if needs_resync(st) { return Ok(()) },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Armed {
    Data,
    Children,
}

type Watches = JoinSet<(String, Armed, Result<menagerie_core::WatchedEvent>)>;

async fn follow_oneshot(
    client: &Client,
    root: &str,
    depth: usize,
    shared: &Shared,
    states: &mut menagerie_core::StateStream,
    first: &mut bool,
) -> Result<()> {
    let mut set: Watches = JoinSet::new();
    let mut armed: HashSet<(String, Armed)> = HashSet::new();
    let mut fresh = Snapshot::new();
    refresh(
        client, root, root, depth, &mut fresh, None, &mut set, &mut armed,
    )
    .await?;
    announce_scan(shared, fresh, first);
    loop {
        tokio::select! {
            fired = set.join_next(), if !set.is_empty() => {
                let Some(Ok((p, kind, ev))) = fired else { continue };
                armed.remove(&(p.clone(), kind));
                ev?;
                let mut found = Snapshot::new();
                refresh(client, root, &p, depth, &mut found, Some(shared), &mut set, &mut armed).await?;
            }
            st = states.next() => if needs_resync(st) { return Ok(()) },
        }
    }
}

/// Reads `p` (arming its watches) and, when its children changed, the new children's subtrees.
/// With `live`, results go straight into the cache; otherwise into `out` (the initial scan).
#[allow(clippy::too_many_arguments)]
async fn refresh(
    client: &Client,
    root: &str,
    p: &str,
    depth: usize,
    out: &mut Snapshot,
    live: Option<&Shared>,
    set: &mut Watches,
    armed: &mut HashSet<(String, Armed)>,
) -> Result<()> {
    let mut stack = vec![p.to_string()];
    while let Some(p) = stack.pop() {
        let arm = |set: &mut Watches, armed: &mut HashSet<(String, Armed)>, w: OneshotWatch, k| {
            if armed.insert((p.clone(), k)) {
                let p2 = p.clone();
                set.spawn(async move { (p2, k, w.await) });
            }
        };
        let read = if armed.contains(&(p.clone(), Armed::Data)) {
            client.get(&p).await.map(Some)
        } else {
            match client.get_and_watch(&p).await {
                Ok((d, s, w)) => {
                    arm(set, armed, w, Armed::Data);
                    Ok(Some((d, s)))
                }
                Err(Error::NoNode { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let Some((data, stat)) = (match read {
            Err(Error::NoNode { .. }) => None,
            other => other?,
        }) else {
            // Gone. The root is awaited with an exists watch; others come back through their
            // parent's child watch.
            if let Some(shared) = live {
                shared.remove_subtree(&p);
            }
            if p == root && !armed.contains(&(p.clone(), Armed::Data)) {
                let (stat, w) = client.exists_and_watch(&p).await?;
                arm(set, armed, w, Armed::Data);
                if stat.is_some() {
                    stack.push(p.clone()); // created meanwhile: read it
                }
            }
            continue;
        };
        let node = CachedNode { data, stat };
        match live {
            Some(shared) => shared.upsert(&p, node),
            None => {
                out.insert(p.clone(), node);
            }
        }
        if depth_of(root, &p) >= depth {
            continue;
        }
        let kids = if armed.contains(&(p.clone(), Armed::Children)) {
            client.children(&p).await.map(|(k, _)| k)
        } else {
            match client.children_and_watch(&p).await {
                Ok((k, _, w)) => {
                    arm(set, armed, w, Armed::Children);
                    Ok(k)
                }
                Err(e) => Err(e),
            }
        };
        let kids = match kids {
            Ok(k) => k,
            Err(Error::NoNode { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(shared) = live {
            // Children that went away.
            let cached: Vec<String> = {
                let nodes = shared.lock();
                nodes
                    .keys()
                    .filter(|k| path::parent(k) == Some(p.as_str()))
                    .cloned()
                    .collect()
            };
            for c in cached {
                if !kids.iter().any(|k| path::join(&p, k) == c) {
                    shared.remove_subtree(&c);
                }
            }
        }
        for k in kids {
            let c = path::join(&p, &k);
            let known = live.is_some_and(|s| s.lock().contains_key(&c));
            if !known || live.is_none() {
                stack.push(c);
            }
        }
    }
    Ok(())
}

/// One node kept current (it may not exist). A [`TreeCache`] of depth 0.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::NodeCache;
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let cache = NodeCache::start(&client, "/feature-flags").await?;
/// assert!(cache.current().is_none());
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct NodeCache {
    tree: TreeCache,
}

impl NodeCache {
    /// Starts caching `p`; returns once the first read is done.
    pub async fn start(client: &Client, p: &str) -> Result<NodeCache> {
        Ok(NodeCache {
            tree: TreeCache::with_depth(client, p, 0).await?,
        })
    }

    /// The node as last seen (`None` when absent).
    pub fn current(&self) -> Option<CachedNode> {
        self.tree.get(self.tree.root())
    }

    /// Changes from now on.
    pub fn events(&self) -> CacheEvents {
        self.tree.events()
    }
}
