//! [`LeastConnections`]: load balancing on a connection count that every client shares.
//!
//! Layout: `<counts>/<service>/<instance id>/<balancer id>` — one **ephemeral** node per
//! (client balancer, instance) holding that client's number of open connections to the instance
//! (decimal). A reader's load for an instance = the sum of every other balancer's published count
//! + its own exact local count.
//!
//! - **Write cost does not grow with the request rate:** picks and releases only change local
//!   counters; a background publisher writes the counts that changed, at most once per
//!   `publish_interval` per instance (so ≤ instances / interval writes per client, whatever the
//!   request rate).
//! - **A client that dies stops counting by itself:** its count nodes are ephemeral.
//! - **Staleness:** a reader sees other clients' counts as they were at most `publish_interval` +
//!   one watch notification ago (its own counts are always exact). With the default 50 ms interval
//!   the picture lags by about 50–60 ms under load.
//! - Ties are broken at random; [`BalancerOptions::power_of_two`] picks the less loaded of two
//!   random instances instead of scanning them all.

use crate::cache::TreeCache;
use crate::contend::ensure_dir;
use crate::discovery::{ServiceCache, ServiceInstance};
use menagerie_core::{path, Client, CreateMode, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Options of a [`LeastConnections`] balancer.
#[derive(Debug, Clone)]
pub struct BalancerOptions {
    /// Where counts live (default `/menagerie/connections`).
    pub counts_path: String,
    /// How often changed counts are published (default 50 ms).
    pub publish_interval: Duration,
    /// Power of two choices instead of the global minimum (default false).
    pub power_of_two: bool,
}

impl Default for BalancerOptions {
    fn default() -> Self {
        BalancerOptions {
            counts_path: "/menagerie/connections".to_string(),
            publish_interval: Duration::from_millis(50),
            power_of_two: false,
        }
    }
}

#[derive(Debug, Default)]
struct Local {
    counts: HashMap<String, i64>,
}

#[derive(Debug)]
struct Shared {
    local: Mutex<Local>,
    changed: Notify,
}

/// A least-connections balancer over a service's instances (from a [`ServiceCache`]). See the
/// [module docs](self) for the layout, the write cost and how stale the picture can be.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::{BalancerOptions, LeastConnections, ServiceDiscovery, ServiceInstance, ServiceRegistry};
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let registry = ServiceRegistry::new(&client, "/services");
/// registry.register(ServiceInstance::new("api", "a", "10.0.0.1", 80)).await?;
/// registry.register(ServiceInstance::new("api", "b", "10.0.0.2", 80)).await?;
/// let cache = ServiceDiscovery::new(&client, "/services").cache("api").await?;
/// let lb = LeastConnections::start(&client, cache, BalancerOptions::default()).await?;
/// let first = lb.pick()?;              // counts one connection while held
/// let second = lb.pick()?;
/// assert_ne!(first.instance().id, second.instance().id);
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct LeastConnections {
    id: String,
    service: Arc<ServiceCache>,
    counts: TreeCache,
    root: String,
    shared: Arc<Shared>,
    options: BalancerOptions,
    publisher: tokio::task::JoinHandle<()>,
}

impl Drop for LeastConnections {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl LeastConnections {
    /// Starts balancing over the instances in `service`.
    pub async fn start(
        client: &Client,
        service: Arc<ServiceCache>,
        options: BalancerOptions,
    ) -> Result<LeastConnections> {
        let name = service.name();
        let root = path::join(&options.counts_path, &name);
        client.ensure_path(&root).await?;
        let counts = TreeCache::with_depth(client, &root, 2).await?;
        let shared = Arc::new(Shared {
            local: Mutex::default(),
            changed: Notify::new(),
        });
        let id = format!(
            "b-{}",
            menagerie_core::client::protected_prefix()
                .trim_start_matches("_c_")
                .trim_end_matches('-')
        );
        let publisher = tokio::spawn(publish(
            client.clone(),
            root.clone(),
            id.clone(),
            shared.clone(),
            options.publish_interval,
        ));
        Ok(LeastConnections {
            id,
            service,
            counts,
            root,
            shared,
            options,
            publisher,
        })
    }

    /// The load of each enabled instance as this client sees it (others' published counts plus
    /// its own exact ones).
    pub fn loads(&self) -> Vec<(ServiceInstance, i64)> {
        let local = self.shared.local.lock().unwrap_or_else(|e| e.into_inner());
        self.service
            .instances()
            .into_iter()
            .map(|i| {
                let dir = path::join(&self.root, &i.id);
                let others: i64 = self
                    .counts
                    .children(&dir)
                    .iter()
                    .filter(|b| **b != self.id)
                    .filter_map(|b| self.counts.get(&path::join(&dir, b)))
                    .filter_map(|n| std::str::from_utf8(&n.data).ok()?.parse::<i64>().ok())
                    .sum();
                let mine = local.counts.get(&i.id).copied().unwrap_or(0);
                (i, others + mine)
            })
            .collect()
    }

    /// Picks the least-loaded instance and counts a connection to it until the guard is dropped.
    /// `NoNode` (naming the service) when no instance is available.
    pub fn pick(&self) -> Result<ConnectionGuard> {
        let loads = self.loads();
        if loads.is_empty() {
            return Err(Error::NoNode {
                path: format!("{} (no instance available)", self.root),
            });
        }
        let chosen = if self.options.power_of_two && loads.len() > 2 {
            let a = fastrand::usize(..loads.len());
            let mut b = fastrand::usize(..loads.len() - 1);
            if b >= a {
                b += 1;
            }
            match loads[a].1.cmp(&loads[b].1) {
                std::cmp::Ordering::Less => a,
                std::cmp::Ordering::Greater => b,
                std::cmp::Ordering::Equal => {
                    if fastrand::bool() {
                        a
                    } else {
                        b
                    }
                }
            }
        } else {
            let min = loads.iter().map(|(_, l)| *l).min().unwrap_or(0);
            let ties: Vec<usize> = (0..loads.len()).filter(|i| loads[*i].1 == min).collect();
            ties[fastrand::usize(..ties.len())]
        };
        let instance = loads[chosen].0.clone();
        {
            let mut local = self.shared.local.lock().unwrap_or_else(|e| e.into_inner());
            *local.counts.entry(instance.id.clone()).or_default() += 1;
        }
        self.shared.changed.notify_one();
        Ok(ConnectionGuard {
            instance,
            shared: self.shared.clone(),
        })
    }
}

/// One counted connection; dropping it stops counting.
#[derive(Debug)]
pub struct ConnectionGuard {
    instance: ServiceInstance,
    shared: Arc<Shared>,
}

impl ConnectionGuard {
    /// The instance picked.
    pub fn instance(&self) -> &ServiceInstance {
        &self.instance
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        {
            let mut local = self.shared.local.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = local.counts.get_mut(&self.instance.id) {
                *c -= 1;
            }
        }
        self.shared.changed.notify_one();
    }
}

/// Publishes changed counts, at most once per interval; republishes everything after a new session.
async fn publish(
    client: Client,
    root: String,
    id: String,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut published: HashMap<String, i64> = HashMap::new();
    let mut session = client.session_id();
    loop {
        shared.changed.notified().await;
        tokio::time::sleep(interval).await; // batch whatever else changes meanwhile
        if client.session_id() != session {
            session = client.session_id();
            published.clear(); // the ephemerals went with the old session
        }
        let snapshot: Vec<(String, i64)> = {
            let local = shared.local.lock().unwrap_or_else(|e| e.into_inner());
            local.counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        let mut failed = false;
        for (instance, count) in snapshot {
            if published.get(&instance).copied().unwrap_or(0) == count {
                continue;
            }
            let dir = path::join(&root, &instance);
            let node = path::join(&dir, &id);
            let data = count.to_string().into_bytes();
            let r = match client.set(&node, &data, None).await {
                Err(Error::NoNode { .. }) => match ensure_dir(&client, &dir).await {
                    Ok(()) => client
                        .create(&node, &data, CreateMode::Ephemeral)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                },
                other => other.map(|_| ()),
            };
            match r {
                Ok(()) => {
                    published.insert(instance, count);
                }
                Err(e) => {
                    tracing::debug!(%instance, error = %e, "publishing a connection count failed");
                    failed = true;
                }
            }
        }
        if failed {
            shared.changed.notify_one(); // try again next round
        }
    }
}
