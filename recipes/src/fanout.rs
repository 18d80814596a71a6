//! A tiny event fan-out: every subscriber gets every event, in order, from when it subscribed.

use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Broadcasts events to any number of subscribers without loss (unbounded per subscriber).
#[derive(Debug)]
pub(crate) struct Fanout<T> {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<T>>>>,
}

impl<T> Clone for Fanout<T> {
    fn clone(&self) -> Self {
        Fanout {
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<T> Default for Fanout<T> {
    fn default() -> Self {
        Fanout {
            subscribers: Arc::default(),
        }
    }
}

impl<T: Clone> Fanout<T> {
    /// Sends `event` to every live subscriber.
    pub(crate) fn publish(&self, event: T) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|tx| tx.send(event.clone()).is_ok());
    }

    /// A new subscriber; `first` events are delivered to it before anything published later.
    pub(crate) fn subscribe(
        &self,
        first: impl IntoIterator<Item = T>,
    ) -> mpsc::UnboundedReceiver<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for e in first {
            let _ = tx.send(e);
        }
        subs.push(tx);
        rx
    }
}
