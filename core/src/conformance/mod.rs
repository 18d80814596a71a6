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
//! is bounded by [`WAIT`]; "must not fire" checks wait [`QUIET`] after a `sync` (or after a change
//! that fired another watch).
//!
//! The checks never look at absolute zxid values (ZooKeeper and etcd number differently), only at
//! their order, and never assume anything about nodes outside their own base.
//!
//! The checks, by area:
//! - paths, create modes, reads, Stat, versions, the data limit, sync: see the `basics` checks
//!   (e.g. [`path_rules_enforced`], [`parent_stat_tracks_children`]);
//! - sequential numbering ([`sequence_counts_every_child_create`], …);
//! - multi ([`multi_applies_all_with_results`], …);
//! - sessions, close and expiry ([`expiry_reports_expired_then_new_session`], …);
//! - one-shot and persistent watches ([`watch_fires_once`], [`recursive_watch_sees_subtree_without_child_events`], …);
//! - chroot ([`chroot_paths_are_relative`], [`chroots_are_isolated`]);
//! - the [`Client`] helpers ([`create_protected_name_format`], …);
//! - capability-gated features ([`container_reaped_after_last_child`], [`ttl_node_expires`]).
//!
//! A backend that cannot do something (containers, TTL, persistent watches) must say so in its
//! [`Capabilities`](crate::Capabilities) and answer [`Error::Unsupported`]; the checks verify exactly that.

use crate::{
    AddWatchMode, Backend, Client, CreateMode, Error, ErrorKind, EventType, MultiOpError,
    OneshotWatch, Op, OpResult, PersistentWatch, Result, SessionState, Stat, StateStream,
    WatchedEvent,
};
use async_trait::async_trait;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

mod basics;
mod capabilities;
mod chroot;
mod helpers;
mod list;
mod multi;
mod sequential;
mod sessions;
mod watches;

pub use basics::*;
pub use capabilities::*;
pub use chroot::*;
pub use helpers::*;
pub use multi::*;
pub use sequential::*;
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

    /// Forces the session of `client` to expire (see [`BackendFactory::expire`]).
    pub async fn expire(&self, client: &Client) {
        ok(
            self.factory.expire(client.backend()).await,
            "factory.expire",
        );
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
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for: {what}"),
    }
}

/// Asserts that `fut` does not complete within [`QUIET`] (a watch that must not fire).
pub async fn stays_pending<T: Debug>(what: &str, fut: impl Future<Output = T> + Unpin) {
    if let Ok(v) = tokio::time::timeout(QUIET, fut).await {
        panic!("{what}: expected nothing, got {v:?}");
    }
}

/// Asserts that a watch has not fired: lets the session catch up with `sync`, then waits [`QUIET`].
pub async fn expect_quiet<T: Debug>(c: &Client, what: &str, fut: impl Future<Output = T> + Unpin) {
    catch_up(c).await;
    stays_pending(what, fut).await;
}

/// Lets `c` see every write committed so far (`sync`): needed before a session acts on another
/// session's writes, since on a real ensemble the two may be attached to different servers.
pub async fn catch_up(c: &Client) {
    ok(c.sync("/").await, "sync");
}

/// Asserts that `r` is an error of the given kind.
#[track_caller]
pub fn assert_err<T: Debug>(r: Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected {kind:?}, got {other:?}"),
    }
}

/// Asserts that `r` is an error of the given kind that names `path`.
#[track_caller]
pub fn assert_err_path<T: Debug>(r: Result<T>, kind: ErrorKind, path: &str, what: &str) {
    match r {
        Err(e) if e.kind() == kind && error_path(&e) == Some(path) => {}
        other => panic!("{what}: expected {kind:?} naming {path:?}, got {other:?}"),
    }
}

/// The path an error names, for the kinds that carry one.
pub fn error_path(e: &Error) -> Option<&str> {
    match e {
        Error::NoNode { path }
        | Error::NodeExists { path }
        | Error::BadVersion { path }
        | Error::NotEmpty { path }
        | Error::NoChildrenForEphemerals { path }
        | Error::InvalidPath { path, .. }
        | Error::NoWatcher { path } => Some(path),
        _ => None,
    }
}

/// Asserts that a multi of `len` operations failed at `index` with `kind`, reporting the others
/// as rolled back (before `index`) and not run (after it).
#[track_caller]
pub fn assert_multi_failed<T: Debug>(
    r: Result<T>,
    len: usize,
    index: usize,
    kind: ErrorKind,
    what: &str,
) {
    let expected = MultiOpError::for_failure(len, index, kind);
    match r {
        Err(Error::MultiFailed {
            index: i,
            results,
        }) if i == index && results == expected => {}
        other => panic!(
            "{what}: expected MultiFailed {{ index: {index}, results: {expected:?} }}, got {other:?}"
        ),
    }
}

/// Unwraps `r`, failing the check with `what` and the error.
#[track_caller]
pub fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e} ({e:?})"),
    }
}

