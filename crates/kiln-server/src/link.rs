//! Worker connections: each is authenticated as one enrolled host, gets a
//! session id, writes log chunks straight to the log store (for its own
//! attempts only), and sends everything else to the applier in order.

use crate::applier::{AuditDraft, JoinAsk, Request};
use crate::auth::edge::Gate;
use crate::auth::secret::{self, Kind};
use crate::log_writer::LogWriter;
use futures::StreamExt;
use kiln_api::{Error, Result};
use kiln_api::{ServerStream, WorkerLinkApi, WorkerStream};
use kiln_core::auth::{authorize, Action as A, Credentials, Target};
use kiln_core::farm::WorkerEvent;
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::model::AttemptId;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;

pub struct Link {
    pub(crate) tx: mpsc::UnboundedSender<Request>,
    pub(crate) logs: LogWriter,
    pub(crate) next_session: AtomicU64,
    /// Where a failure of the data directory goes: it stops the server.
    pub(crate) fatal: mpsc::UnboundedSender<String>,
    pub(crate) gate: Gate,
}

/// The attempts the server gave one connection: launched on it, or
/// confirmed as current in its `Registered`. Its log chunks and log ends
/// may only touch these.
type Owned = Arc<Mutex<HashSet<AttemptId>>>;

impl Link {
    fn refuse(&self, c: &Credentials, host: &str, why: &Error) {
        tracing::warn!(from = %c.from_text(), host, "refused a worker link: {why}");
        let _ = self.tx.send(Request::Audit(AuditDraft {
            who: format!("host {host}"),
            from: c.from_text(),
            action: "attach".into(),
            target: format!("host {host}"),
            outcome: format!("denied: {why}"),
        }));
    }
}

/// Whether an error writing a log is the data directory's (full, read-only,
/// failing, forbidden), not the worker's.
fn disk_failed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull | ReadOnlyFilesystem | PermissionDenied | QuotaExceeded
    ) || e.raw_os_error() == Some(libc::EIO)
}

#[kiln_api::async_trait]
impl WorkerLinkApi for Link {
    async fn connect(
        &self,
        who: Credentials,
        host: String,
        mut incoming: WorkerStream,
    ) -> Result<ServerStream> {
        let principal = self
            .gate
            .worker(&who, &host)
            .and_then(|p| {
                authorize(&p, A::AttachHost, Target::Host(&host))
                    .into_result()
                    .map_err(Error::Forbidden)?;
                Ok(p)
            })
            .inspect_err(|e| self.refuse(&who, &host, e))?;
        drop(principal);
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        self.tx
            .send(Request::Attach(session, host.clone(), out_tx))
            .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let fatal = self.fatal.clone();
        let owned: Owned = Owned::default();
        let mine = owned.clone();
        tokio::spawn(async move {
            let mut registered = false;
            while let Some(msg) = incoming.next().await {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(session, "worker connection ended: {e}");
                        break;
                    }
                };
                // The name a host registers as is the one its credential
                // is bound to; the first message of a link says it.
                match &msg {
                    WorkerMsg::Register { host: report, .. } if report.name != host => {
                        tracing::warn!(
                            session,
                            "dropping a worker link: its credential is for host {host} but it registers as {:?}",
                            report.name
                        );
                        let _ = tx.send(Request::Audit(AuditDraft {
                            who: format!("host {host}"),
                            from: String::new(),
                            action: "attach".into(),
                            target: format!("host {}", report.name),
                            outcome: "denied: registered under another host's name".into(),
                        }));
                        break;
                    }
                    WorkerMsg::Register { .. } => registered = true,
                    _ if !registered => {
                        tracing::warn!(
                            session,
                            "dropping a worker link that spoke before registering"
                        );
                        break;
                    }
                    _ => {}
                }
                if let Err(e) = forward(&logs, &tx, session, &mine, msg).await {
                    if disk_failed(&e) {
                        // Every worker would hit it again on reconnect: stop.
                        let _ = fatal.send(e.to_string());
                    } else {
                        tracing::warn!(session, "dropping worker connection: {e}");
                    }
                    break;
                }
            }
            let _ = tx.send(Request::Worker(WorkerEvent::Disconnected { session }));
        });
        // Noted as each message leaves, before the worker can answer it.
        let out = UnboundedReceiverStream::new(out_rx).inspect(move |m| {
            let mut owned = owned.lock().expect("owned lock");
            match m {
                ServerMsg::Launch(l) => {
                    owned.insert(l.attempt);
                }
                ServerMsg::Registered { log_sizes, .. } => owned.extend(log_sizes.keys()),
                ServerMsg::Acked(done) => {
                    for a in done {
                        owned.remove(a);
                    }
                }
                _ => {}
            }
        });
        Ok(Box::pin(out))
    }

    async fn join(&self, who: Credentials, token: String, host: String) -> Result<String> {
        let p = secret::parse(&token)
            .filter(|p| p.kind == Kind::Join)
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "that is not a worker join token (they read kiln_join_…): make one with `kiln token create --worker`"
                        .into(),
                )
            })?;
        let credential = secret::new_token(Kind::Host)
            .map_err(|e| Error::Internal(format!("no random source: {e}")))?;
        let ask = JoinAsk {
            token_id: p.id,
            token_hash: p.hash,
            host,
            from: who.from.map(|a| a.ip()),
            from_text: who.from_text(),
            credential,
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Join(ask, tx))
            .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the server stopped before answering".into()))?
            .map_err(Error::from)
    }
}

