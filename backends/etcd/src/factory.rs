//! The conformance kit's factory for etcd.

use crate::backend::{EtcdBackend, EtcdOptions};
use menagerie_core::conformance::BackendFactory;
use menagerie_core::{async_trait, Backend, Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// Sessions on one etcd namespace, for `menagerie_core::conformance`. `expire` revokes a
/// session's lease from a separate connection — as etcd does when the lease's TTL runs out —
/// and waits until the handle has noticed (it reports `Expired`, then `Connected` with a new
/// lease).
///
/// ```no_run
/// # async fn demo() -> menagerie_core::Result<()> {
/// use menagerie_core::conformance::BackendFactory;
/// let f = menagerie_etcd::EtcdFactory::new(menagerie_etcd::EtcdOptions::new(
///     vec!["127.0.0.1:2379".into()],
///     "/kit",
/// ));
/// let s = f.session().await?;
/// f.expire(&s).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EtcdFactory {
    options: EtcdOptions,
}

impl EtcdFactory {
    /// A factory whose sessions use `options`.
    pub fn new(options: EtcdOptions) -> EtcdFactory {
        EtcdFactory { options }
    }

    /// The options every session gets.
    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }
}

#[async_trait]
impl BackendFactory for EtcdFactory {
    async fn session(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(EtcdBackend::connect(self.options.clone()).await?))
    }

    async fn expire(&self, backend: &Arc<dyn Backend>) -> Result<()> {
        let lease = backend.session_id();
        let endpoints: Vec<String> = self
            .options
            .endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let mut other = etcd_client::Client::connect(&endpoints, None)
            .await
            .map_err(crate::error::map)?;
        match other.lease_revoke(lease).await {
            Ok(_) => {}
            Err(e) if crate::error::is_lease_gone(&e) => return Err(Error::SessionExpired),
            Err(e) => return Err(crate::error::map(e)),
        }
        // The revoke returns once the lease's keys are deleted; wait until the handle noticed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while backend.session_id() == lease && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}
