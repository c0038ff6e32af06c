//! The farm the matrix runs against, as its admin sees it: the caller's
//! request made, the farm's state snapshotted, the audit trail read.

use crate::prepare::{act, report, spec, Req, FRAME, HOST, LAYER};
use crate::table::{Call, J};
use kiln_core::auth::audit::AuditQuery;
use kiln_core::auth::views::IdentityCmd;
use kiln_core::farm::Admin;
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::view::{GrepQuery, HistoryQuery, LogQuery};
use kiln_proto::client::{self, Client, HostAuth};
use kiln_proto::Error;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// What a cell's call came to.
pub enum Got {
    /// It did it, or failed after it was authorized (not found, invalid).
    Done,
    /// A filtering read that answered but showed nothing it may not show.
    Hidden,
    /// Forbidden or Unauthenticated.
    Refused(Error),
    /// Anything else: an unexpected error, or a read that showed part.
    Bad(String),
}

pub fn got<T>(r: Result<T, Error>) -> Got {
    match r {
        Ok(_) | Err(Error::NotFound(_) | Error::Invalid(_)) => Got::Done,
        Err(e @ (Error::Forbidden(_) | Error::Unauthenticated(_))) => Got::Refused(e),
        Err(e) => Got::Bad(format!("unexpected error: {e:?}")),
    }
}

pub struct Fixture {
    pub url: String,
    /// The bootstrap admin: makes targets, takes snapshots, reads the audit.
    pub admin: Client,
    /// Job ids by (owner, show).
    pub jobs: HashMap<(String, &'static str), String>,
    /// The allocation the host registered into.
    pub home: String,
    /// A worker join token with unlimited uses, for throwaway hosts.
    pub join: String,
    /// Each column's token, as the worker link's rows present it.
    pub tokens: HashMap<&'static str, String>,
    /// Counts cells, for fresh names.
    pub n: u32,
}

impl Fixture {
    pub fn job(&self, me: &str, j: J) -> String {
        let (owner, show) = match j {
            J::OwnDemo => (me, "demo"),
            J::BobsDemo => ("bob", "demo"),
            J::OwnOther => (me, "other"),
            J::BobsOther => ("bob", "other"),
        };
        self.jobs[&(owner.to_string(), show)].clone()
    }

    /// Puts the job where `verb` changes something: a pause finds it
    /// running, a resume paused, a retry with every frame eaten, an eat with
    /// them waiting, a kill with the job live.
    pub async fn unact(&self, verb: &str, job: &str) {
        let (undo, frames) = match verb {
            "pause" => ("resume", None),
            "resume" => ("pause", None),
            "retry" => ("eat", None),
            "eat" => ("retry", Some(format!("{LAYER}/1-3"))),
            _ => ("retry", None),
        };
        let mut q = act(undo, job, "");
        q.targets = frames.into_iter().collect();
        let _ = self.admin.act(q).await;
    }

    pub async fn as_admin(&self, cmd: Admin) {
        let _ = self.admin.admin(cmd).await;
    }

    pub async fn id_admin(&self, cmd: IdentityCmd) -> Option<String> {
        self.admin.identity(cmd).await.ok().and_then(|d| d.token_id)
    }

