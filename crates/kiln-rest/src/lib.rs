//! Kiln's REST/JSON API: `kiln_api`'s domain traits served as resources
//! under `/api/v1/`. The one crate that knows HTTP and JSON: it converts
//! at its edge and holds no policy (the server authenticates the
//! [`Credentials`] each call carries and decides, as for every wire).
//! The server mounts [`router`] on its one port beside gRPC.

mod events;
mod farm;
mod frames;
mod history;
mod hosts;
mod identity;
mod layers;
mod metrics;
mod openapi;
mod paging;
mod problem;
mod query;
mod routes;
mod webhooks;
mod wrangle;

pub use metrics::render as render_metrics;
pub use openapi::document_value as openapi_document;
pub use problem::{Error, Problem};
pub use routes::router;
pub use routes::{ActBody, Acted, FramePage, HostList, JobPage, Submitted};

/// The largest page a list returns, whatever `page_size` asks.
pub const MAX_PAGE_SIZE: usize = 1000;
/// A list's page when `page_size` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 100;
