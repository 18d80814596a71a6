//! [`ConfigWatch`]: a typed configuration value at a path, kept current, with compare-and-set
//! updates.

use crate::cache::{CacheEvent, NodeCache};
use menagerie_core::{Client, CreateMode, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::watch;

/// How a configuration value is stored in a node.
pub trait Codec<T>: Send + Sync + 'static {
    /// Bytes → value.
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String>;
    /// Value → bytes.
    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String>;
}

/// JSON (serde_json).
///
/// ```
/// use menagerie_recipes::{Codec, Json};
/// let v: Vec<u32> = Json.decode(b"[1,2]").unwrap();
/// assert_eq!(Json.encode(&v).unwrap(), b"[1,2]");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
}

/// TOML.
///
/// ```
/// use menagerie_recipes::{Codec, Toml};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct C { workers: u32 }
/// let c: C = Toml.decode(b"workers = 4").unwrap();
/// assert_eq!(c, C { workers: 4 });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Toml;

impl<T: Serialize + DeserializeOwned> Codec<T> for Toml {
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        toml::from_str(text).map_err(|e| e.to_string())
    }
    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String> {
        toml::to_string(value)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    }
}

/// Raw bytes, unchanged.
///
/// ```
/// use menagerie_recipes::{Codec, Raw};
/// assert_eq!(Raw.decode(b"x").unwrap(), b"x".to_vec());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Vec<u8>> for Raw {
    fn decode(&self, bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
    fn encode(&self, value: &Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        Ok(value.clone())
    }
}

/// The configuration as last seen.
#[derive(Debug)]
pub struct ConfigValue<T> {
    /// The value (the default while the node is absent).
    pub value: Arc<T>,
    /// The node's version, `None` while the node is absent (the default is in force).
    pub version: Option<i32>,
    /// zxid of the last change seen (0 while absent).
    pub mzxid: i64,
    /// Set when the node holds data that does not decode: `value` is then the last good value.
    pub invalid: Option<String>,
}

impl<T> Clone for ConfigValue<T> {
    fn clone(&self) -> Self {
        ConfigValue {
            value: self.value.clone(),
            version: self.version,
            mzxid: self.mzxid,
            invalid: self.invalid.clone(),
        }
    }
}

/// A typed value at a path, kept current in the background; absent node = the default.
///
/// Deletion brings the default back; re-creation is picked up (even when delete and re-create
/// were coalesced). Updates are versioned compare-and-set, so concurrent writers never overwrite
/// each other blindly.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_recipes::ConfigWatch;
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Default)]
/// struct Limits { max_conns: u32 }
/// let store = menagerie_native::NativeStore::new();
/// let client = menagerie_core::Client::new(std::sync::Arc::new(store.session()));
/// let cfg = ConfigWatch::json(&client, "/config/limits", Limits { max_conns: 10 }).await?;
/// assert_eq!(cfg.current().value.max_conns, 10);            // default: node absent
/// let mut changes = cfg.changes();
/// cfg.update(|l| Limits { max_conns: l.max_conns * 2 }).await?;
/// assert_eq!(changes.next().await.unwrap().value.max_conns, 20);
/// # Ok::<_, menagerie_core::Error>(()) }).unwrap();
/// ```
pub struct ConfigWatch<T> {
    client: Client,
    path: String,
    codec: Arc<dyn Codec<T>>,
    state: watch::Receiver<ConfigValue<T>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> std::fmt::Debug for ConfigWatch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch")
            .field("path", &self.path)
            .finish()
    }
}

impl<T> Drop for ConfigWatch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> ConfigWatch<T> {
    /// A JSON value at `p`.
    pub async fn json(client: &Client, p: &str, default: T) -> Result<ConfigWatch<T>> {
        ConfigWatch::with_codec(client, p, default, Json).await
    }

    /// A TOML value at `p`.
    pub async fn toml(client: &Client, p: &str, default: T) -> Result<ConfigWatch<T>> {
        ConfigWatch::with_codec(client, p, default, Toml).await
    }
}

impl ConfigWatch<Vec<u8>> {
    /// Raw bytes at `p`.
    pub async fn raw(client: &Client, p: &str, default: Vec<u8>) -> Result<ConfigWatch<Vec<u8>>> {
        ConfigWatch::with_codec(client, p, default, Raw).await
    }
}

