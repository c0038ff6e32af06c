//! Webhooks over REST: list, make (the answer holds the signing secret,
//! once), delete, and read the delivery log, as `kiln webhook …` does.

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json, number, Params};
use crate::routes::{Answer, Api, Who};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::event::EventKind;
use kiln_core::webhook::{Delivery, DeliveryQuery, NewWebhook, WebhookCreated, WebhookInfo};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/webhooks", get(webhooks::<F>).post(create::<F>))
        .route("/api/v1/webhooks/{id}", delete(remove::<F>))
        .route("/api/v1/webhooks/deliveries", get(deliveries::<F>))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries_of::<F>))
}

fn webhook_id(id: &str) -> Result<i64, Error> {
    id.parse().map_err(|_| {
        Error::BadRequest(format!(
            "id: {id:?} is not a webhook id; give the id `kiln webhook list` shows"
        ))
    })
}

/// Webhooks, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookInfo>,
}

/// The webhooks of the shows the caller wrangles (every one for a
/// farm-wide wrangler), as `kiln webhook list`.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses(
        (status = 200, body = WebhookList),
        Refusals,
))]
pub(crate) async fn webhooks<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<WebhookList> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(WebhookList {
        webhooks: f.webhooks(w).await?,
    }))
}

/// A new webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// Where each event is POSTed: an http:// or https:// URL.
    pub url: String,
    /// Event kinds to deliver (`job.finished`, `frame.dead`, …); absent or
    /// empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only this show's events (needs the wrangler role on it); absent: the
    /// whole farm's (needs a farm-wide wrangler).
    #[serde(default)]
    pub show: Option<String>,
    /// The signing secret (16-256 printable characters); absent: the
    /// server makes one.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Makes a webhook that delivers the events committed from now on, as
/// `kiln webhook create`. Each delivery is a POST of one event as JSON,
/// signed in `Kiln-Signature: t=UNIX_SECONDS,v1=HEX` with HMAC-SHA256 of
/// `"{t}.{body}"` under the secret, which this answer shows once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body(content = NewWebhookBody, content_type = "application/json"),
    responses(
        (status = 201, body = WebhookCreated, headers(("Location" = String, description = "The webhook, to delete it with DELETE"))),
        Refusals,
))]
pub(crate) async fn create<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, Error> {
    Params::parse(q.as_deref(), &[])?;
    let b: NewWebhookBody = json(&body)?;
    let kinds =
        EventKind::parse_list(&b.kinds.join(",")).map_err(|e| Error::BadRequest(e.to_string()))?;
    let made = f
        .create_webhook(
            w,
            NewWebhook {
                url: b.url,
                kinds,
                show: b.show.filter(|s| !s.is_empty()),
                secret: b.secret,
            },
        )
        .await?;
    let location = format!("/api/v1/webhooks/{}", made.webhook.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(made),
    )
        .into_response())
}

/// Stops a webhook and deletes it with its delivery log, as `kiln webhook delete`.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookInfo, description = "The webhook as it was"),
        Refusals,
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn remove<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<WebhookInfo> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(f.delete_webhook(w, webhook_id(&id)?).await?))
}

/// Tries of deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

async fn list<F: FarmApi>(
    f: &F,
    w: kiln_core::auth::Credentials,
    webhook: Option<i64>,
    q: Option<&str>,
) -> Answer<DeliveryList> {
    let p = Params::parse(q, &["failed", "limit"])?;
    let q = DeliveryQuery {
        webhook,
        failed: p.flag("failed")?,
        limit: number(&p, "limit")?.unwrap_or(0),
    };
    Ok(Json(DeliveryList {
        deliveries: f.deliveries(w, q).await?,
    }))
}

/// Every try of every delivery of the webhooks the caller may see, newest
/// first, as `kiln webhook deliveries`.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "webhooks",
    params(
        ("failed" = Option<bool>, Query, description = "Only tries that did not deliver"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 10000)"),
    ),
    responses(
        (status = 200, body = DeliveryList),
        Refusals,
))]
pub(crate) async fn deliveries<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<DeliveryList> {
    list(&*f, w, None, q.as_deref()).await
}

/// One webhook's delivery tries, newest first, as `kiln webhook deliveries ID`.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The webhook's id"),
        ("failed" = Option<bool>, Query, description = "Only tries that did not deliver"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 10000)"),
    ),
    responses(
        (status = 200, body = DeliveryList),
        Refusals,
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn deliveries_of<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<DeliveryList> {
    let id = webhook_id(&id)?;
    list(&*f, w, Some(id), q.as_deref()).await
}
