//! One host as a resource, and what `kiln host` does to it: lock, unlock,
//! repair, fixed, move, tag, untag, and remove (its credential revoked).

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json_or_empty, Params};
use crate::routes::{Answer, Api, Who};
use crate::wrangle::{admin, Done};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::auth::views::IdentityCmd;
use kiln_core::farm::Admin;
use kiln_core::view::HostInfo;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/hosts/{name}", get(host::<F>).delete(remove::<F>))
        .route("/api/v1/hosts/{name}/{action}", post(act::<F>))
}

/// A host by name.
#[utoipa::path(get, path = "/api/v1/hosts/{name}", tag = "hosts", params(
        ("name" = String, Path, description = "The host's name"),
    ), responses(
        (status = 200, body = HostInfo),
        Refusals,
        (status = 404, description = "No such host", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn host<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<HostInfo> {
    Params::parse(q.as_deref(), &[])?;
    let q = kiln_core::view::HostQuery {
        name: Some(name.clone()),
        ..Default::default()
    };
    f.hosts(w, q)
        .await?
        .into_iter()
        .find(|h| h.name == name)
        .map(Json)
        .ok_or_else(|| {
            Error::Api(kiln_api::Error::NotFound(format!(
                "no host {name:?}: `kiln hosts` lists them"
            )))
        })
}

/// What a host action needs beyond its name.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostActBody {
    /// move: the allocation, `FACILITY.POOL`.
    #[serde(default)]
    pub allocation: Option<String>,
    /// tag, untag: the tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

const HOST_ACTIONS: &[&str] = &["lock", "unlock", "repair", "fixed", "move", "tag", "untag"];

/// Locks, unlocks, repairs, clears, moves or tags a host, as `kiln host ACTION`.
#[utoipa::path(post, path = "/api/v1/hosts/{name}/{action}", tag = "hosts",
    request_body(content = HostActBody, description = "move: `allocation`; tag and untag: `tags`", content_type = "application/json"),
    params(
        ("name" = String, Path, description = "The host's name"),
        ("action" = String, Path, description = "lock, unlock, repair, fixed, move, tag or untag"),
    ), responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such host or action", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn act<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((host, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    if !HOST_ACTIONS.contains(&action.as_str()) {
        return Err(Error::NoRoute(format!(
            "/api/v1/hosts/{host}/{action} (a host's actions: {})",
            HOST_ACTIONS.join(", ")
        )));
    }
    let b: HostActBody = json_or_empty(&body)?;
    // A field the action does not take is refused, not ignored.
    if b.allocation.is_some() && action != "move" {
        return Err(Error::BadRequest(format!(
            "allocation: {action} takes no allocation (move does)"
        )));
    }
    if !b.tags.is_empty() && action != "tag" && action != "untag" {
        return Err(Error::BadRequest(format!(
            "tags: {action} takes no tags (tag and untag do)"
        )));
    }
    let cmd = match action.as_str() {
        "lock" | "unlock" => {
            Params::parse(q.as_deref(), &[])?;
            let locked = action == "lock";
            let h = f.set_host_lock(w, host, locked).await?;
            let state = if locked { "locked" } else { "open" };
            return Ok(Json(Done {
                message: format!("host {} is {state}", h.name),
            }));
        }
        "repair" | "fixed" => Admin::Repair {
            host,
            on: action == "repair",
        },
        "move" => {
            let allocation = b.allocation.ok_or_else(|| {
                Error::BadRequest(
                    "allocation: give the allocation to move the host to, FACILITY.POOL".into(),
                )
            })?;
            Admin::MoveHost { host, allocation }
        }
        _ => {
            if b.tags.is_empty() {
                return Err(Error::BadRequest(format!(
                    "tags: give the tags to {action}, as {{\"tags\": [\"gpu\"]}}"
                )));
            }
            let (add, remove) = if action == "tag" {
                (b.tags, vec![])
            } else {
                (vec![], b.tags)
            };
            Admin::TagHost { host, add, remove }
        }
    };
    admin(&*f, w, q.as_deref(), cmd).await
}

/// Revokes a host's credential and closes its link, as `kiln host remove`:
/// the machine must join again to reconnect under that name.
#[utoipa::path(delete, path = "/api/v1/hosts/{name}", tag = "hosts", params(
        ("name" = String, Path, description = "The host's name"),
    ), responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such host", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn remove<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<Done> {
    Params::parse(q.as_deref(), &[])?;
    let done = f.identity(w, IdentityCmd::RemoveHost(name)).await?;
    Ok(Json(Done {
        message: done.message,
    }))
}
