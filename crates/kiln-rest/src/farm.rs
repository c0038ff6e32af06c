//! The farm's structure as resources: facilities, allocations, shows,
//! subscriptions, limits and services, each listed with what it holds now,
//! and the changes `kiln` makes to them as PUT (create or replace) and
//! DELETE. Each change is one admin call, answered with the CLI's line.

use crate::problem::{Error, Problem, Refusals};
use crate::query::{json_or_empty, Params};
use crate::routes::{Answer, Api, Who};
use crate::wrangle::{admin, centicores_or_null, Done};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::farm::Admin;
use kiln_core::model::TagReq;
use kiln_core::structure::{CoreRequest, Service, UNLIMITED};
use kiln_core::view::*;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/facilities", get(facilities::<F>))
        .route(
            "/api/v1/facilities/{name}",
            put(put_facility::<F>).delete(rm_facility::<F>),
        )
        .route("/api/v1/allocations", get(allocations::<F>))
        .route(
            "/api/v1/allocations/{name}",
            put(put_allocation::<F>).delete(rm_allocation::<F>),
        )
        .route("/api/v1/shows", get(shows::<F>))
        .route("/api/v1/shows/{name}", put(put_show::<F>))
        .route("/api/v1/subscriptions", get(subscriptions::<F>))
        .route(
            "/api/v1/subscriptions/{show}/{allocation}",
            put(put_subscription::<F>).delete(rm_subscription::<F>),
        )
        .route("/api/v1/limits", get(limits::<F>))
        .route(
            "/api/v1/limits/{name}",
            put(put_limit::<F>).delete(rm_limit::<F>),
        )
        .route("/api/v1/services", get(services::<F>))
        .route(
            "/api/v1/services/{name}",
            put(put_service::<F>).delete(rm_service::<F>),
        )
}

/// Declares a list handler: `GET path` answers `{field: [T]}` from the structure.
macro_rules! list {
    ($fn:ident, $ty:ident, $field:ident, $item:ty, $path:literal, $what:literal) => {
        #[doc = concat!("The farm's ", $what, ".")]
        #[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
        pub struct $ty {
            pub $field: Vec<$item>,
        }

        #[doc = concat!("The farm's ", $what, ", sorted by name.")]
        #[utoipa::path(get, path = $path, tag = "structure", responses((status = 200, body = $ty), Refusals))]
        pub(crate) async fn $fn<F: FarmApi>(
            State(f): Api<F>,
            Who(w): Who,
            RawQuery(q): RawQuery,
        ) -> Answer<$ty> {
            Params::parse(q.as_deref(), &[])?;
            Ok(Json($ty {
                $field: f.structure(w).await?.$field,
            }))
        }
    };
}

list!(
    facilities,
    FacilityList,
    facilities,
    FacilityInfo,
    "/api/v1/facilities",
    "facilities (sites)"
);
list!(
    allocations,
    AllocationList,
    allocations,
    AllocationInfo,
    "/api/v1/allocations",
    "allocations (pools of hosts)"
);
list!(shows, ShowList, shows, ShowInfo, "/api/v1/shows", "shows");
list!(
    subscriptions,
    SubscriptionList,
    subscriptions,
    SubscriptionInfo,
    "/api/v1/subscriptions",
    "subscriptions (each show's share of each allocation)"
);
list!(
    limits,
    LimitList,
    limits,
    LimitInfo,
    "/api/v1/limits",
    "limits (license counters)"
);
list!(
    services,
    ServiceList,
    services,
    ServiceInfo,
    "/api/v1/services",
    "services (named layer defaults)"
);

/// Declares a change handler: `METHOD path` with a body (or none) makes
/// one admin command.
macro_rules! change {
    ($fn:ident, $method:ident, $path:literal, $doc:literal, [$(($p:literal, $pd:literal)),*], $body:ty, |$f:ident, $w:ident, $args:pat, $b:pat_param, $q:ident| $make:expr) => {
        #[doc = $doc]
        #[utoipa::path($method, path = $path, tag = "structure",
            request_body(content = $body, content_type = "application/json"),
            params($(($p = String, Path, description = $pd)),*),
            responses(
                (status = 200, body = Done),
                Refusals,
                (status = 404, description = "No such thing to change", body = Problem, content_type = "application/problem+json"),
        ))]
        pub(crate) async fn $fn<F: FarmApi>(
            State($f): Api<F>,
            Who($w): Who,
            Path($args): Path<Vec<String>>,
            RawQuery($q): RawQuery,
            body: Bytes,
        ) -> Answer<Done> {
            let $b: $body = json_or_empty(&body)?;
            $make
        }
    };
}

