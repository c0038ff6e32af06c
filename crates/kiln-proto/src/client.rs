//! The client side of the wire: a typed client for the farm API, and the
//! worker's end of the link.

use crate::convert::{
    audit_record, event, events_request, frame_info, history_page, history_request, host_info,
    identity_done, job_detail, job_summary, logged_in, server_msg, structure_view, token_info,
    user_info, whoami,
};
use crate::convert::{create_webhook_request, delivery, job_query_request, webhook_info};

/// Jobs one `ListJobs` answer holds when the client walks every job.
pub const JOB_PAGE: u32 = 1000;
use crate::pb;
use crate::pb::farm_client::FarmClient;
use crate::{Error, Result};
use futures::{Stream, StreamExt};
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::views::*;
use kiln_core::farm::Admin;
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::view::*;
use kiln_core::webhook::{Delivery, DeliveryQuery, NewWebhook, WebhookCreated, WebhookInfo};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Normalises `host:port` or `http(s)://host:port` to a URL tonic accepts:
/// without a scheme, plaintext on loopback, else TLS.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        let host = url.rsplit_once(':').map_or(url, |(h, _)| h);
        let scheme = if crate::tls::is_loopback(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{url}")
    }
}

fn endpoint(url: &str) -> Result<Endpoint> {
    let url = normalize_url(url);
    let e = Endpoint::from_shared(url.clone())
        .map_err(|e| {
            Error::Invalid(format!(
                "{url:?} is not a server address ({e}): write it like https://farm:7676"
            ))
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    let uri = e.uri().clone();
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => {
            let port = uri.port_u16().unwrap_or(443);
            e.tls_config(crate::tls::client_config(host, port)?)
                .map_err(|e| Error::Invalid(format!("TLS for {url}: {e}")))
        }
        Some("http") if crate::tls::is_loopback(host) => Ok(e),
        Some("http") => {
            let port = uri.port_u16().unwrap_or(80);
            Err(Error::Invalid(format!(
                "{url}: plaintext is only for loopback; use https://{host}:{port}"
            )))
        }
        _ => Err(Error::Invalid(format!(
            "{url:?} is not a server address: write it like https://farm:7676"
        ))),
    }
}

/// Checks what can be checked of `url` before connecting: its form, that
/// plaintext goes to loopback only, and the CA file to trust.
pub fn check_url(url: &str) -> Result<()> {
    endpoint(url).map(drop)
}

async fn channel(url: &str) -> Result<Channel> {
    let endpoint = endpoint(url)?;
    endpoint.connect().await.map_err(|e| {
        let url = normalize_url(url);
        if let Some(untrusted) = crate::tls::untrusted(&url, &e) {
            return untrusted;
        }
        Error::Unreached(format!(
            "cannot reach the server at {url} ({e}): is `kiln server` (or `kiln up`) running? \
             Point --server or KILN_SERVER at it (https:// for `kiln server`, http:// for `kiln up`)"
        ))
    })
}

/// Puts the caller's token on every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// A token that cannot travel in a header is refused here, before
    /// anything is sent.
    pub fn new(token: Option<&str>) -> Result<Bearer> {
        token
            .map(|t| {
                format!("Bearer {}", t.trim()).parse().map_err(|_| {
                    Error::Invalid(
                        "the token holds characters a token never has: copy it again (it reads kiln_api_…)"
                            .into(),
                    )
                })
            })
            .transpose()
            .map(Bearer)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A connection to a Kiln server's farm API.
#[derive(Clone)]
pub struct Client {
    inner: FarmClient<InterceptedService<Channel, Bearer>>,
}

impl Client {
    /// Connects without a credential: only [`Client::login`] works so.
    pub async fn connect(url: &str) -> Result<Client> {
        Client::connect_as(url, None).await
    }

    /// Connects, presenting `token` (`kiln_api_…`) on every call.
    pub async fn connect_as(url: &str, token: Option<&str>) -> Result<Client> {
        let bearer = Bearer::new(token)?;
        let inner = FarmClient::with_interceptor(channel(url).await?, bearer)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(Client { inner })
    }

    pub async fn whoami(&self) -> Result<WhoAmI> {
        let r = self.inner.clone().who_am_i(pb::WhoAmIRequest {}).await?;
        whoami(r.into_inner())
    }

    /// Signs in with a password; returns a session token.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        token_name: Option<&str>,
    ) -> Result<LoggedIn> {
        let r = self
            .inner
            .clone()
            .login(pb::LoginRequest {
                user: user.to_string(),
                password: password.to_string(),
                token_name: token_name.unwrap_or_default().to_string(),
            })
            .await?;
        logged_in(r.into_inner())
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        let r = self
            .inner
            .clone()
            .list_users(pb::ListUsersRequest {})
            .await?
            .into_inner();
        r.users.into_iter().map(user_info).collect()
    }

    pub async fn tokens(&self, all: bool) -> Result<Vec<TokenInfo>> {
        let r = self
            .inner
            .clone()
            .list_tokens(pb::ListTokensRequest { all })
            .await?
            .into_inner();
        Ok(r.tokens.into_iter().map(token_info).collect())
    }

    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let r = self
            .inner
            .clone()
            .list_audit(pb::ListAuditRequest {
                user: q.who.clone().unwrap_or_default(),
                since: q.since.unwrap_or(0),
                limit: q.limit,
            })
            .await?
            .into_inner();
        Ok(r.records.into_iter().map(audit_record).collect())
    }

    pub async fn webhooks(&self) -> Result<Vec<WebhookInfo>> {
        let r = self
            .inner
            .clone()
            .list_webhooks(pb::ListWebhooksRequest {})
            .await?
            .into_inner();
        r.webhooks.into_iter().map(webhook_info).collect()
    }

    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<WebhookCreated> {
        let r = self
            .inner
            .clone()
            .create_webhook(create_webhook_request(w))
            .await?
            .into_inner();
        let webhook = r
            .webhook
            .ok_or_else(|| Error::Malformed("a created webhook without its record".into()))?;
        Ok(WebhookCreated {
            webhook: webhook_info(webhook)?,
            secret: r.secret,
        })
    }

    pub async fn delete_webhook(&self, id: i64) -> Result<WebhookInfo> {
        let r = self
            .inner
            .clone()
            .delete_webhook(pb::DeleteWebhookRequest { id })
            .await?
            .into_inner();
        webhook_info(r)
    }

    pub async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let r = self
            .inner
            .clone()
            .list_deliveries(pb::ListDeliveriesRequest {
                webhook: q.webhook.unwrap_or(0),
                failed: q.failed,
                limit: q.limit,
            })
            .await?
            .into_inner();
        r.deliveries.into_iter().map(delivery).collect()
    }

    /// Changes users, grants, tokens or host credentials, once durable.
    pub async fn identity(&self, cmd: IdentityCmd) -> Result<IdentityDone> {
        let r = self
            .inner
            .clone()
            .identity(pb::IdentityRequest::from(cmd))
            .await?;
        Ok(identity_done(r.into_inner()))
    }

    /// Submits a spec. With a `key`, sending the same submit again (after
    /// an [`Error::Unavailable`], whose outcome is unknown) is safe: the
    /// server returns the job the first one made, if it made one.
    pub async fn submit(
        &self,
        spec: String,
        user: String,
        base_dir: Option<String>,
        key: Option<String>,
    ) -> Result<Submitted> {
        self.submit_with(spec, user, base_dir, key, BTreeMap::new())
            .await
    }

    /// [`Client::submit`] with an OpenJD template's parameter values (and
    /// Kiln's `kiln.*` settings; see docs/openjd.md).
    pub async fn submit_with(
        &self,
        spec: String,
        user: String,
        base_dir: Option<String>,
        key: Option<String>,
        params: BTreeMap<String, String>,
    ) -> Result<Submitted> {
        let r = self
            .inner
            .clone()
            .submit(pb::SubmitRequest {
                spec: spec.into_bytes(),
                user,
                base_dir: base_dir.unwrap_or_default(),
                submit_key: key.unwrap_or_default(),
                params: params.into_iter().collect(),
            })
            .await?
            .into_inner();
        Ok(Submitted {
            id: r.job_id,
            name: r.name,
            frames: r.frames,
        })
    }

    /// Every job (`all`: finished and killed ones too), read a page of
    /// [`JOB_PAGE`] at a time so no answer grows with the farm.
    pub async fn list_jobs(&self, all: bool) -> Result<Vec<JobSummary>> {
        let q = JobQuery {
            limit: JOB_PAGE,
            ..JobQuery::every(all)
        };
        walk(
            |after| {
                let q = JobQuery { after, ..q.clone() };
                async move { self.jobs_page(&q).await }
            },
            |j| j.id,
        )
        .await
    }

    /// One page of the jobs `q` matches, by id.
    pub async fn jobs_page(&self, q: &JobQuery) -> Result<Vec<JobSummary>> {
        let r = self
            .inner
            .clone()
            .list_jobs(job_query_request(q))
            .await?
            .into_inner();
        r.jobs.into_iter().map(job_summary).collect()
    }

    pub async fn job(&self, job: &str) -> Result<JobDetail> {
        let r = self
            .inner
            .clone()
            .get_job(pb::JobRef {
                job: job.to_string(),
            })
            .await?;
        job_detail(r.into_inner())
    }

    pub async fn frames(
        &self,
        job: &str,
        layer: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<FrameInfo>> {
        let r = self
            .inner
            .clone()
            .list_frames(pb::ListFramesRequest {
                job: job.to_string(),
                layer: layer.unwrap_or_default().to_string(),
                state: state.unwrap_or_default().to_string(),
            })
            .await?
            .into_inner();
        r.frames.into_iter().map(frame_info).collect()
    }

    pub async fn read_log(&self, q: &LogQuery) -> Result<LogSlice> {
        let r = self
            .inner
            .clone()
            .read_log(pb::ReadLogRequest {
                job: q.job.clone(),
                frame: q.frame.clone(),
                attempt: q.attempt.unwrap_or(0),
                offset: q.offset,
                max_bytes: q.max_bytes,
            })
            .await?
            .into_inner();
        Ok(LogSlice {
            data: r.data,
            next_offset: r.next_offset,
            complete: r.complete,
            attempt_id: r.attempt_id,
            attempt_number: r.attempt_number,
            frame_state: r.frame_state,
        })
    }

    pub async fn grep(&self, q: &GrepQuery) -> Result<GrepResult> {
        let r = self
            .inner
            .clone()
            .grep(pb::GrepRequest {
                job: q.job.clone(),
                pattern: q.pattern.clone(),
                layer: q.layer.clone().unwrap_or_default(),
                frame: q.frame.clone().unwrap_or_default(),
                ignore_case: q.ignore_case,
                max_lines: q.max_lines,
            })
            .await?
            .into_inner();
        Ok(GrepResult {
            lines: r
                .lines
                .into_iter()
                .map(|l| GrepLine {
                    frame: l.frame,
                    attempt: l.attempt,
                    line_number: l.line_number,
                    text: l.text,
                })
                .collect(),
            logs: r.logs,
            truncated: r.truncated,
        })
    }

    /// The farm's events from `q` on, as the server commits them, and the
    /// number the stream starts after (see [`crate::EVENTS_FROM`]); the
    /// stream ends when the server stops or the connection drops.
    pub async fn events(
        &self,
        q: &kiln_core::event::EventQuery,
    ) -> Result<(
        Option<u64>,
        impl Stream<Item = Result<kiln_core::event::Event>>,
    )> {
        let r = self.inner.clone().events(events_request(q)).await?;
        let from = r
            .metadata()
            .get(crate::EVENTS_FROM)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let s = r.into_inner();
        Ok((from, s.map(|r| r.map_err(Error::from).and_then(event))))
    }

    pub async fn history(&self, q: &HistoryQuery) -> Result<HistoryPage> {
        let r = self
            .inner
            .clone()
            .history(history_request(q))
            .await?
            .into_inner();
        history_page(r)
    }

    pub async fn act(&self, q: ActQuery) -> Result<(u32, String)> {
        let r = self
            .inner
            .clone()
            .act(pb::ActRequest {
                action: q.action,
                job: q.job,
                targets: q.targets,
                state: q.state.unwrap_or_default(),
                user: q.user,
            })
            .await?
            .into_inner();
        Ok((r.frames, r.message))
    }

    /// Every host, asked for [`JOB_PAGE`] at a time so no answer grows
    /// with the farm.
    pub async fn hosts(&self) -> Result<Vec<HostInfo>> {
        walk(
            |after| async move {
                let q = HostQuery {
                    after,
                    limit: JOB_PAGE,
                    ..HostQuery::default()
                };
                self.hosts_page(&q).await
            },
            |h| h.id,
        )
        .await
    }

    /// One page of the hosts, by id.
    pub async fn hosts_page(&self, q: &HostQuery) -> Result<Vec<HostInfo>> {
        let r = self
            .inner
            .clone()
            .list_hosts(pb::ListHostsRequest {
                after: q.after.unwrap_or(0),
                limit: q.limit,
            })
            .await?
            .into_inner();
        r.hosts.into_iter().map(host_info).collect()
    }

    pub async fn set_host_lock(&self, host: &str, locked: bool) -> Result<HostInfo> {
        let r = self
            .inner
            .clone()
            .set_host_lock(pb::SetHostLockRequest {
                host: host.to_string(),
                locked,
            })
            .await?;
        host_info(r.into_inner())
    }

    /// Applies a wrangler's change; returns the line saying what changed,
    /// once it is durable.
    pub async fn admin(&self, cmd: Admin) -> Result<String> {
        let r = self
            .inner
            .clone()
            .admin(pb::AdminRequest::from(cmd))
            .await?
            .into_inner();
        Ok(r.message)
    }

    /// Facilities, allocations, shows, subscriptions, limits and services.
    pub async fn structure(&self) -> Result<StructureView> {
        let r = self
            .inner
            .clone()
            .get_structure(pb::StructureRequest {})
            .await?
            .into_inner();
        Ok(structure_view(r))
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        let r = self
            .inner
            .clone()
            .server_info(pb::ServerInfoRequest {})
            .await?
            .into_inner();
        Ok(ServerInfo {
            version: r.version,
            data_dir: r.data_dir,
            jobs: r.jobs,
            hosts: r.hosts,
        })
    }
}

