//! A connection's order: what holds a read back behind the connection's own
//! writes, and the read slots that bound the reads awaiting collection.

use crate::admission::Admission;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use tokio::sync::Notify;

/// What keeps one connection's commands in order (see the module docs).
pub(super) struct Order {
    /// Writes dispatched whose answer has not arrived yet.
    pub(super) writes: AtomicUsize,
    /// Requests queued for the writer to dispatch.
    pub(super) deferred: AtomicUsize,
    /// Reads dispatched whose answer the collector has not encoded yet.
    pub(super) reads: AtomicUsize,
    /// Signalled when `reads` drops below [`Order::read_slots`].
    read_freed: Notify,
    /// The read window (`--client-reads-in-flight`), and where a reader's
    /// waits (for a slot, for room in the reply queue) are counted, for INFO.
    pub(super) admission: Arc<Admission>,
}

impl Order {
    pub(super) fn new(admission: Arc<Admission>) -> Self {
        Order {
            writes: AtomicUsize::new(0),
            deferred: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            read_freed: Notify::new(),
            admission,
        }
    }

    /// The most `reads` may be; never 0, or a reader would wait forever.
    fn read_slots(&self) -> usize {
        self.admission.reads_in_flight.max(1)
    }

    pub(super) fn must_defer(&self, is_write: bool) -> bool {
        self.deferred.load(SeqCst) > 0 || (!is_write && self.writes.load(SeqCst) > 0)
    }
}

/// Some of a connection's read slots ([`Order::read_slots`]), freed on drop.
///
/// A counter rather than a `tokio::sync::Semaphore`: only the reader takes
/// slots, so it needs no compare-and-swap loop, and freeing one takes no lock
/// (the semaphore's release locks its waiter list: 4% of a pipelined `GET`).
pub(super) struct ReadSlot {
    order: Arc<Order>,
    held: usize,
}

impl ReadSlot {
    /// Waits for a free slot. Only the reader takes slots, so no one can take
    /// one between the check and the increment.
    pub(super) async fn take(order: &Arc<Order>) -> ReadSlot {
        let mut counted = false;
        loop {
            if let Some(slot) = ReadSlot::try_take(order) {
                return slot;
            }
            if !counted {
                order.admission.read_slot_wait();
                counted = true;
            }
            // `notify_one` keeps its permit if it runs between the check and
            // here, so a slot freed meanwhile is not missed.
            order.read_freed.notified().await;
        }
    }

    /// A free slot, if there is one now.
    pub(super) fn try_take(order: &Arc<Order>) -> Option<ReadSlot> {
        let mut slot = ReadSlot {
            order: order.clone(),
            held: 0,
        };
        slot.try_add().then_some(slot)
    }

    /// One more slot, if one is free now.
    pub(super) fn try_add(&mut self) -> bool {
        if self.order.reads.load(SeqCst) >= self.order.read_slots() {
            return false;
        }
        self.order.reads.fetch_add(1, SeqCst);
        self.held += 1;
        true
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        // At most `read_slots()` are ever taken: all were, so the reader may wait.
        if self.held > 0 && self.order.reads.fetch_sub(self.held, SeqCst) == self.order.read_slots()
        {
            self.order.read_freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::DEFAULT_READS_IN_FLIGHT;
    use crate::client::PATIENCE;
    use futures::FutureExt;

    /// At most the connection's read slots' worth of reads wait uncollected; a
    /// freed slot wakes the reader waiting for one, and INFO counts the wait once.
    #[tokio::test]
    async fn a_reader_waits_for_a_read_slot_and_a_freed_one_wakes_it() {
        let admission = Arc::new(Admission::default());
        let order = Arc::new(Order::new(admission.clone()));
        let mut slots: Vec<ReadSlot> = (0..DEFAULT_READS_IN_FLIGHT)
            .map(|_| {
                ReadSlot::take(&order)
                    .now_or_never()
                    .expect("a free slot is taken at once")
            })
            .collect();
        let mut next = Box::pin(ReadSlot::take(&order));
        assert!(
            futures::poll!(&mut next).is_pending(),
            "every slot is taken"
        );
        assert_eq!(order.reads.load(SeqCst), DEFAULT_READS_IN_FLIGHT);
        assert!(futures::poll!(&mut next).is_pending());
        assert!(admission.info(2).contains("client_read_slot_waits:1\r\n"));
        slots.pop();
        let _slot = tokio::time::timeout(PATIENCE, next)
            .await
            .expect("the freed slot wakes the waiting reader");
        assert_eq!(order.reads.load(SeqCst), DEFAULT_READS_IN_FLIGHT);
        slots.clear();
        assert_eq!(order.reads.load(SeqCst), 1);
    }
}
