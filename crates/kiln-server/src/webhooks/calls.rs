//! The webhook calls of the client API: who may make, see and delete which
//! webhooks (a show's wranglers its show's, farm-wide wranglers all), the
//! checks on what is asked, and the audit record of each change.

use crate::api::Api;
use crate::applier::{AuditDraft, Caller, Request};
use kiln_api::{Error, Result};
use kiln_core::auth::{authorize, Action, Principal, Target};
use kiln_core::webhook::{
    Delivery, DeliveryQuery, NewWebhook, Webhook, WebhookCreated, WebhookInfo,
};
use kiln_store::Store;

fn target(show: Option<&str>) -> Target<'_> {
    show.map_or(Target::Farm, Target::Show)
}

fn may(who: &Principal, show: Option<&str>) -> bool {
    authorize(who, Action::Webhooks, target(show)).is_allowed()
}

fn store_failed(e: kiln_store::Error) -> Error {
    Error::Internal(format!("webhooks: {e}"))
}

fn check_secret(s: &str) -> Result<()> {
    let ok = (16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "secret: give 16-256 printable ASCII characters without spaces, or leave it out \
             and the server makes one"
                .into(),
        ))
    }
}

fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Internal(format!("no random source: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl<S: Store> Api<S> {
    fn audit_webhook(&self, c: &Caller, action: &str, target: String, outcome: String) {
        let _ = self.tx.send(Request::Audit(AuditDraft {
            who: c.who.name().to_string(),
            from: c.from.clone(),
            action: action.into(),
            target,
            outcome,
        }));
    }

    pub(crate) fn list_webhooks(&self, c: &Caller) -> Vec<WebhookInfo> {
        let mut all = self.webhooks.list();
        all.retain(|w| may(&c.who, w.show.as_deref()));
        all
    }

    pub(crate) async fn make_webhook(&self, c: &Caller, w: NewWebhook) -> Result<WebhookCreated> {
        let audited = |outcome: String| {
            self.audit_webhook(c, "webhook create", format!("webhook {}", w.url), outcome)
        };
        if let Err(refusal) = authorize(&c.who, Action::Webhooks, target(w.show.as_deref()))
            .into_result()
            .map_err(Error::Forbidden)
        {
            audited(format!("denied: {refusal}"));
            return Err(refusal);
        }
        let target = super::http::Target::parse(&w.url).map_err(Error::Invalid)?;
        if let Some(show) = &w.show {
            let known = self.committed.structure(&c.who)?;
            if !known.shows.iter().any(|s| &s.name == show) {
                return Err(Error::Invalid(format!(
                    "show: there is no show {show:?}; `kiln show list` lists them"
                )));
            }
        }
        let secret = match w.secret {
            Some(s) => {
                check_secret(&s)?;
                s
            }
            None => new_secret()?,
        };
        let hook = Webhook {
            id: 0,
            url: w.url.clone(),
            secret: secret.clone(),
            kinds: w.kinds,
            show: w.show,
            owner: c.who.name().to_string(),
            created_at: crate::now_ms(),
            delivered_seq: 0,
        };
        let webhook = self
            .webhooks
            .create(hook, target)
            .await
            .map_err(store_failed)?;
        audited(format!("ok: webhook {} made", webhook.id));
        Ok(WebhookCreated { webhook, secret })
    }

    pub(crate) async fn drop_webhook(&self, c: &Caller, id: i64) -> Result<WebhookInfo> {
        let missing = || {
            Error::NotFound(format!(
                "no webhook {id}: `kiln webhook list` lists the webhooks you may see"
            ))
        };
        let Some(w) = self.webhooks.list().into_iter().find(|w| w.id == id) else {
            return Err(missing());
        };
        if let Err(refusal) = authorize(&c.who, Action::Webhooks, target(w.show.as_deref()))
            .into_result()
            .map_err(Error::Forbidden)
        {
            let t = format!("webhook {id}");
            self.audit_webhook(c, "webhook delete", t, format!("denied: {refusal}"));
            return Err(refusal);
        }
        let gone = self
            .webhooks
            .delete(id)
            .await
            .map_err(store_failed)?
            .ok_or_else(missing)?;
        let t = format!("webhook {id}");
        self.audit_webhook(c, "webhook delete", t, format!("ok: {} deleted", gone.url));
        Ok(gone)
    }

    pub(crate) async fn webhook_deliveries(
        &self,
        c: &Caller,
        q: DeliveryQuery,
    ) -> Result<Vec<Delivery>> {
        let all = self.webhooks.list();
        if let Some(id) = q.webhook {
            match all.iter().find(|w| w.id == id) {
                None => {
                    return Err(Error::NotFound(format!(
                        "no webhook {id}: `kiln webhook list` lists the webhooks you may see"
                    )))
                }
                Some(w) => authorize(&c.who, Action::Webhooks, target(w.show.as_deref()))
                    .into_result()
                    .map_err(Error::Forbidden)?,
            }
        }
        let visible: Vec<i64> = all
            .iter()
            .filter(|w| may(&c.who, w.show.as_deref()))
            .map(|w| w.id)
            .collect();
        self.store
            .deliveries(&q, &visible)
            .await
            .map_err(store_failed)
    }
}