/// Who a worker link is for: the host's name and its credential
/// (`kiln_host_…`, from [`join`]).
#[derive(Clone, Debug)]
pub struct HostAuth {
    pub host: String,
    pub credential: String,
}

/// Exchanges a join token for `host`'s own credential.
pub async fn join(url: &str, token: &str, host: &str) -> Result<String> {
    let mut client = pb::worker_link_client::WorkerLinkClient::new(channel(url).await?);
    let r = client
        .join(pb::JoinRequest {
            token: token.trim().to_string(),
            host: host.to_string(),
        })
        .await?;
    Ok(r.into_inner().credential)
}

/// Opens a worker link: `outgoing` feeds the server, the returned stream
/// yields what the server sends. The stream ends when the connection does.
pub async fn connect_worker(
    url: &str,
    auth: &HostAuth,
    outgoing: impl Stream<Item = WorkerMsg> + Send + 'static,
) -> Result<impl Stream<Item = Result<ServerMsg>>> {
    attach_worker(&LinkChannel(channel(url).await?), auth, outgoing).await
}

/// One connection to a server that many worker links share, each link an
/// HTTP/2 stream on it: a simulated fleet needs thousands of links, not
/// thousands of sockets.
#[derive(Clone)]
pub struct LinkChannel(Channel);