/// No body.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

fn one(v: Vec<String>) -> String {
    v.into_iter().next().unwrap_or_default()
}

change!(
    put_facility,
    put,
    "/api/v1/facilities/{name}",
    "Creates a facility (a site), as `kiln facility create`.",
    [("name", "The facility")],
    Empty,
    |f, w, name, _b, q| admin(&*f, w, q.as_deref(), Admin::PutFacility { name: one(name) }).await
);
change!(
    rm_facility,
    delete,
    "/api/v1/facilities/{name}",
    "Removes a facility with no allocations left.",
    [("name", "The facility")],
    Empty,
    |f, w, name, _b, q| admin(
        &*f,
        w,
        q.as_deref(),
        Admin::RemoveFacility { name: one(name) }
    )
    .await
);

/// An allocation's tags.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationBody {
    /// New hosts carrying any of these tags join the allocation.
    #[serde(default)]
    pub tags: Vec<String>,
}

change!(
    put_allocation,
    put,
    "/api/v1/allocations/{name}",
    "Creates an allocation or sets its tags, as `kiln alloc create`.",
    [("name", "FACILITY.POOL")],
    AllocationBody,
    |f, w, name, b, q| admin(
        &*f,
        w,
        q.as_deref(),
        Admin::PutAllocation {
            name: one(name),
            tags: b.tags
        }
    )
    .await
);
change!(
    rm_allocation,
    delete,
    "/api/v1/allocations/{name}",
    "Removes an allocation with no hosts (its subscriptions go too).",
    [("name", "FACILITY.POOL")],
    Empty,
    |f, w, name, _b, q| admin(
        &*f,
        w,
        q.as_deref(),
        Admin::RemoveAllocation { name: one(name) }
    )
    .await
);

/// A present field, `null` included (absent stays `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// A show's fields to change; absent ones stay as they are.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowBody {
    /// A disabled show starts nothing new and takes no new jobs.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The priority of a job whose spec sets none.
    #[serde(default)]
    pub default_priority: Option<i32>,
    /// The cap of a job whose spec sets none, in centicores; `null`: no cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub default_max_cores: Option<serde_json::Value>,
}

change!(
    put_show,
    put,
    "/api/v1/shows/{name}",
    "Creates a show, or changes the fields given, as `kiln show create|enable|disable|set`.",
    [("name", "The show")],
    ShowBody,
    |f, w, name, b, q| {
        let default_max_cores = b
            .default_max_cores
            .map(|v| centicores_or_null("default_max_cores", &v))
            .transpose()?;
        let cmd = Admin::PutShow {
            name: one(name),
            enabled: b.enabled,
            default_priority: b.default_priority,
            default_max_cores,
        };
        admin(&*f, w, q.as_deref(), cmd).await
    }
);

/// A show's share of an allocation.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// Cores guaranteed to the show there when it has work, in centicores.
    pub size: u32,
    /// The most cores it may hold there, in centicores; absent or `null`: no cap.
    #[serde(default)]
    pub burst: Option<u32>,
}

change!(
    put_subscription,
    put,
    "/api/v1/subscriptions/{show}/{allocation}",
    "Sets a show's subscription to an allocation, as `kiln sub set`.",
    [("show", "The show"), ("allocation", "FACILITY.POOL")],
    SubscriptionBody,
    |f, w, path, b, q| {
        let mut path = path.into_iter();
        let (show, allocation) = (
            path.next().unwrap_or_default(),
            path.next().unwrap_or_default(),
        );
        let cmd = Admin::PutSubscription {
            show,
            allocation,
            size: b.size,
            burst: b.burst.unwrap_or(UNLIMITED),
        };
        admin(&*f, w, q.as_deref(), cmd).await
    }
);
change!(
    rm_subscription,
    delete,
    "/api/v1/subscriptions/{show}/{allocation}",
    "Removes a show's subscription to an allocation.",
    [("show", "The show"), ("allocation", "FACILITY.POOL")],
    Empty,
    |f, w, path, _b, q| {
        let mut path = path.into_iter();
        let (show, allocation) = (
            path.next().unwrap_or_default(),
            path.next().unwrap_or_default(),
        );
        admin(
            &*f,
            w,
            q.as_deref(),
            Admin::RemoveSubscription { show, allocation },
        )
        .await
    }
);

