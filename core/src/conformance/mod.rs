//! The conformance kit: every rule of the [`Backend`] contract as an async check.
//!
//! A backend crate (or integration/) provides a [`BackendFactory`] — fresh sessions on one shared
//! tree plus a way to force a session's expiry — and runs every check, usually with
//! [`conformance_tests!`](crate::conformance_tests), which expands to one `#[tokio::test]` per check:
//!
//! ```ignore
//! menagerie_core::conformance_tests!(my_backend_factory().await);
//! ```
//!
//! Each check works below its own unique base node (`/menagerie-kit/<check>-<unique>`), so all of
//! them can share one server. Checks panic with a message naming the rule that was broken. Every wait
//! is bounded by [`WAIT`]; "must not fire" checks wait [`QUIET`] after a `sync`.
//!
//! A backend that cannot do something (containers, TTL, persistent watches) must say so in its
//! [`Capabilities`](crate::Capabilities) and answer [`Error::Unsupported`]; the checks verify exactly that.

use crate::{Backend, Client, CreateMode, Error, Result};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod basics;
mod list;
mod multi;
mod sessions;
mod watches;

pub use basics::*;
pub use multi::*;
pub use sessions::*;
pub use watches::*;

/// Longest a check waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long a check waits to be sure that something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// Opens sessions on one backend, all sharing one tree, and can expire them.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// A new session (a new client) on the shared tree.
    async fn session(&self) -> Result<Arc<dyn Backend>>;

    /// Forces the current session of `backend` to expire, as the server does when a client stays
    /// silent past its timeout. Returns once the expiry has taken effect on the server (the
    /// session's ephemerals are gone); the handle then reports `Expired` and opens a new session.
    async fn expire(&self, backend: &Arc<dyn Backend>) -> Result<()>;
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A check's private area: a client chrooted to a fresh base node, plus the factory.
pub struct Scope<'a> {
    /// The factory under test.
    pub factory: &'a dyn BackendFactory,
    /// A session chrooted to the base node.
    pub client: Client,
    /// The base node's absolute path on the backend.
    pub base: String,
}

impl Scope<'_> {
    /// Another session, chrooted to the same base node.
    pub async fn other_client(&self) -> Client {
        let b = self.factory.session().await.expect("open another session");
        Client::new(b)
            .with_chroot(&self.base)
            .expect("chroot to the base")
    }
}

/// Opens a session and a fresh, unique base node for the check `name`.
pub async fn scope<'a>(factory: &'a dyn BackendFactory, name: &str) -> Scope<'a> {
    let backend = factory.session().await.expect("open a session");
    let root = Client::new(backend);
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let base = format!("/menagerie-kit/{name}-{nanos:x}-{n}");
    root.ensure_path(&base).await.expect("create the base node");
    let client = root.with_chroot(&base).expect("chroot");
    Scope {
        factory,
        client,
        base,
    }
}

/// Awaits `fut`, failing the check if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for: {what}"),
    }
}

/// Asserts that `fut` does not complete within [`QUIET`] (a watch that must not fire).
pub async fn stays_pending<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = T> + Unpin,
) {
    if let Ok(v) = tokio::time::timeout(QUIET, fut).await {
        panic!("{what}: expected nothing, got {v:?}");
    }
}

/// Asserts that `r` is an error of the given kind.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(r: Result<T>, kind: crate::ErrorKind, what: &str) {
    match r {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected {kind:?}, got {other:?}"),
    }
}

/// Creates a persistent node (helper for checks).
pub async fn mk(c: &Client, p: &str, data: &[u8]) {
    c.create(p, data, CreateMode::Persistent)
        .await
        .unwrap_or_else(|e| panic!("create {p}: {e}"));
}

/// The error returned when something a check relies on is missing.
pub fn unexpected(e: Error) -> ! {
    panic!("unexpected error: {e} ({e:?})")
}

/// Names of every check in the kit, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &crate::__with_checks!(__conformance_names!());

/// Runs every check in sequence against `factory` (for ad-hoc use; test suites use
/// [`conformance_tests!`](crate::conformance_tests) to get one test per check).
pub async fn run_all(factory: &dyn BackendFactory) {
    crate::__with_checks!(__conformance_run_all!(factory));
}
