//! # menagerie-recipes
//!
//! Coordination recipes written only against [`menagerie_core::Client`], so they run unchanged on
//! every backend. Every hold (lock, read/write lock, semaphore lease) is a [`HoldGuard`]: a fencing
//! token, a `lost()` future, fenced writes, and a release that never fails silently.
//!
//! - [`Mutex`]: exclusive, FIFO-fair, Curator's layout.
//! - [`RwLock`]: shared readers / exclusive writer, with write → read downgrade.
//! - [`Semaphore`]: N leases.
//! - [`LeaderLatch`] / [`LeaderSelector`]: leader election; each term is a [`HoldView`] with a token.
//! - [`Queue`]: FIFO queue, at-most-once `take` and at-least-once `take_with_ack` (visibility
//!   timeout, dead letters).
//! - [`Barrier`], [`DoubleBarrier`].
//! - [`TreeCache`], [`NodeCache`]: caches without watch gaps.
//! - [`ServiceRegistry`], [`ServiceDiscovery`], [`ServiceCache`], [`ServiceProvider`]: Curator-compatible
//!   discovery with re-registration after expiry.
//! - [`LeastConnections`]: least-connections balancing on counts shared by every client.
//! - [`ConfigWatch`]: a typed (JSON / TOML / raw) value kept current, compare-and-set updates.
//!
//! Sessions: a wait that is under way when its session expires ends with `SessionExpired`. A call
//! that *starts* while the client is between sessions (the old one expired, the backend's new one
//! not yet up) waits for the new session, within the call's timeout, so retrying after
//! `SessionExpired` is safe and never spins.
#![warn(missing_docs)]

mod balancer;
mod barrier;
mod cache;
mod config;
mod contend;
mod discovery;
mod election;
mod fanout;
mod guard;
mod liveness;
mod mutex;
mod queue;
mod rwlock;
mod semaphore;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use balancer::{BalancerOptions, ConnectionGuard, LeastConnections};
pub use barrier::{Barrier, DoubleBarrier};
pub use cache::{CacheEvent, CacheEvents, CachedNode, NodeCache, TreeCache};
pub use config::{Codec, ConfigChanges, ConfigValue, ConfigWatch, Json, Raw, Toml};
pub use discovery::{
    ServiceCache, ServiceDiscovery, ServiceInstance, ServiceProvider, ServiceRegistry, Strategy,
};
pub use election::{
    Latch, LeaderEvent, LeaderEvents, LeaderLatch, LeaderSelector, SelectorHandle, LATCH_LABEL,
};
pub use guard::{HoldGuard, HoldView};
pub use liveness::{LostReason, SuspendPolicy};
pub use mutex::{Mutex, LOCK_LABEL};
pub use queue::{Delivery, Item, Queue, ITEM_PREFIX};
pub use rwlock::{RwLock, READ_LABEL, WRITE_LABEL};
pub use semaphore::Semaphore;