/// A limit's size.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitBody {
    /// Frames naming it that may run at once, farm-wide.
    pub max: u32,
}

change!(
    put_limit,
    put,
    "/api/v1/limits/{name}",
    "Creates or resizes a limit, as `kiln limit set`.",
    [("name", "The limit")],
    LimitBody,
    |f, w, name, b, q| admin(
        &*f,
        w,
        q.as_deref(),
        Admin::PutLimit {
            name: one(name),
            max: b.max
        }
    )
    .await
);
change!(
    rm_limit,
    delete,
    "/api/v1/limits/{name}",
    "Removes a limit.",
    [("name", "The limit")],
    Empty,
    |f, w, name, _b, q| admin(&*f, w, q.as_deref(), Admin::RemoveLimit { name: one(name) }).await
);

/// A service's defaults, replacing what it had; absent fields fall
/// through to the farm-wide service of the same name, then Kiln's defaults.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// As a spec writes it: `4`, `4+`, `2-8`, `all`.
    #[serde(default)]
    pub cores: Option<String>,
    #[serde(default)]
    pub memory_kb: Option<u64>,
    #[serde(default)]
    pub gpus: Option<u32>,
    #[serde(default)]
    pub gpu_memory_kb: Option<u64>,
    /// Each an alternative list, as a spec writes it: `gpu|cuda`.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub limits: Option<Vec<String>>,
}

fn service(name: String, show: Option<String>, b: ServiceBody) -> Result<Service, Error> {
    let cores = b
        .cores
        .map(|c| CoreRequest::parse(&c).map_err(|e| Error::BadRequest(format!("cores: {e}"))))
        .transpose()?;
    let tags = b
        .tags
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let any_of: Vec<String> = t
                        .split('|')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if any_of.is_empty() {
                        Err(Error::BadRequest(format!(
                            "tags: {t:?} names no tag; give tags like linux or gpu|cuda (either)"
                        )))
                    } else {
                        Ok(TagReq { any_of })
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Service {
        name,
        show,
        cores,
        memory_kb: b.memory_kb,
        gpus: b.gpus,
        gpu_memory_kb: b.gpu_memory_kb,
        tags,
        timeout_s: b.timeout_s,
        limits: b.limits,
    })
}

/// Sets a service's defaults (the farm-wide one, or `show`'s), as `kiln service set`.
#[utoipa::path(put, path = "/api/v1/services/{name}", tag = "structure",
    request_body(content = ServiceBody, content_type = "application/json"),
    params(
        ("name" = String, Path, description = "The service"),
        ("show" = Option<String>, Query, description = "The show it applies to; absent: every show"),
    ),
    responses(
        (status = 200, body = Done),
        Refusals,
))]
pub(crate) async fn put_service<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer<Done> {
    let p = Params::parse(q.as_deref(), &["show"])?;
    let b: ServiceBody = json_or_empty(&body)?;
    let s = service(name, p.get("show"), b)?;
    Ok(Json(Done {
        message: f.admin(w, Admin::PutService(s)).await?,
    }))
}

/// Removes a service (the farm-wide one, or `show`'s).
#[utoipa::path(delete, path = "/api/v1/services/{name}", tag = "structure",
    params(
        ("name" = String, Path, description = "The service"),
        ("show" = Option<String>, Query, description = "The show's service; absent: the farm-wide one"),
    ),
    responses(
        (status = 200, body = Done),
        Refusals,
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn rm_service<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<Done> {
    let p = Params::parse(q.as_deref(), &["show"])?;
    let cmd = Admin::RemoveService {
        name,
        show: p.get("show"),
    };
    Ok(Json(Done {
        message: f.admin(w, cmd).await?,
    }))
}
