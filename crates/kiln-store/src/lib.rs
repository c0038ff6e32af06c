//! Kiln's durable store: the one crate that knows SQL.
//!
//! The server keeps the whole farm in memory and uses the store for two
//! things only: loading that image at start-up, and making each group of
//! changes durable before it acknowledges them. Attempt history, which can
//! grow without bound, stays on disk and is read on demand.
//!
//! [`Store`] is the narrow seam a backend implements; [`SqliteStore`] is the
//! first backend. Every backend must pass the contract suite in `tests/`.

mod codec;
mod error;
mod sqlite;

pub use error::{Error, Result};
pub use sqlite::SqliteStore;

use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::identity;
use kiln_core::event::{Event, EventFilter};
use kiln_core::model::{Attempt, AttemptId, Frame, FrameId, Host, Job, JobId, Layer, Millis};
use kiln_core::structure::{Change, Record};
use kiln_core::view::{FarmSample, HistoryQuery, HistoryRow};
use kiln_core::webhook::{Delivery, DeliveryQuery, Webhook};

/// What the server needs from durable storage.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Everything the server needs in memory at start-up, read from one
    /// consistent snapshot. Rows of each kind come ordered by id.
    async fn load(&self) -> Result<Image>;

    /// Upserts every record of the batch in ONE transaction, durably
    /// (committed and synced) before returning. All or nothing: on error
    /// nothing of the batch was written. A record given twice in one batch
    /// ends as the later copy. A record naming another (a layer its job; a
    /// frame its job, layer, attempt or host; an attempt its frame, job or
    /// host) that is neither stored nor in the batch fails the batch.
    /// Structure changes apply in their order, after the records.
    async fn commit(&self, batch: &Batch) -> Result<()>;

    /// Every attempt of a frame, oldest first; empty for an unknown frame.
    async fn attempts(&self, frame: FrameId) -> Result<Vec<Attempt>>;

    /// One attempt, or `Ok(None)` if there is no such attempt.
    async fn attempt(&self, id: AttemptId) -> Result<Option<Attempt>>;

    /// Audit records matching the query, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

    /// Ended attempts matching the query, in the order they ended (ties by
    /// id), at most `query.limit` of them, after `query.after`.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRow>>;

    /// Deletes at most `max_jobs` jobs archived before `before` (Unix ms),
    /// with their layers, frames and attempts, in short transactions.
    /// Ids stay unique: none of theirs is handed out again after a
    /// restart. Returns how many jobs were deleted.
    async fn purge(&self, before: i64, max_jobs: u32) -> Result<u32>;
    /// At most `limit` events numbered after `after` (and, if `since` is
    /// given, made at or after it) that match `filter`, in order.
    async fn events_after(
        &self,
        after: u64,
        since: Option<Millis>,
        limit: u32,
        filter: &EventFilter,
    ) -> Result<Vec<Event>>;

    /// Deletes events made before `before`, always keeping the newest (the
    /// numbering goes on from it after a restart). Returns how many went.
    async fn prune_events(&self, before: Millis) -> Result<u64>;

    /// Stores a new webhook (its `id` is ignored) and returns its id,
    /// durably. Ids are never reused.
    async fn create_webhook(&self, webhook: &Webhook) -> Result<i64>;

    /// Every webhook, by id, with its secret and cursor.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// Deletes a webhook and its delivery log; `false` if there was none.
    async fn delete_webhook(&self, id: i64) -> Result<bool>;

    /// Appends delivery tries (their `id`s are ignored) and moves webhooks'
    /// cursors forward (never back), in one transaction. Tries and cursors
    /// of webhooks that no longer exist are dropped.
    async fn record_deliveries(&self, tries: &[Delivery], cursors: &[(i64, u64)]) -> Result<()>;

    /// Tries of the webhooks in `visible` matching the query, newest first.
    async fn deliveries(&self, query: &DeliveryQuery, visible: &[i64]) -> Result<Vec<Delivery>>;

    /// Deletes delivery tries made before `before`; returns how many went.
    async fn prune_deliveries(&self, before: Millis) -> Result<u64>;

    /// Keeps one sample of the farm's gauges, durably (one taken at the
    /// same millisecond as a kept one replaces it).
    async fn save_farm_sample(&self, sample: &FarmSample) -> Result<()>;

    /// The samples taken at or after `since`, oldest first.
    async fn farm_samples(&self, since: Millis) -> Result<Vec<FarmSample>>;

    /// Deletes the samples taken before `before`; returns how many went.
    async fn prune_farm_samples(&self, before: Millis) -> Result<u64>;
}

/// Records to write together. Each record replaces the stored record with
/// the same id, or is added if there is none.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub jobs: Vec<Job>,
    pub layers: Vec<Layer>,
    pub frames: Vec<Frame>,
    pub attempts: Vec<Attempt>,
    pub hosts: Vec<Host>,
    /// Structure records to put (insert or replace by kind and key) or
    /// remove, in the order made.
    pub structure: Vec<Change>,
    /// Identity changes (users, grants, tokens, host credentials), applied
    /// in their order.
    pub identity: Vec<identity::Change>,
    /// Audit records to append; each id is new.
    pub audit: Vec<AuditRecord>,
    /// Jobs archived, and when: [`Store::load`] leaves them and their
    /// layers and frames out from then on; history still reads them.
    pub archived: Vec<(JobId, i64)>,
    /// Events the batch's changes made (the outbox); each number is new.
    pub events: Vec<Event>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records of every kind together.
    pub fn len(&self) -> usize {
        self.jobs.len()
            + self.layers.len()
            + self.frames.len()
            + self.attempts.len()
            + self.hosts.len()
            + self.structure.len()
            + self.identity.len()
            + self.audit.len()
            + self.archived.len()
            + self.events.len()
    }
}

/// The farm as stored: what [`Store::load`] returns.
#[derive(Debug, Default, Clone)]
pub struct Image {
    pub jobs: Vec<Job>,
    pub layers: Vec<Layer>,
    pub frames: Vec<Frame>,
    pub hosts: Vec<Host>,
    /// Attempts still running (no outcome yet); finished ones stay on disk.
    pub running_attempts: Vec<Attempt>,
    /// Every structure record, by kind then key.
    pub structure: Vec<Record>,
    /// Every identity record, as the change that puts it.
    pub identity: Vec<identity::Change>,
    pub max_ids: MaxIds,
}

/// The highest id stored of each kind, 0 when there is none, so the server
/// can resume handing out ids after a restart without reusing one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaxIds {
    pub job: i64,
    pub layer: i64,
    pub frame: i64,
    pub attempt: i64,
    pub host: i64,
    pub audit: i64,
    /// The last event's sequence number.
    pub event: u64,
}
