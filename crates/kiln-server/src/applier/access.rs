//! Who may do what to the farm, asked of `kiln_core::auth::authorize` with
//! targets read from the farm's records, and the audit record of every
//! state-changing call: written in the same commit as its change, or as
//! its refusal.

use super::{Applier, AuditDraft, Caller};
use kiln_core::auth::audit::AuditRecord;
use kiln_core::auth::{authorize, Action as A, JobVerb, Principal, Target};
use kiln_core::farm::{Action, Admin, Farm};
use kiln_core::spec::NewJob;
use kiln_core::view::*;
use kiln_core::Error as CoreError;
use kiln_store::Store;

/// What a caller who may not read a job's secrets sees of each value.
pub const HIDDEN: &str = "<hidden>";

fn allow(who: &Principal, action: A, target: Target<'_>) -> Result<(), CoreError> {
    authorize(who, action, target)
        .into_result()
        .map_err(CoreError::Forbidden)
}

/// Farm-wide reads: hosts, the structure, the server's counts.
pub(super) fn farm(who: &Principal) -> Result<(), CoreError> {
    allow(who, A::Read, Target::Farm)
}

/// Whether `who` may do `action` to the job `key` names.
pub(super) fn job(farm: &Farm, who: &Principal, action: A, key: &str) -> Result<(), CoreError> {
    let (id, owner, show) = farm.job_access(key)?;
    allow(who, action, Target::Job { id, owner, show })
}

/// Whether a listing shows `who` this job.
pub(super) fn may_read(who: &Principal, j: &JobSummary) -> bool {
    authorize(
        who,
        A::Read,
        Target::Job {
            id: j.id,
            owner: &j.user,
            show: &j.show,
        },
    )
    .is_allowed()
}

fn verb(a: Action) -> JobVerb {
    match a {
        Action::Kill => JobVerb::Kill,
        Action::Pause => JobVerb::Pause,
        Action::Resume => JobVerb::Resume,
        Action::Retry => JobVerb::Retry,
        Action::Eat => JobVerb::Eat,
    }
}

/// How the audit trail writes a call's result.
fn outcome<T>(r: &Result<T, CoreError>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => {
            let line = ok(v);
            if line.is_empty() {
                "ok".into()
            } else {
                format!("ok: {line}")
            }
        }
        Err(CoreError::Forbidden(m)) => format!("denied: {m}"),
        Err(e) => format!("failed: {e}"),
    }
}

/// The audit words for a wrangler's command: the call and what it names.
fn admin_words(cmd: &Admin) -> (&'static str, String) {
    match cmd {
        Admin::PutFacility { name } => ("facility create", format!("facility {name}")),
        Admin::RemoveFacility { name } => ("facility remove", format!("facility {name}")),
        Admin::PutAllocation { name, .. } => ("alloc set", format!("allocation {name}")),
        Admin::RemoveAllocation { name } => ("alloc remove", format!("allocation {name}")),
        Admin::PutShow { name, .. } => ("show set", format!("show {name}")),
        Admin::PutSubscription {
            show, allocation, ..
        } => ("sub set", format!("show {show} on {allocation}")),
        Admin::RemoveSubscription { show, allocation } => {
            ("sub remove", format!("show {show} on {allocation}"))
        }
        Admin::PutLimit { name, .. } => ("limit set", format!("limit {name}")),
        Admin::RemoveLimit { name } => ("limit remove", format!("limit {name}")),
        Admin::PutService(s) => ("service set", format!("service {}", s.name)),
        Admin::RemoveService { name, .. } => ("service remove", format!("service {name}")),
        Admin::MoveHost { host, .. } => ("host move", format!("host {host}")),
        Admin::TagHost { host, .. } => ("host tag", format!("host {host}")),
        Admin::Repair { host, on } => (
            if *on { "host repair" } else { "host fixed" },
            format!("host {host}"),
        ),
        Admin::SetJob { job, .. } => ("job set", format!("job {job}")),
        Admin::Unavoid { job, .. } => ("job unavoid", format!("job {job}")),
    }
}

