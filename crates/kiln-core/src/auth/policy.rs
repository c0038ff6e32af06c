//! The rules: which right, over which scope, each action on each target needs.
//!
//! Every rule is one arm of [`rule`]. A refusal records only which rule said
//! no ([`Why`]); its text is built when it is shown, so a check costs a few
//! comparisons and no allocation either way.

use super::{forbidden_run_as, Action, Decision, Principal, Refusal, Right, Target};
use std::fmt;

/// Decides whether `who` may do `action` to `target`.
///
/// Pure: no store, no clock, no transport. The adapters resolve names to
/// targets (a job's owner and show) before asking, and ask again per item
/// when they filter a listing.
pub fn authorize<'a>(who: &'a Principal, action: Action, target: Target<'a>) -> Decision<'a> {
    match rule(who, action, target) {
        Ok(()) => Decision::Allow,
        Err(why) => Decision::Deny(Refusal {
            who,
            action,
            target,
            why,
        }),
    }
}

/// Which rule refused, and so whom to ask instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why<'a> {
    /// A role on this show would do.
    RoleOn(&'a str),
    /// A wrangler of this show could do it.
    WranglerOf(&'a str),
    /// The artist role on this show would let the caller submit.
    ArtistOn(&'a str),
    /// Submitting for someone else needs the impersonate right on this show.
    ImpersonateOn(&'a str),
    /// No job runs as this user, whoever asks.
    RunAs(&'a str),
    FarmWrangler,
    Admin,
    AnyRole,
    /// A worker's credential is for its own host's link only.
    OwnHostOnly,
    /// Only enrolled workers run host links.
    NotEnrolled,
    /// The adapter asked about an action on a target it does not apply to.
    NotApplicable,
}

fn rule<'a>(who: &Principal, action: Action, target: Target<'a>) -> Result<(), Why<'a>> {
    if let Principal::Worker { host } = who {
        return match (action, target) {
            (Action::AttachHost, Target::Host(h)) if h == host => Ok(()),
            _ => Err(Why::OwnHostOnly),
        };
    }
    let need = |right: Right, show: Option<&str>, why: Why<'a>| {
        if who.holds(right, show) {
            Ok(())
        } else {
            Err(why)
        }
    };
    match (action, target) {
        (Action::AttachHost, _) => Err(Why::NotEnrolled),
        (Action::Read, Target::Job { show, .. }) => {
            need(Right::Viewer, Some(show), Why::RoleOn(show))
        }
        // Hosts, shows and the structure are for anyone holding any role,
        // farm-wide or for one show: an artist of one show must see where
        // its frames can run.
        (Action::Read, _) => {
            if has_any_role(who) {
                Ok(())
            } else {
                Err(Why::AnyRole)
            }
        }
        (Action::ReadSecrets | Action::Job(_), Target::Job { owner, show, .. }) => {
            if owner == who.name() && who.holds(Right::Artist, Some(show)) {
                return Ok(());
            }
            need(Right::Wrangler, Some(show), Why::WranglerOf(show))
        }
        (Action::SetJob | Action::Unavoid, Target::Job { show, .. })
        | (Action::Subscribe | Action::PutShow | Action::Webhooks, Target::Show(show)) => {
            need(Right::Wrangler, Some(show), Why::WranglerOf(show))
        }
        (Action::Submit, Target::Submit { show, run_as }) => {
            if forbidden_run_as(run_as) {
                return Err(Why::RunAs(run_as));
            }
            if run_as != who.name() {
                return need(Right::Impersonate, Some(show), Why::ImpersonateOn(show));
            }
            if who.holds(Right::Artist, Some(show)) || who.holds(Right::Impersonate, Some(show)) {
                return Ok(());
            }
            Err(Why::ArtistOn(show))
        }
        // A farm-wide webhook sends every show's events (and the hosts')
        // out of the farm: only a farm-wide wrangler may point one at a URL.
        (Action::Host | Action::Limit | Action::Structure, _)
        | (Action::Webhooks, Target::Farm) => need(Right::Wrangler, None, Why::FarmWrangler),
        // Any signed-in person or service account manages its own tokens,
        // role or not: a token is only ever as strong as its user.
        (Action::OwnTokens, Target::Farm) => Ok(()),
        (Action::Users | Action::TokensForOthers | Action::Audit, _) => {
            need(Right::Admin, None, Why::Admin)
        }
        // An action on a target it does not apply to: the adapter mapped a
        // call wrongly. Refuse rather than guess.
        _ => Err(Why::NotApplicable),
    }
}

fn has_any_role(who: &Principal) -> bool {
    match who {
        Principal::User { grants, .. } => grants.iter().any(|g| g.right != Right::Impersonate),
        Principal::Worker { .. } => false,
    }
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Why::RunAs(user) = self.why {
            return write!(
                f,
                "no job may run as {user:?}: frames run as the user who submits them; submit as yourself"
            );
        }
        write!(f, "{} may not ", self.who.describe())?;
        what(f, self.action, self.target)?;
        match self.why {
            Why::RoleOn(show) => write!(f, ": ask an admin for a role on show {show}"),
            Why::WranglerOf(show) => write!(f, ": ask a wrangler of show {show}"),
            Why::ArtistOn(show) => write!(f, ": ask an admin for the artist role on show {show}"),
            Why::ImpersonateOn(show) => write!(
                f,
                ": only an account with the impersonate right on show {show} may submit for someone else; submit as yourself"
            ),
            Why::RunAs(_) => Ok(()),
            Why::FarmWrangler => write!(f, ": ask a farm-wide wrangler"),
            Why::Admin => write!(f, ": ask an admin"),
            Why::AnyRole => write!(f, ": ask an admin for a role (`kiln grant viewer USER`)"),
            Why::OwnHostOnly => write!(f, ": a worker's credential only runs its own host's link"),
            Why::NotEnrolled => write!(
                f,
                ": it is not an enrolled worker; start the worker with `kiln worker --join TOKEN`"
            ),
            Why::NotApplicable => write!(f, ": that action does not apply to that target"),
        }
    }
}

