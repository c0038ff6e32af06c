//! Kiln's domain API: the calls a client and a worker make, in domain terms,
//! that every transport serves alike. `kiln-server` implements the traits;
//! each wire (gRPC in `kiln-proto`, REST, later OpenCue's protocol) is an
//! adapter that converts at its edge and holds no policy. Every call
//! carries the caller's [`Credentials`] as its transport saw them: the
//! implementation authenticates them, and `kiln_core::auth::authorize`
//! decides, whichever wire the call came on.

pub mod metrics;

/// The macro implementations of [`FarmApi`] and [`WorkerLinkApi`] use.
pub use async_trait::async_trait;
use futures::Stream;
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::views::*;
use kiln_core::auth::Credentials;
use kiln_core::event::{Event, EventQuery};
use kiln_core::farm::Admin;
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::view::*;
use kiln_core::webhook::{Delivery, DeliveryQuery, NewWebhook, WebhookCreated, WebhookInfo};
use std::collections::BTreeMap;
use std::pin::Pin;

/// Why a call failed, in terms every transport maps to its own (a gRPC
/// status, an HTTP problem). The message is for the person who made the
/// call: it names the field, or says whom to ask or what to do.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request was rejected; the message names the field and the fix.
    #[error("{0}")]
    Invalid(String),
    /// The server cannot answer now (shutting down, its store failing):
    /// the request may or may not have been carried out.
    #[error("{0}")]
    Unavailable(String),
    /// The call carried no credential the server accepts; the message says
    /// how to sign in.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this; the message says whom to ask.
    #[error("{0}")]
    Forbidden(String),
    /// The server failed; the message says how.
    #[error("{0}")]
    Internal(String),
}

