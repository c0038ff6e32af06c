//! Webhooks: the farm's events POSTed to pipelines' URLs, signed, at least
//! once. The registry here starts a deliverer per stored webhook when the
//! server starts, and one per webhook made while it runs; it stops a
//! deliverer when its webhook is deleted. Whom each call is for is decided
//! by the API (`api.rs`); this module only does what it is told.

mod calls;
mod deliver;
pub mod http;
mod log;
pub mod sign;

use crate::auth::edge::Gate;
use crate::events::Hub;
use deliver::{Deliverer, Status};
use kiln_core::webhook::{Failing, Webhook, WebhookInfo};
use kiln_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Every webhook and its deliverer.
pub struct Webhooks<S> {
    store: Arc<S>,
    hub: Arc<Hub>,
    running: Mutex<BTreeMap<i64, Running>>,
    notes: mpsc::UnboundedSender<log::Note>,
    recorder: Arc<kiln_api::metrics::Recorder>,
    /// The registry as last committed: a deliverer checks its owner may
    /// still manage it before each page.
    gate: Gate,
}

struct Running {
    hook: Webhook,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Store> Webhooks<S> {
    /// Starts delivering for every stored webhook, from its cursor on.
    pub async fn start(
        store: Arc<S>,
        hub: Arc<Hub>,
        recorder: Arc<kiln_api::metrics::Recorder>,
        gate: Gate,
    ) -> kiln_store::Result<Arc<Webhooks<S>>> {
        let (notes, rx) = mpsc::unbounded_channel();
        tokio::spawn(log::run(store.clone(), rx));
        let me = Arc::new(Webhooks {
            store: store.clone(),
            hub,
            running: Mutex::new(BTreeMap::new()),
            notes,
            recorder,
            gate,
        });
        for hook in store.webhooks().await? {
            match http::Target::parse(&hook.url) {
                Ok(target) => me.spawn(hook, target),
                Err(e) => {
                    // Kept listed (and deletable), failing for good, rather
                    // than vanishing from the API while stored.
                    tracing::warn!(webhook = hook.id, "not delivering: {e}");
                    let status = Status {
                        cursor: hook.delivered_seq,
                        failing: Some(Failing {
                            since: crate::now_ms(),
                            tries: 0,
                            error: format!("not delivering: {e}; delete it and make it again"),
                            next_try: 0,
                        }),
                    };
                    let r = Running {
                        hook,
                        status: Arc::new(Mutex::new(status)),
                        task: tokio::spawn(async {}),
                    };
                    me.running
                        .lock()
                        .expect("not poisoned")
                        .insert(r.hook.id, r);
                }
            }
        }
        Ok(me)
    }

    fn spawn(&self, hook: Webhook, target: http::Target) {
        let status = Arc::new(Mutex::new(Status {
            cursor: hook.delivered_seq,
            failing: None,
        }));
        let d = Deliverer {
            hook: hook.clone(),
            target,
            store: self.store.clone(),
            hub: self.hub.clone(),
            status: status.clone(),
            notes: self.notes.clone(),
            recorder: self.recorder.clone(),
            gate: self.gate.clone(),
        };
        let task = tokio::spawn(d.run());
        let id = hook.id;
        let r = Running { hook, status, task };
        self.running.lock().expect("not poisoned").insert(id, r);
    }

    /// Stores a webhook that starts after the last event committed, and
    /// starts delivering. Its `id`, `delivered_seq` are filled in here.
    pub async fn create(
        &self,
        mut hook: Webhook,
        target: http::Target,
    ) -> kiln_store::Result<WebhookInfo> {
        hook.delivered_seq = *self.hub.latest().borrow();
        hook.id = self.store.create_webhook(&hook).await?;
        let status = Status {
            cursor: hook.delivered_seq,
            failing: None,
        };
        let info = self.describe_parts(&hook, status);
        self.spawn(hook, target);
        Ok(info)
    }

    /// Stops and deletes a webhook; `Ok(None)` if there is none.
    pub async fn delete(&self, id: i64) -> kiln_store::Result<Option<WebhookInfo>> {
        let Some(info) = self.info(&id) else {
            return Ok(None);
        };
        self.store.delete_webhook(id).await?;
        self.running.lock().expect("not poisoned").remove(&id);
        Ok(Some(info))
    }

    fn info(&self, id: &i64) -> Option<WebhookInfo> {
        let running = self.running.lock().expect("not poisoned");
        running.get(id).map(|r| self.describe(r))
    }

    fn describe(&self, r: &Running) -> WebhookInfo {
        let s = r.status.lock().expect("not poisoned").clone();
        self.describe_parts(&r.hook, s)
    }

    fn describe_parts(&self, hook: &Webhook, s: Status) -> WebhookInfo {
        let last = *self.hub.latest().borrow();
        WebhookInfo {
            id: hook.id,
            url: hook.url.clone(),
            kinds: hook.kinds.clone(),
            show: hook.show.clone(),
            owner: hook.owner.clone(),
            created_at: hook.created_at,
            delivered_seq: s.cursor,
            behind: last.saturating_sub(s.cursor),
            failing: s.failing,
        }
    }

    /// Every webhook's progress, for `/metrics`.
    pub fn gauges(&self) -> Vec<kiln_core::view::WebhookGauge> {
        self.list()
            .into_iter()
            .map(|w| kiln_core::view::WebhookGauge {
                id: w.id,
                show: w.show.unwrap_or_default(),
                behind: w.behind,
                failing: w.failing.is_some(),
            })
            .collect()
    }

    /// Every webhook, by id.
    pub fn list(&self) -> Vec<WebhookInfo> {
        let running = self.running.lock().expect("not poisoned");
        running.values().map(|r| self.describe(r)).collect()
    }
}
