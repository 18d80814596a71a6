//! [`NativeSession`]: one client session on a [`NativeStore`], implementing the core
//! [`Backend`] contract.

use crate::store::{op_result, unexpected_result, Inner, NativeStore};
use crate::tree::{TxnBody, TxnResult};
use menagerie_core::path::validate_path;
use menagerie_core::{
    async_trait, AddWatchMode, Backend, Capabilities, CreateMode, Error, OneshotWatch, Op,
    OpResult, PersistentWatch, Result, SessionEvents, SessionId, SessionState, Stat, StateStream,
};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session on an embedded [`NativeStore`]. Dropping it closes the session (its ephemerals go).
///
/// Besides the [`Backend`] contract it can simulate a network partition for tests:
/// [`disconnect`](NativeSession::disconnect) cuts it off (state `Suspended`, operations fail with
/// `ConnectionLoss`); if it stays cut off for its session timeout the store expires the session;
/// [`reconnect`](NativeSession::reconnect) restores it (`Reconnected`, or `Connected` with a new
/// session if it expired meanwhile).
///
/// ```
/// use menagerie_native::NativeStore;
/// use menagerie_core::{Backend, CreateMode, SessionState};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = NativeStore::new();
/// let s = store.session();
/// let mut states = s.state_stream();
/// s.disconnect();
/// assert_eq!(states.next().await, Some(SessionState::Suspended));
/// assert!(s.get("/").await.is_err());
/// s.reconnect();
/// assert_eq!(states.next().await, Some(SessionState::Reconnected));
/// # });
/// ```
pub struct NativeSession {
    store: Arc<NativeStore>,
    id: Arc<AtomicI64>,
    events: SessionEvents,
    closed: AtomicBool,
}

impl std::fmt::Debug for NativeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeSession")
            .field("session_id", &format_args!("0x{:x}", self.session_id()))
            .field("state", &self.events.current())
            .finish()
    }
}

impl NativeSession {
    pub(crate) fn open(store: Arc<NativeStore>, timeout: Duration) -> NativeSession {
        let events = SessionEvents::new(SessionState::Connected);
        let id = store.lock().open(timeout, events.clone());
        NativeSession {
            store,
            id,
            events,
            closed: AtomicBool::new(false),
        }
    }

    /// The store this session lives on.
    pub fn store(&self) -> &Arc<NativeStore> {
        &self.store
    }

    /// The session id, checked to be usable now.
    fn live(&self, inner: &Inner) -> Result<SessionId> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let id = self.id.load(Ordering::Acquire);
        match inner.attached.get(&id) {
            Some(att) if att.cut_since.is_some() => Err(Error::ConnectionLoss),
            Some(_) => Ok(id),
            None => Err(Error::Closed),
        }
    }

    /// Commits a write and waits until it is durable (at once for an in-memory store).
    async fn write(&self, body: impl FnOnce(SessionId) -> TxnBody) -> Result<TxnResult> {
        let (zxid, result) = {
            let mut inner = self.store.lock();
            let id = self.live(&inner)?;
            inner.commit(body(id))
        };
        self.store.wait_durable(zxid).await?;
        Ok(result)
    }

    async fn write_op(&self, op: Op) -> Result<OpResult> {
        op_result(self.write(|session| TxnBody::Op { session, op }).await?)
    }

    /// Runs a read under the store lock; on a durable store the answer is given only once
    /// everything it may have seen is durable.
    async fn read<T>(&self, f: impl FnOnce(&mut Inner, SessionId) -> Result<T>) -> Result<T> {
        let (last, r) = {
            let mut inner = self.store.lock();
            let id = self.live(&inner)?;
            let r = f(&mut inner, id);
            (inner.tree.last_zxid(), r)
        };
        self.store.wait_durable(last).await?;
        r
    }

    /// Simulates a network partition: `Suspended`, operations fail with ConnectionLoss, and the
    /// session expires once cut off for its timeout.
    pub fn disconnect(&self) {
        let mut inner = self.store.lock();
        let id = self.id.load(Ordering::Acquire);
        if let Some(att) = inner.attached.get_mut(&id) {
            if att.cut_since.is_none() {
                att.cut_since = Some(Instant::now());
                att.events.publish(SessionState::Suspended);
            }
        }
    }

    /// Ends a simulated partition: `Reconnected` if the session survived, otherwise a new session
    /// and `Connected` (the `Expired` was reported when the store expired it).
    pub fn reconnect(&self) {
        let mut inner = self.store.lock();
        let id = self.id.load(Ordering::Acquire);
        let Some(att) = inner.attached.get_mut(&id) else {
            return;
        };
        if att.cut_since.is_none() {
            return;
        }
        if att.expired_while_cut {
            if let Some(att) = inner.attached.remove(&id) {
                inner.renew(att);
            }
        } else {
            att.cut_since = None;
            att.events.publish(SessionState::Reconnected);
        }
    }
}

impl Drop for NativeSession {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let id = self.id.load(Ordering::Acquire);
            self.store.lock().close(id);
        }
    }
}

#[async_trait]
impl Backend for NativeSession {
    fn session_id(&self) -> SessionId {
        self.id.load(Ordering::Acquire)
    }

    fn state(&self) -> SessionState {
        self.events.current()
    }

    fn state_stream(&self) -> StateStream {
        self.events.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            container: true,
            ttl: true,
            persistent_watches: true,
            max_data_len: self.store.with_tree(|t| t.max_data_len()),
        }
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat)> {
        match self.write_op(Op::create(path, data, mode)).await? {
            OpResult::Create { path, stat } => Ok((path, stat)),
            other => Err(unexpected_result(TxnResult::Op(Ok(other)))),
        }
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        self.read(|inner, _| inner.tree.get(path)).await
    }

    async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)> {
        self.read(|inner, id| {
            let (data, stat) = inner.tree.get(path)?;
            let watch = inner.watches.add_data(path, id);
            Ok((data, stat, watch))
        })
        .await
    }

    async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.read(|inner, _| inner.tree.exists(path)).await
    }

    async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        self.read(|inner, id| {
            let stat = inner.tree.exists(path)?;
            let watch = inner.watches.add_data(path, id);
            Ok((stat, watch))
        })
        .await
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        match self.write_op(Op::set(path, data, version)).await? {
            OpResult::SetData { stat } => Ok(stat),
            other => Err(unexpected_result(TxnResult::Op(Ok(other)))),
        }
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        self.write_op(Op::delete(path, version)).await.map(|_| ())
    }

    async fn children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.read(|inner, _| inner.tree.children(path)).await
    }

    async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneshotWatch)> {
        self.read(|inner, id| {
            let (kids, stat) = inner.tree.children(path)?;
            let watch = inner.watches.add_child(path, id);
            Ok((kids, stat, watch))
        })
        .await
    }

    async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        let ops = ops.to_vec();
        match self
            .write(|session| TxnBody::Multi { session, ops })
            .await?
        {
            TxnResult::Multi(r) => r,
            other => Err(unexpected_result(other)),
        }
    }

    async fn sync(&self, path: &str) -> Result<()> {
        validate_path(path, false)?;
        self.read(|_, _| Ok(())).await
    }

    async fn watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        validate_path(path, false)?;
        let mut inner = self.store.lock();
        let id = self.live(&inner)?;
        Ok(inner.watches.add_persistent(path, id, mode))
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        let id = self.id.load(Ordering::Acquire);
        let last = {
            let mut inner = self.store.lock();
            inner.close(id);
            inner.tree.last_zxid()
        };
        self.store.wait_durable(last).await
    }
}