impl From<kiln_core::Error> for Error {
    fn from(e: kiln_core::Error) -> Self {
        match e {
            kiln_core::Error::NotFound(m) => Error::NotFound(m),
            kiln_core::Error::Forbidden(m) => Error::Forbidden(m),
            other => Error::Invalid(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub type WorkerStream = Pin<Box<dyn Stream<Item = Result<WorkerMsg>> + Send>>;
pub type ServerStream = Pin<Box<dyn Stream<Item = ServerMsg> + Send>>;
/// Events in order of their numbers; it ends when the server stops, and
/// after an error, which it yields last.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// A follow of the farm's events: where it starts and what comes.
pub struct Following {
    /// The number it starts after: the caller's `after`, or the last event
    /// committed when it began. A client that loses the stream before any
    /// event came resumes after this, missing nothing. `None` for a start
    /// by time (`since`), which the client repeats instead.
    pub from: Option<u64>,
    pub events: EventStream,
}

/// The client API in domain terms. Every call takes the caller's
/// [`Credentials`] as the transport saw them; the implementation
/// authenticates them and asks `kiln_core::auth::authorize`.
#[async_trait::async_trait]
pub trait FarmApi: Send + Sync + 'static {
    /// `run_as`: who the job runs as when its spec names no user (empty:
    /// the caller). `key`: the client's idempotency key, if it sent one.
    /// `params`: an OpenJD template's parameter values (empty for a spec).
    async fn submit(
        &self,
        who: Credentials,
        spec: String,
        run_as: String,
        base_dir: Option<String>,
        key: Option<String>,
        params: BTreeMap<String, String>,
    ) -> Result<Submitted>;
    /// The jobs the caller may read that `q` matches, by id, at most
    /// `q.limit` of them after `q.after`.
    async fn list_jobs(&self, who: Credentials, q: JobQuery) -> Result<Vec<JobSummary>>;
    async fn job(&self, who: Credentials, key: String) -> Result<JobDetail>;
    /// A job's frames as `q` asks: a page after `q.after`, or all.
    async fn frames(&self, who: Credentials, q: FrameQuery) -> Result<Vec<FrameInfo>>;
    /// The frames running now (on one host, or quiet for a while), of the
    /// jobs the caller may read.
    async fn running(&self, who: Credentials, q: RunningQuery) -> Result<Vec<RunningFrame>>;
    /// The farm's gauges over the last day, sampled every so often, from
    /// `since` (ms since the epoch) on: for anyone holding a role.
    async fn farm_history(&self, who: Credentials, since: Option<i64>) -> Result<Vec<FarmSample>>;
    /// A frame by its id alone (as `kiln frames` lists it), with its job.
    async fn frame(&self, who: Credentials, id: i64) -> Result<FrameDetail>;
    /// Every attempt of a frame, first to last, the running one included.
    async fn attempts(&self, who: Credentials, id: i64) -> Result<Vec<AttemptInfo>>;
    async fn read_log(&self, who: Credentials, q: LogQuery) -> Result<LogSlice>;
    /// The preview (a small JPEG) of one of a frame's outputs: for whoever
    /// may read the frame's log.
    async fn thumbnail(&self, who: Credentials, q: ThumbnailQuery) -> Result<Vec<u8>>;
    /// A frame's memory and CPU over time: for whoever may read its log.
    async fn usage(&self, who: Credentials, q: UsageQuery) -> Result<FrameUsage>;
    /// Lines of a job's logs matching a regular expression, with the frame
    /// each is from: whoever may read the job's logs may search them.
    async fn grep(&self, who: Credentials, q: GrepQuery) -> Result<GrepResult>;
    /// Ended attempts of the jobs the caller may read, a page at a time.
    async fn history(&self, who: Credentials, q: HistoryQuery) -> Result<HistoryPage>;
    async fn act(&self, who: Credentials, q: ActQuery) -> Result<(u32, String)>;
    /// A page of the hosts, by id (`limit` 0: all of them).
    async fn hosts(&self, who: Credentials, q: HostQuery) -> Result<Vec<HostInfo>>;
    async fn set_host_lock(&self, who: Credentials, host: String, locked: bool)
        -> Result<HostInfo>;
    async fn server_info(&self, who: Credentials) -> Result<ServerInfo>;
    /// Applies a wrangler's change; returns a line saying what changed.
    async fn admin(&self, who: Credentials, cmd: Admin) -> Result<String>;
    async fn structure(&self, who: Credentials) -> Result<StructureView>;
    async fn whoami(&self, who: Credentials) -> Result<WhoAmI>;
    /// A password or directory sign-in; needs no credential.
    async fn login(
        &self,
        who: Credentials,
        user: String,
        password: String,
        token_name: Option<String>,
    ) -> Result<LoggedIn>;
    async fn users(&self, who: Credentials) -> Result<Vec<UserInfo>>;
    async fn tokens(&self, who: Credentials, all: bool) -> Result<Vec<TokenInfo>>;
    async fn audit(&self, who: Credentials, q: AuditQuery) -> Result<Vec<AuditRecord>>;
    async fn identity(&self, who: Credentials, cmd: IdentityCmd) -> Result<IdentityDone>;
    /// The farm's events as they are committed, those of jobs the caller
    /// may read (hosts and the structure: any role), resuming after
    /// `q.after` with none missed. An unauthenticated caller gets an error
    /// here, not a stream.
    async fn events(&self, who: Credentials, q: EventQuery) -> Result<Following>;
    /// The farm's gauges now, for monitoring: for whoever may read the
    /// farm, or for anyone when the server serves metrics publicly.
    async fn metrics(&self, who: Credentials) -> Result<FarmMetrics>;
    /// The webhooks of the shows the caller wrangles (every one for a
    /// farm-wide wrangler), by id.
    async fn webhooks(&self, who: Credentials) -> Result<Vec<WebhookInfo>>;
    /// Makes a webhook that delivers the events committed from now on;
    /// the answer holds its signing secret, shown this once.
    async fn create_webhook(&self, who: Credentials, w: NewWebhook) -> Result<WebhookCreated>;
    /// Stops and deletes a webhook with its delivery log.
    async fn delete_webhook(&self, who: Credentials, id: i64) -> Result<WebhookInfo>;
    /// Tries of deliveries of the webhooks the caller may see, newest first.
    async fn deliveries(&self, who: Credentials, q: DeliveryQuery) -> Result<Vec<Delivery>>;
    /// Where the server records latencies and counts, which every wire
    /// feeds with its requests' latency; `None`: nothing is recorded.
    fn recorder(&self) -> Option<std::sync::Arc<metrics::Recorder>> {
        None
    }
}

/// The worker link in domain terms: one call per worker connection.
#[async_trait::async_trait]
pub trait WorkerLinkApi: Send + Sync + 'static {
    /// `host`: the name the connection says it is for, which its
    /// credential must be bound to.
    async fn connect(
        &self,
        who: Credentials,
        host: String,
        incoming: WorkerStream,
    ) -> Result<ServerStream>;
    /// Exchanges a join token for the host's own credential.
    async fn join(&self, who: Credentials, token: String, host: String) -> Result<String>;
}
