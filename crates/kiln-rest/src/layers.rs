//! A job's layers with their frame counts (as `kiln job` prints them),
//! actions on one layer, and a search of the job's logs (`kiln grep`).

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json_or_empty, number, Params};
use crate::routes::{Acted, Answer, Api, Who};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::view::{ActQuery, GrepQuery, GrepResult, LayerSummary};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/jobs/{job}/layers", get(layers::<F>))
        .route("/api/v1/jobs/{job}/layers/{layer}/{action}", post(act::<F>))
        .route("/api/v1/jobs/{job}/grep", get(grep::<F>))
}

/// A job's layers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerList {
    pub layers: Vec<LayerSummary>,
}

/// A job's layers, in order, each with its frames counted by state and
/// why its waiting frames wait.
#[utoipa::path(get, path = "/api/v1/jobs/{job}/layers", tag = "jobs", params(
        ("job" = String, Path, description = "The job's id or name"),
    ), responses(
        (status = 200, body = LayerList),
        Refusals,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn layers<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<LayerList> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(LayerList {
        layers: f.job(w, job).await?.layers,
    }))
}

/// What a layer action applies to: the whole layer when empty.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerActBody {
    /// Only these frames of the layer: `12`, `1-10`, `1-100x5`.
    #[serde(default)]
    pub frames: Option<String>,
    /// Only frames in this state (retry: `DEAD`, the default in the CLI).
    #[serde(default)]
    pub state: Option<String>,
}

const LAYER_ACTIONS: &[&str] = &["kill", "pause", "resume", "retry", "eat"];

/// Kills, pauses, resumes, retries or eats a layer, or some of its frames.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/layers/{layer}/{action}", tag = "jobs",
    request_body(content = LayerActBody, description = "Optional: some of the layer's frames, or a state", content_type = "application/json"),
    params(
        ("job" = String, Path, description = "The job's id or name"),
        ("layer" = String, Path, description = "The layer's name"),
        ("action" = String, Path, description = "kill, pause, resume, retry or eat"),
    ), responses(
        (status = 200, body = Acted),
        Refusals,
        (status = 404, description = "No such job, layer or action", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn act<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((job, layer, action)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Acted> {
    if !LAYER_ACTIONS.contains(&action.as_str()) {
        return Err(Error::NoRoute(format!(
            "/api/v1/jobs/{job}/layers/{layer}/{action} (actions: {})",
            LAYER_ACTIONS.join(", ")
        )));
    }
    Params::parse(q.as_deref(), &[])?;
    let b: LayerActBody = json_or_empty(&body)?;
    let target = match b.frames {
        Some(fs) => format!("{layer}/{fs}"),
        None => layer,
    };
    let (frames, message) = f
        .act(
            w,
            ActQuery {
                action,
                job,
                targets: vec![target],
                state: b.state,
                user: String::new(),
            },
        )
        .await?;
    Ok(Json(Acted { frames, message }))
}

/// Lines of a job's logs (the latest attempt of each frame) that match a
/// regular expression, each with its frame and line number, as `kiln grep`.
#[utoipa::path(get, path = "/api/v1/jobs/{job}/grep", tag = "jobs", params(
        ("job" = String, Path, description = "The job's id or name"),
        ("regex" = String, Query, description = "A regular expression (Rust regex syntax: `error|warn`)"),
        ("layer" = Option<String>, Query, description = "Only this layer's frames"),
        ("i" = Option<bool>, Query, description = "Ignore case"),
        ("max" = Option<u32>, Query, description = "At most this many lines (the server stops at 10,000)"),
    ), responses(
        (status = 200, body = GrepResult),
        Refusals,
        (status = 404, description = "No such job or layer", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn grep<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<GrepResult> {
    let p = Params::parse(q.as_deref(), &["regex", "layer", "i", "max"])?;
    let pattern = p.get("regex").ok_or_else(|| {
        Error::BadRequest("regex: give the regular expression to search for, as regex=error".into())
    })?;
    Ok(Json(
        f.grep(
            w,
            GrepQuery {
                job,
                pattern,
                layer: p.get("layer"),
                frame: None,
                ignore_case: p.flag("i")?,
                max_lines: number(&p, "max")?.unwrap_or(0),
            },
        )
        .await?,
    ))
}
