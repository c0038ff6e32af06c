//! Each cell's target, made (or set back) by the admin before the caller
//! tries: so a refused write that changed anything shows in the snapshot.

use crate::fixture::Fixture;
use crate::table::{Call, RunAs, J};
use kiln_core::auth::identity::JoinRules;
use kiln_core::auth::views::IdentityCmd;
use kiln_core::auth::{Grant, Right};
use kiln_core::farm::Admin;
use kiln_core::model::HostReport;
use kiln_core::structure::Service;
use kiln_core::view::ActQuery;
use kiln_proto::client::{self, Client};

/// What a call is, once its target is made: the request itself.
pub enum Req {
    Submit {
        show: &'static str,
        run_as: String,
        spec_user: Option<&'static str>,
    },
    ListJobs(bool),
    History,
    Sees(&'static str),
    Job(String),
    Env(String),
    Frames(String),
    Log(String),
    Grep(String),
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
    Login,
}

impl Req {
    /// The job a write names, whose detail its snapshots hold.
    pub fn job(&self) -> Option<&str> {
        match self {
            Req::Act(_, job, _)
            | Req::Admin(Admin::SetJob { job, .. } | Admin::Unavoid { job, .. }) => Some(job),
            _ => None,
        }
    }

    pub fn is_write(&self) -> bool {
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
                | Req::Login
        )
    }
}

pub const SHOWS: [&str; 2] = ["demo", "other"];
pub const HOST: &str = "render01";
/// Every job's layer and the frame whose log is read.
pub const LAYER: &str = "a";
pub const FRAME: &str = "a/1";

pub fn spec(name: &str, show: &str, user: Option<&str>) -> String {
    let user = user.map_or(String::new(), |u| format!("user: {u}\n"));
    format!(
        "name: {name}\nshow: {show}\n{user}env: {{SECRET: s3cret-{name}}}\n\
         layers:\n  - {{name: {LAYER}, command: [echo, hi], frames: 1-3}}\n"
    )
}

impl Fixture {
    /// Makes (or sets back) the cell's target as the admin, and returns the
    /// request the caller `me` then makes.
    pub async fn prepare(&mut self, me: &str, client: &Client, call: Call, want: bool) -> Req {
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
            Call::History => Req::History,
            Call::SeesJobsOf(show) => Req::Sees(show),
            Call::Job(j) => Req::Job(self.job(me, j)),
            Call::EnvValues(j) => Req::Env(self.job(me, j)),
            Call::Frames(j) => Req::Frames(self.job(me, j)),
            Call::ReadLog(j) => Req::Log(self.job(me, j)),
            Call::Grep(j) => Req::Grep(self.job(me, j)),
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
            Call::Login => Req::Login,
        }
    }
}

pub fn act(verb: &str, job: &str, user: &str) -> ActQuery {
    ActQuery {
        action: verb.into(),
        job: job.into(),
        targets: vec![],
        state: None,
        user: user.into(),
    }
}

pub fn report(name: &str) -> HostReport {
    HostReport {
        name: name.into(),
        os: "linux".into(),
        version: "test".into(),
        ..HostReport::default()
    }
}

pub fn put_show(name: &str, priority: i32) -> Admin {
    Admin::PutShow {
        name: name.into(),
        enabled: None,
        default_priority: Some(priority),
        default_max_cores: None,
    }
}

pub fn subscribe(show: &str) -> Admin {
    Admin::PutSubscription {
        show: show.into(),
        allocation: "studio.main".into(),
        size: 100,
        burst: 200,
    }
}

pub fn set_job(job: &str, priority: i32) -> Admin {
    Admin::SetJob {
        job: job.into(),
        priority: Some(priority),
        max_cores: None,
    }
}

pub fn service(n: u32) -> Service {
    Service {
        name: format!("svc{n}"),
        ..Service::default()
    }
}

pub fn one_use() -> JoinRules {
    JoinRules {
        hosts: None,
        cidr: None,
        uses_left: Some(1),
    }
}
