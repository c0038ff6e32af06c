//! The resources and actions under `/api/v1/`: each handler reads the
//! caller's credentials and the request, calls the domain API once (a
//! list: then filters and pages its answer, pure conversion) and answers
//! JSON.

use crate::paging;
use crate::problem::{Error, Problem};
use crate::query::{json, Params};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::{header, request::Parts, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::auth::Credentials;
use kiln_core::view::{
    ActQuery, DisplayState, FrameInfo, FrameQuery, HostInfo, HostQuery, JobQuery, JobStatus,
    JobSummary,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) type Api<F> = State<Arc<F>>;
pub(crate) type Answer<T> = Result<Json<T>, Error>;

/// The REST API's routes over `farm`. Requests should carry the caller's
/// address as a `SocketAddr` in their extensions (the audit trail uses
/// it), as the server's one port puts it there; without it the call is
/// made with none.
pub fn router<F: FarmApi>(farm: Arc<F>) -> Router {
    let recorder = farm.recorder();
    let routes = Router::new()
        .route("/api/v1/whoami", get(whoami::<F>))
        .route("/api/v1/server", get(server::<F>))
        .route("/api/v1/jobs", get(jobs::<F>).post(submit::<F>))
        .route("/api/v1/jobs/{job}", get(job::<F>))
        .route("/api/v1/jobs/{job}/frames", get(frames::<F>))
        .route("/api/v1/jobs/{job}/{action}", post(act::<F>))
        .route("/api/v1/hosts", get(hosts::<F>))
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .merge(crate::frames::routes::<F>())
        .merge(crate::layers::routes::<F>())
        .merge(crate::wrangle::routes::<F>())
        .merge(crate::hosts::routes::<F>())
        .merge(crate::history::routes::<F>())
        .merge(crate::farm::routes::<F>())
        .merge(crate::identity::routes::<F>())
        .merge(crate::webhooks::routes::<F>())
        .merge(crate::events::router())
        .merge(crate::metrics::routes::<F>())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(farm);
    crate::metrics::timed(recorder, routes)
}

/// The caller as the wire saw it: its bearer token and its address.
pub(crate) struct Who(pub(crate) Credentials);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, Error> {
        Ok(Who(credentials(&parts.headers, parts.extensions.get())))
    }
}

fn credentials(headers: &HeaderMap, from: Option<&SocketAddr>) -> Credentials {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Credentials {
        bearer,
        from: from.copied(),
    }
}

async fn no_route(uri: Uri) -> Error {
    Error::NoRoute(uri.path().to_string())
}

async fn wrong_method(method: Method, uri: Uri) -> Error {
    Error::Method {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// The caller, as the server knows it.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity", responses(
        (status = 200, body = kiln_core::auth::views::WhoAmI),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn whoami<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
) -> Answer<kiln_core::auth::views::WhoAmI> {
    Ok(Json(f.whoami(w).await?))
}

/// The server's version and size.
#[utoipa::path(get, path = "/api/v1/server", tag = "farm", responses(
        (status = 200, body = kiln_core::view::ServerInfo),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn server<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
) -> Answer<kiln_core::view::ServerInfo> {
    Ok(Json(f.server_info(w).await?))
}

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `page_token` for the next page; absent on the last.
    pub next_page_token: Option<String>,
}

/// Jobs, oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(
        ("show" = Option<String>, Query, description = "Only this show's jobs"),
        ("user" = Option<String>, Query, description = "Only jobs running as this user"),
        ("state" = Option<String>, Query, description = "PENDING, RUNNING, PAUSED, FAILED, FINISHED or KILLED"),
        ("name" = Option<String>, Query, description = "Only jobs whose name contains this"),
        ("all" = Option<bool>, Query, description = "Finished and killed jobs too (implied by a state that names them)"),
        ("since" = Option<String>, Query, description = "Only jobs submitted at or after this: ms since the Unix epoch, a duration ago (7d) or a UTC date"),
        ("page_token" = Option<String>, Query, description = "The previous page's next_page_token"),
        ("page_size" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
    ), responses(
        (status = 200, body = JobPage),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn jobs<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<JobPage> {
    let p = Params::parse(
        q.as_deref(),
        &[
            "show",
            "user",
            "state",
            "name",
            "all",
            "since",
            "page_token",
            "page_size",
        ],
    )?;
    let state = match p.get("state") {
        None => None,
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
            Error::BadRequest(format!(
                "state: {s:?} is not a job state; use PENDING, RUNNING, PAUSED, FAILED, \
                 FINISHED or KILLED"
            ))
        })?),
    };
    let size = p.page_size()?;
    // Finished and killed jobs leave the default listing, as in `kiln jobs`;
    // asking for them by state brings them back. The server pages: one
    // more than a page tells whether there is a next.
    let q = JobQuery {
        all: p.flag("all")?,
        show: p.get("show"),
        user: p.get("user"),
        state,
        name: p.get("name"),
        since: crate::query::time_ms(&p, "since")?,
        after: paging::after('j', p.get("page_token").as_deref())?,
        limit: u32::try_from(size.saturating_add(1)).unwrap_or(u32::MAX),
    };
    let mut jobs: Vec<JobSummary> = f.list_jobs(w, q).await?;
    let more = jobs.len() > size;
    jobs.truncate(size);
    let next_page_token = more.then(|| paging::token('j', jobs.last().map_or(0, |j| j.id)));
    Ok(Json(JobPage {
        jobs,
        next_page_token,
    }))
}

