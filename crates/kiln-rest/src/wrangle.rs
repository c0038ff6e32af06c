//! A wrangler's changes to a job, beyond the frame actions: its priority,
//! its core cap, the hosts it avoids (`kiln job set|unavoid`). Each is one
//! admin call, answered with the CLI's line once the change is durable.

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json, json_or_empty, Params};
use crate::routes::{Answer, Api, Who};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::post;
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::farm::Admin;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/jobs/{job}/priority", post(priority::<F>))
        .route("/api/v1/jobs/{job}/max-cores", post(max_cores::<F>))
        .route("/api/v1/jobs/{job}/unavoid", post(unavoid::<F>))
}

/// What a change did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Done {
    /// The line the CLI prints.
    pub message: String,
}

/// Sends one admin change, refusing any query parameter.
pub(crate) async fn admin<F: FarmApi>(
    f: &F,
    w: kiln_core::auth::Credentials,
    q: Option<&str>,
    cmd: Admin,
) -> Answer<Done> {
    Params::parse(q, &[])?;
    Ok(Json(Done {
        message: f.admin(w, cmd).await?,
    }))
}

/// A job's new priority.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityBody {
    /// Higher runs first within its show (0 to 1000000).
    pub priority: i32,
}

/// Sets a job's priority, as `kiln job set JOB --priority N`.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/priority", tag = "jobs",
    request_body(content = PriorityBody, content_type = "application/json"),
    params(("job" = String, Path, description = "The job's id or name")),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn priority<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    let b: PriorityBody = json(&body)?;
    let cmd = Admin::SetJob {
        job,
        priority: Some(b.priority),
        max_cores: None,
    };
    admin(&*f, w, q.as_deref(), cmd).await
}

/// A job's new core cap.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxCoresBody {
    /// The most cores the job may hold at once, in centicores (100 = one
    /// core); `null` lifts the cap. Required: say `null` to lift it.
    #[schema(value_type = Option<u32>)]
    pub max_cores: serde_json::Value,
}

/// Sets or lifts a job's core cap, as `kiln job set JOB --max-cores N|none`.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/max-cores", tag = "jobs",
    request_body(content = MaxCoresBody, content_type = "application/json"),
    params(("job" = String, Path, description = "The job's id or name")),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn max_cores<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    let b: MaxCoresBody = json(&body)?;
    let cap = centicores_or_null("max_cores", &b.max_cores)?;
    let cmd = Admin::SetJob {
        job,
        priority: None,
        max_cores: Some(cap),
    };
    admin(&*f, w, q.as_deref(), cmd).await
}

/// A count of centicores, or `null` for none.
pub(crate) fn centicores_or_null(field: &str, v: &serde_json::Value) -> Result<Option<u32>, Error> {
    match v {
        serde_json::Value::Null => Ok(None),
        v => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "{field}: {v} is not a number of centicores (100 = one core) nor null"
                ))
            }),
    }
}

/// Which avoided host to use again.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnavoidBody {
    /// One host; absent: all the hosts the job avoids.
    #[serde(default)]
    pub host: Option<String>,
}

/// Lets a job use again the hosts it stopped using after its frames kept
/// failing there, as `kiln job unavoid JOB [HOST]`.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/unavoid", tag = "jobs",
    request_body(content = UnavoidBody, description = "Optional: one host", content_type = "application/json"),
    params(("job" = String, Path, description = "The job's id or name")),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn unavoid<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    let b: UnavoidBody = json_or_empty(&body)?;
    admin(&*f, w, q.as_deref(), Admin::Unavoid { job, host: b.host }).await
}
