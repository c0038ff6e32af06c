//! Errors as RFC 9457 problem details (`application/problem+json`): the
//! domain's errors keep their text (the same the CLI prints) and get the
//! HTTP status that says the same; request errors name the field.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The domain API refused or failed.
    #[error(transparent)]
    Api(#[from] kiln_api::Error),
    /// A query parameter, header or body field is wrong; the text names it.
    #[error("{0}")]
    BadRequest(String),
    /// No such route.
    #[error("no such resource: {0} (the API's routes are listed in /api/v1/openapi.json)")]
    NoRoute(String),
    /// The route exists but not with this method.
    #[error("{method} is not allowed on {path}")]
    Method { method: String, path: String },
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `about:blank` with the status's
    /// title, as RFC 9457 suggests where the status says it all, else a
    /// Kiln-specific tag.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Error {
    fn status(&self) -> (StatusCode, &'static str) {
        use kiln_api::Error as E;
        match self {
            Error::Api(E::NotFound(_)) | Error::NoRoute(_) => (StatusCode::NOT_FOUND, "not-found"),
            Error::Api(E::Invalid(_)) | Error::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            Error::Api(E::Unauthenticated(_)) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Api(E::Forbidden(_)) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Api(E::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Api(E::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Error::Method { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, tag) = self.status();
        let detail = match &self {
            // As the CLI says it, less the URL it knows and we do not.
            Error::Api(kiln_api::Error::Unauthenticated(m)) => format!("not logged in: {m}"),
            e => e.to_string(),
        };
        let p = Problem {
            kind: format!("urn:kiln:problem:{tag}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
        };
        let body = serde_json::to_vec(&p).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// The refusals a call that needs a token and may be refused answers
/// with, for the OpenAPI document (`responses((status = 200, ...),
/// Refusals)`): one declaration instead of three lines per route.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its schema is used
pub(crate) enum Refusals {
    #[response(
        status = 400,
        description = "A parameter or field is wrong; `detail` names it",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    #[response(
        status = 401,
        description = "No token the server accepts",
        content_type = "application/problem+json"
    )]
    Unauthenticated(Problem),
    #[response(
        status = 403,
        description = "The caller may not; `detail` says whom to ask",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}
