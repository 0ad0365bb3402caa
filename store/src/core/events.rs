//! The event bus: one broadcast of committed events, with a bounded buffer per subscriber.
//!
//! Backends publish through their mount's [`crate::logical::events::EventPublisher`] after a
//! write committed; the bus keeps the last [`EVENT_BUFFER`] events in one ring (tokio's
//! `broadcast`), which every subscriber reads at its own pace. A subscriber more than
//! [`EVENT_BUFFER`] events behind gets `Lagged` and is closed by its connection (WebSocket
//! 1013): memory is the ring, whatever the number or the speed of subscribers. Nothing is
//! kept when nobody subscribes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::logical::events::{Event, EventSink};

/// Events a subscriber may fall behind by before it is closed.
pub const EVENT_BUFFER: usize = 1024;

/// The bus (one per core, across seal and unseal).
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    published: AtomicU64,
    lagged: AtomicU64,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.subscribers())
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus whose subscribers may fall `buffer` events behind.
    pub fn new(buffer: usize) -> Arc<Self> {
        Arc::new(EventBus {
            tx: broadcast::Sender::new(buffer.max(1)),
            published: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
        })
    }

    /// A receiver of every event published from now on, in publish (commit) order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Live subscriptions.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events published since start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Subscribers closed because they fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// Count a subscriber closed for falling behind.
    pub fn note_lagged(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
    }
}

impl EventSink for EventBus {
    fn publish(&self, event: Event) {
        self.published.fetch_add(1, Ordering::Relaxed);
        // No subscriber: nothing to keep.
        let _ = self.tx.send(Arc::new(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logical::events::{EventPublisher, PluginInfo};

    fn publisher(bus: &Arc<EventBus>) -> EventPublisher {
        EventPublisher::new(
            bus.clone(),
            PluginInfo {
                mount_path: "secret/".into(),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn events_arrive_in_publish_order_and_a_laggard_is_told() {
        let bus = EventBus::new(4);
        let p = publisher(&bus);
        p.publish("kv-v2/data-write", "data/none", None, &[]);
        let mut rx = bus.subscribe();
        assert_eq!(bus.subscribers(), 1);
        for i in 0..3 {
            p.publish("kv-v2/data-write", &format!("data/{i}"), None, &[]);
        }
        for i in 0..3 {
            assert_eq!(rx.recv().await.unwrap().path, format!("secret/data/{i}"));
        }
        for i in 0..10 {
            p.publish("kv-v2/data-write", &format!("data/{i}"), None, &[]);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        ));
        assert_eq!(bus.published(), 14);
        drop(rx);
        assert_eq!(bus.subscribers(), 0);
    }
}
