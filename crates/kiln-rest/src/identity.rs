//! Who may use the farm, for those allowed: users, their grants, API and
//! join tokens (`POST /tokens` is how a pipeline gets a service token) and
//! the audit trail. A token's secret is in the answer that makes it, once.

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json, json_or_empty, number, Params};
use crate::routes::{Answer, Api, Who};
use crate::wrangle::Done;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::identity::JoinRules;
use kiln_core::auth::views::{IdentityCmd, IdentityDone, LoggedIn, TokenInfo, UserInfo};
use kiln_core::auth::{Grant, Right};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/users", get(users::<F>).post(create_user::<F>))
        .route("/api/v1/users/{name}/{action}", post(user_act::<F>))
        .route(
            "/api/v1/users/{name}/grants/{right}",
            put(grant::<F>).delete(revoke::<F>),
        )
        .route("/api/v1/tokens", get(tokens::<F>).post(create_token::<F>))
        .route("/api/v1/tokens/{id}", delete(revoke_token::<F>))
        .route("/api/v1/audit", get(audit::<F>))
        .route("/api/v1/login", post(login::<F>))
}

/// A sign-in with a password (a local user's, or the directory's).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub user: String,
    pub password: String,
    /// The name the session token is listed under (`kiln token list`);
    /// `login` when absent.
    #[serde(default)]
    pub token_name: Option<String>,
}

/// Signs in with a user name and password, as `kiln login`, and answers a
/// session token to send as `Authorization: Bearer` (the web UI signs in
/// this way). Needs no token.
#[utoipa::path(post, path = "/api/v1/login", tag = "identity",
    request_body(content = Login, content_type = "application/json"),
    security(()),
    responses(
        (status = 200, body = LoggedIn),
        (status = 400, description = "A field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong user name or password", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The directory did not answer", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn login<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<LoggedIn> {
    Params::parse(q.as_deref(), &[])?;
    let b: Login = json(&body)?;
    if b.user.trim().is_empty() {
        return Err(Error::BadRequest(
            "user: give the user name to sign in as".into(),
        ));
    }
    Ok(Json(f.login(w, b.user, b.password, b.token_name).await?))
}

async fn done<F: FarmApi>(
    f: &F,
    w: kiln_core::auth::Credentials,
    cmd: IdentityCmd,
) -> Answer<Done> {
    Ok(Json(Done {
        message: f.identity(w, cmd).await?.message,
    }))
}

/// The farm's users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

/// Every user with its grants (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "identity", responses(
        (status = 200, body = UserList),
        Refusals,
))]
pub(crate) async fn users<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<UserList> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(UserList {
        users: f.users(w).await?,
    }))
}

/// A new local user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// With a password the user can `kiln login` with it (8 characters or more).
    #[serde(default)]
    pub password: Option<String>,
}

/// Creates a local user, as `kiln user create` (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "identity",
    request_body(content = NewUser, content_type = "application/json"),
    responses(
        (status = 200, body = Done),
        Refusals,
))]
pub(crate) async fn create_user<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    Params::parse(q.as_deref(), &[])?;
    let b: NewUser = json(&body)?;
    let cmd = IdentityCmd::CreateUser {
        name: b.name,
        password: b.password,
    };
    done(&*f, w, cmd).await
}

/// A user's new password.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserActBody {
    /// password: the new password.
    #[serde(default)]
    pub password: Option<String>,
}

/// Disables or enables a user, or sets its password, as `kiln user disable|enable|password`.
#[utoipa::path(post, path = "/api/v1/users/{name}/{action}", tag = "identity",
    request_body(content = UserActBody, description = "password: `password`", content_type = "application/json"),
    params(
        ("name" = String, Path, description = "The user"),
        ("action" = String, Path, description = "disable, enable or password"),
    ),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such user or action", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn user_act<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((name, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    Params::parse(q.as_deref(), &[])?;
    let b: UserActBody = json_or_empty(&body)?;
    if b.password.is_some() && action != "password" {
        return Err(Error::BadRequest(format!(
            "password: {action} takes no password"
        )));
    }
    let cmd = match action.as_str() {
        "disable" | "enable" => IdentityCmd::SetDisabled {
            name,
            disabled: action == "disable",
        },
        "password" => IdentityCmd::SetPassword {
            user: name,
            password: b
                .password
                .ok_or_else(|| Error::BadRequest("password: give the new password".into()))?,
        },
        _ => {
            return Err(Error::NoRoute(format!(
                "/api/v1/users/{name}/{action} (a user's actions: disable, enable, password)"
            )))
        }
    };
    done(&*f, w, cmd).await
}

fn right(r: &str) -> Result<Right, Error> {
    Right::parse(&r.to_ascii_lowercase()).ok_or_else(|| {
        Error::BadRequest(format!(
            "right: {r:?} is not a role Kiln has; use viewer, artist, wrangler, admin or impersonate"
        ))
    })
}

