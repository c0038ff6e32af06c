//! The idle rule over real sockets: a server whose answer takes longer
//! than `idle_timeout`, silent meanwhile, answers; the connection is not
//! cut under the request.

use kiln_api::{Error, Result};
use kiln_api::{FarmApi, ServerStream, WorkerLinkApi, WorkerStream};
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::views::*;
use kiln_core::auth::Credentials;
use kiln_core::farm::Admin;
use kiln_core::view::*;
use kiln_core::webhook;
use kiln_proto::client::Client;
use kiln_proto::conn::ConnLimits;
use kiln_proto::server::serve;
use std::time::{Duration, Instant};

/// A farm that takes `delay` to list its jobs, and has nothing else.
struct Slow {
    delay: Duration,
}

fn none<T>() -> Result<T> {
    Err(Error::Internal("not in this test".into()))
}

#[kiln_api::async_trait]
impl FarmApi for Slow {
    async fn submit(
        &self,
        _: Credentials,
        _: String,
        _: String,
        _: Option<String>,
        _: Option<String>,
        _: std::collections::BTreeMap<String, String>,
    ) -> Result<Submitted> {
        none()
    }
    async fn list_jobs(&self, _: Credentials, _: JobQuery) -> Result<Vec<JobSummary>> {
        tokio::time::sleep(self.delay).await;
        Ok(Vec::new())
    }
    async fn job(&self, _: Credentials, _: String) -> Result<JobDetail> {
        none()
    }
    async fn frames(&self, _: Credentials, _: FrameQuery) -> Result<Vec<FrameInfo>> {
        none()
    }
    async fn running(&self, _: Credentials, _: RunningQuery) -> Result<Vec<RunningFrame>> {
        none()
    }
    async fn farm_history(&self, _: Credentials, _: Option<i64>) -> Result<Vec<FarmSample>> {
        none()
    }
    async fn frame(&self, _: Credentials, _: i64) -> Result<FrameDetail> {
        none()
    }
    async fn attempts(&self, _: Credentials, _: i64) -> Result<Vec<AttemptInfo>> {
        none()
    }
    async fn read_log(&self, _: Credentials, _: LogQuery) -> Result<LogSlice> {
        none()
    }
    async fn grep(&self, _: Credentials, _: GrepQuery) -> Result<GrepResult> {
        none()
    }
    async fn thumbnail(&self, _: Credentials, _: ThumbnailQuery) -> Result<Vec<u8>> {
        none()
    }
    async fn usage(&self, _: Credentials, _: UsageQuery) -> Result<FrameUsage> {
        none()
    }
    async fn history(&self, _: Credentials, _: HistoryQuery) -> Result<HistoryPage> {
        none()
    }
    async fn act(&self, _: Credentials, _: ActQuery) -> Result<(u32, String)> {
        none()
    }
    async fn hosts(&self, _: Credentials, _: HostQuery) -> Result<Vec<HostInfo>> {
        none()
    }
    async fn set_host_lock(&self, _: Credentials, _: String, _: bool) -> Result<HostInfo> {
        none()
    }
    async fn server_info(&self, _: Credentials) -> Result<ServerInfo> {
        none()
    }
    async fn admin(&self, _: Credentials, _: Admin) -> Result<String> {
        none()
    }
    async fn structure(&self, _: Credentials) -> Result<StructureView> {
        none()
    }
    async fn whoami(&self, _: Credentials) -> Result<WhoAmI> {
        none()
    }
    async fn login(
        &self,
        _: Credentials,
        _: String,
        _: String,
        _: Option<String>,
    ) -> Result<LoggedIn> {
        none()
    }
    async fn users(&self, _: Credentials) -> Result<Vec<UserInfo>> {
        none()
    }
    async fn tokens(&self, _: Credentials, _: bool) -> Result<Vec<TokenInfo>> {
        none()
    }
    async fn audit(&self, _: Credentials, _: AuditQuery) -> Result<Vec<AuditRecord>> {
        none()
    }
    async fn identity(&self, _: Credentials, _: IdentityCmd) -> Result<IdentityDone> {
        none()
    }
    async fn events(
        &self,
        _: Credentials,
        _: kiln_core::event::EventQuery,
    ) -> Result<kiln_api::Following> {
        none()
    }
    async fn metrics(&self, _: Credentials) -> Result<FarmMetrics> {
        none()
    }
    async fn webhooks(&self, _: Credentials) -> Result<Vec<webhook::WebhookInfo>> {
        none()
    }
    async fn create_webhook(
        &self,
        _: Credentials,
        _: webhook::NewWebhook,
    ) -> Result<webhook::WebhookCreated> {
        none()
    }
    async fn delete_webhook(&self, _: Credentials, _: i64) -> Result<webhook::WebhookInfo> {
        none()
    }
    async fn deliveries(
        &self,
        _: Credentials,
        _: webhook::DeliveryQuery,
    ) -> Result<Vec<webhook::Delivery>> {
        none()
    }
}

struct NoLink;

#[kiln_api::async_trait]
impl WorkerLinkApi for NoLink {
    async fn connect(&self, _: Credentials, _: String, _: WorkerStream) -> Result<ServerStream> {
        none()
    }
    async fn join(&self, _: Credentials, _: String, _: String) -> Result<String> {
        none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_works_on_past_the_idle_time_is_answered() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // The first deadline is the preface's: 1 s, so that the idle check
    // runs while the request is in flight.
    let limits = ConnLimits {
        preface_timeout: Duration::from_secs(1),
        idle_timeout: Some(Duration::from_secs(1)),
        ..ConnLimits::default()
    };
    let slow = Slow {
        delay: Duration::from_millis(2_500),
    };
    tokio::spawn(serve(
        listener,
        limits,
        None,
        slow,
        NoLink,
        axum::Router::new(),
        futures::future::pending(),
    ));
    let client = Client::connect(&url).await.unwrap();
    let t = Instant::now();
    let jobs = client.list_jobs(false).await;
    eprintln!("answered after {:?}: {jobs:?}", t.elapsed());
    assert_eq!(jobs, Ok(Vec::new()), "a live request was cut as idle");
}
