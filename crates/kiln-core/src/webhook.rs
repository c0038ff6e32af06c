//! Webhooks: the farm's events POSTed to a URL that a pipeline runs, signed
//! so the receiver can trust them, delivered at least once from the events
//! outbox. This module holds what a webhook is and what each try of a
//! delivery recorded; the server's deliverer does the sending.

use crate::event::EventKind;
use crate::model::Millis;
use serde::{Deserialize, Serialize};

/// A webhook as stored: where, what, and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    pub show: Option<String>,
    pub owner: String,
    pub created_at: Millis,
    /// The last event handled; delivery resumes after it, restarts included.
    pub delivered_seq: u64,
}

impl Webhook {
    /// The events it takes, as a filter over the outbox.
    pub fn filter(&self) -> crate::event::EventFilter {
        crate::event::EventFilter {
            job: None,
            show: self.show.clone(),
            kinds: self.kinds.clone(),
        }
    }
}

/// A webhook as its owner and the wranglers see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    pub id: i64,
    /// Where each event is POSTed.
    pub url: String,
    /// The kinds delivered; empty means every kind.
    pub kinds: Vec<EventKind>,
    /// Only this show's events; none means the whole farm's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<String>,
    /// Who made it.
    pub owner: String,
    pub created_at: Millis,
    /// The last event handled (delivered, refused by the receiver, or not
    /// matching); the next delivery is of a later one.
    pub delivered_seq: u64,
    /// Events after `delivered_seq` the farm has made so far, matching or
    /// not: how far behind the webhook is, at most.
    pub behind: u64,
    /// Set while deliveries fail: since when, and the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

/// A webhook whose receiver has not taken its next event yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failing {
    pub since: Millis,
    /// Tries of the event at the head of the queue so far.
    pub tries: u32,
    /// What the last try got: an HTTP status or a connection error.
    pub error: String,
    /// When the next try is due.
    pub next_try: Millis,
}

/// A new webhook, as a caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewWebhook {
    pub url: String,
    pub kinds: Vec<EventKind>,
    pub show: Option<String>,
    /// The signing secret; none lets the server make one.
    pub secret: Option<String>,
}

/// A webhook just made: the one time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    pub webhook: WebhookInfo,
    /// The HMAC-SHA256 key the receiver checks `Kiln-Signature` with.
    pub secret: String,
}

/// How a try of a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    #[default]
    Delivered,
    /// No answer, or one worth trying again (5xx, 408, 429): it will be.
    Retrying,
    /// The receiver answered another 4xx: the event was not resent.
    Rejected,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retrying => "retrying",
            DeliveryOutcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryOutcome> {
        [
            DeliveryOutcome::Delivered,
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Rejected,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// What an HTTP status means for the event it answered.
    pub fn of_status(status: u16) -> DeliveryOutcome {
        match status {
            200..=299 => DeliveryOutcome::Delivered,
            408 | 429 => DeliveryOutcome::Retrying,
            400..=499 => DeliveryOutcome::Rejected,
            _ => DeliveryOutcome::Retrying,
        }
    }
}

/// One try of delivering one event to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct Delivery {
    /// Increasing in the order the tries were recorded; 0 before that.
    pub id: i64,
    pub webhook: i64,
    /// The event's sequence number (`Kiln-Event-Id`).
    pub seq: u64,
    pub kind: String,
    /// When the try started.
    pub at: Millis,
    /// The try's number for this event, from 1.
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
    /// The receiver's HTTP status; 0 when it gave none.
    pub status: u16,
    /// Why it did not succeed, when it did not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// How long the request took.
    pub millis: u32,
}

/// Which deliveries a caller asks for, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryQuery {
    /// One webhook's; none: every webhook the caller may see.
    pub webhook: Option<i64>,
    /// Only tries that did not deliver.
    pub failed: bool,
    /// At most this many; 0 means [`DeliveryQuery::DEFAULT_LIMIT`].
    pub limit: u32,
}

impl DeliveryQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 10_000;

    pub fn limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// How long to wait before the next try after `tries` failed ones: doubling
/// from 1 s to at most 5 minutes, so a receiver that is down for a day is
/// tried about 300 times, not 86,400.
pub fn backoff_ms(tries: u32) -> Millis {
    let step = tries.saturating_sub(1).min(20);
    (1_000i64 << step).min(300_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(DeliveryOutcome::of_status(200), DeliveryOutcome::Delivered);
        assert_eq!(DeliveryOutcome::of_status(204), DeliveryOutcome::Delivered);
        assert_eq!(DeliveryOutcome::of_status(500), DeliveryOutcome::Retrying);
        assert_eq!(DeliveryOutcome::of_status(503), DeliveryOutcome::Retrying);
        assert_eq!(DeliveryOutcome::of_status(429), DeliveryOutcome::Retrying);
        assert_eq!(DeliveryOutcome::of_status(408), DeliveryOutcome::Retrying);
        assert_eq!(DeliveryOutcome::of_status(400), DeliveryOutcome::Rejected);
        assert_eq!(DeliveryOutcome::of_status(410), DeliveryOutcome::Rejected);
        assert_eq!(DeliveryOutcome::of_status(301), DeliveryOutcome::Retrying);
        for o in [
            DeliveryOutcome::Delivered,
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Rejected,
        ] {
            assert_eq!(DeliveryOutcome::parse(o.as_str()), Some(o));
        }
    }

    #[test]
    fn backoff_doubles_then_stays_at_five_minutes() {
        let waits: Vec<Millis> = (1..=12).map(backoff_ms).collect();
        assert_eq!(&waits[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert_eq!(waits[8], 256_000);
        assert_eq!(waits[9], 300_000);
        assert_eq!(backoff_ms(u32::MAX), 300_000);
    }
}
