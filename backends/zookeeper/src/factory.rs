//! The conformance kit's factory for the ZooKeeper backend.

use crate::backend::{Shared, ZkBackend};
use crate::options::ZkOptions;
use menagerie_core::conformance::BackendFactory;
use menagerie_core::{async_trait, Backend, Error, Result};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Sessions on one ZooKeeper ensemble, for `menagerie_core::conformance`. Its
/// [`expire`](BackendFactory::expire) really expires the session on the server (see
/// [`ZkBackend::expire_session`]).
///
/// ```no_run
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use menagerie_core::conformance::BackendFactory;
/// use menagerie_zookeeper::{ZkFactory, ZkOptions};
/// let f = ZkFactory::new("127.0.0.1:2181", ZkOptions::default().with_session_timeout(Duration::from_secs(4)));
/// let s = f.session().await.unwrap();
/// let old = s.session_id();
/// f.expire(&s).await.unwrap();
/// assert_ne!(s.session_id(), old);
/// # });
/// ```
#[derive(Debug)]
pub struct ZkFactory {
    hosts: String,
    options: ZkOptions,
    sessions: Mutex<Vec<Weak<Shared>>>,
}

impl ZkFactory {
    /// A factory opening sessions on `hosts` (`h1:2181,h2:2181`) with `options`.
    pub fn new(hosts: impl Into<String>, options: ZkOptions) -> ZkFactory {
        ZkFactory {
            hosts: hosts.into(),
            options,
            sessions: Mutex::new(Vec::new()),
        }
    }

    /// The servers.
    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    /// A new session as the concrete backend type.
    pub async fn backend(&self) -> Result<ZkBackend> {
        let b = ZkBackend::connect(&self.hosts, self.options.clone()).await?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(b.downgrade());
        Ok(b)
    }

    /// How long `expire` waits for the handle's new session.
    fn expire_wait(&self) -> Duration {
        self.options.connect_timeout + self.options.session_timeout * 3
    }
}

#[async_trait]
impl BackendFactory for ZkFactory {
    async fn session(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(self.backend().await?))
    }

    async fn expire(&self, backend: &Arc<dyn Backend>) -> Result<()> {
        let id = backend.session_id();
        let found = {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions
                .iter()
                .filter_map(ZkBackend::upgrade)
                .find(|s| s.session_id() == id)
        };
        match found {
            Some(b) => b.expire_session(self.expire_wait()).await,
            None => Err(Error::BadArguments {
                reason: format!("session 0x{id:x} was not opened by this ZkFactory"),
            }),
        }
    }
}
