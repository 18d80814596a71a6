//! Service registry and discovery, in Curator's ServiceDiscovery layout and JSON format:
//! `<base>/<service name>/<instance id>`, an ephemeral node holding the instance as JSON.

use crate::cache::{CacheEvents, TreeCache};
use crate::contend::ensure_dir;
use menagerie_core::{path, Client, CreateMode, Error, Result, SessionState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One instance of a service, serialised as Curator's `ServiceInstance` JSON, so Java services
/// using Curator's ServiceDiscovery and menagerie services see each other.
///
/// ```
/// use menagerie_recipes::ServiceInstance;
/// let i = ServiceInstance::new("greeter", "g-1", "10.0.0.5", 8080);
/// let json = serde_json::to_value(&i).unwrap();
/// assert_eq!(json["name"], "greeter");
/// assert_eq!(json["serviceType"], "DYNAMIC");
/// assert!(json["registrationTimeUTC"].as_i64().unwrap() > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInstance {
    /// Service name.
    pub name: String,
    /// Instance id, unique within the service.
    pub id: String,
    /// Host or IP.
    pub address: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// TLS port.
    #[serde(default)]
    pub ssl_port: Option<u16>,
    /// Free-form payload.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// Registration time, ms since the Unix epoch (Curator's name).
    #[serde(rename = "registrationTimeUTC")]
    pub registration_time_utc: i64,
    /// `DYNAMIC` (ephemeral registration), as Curator writes it.
    #[serde(default = "dynamic")]
    pub service_type: String,
    /// Curator's URI template, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_spec: Option<serde_json::Value>,
    /// False while the instance is marked down: discovery skips it.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn dynamic() -> String {
    "DYNAMIC".to_string()
}

fn yes() -> bool {
    true
}

impl ServiceInstance {
    /// An enabled instance registered now.
    pub fn new(name: &str, id: &str, address: &str, port: u16) -> ServiceInstance {
        ServiceInstance {
            name: name.to_string(),
            id: id.to_string(),
            address: Some(address.to_string()),
            port: Some(port),
            ssl_port: None,
            payload: None,
            registration_time_utc: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            service_type: dynamic(),
            uri_spec: None,
            enabled: true,
        }
    }

    /// The same instance with a payload.
    pub fn with_payload(mut self, payload: serde_json::Value) -> ServiceInstance {
        self.payload = Some(payload);
        self
    }

    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::BadArguments {
            reason: format!("cannot encode instance: {e}"),
        })
    }
}

type Registered = Arc<Mutex<BTreeMap<(String, String), ServiceInstance>>>;