impl<T: Send + Sync + 'static> ConfigWatch<T> {
    /// A value at `p` stored with `codec`.
    pub async fn with_codec(
        client: &Client,
        p: &str,
        default: T,
        codec: impl Codec<T>,
    ) -> Result<ConfigWatch<T>> {
        let codec: Arc<dyn Codec<T>> = Arc::new(codec);
        let default = Arc::new(default);
        let cache = NodeCache::start(client, p).await?;
        let mut events = cache.events();
        let initial = decode(
            &codec,
            &default,
            None,
            cache.current().map(|n| (n.data, n.stat)),
        );
        let (tx, rx) = watch::channel(initial);
        let path = p.to_string();
        let codec2 = codec.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if matches!(ev, CacheEvent::Initialized) {
                    continue;
                }
                let prev = tx.borrow().clone();
                let next = decode(
                    &codec2,
                    &default,
                    Some(&prev),
                    cache.current().map(|n| (n.data, n.stat)),
                );
                if let Some(err) = &next.invalid {
                    tracing::warn!(%path, error = %err, "configuration does not decode; keeping the last good value");
                }
                let changed = next.mzxid != prev.mzxid || next.version != prev.version;
                if changed {
                    tx.send_replace(next);
                }
            }
        });
        Ok(ConfigWatch {
            client: client.clone(),
            path: p.to_string(),
            codec,
            state: rx,
            task,
        })
    }

    /// The value as last seen.
    pub fn current(&self) -> ConfigValue<T> {
        self.state.borrow().clone()
    }

    /// A stream of changes from now on; a slow reader skips intermediate values but always sees
    /// the latest.
    pub fn changes(&self) -> ConfigChanges<T> {
        let mut rx = self.state.clone();
        rx.mark_unchanged();
        ConfigChanges { rx }
    }

    /// Writes `value` only if the node is at `expected` version (`None`: only if it does not
    /// exist yet). Returns the new version; `BadVersion` / `NodeExists` when someone else wrote
    /// first.
    pub async fn compare_and_set(&self, expected: Option<i32>, value: &T) -> Result<i32> {
        let bytes = self
            .codec
            .encode(value)
            .map_err(|reason| Error::BadArguments {
                reason: format!("cannot encode the configuration: {reason}"),
            })?;
        match expected {
            Some(v) => Ok(self.client.set(&self.path, &bytes, Some(v)).await?.version),
            None => {
                self.client
                    .create_all(&self.path, &bytes, CreateMode::Persistent)
                    .await?;
                Ok(0)
            }
        }
    }

    /// Read-modify-write with compare-and-set, retried on conflicts; returns what was written.
    pub async fn update(&self, f: impl Fn(&T) -> T) -> Result<ConfigValue<T>> {
        for _ in 0..100 {
            let (current, version, mzxid) = match self.client.get(&self.path).await {
                Ok((data, stat)) => match self.codec.decode(&data) {
                    Ok(v) => (Arc::new(v), Some(stat.version), stat.mzxid),
                    Err(e) => {
                        return Err(Error::BadArguments {
                            reason: format!("stored configuration does not decode: {e}"),
                        })
                    }
                },
                Err(Error::NoNode { .. }) => (self.current_default(), None, 0),
                Err(e) => return Err(e),
            };
            let next = f(&current);
            match self.compare_and_set(version, &next).await {
                Ok(v) => {
                    return Ok(ConfigValue {
                        value: Arc::new(next),
                        version: Some(v),
                        mzxid,
                        invalid: None,
                    })
                }
                Err(Error::BadVersion { .. } | Error::NodeExists { .. } | Error::NoNode { .. }) => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Timeout)
    }

    fn current_default(&self) -> Arc<T> {
        let s = self.state.borrow();
        s.value.clone()
    }

    /// Deletes the node: every watcher falls back to the default.
    pub async fn delete(&self) -> Result<()> {
        match self.client.delete(&self.path, None).await {
            Ok(()) | Err(Error::NoNode { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn decode<T: 'static>(
    codec: &Arc<dyn Codec<T>>,
    default: &Arc<T>,
    prev: Option<&ConfigValue<T>>,
    node: Option<(Vec<u8>, menagerie_core::Stat)>,
) -> ConfigValue<T> {
    match node {
        None => ConfigValue {
            value: default.clone(),
            version: None,
            mzxid: 0,
            invalid: None,
        },
        Some((data, stat)) => match codec.decode(&data) {
            Ok(v) => ConfigValue {
                value: Arc::new(v),
                version: Some(stat.version),
                mzxid: stat.mzxid,
                invalid: None,
            },
            Err(e) => ConfigValue {
                value: prev
                    .map(|p| p.value.clone())
                    .unwrap_or_else(|| default.clone()),
                version: Some(stat.version),
                mzxid: stat.mzxid,
                invalid: Some(e),
            },
        },
    }
}

/// Changes of a [`ConfigWatch`].
#[derive(Debug)]
pub struct ConfigChanges<T> {
    rx: watch::Receiver<ConfigValue<T>>,
}

impl<T> ConfigChanges<T> {
    /// Waits for the next change and returns the latest value (`None` once the watch is dropped).
    pub async fn next(&mut self) -> Option<ConfigValue<T>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }
}
