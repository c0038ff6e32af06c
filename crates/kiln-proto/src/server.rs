//! The server side of the wire: domain-level traits the server implements,
//! adapted to tonic's generated services and served on one port.

use crate::conn::ConnLimits;
use crate::convert::{admin_command, worker_msg};
use crate::pb;
use crate::{Error, Result};
use futures::{Stream, StreamExt};
use kiln_core::farm::Admin;
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::view::*;
use std::future::Future;
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub type WorkerStream = Pin<Box<dyn Stream<Item = Result<WorkerMsg>> + Send>>;
pub type ServerStream = Pin<Box<dyn Stream<Item = ServerMsg> + Send>>;

/// The client API in domain terms.
#[tonic::async_trait]
pub trait FarmApi: Send + Sync + 'static {
    /// `key`: the client's idempotency key, if it sent one.
    async fn submit(
        &self,
        spec: String,
        user: String,
        base_dir: Option<String>,
        key: Option<String>,
    ) -> Result<Submitted>;
    async fn list_jobs(&self, all: bool) -> Result<Vec<JobSummary>>;
    async fn job(&self, key: String) -> Result<JobDetail>;
    async fn frames(
        &self,
        job: String,
        layer: Option<String>,
        state: Option<String>,
    ) -> Result<Vec<FrameInfo>>;
    async fn read_log(&self, q: LogQuery) -> Result<LogSlice>;
    async fn act(&self, q: ActQuery) -> Result<(u32, String)>;
    async fn hosts(&self) -> Result<Vec<HostInfo>>;
    async fn set_host_lock(&self, host: String, locked: bool) -> Result<HostInfo>;
    async fn server_info(&self) -> Result<ServerInfo>;
    /// Applies a wrangler's change; returns a line saying what changed.
    async fn admin(&self, cmd: Admin) -> Result<String>;
    async fn structure(&self) -> Result<StructureView>;
}

/// The worker link in domain terms: one call per worker connection.
#[tonic::async_trait]
pub trait WorkerLinkApi: Send + Sync + 'static {
    async fn connect(&self, incoming: WorkerStream) -> Result<ServerStream>;
}

