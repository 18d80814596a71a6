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
#![warn(missing_docs)]

mod barrier;
mod contend;
mod election;
mod guard;
mod liveness;
mod mutex;
mod queue;
mod rwlock;
mod semaphore;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use barrier::{Barrier, DoubleBarrier};
pub use election::{
    Latch, LeaderEvent, LeaderEvents, LeaderLatch, LeaderSelector, SelectorHandle, LATCH_LABEL,
};
pub use guard::{HoldGuard, HoldView};
pub use liveness::{LostReason, SuspendPolicy};
pub use mutex::{Mutex, LOCK_LABEL};
pub use queue::{Delivery, Item, Queue, ITEM_PREFIX};
pub use rwlock::{RwLock, READ_LABEL, WRITE_LABEL};
pub use semaphore::Semaphore;