/// Registers this process's service instances and keeps them registered: after a session
/// expiry every instance still registered is written again under the new session (and an
/// unregistered one never comes back). Empty service nodes are containers where the backend has
/// them, and are deleted on the last unregister otherwise.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::{ServiceDiscovery, ServiceInstance, ServiceRegistry};
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let registry = ServiceRegistry::new(&client, "/services");
/// registry.register(ServiceInstance::new("greeter", "g-1", "127.0.0.1", 7001)).await?;
/// let found = ServiceDiscovery::new(&client, "/services").instances("greeter").await?;
/// assert_eq!(found[0].port, Some(7001));
/// registry.mark_down("greeter", "g-1").await?;
/// assert!(ServiceDiscovery::new(&client, "/services").instances("greeter").await?.is_empty());
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct ServiceRegistry {
    client: Client,
    base: String,
    registered: Registered,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServiceRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServiceRegistry {
    /// A registry under `base` (e.g. `/services`).
    pub fn new(client: &Client, base: &str) -> ServiceRegistry {
        let registered: Registered = Arc::default();
        let task = tokio::spawn(reregister_on_new_session(
            client.clone(),
            base.to_string(),
            registered.clone(),
        ));
        ServiceRegistry {
            client: client.clone(),
            base: base.to_string(),
            registered,
            task,
        }
    }

    fn node(&self, name: &str, id: &str) -> String {
        path::join(&path::join(&self.base, name), id)
    }

    /// Registers (or re-registers) an instance.
    pub async fn register(&self, instance: ServiceInstance) -> Result<()> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (instance.name.clone(), instance.id.clone()),
                instance.clone(),
            );
        write_instance(&self.client, &self.base, &instance).await
    }

    /// Replaces an instance's registration data.
    pub async fn update(&self, instance: ServiceInstance) -> Result<()> {
        self.register(instance).await
    }

    /// Marks an instance down (kept registered, skipped by discovery).
    pub async fn mark_down(&self, name: &str, id: &str) -> Result<()> {
        self.set_enabled(name, id, false).await
    }

    /// Marks an instance up again.
    pub async fn mark_up(&self, name: &str, id: &str) -> Result<()> {
        self.set_enabled(name, id, true).await
    }

    async fn set_enabled(&self, name: &str, id: &str, enabled: bool) -> Result<()> {
        let instance = {
            let mut reg = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = reg.get_mut(&(name.to_string(), id.to_string())) else {
                return Err(Error::NoNode {
                    path: self.node(name, id),
                });
            };
            i.enabled = enabled;
            i.clone()
        };
        write_instance(&self.client, &self.base, &instance).await
    }

    /// Removes an instance for good (and its service node, if now empty).
    pub async fn unregister(&self, name: &str, id: &str) -> Result<()> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(name.to_string(), id.to_string()));
        match self.client.delete(&self.node(name, id), None).await {
            Ok(()) | Err(Error::NoNode { .. }) => {}
            Err(e) => return Err(e),
        }
        match self
            .client
            .delete(&path::join(&self.base, name), None)
            .await
        {
            Ok(()) | Err(Error::NoNode { .. } | Error::NotEmpty { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Instances this registry keeps registered.
    pub fn registered(&self) -> Vec<ServiceInstance> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

async fn write_instance(client: &Client, base: &str, instance: &ServiceInstance) -> Result<()> {
    let dir = path::join(base, &instance.name);
    let node = path::join(&dir, &instance.id);
    let data = instance.encode()?;
    for _ in 0..5 {
        ensure_dir(client, &dir).await?;
        match client.create(&node, &data, CreateMode::Ephemeral).await {
            Ok(_) => return Ok(()),
            Err(Error::NodeExists { .. }) => match client.exists(&node).await? {
                Some(stat) if stat.ephemeral_owner == client.session_id() => {
                    match client.set(&node, &data, None).await {
                        Ok(_) => return Ok(()),
                        Err(Error::NoNode { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                // Left by an earlier session of ours that has not expired yet, or by someone
                // else with the same id: ours now.
                Some(stat) => match client.delete(&node, Some(stat.version)).await {
                    Ok(()) | Err(Error::NoNode { .. } | Error::BadVersion { .. }) => continue,
                    Err(e) => return Err(e),
                },
                None => continue,
            },
            Err(Error::NoNode { .. }) => continue, // the container was reaped meanwhile
            Err(e) => return Err(e),
        }
    }
    Err(Error::Timeout)
}

async fn reregister_on_new_session(client: Client, base: String, registered: Registered) {
    let mut states = client.state_stream();
    while let Some(state) = states.next().await {
        if state != SessionState::Connected {
            continue;
        }
        let all: Vec<ServiceInstance> = registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for instance in all {
            let still = registered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&(instance.name.clone(), instance.id.clone()));
            if !still {
                continue;
            }
            match write_instance(&client, &base, &instance).await {
                Ok(()) => {
                    tracing::info!(service = %instance.name, id = %instance.id, "re-registered after a new session")
                }
                Err(e) => {
                    tracing::warn!(service = %instance.name, id = %instance.id, error = %e, "re-registration failed")
                }
            }
        }
    }
}

/// Finds service instances under `base`.
#[derive(Debug, Clone)]
pub struct ServiceDiscovery {
    client: Client,
    base: String,
}

impl ServiceDiscovery {
    /// Discovery under `base` (e.g. `/services`).
    pub fn new(client: &Client, base: &str) -> ServiceDiscovery {
        ServiceDiscovery {
            client: client.clone(),
            base: base.to_string(),
        }
    }

    /// Registered service names.
    pub async fn names(&self) -> Result<Vec<String>> {
        match self.client.children(&self.base).await {
            Ok((k, _)) => Ok(k),
            Err(Error::NoNode { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The enabled instances of `name`, read now.
    pub async fn instances(&self, name: &str) -> Result<Vec<ServiceInstance>> {
        let dir = path::join(&self.base, name);
        let ids = match self.client.children(&dir).await {
            Ok((k, _)) => k,
            Err(Error::NoNode { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for id in ids {
            match self.client.get(&path::join(&dir, &id)).await {
                Ok((data, _)) => {
                    if let Some(i) = decode_instance(&data) {
                        if i.enabled {
                            out.push(i);
                        }
                    }
                }
                Err(Error::NoNode { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A live cache of the instances of `name`.
    pub async fn cache(&self, name: &str) -> Result<Arc<ServiceCache>> {
        let dir = path::join(&self.base, name);
        let tree = TreeCache::with_depth(&self.client, &dir, 1).await?;
        Ok(Arc::new(ServiceCache { tree, dir }))
    }
}

fn decode_instance(data: &[u8]) -> Option<ServiceInstance> {
    match serde_json::from_slice(data) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring an instance node that is not ServiceInstance JSON");
            None
        }
    }
}

/// The instances of one service, kept current.
#[derive(Debug)]
pub struct ServiceCache {
    tree: TreeCache,
    dir: String,
}

impl ServiceCache {
    /// The service's name.
    pub fn name(&self) -> String {
        path::basename(&self.dir).to_string()
    }

    /// Enabled instances, by id order.
    pub fn instances(&self) -> Vec<ServiceInstance> {
        self.all_instances()
            .into_iter()
            .filter(|i| i.enabled)
            .collect()
    }

    /// Every registered instance, marked-down ones included.
    pub fn all_instances(&self) -> Vec<ServiceInstance> {
        self.tree
            .children(&self.dir)
            .iter()
            .filter_map(|id| self.tree.get(&path::join(&self.dir, id)))
            .filter_map(|n| decode_instance(&n.data))
            .collect()
    }

    /// Changes (node-level cache events under the service node) from now on.
    pub fn events(&self) -> CacheEvents {
        self.tree.events()
    }

    /// A provider choosing among the enabled instances with `strategy`.
    pub fn provider(self: &Arc<Self>, strategy: Strategy) -> ServiceProvider {
        ServiceProvider {
            cache: self.clone(),
            strategy,
            next: AtomicUsize::new(0),
            sticky: Mutex::new(None),
        }
    }
}

/// How a [`ServiceProvider`] picks an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The same instance as long as it stays available, then another (at random).
    Sticky,
}

/// Picks one instance of a service per call (Curator's ProviderStrategy).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::{ServiceDiscovery, ServiceInstance, ServiceRegistry, Strategy};
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let registry = ServiceRegistry::new(&client, "/services");
/// registry.register(ServiceInstance::new("db", "a", "10.0.0.1", 5432)).await?;
/// registry.register(ServiceInstance::new("db", "b", "10.0.0.2", 5432)).await?;
/// let cache = ServiceDiscovery::new(&client, "/services").cache("db").await?;
/// let rr = cache.provider(Strategy::RoundRobin);
/// let first = rr.get().unwrap().id;
/// assert_ne!(rr.get().unwrap().id, first);
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct ServiceProvider {
    cache: Arc<ServiceCache>,
    strategy: Strategy,
    next: AtomicUsize,
    sticky: Mutex<Option<String>>,
}

impl ServiceProvider {
    /// An instance, or `None` when none is available.
    pub fn get(&self) -> Option<ServiceInstance> {
        let all = self.cache.instances();
        if all.is_empty() {
            return None;
        }
        match self.strategy {
            Strategy::RoundRobin => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % all.len();
                all.into_iter().nth(i)
            }
            Strategy::Random => {
                let n = all.len();
                all.into_iter().nth(fastrand::usize(..n))
            }
            Strategy::Sticky => {
                let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(id) = sticky.as_ref() {
                    if let Some(i) = all.iter().find(|i| &i.id == id) {
                        return Some(i.clone());
                    }
                }
                let n = all.len();
                let pick = all.into_iter().nth(fastrand::usize(..n))?;
                *sticky = Some(pick.id.clone());
                Some(pick)
            }
        }
    }
}
