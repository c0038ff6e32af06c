//! The authorization matrix, end to end: every farm API call × every kind
//! of caller × own / another user's / another show's target, against a
//! real server on a real socket, with a real enrolled host.
//!
//! Each cell's expected decision is written in [`table`], from the roles of
//! issue 11 (the same rules `kiln_core::auth`'s own table tests without a
//! transport). Every refused write must leave the farm as it was (jobs,
//! frames' counts, hosts, structure, users, tokens) and add exactly one
//! `denied:` record to the audit trail, saying who was refused.

use kiln_core::auth::audit::AuditQuery;
use kiln_core::auth::identity::JoinRules;
use kiln_core::auth::views::IdentityCmd;
use kiln_core::auth::{Grant, Right};
use kiln_core::farm::{Admin, FarmConfig};
use kiln_core::link::{ServerMsg, WorkerMsg};
use kiln_core::model::HostReport;
use kiln_core::structure::Service;
use kiln_core::view::{ActQuery, LogQuery};
use kiln_proto::client::{self, Client, HostAuth};
use kiln_proto::Error;
use kiln_server::{serve, ServerConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// The callers, one column each: nine users (their role in the name), then
/// six that present no valid user credential: an artist's token after its
/// user was disabled, a revoked token, an expired one, the enrolled host's
/// own credential, no token at all, and the admin's token with a wrong
/// secret.
const COLS: [&str; 15] = [
    "adm", "wfarm", "wdemo", "afarm", "ademo", "vfarm", "vdemo", "imp", "none", "off", "old",
    "exp", "host", "anon", "junk",
];
/// Columns from this one on are not signed in: every call is refused as
/// unauthenticated, and nothing is audited (no principal made the call).
const USERS: usize = 9;

fn grants(user: &str) -> Vec<Grant> {
    match user {
        "adm" => vec![Grant::farm(Right::Admin)],
        "wfarm" => vec![Grant::farm(Right::Wrangler)],
        "wdemo" => vec![Grant::show(Right::Wrangler, "demo")],
        "afarm" | "bob" | "off" | "old" | "exp" => vec![Grant::farm(Right::Artist)],
        "ademo" => vec![Grant::show(Right::Artist, "demo")],
        "vfarm" => vec![Grant::farm(Right::Viewer)],
        "vdemo" => vec![Grant::show(Right::Viewer, "demo")],
        "imp" => vec![Grant::show(Right::Impersonate, "demo")],
        _ => vec![],
    }
}

/// A job target, as seen from the caller's column: its own job or bob's,
/// in show `demo` or show `other`. Every caller has a job of its own in
/// both shows (the bootstrap admin submitted them with `run_as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum J {
    OwnDemo,
    BobsDemo,
    OwnOther,
    BobsOther,
}

const JOBS: [J; 4] = [J::OwnDemo, J::BobsDemo, J::OwnOther, J::BobsOther];

/// Whom a submit runs as.
#[derive(Debug, Clone, Copy)]
enum RunAs {
    Me,
    /// The request's run-as field names bob.
    Bob,
    /// The spec's `user:` names bob; the request names no one.
    SpecBob,
    Root,
}

