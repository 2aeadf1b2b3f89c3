//! Handing items from one thread to another in batches over a bounded channel: one channel
//! operation per batch rather than per item, and memory bounded by the batches on their way.
//! Used where a second core reads while the first stores or compares (ingest, `verify`).

use std::sync::mpsc::{self, Receiver, SyncSender};

/// Items per batch.
const BATCH: usize = 1024;
/// Batches on their way at most.
const IN_FLIGHT: usize = 4;

/// The receiving side stopped listening (it met an error, or needs no more).
#[derive(Debug)]
pub(crate) struct Stopped;

/// The sending side: items are gathered and handed over a batch at a time.
pub(crate) struct Sender<T> {
    batch: Vec<T>,
    tx: SyncSender<Vec<T>>,
}

/// A sender and the receiver of its batches (an iterator that ends when the sender is gone).
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<Vec<T>>) {
    let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
    (
        Sender {
            batch: Vec::with_capacity(BATCH),
            tx,
        },
        rx,
    )
}

impl<T> Sender<T> {
    /// Adds an item, handing the batch over when it is full.
    pub(crate) fn push(&mut self, item: T) -> Result<(), Stopped> {
        self.batch.push(item);
        if self.batch.len() < BATCH {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(full).map_err(|_| Stopped)
    }

    /// Hands over what is left.
    pub(crate) fn finish(self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.tx.send(self.batch).map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_arrives_in_order_whatever_the_batch_boundaries() {
        let (mut tx, rx) = channel();
        let sent = BATCH * 3 + 7;
        let received = std::thread::scope(|scope| {
            scope.spawn(move || {
                for i in 0..sent {
                    tx.push(i).unwrap();
                }
                tx.finish().unwrap();
            });
            rx.into_iter().flatten().collect::<Vec<_>>()
        });
        assert_eq!(received, (0..sent).collect::<Vec<_>>());
    }

    #[test]
    fn a_receiver_gone_stops_the_sender() {
        let (mut tx, rx) = channel();
        drop(rx);
        let stopped = (0..BATCH).map(|i| tx.push(i)).any(|r| r.is_err());
        assert!(stopped);
    }
}
