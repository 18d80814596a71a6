//! # menagerie-recipes
//!
//! Coordination recipes written only against [`menagerie_core::Client`], so they run unchanged on
//! every backend. Every hold (lock, read/write lock, semaphore lease) is a [`HoldGuard`]: a fencing
//! token, a `lost()` future, fenced writes, and a release that never fails silently.
//!
//! - [`Mutex`]: exclusive, FIFO-fair, Curator's layout.
//! - [`RwLock`]: shared readers / exclusive writer, with write → read downgrade.
//! - [`Semaphore`]: N leases.
#![warn(missing_docs)]

mod contend;
mod guard;
mod liveness;
mod mutex;
mod rwlock;
mod semaphore;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use guard::HoldGuard;
pub use liveness::{LostReason, SuspendPolicy};
pub use mutex::{Mutex, LOCK_LABEL};
pub use rwlock::{RwLock, READ_LABEL, WRITE_LABEL};
pub use semaphore::Semaphore;
