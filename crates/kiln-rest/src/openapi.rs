//! The API's OpenAPI 3.1 document, derived by utoipa from the handlers'
//! declarations and the types they answer: never written by hand.

use crate::routes::*;
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kiln REST API",
        description = "Kiln's render farm API: jobs, frames and hosts as resources. \
            Every call carries `Authorization: Bearer <token>` (a `kiln token create` \
            token); errors are RFC 9457 problem documents.",
        version = "1"
    ),
    paths(whoami, server, jobs, submit, job, frames, act, hosts, crate::metrics::autoscale),
    security(("bearer" = [])),
    modifiers(&Bearer)
)]
struct Doc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as a JSON value.
pub fn document_value() -> serde_json::Value {
    serde_json::to_value(Doc::openapi()).unwrap_or_default()
}

/// `GET /api/v1/openapi.json`: needs no token, like any published schema.
pub async fn document() -> Json<serde_json::Value> {
    Json(document_value())
}
