//! The API's OpenAPI 3.1 document, derived by utoipa from the handlers'
//! declarations and the types they answer: never written by hand.

use crate::routes::*;
use crate::{farm, frames, history, hosts, identity, layers, wrangle};
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
    paths(
        whoami, server, jobs, submit, job, frames, act, hosts,
        layers::layers, layers::act, layers::grep,
        wrangle::priority, wrangle::max_cores, wrangle::unavoid,
        frames::frame, frames::attempts, frames::log, frames::thumbnail, frames::usage, frames::act, frames::running,
        hosts::host, hosts::act, hosts::remove,
        history::history,
        farm::facilities, farm::put_facility, farm::rm_facility,
        farm::allocations, farm::put_allocation, farm::rm_allocation,
        farm::shows, farm::put_show,
        farm::subscriptions, farm::put_subscription, farm::rm_subscription,
        farm::limits, farm::put_limit, farm::rm_limit,
        farm::services, farm::put_service, farm::rm_service,
        identity::users, identity::create_user, identity::user_act,
        identity::grant, identity::revoke,
        identity::tokens, identity::create_token, identity::revoke_token,
        identity::audit, identity::login,
        crate::events::events,
        crate::metrics::autoscale, crate::metrics::history,
        crate::webhooks::webhooks, crate::webhooks::create, crate::webhooks::remove,
        crate::webhooks::deliveries, crate::webhooks::deliveries_of,
    ),
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