    pub async fn perform(&self, me: &str, c: &Client, req: Req) -> Got {
        let n = self.n;
        match req {
            Req::Submit {
                show,
                run_as,
                spec_user,
            } => got(c
                .submit(
                    spec(&format!("s{n}-{me}"), show, spec_user),
                    run_as,
                    None,
                    None,
                )
                .await),
            Req::ListJobs(all) => got(c.list_jobs(all).await),
            Req::History => got(c.history(&HistoryQuery::default()).await),
            Req::Sees(show) => {
                let mine = match c.list_jobs(true).await {
                    Ok(v) => v,
                    Err(e) => return got::<()>(Err(e)),
                };
                let all = self.admin.list_jobs(true).await.unwrap();
                let ids = |v: &[kiln_core::view::JobSummary]| {
                    let mut ids: Vec<i64> =
                        v.iter().filter(|j| j.show == show).map(|j| j.id).collect();
                    ids.sort();
                    ids
                };
                let (seen, there) = (ids(&mine), ids(&all));
                if seen.is_empty() {
                    Got::Hidden
                } else if seen == there {
                    Got::Done
                } else {
                    Got::Bad(format!("saw jobs {seen:?} of show {show}'s {there:?}"))
                }
            }
            Req::Job(job) => got(c.job(&job).await),
            Req::Env(job) => {
                let d = match c.job(&job).await {
                    Ok(d) => d,
                    Err(e) => return got::<()>(Err(e)),
                };
                let real = self.admin.job(&job).await.unwrap().env;
                assert!(real.values().any(|v| v.starts_with("s3cret-")), "{real:?}");
                let hidden = real
                    .keys()
                    .map(|k| (k.clone(), "<hidden>".into()))
                    .collect();
                if d.env == real {
                    Got::Done
                } else if d.env == hidden {
                    Got::Hidden
                } else {
                    Got::Bad(format!("environment {:?}", d.env))
                }
            }
            Req::Frames(job) => got(c.frames(&job, None, None).await),
            Req::Log(job) => got(c
                .read_log(&LogQuery {
                    job,
                    frame: FRAME.into(),
                    attempt: None,
                    offset: 0,
                    max_bytes: 0,
                })
                .await),
            Req::Grep(job) => got(c
                .grep(&GrepQuery {
                    job,
                    pattern: ".".into(),
                    ..GrepQuery::default()
                })
                .await),
            Req::Act(verb, job, claim) => got(c.act(act(verb, &job, claim)).await),
            Req::ActOn {
                verb,
                job,
                frame,
                other,
            } => {
                let before = self.admin.frames(&other, None, None).await.unwrap();
                let mut q = act(verb, &job, "");
                q.targets = vec![frame];
                let r = c.act(q).await;
                let after = self.admin.frames(&other, None, None).await.unwrap();
                if before != after {
                    Got::Bad(format!("changed bob's frames: {r:?}"))
                } else {
                    got(r)
                }
            }
            Req::Hosts => got(c.hosts().await),
            Req::Lock(locked) => got(c.set_host_lock(HOST, locked).await),
            Req::ServerInfo => got(c.server_info().await),
            Req::Structure => got(c.structure().await),
            Req::WhoAmI => match c.whoami().await {
                Ok(w) if w.user != me => Got::Bad(format!("whoami says {}", w.user)),
                r => got(r),
            },
            Req::Users => got(c.users().await),
            Req::Tokens(all) => match c.tokens(all).await {
                Ok(v) if !all && v.iter().any(|t| t.user != me) => {
                    Got::Bad(format!("listed others' tokens: {v:?}"))
                }
                r => got(r),
            },
            Req::Audit => got(c.audit(&AuditQuery::default()).await),
            Req::Admin(cmd) => got(c.admin(cmd).await),
            Req::Identity(cmd) => got(c.identity(cmd).await),
            Req::Attach { header } => {
                let auth = HostAuth {
                    host: header.into(),
                    credential: self.tokens.get(me).cloned().unwrap_or_default(),
                };
                let hello = WorkerMsg::Register {
                    host: report(HOST),
                    running: vec![],
                };
                let link = match client::connect_worker(
                    &self.url,
                    &auth,
                    futures::stream::iter([hello]).chain(futures::stream::pending()),
                )
                .await
                {
                    Ok(link) => link,
                    Err(e) => return got::<()>(Err(e)),
                };
                let mut link = Box::pin(link);
                match tokio::time::timeout(Duration::from_secs(5), link.next()).await {
                    Ok(Some(Ok(ServerMsg::Registered { .. }))) => Got::Done,
                    Ok(Some(Err(e))) => got::<()>(Err(e)),
                    // Dropped without a word: refused.
                    Ok(None) => Got::Hidden,
                    r => Got::Bad(format!("the link said {r:?}")),
                }
            }
            Req::Login => got(c.login("dummy", "not the password", None).await),
            Req::Join(host) => {
                let token = self.tokens.get(me).cloned().unwrap_or_default();
                got(client::join(&self.url, &token, &host).await)
            }
        }
    }

