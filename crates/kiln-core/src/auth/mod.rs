//! Who may do what: the one authorization decision every adapter asks.
//!
//! Authentication (a token, a password, an LDAP bind, a worker's host
//! credential) happens at the transport's edge and yields a [`Principal`].
//! Everything after that is [`authorize`]: a pure function of the principal,
//! the [`Action`] and its [`Target`], so gRPC, REST and the OpenCue-compatible
//! API get exactly the same rules, and the rules are tested as a table
//! (`auth/tests.rs`) without a transport or a store in sight.

pub mod audit;
pub mod identity;
#[cfg(test)]
mod identity_tests;
mod policy;
#[cfg(test)]
mod tests;
pub mod views;

pub use policy::authorize;

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a grant lets its holder do. The four roles are ordered: each may do
/// all that the one below it may. `Impersonate` is a separate right, held by
/// a pipeline's service account, to submit jobs that run as someone else.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Reads jobs, frames, hosts and the farm's structure; sees another
    /// user's job environment names, never their values, and no logs of jobs
    /// it may not act on.
    Viewer,
    /// A viewer who also submits, and acts on the jobs it submitted.
    Artist,
    /// Acts on every job (of its show, when the grant names one), sets their
    /// priorities and the show's subscriptions. Farm-wide, it also runs hosts,
    /// limits, allocations, services and shows.
    Wrangler,
    /// Everything, including users, grants, others' tokens and the audit.
    Admin,
    /// May submit jobs that run as another user (of its show, when the grant
    /// names one). Not a role: it grants nothing else.
    Impersonate,
}

impl Right {
    pub const ALL: [Right; 5] = [
        Right::Viewer,
        Right::Artist,
        Right::Wrangler,
        Right::Admin,
        Right::Impersonate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Right::Viewer => "viewer",
            Right::Artist => "artist",
            Right::Wrangler => "wrangler",
            Right::Admin => "admin",
            Right::Impersonate => "impersonate",
        }
    }

    pub fn parse(s: &str) -> Option<Right> {
        Right::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether holding `self` includes `needed`.
    fn covers(self, needed: Right) -> bool {
        match (self, needed) {
            (Right::Admin, _) => true,
            (Right::Impersonate, n) => n == Right::Impersonate,
            (_, Right::Impersonate) => false,
            (have, n) => have >= n,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One right, farm-wide (`show: None`) or for one show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    pub right: Right,
    pub show: Option<String>,
}

impl Grant {
    pub fn farm(right: Right) -> Grant {
        Grant { right, show: None }
    }

    pub fn show(right: Right, show: &str) -> Grant {
        Grant {
            right,
            show: Some(show.to_string()),
        }
    }
}

/// Who is calling, as the transport's edge established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person or a service account, with the grants it holds now.
    User { name: String, grants: Vec<Grant> },
    /// An enrolled worker, bound to one host name.
    Worker { host: String },
}

impl Principal {
    pub fn user(name: &str, grants: Vec<Grant>) -> Principal {
        Principal::User {
            name: name.to_string(),
            grants,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Principal::User { name, .. } | Principal::Worker { host: name } => name,
        }
    }

    fn grants(&self) -> &[Grant] {
        match self {
            Principal::User { grants, .. } => grants,
            Principal::Worker { .. } => &[],
        }
    }

    /// Whether a grant of at least `right` covers `show` (`None`: a farm-wide
    /// grant is needed).
    pub fn holds(&self, right: Right, show: Option<&str>) -> bool {
        self.grants().iter().any(|g| {
            g.right.covers(right)
                && match (&g.show, show) {
                    (None, _) => true,
                    (Some(granted), Some(wanted)) => granted == wanted,
                    (Some(_), None) => false,
                }
        })
    }

    /// How the principal is named in a refusal: `alice (artist)`,
    /// `bob (wrangler of show demo)`, `carol (no role)`, `host render01`.
    pub fn describe(&self) -> String {
        let Principal::User { name, grants } = self else {
            return format!("host {}", self.name());
        };
        let best = grants
            .iter()
            .filter(|g| g.right != Right::Impersonate)
            .max_by(|a, b| {
                (a.right, a.show.is_none())
                    .cmp(&(b.right, b.show.is_none()))
                    .then_with(|| b.show.cmp(&a.show))
            });
        match best {
            None => format!("{name} (no role)"),
            Some(Grant { right, show: None }) => format!("{name} ({right})"),
            Some(Grant {
                right,
                show: Some(show),
            }) => format!("{name} ({right} of show {show})"),
        }
    }
}

/// A verb on a job's frames (`kiln kill|pause|resume|retry|eat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobVerb {
    Kill,
    Pause,
    Resume,
    Retry,
    Eat,
}

