//! Worker connections: each gets a session id, its log chunks go straight
//! to the log store, everything else goes to the applier in order.

use crate::applier::Request;
use crate::logs::LogStore;
use futures::StreamExt;
use kiln_core::farm::WorkerEvent;
use kiln_core::link::WorkerMsg;
use kiln_proto::server::{ServerStream, WorkerLinkApi, WorkerStream};
use kiln_proto::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

pub struct Link {
    pub(crate) tx: mpsc::UnboundedSender<Request>,
    pub(crate) logs: Arc<LogStore>,
    pub(crate) next_session: AtomicU64,
    /// Where a failure of the data directory goes: it stops the server.
    pub(crate) fatal: mpsc::UnboundedSender<String>,
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

#[tonic::async_trait]
impl WorkerLinkApi for Link {
    async fn connect(&self, mut incoming: WorkerStream) -> Result<ServerStream> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        self.tx
            .send(Request::Attach(session, out_tx))
            .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let fatal = self.fatal.clone();
        tokio::spawn(async move {
            while let Some(msg) = incoming.next().await {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(session, "worker connection ended: {e}");
                        break;
                    }
                };
                if let Err(e) = forward(&logs, &tx, session, msg).await {
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
        Ok(Box::pin(UnboundedReceiverStream::new(out_rx)))
    }
}

/// Log bytes are written before any later message of the connection is
/// handled, so by the time a frame's end reaches the applier its whole log
/// is on disk, synced.
async fn forward(
    logs: &Arc<LogStore>,
    tx: &mpsc::UnboundedSender<Request>,
    session: u64,
    msg: WorkerMsg,
) -> std::io::Result<()> {
    match &msg {
        // A write lands in the page cache: quick enough to do here.
        WorkerMsg::Log {
            attempt,
            offset,
            data,
        } => return logs.write(*attempt, *offset, data),
        WorkerMsg::Ended(e) => {
            let (logs, attempt, size) = (logs.clone(), e.attempt, e.log_size);
            tokio::task::spawn_blocking(move || logs.finish(attempt, size))
                .await
                .map_err(std::io::Error::other)??;
        }
        WorkerMsg::Register { .. } | WorkerMsg::Heartbeat { .. } | WorkerMsg::Goodbye => {}
    }
    let _ = tx.send(Request::Worker(WorkerEvent::Message { session, msg }));
    Ok(())
}