    /// Everything a refused write could have changed, as the admin sees it:
    /// every job's summary (state counts, priority, pause), the named job's
    /// detail (core cap, avoided hosts), hosts, structure, users, tokens.
    pub async fn snapshot(&self, job: Option<&str>) -> Vec<String> {
        let a = &self.admin;
        let detail = async {
            match job {
                Some(j) => format!("{:?}", a.job(j).await.unwrap()),
                None => String::new(),
            }
        };
        let (jobs, detail, hosts, structure, users, tokens) = tokio::join!(
            a.list_jobs(true),
            detail,
            a.hosts(),
            a.structure(),
            a.users(),
            a.tokens(true)
        );
        let mut lines: Vec<String> = jobs.unwrap().iter().map(|j| format!("{j:?}")).collect();
        lines.push(detail);
        lines.extend(hosts.unwrap().iter().map(|h| format!("{h:?}")));
        lines.push(format!("{:?}", structure.unwrap()));
        lines.extend(users.unwrap().iter().map(|u| format!("{u:?}")));
        lines.extend(tokens.unwrap().iter().map(|t| format!("{t:?}")));
        lines
    }

    /// Whether the audit trail gained exactly what a refusal should add
    /// after record `last`: one `denied:` record of the caller's, with the
    /// message it was given; one of the host's for a refused worker link
    /// (written as the link is refused, so it is waited for); none where no
    /// principal made the call (refused at the gate).
    pub async fn audited(&self, call: Call, me: &str, got: &Got, last: i64) -> Result<(), String> {
        let q = AuditQuery {
            limit: 20,
            ..AuditQuery::default()
        };
        // Written as the call is refused, not in a commit it waits for.
        let link = matches!(call, Call::AttachAs | Call::RegisterAsAnother | Call::Login);
        let t = Instant::now();
        let new = loop {
            let all = self.admin.audit(&q).await.unwrap();
            let new: Vec<_> = all.into_iter().filter(|r| r.id > last).collect();
            if !link || !new.is_empty() || t.elapsed() > Duration::from_secs(3) {
                break new;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let ok = match got {
            _ if link => {
                let (who, action) = match call {
                    Call::AttachAs => (format!("host {HOST}"), "attach"),
                    Call::Login => ("dummy".to_string(), "login"),
                    _ => ("host render02".to_string(), "attach"),
                };
                new.len() == 1
                    && new[0].who == who
                    && new[0].action == action
                    && new[0].outcome.starts_with("denied: ")
            }
            Got::Refused(Error::Forbidden(m)) => {
                new.len() == 1 && new[0].who == me && new[0].outcome == format!("denied: {m}")
            }
            // No principal made the call: there is no one to record.
            _ => new.is_empty(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("refused, but the audit gained {new:?}"))
        }
    }

    pub async fn last_audit(&self) -> i64 {
        let q = AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        };
        self.admin.audit(&q).await.unwrap()[0].id
    }
}

/// Opens the host's worker link and registers it with no cores (nothing is
/// ever launched to it, so the farm holds still between snapshots). The
/// returned flag turns true if the server ends the link.
pub async fn enroll(
    url: &str,
    join: &str,
) -> (
    mpsc::UnboundedSender<WorkerMsg>,
    tokio::task::JoinHandle<()>,
    Arc<AtomicBool>,
) {
    let credential = client::join(url, join, HOST).await.expect("join");
    let auth = HostAuth {
        host: HOST.into(),
        credential,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(WorkerMsg::Register {
        host: report(HOST),
        running: vec![],
    })
    .unwrap();
    let mut incoming = Box::pin(
        client::connect_worker(
            url,
            &auth,
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        )
        .await
        .expect("attach"),
    );
    match incoming.next().await {
        Some(Ok(ServerMsg::Registered { .. })) => {}
        other => panic!("the host did not register: {other:?}"),
    }
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let drain = tokio::spawn(async move {
        while let Some(Ok(_)) = incoming.next().await {}
        flag.store(true, Ordering::SeqCst);
    });
    (tx, drain, ended)
}

/// The bootstrap admin, once the server has started and written its token.
pub async fn first_admin(url: &str, dir: &std::path::Path) -> Client {
    let file = dir.join(kiln_server::ADMIN_TOKEN_FILE);
    let t = Instant::now();
    loop {
        if let Ok(token) = std::fs::read_to_string(&file) {
            if let Ok(c) = Client::connect_as(url, Some(token.trim())).await {
                if c.whoami().await.is_ok() {
                    return c;
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no admin token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