impl LinkChannel {
    /// Connects on first use, and again on the next use after a failure.
    pub fn lazy(url: &str) -> Result<LinkChannel> {
        Ok(LinkChannel(endpoint(url)?.connect_lazy()))
    }
}

/// [`connect_worker`] over a shared connection.
pub async fn attach_worker(
    channel: &LinkChannel,
    auth: &HostAuth,
    outgoing: impl Stream<Item = WorkerMsg> + Send + 'static,
) -> Result<impl Stream<Item = Result<ServerMsg>>> {
    let mut client = pb::worker_link_client::WorkerLinkClient::new(channel.0.clone());
    let bad = |what: &str| {
        Error::Invalid(format!(
            "the host's {what} cannot travel in a header; check the worker's --name and its credential file"
        ))
    };
    let mut r = tonic::Request::new(outgoing.map(pb::WorkerMessage::from));
    let bearer: MetadataValue<Ascii> = format!("Bearer {}", auth.credential.trim())
        .parse()
        .map_err(|_| bad("credential"))?;
    r.metadata_mut().insert("authorization", bearer);
    r.metadata_mut().insert(
        crate::server::HOST_HEADER,
        auth.host.parse().map_err(|_| bad("name"))?,
    );
    let incoming = client.attach(r).await?.into_inner();
    Ok(incoming.map(|m| match m {
        Ok(m) => server_msg(m),
        Err(s) => Err(Error::from(s)),
    }))
}

