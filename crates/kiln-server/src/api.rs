//! The client API: authenticates the caller at the [`Gate`], validates what
//! it can on its own task, then asks the applier, which authorizes the call
//! against the farm and answers only after the change is durable.

use crate::applier::{AuditDraft, Caller, IdentityAsk, LoginAsk, Request};
use crate::auth::edge::Gate;
use crate::auth::ldap::{self, LdapConfig, LdapError};
use crate::auth::secret::{self, Kind};
use crate::committed::Committed;
use crate::logs::LogStore;
use crate::now_ms;
use kiln_api::FarmApi;
use kiln_api::{Error, Result};
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::identity::Source;
use kiln_core::auth::views::*;
use kiln_core::auth::{authorize, Action as A, Credentials, Principal, Target};
use kiln_core::farm::{Action, Admin};
use kiln_core::spec::{self, Format, SubmitContext};
use kiln_core::view::*;
use kiln_core::webhook::{Delivery, DeliveryQuery, NewWebhook, WebhookCreated, WebhookInfo};
use kiln_store::Store;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// History rows a page holds by default, and at most.
const HISTORY_PAGE: u32 = 5_000;
const HISTORY_PAGE_MAX: u32 = 10_000;

/// Largest log slice one call returns.
const MAX_LOG_READ: u32 = 1 << 20;

pub struct Api<S: Store> {
    pub(crate) tx: mpsc::UnboundedSender<Request>,
    pub(crate) store: Arc<S>,
    pub(crate) logs: Arc<LogStore>,
    pub(crate) data_dir: String,
    pub(crate) gate: Gate,
    pub(crate) ldap: Option<Arc<LdapConfig>>,
    /// The farm as last committed: reads that need no frame records are
    /// answered from it, without waiting for the applier's step.
    pub(crate) committed: Committed,
    pub(crate) hub: Arc<crate::events::Hub>,
    /// Shared with the applier and every wire.
    pub(crate) recorder: Arc<kiln_api::metrics::Recorder>,
    /// `/metrics` and the autoscaling signal answer without a token.
    pub(crate) metrics_public: bool,
    pub(crate) webhooks: Arc<crate::webhooks::Webhooks<S>>,
    pub(crate) history: Arc<crate::history::FarmHistory>,
}

/// One per wire (gRPC, REST): all of them share the applier and stores.
impl<S: Store> Clone for Api<S> {
    fn clone(&self) -> Self {
        Api {
            tx: self.tx.clone(),
            store: self.store.clone(),
            logs: self.logs.clone(),
            data_dir: self.data_dir.clone(),
            gate: self.gate.clone(),
            ldap: self.ldap.clone(),
            committed: self.committed.clone(),
            hub: self.hub.clone(),
            recorder: self.recorder.clone(),
            metrics_public: self.metrics_public,
            webhooks: self.webhooks.clone(),
            history: self.history.clone(),
        }
    }
}

fn forbidden(d: kiln_core::auth::Decision<'_>) -> Result<()> {
    d.into_result().map_err(Error::Forbidden)
}

fn blocking_failed(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("hashing failed: {e}"))
}

async fn hash_password(password: String) -> Result<String> {
    if password.chars().count() < 8 {
        return Err(Error::Invalid("password: use at least 8 characters".into()));
    }
    tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(blocking_failed)?
        .map_err(Error::Internal)
}

fn new_token(kind: Kind) -> Result<secret::NewToken> {
    secret::new_token(kind).map_err(|e| Error::Internal(format!("no random source: {e}")))
}

impl<S: Store> Api<S> {
    /// The attempt a read names: the latest (`None`, or its number) or an
    /// earlier one by number, with its number and whether it runs.
    async fn pick_attempt(
        &self,
        t: &crate::applier::LogTarget,
        frame: &str,
        asked: Option<u32>,
        (latest, latest_number): (kiln_core::model::AttemptId, u32),
    ) -> Result<(kiln_core::model::AttemptId, u32, bool)> {
        match asked {
            None => Ok((latest, latest_number, t.running)),
            Some(n) if n == latest_number => Ok((latest, latest_number, t.running)),
            Some(n) => {
                let all = self
                    .store
                    .attempts(t.frame)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let a = all.iter().find(|a| a.number == n).ok_or_else(|| {
                    Error::NotFound(format!(
                        "frame {frame} has no attempt {n}: it has run {} time(s)",
                        all.len()
                    ))
                })?;
                Ok((a.id, n, a.outcome.is_none()))
            }
        }
    }

