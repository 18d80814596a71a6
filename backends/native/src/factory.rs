//! The conformance kit's factory for the embedded backend.

use crate::store::NativeStore;
use menagerie_core::conformance::BackendFactory;
use menagerie_core::{async_trait, Backend, Error, Result};
use std::sync::Arc;

/// Sessions on one fresh [`NativeStore`], for `menagerie_core::conformance`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use menagerie_core::conformance::BackendFactory;
/// let f = menagerie_native::NativeFactory::new();
/// let s = f.session().await.unwrap();
/// f.expire(&s).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct NativeFactory {
    store: Arc<NativeStore>,
}

impl NativeFactory {
    /// A factory over a fresh store.
    pub fn new() -> NativeFactory {
        NativeFactory {
            store: NativeStore::new(),
        }
    }

    /// The store behind the sessions.
    pub fn store(&self) -> &Arc<NativeStore> {
        &self.store
    }
}

impl Default for NativeFactory {
    fn default() -> Self {
        NativeFactory::new()
    }
}

#[async_trait]
impl BackendFactory for NativeFactory {
    async fn session(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(self.store.session()))
    }

    async fn expire(&self, backend: &Arc<dyn Backend>) -> Result<()> {
        if self.store.expire(backend.session_id()) {
            Ok(())
        } else {
            Err(Error::SessionExpired)
        }
    }
}
