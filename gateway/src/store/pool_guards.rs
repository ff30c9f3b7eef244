//! Guards that end a transfer's bookkeeping on its store's link however the
//! transfer ends (done, failed, or dropped mid-way).

use tokio::time::Instant;

use cairn_metadata::StoreId;

use super::Stores;

/// Ends a transfer on its store's link when it ends, however (a dropped
/// one moved nothing).
pub(super) struct Running<'a> {
    pub(super) stores: &'a Stores,
    pub(super) id: StoreId,
    pub(super) ticket: Option<super::super::link::Ticket>,
    pub(super) moved: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let (Some(ticket), Some(e)) = (self.ticket.take(), self.stores.lock().get_mut(&self.id))
        {
            e.link.finish(ticket, self.moved, Instant::now());
        }
    }
}

/// Takes a put's bytes off its store's queue when the put ends, however.
pub(super) struct Dequeue<'a>(pub(super) &'a Stores, pub(super) StoreId, pub(super) u64);

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.0.lock().get_mut(&self.1) {
            e.link.dequeue(self.2);
        }
    }
}