    /// The caller, authenticated, or the call ends here.
    fn caller(&self, c: &Credentials) -> Result<Caller> {
        Ok(Caller {
            who: self.gate.user(c, now_ms())?,
            from: c.from_text(),
        })
    }

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

#[kiln_api::async_trait]
impl<S: Store> FarmApi for Api<S> {
    async fn submit(
        &self,
        who: Credentials,
        text: String,
        run_as: String,
        base_dir: Option<String>,
        key: Option<String>,
        params: std::collections::BTreeMap<String, String>,
    ) -> Result<Submitted> {
        let caller = self.caller(&who)?;
        if let Some(k) = &key {
            check_key(k)?;
        }
        // Frames run as the caller unless the spec or the request names
        // someone else, which the applier checks (the impersonate right).
        let ctx = SubmitContext {
            user: if run_as.is_empty() {
                caller.who.name().to_string()
            } else {
                run_as
            },
            base_dir,
            ..SubmitContext::default()
        };
        // Validation needs no farm state, so it runs here, off the applier,
        // and on a blocking thread: a big spec takes milliseconds of CPU
        // that would otherwise stall every connection on this runtime thread.
        let mut job = tokio::task::spawn_blocking(move || {
            spec::parse_and_validate_with(&text, Format::Auto, &params, &ctx)
        })
        .await
        .map_err(|e| Error::Internal(format!("reading the spec failed: {e}")))??;
        job.submit_key = key;
        self.ask(|tx| Request::Submit(caller, job, tx)).await
    }

    async fn list_jobs(&self, who: Credentials, q: JobQuery) -> Result<Vec<JobSummary>> {
        let caller = self.caller(&who)?;
        Ok(self.committed.list_jobs(&caller.who, &q))
    }

    async fn job(&self, who: Credentials, key: String) -> Result<JobDetail> {
        let caller = self.caller(&who)?;
        Ok(self.committed.job(&caller.who, &key)?)
    }

    async fn frames(&self, who: Credentials, q: FrameQuery) -> Result<Vec<FrameInfo>> {
        let caller = self.caller(&who)?;
        let state = parse_state(q.state.clone())?;
        self.ask(|tx| Request::Frames(caller, q, state, tx)).await
    }

    async fn frame(&self, who: Credentials, id: i64) -> Result<FrameDetail> {
        let caller = self.caller(&who)?;
        self.ask(|tx| Request::Frame(caller, id, tx)).await
    }

    async fn running(&self, who: Credentials, q: RunningQuery) -> Result<Vec<RunningFrame>> {
        let caller = self.caller(&who)?;
        let quiet = q.quiet_ms;
        let mut frames = self.ask(|tx| Request::Running(caller, q, tx)).await?;
        // The applier knows when logs grew since this server started; the
        // attempts it saw no write of may have written before: their files
        // say, read off the async threads.
        if frames.iter().all(|r| r.last_output_at.is_some()) {
            return Ok(frames);
        }
        let logs = self.logs.clone();
        tokio::task::spawn_blocking(move || {
            for r in frames.iter_mut().filter(|r| r.last_output_at.is_none()) {
                r.last_output_at = logs.modified(kiln_core::model::AttemptId(r.attempt_id));
            }
            if let Some(q) = quiet {
                let before = now_ms().saturating_sub(i64::try_from(q).unwrap_or(i64::MAX));
                frames.retain(|r| {
                    r.last_output_at
                        .or(r.frame.started_at)
                        .is_some_and(|t| t < before)
                });
            }
            frames
        })
        .await
        .map_err(blocking_failed)
    }

    async fn attempts(&self, who: Credentials, id: i64) -> Result<Vec<AttemptInfo>> {
        // The frame first: it says whether the caller may read it, and
        // what its running attempt has used so far.
        let d = self.frame(who, id).await?;
        let all = self
            .store
            .attempts(kiln_core::model::FrameId(id))
            .await
            .map_err(|e| Error::Internal(format!("reading the attempts: {e}")))?;
        let now = now_ms();
        let mut v: Vec<AttemptInfo> = all
            .into_iter()
            .map(|a| {
                let live = a.outcome.is_none() && d.frame.attempt_id == Some(a.id.0);
                AttemptInfo {
                    attempt_id: a.id.0,
                    attempt: a.number,
                    host: a.host_name,
                    cores: a.cores,
                    memory_kb: a.memory_kb,
                    started_at: a.started_at,
                    ended_at: a.ended_at,
                    runtime_ms: a
                        .ended_at
                        .unwrap_or(now)
                        .saturating_sub(a.started_at)
                        .max(0),
                    max_rss_kb: if live {
                        d.frame.max_rss_kb
                    } else {
                        a.max_rss_kb
                    },
                    cpu_ms: if live { d.frame.cpu_ms } else { a.cpu_ms },
                    outcome: a.outcome,
                    exit_status: a.exit_status,
                    exit_signal: a.exit_signal,
                    reason: a.reason,
                }
            })
            .collect();
        v.sort_by_key(|a| (a.attempt, a.attempt_id));
        Ok(v)
    }