impl JobVerb {
    pub const ALL: [JobVerb; 5] = [
        JobVerb::Kill,
        JobVerb::Pause,
        JobVerb::Resume,
        JobVerb::Retry,
        JobVerb::Eat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobVerb::Kill => "kill",
            JobVerb::Pause => "pause",
            JobVerb::Resume => "resume",
            JobVerb::Retry => "retry",
            JobVerb::Eat => "eat",
        }
    }
}

/// Everything a caller can ask of the farm, as authorization sees it. Each
/// API call maps to one action (and one target) at its adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Lists and details: jobs (environment names only), frames, hosts, the
    /// farm's structure, the server's version.
    Read,
    /// A job's environment values and its logs.
    ReadSecrets,
    /// Submit a job into a show, to run as a user ([`Target::Submit`]).
    Submit,
    /// Act on a job's frames.
    Job(JobVerb),
    /// Change a job's priority or core cap.
    SetJob,
    /// Let a job use a host it stopped using after failures there.
    Unavoid,
    /// Create or change a show's subscriptions.
    Subscribe,
    /// Create, enable or disable a show.
    PutShow,
    /// Lock, unlock, repair, tag, move or remove a host.
    Host,
    /// Create, change or remove limits.
    Limit,
    /// Facilities, allocations and services: the shape of the farm.
    Structure,
    /// Create, list or disable users; grant and revoke rights.
    Users,
    /// Make, list or revoke one's own API tokens.
    OwnTokens,
    /// Make an API token for another user, or a worker join token; list or
    /// revoke anyone's.
    TokensForOthers,
    /// Read the audit trail.
    Audit,
    /// Make, list or delete webhooks of a show ([`Target::Show`]) or of the
    /// whole farm ([`Target::Farm`]), and read their deliveries.
    Webhooks,
    /// A worker's own link: register as a host, report its attempts.
    AttachHost,
}

/// What an action is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The farm as a whole.
    Farm,
    /// One show (subscriptions, show settings).
    Show(&'a str),
    /// One job, named for messages by its id.
    Job {
        id: i64,
        owner: &'a str,
        show: &'a str,
    },
    /// A job about to be submitted: its show and the user it would run as.
    Submit { show: &'a str, run_as: &'a str },
    /// One host.
    Host(&'a str),
}

/// The answer. A refusal borrows the question and renders its reason only
/// when shown, so a listing that filters thousands of jobs allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    Allow,
    Deny(Refusal<'a>),
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// `Ok(())`, or the refusal's text.
    pub fn into_result(self) -> Result<(), String> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Deny(r) => Err(r.to_string()),
        }
    }
}

/// Why a call was refused. Displays as who asked, what, and whom to ask
/// instead: "alice (artist) may not kill job 42 of bob: ask a wrangler of
/// show demo".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal<'a> {
    pub who: &'a Principal,
    pub action: Action,
    pub target: Target<'a>,
    pub(crate) why: policy::Why<'a>,
}

/// What the transport saw of a caller before anyone authenticated it: the
/// bearer token it presented and the address it came from. Each adapter
/// (gRPC, REST, …) fills it from its own wire; the server turns it into a
/// [`Principal`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `kiln_<kind>_<id>_<secret>`, without the `Bearer ` scheme.
    pub bearer: Option<String>,
    /// The peer's address, for the audit trail and join rules.
    pub from: Option<std::net::SocketAddr>,
}

impl Credentials {
    /// The peer's address as the audit trail writes it.
    pub fn from_text(&self) -> String {
        self.from.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// Users no job may run as, whoever submits it: frames run as their
/// submitter, never as root.
pub fn forbidden_run_as(user: &str) -> bool {
    user == "root" || user.is_empty()
}