/// Gives a user a role, farm-wide or for one show, as `kiln grant`.
#[utoipa::path(put, path = "/api/v1/users/{name}/grants/{right}", tag = "identity",
    params(
        ("name" = String, Path, description = "The user"),
        ("right" = String, Path, description = "viewer, artist, wrangler, admin or impersonate"),
        ("show" = Option<String>, Query, description = "For this show only; absent: farm-wide"),
    ),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn grant<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((user, r)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Answer<Done> {
    let p = Params::parse(q.as_deref(), &["show"])?;
    let grant = Grant {
        right: right(&r)?,
        show: p.get("show"),
    };
    done(&*f, w, IdentityCmd::Grant { user, grant }).await
}

/// Takes a role away, as `kiln revoke`.
#[utoipa::path(delete, path = "/api/v1/users/{name}/grants/{right}", tag = "identity",
    params(
        ("name" = String, Path, description = "The user"),
        ("right" = String, Path, description = "viewer, artist, wrangler, admin or impersonate"),
        ("show" = Option<String>, Query, description = "The show the grant names; absent: the farm-wide grant"),
    ),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such user or grant", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn revoke<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((user, r)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Answer<Done> {
    let p = Params::parse(q.as_deref(), &["show"])?;
    let grant = Grant {
        right: right(&r)?,
        show: p.get("show"),
    };
    done(&*f, w, IdentityCmd::Revoke { user, grant }).await
}

/// Tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// The caller's tokens, or with `all=true` everyone's (admins only); never their secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "identity",
    params(("all" = Option<bool>, Query, description = "Every user's tokens, join tokens included")),
    responses(
        (status = 200, body = TokenList),
        Refusals,
))]
pub(crate) async fn tokens<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<TokenList> {
    let p = Params::parse(q.as_deref(), &["all"])?;
    Ok(Json(TokenList {
        tokens: f.tokens(w, p.flag("all")?).await?,
    }))
}

/// A token to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for (`nuke-farm-submit`).
    pub name: String,
    /// Whose token it is; absent: the caller's (another's needs admin).
    #[serde(default)]
    pub user: Option<String>,
    /// It expires this many seconds after it is made; absent: never
    /// (a join token: the server's default).
    #[serde(default)]
    pub expires_in_s: Option<u64>,
    /// Makes a worker join token with these rules instead of an API token.
    #[serde(default)]
    pub join: Option<JoinRules>,
}

/// Makes an API token (a pipeline's service token) or a worker join
/// token, as `kiln token create`; the answer holds its secret, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity",
    request_body(content = NewToken, content_type = "application/json"),
    responses(
        (status = 201, body = IdentityDone, headers(("Location" = String, description = "The token, to revoke it with DELETE"))),
        Refusals,
))]
pub(crate) async fn create_token<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, Error> {
    Params::parse(q.as_deref(), &[])?;
    let b: NewToken = json(&body)?;
    let expires_in = match b.expires_in_s {
        None => None,
        Some(0) => {
            return Err(Error::BadRequest(
                "expires_in_s: give a positive number of seconds, or leave it out".into(),
            ))
        }
        Some(s) => Some(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
    };
    let d = f
        .identity(
            w,
            IdentityCmd::CreateToken {
                name: b.name,
                user: b.user,
                expires_in,
                join: b.join,
            },
        )
        .await?;
    let location = format!("/api/v1/tokens/{}", d.token_id.clone().unwrap_or_default());
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(d)).into_response())
}

/// Revokes a token (by id, or by name among the caller's own), as `kiln token revoke`.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "identity",
    params(("id" = String, Path, description = "The token's id (or the name of one of the caller's)")),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn revoke_token<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<Done> {
    Params::parse(q.as_deref(), &[])?;
    done(&*f, w, IdentityCmd::RevokeToken(id)).await
}

/// Audit records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub records: Vec<AuditRecord>,
}

/// The audit trail, newest first: who changed what, from where, when, and
/// how it ended (admins only), as `kiln audit`.
#[utoipa::path(get, path = "/api/v1/audit", tag = "identity",
    params(
        ("who" = Option<String>, Query, description = "Only this principal's records"),
        ("since" = Option<String>, Query, description = "Only records at or after this: ms since the Unix epoch, a duration ago (7d) or a UTC date"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 1000)"),
    ),
    responses(
        (status = 200, body = AuditList),
        Refusals,
))]
pub(crate) async fn audit<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<AuditList> {
    let p = Params::parse(q.as_deref(), &["who", "since", "limit"])?;
    let q = AuditQuery {
        who: p.get("who"),
        since: crate::query::time_ms(&p, "since")?,
        limit: number(&p, "limit")?.unwrap_or(0),
    };
    Ok(Json(AuditList {
        records: f.audit(w, q).await?,
    }))
}
