//! The audit trail's records: who changed what, from where, when, and how it
//! ended. The applier writes one per state-changing call in the same
//! transaction as the change itself, refusals included.

use crate::model::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Increasing in the order the calls were decided.
    pub id: i64,
    pub at: Millis,
    /// The principal: a user name, or `host NAME` for a worker.
    pub who: String,
    /// The caller's address as the transport saw it (`10.0.0.7:53122`).
    pub from: String,
    /// The call, as a word or two (`kill`, `grant`, `token create`).
    pub action: String,
    /// What it named (`job 42`, `user alice`, `host render01`).
    pub target: String,
    /// `ok` with what changed, `denied: …` or `failed: …`.
    pub outcome: String,
}

/// Which records [`AuditRecord`] readers want, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    pub who: Option<String>,
    /// Only records at or after this time.
    pub since: Option<Millis>,
    /// At most this many; 0 means the default of 1,000.
    pub limit: u32,
}

impl AuditQuery {
    pub const DEFAULT_LIMIT: u32 = 1_000;

    pub fn limit(&self) -> u32 {
        if self.limit == 0 {
            Self::DEFAULT_LIMIT
        } else {
            self.limit
        }
    }
}
