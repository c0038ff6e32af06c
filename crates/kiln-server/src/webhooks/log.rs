//! The delivery log's writer: every deliverer's tries and cursor moves,
//! written together a few times a second, so a busy farm's deliveries cost
//! the store a handful of small transactions, not one per event. A crash
//! loses at most the last fraction of a second of notes, which means those
//! events are delivered again: at least once, never skipped.

use kiln_core::webhook::Delivery;
use kiln_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often notes are written.
const EVERY: Duration = Duration::from_millis(250);
/// Tries kept while the store refuses writes; older ones are dropped
/// (their cursors are kept: the log is for people, the cursor for safety).
const KEEP: usize = 100_000;

pub enum Note {
    Try(Delivery),
    /// The webhook's cursor moved to this event.
    Cursor(i64, u64),
}

pub(super) async fn run<S: Store>(store: Arc<S>, mut rx: mpsc::UnboundedReceiver<Note>) {
    let mut tries = Vec::new();
    let mut cursors = BTreeMap::new();
    loop {
        if tries.is_empty() && cursors.is_empty() {
            match rx.recv().await {
                Some(n) => take(n, &mut tries, &mut cursors),
                None => return,
            }
        }
        tokio::time::sleep(EVERY).await;
        let closed = loop {
            match rx.try_recv() {
                Ok(n) => take(n, &mut tries, &mut cursors),
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        let moved: Vec<(i64, u64)> = cursors.iter().map(|(k, v)| (*k, *v)).collect();
        match store.record_deliveries(&tries, &moved).await {
            Ok(()) => {
                tries.clear();
                cursors.clear();
            }
            Err(e) => {
                tracing::warn!("webhooks: writing the delivery log: {e}");
                if tries.len() > KEEP {
                    tries.drain(..tries.len() - KEEP);
                }
            }
        }
        if closed {
            return;
        }
    }
}

fn take(n: Note, tries: &mut Vec<Delivery>, cursors: &mut BTreeMap<i64, u64>) {
    match n {
        Note::Try(d) => tries.push(d),
        Note::Cursor(id, seq) => {
            let c = cursors.entry(id).or_insert(seq);
            *c = (*c).max(seq);
        }
    }
}
