//! The server side of the wire: `kiln_api`'s domain traits, as the server
//! implements them, adapted to tonic's generated services and served on
//! one port.

use crate::conn::ConnLimits;
use crate::convert::{
    admin_command, event_query, history_query, identity_cmd, job_query, new_webhook, page_token,
    worker_msg,
};
use crate::pb;
use crate::{Error, Result};
use futures::{Stream, StreamExt};
use kiln_api::{FarmApi, WorkerLinkApi};
use kiln_core::auth::audit::AuditQuery;
use kiln_core::auth::Credentials;
use kiln_core::view::*;
use kiln_core::webhook::DeliveryQuery;
use std::future::Future;
use std::pin::Pin;
use tonic::{Request, Response, Status};

/// The metadata key naming the host a worker link is for.
pub const HOST_HEADER: &str = "kiln-host";

/// What the transport saw of a request's caller: its bearer token and its
/// address.
fn credentials<T>(r: &Request<T>) -> Credentials {
    let bearer = r
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let from = r
        .extensions()
        .get::<crate::conn::ConnInfo>()
        .and_then(|i| i.remote);
    Credentials { bearer, from }
}

/// The answer to a spec that is not text: where it stops being UTF-8.
pub fn not_utf8(e: std::str::Utf8Error) -> Error {
    Error::Invalid(format!(
        "spec: the spec is not UTF-8 text (byte {} starts an invalid sequence); save it as UTF-8",
        e.valid_up_to()
    ))
}

