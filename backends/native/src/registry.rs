//! Process-wide named stores: every `native:` connection in one process reaches the same tree,
//! as connections to one server would.

use crate::store::NativeStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The process-wide in-memory store called `name` (created on first use; `""` is the default one
/// behind the plain `native:` URL). It lives as long as the process.
///
/// ```
/// let a = menagerie_native::shared_store("orders");
/// let b = menagerie_native::shared_store("orders");
/// assert!(std::sync::Arc::ptr_eq(&a, &b));
/// ```
pub fn shared_store(name: &str) -> Arc<NativeStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<NativeStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    stores
        .entry(name.to_string())
        .or_insert_with(NativeStore::new)
        .clone()
}

/// The process-wide durable store in directory `dir` (opened with
/// [`NativeStore::open_durable`] on first use, then shared: a data directory can be open only
/// once at a time, so every `native:///path` connection of a process must share one store).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let a = menagerie_native::shared_durable_store(dir.path()).unwrap();
/// let b = menagerie_native::shared_durable_store(dir.path()).unwrap();
/// assert!(std::sync::Arc::ptr_eq(&a, &b));
/// ```
pub fn shared_durable_store(dir: impl AsRef<std::path::Path>) -> std::io::Result<Arc<NativeStore>> {
    static STORES: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<NativeStore>>>> = OnceLock::new();
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)?;
    let key = dir.canonicalize()?;
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = stores.get(&key) {
        return Ok(s.clone());
    }
    let store = NativeStore::open_durable(&key)?;
    stores.insert(key, store.clone());
    Ok(store)
}