/// A job with its layers.
#[utoipa::path(get, path = "/api/v1/jobs/{job}", tag = "jobs", params(
        ("job" = String, Path, description = "The job's id or name"),
    ), responses(
        (status = 200, body = kiln_core::view::JobDetail),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn job<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<kiln_core::view::JobDetail> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(f.job(w, job).await?))
}

/// A page of a job's frames.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FramePage {
    pub frames: Vec<FrameInfo>,
    /// Pass as `page_token` for the next page; absent on the last.
    pub next_page_token: Option<String>,
}

/// A job's frames, a page at a time.
#[utoipa::path(get, path = "/api/v1/jobs/{job}/frames", tag = "jobs", params(
        ("job" = String, Path, description = "The job's id or name"),
        ("layer" = Option<String>, Query, description = "Only this layer's frames"),
        ("state" = Option<String>, Query, description = "WAITING, DEPEND, RUNNING, SUCCEEDED, DEAD or EATEN"),
        ("page_token" = Option<String>, Query, description = "The previous page's next_page_token"),
        ("host" = Option<String>, Query, description = "Only frames that last ran (or run) on this host"),
        ("offset" = Option<u64>, Query, description = "Pass over this many frames first (after page_token's): straight to a row far down the list"),
        ("page_size" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
    ), responses(
        (status = 200, body = FramePage),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn frames<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(job): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<FramePage> {
    let p = Params::parse(
        q.as_deref(),
        &[
            "layer",
            "state",
            "host",
            "page_token",
            "page_size",
            "offset",
        ],
    )?;
    let state = p.get("state");
    if let Some(s) = &state {
        if DisplayState::parse(s).is_none() {
            return Err(Error::BadRequest(format!(
                "state: {s:?} is not a frame state; use WAITING, DEPEND, RUNNING, SUCCEEDED, \
                 DEAD or EATEN"
            )));
        }
    }
    let size = p.page_size()?;
    // One more than a page tells whether there is a next.
    let q = FrameQuery {
        job,
        layer: p.get("layer"),
        state,
        host: p.get("host"),
        after: paging::after('f', p.get("page_token").as_deref())?,
        offset: crate::query::number(&p, "offset")?.unwrap_or(0),
        limit: u32::try_from(size.saturating_add(1)).unwrap_or(u32::MAX),
    };
    let mut frames = f.frames(w, q).await?;
    let more = frames.len() > size;
    frames.truncate(size);
    let next_page_token = more.then(|| paging::token('f', frames.last().map_or(0, |f| f.id)));
    Ok(Json(FramePage {
        frames,
        next_page_token,
    }))
}

/// A page of the farm's hosts, by id.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostInfo>,
    /// Pass as `page_token` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The farm's hosts, a page at a time.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "farm", params(
        ("page_token" = Option<String>, Query, description = "The previous page's next_page_token"),
        ("page_size" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
    ), responses(
        (status = 200, body = HostList),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn hosts<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<HostList> {
    let p = Params::parse(q.as_deref(), &["page_token", "page_size"])?;
    let size = p.page_size()?;
    // One more than a page tells whether there is a next.
    let q = HostQuery {
        after: paging::after('h', p.get("page_token").as_deref())?,
        limit: u32::try_from(size.saturating_add(1)).unwrap_or(u32::MAX),
        ..HostQuery::default()
    };
    let mut hosts = f.hosts(w, q).await?;
    let more = hosts.len() > size;
    hosts.truncate(size);
    let next_page_token = more.then(|| paging::token('h', hosts.last().map_or(0, |h| h.id)));
    Ok(Json(HostList {
        hosts,
        next_page_token,
    }))
}

/// What a submission created.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submitted {
    pub id: i64,
    pub name: String,
    pub frames: u32,
}

/// `POST /api/v1/jobs`: the body is the spec as `kiln submit` takes it
/// (YAML or JSON); `Idempotency-Key` makes a retried submission create
/// one job.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
    request_body(content = String, description = "The job spec, YAML or JSON, as `kiln submit` takes it", content_type = "application/yaml"),
    params(
        ("user" = Option<String>, Query, description = "Who the job runs as when its spec names no one (needs the impersonate right)"),
        ("base_dir" = Option<String>, Query, description = "The directory relative paths in the spec start from"),
        ("Idempotency-Key" = Option<String>, Header, description = "A submission retried with the same key makes one job"),
        ("param.NAME" = Option<String>, Query, description = "An OpenJD job template's parameter NAME, as `kiln submit -p NAME=VALUE`; repeat for each"),
    ), responses(
        (status = 201, body = Submitted, headers(("Location" = String, description = "The new job"))),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),        (status = 403, description = "The caller may not; `detail` says whom to ask", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn submit<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    // `param.NAME=VALUE` sets an OpenJD template's job parameter, as
    // `kiln submit -p NAME=VALUE` does.
    let (params, rest) = split_template_params(q.as_deref())?;
    let p = Params::parse(Some(&rest), &["user", "base_dir"])?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    Error::BadRequest("Idempotency-Key: the header is not visible ASCII".into())
                })?
                .trim()
                .to_string(),
        ),
    };
    let spec = String::from_utf8(body.to_vec()).map_err(|e| {
        Error::BadRequest(format!(
            "body: the spec is not UTF-8 text (byte {} starts an invalid sequence); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let s = f
        .submit(
            w,
            spec,
            p.get("user").unwrap_or_default(),
            p.get("base_dir"),
            key,
            params,
        )
        .await?;
    let location = format!("/api/v1/jobs/{}", s.name);
    let body = Json(Submitted {
        id: s.id,
        name: s.name,
        frames: s.frames,
    });
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
}

/// Splits `param.NAME=VALUE` pairs (an OpenJD template's job parameters)
/// from the rest of a query string.
fn split_template_params(
    raw: Option<&str>,
) -> Result<(std::collections::BTreeMap<String, String>, String), Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("the query string is not form-encoded: {e}")))?;
    let mut params = std::collections::BTreeMap::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.strip_prefix("param.") {
            Some("") => {
                return Err(Error::BadRequest(
                    "param.: a template parameter needs a name, as param.Frames=1-100".into(),
                ))
            }
            Some(name) => {
                if params.insert(name.to_string(), v).is_some() {
                    return Err(Error::BadRequest(format!("{k}: given more than once")));
                }
            }
            None => rest.push((k, v)),
        }
    }
    let rest = serde_urlencoded::to_string(&rest).map_err(|e| {
        Error::Api(kiln_api::Error::Internal(format!(
            "re-encoding the query: {e}"
        )))
    })?;
    Ok((params, rest))
}