/// One row's call. Writes get a fresh target (or one set back by the admin
/// first), so that a refusal that changed something shows.
#[derive(Debug, Clone, Copy)]
enum Call {
    Submit(&'static str, RunAs),
    ListJobs(bool),
    /// `list_jobs(true)` shows every job of the show (`Y`) or none (`.`).
    SeesJobsOf(&'static str),
    Job(J),
    /// `job` shows the environment's values (`Y`) or `<hidden>` (`.`).
    EnvValues(J),
    Frames(J),
    ReadLog(J),
    Act(&'static str, J),
    /// An act whose request claims to come from bob (the server must go by
    /// the credential, not by that field).
    ActClaimingBob(&'static str, J),
    /// An act on the caller's own job in demo that names a frame of bob's
    /// job by its id: it may be allowed (the job is its own) but must not
    /// touch bob's frame.
    ActOnBobsFrame(&'static str),
    Hosts,
    Lock(bool),
    ServerInfo,
    Structure,
    WhoAmI,
    Users,
    Tokens(bool),
    Audit,
    PutFacility,
    RemoveFacility,
    PutAllocation,
    RemoveAllocation,
    PutShow(&'static str),
    NewShow,
    PutSubscription(&'static str),
    RemoveSubscription(&'static str),
    PutLimit,
    RemoveLimit,
    PutService,
    RemoveService,
    MoveHost,
    TagHost,
    Repair(bool),
    SetJob(J),
    Unavoid(J),
    CreateUser,
    Disable,
    Enable,
    Grant,
    Revoke,
    SetPassword {
        own: bool,
    },
    CreateToken {
        other: bool,
    },
    CreateJoinToken,
    RevokeToken {
        other: bool,
    },
    RevokeJoinToken,
    RemoveHost,
    /// The worker link: the caller's token as the credential of the
    /// enrolled host `render01`.
    AttachAs,
    /// The worker link as the host the caller's credential is for
    /// (`render02` for the `host` column), registering as `render01`.
    RegisterAsAnother,
    /// A worker join with the caller's token as the join token.
    JoinWith,
}

impl Call {
    /// The worker link's rows: there every caller is refused, as
    /// unauthenticated or by closing the link, and no principal is audited.
    fn on_link(self) -> bool {
        matches!(
            self,
            Call::AttachAs | Call::RegisterAsAnother | Call::JoinWith
        )
    }
}

/// The expected decisions, one row per call and target, one character per
/// column of [`COLS`]: `Y` allowed, `.` refused.
fn table() -> Vec<(Call, &'static str)> {
    use Call::*;
    //  adm wfarm wdemo afarm ademo vfarm vdemo imp none | off old exp host anon junk
    const ANY_ROLE: &str = "YYYYYYY........";
    const SIGNED_IN: &str = "YYYYYYYYY......";
    const FARM_ROLE: &str = "YY.Y.Y.........";
    const FARM_WRANGLER: &str = "YY.............";
    const DEMO_WRANGLER: &str = "YYY............";
    const ADMIN: &str = "Y..............";
    // Acting on a job (and reading its environment values and logs): its
    // owner while an artist of its show, or a wrangler of its show.
    let act = |j: J| match j {
        J::OwnDemo => "YYYYY..........",
        J::BobsDemo => DEMO_WRANGLER,
        J::OwnOther => "YY.Y...........",
        J::BobsOther => FARM_WRANGLER,
    };
    let read = |j: J| match j {
        J::OwnDemo | J::BobsDemo => ANY_ROLE,
        J::OwnOther | J::BobsOther => FARM_ROLE,
    };
    let wrangle = |j: J| match j {
        J::OwnDemo | J::BobsDemo => DEMO_WRANGLER,
        J::OwnOther | J::BobsOther => FARM_WRANGLER,
    };
    let mut rows = vec![
        (Submit("demo", RunAs::Me), "YYYYY..Y......."),
        (Submit("other", RunAs::Me), "YY.Y..........."),
        // For someone else: the impersonate right on the show (an admin
        // holds every right).
        (Submit("demo", RunAs::Bob), "Y......Y......."),
        (Submit("other", RunAs::Bob), ADMIN),
        (Submit("demo", RunAs::SpecBob), "Y......Y......."),
        (Submit("other", RunAs::SpecBob), ADMIN),
        (Submit("demo", RunAs::Root), "..............."),
        (ListJobs(false), SIGNED_IN),
        (ListJobs(true), SIGNED_IN),
        (SeesJobsOf("demo"), ANY_ROLE),
        (SeesJobsOf("other"), FARM_ROLE),
        (Hosts, ANY_ROLE),
        (Structure, ANY_ROLE),
        (ServerInfo, ANY_ROLE),
        (WhoAmI, SIGNED_IN),
        (Users, ADMIN),
        (Tokens(false), SIGNED_IN),
        (Tokens(true), ADMIN),
        (Audit, ADMIN),
        (Lock(true), FARM_WRANGLER),
        (Lock(false), FARM_WRANGLER),
        (PutFacility, FARM_WRANGLER),
        (RemoveFacility, FARM_WRANGLER),
        (PutAllocation, FARM_WRANGLER),
        (RemoveAllocation, FARM_WRANGLER),
        (PutShow("demo"), DEMO_WRANGLER),
        (PutShow("other"), FARM_WRANGLER),
        (NewShow, FARM_WRANGLER),
        (PutSubscription("demo"), DEMO_WRANGLER),
        (PutSubscription("other"), FARM_WRANGLER),
        (RemoveSubscription("demo"), DEMO_WRANGLER),
        (RemoveSubscription("other"), FARM_WRANGLER),
        (PutLimit, FARM_WRANGLER),
        (RemoveLimit, FARM_WRANGLER),
        (PutService, FARM_WRANGLER),
        (RemoveService, FARM_WRANGLER),
        (MoveHost, FARM_WRANGLER),
        (TagHost, FARM_WRANGLER),
        (Repair(true), FARM_WRANGLER),
        (Repair(false), FARM_WRANGLER),
        (CreateUser, ADMIN),
        (Disable, ADMIN),
        (Enable, ADMIN),
        (Grant, ADMIN),
        (Revoke, ADMIN),
        // Anyone signed in sets their own password and manages their own
        // tokens: a token is only ever as strong as its user.
        (SetPassword { own: true }, SIGNED_IN),
        (SetPassword { own: false }, ADMIN),
        (CreateToken { other: false }, SIGNED_IN),
        (CreateToken { other: true }, ADMIN),
        (CreateJoinToken, ADMIN),
        (RevokeToken { other: false }, SIGNED_IN),
        (RevokeToken { other: true }, ADMIN),
        (RevokeJoinToken, ADMIN),
        // Hosts are farm-wide: a show's wrangler runs none.
        (RemoveHost, FARM_WRANGLER),
        (AttachAs, "..............."),
        (RegisterAsAnother, "..............."),
        (JoinWith, "..............."),
    ];
    for j in JOBS {
        rows.push((Job(j), read(j)));
        rows.push((Frames(j), read(j)));
        rows.push((EnvValues(j), act(j)));
        rows.push((ReadLog(j), act(j)));
        rows.push((SetJob(j), wrangle(j)));
        rows.push((Unavoid(j), wrangle(j)));
    }
    // Kills last: a killed job stays killed, and the other verbs' rows
    // want jobs whose frames they can still change.
    for verb in ["pause", "resume", "retry", "eat", "kill"] {
        for j in JOBS {
            rows.push((Act(verb, j), act(j)));
        }
        if verb == "eat" {
            rows.push((ActOnBobsFrame(verb), act(J::OwnDemo)));
        }
        if verb == "pause" {
            rows.push((ActClaimingBob(verb, J::BobsDemo), act(J::BobsDemo)));
            rows.push((ActClaimingBob(verb, J::BobsOther), act(J::BobsOther)));
        }
    }
    rows
}

/// What a call is, once its target is made: the request itself.
enum Req {
    Submit {
        show: &'static str,
        run_as: String,
        spec_user: Option<&'static str>,
    },
    ListJobs(bool),
    Sees(&'static str),
    Job(String),
    Env(String),
    Frames(String),
    Log(String),
    Act(&'static str, String, &'static str),
    /// An act on a job, naming a frame (by id) of another job.
    ActOn {
        verb: &'static str,
        job: String,
        frame: String,
        other: String,
    },
    Hosts,
    Lock(bool),
    ServerInfo,
    Structure,
    WhoAmI,
    Users,
    Tokens(bool),
    Audit,
    Admin(Admin),
    Identity(IdentityCmd),
    Attach {
        header: &'static str,
    },
    Join(String),
}

impl Req {
    /// The job a write names, whose detail its snapshots hold.
    fn job(&self) -> Option<&str> {
        match self {
            Req::Act(_, job, _)
            | Req::Admin(Admin::SetJob { job, .. } | Admin::Unavoid { job, .. }) => Some(job),
            _ => None,
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Req::Submit { .. }
                | Req::Act(..)
                | Req::ActOn { .. }
                | Req::Lock(_)
                | Req::Admin(_)
                | Req::Identity(_)
                | Req::Attach { .. }
                | Req::Join(_)
        )
    }
}

/// What a cell's call came to.
enum Got {
    /// It did it, or failed after it was authorized (not found, invalid).
    Done,
    /// A filtering read that answered but showed nothing it may not show.
    Hidden,
    /// Forbidden or Unauthenticated.
    Refused(Error),
    /// Anything else: an unexpected error, or a read that showed part.
    Bad(String),
}

fn got<T>(r: Result<T, Error>) -> Got {
    match r {
        Ok(_) | Err(Error::NotFound(_) | Error::Invalid(_)) => Got::Done,
        Err(e @ (Error::Forbidden(_) | Error::Unauthenticated(_))) => Got::Refused(e),
        Err(e) => Got::Bad(format!("unexpected error: {e:?}")),
    }
}

/// A refusal says whom to ask or what to do instead.
fn advises(m: &str) -> bool {
    m.contains(": ask ") || m.contains(": only ") || m.contains("submit as yourself")
}

const SHOWS: [&str; 2] = ["demo", "other"];
const HOST: &str = "render01";
/// Every job's layer and the frame whose log is read.
const LAYER: &str = "a";
const FRAME: &str = "a/1";

fn spec(name: &str, show: &str, user: Option<&str>) -> String {
    let user = user.map_or(String::new(), |u| format!("user: {u}\n"));
    format!(
        "name: {name}\nshow: {show}\n{user}env: {{SECRET: s3cret-{name}}}\n\
         layers:\n  - {{name: {LAYER}, command: [echo, hi], frames: 1-3}}\n"
    )
}

struct Fixture {
    url: String,
    /// The bootstrap admin: makes targets, takes snapshots, reads the audit.
    admin: Client,
    /// Job ids by (owner, show).
    jobs: HashMap<(String, &'static str), String>,
    /// The allocation the host registered into.
    home: String,
    /// A worker join token with unlimited uses, for throwaway hosts.
    join: String,
    /// Each column's token, as the worker link's rows present it.
    tokens: HashMap<&'static str, String>,
    /// Counts cells, for fresh names.
    n: u32,
}

impl Fixture {
    fn job(&self, me: &str, j: J) -> String {
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
    async fn unact(&self, verb: &str, job: &str) {
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

    async fn as_admin(&self, cmd: Admin) {
        let _ = self.admin.admin(cmd).await;
    }

    async fn id_admin(&self, cmd: IdentityCmd) -> Option<String> {
        self.admin.identity(cmd).await.ok().and_then(|d| d.token_id)
    }

    /// Makes (or sets back) the cell's target as the admin, and returns the
    /// request the caller `me` then makes.
    async fn prepare(&mut self, me: &str, client: &Client, call: Call, want: bool) -> Req {
        self.n += 1;
        let n = self.n;
        let a = &self.admin;
        match call {
            Call::Submit(show, run_as) => Req::Submit {
                show,
                run_as: match run_as {
                    RunAs::Me | RunAs::SpecBob => String::new(),
                    RunAs::Bob => "bob".into(),
                    RunAs::Root => "root".into(),
                },
                spec_user: matches!(run_as, RunAs::SpecBob).then_some("bob"),
            },
            Call::ListJobs(all) => Req::ListJobs(all),
            Call::SeesJobsOf(show) => Req::Sees(show),
            Call::Job(j) => Req::Job(self.job(me, j)),
            Call::EnvValues(j) => Req::Env(self.job(me, j)),
            Call::Frames(j) => Req::Frames(self.job(me, j)),
            Call::ReadLog(j) => Req::Log(self.job(me, j)),
            Call::Act(verb, j) | Call::ActClaimingBob(verb, j) => {
                let job = self.job(me, j);
                self.unact(verb, &job).await;
                let claim = if matches!(call, Call::Act(..)) {
                    ""
                } else {
                    "bob"
                };
                Req::Act(verb, job, claim)
            }
            Call::Hosts => Req::Hosts,
            Call::Lock(locked) => {
                let _ = a.set_host_lock(HOST, !locked).await;
                Req::Lock(locked)
            }
            Call::ServerInfo => Req::ServerInfo,
            Call::Structure => Req::Structure,
            Call::WhoAmI => Req::WhoAmI,
            Call::Users => Req::Users,
            Call::Tokens(all) => Req::Tokens(all),
            Call::Audit => Req::Audit,
            Call::PutFacility => Req::Admin(Admin::PutFacility {
                name: format!("fac{n}"),
            }),
            Call::RemoveFacility => {
                let name = format!("fac{n}");
                self.as_admin(Admin::PutFacility { name: name.clone() })
                    .await;
                Req::Admin(Admin::RemoveFacility { name })
            }
            Call::PutAllocation => Req::Admin(Admin::PutAllocation {
                name: format!("studio.p{n}"),
                tags: vec![],
            }),
            Call::RemoveAllocation => {
                let name = format!("studio.p{n}");
                self.as_admin(Admin::PutAllocation {
                    name: name.clone(),
                    tags: vec![],
                })
                .await;
                Req::Admin(Admin::RemoveAllocation { name })
            }
            Call::PutShow(show) => {
                self.as_admin(put_show(show, 100)).await;
                Req::Admin(put_show(show, 200))
            }
            Call::NewShow => Req::Admin(put_show(&format!("show{n}"), 100)),
            Call::PutSubscription(show) => {
                self.as_admin(Admin::RemoveSubscription {
                    show: show.into(),
                    allocation: "studio.main".into(),
                })
                .await;
                Req::Admin(subscribe(show))
            }
            Call::RemoveSubscription(show) => {
                self.as_admin(subscribe(show)).await;
                Req::Admin(Admin::RemoveSubscription {
                    show: show.into(),
                    allocation: "studio.main".into(),
                })
            }
            Call::PutLimit => Req::Admin(Admin::PutLimit {
                name: format!("lim{n}"),
                max: 5,
            }),
            Call::RemoveLimit => {
                let name = format!("lim{n}");
                self.as_admin(Admin::PutLimit {
                    name: name.clone(),
                    max: 5,
                })
                .await;
                Req::Admin(Admin::RemoveLimit { name })
            }
            Call::PutService => Req::Admin(Admin::PutService(service(n))),
            Call::RemoveService => {
                self.as_admin(Admin::PutService(service(n))).await;
                Req::Admin(Admin::RemoveService {
                    name: service(n).name,
                    show: None,
                })
            }
            Call::MoveHost => {
                self.as_admin(Admin::MoveHost {
                    host: HOST.into(),
                    allocation: self.home.clone(),
                })
                .await;
                Req::Admin(Admin::MoveHost {
                    host: HOST.into(),
                    allocation: "studio.main".into(),
                })
            }
            Call::TagHost => Req::Admin(Admin::TagHost {
                host: HOST.into(),
                add: vec![format!("t{n}")],
                remove: vec![],
            }),
            Call::Repair(on) => {
                self.as_admin(Admin::Repair {
                    host: HOST.into(),
                    on: !on,
                })
                .await;
                Req::Admin(Admin::Repair {
                    host: HOST.into(),
                    on,
                })
            }
            Call::SetJob(j) => {
                let job = self.job(me, j);
                self.as_admin(set_job(&job, 100)).await;
                Req::Admin(set_job(&job, 200))
            }
            Call::Unavoid(j) => Req::Admin(Admin::Unavoid {
                job: self.job(me, j),
                host: None,
            }),
            Call::CreateUser => Req::Identity(IdentityCmd::CreateUser {
                name: format!("new{n}"),
                password: None,
            }),
            Call::Disable | Call::Enable => {
                let disabled = matches!(call, Call::Disable);
                self.id_admin(IdentityCmd::SetDisabled {
                    name: "dummy".into(),
                    disabled: !disabled,
                })
                .await;
                Req::Identity(IdentityCmd::SetDisabled {
                    name: "dummy".into(),
                    disabled,
                })
            }
            Call::Grant | Call::Revoke => {
                let grant = Grant::farm(Right::Viewer);
                let user = "dummy".to_string();
                if matches!(call, Call::Grant) {
                    self.id_admin(IdentityCmd::Revoke {
                        user: user.clone(),
                        grant: grant.clone(),
                    })
                    .await;
                    Req::Identity(IdentityCmd::Grant { user, grant })
                } else {
                    self.id_admin(IdentityCmd::Grant {
                        user: user.clone(),
                        grant: grant.clone(),
                    })
                    .await;
                    Req::Identity(IdentityCmd::Revoke { user, grant })
                }
            }
            Call::SetPassword { own } => Req::Identity(IdentityCmd::SetPassword {
                user: if own { me.into() } else { "dummy".into() },
                password: format!("correct horse {n}"),
            }),
            Call::CreateToken { other } => Req::Identity(IdentityCmd::CreateToken {
                name: format!("tok{n}"),
                user: other.then(|| "bob".into()),
                expires_in: None,
                join: None,
            }),
            Call::CreateJoinToken => Req::Identity(IdentityCmd::CreateToken {
                name: format!("join{n}"),
                user: None,
                expires_in: None,
                join: Some(one_use()),
            }),
            Call::RevokeToken { other } => {
                let make = IdentityCmd::CreateToken {
                    name: format!("tok{n}"),
                    user: other.then(|| "bob".into()),
                    expires_in: None,
                    join: None,
                };
                // One's own token is made by oneself; one that cannot make
                // tokens gets one of bob's to try.
                let id = if other {
                    self.id_admin(make).await
                } else {
                    match client.identity(make).await {
                        Ok(d) => d.token_id,
                        Err(_) => {
                            self.id_admin(IdentityCmd::CreateToken {
                                name: format!("tok{n}"),
                                user: Some("bob".into()),
                                expires_in: None,
                                join: None,
                            })
                            .await
                        }
                    }
                };
                Req::Identity(IdentityCmd::RevokeToken(id.expect("a token to revoke")))
            }
            Call::RevokeJoinToken => {
                let id = self
                    .id_admin(IdentityCmd::CreateToken {
                        name: format!("join{n}"),
                        user: None,
                        expires_in: None,
                        join: Some(one_use()),
                    })
                    .await;
                Req::Identity(IdentityCmd::RevokeToken(id.expect("a join token")))
            }
            Call::RemoveHost => {
                // Refusals are tried on the live host (its link must stay
                // up); a removal that should work, on a host of its own.
                let host = if want {
                    let h = format!("tmp{n}");
                    client::join(&self.url, &self.join, &h)
                        .await
                        .expect("a throwaway host joins");
                    h
                } else {
                    HOST.to_string()
                };
                Req::Identity(IdentityCmd::RemoveHost(host))
            }
            Call::ActOnBobsFrame(verb) => {
                let other = self.job(me, J::BobsDemo);
                self.unact(verb, &other).await;
                let frames = a.frames(&other, None, None).await.unwrap();
                Req::ActOn {
                    verb,
                    job: self.job(me, J::OwnDemo),
                    frame: frames[0].id.to_string(),
                    other,
                }
            }
            Call::AttachAs => Req::Attach { header: HOST },
            Call::RegisterAsAnother => Req::Attach { header: "render02" },
            Call::JoinWith => Req::Join(format!("evil{n}")),
        }
    }

    async fn perform(&self, me: &str, c: &Client, req: Req) -> Got {
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
            Req::Join(host) => {
                let token = self.tokens.get(me).cloned().unwrap_or_default();
                got(client::join(&self.url, &token, &host).await)
            }
        }
    }

    /// Everything a refused write could have changed, as the admin sees it:
    /// every job's summary (state counts, priority, pause), the named job's
    /// detail (core cap, avoided hosts), hosts, structure, users, tokens.
    async fn snapshot(&self, job: Option<&str>) -> Vec<String> {
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
    async fn audited(&self, call: Call, me: &str, got: &Got, last: i64) -> Result<(), String> {
        let q = AuditQuery {
            limit: 20,
            ..AuditQuery::default()
        };
        let link = matches!(call, Call::AttachAs | Call::RegisterAsAnother);
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
                let host = match call {
                    Call::AttachAs => HOST,
                    _ => "render02",
                };
                new.len() == 1
                    && new[0].who == format!("host {host}")
                    && new[0].action == "attach"
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

    async fn last_audit(&self) -> i64 {
        let q = AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        };
        self.admin.audit(&q).await.unwrap()[0].id
    }
}

fn act(verb: &str, job: &str, user: &str) -> ActQuery {
    ActQuery {
        action: verb.into(),
        job: job.into(),
        targets: vec![],
        state: None,
        user: user.into(),
    }
}

fn report(name: &str) -> HostReport {
    HostReport {
        name: name.into(),
        os: "linux".into(),
        version: "test".into(),
        ..HostReport::default()
    }
}

fn put_show(name: &str, priority: i32) -> Admin {
    Admin::PutShow {
        name: name.into(),
        enabled: None,
        default_priority: Some(priority),
        default_max_cores: None,
    }
}

fn subscribe(show: &str) -> Admin {
    Admin::PutSubscription {
        show: show.into(),
        allocation: "studio.main".into(),
        size: 100,
        burst: 200,
    }
}

fn set_job(job: &str, priority: i32) -> Admin {
    Admin::SetJob {
        job: job.into(),
        priority: Some(priority),
        max_cores: None,
    }
}

fn service(n: u32) -> Service {
    Service {
        name: format!("svc{n}"),
        ..Service::default()
    }
}

fn one_use() -> JoinRules {
    JoinRules {
        hosts: None,
        cidr: None,
        uses_left: Some(1),
    }
}

/// Whether a cell came out as its row expects; if not, why.
fn verdict(want: char, col: usize, call: Call, got: &Got) -> Result<(), String> {
    match (want, got) {
        ('.', Got::Refused(_) | Got::Hidden) if call.on_link() => Ok(()),
        ('Y', Got::Done) => Ok(()),
        ('Y', Got::Hidden) => Err("allowed, but showed nothing".into()),
        ('Y', Got::Refused(e)) => Err(format!("refused: {e:?}")),
        ('.', Got::Done) => Err("allowed".into()),
        ('.', Got::Hidden) if col < USERS => Ok(()),
        ('.', Got::Refused(Error::Forbidden(m))) if col < USERS => {
            if advises(m) {
                Ok(())
            } else {
                Err(format!("refused without saying whom to ask: {m:?}"))
            }
        }
        ('.', Got::Refused(Error::Unauthenticated(m))) if col >= USERS => {
            if m.contains(says(COLS[col])) {
                Ok(())
            } else {
                Err(format!("refused without saying why: {m:?}"))
            }
        }
        ('.', Got::Refused(e)) => Err(format!("refused, but as {e:?}")),
        ('.', Got::Hidden) => Err("answered instead of refusing".into()),
        (_, Got::Bad(why)) => Err(why.clone()),
        (w, _) => Err(format!("bad expectation {w:?}")),
    }
}

/// What the farm API tells each caller that is not signed in.
fn says(col: &str) -> &'static str {
    match col {
        "off" => "is disabled",
        "old" | "junk" => "unknown or was revoked",
        "exp" => "expired",
        "host" => "host's credential",
        _ => "no token",
    }
}

/// Opens the host's worker link and registers it with no cores (nothing is
/// ever launched to it, so the farm holds still between snapshots). The
/// returned flag turns true if the server ends the link.
async fn enroll(
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
async fn first_admin(url: &str, dir: &std::path::Path) -> Client {
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

#[test]
fn every_call_by_every_caller_on_every_target() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(matrix());
}

async fn matrix() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        farm: FarmConfig::default(),
        connections: Default::default(),
        tls: kiln_server::tls::Tls::Plaintext,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // As `kiln server` runs it: on a runtime of its own, from its thread.
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        })
    });
    let admin = first_admin(&url, dir.path()).await;

    // The farm: two shows, an allocation to subscribe and move hosts to,
    // the users with their roles and tokens, and the dummy user that user
    // commands change.
    for show in SHOWS {
        admin.admin(put_show(show, 100)).await.unwrap();
    }
    admin
        .admin(Admin::PutFacility {
            name: "studio".into(),
        })
        .await
        .unwrap();
    admin
        .admin(Admin::PutAllocation {
            name: "studio.main".into(),
            tags: vec![],
        })
        .await
        .unwrap();
    let mut tokens = HashMap::new();
    for user in COLS[..USERS + 3].iter().copied().chain(["bob", "dummy"]) {
        admin
            .identity(IdentityCmd::CreateUser {
                name: user.into(),
                password: None,
            })
            .await
            .unwrap();
        for grant in grants(user) {
            admin
                .identity(IdentityCmd::Grant {
                    user: user.into(),
                    grant,
                })
                .await
                .unwrap();
        }
        let made = admin
            .identity(IdentityCmd::CreateToken {
                name: "api".into(),
                user: Some(user.into()),
                expires_in: (user == "exp").then_some(1),
                join: None,
            })
            .await
            .unwrap();
        tokens.insert(user, made.token.unwrap());
        let undo = match user {
            "off" => IdentityCmd::SetDisabled {
                name: user.into(),
                disabled: true,
            },
            "old" => IdentityCmd::RevokeToken(made.token_id.unwrap()),
            _ => continue,
        };
        admin.identity(undo).await.unwrap();
    }
    let join = admin
        .identity(IdentityCmd::CreateToken {
            name: "hosts".into(),
            user: None,
            expires_in: None,
            join: Some(JoinRules {
                hosts: None,
                cidr: None,
                uses_left: None,
            }),
        })
        .await
        .unwrap()
        .token
        .unwrap();
    let (link, drain, link_ended) = enroll(&url, &join).await;
    let hosts = admin.hosts().await.unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let home = hosts[0].allocation.clone();
    assert_ne!(home, "studio.main");

    // The callers. `host` presents the host's credential to the farm API;
    // `junk` the admin's token id with another secret.
    let credential = client::join(&url, &join, "render02").await.unwrap();
    let adm = &tokens["adm"];
    let forged = format!(
        "{}{}",
        &adm[..adm.len() - 1],
        if adm.ends_with('0') { '1' } else { '0' }
    );
    let mut callers = Vec::new();
    let mut presented = HashMap::new();
    for col in COLS {
        let token = match col {
            "host" => Some(credential.clone()),
            "anon" => None,
            "junk" => Some(forged.clone()),
            user => Some(tokens[user].clone()),
        };
        callers.push(Client::connect_as(&url, token.as_deref()).await.unwrap());
        if let Some(t) = token {
            presented.insert(col, t);
        }
    }

    // Every caller's own job in each show, and bob's, submitted by the
    // admin to run as them.
    let mut jobs = HashMap::new();
    for owner in COLS.iter().copied().chain(["bob"]) {
        for show in SHOWS {
            let s = admin
                .submit(
                    spec(&format!("{owner}-{show}"), show, None),
                    owner.into(),
                    None,
                    None,
                )
                .await
                .unwrap();
            jobs.insert((owner.to_string(), show), s.id.to_string());
        }
    }
    let mut f = Fixture {
        url: url.clone(),
        admin,
        jobs,
        home,
        join,
        tokens: presented,
        n: 0,
    };
    let frames = f
        .admin
        .frames(&f.jobs[&("bob".into(), "demo")], None, None)
        .await
        .unwrap();
    assert_eq!(frames.len(), 3, "{frames:?}");
    let setup = started.elapsed();

    let rows = table();
    let mut wrong = Vec::new();
    let (mut cells, mut refused_writes) = (0, 0);
    for (call, expect) in &rows {
        let t = Instant::now();
        assert_eq!(expect.len(), COLS.len(), "row {call:?}: {expect}");
        for (col, (me, want)) in COLS.iter().zip(expect.chars()).enumerate() {
            cells += 1;
            let c = &callers[col];
            let req = f.prepare(me, c, *call, want == 'Y').await;
            let job = req.job().map(str::to_string);
            let before = if req.is_write() {
                let (snap, last) = tokio::join!(f.snapshot(job.as_deref()), f.last_audit());
                Some((snap, last))
            } else {
                None
            };
            let got = f.perform(me, c, req).await;
            let mut why = verdict(want, col, *call, &got).err();
            if let (Some((before, last)), Got::Refused(_) | Got::Hidden) = (before, &got) {
                refused_writes += 1;
                let after = f.snapshot(job.as_deref()).await;
                if let Some(changed) = first_change(&before, &after) {
                    why.get_or_insert(format!("refused, but the farm changed: {changed}"));
                }
                if let Err(e) = f.audited(*call, me, &got, last).await {
                    why.get_or_insert(e);
                }
            }
            if let Some(why) = why {
                wrong.push(format!("{call:?} by {me} (want {want}): {why}"));
            }
        }
        if std::env::var_os("AUTHZ_TIMES").is_some() {
            eprintln!("{call:?}: {:?}", t.elapsed());
        }
    }
    assert!(!link_ended.load(Ordering::SeqCst), "the host's link ended");
    eprintln!(
        "authorization matrix: {} rows × {} callers = {cells} cells ({refused_writes} refused \
         writes checked against the store and the audit); setup {setup:?}, all {:?}",
        rows.len(),
        COLS.len(),
        started.elapsed()
    );
    let _ = stop.send(());
    // The server waits for its clients to leave before it stops.
    drain.abort();
    drop((link, callers, f));
    server.join().unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The first line that differs between two snapshots, before and after.
fn first_change(before: &[String], after: &[String]) -> Option<String> {
    if before == after {
        return None;
    }
    let i = before
        .iter()
        .zip(after)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    Some(format!(
        "{:?} became {:?}",
        before.get(i).map_or("(nothing)", |s| s.as_str()),
        after.get(i).map_or("(nothing)", |s| s.as_str())
    ))
}
