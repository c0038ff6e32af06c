//! Webhooks and their deliveries on the wire, field for field; kinds and
//! outcomes travel as their names.

use crate::pb;
use crate::{Error, Result};
use kiln_core::event::EventKind;
use kiln_core::webhook::{Delivery, DeliveryOutcome, Failing, NewWebhook, WebhookInfo};

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Kinds a caller named: an unknown one is the caller's mistake.
fn kinds(names: &[String]) -> Result<Vec<EventKind>> {
    EventKind::parse_list(&names.join(",")).map_err(|e| Error::Invalid(e.to_string()))
}

impl From<WebhookInfo> for pb::WebhookMsg {
    fn from(w: WebhookInfo) -> Self {
        pb::WebhookMsg {
            id: w.id,
            url: w.url,
            kinds: w.kinds.iter().map(|k| k.as_str().to_string()).collect(),
            show: w.show.unwrap_or_default(),
            owner: w.owner,
            created_at: w.created_at,
            delivered_seq: w.delivered_seq,
            behind: w.behind,
            failing: w.failing.map(|f| pb::WebhookFailing {
                since: f.since,
                tries: f.tries,
                error: f.error,
                next_try: f.next_try,
            }),
        }
    }
}

pub(crate) fn webhook_info(w: pb::WebhookMsg) -> Result<WebhookInfo> {
    Ok(WebhookInfo {
        id: w.id,
        url: w.url,
        kinds: kinds(&w.kinds).map_err(|e| Error::Malformed(e.to_string()))?,
        show: some(w.show),
        owner: w.owner,
        created_at: w.created_at,
        delivered_seq: w.delivered_seq,
        behind: w.behind,
        failing: w.failing.map(|f| Failing {
            since: f.since,
            tries: f.tries,
            error: f.error,
            next_try: f.next_try,
        }),
    })
}

pub(crate) fn new_webhook(r: pb::CreateWebhookRequest) -> Result<NewWebhook> {
    Ok(NewWebhook {
        url: r.url,
        kinds: kinds(&r.kinds)?,
        show: some(r.show),
        secret: some(r.secret),
    })
}

pub(crate) fn create_webhook_request(w: &NewWebhook) -> pb::CreateWebhookRequest {
    pb::CreateWebhookRequest {
        url: w.url.clone(),
        kinds: w.kinds.iter().map(|k| k.as_str().to_string()).collect(),
        show: w.show.clone().unwrap_or_default(),
        secret: w.secret.clone().unwrap_or_default(),
    }
}

impl From<Delivery> for pb::DeliveryMsg {
    fn from(d: Delivery) -> Self {
        pb::DeliveryMsg {
            id: d.id,
            webhook: d.webhook,
            seq: d.seq,
            kind: d.kind,
            at: d.at,
            attempt: d.attempt,
            outcome: d.outcome.as_str().to_string(),
            status: u32::from(d.status),
            error: d.error,
            millis: d.millis,
        }
    }
}

pub(crate) fn delivery(d: pb::DeliveryMsg) -> Result<Delivery> {
    Ok(Delivery {
        id: d.id,
        webhook: d.webhook,
        seq: d.seq,
        kind: d.kind,
        at: d.at,
        attempt: d.attempt,
        outcome: DeliveryOutcome::parse(&d.outcome)
            .ok_or_else(|| Error::Malformed(format!("unknown delivery outcome {:?}", d.outcome)))?,
        status: u16::try_from(d.status)
            .map_err(|_| Error::Malformed(format!("HTTP status {} out of range", d.status)))?,
        error: d.error,
        millis: d.millis,
    })
}