/// Whether `who` may apply a wrangler's command.
fn admin_allowed(farm: &Farm, who: &Principal, cmd: &Admin) -> Result<(), CoreError> {
    match cmd {
        Admin::PutFacility { .. }
        | Admin::RemoveFacility { .. }
        | Admin::PutAllocation { .. }
        | Admin::RemoveAllocation { .. }
        | Admin::PutService(_)
        | Admin::RemoveService { .. } => allow(who, A::Structure, Target::Farm),
        Admin::PutShow { name, .. } => allow(who, A::PutShow, Target::Show(name)),
        Admin::PutSubscription { show, .. } | Admin::RemoveSubscription { show, .. } => {
            allow(who, A::Subscribe, Target::Show(show))
        }
        Admin::PutLimit { .. } | Admin::RemoveLimit { .. } => allow(who, A::Limit, Target::Farm),
        Admin::MoveHost { host, .. } | Admin::TagHost { host, .. } | Admin::Repair { host, .. } => {
            allow(who, A::Host, Target::Host(host))
        }
        Admin::SetJob { job: key, .. } => job(farm, who, A::SetJob, key),
        Admin::Unavoid { job: key, .. } => job(farm, who, A::Unavoid, key),
    }
}

impl<S: Store> Applier<S> {
    /// Numbers `draft` and adds it to this step's commit.
    pub(super) fn record(&mut self, d: AuditDraft, now: i64) {
        self.next_audit += 1;
        self.audit.push(AuditRecord {
            id: self.next_audit,
            at: now,
            who: d.who,
            from: d.from,
            action: d.action,
            target: d.target,
            outcome: d.outcome,
        });
    }

    pub(super) fn audit(
        &mut self,
        caller: &Caller,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: String,
        now: i64,
    ) {
        let who = match &caller.who {
            Principal::User { name, .. } => name.clone(),
            Principal::Worker { host } => format!("host {host}"),
        };
        self.record(
            AuditDraft {
                who,
                from: caller.from.clone(),
                action: action.into(),
                target: target.into(),
                outcome,
            },
            now,
        );
    }

    pub(super) fn submit(
        &mut self,
        caller: &Caller,
        job: NewJob,
        now: i64,
    ) -> Result<Submitted, CoreError> {
        let target = format!("job {} in show {} as {}", job.name, job.show, job.user);
        let name = job.name.clone();
        let v = allow(
            &caller.who,
            A::Submit,
            Target::Submit {
                show: &job.show,
                run_as: &job.user,
            },
        )
        .and_then(|()| self.farm.submit(job, now))
        .map(|(id, frames)| Submitted {
            id: id.0,
            name,
            frames,
        });
        let out = outcome(&v, |s| format!("job {}, {} frame(s)", s.id, s.frames));
        self.audit(caller, "submit", target, out, now);
        v
    }

    pub(super) fn job_detail(&self, caller: &Caller, key: &str) -> Result<JobDetail, CoreError> {
        job(&self.farm, &caller.who, A::Read, key)?;
        let mut d = self.farm.job_detail(key)?;
        if job(&self.farm, &caller.who, A::ReadSecrets, key).is_err() {
            for v in d.env.values_mut() {
                *v = HIDDEN.to_string();
            }
        }
        Ok(d)
    }

    pub(super) fn act(
        &mut self,
        caller: &Caller,
        action: Action,
        key: &str,
        targets: &[String],
        state: Option<DisplayState>,
        now: i64,
    ) -> Result<u32, CoreError> {
        let v = job(&self.farm, &caller.who, A::Job(verb(action)), key).and_then(|()| {
            self.farm
                .act(action, key, targets, state, caller.who.name(), now)
        });
        let mut target = format!("job {key}");
        if !targets.is_empty() {
            target = format!("{} of {target}", targets.join(", "));
        }
        let out = outcome(&v, |n| format!("{n} frame(s)"));
        self.audit(caller, action.as_str(), target, out, now);
        v
    }

    pub(super) fn lock(
        &mut self,
        caller: &Caller,
        host: &str,
        locked: bool,
        now: i64,
    ) -> Result<HostInfo, CoreError> {
        let v = allow(&caller.who, A::Host, Target::Host(host))
            .and_then(|()| self.farm.set_lock(host, locked, now))
            .map(|id| {
                self.farm
                    .hosts()
                    .into_iter()
                    .find(|h| h.id == id.0)
                    .expect("just locked")
            });
        let word = if locked { "host lock" } else { "host unlock" };
        let out = outcome(&v, |_| String::new());
        self.audit(caller, word, format!("host {host}"), out, now);
        v
    }

    pub(super) fn admin(
        &mut self,
        caller: &Caller,
        cmd: Admin,
        now: i64,
    ) -> Result<String, CoreError> {
        let (word, target) = admin_words(&cmd);
        let v =
            admin_allowed(&self.farm, &caller.who, &cmd).and_then(|()| self.farm.admin(cmd, now));
        let out = outcome(&v, |line| line.clone());
        self.audit(caller, word, target, out, now);
        v
    }
}