/// The action and target as the end of "alice (artist) may not …".
fn what(f: &mut fmt::Formatter<'_>, action: Action, target: Target<'_>) -> fmt::Result {
    struct T<'a>(Target<'a>);
    impl fmt::Display for T<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Target::Farm => write!(f, "the farm"),
                Target::Show(s) => write!(f, "show {s}"),
                Target::Job { id, owner, .. } => write!(f, "job {id} of {owner}"),
                Target::Submit { show, run_as } => {
                    write!(f, "a job in show {show} that runs as {run_as}")
                }
                Target::Host(h) => write!(f, "host {h}"),
            }
        }
    }
    let t = T(target);
    match action {
        Action::Read => write!(f, "read {t}"),
        Action::ReadSecrets => write!(f, "read the environment values and logs of {t}"),
        Action::Submit => write!(f, "submit {t}"),
        Action::Job(v) => write!(f, "{} {t}", v.as_str()),
        Action::SetJob => write!(f, "change the priority or core cap of {t}"),
        Action::Unavoid => write!(f, "clear the hosts avoided by {t}"),
        Action::Subscribe => write!(f, "change the subscriptions of {t}"),
        Action::PutShow => write!(f, "create or change {t}"),
        Action::Host => write!(f, "change {t}"),
        Action::Limit => write!(f, "change limits"),
        Action::Structure => write!(f, "change facilities, allocations or services"),
        Action::Users => write!(f, "manage users and their rights"),
        Action::OwnTokens => write!(f, "manage its own tokens"),
        Action::TokensForOthers => write!(f, "manage tokens of other users or workers"),
        Action::Audit => write!(f, "read the audit trail"),
        Action::Webhooks => write!(f, "manage the webhooks of {t}"),
        Action::AttachHost => write!(f, "run the worker link of {t}"),
    }
}
