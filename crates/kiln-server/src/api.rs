//! The client API: validates what it can on its own task, then asks the
//! applier, whose answers come only after the change is durable.

use crate::applier::Request;
use crate::logs::LogStore;
use kiln_core::farm::{Action, Admin};
use kiln_core::spec::{self, Format, SubmitContext};
use kiln_core::view::*;
use kiln_proto::server::FarmApi;
use kiln_proto::{Error, Result};
use kiln_store::Store;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Largest log slice one call returns.
const MAX_LOG_READ: u32 = 1 << 20;

pub struct Api<S: Store> {
    pub(crate) tx: mpsc::UnboundedSender<Request>,
    pub(crate) store: Arc<S>,
    pub(crate) logs: Arc<LogStore>,
    pub(crate) data_dir: String,
}

impl<S: Store> Api<S> {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<std::result::Result<T, kiln_core::Error>>) -> Request,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the server stopped before answering".into()))?
            .map_err(Error::from)
    }
}

/// Longest submit key accepted: room for any UUID or hash a client uses.
const MAX_SUBMIT_KEY: usize = 128;

fn check_key(k: &str) -> Result<()> {
    if k.len() > MAX_SUBMIT_KEY || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Invalid(format!(
            "submit_key: give 1-{MAX_SUBMIT_KEY} printable ASCII characters without spaces \
             (`kiln submit` makes 32 random hex digits)"
        )));
    }
    Ok(())
}

fn parse_state(s: Option<String>) -> Result<Option<DisplayState>> {
    s.map(|s| {
        DisplayState::parse(&s).ok_or_else(|| {
            Error::Invalid(format!(
                "state {s:?} is not a frame state: use one of waiting, depend, running, succeeded, dead, eaten"
            ))
        })
    })
    .transpose()
}

#[tonic::async_trait]
impl<S: Store> FarmApi for Api<S> {
    async fn submit(
        &self,
        text: String,
        user: String,
        base_dir: Option<String>,
        key: Option<String>,
    ) -> Result<Submitted> {
        if let Some(k) = &key {
            check_key(k)?;
        }
        let ctx = SubmitContext {
            user: if user.is_empty() {
                "unknown".into()
            } else {
                user
            },
            base_dir,
            ..SubmitContext::default()
        };
        // Validation needs no farm state, so it runs here, off the applier,
        // and on a blocking thread: a big spec takes milliseconds of CPU
        // that would otherwise stall every connection on this runtime thread.
        let mut job = tokio::task::spawn_blocking(move || {
            spec::parse_and_validate(&text, Format::Auto, &ctx)
        })
        .await
        .map_err(|e| Error::Internal(format!("reading the spec failed: {e}")))??;
        job.submit_key = key;
        self.ask(|tx| Request::Submit(job, tx)).await
    }

    async fn list_jobs(&self, all: bool) -> Result<Vec<JobSummary>> {
        self.ask(|tx| Request::ListJobs(all, tx)).await
    }

    async fn job(&self, key: String) -> Result<JobDetail> {
        self.ask(|tx| Request::Job(key, tx)).await
    }

    async fn frames(
        &self,
        job: String,
        layer: Option<String>,
        state: Option<String>,
    ) -> Result<Vec<FrameInfo>> {
        let state = parse_state(state)?;
        self.ask(|tx| Request::Frames(job, layer, state, tx)).await
    }

    async fn read_log(&self, q: LogQuery) -> Result<LogSlice> {
        let t = self
            .ask(|tx| Request::LogTarget(q.job.clone(), q.frame.clone(), tx))
            .await?;
        let Some((latest, latest_number)) = t.attempt else {
            // Not run yet: an empty slice with attempt number 0, so a client
            // can wait for it (`kiln log --follow`).
            return Ok(LogSlice {
                data: Vec::new(),
                next_offset: 0,
                complete: false,
                attempt_id: 0,
                attempt_number: 0,
                frame_state: t.state.to_string(),
            });
        };
        let (attempt, number, running) = match q.attempt {
            None => (latest, latest_number, t.running),
            Some(n) if n == latest_number => (latest, latest_number, t.running),
            Some(n) => {
                let all = self
                    .store
                    .attempts(t.frame)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let a = all.iter().find(|a| a.number == n).ok_or_else(|| {
                    Error::NotFound(format!(
                        "frame {} has no attempt {n}: it has run {} time(s)",
                        q.frame,
                        all.len()
                    ))
                })?;
                (a.id, n, a.outcome.is_none())
            }
        };
        let max = if q.max_bytes == 0 {
            MAX_LOG_READ
        } else {
            q.max_bytes.min(MAX_LOG_READ)
        };
        let data = self
            .logs
            .read(attempt, q.offset, max as usize)
            .map_err(|e| Error::Internal(format!("reading the log: {e}")))?;
        let next_offset = q.offset + data.len() as u64;
        let complete = !running && next_offset >= self.logs.size(attempt);
        Ok(LogSlice {
            data,
            next_offset,
            complete,
            attempt_id: attempt.0,
            attempt_number: number,
            frame_state: t.state.to_string(),
        })
    }

    async fn act(&self, q: ActQuery) -> Result<(u32, String)> {
        let action = Action::parse(&q.action).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown action {:?}: use kill, pause, resume, retry or eat",
                q.action
            ))
        })?;
        let state = parse_state(q.state)?;
        let n = self
            .ask(|tx| Request::Act(action, q.job.clone(), q.targets.clone(), state, q.user, tx))
            .await?;
        let what = if q.targets.is_empty() {
            format!("job {}", q.job)
        } else {
            format!("{} of job {}", q.targets.join(", "), q.job)
        };
        let message = match action {
            Action::Pause => format!("paused {what}"),
            Action::Resume => format!("resumed {what}"),
            Action::Kill if q.targets.is_empty() => {
                format!("killed {what} ({n} running frame(s) stopped)")
            }
            Action::Kill => format!("killed {n} frame(s) of {what}"),
            Action::Retry => format!("requeued {n} frame(s) of {what}"),
            Action::Eat => format!("ate {n} frame(s) of {what}"),
        };
        Ok((n, message))
    }

    async fn hosts(&self) -> Result<Vec<HostInfo>> {
        self.ask(Request::Hosts).await
    }

    async fn set_host_lock(&self, host: String, locked: bool) -> Result<HostInfo> {
        self.ask(|tx| Request::Lock(host, locked, tx)).await
    }

    async fn admin(&self, cmd: Admin) -> Result<String> {
        self.ask(|tx| Request::Admin(cmd, tx)).await
    }

    async fn structure(&self) -> Result<StructureView> {
        self.ask(Request::Structure).await
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Counts(tx))
            .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
        let (jobs, hosts) = rx
            .await
            .map_err(|_| Error::Unavailable("the server stopped".into()))?;
        Ok(ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: self.data_dir.clone(),
            jobs: jobs as u32,
            hosts: hosts as u32,
        })
    }
}
