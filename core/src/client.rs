//! [`Client`]: a backend session plus chroot, retries and helpers. Recipes take a `Client`.

use crate::backend::{Backend, Capabilities};
use crate::error::{Error, Result};
use crate::mode::CreateMode;
use crate::op::{Op, OpResult};
use crate::path;
use crate::session::{SessionId, SessionState, StateStream};
use crate::stat::Stat;
use crate::watch::{strip_root, AddWatchMode, OneshotWatch, PersistentWatch};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How the client retries retryable failures (ConnectionLoss, OperationTimeout): exponential
/// backoff with jitter, bounded in total time.
///
/// ```
/// use std::time::Duration;
/// use menagerie_core::RetryPolicy;
/// let p = RetryPolicy { max_elapsed: Duration::from_secs(5), ..RetryPolicy::default() };
/// assert_eq!(p.initial_interval, Duration::from_millis(20));
/// assert!(RetryPolicy::never().max_elapsed.is_zero());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait.
    pub initial_interval: Duration,
    /// Longest single wait.
    pub max_interval: Duration,
    /// Give up (returning the last error) after this much time in total; zero = never retry.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(20),
            max_interval: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_elapsed: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    fn backoff(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoff {
            initial_interval: self.initial_interval,
            max_interval: self.max_interval,
            max_elapsed_time: Some(self.max_elapsed),
            ..backoff::ExponentialBackoff::default()
        }
    }
}

/// A session on a backend, confined to a chroot, with retries and helpers.
///
/// Cheap to clone (clones share the session). Paths given to and returned by a `Client` are
/// relative to its chroot.
///
/// What is retried (with the [`RetryPolicy`]) after ConnectionLoss / OperationTimeout: reads
/// (`get`, `exists`, `children` and their watching forms), `sync`, persistent watches, unconditional
/// `set`, and the idempotent helpers `ensure_path`, `create_all`'s parents and `delete_all`.
/// Never blindly retried, because a retry could apply twice or report a misleading error: `create`,
/// `delete`, versioned `set` and `multi` return the retryable error to the caller. Sequential creates
/// that must survive a connection loss use [`Client::create_protected`].
///
/// ```
/// use menagerie_core::{Client, CreateMode};
/// async fn demo(client: &Client) -> menagerie_core::Result<()> {
///     let app = client.with_chroot("/apps/billing")?;
///     app.ensure_path("/workers").await?;
///     let me = app.create("/workers/w-", b"", CreateMode::EphemeralSequential).await?;
///     assert!(me.starts_with("/workers/w-"));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    backend: Arc<dyn Backend>,
    root: Option<Arc<str>>,
    retry: RetryPolicy,
}

impl Client {
    /// Wraps a backend session (no chroot, default retries).
    pub fn new(backend: Arc<dyn Backend>) -> Client {
        Client {
            backend,
            root: None,
            retry: RetryPolicy::default(),
        }
    }