    async fn read_log(&self, who: Credentials, q: LogQuery) -> Result<LogSlice> {
        let caller = self.caller(&who)?;
        let t = self
            .ask(|tx| Request::LogTarget(caller, q.job.clone(), q.frame.clone(), tx))
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
        let (attempt, number, running) = self
            .pick_attempt(&t, &q.frame, q.attempt, (latest, latest_number))
            .await?;
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

    async fn thumbnail(&self, who: Credentials, q: ThumbnailQuery) -> Result<Vec<u8>> {
        let caller = self.caller(&who)?;
        let t = self
            .ask(|tx| Request::LogTarget(caller, q.job.clone(), q.frame.clone(), tx))
            .await?;
        let none = || {
            Error::NotFound(format!(
                "frame {} has no preview of output {}: the layer declares no such output, the \
                 frame has not finished, or its output could not be read (see the frame's outputs)",
                q.frame, q.output
            ))
        };
        let Some(latest) = t.attempt else {
            return Err(none());
        };
        let (attempt, _, _) = self.pick_attempt(&t, &q.frame, q.attempt, latest).await?;
        let logs = self.logs.clone();
        tokio::task::spawn_blocking(move || logs.thumbnail(attempt, q.output as usize))
            .await
            .map_err(|e| Error::Internal(format!("reading a preview failed: {e}")))?
            .map_err(|e| Error::Internal(format!("reading a preview: {e}")))?
            .ok_or_else(none)
    }

    async fn usage(&self, who: Credentials, q: UsageQuery) -> Result<FrameUsage> {
        let caller = self.caller(&who)?;
        let t = self
            .ask(|tx| Request::LogTarget(caller, q.job.clone(), q.frame.clone(), tx))
            .await?;
        let Some(latest) = t.attempt else {
            return Ok(FrameUsage {
                attempt: 0,
                running: false,
                samples: Vec::new(),
            });
        };
        let (attempt, number, running) = self.pick_attempt(&t, &q.frame, q.attempt, latest).await?;
        if let Some(live) = t.live.filter(|_| number == latest.1 && running) {
            return Ok(FrameUsage {
                attempt: number,
                running,
                samples: live,
            });
        }
        let logs = self.logs.clone();
        let samples = tokio::task::spawn_blocking(move || logs.usage(attempt))
            .await
            .map_err(|e| Error::Internal(format!("reading usage failed: {e}")))?
            .map_err(|e| Error::Internal(format!("reading usage: {e}")))?;
        Ok(FrameUsage {
            attempt: number,
            running,
            samples,
        })
    }

    async fn grep(&self, who: Credentials, q: GrepQuery) -> Result<GrepResult> {
        let caller = self.caller(&who)?;
        let re = crate::grep::pattern(&q)?;
        let targets = self
            .ask(|tx| {
                Request::LogTargets(caller, q.job.clone(), q.layer.clone(), q.frame.clone(), tx)
            })
            .await?;
        let logs = self.logs.clone();
        tokio::task::spawn_blocking(move || crate::grep::search(&logs, &targets, &re, q.max_lines))
            .await
            .map_err(|e| Error::Internal(format!("searching the logs failed: {e}")))?
            .map_err(|e| Error::Internal(format!("reading the logs: {e}")))
    }

    async fn history(&self, who: Credentials, mut q: HistoryQuery) -> Result<HistoryPage> {
        let caller = self.caller(&who)?;
        if let (Some(since), Some(until)) = (q.since, q.until) {
            if since >= until {
                return Err(Error::Invalid(
                    "since: it is not before until; give an earlier since or a later until".into(),
                ));
            }
        }
        let limit = match q.limit {
            0 => HISTORY_PAGE,
            n => n.min(HISTORY_PAGE_MAX),
        };
        // One more than the page, to know whether another follows.
        q.limit = limit + 1;
        let mut rows = self
            .store
            .history(&q)
            .await
            .map_err(|e| Error::Internal(format!("reading the history: {e}")))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|r| (r.ended_at, r.attempt_id)))
            .flatten();
        // The store knows no principal: each row is shown to those who may
        // read its job, as a listing is. The cursor still moves past the
        // rows left out.
        rows.retain(|r| {
            authorize(
                &caller.who,
                A::Read,
                Target::Job {
                    id: r.job_id,
                    owner: &r.user,
                    show: &r.show,
                },
            )
            .is_allowed()
        });
        Ok(HistoryPage { rows, next })
    }

