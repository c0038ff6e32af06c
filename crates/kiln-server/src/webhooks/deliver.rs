//! One webhook's deliverer: reads the events outbox after the webhook's
//! cursor, POSTs each matching event in order, signed, and tries an event
//! again with backoff until its receiver takes it (2xx) or refuses it
//! (another 4xx). Each try and each cursor move goes to the log writer; a
//! restart resumes after the last cursor written, so an event may be sent
//! twice but never skipped (receivers dedupe on `Kiln-Event-Id`).

use super::http::{Client, Target};
use super::log::Note;
use super::sign;
use crate::auth::edge::Gate;
use crate::events::Hub;
use bytes::Bytes;
use kiln_core::auth::{authorize, Action, Principal, Target as AuthTarget};
use kiln_core::event::Event;
use kiln_core::webhook::{backoff_ms, Delivery, DeliveryOutcome, Failing, Webhook};
use kiln_store::Store;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events read from the outbox at once.
const PAGE: u32 = 200;

/// What listings show of a running deliverer.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The last event handled (sent, refused, or not matching).
    pub cursor: u64,
    pub failing: Option<Failing>,
}

pub(super) struct Deliverer<S> {
    pub(super) hook: Webhook,
    pub(super) target: Target,
    pub(super) store: Arc<S>,
    pub(super) hub: Arc<Hub>,
    pub(super) status: Arc<Mutex<Status>>,
    pub(super) notes: mpsc::UnboundedSender<Note>,
    pub(super) recorder: Arc<kiln_api::metrics::Recorder>,
    pub(super) gate: Gate,
}

/// How often a webhook whose owner may no longer manage it looks again.
const OWNER_RECHECK: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    crate::now_ms()
}

impl<S: Store> Deliverer<S> {
    pub(super) async fn run(self) {
        let mut client = Client::new(self.target.clone());
        let mut latest = self.hub.latest();
        let filter = self.hook.filter();
        let mut cursor = self.hook.delivered_seq;
        loop {
            // Sent on the owner's authority: an owner disabled, removed or
            // no longer a wrangler of the show holds delivery (nothing is
            // skipped) until the rights come back or the webhook goes.
            if let Err(why) = self.owner_may() {
                let now = now_ms();
                {
                    let mut s = self.status.lock().expect("not poisoned");
                    let since = s.failing.as_ref().map_or(now, |f| f.since);
                    s.failing = Some(Failing {
                        since,
                        tries: 0,
                        error: why,
                        next_try: now + OWNER_RECHECK.as_millis() as i64,
                    });
                }
                tokio::time::sleep(OWNER_RECHECK).await;
                continue;
            }
            // Everything numbered up to `last` is committed (the hub hears
            // of events only after their commit), so a short page below
            // means none after it matches up to `last`.
            let last = *latest.borrow_and_update();
            let page = match self.store.events_after(cursor, None, PAGE, &filter).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(webhook = self.hook.id, "reading events: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let full = page.len() == PAGE as usize;
            for e in &page {
                self.deliver(&mut client, e).await;
                cursor = e.seq;
                self.moved(cursor);
            }
            if full {
                continue;
            }
            if last > cursor {
                // Nothing up to `last` matched: skip past it for good, so
                // the next read does not scan those events again.
                cursor = last;
                self.moved(cursor);
            }
            if latest.changed().await.is_err() {
                return; // the server is stopping
            }
        }
    }

    /// Whether the webhook's owner may still manage webhooks of its show
    /// (or of the farm), as the registry has it now.
    fn owner_may(&self) -> Result<(), String> {
        let identity = self.gate.identity();
        let owner = &self.hook.owner;
        let held = |why: &str| {
            format!("held: its owner {owner} {why}; delete it, or give the owner back the rights")
        };
        match identity.user(owner) {
            None => return Err(held("no longer exists")),
            Some(u) if u.disabled => return Err(held("is disabled")),
            Some(_) => {}
        }
        let who = Principal::user(owner, identity.grants(owner).to_vec());
        let target = self
            .hook
            .show
            .as_deref()
            .map_or(AuthTarget::Farm, AuthTarget::Show);
        if authorize(&who, Action::Webhooks, target).is_allowed() {
            Ok(())
        } else {
            Err(held("may no longer manage these webhooks"))
        }
    }

    fn moved(&self, cursor: u64) {
        self.status.lock().expect("not poisoned").cursor = cursor;
        let _ = self.notes.send(Note::Cursor(self.hook.id, cursor));
    }

    /// Sends `e` until it is taken or refused.
    async fn deliver(&self, client: &mut Client, e: &Event) {
        let body = Bytes::from(serde_json::to_vec(e).expect("events encode"));
        let mut tries = 0u32;
        loop {
            tries += 1;
            let at = now_ms();
            let headers = [
                ("kiln-event", e.kind.as_str().to_string()),
                ("kiln-event-id", e.seq.to_string()),
                ("kiln-webhook-id", self.hook.id.to_string()),
                ("kiln-delivery-attempt", tries.to_string()),
                (
                    "kiln-signature",
                    sign::header(&self.hook.secret, at.div_euclid(1000), &body),
                ),
            ];
            let t = Instant::now();
            let answer = client.post(&headers, body.clone()).await;
            let millis = u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX);
            let (outcome, status, error) = match answer {
                Ok(s) => {
                    let o = DeliveryOutcome::of_status(s);
                    let why = match (o, s) {
                        (DeliveryOutcome::Delivered, _) => String::new(),
                        (_, 300..=399) => {
                            format!("HTTP {s}: redirects are not followed; give the final URL")
                        }
                        _ => format!("HTTP {s}"),
                    };
                    (o, s, why)
                }
                Err(why) => (DeliveryOutcome::Retrying, 0, why),
            };
            self.recorder.delivery(outcome.as_str());
            let _ = self.notes.send(Note::Try(Delivery {
                id: 0,
                webhook: self.hook.id,
                seq: e.seq,
                kind: e.kind.as_str().to_string(),
                at,
                attempt: tries,
                outcome,
                status,
                error: error.clone(),
                millis,
            }));
            if outcome != DeliveryOutcome::Retrying {
                if outcome == DeliveryOutcome::Rejected {
                    tracing::warn!(
                        webhook = self.hook.id,
                        seq = e.seq,
                        "the receiver refused an event ({error}); it is not sent again"
                    );
                }
                self.status.lock().expect("not poisoned").failing = None;
                return;
            }
            let wait = backoff_ms(tries);
            {
                let mut s = self.status.lock().expect("not poisoned");
                let since = s.failing.as_ref().map_or(at, |f| f.since);
                s.failing = Some(Failing {
                    since,
                    tries,
                    error,
                    next_try: at + wait,
                });
            }
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
}
