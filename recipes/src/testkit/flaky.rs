//! A fault-injecting wrapper around a real backend: the next create is applied on the server but
//! its reply is "lost" (the caller sees ConnectionLoss), as when a connection drops mid-request.

use menagerie_core::{
    async_trait, AddWatchMode, Backend, Capabilities, CreateMode, Error, OneshotWatch, Op,
    OpResult, PersistentWatch, Result, SessionId, SessionState, Stat, StateStream,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Wraps a real backend; [`lose_next_create_replies`](LossyReplies::lose_next_create_replies) makes
/// the next N creates apply but answer `ConnectionLoss`.
#[derive(Debug)]
pub struct LossyReplies {
    inner: Arc<dyn Backend>,
    lose_creates: AtomicUsize,
    hide_persistent_watches: bool,
    exists_watch_delay_ms: AtomicUsize,
}

impl LossyReplies {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> LossyReplies {
        LossyReplies {
            inner,
            lose_creates: AtomicUsize::new(0),
            hide_persistent_watches: false,
            exists_watch_delay_ms: AtomicUsize::new(0),
        }
    }

    /// Also pretends the backend has no persistent watches (capability off, `watch` Unsupported),
    /// so recipes take their one-shot-watch paths on a backend that has both.
    pub fn without_persistent_watches(mut self) -> LossyReplies {
        self.hide_persistent_watches = true;
        self
    }

    /// Every `exists_and_watch` waits `delay` before it is sent: a slow network between a
    /// recipe's read and the watch it sets next, so changes can land in between.
    pub fn delay_exists_watches(&self, delay: std::time::Duration) {
        self.exists_watch_delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// The next `n` creates are applied but report ConnectionLoss.
    pub fn lose_next_create_replies(&self, n: usize) {
        self.lose_creates.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for LossyReplies {
    fn session_id(&self) -> SessionId {
        self.inner.session_id()
    }
    fn state(&self) -> SessionState {
        self.inner.state()
    }
    fn state_stream(&self) -> StateStream {
        self.inner.state_stream()
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.hide_persistent_watches {
            c.persistent_watches = false;
        }
        c
    }
    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat)> {
        let r = self.inner.create(path, data, mode).await;
        let lose = self
            .lose_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose && r.is_ok() {
            return Err(Error::ConnectionLoss);
        }
        r
    }
    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        self.inner.get(path).await
    }
    async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)> {
        self.inner.get_and_watch(path).await
    }
    async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.inner.exists(path).await
    }
    async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        let delay = self.exists_watch_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
        }
        self.inner.exists_and_watch(path).await
    }
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        self.inner.set(path, data, version).await
    }
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        self.inner.delete(path, version).await
    }
    async fn children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.inner.children(path).await
    }
    async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneshotWatch)> {
        self.inner.children_and_watch(path).await
    }
    async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        self.inner.multi(ops).await
    }
    async fn sync(&self, path: &str) -> Result<()> {
        self.inner.sync(path).await
    }
    async fn watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        if self.hide_persistent_watches {
            return Err(Error::unsupported(
                "persistent watches (hidden by the test wrapper)",
            ));
        }
        self.inner.watch(path, mode).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// A factory whose sessions hide persistent watches (see
/// [`LossyReplies::without_persistent_watches`]): runs recipe tests on their one-shot paths.
pub struct OneShotOnly<F>(pub F);

#[async_trait]
impl<F: menagerie_core::conformance::BackendFactory> menagerie_core::conformance::BackendFactory
    for OneShotOnly<F>
{
    async fn session(&self) -> Result<Arc<dyn Backend>> {
        let inner = self.0.session().await?;
        Ok(Arc::new(
            LossyReplies::new(inner).without_persistent_watches(),
        ))
    }

    async fn expire(&self, backend: &Arc<dyn Backend>) -> Result<()> {
        // The wrapper reports the inner session id, which is all a factory's expire needs.
        self.0.expire(backend).await
    }
}