/// Creates a persistent node (helper for checks).
pub async fn mk(c: &Client, p: &str, data: &[u8]) {
    c.create(p, data, CreateMode::Persistent)
        .await
        .unwrap_or_else(|e| panic!("create {p}: {e}"));
}

/// Creates a node in `mode`; returns its path and Stat.
pub async fn mk_mode(c: &Client, p: &str, data: &[u8], mode: CreateMode) -> (String, Stat) {
    c.create_with_stat(p, data, mode)
        .await
        .unwrap_or_else(|e| panic!("create {p} ({mode:?}): {e}"))
}

/// The Stat of a node that must exist.
pub async fn stat_of(c: &Client, p: &str) -> Stat {
    match c.exists(p).await {
        Ok(Some(stat)) => stat,
        other => panic!("{p} should exist, got {other:?}"),
    }
}

/// Asserts that `p` does not exist (after a `sync`, so other sessions' writes are seen).
pub async fn assert_absent(c: &Client, p: &str, what: &str) {
    catch_up(c).await;
    if let Some(stat) = ok(c.exists(p).await, "exists") {
        panic!("{what}: {p} should not exist, found {stat:?}");
    }
}

/// Polls until `p` is gone, for at most [`WAIT`] (reaped containers, expired TTL nodes).
pub async fn wait_absent(c: &Client, p: &str, what: &str) {
    within(what, async {
        while ok(c.exists(p).await, "exists").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The data of a node that must exist.
pub async fn data_of(c: &Client, p: &str) -> Vec<u8> {
    ok(c.get(p).await, &format!("get {p}")).0
}

/// A child name with its sequential suffix: `prefix` + `%010d`.
pub fn seq_name(prefix: &str, n: i32) -> String {
    format!("{prefix}{}", crate::sequence::format_sequence(n))
}

/// Awaits a one-shot watch (at most [`WAIT`]) and asserts the event it delivers.
pub async fn expect_event(
    what: &str,
    watch: impl Future<Output = Result<WatchedEvent>>,
    event_type: EventType,
    path: &str,
) {
    match within(what, watch).await {
        Ok(ev) if ev.event_type == event_type && ev.path == path => {}
        other => panic!("{what}: expected {event_type:?} at {path}, got {other:?}"),
    }
}

/// Awaits the next events of a persistent watch (at most [`WAIT`] each) and asserts them, in order.
pub async fn expect_events(what: &str, w: &mut PersistentWatch, expected: &[(EventType, &str)]) {
    for (i, (event_type, path)) in expected.iter().enumerate() {
        match within(what, w.next()).await {
            Ok(ev) if ev.event_type == *event_type && ev.path == *path => {}
            other => panic!(
                "{what}: event #{i}: expected {event_type:?} at {path}, got {other:?} \
                 (expected sequence: {expected:?})"
            ),
        }
    }
}

/// Asserts that a persistent watch delivers nothing more (after a `sync` and [`QUIET`]).
pub async fn expect_no_more_events(c: &Client, what: &str, w: &mut PersistentWatch) {
    expect_quiet(c, what, Box::pin(w.next())).await;
}

/// Asserts that a watch's session ended it: it resolves (within [`WAIT`]) to `SessionExpired` or
/// `Closed`, never to an event and never hangs.
pub async fn expect_watch_ended(what: &str, watch: impl Future<Output = Result<WatchedEvent>>) {
    match within(what, watch).await {
        Err(e) if e.is_session_gone() => {}
        other => panic!("{what}: expected Err(SessionExpired | Closed), got {other:?}"),
    }
}

/// What a one-shot watch holds right now, without waiting: `Some` if it has already fired.
pub async fn fired_now(w: &mut OneshotWatch) -> Option<Result<WatchedEvent>> {
    // Unconstrained: tokio's cooperative budget must not make a ready channel look pending.
    tokio::task::unconstrained(std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *w).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    }))
    .await
}

/// A persistent watch at `p` when the backend has them; otherwise asserts that asking for one is
/// refused with Unsupported and returns `None` (the calling check then has nothing more to do).
pub async fn persistent_watch(c: &Client, p: &str, mode: AddWatchMode) -> Option<PersistentWatch> {
    let r = c.watch(p, mode).await;
    if c.capabilities().persistent_watches {
        Some(ok(r, &format!("watch {p} ({mode:?})")))
    } else {
        assert_err(
            r,
            ErrorKind::Unsupported,
            "capabilities().persistent_watches is false, so watch() must answer Unsupported",
        );
        None
    }
}

/// Waits (at most [`WAIT`]) for `want` on a state stream, skipping the states in `skippable`;
/// any other state fails the check.
pub async fn await_state(
    states: &mut StateStream,
    want: SessionState,
    skippable: &[SessionState],
    what: &str,
) {
    within(what, async {
        loop {
            match states.next().await {
                Some(s) if s == want => return,
                Some(s) if skippable.contains(&s) => continue,
                other => panic!("{what}: expected {want:?}, got {other:?}"),
            }
        }
    })
    .await
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