/// What an action applies to: the whole job when empty.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// Layers (`render`) or frames (`render/12`, `render/1-10`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Only frames in this state (retry: `DEAD`, the default in the CLI).
    #[serde(default)]
    pub state: Option<String>,
}

/// What an action did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Acted {
    /// Frames it changed.
    pub frames: u32,
    /// The line the CLI prints.
    pub message: String,
}

const ACTIONS: &[&str] = &["kill", "pause", "resume", "retry", "eat"];

/// Kills, pauses, resumes, retries or eats a job, or some of its layers or frames.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/{action}", tag = "jobs",
    request_body(content = ActBody, description = "Optional: the layers or frames to act on", content_type = "application/json"),
    params(
        ("job" = String, Path, description = "The job's id or name"),
        ("action" = String, Path, description = "kill, pause, resume, retry or eat"),
    ), responses(
        (status = 200, body = Acted),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),        (status = 403, description = "The caller may not; `detail` says whom to ask", body = Problem, content_type = "application/problem+json"),        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn act<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((job, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Acted> {
    if !ACTIONS.contains(&action.as_str()) {
        return Err(Error::NoRoute(format!(
            "/api/v1/jobs/{job}/{action} (actions: {})",
            ACTIONS.join(", ")
        )));
    }
    Params::parse(q.as_deref(), &[])?;
    let b: ActBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        json(&body)?
    };
    let (frames, message) = f
        .act(
            w,
            ActQuery {
                action,
                job,
                targets: b.targets,
                state: b.state,
                user: String::new(),
            },
        )
        .await?;
    Ok(Json(Acted { frames, message }))
}