/// The answer to a spec that is not text: where it stops being UTF-8.
pub fn not_utf8(e: std::str::Utf8Error) -> Error {
    Error::Invalid(format!(
        "spec: the spec is not UTF-8 text (byte {} starts an invalid sequence); save it as UTF-8",
        e.valid_up_to()
    ))
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

struct FarmAdapter<T>(T);

#[tonic::async_trait]
impl<T: FarmApi> pb::farm_server::Farm for FarmAdapter<T> {
    async fn submit(
        &self,
        r: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitReply>, Status> {
        let r = r.into_inner();
        let spec = String::from_utf8(r.spec).map_err(|e| not_utf8(e.utf8_error()))?;
        let s = self
            .0
            .submit(spec, r.user, some(r.base_dir), some(r.submit_key))
            .await?;
        Ok(Response::new(pb::SubmitReply {
            job_id: s.id,
            name: s.name,
            frames: s.frames,
        }))
    }

    async fn list_jobs(
        &self,
        r: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsReply>, Status> {
        let jobs = self.0.list_jobs(r.into_inner().all).await?;
        Ok(Response::new(pb::ListJobsReply {
            jobs: jobs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_job(&self, r: Request<pb::JobRef>) -> Result<Response<pb::JobDetail>, Status> {
        Ok(Response::new(self.0.job(r.into_inner().job).await?.into()))
    }

    async fn list_frames(
        &self,
        r: Request<pb::ListFramesRequest>,
    ) -> Result<Response<pb::ListFramesReply>, Status> {
        let r = r.into_inner();
        let frames = self.0.frames(r.job, some(r.layer), some(r.state)).await?;
        Ok(Response::new(pb::ListFramesReply {
            frames: frames.into_iter().map(Into::into).collect(),
        }))
    }

    async fn read_log(
        &self,
        r: Request<pb::ReadLogRequest>,
    ) -> Result<Response<pb::ReadLogReply>, Status> {
        let r = r.into_inner();
        let s = self
            .0
            .read_log(LogQuery {
                job: r.job,
                frame: r.frame,
                attempt: (r.attempt != 0).then_some(r.attempt),
                offset: r.offset,
                max_bytes: r.max_bytes,
            })
            .await?;
        Ok(Response::new(pb::ReadLogReply {
            data: s.data,
            next_offset: s.next_offset,
            complete: s.complete,
            attempt_id: s.attempt_id,
            attempt_number: s.attempt_number,
            frame_state: s.frame_state,
        }))
    }

    async fn act(&self, r: Request<pb::ActRequest>) -> Result<Response<pb::ActReply>, Status> {
        let r = r.into_inner();
        let (frames, message) = self
            .0
            .act(ActQuery {
                action: r.action,
                job: r.job,
                targets: r.targets,
                state: some(r.state),
                user: r.user,
            })
            .await?;
        Ok(Response::new(pb::ActReply { frames, message }))
    }

    async fn list_hosts(
        &self,
        _: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsReply>, Status> {
        let hosts = self.0.hosts().await?;
        Ok(Response::new(pb::ListHostsReply {
            hosts: hosts.into_iter().map(Into::into).collect(),
        }))
    }

    async fn set_host_lock(
        &self,
        r: Request<pb::SetHostLockRequest>,
    ) -> Result<Response<pb::HostInfo>, Status> {
        let r = r.into_inner();
        Ok(Response::new(
            self.0.set_host_lock(r.host, r.locked).await?.into(),
        ))
    }

    async fn admin(
        &self,
        r: Request<pb::AdminRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let cmd = admin_command(r.into_inner())?;
        let message = self.0.admin(cmd).await?;
        Ok(Response::new(pb::AdminReply { message }))
    }

    async fn get_structure(
        &self,
        _: Request<pb::StructureRequest>,
    ) -> Result<Response<pb::Structure>, Status> {
        Ok(Response::new(self.0.structure().await?.into()))
    }

    async fn server_info(
        &self,
        _: Request<pb::ServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfoReply>, Status> {
        let i = self.0.server_info().await?;
        Ok(Response::new(pb::ServerInfoReply {
            version: i.version,
            data_dir: i.data_dir,
            jobs: i.jobs,
            hosts: i.hosts,
        }))
    }
}

struct LinkAdapter<T>(T);

type PbServerStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl<T: WorkerLinkApi> pb::worker_link_server::WorkerLink for LinkAdapter<T> {
    type AttachStream = PbServerStream;

    async fn attach(
        &self,
        r: Request<tonic::Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        // An open link is a request in flight for as long as it lasts, so
        // its connection is not idle, however quiet (see `inflight`).
        let incoming = r.into_inner().map(|m| match m {
            Ok(m) => worker_msg(m),
            Err(s) => Err(Error::from(s)),
        });
        let out = self.0.connect(Box::pin(incoming)).await?;
        let out: PbServerStream = Box::pin(out.map(|m| Ok(pb::ServerMessage::from(m))));
        Ok(Response::new(out))
    }
}

/// Serves both services on one listener until `shutdown` resolves, under
/// `limits` (see [`crate::conn`]), over TLS when given a configuration
/// ([`crate::tls::server_config`]).
pub async fn serve<F, W>(
    listener: tokio::net::TcpListener,
    limits: ConnLimits,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    farm: F,
    link: W,
    shutdown: impl Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error>
where
    F: FarmApi,
    W: WorkerLinkApi,
{
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        // A request in flight keeps its connection from counting as idle.
        .layer(crate::inflight::InFlightLayer)
        .add_service(pb::farm_server::FarmServer::new(FarmAdapter(farm)))
        .add_service(pb::worker_link_server::WorkerLinkServer::new(LinkAdapter(
            link,
        )))
        .serve_with_incoming_shutdown(crate::conn::incoming(listener, limits, tls), shutdown)
        .await
}