/// A domain error as a gRPC status.
fn wire(e: kiln_api::Error) -> Status {
    Error::from(e).into()
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
        let who = credentials(&r);
        let r = r.into_inner();
        let spec = String::from_utf8(r.spec).map_err(|e| not_utf8(e.utf8_error()))?;
        let s = self
            .0
            .submit(
                who,
                spec,
                r.user,
                some(r.base_dir),
                some(r.submit_key),
                r.params.into_iter().collect(),
            )
            .await
            .map_err(wire)?;
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
        let who = credentials(&r);
        let q = job_query(r.into_inner())?;
        let jobs = self.0.list_jobs(who, q).await.map_err(wire)?;
        Ok(Response::new(pb::ListJobsReply {
            jobs: jobs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_job(&self, r: Request<pb::JobRef>) -> Result<Response<pb::JobDetail>, Status> {
        let who = credentials(&r);
        Ok(Response::new(
            self.0
                .job(who, r.into_inner().job)
                .await
                .map_err(wire)?
                .into(),
        ))
    }

    async fn list_frames(
        &self,
        r: Request<pb::ListFramesRequest>,
    ) -> Result<Response<pb::ListFramesReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let frames = self
            .0
            .frames(
                who,
                FrameQuery {
                    job: r.job,
                    layer: some(r.layer),
                    state: some(r.state),
                    ..FrameQuery::default()
                },
            )
            .await
            .map_err(wire)?;
        Ok(Response::new(pb::ListFramesReply {
            frames: frames.into_iter().map(Into::into).collect(),
        }))
    }

    async fn read_log(
        &self,
        r: Request<pb::ReadLogRequest>,
    ) -> Result<Response<pb::ReadLogReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let s = self
            .0
            .read_log(
                who,
                LogQuery {
                    job: r.job,
                    frame: r.frame,
                    attempt: (r.attempt != 0).then_some(r.attempt),
                    offset: r.offset,
                    max_bytes: r.max_bytes,
                },
            )
            .await
            .map_err(wire)?;
        Ok(Response::new(pb::ReadLogReply {
            data: s.data,
            next_offset: s.next_offset,
            complete: s.complete,
            attempt_id: s.attempt_id,
            attempt_number: s.attempt_number,
            frame_state: s.frame_state,
        }))
    }

    async fn grep(&self, r: Request<pb::GrepRequest>) -> Result<Response<pb::GrepReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let q = GrepQuery {
            job: r.job,
            pattern: r.pattern,
            layer: some(r.layer),
            frame: some(r.frame),
            ignore_case: r.ignore_case,
            max_lines: r.max_lines,
        };
        let g = self.0.grep(who, q).await.map_err(wire)?;
        Ok(Response::new(pb::GrepReply {
            lines: g
                .lines
                .into_iter()
                .map(|l| pb::GrepLine {
                    frame: l.frame,
                    attempt: l.attempt,
                    line_number: l.line_number,
                    text: l.text,
                })
                .collect(),
            logs: g.logs,
            truncated: g.truncated,
        }))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn events(
        &self,
        r: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let who = credentials(&r);
        let q = event_query(r.into_inner())?;
        let following = self.0.events(who, q).await.map_err(wire)?;
        let mut r = Response::new(Box::pin(
            following
                .events
                .map(|e| e.map(pb::Event::from).map_err(wire)),
        ) as Self::EventsStream);
        // Where the stream starts, for a client cut off before any event.
        if let Some(n) = following.from {
            if let Ok(v) = n.to_string().parse() {
                r.metadata_mut().insert(crate::EVENTS_FROM, v);
            }
        }
        Ok(r)
    }

    async fn history(
        &self,
        r: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryReply>, Status> {
        let who = credentials(&r);
        let q = history_query(r.into_inner())?;
        let page = self.0.history(who, q).await.map_err(wire)?;
        Ok(Response::new(pb::HistoryReply {
            rows: page.rows.into_iter().map(Into::into).collect(),
            next_page_token: page_token(page.next),
        }))
    }

    async fn act(&self, r: Request<pb::ActRequest>) -> Result<Response<pb::ActReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let (frames, message) = self
            .0
            .act(
                who,
                ActQuery {
                    action: r.action,
                    job: r.job,
                    targets: r.targets,
                    state: some(r.state),
                    user: r.user,
                },
            )
            .await
            .map_err(wire)?;
        Ok(Response::new(pb::ActReply { frames, message }))
    }

    async fn list_hosts(
        &self,
        r: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsReply>, Status> {
        let q = HostQuery {
            after: Some(r.get_ref().after).filter(|&a| a > 0),
            limit: r.get_ref().limit,
            ..HostQuery::default()
        };
        let hosts = self.0.hosts(credentials(&r), q).await.map_err(wire)?;
        Ok(Response::new(pb::ListHostsReply {
            hosts: hosts.into_iter().map(Into::into).collect(),
        }))
    }

    async fn set_host_lock(
        &self,
        r: Request<pb::SetHostLockRequest>,
    ) -> Result<Response<pb::HostInfo>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        Ok(Response::new(
            self.0
                .set_host_lock(who, r.host, r.locked)
                .await
                .map_err(wire)?
                .into(),
        ))
    }

    async fn admin(
        &self,
        r: Request<pb::AdminRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let who = credentials(&r);
        let cmd = admin_command(r.into_inner())?;
        let message = self.0.admin(who, cmd).await.map_err(wire)?;
        Ok(Response::new(pb::AdminReply { message }))
    }

    async fn get_structure(
        &self,
        r: Request<pb::StructureRequest>,
    ) -> Result<Response<pb::Structure>, Status> {
        Ok(Response::new(
            self.0
                .structure(credentials(&r))
                .await
                .map_err(wire)?
                .into(),
        ))
    }

    async fn server_info(
        &self,
        r: Request<pb::ServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfoReply>, Status> {
        let i = self.0.server_info(credentials(&r)).await.map_err(wire)?;
        Ok(Response::new(pb::ServerInfoReply {
            version: i.version,
            data_dir: i.data_dir,
            jobs: i.jobs,
            hosts: i.hosts,
        }))
    }

    async fn who_am_i(
        &self,
        r: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIReply>, Status> {
        Ok(Response::new(
            self.0.whoami(credentials(&r)).await.map_err(wire)?.into(),
        ))
    }

    async fn login(
        &self,
        r: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let l = self
            .0
            .login(who, r.user, r.password, some(r.token_name))
            .await
            .map_err(wire)?;
        Ok(Response::new(l.into()))
    }

    async fn list_users(
        &self,
        r: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersReply>, Status> {
        let users = self.0.users(credentials(&r)).await.map_err(wire)?;
        Ok(Response::new(pb::ListUsersReply {
            users: users.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_tokens(
        &self,
        r: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensReply>, Status> {
        let who = credentials(&r);
        let tokens = self.0.tokens(who, r.into_inner().all).await.map_err(wire)?;
        Ok(Response::new(pb::ListTokensReply {
            tokens: tokens.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_webhooks(
        &self,
        r: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksReply>, Status> {
        let who = credentials(&r);
        let hooks = self.0.webhooks(who).await.map_err(wire)?;
        Ok(Response::new(pb::ListWebhooksReply {
            webhooks: hooks.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_webhook(
        &self,
        r: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookReply>, Status> {
        let who = credentials(&r);
        let w = new_webhook(r.into_inner())?;
        let made = self.0.create_webhook(who, w).await.map_err(wire)?;
        Ok(Response::new(pb::CreateWebhookReply {
            webhook: Some(made.webhook.into()),
            secret: made.secret,
        }))
    }

    async fn delete_webhook(
        &self,
        r: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::WebhookMsg>, Status> {
        let who = credentials(&r);
        let id = r.into_inner().id;
        let gone = self.0.delete_webhook(who, id).await.map_err(wire)?;
        Ok(Response::new(gone.into()))
    }

    async fn list_deliveries(
        &self,
        r: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let q = DeliveryQuery {
            webhook: (r.webhook != 0).then_some(r.webhook),
            failed: r.failed,
            limit: r.limit,
        };
        let tries = self.0.deliveries(who, q).await.map_err(wire)?;
        Ok(Response::new(pb::ListDeliveriesReply {
            deliveries: tries.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_audit(
        &self,
        r: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let q = AuditQuery {
            who: some(r.user),
            since: (r.since != 0).then_some(r.since),
            limit: r.limit,
        };
        let records = self.0.audit(who, q).await.map_err(wire)?;
        Ok(Response::new(pb::ListAuditReply {
            records: records.into_iter().map(Into::into).collect(),
        }))
    }

    async fn identity(
        &self,
        r: Request<pb::IdentityRequest>,
    ) -> Result<Response<pb::IdentityReply>, Status> {
        let who = credentials(&r);
        let cmd = identity_cmd(r.into_inner())?;
        Ok(Response::new(
            self.0.identity(who, cmd).await.map_err(wire)?.into(),
        ))
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
        let who = credentials(&r);
        let host = r
            .metadata()
            .get(HOST_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        // An open link is a request in flight for as long as it lasts, so
        // its connection is not idle, however quiet (see `inflight`).
        let incoming = r.into_inner().map(|m| match m {
            Ok(m) => worker_msg(m).map_err(kiln_api::Error::from),
            Err(s) => Err(Error::from(s).into()),
        });
        let out = self
            .0
            .connect(who, host, Box::pin(incoming))
            .await
            .map_err(wire)?;
        let out: PbServerStream = Box::pin(out.map(|m| Ok(pb::ServerMessage::from(m))));
        Ok(Response::new(out))
    }

    async fn join(&self, r: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let who = credentials(&r);
        let r = r.into_inner();
        let credential = self.0.join(who, r.token, r.host).await.map_err(wire)?;
        Ok(Response::new(pb::JoinReply { credential }))
    }
}

/// Serves both services on one listener until `shutdown` resolves, under
/// `limits` (see [`crate::conn`]), over TLS when given a configuration
/// ([`crate::tls::server_config`]). The port speaks HTTP/2 and HTTP/1.1:
/// requests whose content type is gRPC's go to the services, every other
/// request to `rest` (a REST adapter, which this crate knows nothing of),
/// with the caller's address as a `SocketAddr` in its extensions.
pub async fn serve<F, W>(
    listener: tokio::net::TcpListener,
    limits: ConnLimits,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    farm: F,
    link: W,
    rest: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error>
where
    F: FarmApi,
    W: WorkerLinkApi,
{
    let recorder = farm.recorder();
    let grpc = tonic::service::Routes::new(pb::farm_server::FarmServer::new(FarmAdapter(farm)))
        .add_service(pb::worker_link_server::WorkerLinkServer::new(LinkAdapter(
            link,
        )))
        .into_axum_router();
    let app = axum::Router::new().fallback(move |r: axum::extract::Request| {
        dispatch(r, grpc.clone(), rest.clone(), recorder.clone())
    });
    tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        // A request in flight keeps its connection from counting as idle.
        .layer(crate::inflight::InFlightLayer)
        .add_routes(tonic::service::Routes::from(app))
        .serve_with_incoming_shutdown(crate::conn::incoming(listener, limits, tls), shutdown)
        .await
}

/// Sends a gRPC request to the services, any other to `rest`.
/// The client API's gRPC calls have their latency recorded by method (the
/// worker link's streams last as long as the link, so they are not).
async fn dispatch(
    mut r: axum::extract::Request,
    grpc: axum::Router,
    rest: axum::Router,
    recorder: Option<std::sync::Arc<kiln_api::metrics::Recorder>>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let is_grpc = r
        .headers()
        .get(tonic::codegen::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let res = if is_grpc {
        let timed = recorder
            .filter(|_| r.uri().path().starts_with("/kiln.v1.Farm/"))
            .map(|rec| (rec, r.uri().path().to_owned(), std::time::Instant::now()));
        let res = grpc.oneshot(r).await;
        if let Some((rec, path, t)) = timed {
            rec.api("grpc", "POST", &path, t.elapsed());
        }
        res
    } else {
        let from = r
            .extensions()
            .get::<crate::conn::ConnInfo>()
            .and_then(|i| i.remote);
        if let Some(from) = from {
            r.extensions_mut().insert(from);
        }
        rest.oneshot(r).await
    };
    match res {
        Ok(res) => res,
        Err(never) => match never {},
    }
}