/// Reads a list a page of [`JOB_PAGE`] at a time, each after the last id
/// of the one before. A server older than paging ignores `after` and the
/// limit and answers everything at once: a page that does not move on
/// from the last one ends the walk.
async fn walk<T, F, Fut>(mut page: F, id: impl Fn(&T) -> i64) -> Result<Vec<T>>
where
    F: FnMut(Option<i64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let p = page(after).await?;
        let moved = p.first().is_some_and(|t| after.is_none_or(|a| id(t) > a));
        if !moved {
            return Ok(all);
        }
        let full = p.len() == JOB_PAGE as usize;
        after = p.last().map(&id);
        all.extend(p);
        if !full {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `ids` after `after`, as a server that pages answers them.
    fn paged(ids: &[i64], after: Option<i64>) -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|&i| after.is_none_or(|a| i > a))
            .take(JOB_PAGE as usize)
            .collect()
    }

    #[tokio::test]
    async fn a_walk_reads_every_page_once_and_stops_at_a_server_that_does_not_page() {
        let ids: Vec<i64> = (1..=2500).collect();
        let mut asked = 0;
        let all = walk(
            |after| {
                asked += 1;
                let p = paged(&ids, after);
                async move { Ok(p) }
            },
            |&i| i,
        )
        .await
        .unwrap();
        assert_eq!((all, asked), (ids.clone(), 3));
        // Exactly a page's worth: one more ask finds nothing.
        let ids: Vec<i64> = (1..=i64::from(JOB_PAGE)).collect();
        let all = walk(|after| std::future::ready(Ok(paged(&ids, after))), |&i| i).await;
        assert_eq!(all.unwrap(), ids);
        // An older server ignores `after` and answers everything each time.
        let ids: Vec<i64> = (1..=1500).collect();
        let all = walk(|_| std::future::ready(Ok(ids.clone())), |&i| i).await;
        assert_eq!(all.unwrap(), ids);
    }
}