/// The most samples of an attempt's usage kept (the worker sends at most
/// 121).
const MAX_USAGE_POINTS: usize = 256;

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cap(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// The largest thumbnail kept (a 256-pixel JPEG is some 10 to 30 KB).
const MAX_THUMBNAIL: usize = 256 << 10;

/// Log bytes are queued to the log thread in the connection's order, and a
/// frame's end waits there for them, so by the time it reaches the applier
/// its whole log is on disk, synced.
async fn forward(
    logs: &LogWriter,
    tx: &mpsc::UnboundedSender<Request>,
    session: u64,
    owned: &Owned,
    msg: WorkerMsg,
) -> std::io::Result<()> {
    let ours = |a: &AttemptId| owned.lock().expect("owned lock").contains(a);
    let mut msg = msg;
    if let WorkerMsg::Ended(e) = &mut msg {
        // Only as many thumbnails as the layer could have asked for, and
        // none of more than a preview's size: a worker's word is not trusted
        // with the server's disk.
        e.outputs.truncate(kiln_core::output::MAX_CHECKED);
        e.usage.truncate(MAX_USAGE_POINTS);
        for o in &mut e.outputs {
            cap(&mut o.check.path, 1024);
            if let Some(d) = &mut o.check.detail {
                cap(d, 256);
            }
            if o.thumbnail
                .as_ref()
                .is_some_and(|t| t.len() > MAX_THUMBNAIL)
            {
                o.thumbnail = None;
            }
            o.check.thumbnail = o.thumbnail.is_some();
        }
    }
    let mut msg = match msg {
        // A write lands in the page cache, on the log thread.
        WorkerMsg::Log {
            attempt,
            offset,
            data,
        } if ours(&attempt) => return logs.write(attempt, offset, data).await,
        m => m,
    };
    match &mut msg {
        // Not this connection's attempt: its log is another host's.
        WorkerMsg::Log { attempt, .. } => {
            tracing::warn!(
                session,
                ?attempt,
                "dropped log bytes for an attempt this link was not given"
            );
            return Ok(());
        }
        // The farm ignores an end from a host the attempt is not on (and
        // acknowledges it, so the worker lets go); its log is left alone.
        WorkerMsg::Ended(e) if !ours(&e.attempt) => {}
        WorkerMsg::Ended(e) => {
            logs.finish(e.attempt, e.log_size).await?;
            // Previews and usage are extras: failing to keep them must not
            // hold up the frame's end (nor stop the server, as a log that
            // cannot be written does).
            if let Err(err) = logs.save_extras(e).await {
                tracing::warn!(attempt = ?e.attempt, "cannot keep a frame's previews or usage: {err}");
                for o in &mut e.outputs {
                    o.check.thumbnail = false;
                }
            }
        }
        WorkerMsg::Register { .. } | WorkerMsg::Heartbeat { .. } | WorkerMsg::Goodbye => {}
    }
    let _ = tx.send(Request::Worker(WorkerEvent::Message { session, msg }));
    Ok(())
}