    /// A client on the same session confined to `root` (relative to this client's chroot).
    /// The root node itself is not created; see [`Client::ensure_path`].
    pub fn with_chroot(&self, root: &str) -> Result<Client> {
        path::validate_path(root, false)?;
        let full = self.full(root);
        Ok(Client {
            backend: self.backend.clone(),
            root: if full == "/" { None } else { Some(full.into()) },
            retry: self.retry,
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// The backend session underneath.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The chroot (`/` when none).
    pub fn chroot(&self) -> &str {
        self.root.as_deref().unwrap_or("/")
    }

    /// The current session id.
    pub fn session_id(&self) -> SessionId {
        self.backend.session_id()
    }

    /// The current connection state.
    pub fn state(&self) -> SessionState {
        self.backend.state()
    }

    /// Connection-state changes from now on.
    pub fn state_stream(&self) -> StateStream {
        self.backend.state_stream()
    }

    /// The backend's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// The backend path for a client path.
    pub fn full(&self, p: &str) -> String {
        match &self.root {
            None => p.to_string(),
            Some(root) if p == "/" => root.to_string(),
            Some(root) if p.is_empty() => root.to_string(),
            Some(root) => format!("{root}{p}"),
        }
    }

    /// The client path for a backend path.
    pub fn relative(&self, p: &str) -> String {
        match &self.root {
            None => p.to_string(),
            Some(root) => strip_root(root, p),
        }
    }

    fn check(&self, p: &str, sequential: bool) -> Result<String> {
        path::validate_path(p, sequential)?;
        Ok(self.full_for(p, sequential))
    }

    /// The backend path; a sequential create of the chroot's `/` names a child of the chroot.
    fn full_for(&self, p: &str, sequential: bool) -> String {
        if sequential && p == "/" && self.root.is_some() {
            return format!("{}/", self.chroot());
        }
        self.full(p)
    }

    fn map_err(&self, e: Error) -> Error {
        match &self.root {
            None => e,
            Some(root) => e.map_path(|p| strip_root(root, p)),
        }
    }

    fn watch_of(&self, w: OneshotWatch) -> OneshotWatch {
        match &self.root {
            None => w,
            Some(root) => w.with_chroot(root.clone()),
        }
    }

    /// Runs `op` again after retryable errors, with backoff, while the client is not closed.
    pub async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // First attempt outside the backoff machinery: the common case costs nothing extra.
        let first = op().await;
        match &first {
            Err(e) if e.is_retryable() && !self.retry.max_elapsed.is_zero() => {}
            _ => return first,
        }
        backoff::future::retry(self.retry.backoff(), || {
            let fut = op();
            async move {
                fut.await.map_err(|e| {
                    if e.is_retryable() {
                        tracing::debug!(error = %e, "retrying after a retryable error");
                        backoff::Error::transient(e)
                    } else {
                        backoff::Error::permanent(e)
                    }
                })
            }
        })
        .await
    }

    /// Creates a node; returns its actual path. Not retried (see the type's docs).
    pub async fn create(&self, p: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        self.create_with_stat(p, data, mode).await.map(|(p, _)| p)
    }

    /// Creates a node; returns its actual path and Stat.
    pub async fn create_with_stat(
        &self,
        p: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        let full = self.check(p, mode.is_sequential())?;
        match self.backend.create(&full, data, mode).await {
            Ok((created, stat)) => Ok((self.relative(&created), stat)),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Creates a node and any missing parents (parents are persistent, empty).
    ///
    /// ```
    /// # use menagerie_core::{Client, CreateMode};
    /// # async fn demo(c: &Client) -> menagerie_core::Result<()> {
    /// c.create_all("/a/b/c", b"leaf", CreateMode::Persistent).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_all(&self, p: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        path::validate_path(p, mode.is_sequential())?;
        let parent = path::parent(p.trim_end_matches('/')).unwrap_or("/");
        let parent = if mode.is_sequential() && p.ends_with('/') {
            p.trim_end_matches('/')
        } else {
            parent
        };
        if parent != "/" && !parent.is_empty() {
            self.ensure_path(parent).await?;
        }
        match self.create(p, data, mode).await {
            // A parent deleted between the two steps: try once more.
            Err(Error::NoNode { .. }) => {
                if parent != "/" && !parent.is_empty() {
                    self.ensure_path(parent).await?;
                }
                self.create(p, data, mode).await
            }
            other => other,
        }
    }

    /// Makes sure `p` and all its ancestors exist (created persistent and empty where missing).
    pub async fn ensure_path(&self, p: &str) -> Result<()> {
        path::validate_path(p, false)?;
        if p == "/" {
            return Ok(());
        }
        // Fast path: it is usually there already.
        if self.exists(p).await?.is_some() {
            return Ok(());
        }
        let mut all = path::ancestors(p);
        all.push(p);
        for node in all {
            let full = self.full(node);
            let r = self
                .retrying(|| self.backend.create(&full, &[], CreateMode::Persistent))
                .await;
            match r {
                Ok(_) | Err(Error::NodeExists { .. }) => {}
                Err(e) => return Err(self.map_err(e)),
            }
        }
        Ok(())
    }

    /// Deletes `p` and everything below it (children first). A missing node is not an error.
    pub async fn delete_all(&self, p: &str) -> Result<()> {
        path::validate_path(p, false)?;
        // Depth-first, iterative, re-listing when a concurrent create makes a delete fail.
        let mut stack = vec![p.to_string()];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Some(top) = stack.last().cloned() {
            if tokio::time::Instant::now() > deadline {
                return Err(Error::OperationTimeout);
            }
            let kids = match self.children(&top).await {
                Ok((kids, _)) => kids,
                Err(Error::NoNode { .. }) => {
                    stack.pop();
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !kids.is_empty() {
                for k in kids {
                    stack.push(path::join(&top, &k));
                }
                continue;
            }
            let full = self.full(&top);
            match self.retrying(|| self.backend.delete(&full, None)).await {
                Ok(()) | Err(Error::NoNode { .. }) => {
                    stack.pop();
                }
                Err(Error::NotEmpty { .. }) => {} // a child appeared: list again
                Err(e) => return Err(self.map_err(e)),
            }
        }
        Ok(())
    }

    /// A sequential create that survives a connection loss without leaving an orphan: the name gets
    /// Curator's protected prefix `_c_<uuid>-`, and after a retryable error the client looks for a
    /// child carrying that prefix (and, for ephemerals, owned by this session) before trying again.
    ///
    /// `parent` is the parent node, `name` the name before the sequence (e.g. `lock-`).
    ///
    /// ```
    /// # use menagerie_core::{Client, CreateMode};
    /// # async fn demo(c: &Client) -> menagerie_core::Result<()> {
    /// let p = c.create_protected("/locks/x", "lock-", b"", CreateMode::EphemeralSequential).await?;
    /// assert!(p.starts_with("/locks/x/_c_"));
    /// # Ok(()) }
    /// ```
    pub async fn create_protected(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String> {
        self.create_protected_with_stat(parent, name, data, mode)
            .await
            .map(|(p, _)| p)
    }

    /// As [`create_protected`](Client::create_protected), also returning the Stat.
    pub async fn create_protected_with_stat(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        let prefix = protected_prefix();
        let p = path::join(parent, &format!("{prefix}{name}"));
        let deadline = tokio::time::Instant::now() + self.retry.max_elapsed;
        let mut wait = self.retry.initial_interval;
        loop {
            match self.create_with_stat(&p, data, mode).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() => {
                    if let Some(found) = self.find_protected(parent, &prefix, mode).await? {
                        return Ok(found);
                    }
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max_interval);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find_protected(
        &self,
        parent: &str,
        prefix: &str,
        mode: CreateMode,
    ) -> Result<Option<(String, Stat)>> {
        let kids = match self.children(parent).await {
            Ok((kids, _)) => kids,
            Err(Error::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        for k in kids.iter().filter(|k| k.starts_with(prefix)) {
            let child = path::join(parent, k);
            if let Some(stat) = self.exists(&child).await? {
                if !mode.is_ephemeral() || stat.ephemeral_owner == self.session_id() {
                    return Ok(Some((child, stat)));
                }
            }
        }
        Ok(None)
    }

    /// Reads data and Stat (retried).
    pub async fn get(&self, p: &str) -> Result<(Vec<u8>, Stat)> {
        let full = self.full(p);
        self.retrying(|| self.backend.get(&full))
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Reads data and Stat and leaves a one-shot data watch (retried).
    pub async fn get_and_watch(&self, p: &str) -> Result<(Vec<u8>, Stat, OneshotWatch)> {
        let full = self.full(p);
        match self.retrying(|| self.backend.get_and_watch(&full)).await {
            Ok((d, s, w)) => Ok((d, s, self.watch_of(w))),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// The node's Stat or `None` (retried).
    pub async fn exists(&self, p: &str) -> Result<Option<Stat>> {
        let full = self.full(p);
        self.retrying(|| self.backend.exists(&full))
            .await
            .map_err(|e| self.map_err(e))
    }

    /// The node's Stat or `None`, leaving a one-shot exists watch (retried).
    pub async fn exists_and_watch(&self, p: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        let full = self.full(p);
        match self.retrying(|| self.backend.exists_and_watch(&full)).await {
            Ok((s, w)) => Ok((s, self.watch_of(w))),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Sets data; retried only when `version` is `None`.
    pub async fn set(&self, p: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        let full = self.full(p);
        let r = if version.is_none() {
            self.retrying(|| self.backend.set(&full, data, None)).await
        } else {
            self.backend.set(&full, data, version).await
        };
        r.map_err(|e| self.map_err(e))
    }

    /// Deletes a node (not retried).
    pub async fn delete(&self, p: &str, version: Option<i32>) -> Result<()> {
        let full = self.full(p);
        self.backend
            .delete(&full, version)
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Child names (sorted) and the parent's Stat (retried).
    pub async fn children(&self, p: &str) -> Result<(Vec<String>, Stat)> {
        let full = self.full(p);
        self.retrying(|| self.backend.children(&full))
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Child names and Stat, leaving a one-shot child watch (retried).
    pub async fn children_and_watch(&self, p: &str) -> Result<(Vec<String>, Stat, OneshotWatch)> {
        let full = self.full(p);
        match self
            .retrying(|| self.backend.children_and_watch(&full))
            .await
        {
            Ok((c, s, w)) => Ok((c, s, self.watch_of(w))),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Applies all operations or none (not retried).
    pub async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        let mapped: Vec<Op>;
        let ops = if self.root.is_some() {
            let mut out = Vec::with_capacity(ops.len());
            for (i, op) in ops.iter().enumerate() {
                let seq = matches!(op, Op::Create { mode, .. } if mode.is_sequential());
                if let Err(e) = path::validate_path(op.path(), seq) {
                    // The same shape a backend gives for an invalid path inside a multi.
                    return Err(Error::MultiFailed {
                        index: i,
                        results: crate::MultiOpError::for_failure(ops.len(), i, e.kind()),
                    });
                }
                out.push(op.with_path(self.full_for(op.path(), seq)));
            }
            mapped = out;
            &mapped[..]
        } else {
            ops
        };
        match self.backend.multi(ops).await {
            Ok(results) => Ok(results
                .into_iter()
                .map(|r| match r {
                    OpResult::Create { path, stat } => OpResult::Create {
                        path: self.relative(&path),
                        stat,
                    },
                    other => other,
                })
                .collect()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Waits until this session has seen every write committed before the call (retried).
    pub async fn sync(&self, p: &str) -> Result<()> {
        let full = self.full(p);
        self.retrying(|| self.backend.sync(&full))
            .await
            .map_err(|e| self.map_err(e))
    }

    /// A persistent (optionally recursive) watch (retried).
    pub async fn watch(&self, p: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        let full = self.full(p);
        match self.retrying(|| self.backend.watch(&full, mode)).await {
            Ok(w) => Ok(match &self.root {
                None => w,
                Some(root) => w.with_chroot(root.clone()),
            }),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Closes the session (for every clone of this client).
    pub async fn close(&self) -> Result<()> {
        self.backend.close().await
    }
}

/// A fresh protected-name prefix, Curator's format: `_c_<uuid>-`.
///
/// ```
/// let p = menagerie_core::client::protected_prefix();
/// assert!(p.starts_with("_c_") && p.ends_with('-') && p.len() == 40);
/// ```
pub fn protected_prefix() -> String {
    format!("_c_{}-", uuid::Uuid::new_v4())
}