    async fn act(&self, who: Credentials, q: ActQuery) -> Result<(u32, String)> {
        let caller = self.caller(&who)?;
        let action = Action::parse(&q.action).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown action {:?}: use kill, pause, resume, retry or eat",
                q.action
            ))
        })?;
        let state = parse_state(q.state)?;
        let n = self
            .ask(|tx| Request::Act(caller, action, q.job.clone(), q.targets.clone(), state, tx))
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

    async fn hosts(&self, who: Credentials, q: HostQuery) -> Result<Vec<HostInfo>> {
        let caller = self.caller(&who)?;
        Ok(self.committed.hosts(&caller.who, &q)?)
    }

    async fn set_host_lock(
        &self,
        who: Credentials,
        host: String,
        locked: bool,
    ) -> Result<HostInfo> {
        let caller = self.caller(&who)?;
        self.ask(|tx| Request::Lock(caller, host, locked, tx)).await
    }

    async fn admin(&self, who: Credentials, cmd: Admin) -> Result<String> {
        let caller = self.caller(&who)?;
        self.ask(|tx| Request::Admin(caller, cmd, tx)).await
    }

    async fn structure(&self, who: Credentials) -> Result<StructureView> {
        let caller = self.caller(&who)?;
        Ok(self.committed.structure(&caller.who)?)
    }

    async fn server_info(&self, who: Credentials) -> Result<ServerInfo> {
        let caller = self.caller(&who)?;
        forbidden(authorize(&caller.who, A::Read, Target::Farm))?;
        let (jobs, hosts) = self.committed.counts();
        Ok(ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: self.data_dir.clone(),
            jobs: jobs as u32,
            hosts: hosts as u32,
        })
    }

    async fn whoami(&self, who: Credentials) -> Result<WhoAmI> {
        let caller = self.caller(&who)?;
        let Principal::User { name, grants } = caller.who else {
            return Err(Error::Forbidden("a host's credential has no user".into()));
        };
        let source = self
            .gate
            .identity()
            .user(&name)
            .map_or(Source::Local, |u| u.source);
        Ok(WhoAmI {
            user: name,
            grants,
            source,
        })
    }

    async fn login(
        &self,
        who: Credentials,
        user: String,
        password: String,
        token_name: Option<String>,
    ) -> Result<LoggedIn> {
        let from = who.from_text();
        let wrong = || {
            Error::Unauthenticated(format!(
                "wrong user name or password for {user:?}; try again"
            ))
        };
        let refused = |outcome: &str| {
            let _ = self.tx.send(Request::Audit(AuditDraft {
                who: user.clone(),
                from: from.clone(),
                action: "login".into(),
                target: format!("user {user}"),
                outcome: format!("denied: {outcome}"),
            }));
        };
        let known = self.gate.identity().user(&user).cloned();
        // A local account signs in with its own password only; any other
        // name is the directory's, when there is one.
        let verified = match (known.as_ref(), &self.ldap) {
            (Some(u), _) if u.source == Source::Local => match u.password.clone() {
                Some(phc) => {
                    let pw = password.clone();
                    let ok =
                        tokio::task::spawn_blocking(move || secret::verify_password(&phc, &pw))
                            .await
                            .map_err(blocking_failed)?;
                    ok.then_some(None)
                }
                None => None,
            },
            (_, Some(cfg)) => match ldap::login(cfg, &user, &password).await {
                Ok(grants) => Some(Some(grants)),
                Err(LdapError::BadCredentials) => None,
                Err(e) => {
                    refused(&format!("the directory did not answer: {e}"));
                    return Err(Error::Unavailable(format!(
                        "cannot check the password with the directory: {e}"
                    )));
                }
            },
            (_, None) => None,
        };
        let Some(directory_grants) = verified else {
            refused("wrong user name or password");
            return Err(wrong());
        };
        let ask = LoginAsk {
            user,
            from,
            directory_grants,
            token_name: token_name.unwrap_or_else(|| "login".into()),
            token: new_token(Kind::Api)?,
        };
        self.ask(|tx| Request::Login(ask, tx)).await
    }

    async fn users(&self, who: Credentials) -> Result<Vec<UserInfo>> {
        let caller = self.caller(&who)?;
        forbidden(authorize(&caller.who, A::Users, Target::Farm))?;
        let id = self.gate.identity();
        Ok(id
            .users()
            .map(|u| UserInfo {
                name: u.name.clone(),
                source: u.source,
                disabled: u.disabled,
                grants: id.grants(&u.name).to_vec(),
                created_at: u.created_at,
                has_password: u.password.is_some(),
            })
            .collect())
    }

    async fn tokens(&self, who: Credentials, all: bool) -> Result<Vec<TokenInfo>> {
        use kiln_core::auth::identity::TokenKind;
        let caller = self.caller(&who)?;
        let action = if all {
            A::TokensForOthers
        } else {
            A::OwnTokens
        };
        forbidden(authorize(&caller.who, action, Target::Farm))?;
        let me = caller.who.name();
        let mut v: Vec<TokenInfo> = self
            .gate
            .identity()
            .tokens()
            .filter(|t| all || (t.user == me && !matches!(t.kind, TokenKind::Join(_))))
            .map(|t| TokenInfo {
                id: t.id.clone(),
                user: t.user.clone(),
                name: t.name.clone(),
                kind: match t.kind {
                    TokenKind::Api => "api",
                    TokenKind::Session => "session",
                    TokenKind::Join(_) => "join",
                }
                .into(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                join: match &t.kind {
                    TokenKind::Join(r) => Some(r.clone()),
                    _ => None,
                },
            })
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }

    async fn audit(&self, who: Credentials, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        let caller = self.caller(&who)?;
        forbidden(authorize(&caller.who, A::Audit, Target::Farm))?;
        self.store
            .audit(&q)
            .await
            .map_err(|e| Error::Internal(e.to_string()))
    }

    async fn events(
        &self,
        who: Credentials,
        q: kiln_core::event::EventQuery,
    ) -> Result<kiln_api::Following> {
        self.hub
            .follow(self.store.clone(), self.gate.clone(), who, q)
    }

    async fn identity(&self, who: Credentials, mut cmd: IdentityCmd) -> Result<IdentityDone> {
        let caller = self.caller(&who)?;
        let mut ask = IdentityAsk {
            cmd: cmd.clone(),
            password_hash: None,
            token: None,
        };
        match &mut cmd {
            IdentityCmd::CreateUser {
                password: Some(p), ..
            }
            | IdentityCmd::SetPassword { password: p, .. } => {
                ask.password_hash = Some(hash_password(std::mem::take(p)).await?);
            }
            IdentityCmd::CreateToken { join, .. } => {
                let kind = if join.is_some() {
                    Kind::Join
                } else {
                    Kind::Api
                };
                ask.token = Some(new_token(kind)?);
            }
            _ => {}
        }
        // The plaintext never reaches the applier, its audit or its log.
        ask.cmd = cmd;
        self.ask(|tx| Request::Identity(caller, ask, tx)).await
    }

    async fn metrics(&self, who: Credentials) -> Result<FarmMetrics> {
        // Served publicly (`--metrics-public`), a scraper need not carry a
        // token, and one it carries is not looked at.
        if !self.metrics_public {
            let caller = self.caller(&who)?;
            forbidden(authorize(&caller.who, A::Read, Target::Farm))?;
        }
        let mut m = self.committed.metrics();
        m.webhooks = self.webhooks.gauges();
        Ok(m)
    }

    async fn farm_history(&self, who: Credentials, since: Option<i64>) -> Result<Vec<FarmSample>> {
        let caller = self.caller(&who)?;
        forbidden(authorize(&caller.who, A::Read, Target::Farm))?;
        Ok(self.history.since(since))
    }

    async fn webhooks(&self, who: Credentials) -> Result<Vec<WebhookInfo>> {
        let caller = self.caller(&who)?;
        Ok(self.list_webhooks(&caller))
    }

    async fn create_webhook(&self, who: Credentials, w: NewWebhook) -> Result<WebhookCreated> {
        let caller = self.caller(&who)?;
        self.make_webhook(&caller, w).await
    }

    async fn delete_webhook(&self, who: Credentials, id: i64) -> Result<WebhookInfo> {
        let caller = self.caller(&who)?;
        self.drop_webhook(&caller, id).await
    }

    async fn deliveries(&self, who: Credentials, q: DeliveryQuery) -> Result<Vec<Delivery>> {
        let caller = self.caller(&who)?;
        self.webhook_deliveries(&caller, q).await
    }

    fn recorder(&self) -> Option<Arc<kiln_api::metrics::Recorder>> {
        Some(self.recorder.clone())
    }
}
