//! The matrix's rows and columns: who calls, what, on which target, and
//! the decision each cell expects.

use kiln_core::auth::{Grant, Right};

/// The callers, one column each: nine users (their role in the name), then
/// six that present no valid user credential: an artist's token after its
/// user was disabled, a revoked token, an expired one, the enrolled host's
/// own credential, no token at all, and the admin's token with a wrong
/// secret.
pub const COLS: [&str; 15] = [
    "adm", "wfarm", "wdemo", "afarm", "ademo", "vfarm", "vdemo", "imp", "none", "off", "old",
    "exp", "host", "anon", "junk",
];
/// Columns from this one on are not signed in: every call is refused as
/// unauthenticated, and nothing is audited (no principal made the call).
pub const USERS: usize = 9;

pub fn grants(user: &str) -> Vec<Grant> {
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
pub enum J {
    OwnDemo,
    BobsDemo,
    OwnOther,
    BobsOther,
}

pub const JOBS: [J; 4] = [J::OwnDemo, J::BobsDemo, J::OwnOther, J::BobsOther];

/// Whom a submit runs as.
#[derive(Debug, Clone, Copy)]
pub enum RunAs {
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
pub enum Call {
    Submit(&'static str, RunAs),
    ListJobs(bool),
    /// `list_jobs(true)` shows every job of the show (`Y`) or none (`.`).
    SeesJobsOf(&'static str),
    /// The history export: open to whoever is signed in; its rows are
    /// those of the jobs the caller may read (tests/history.rs checks them).
    History,
    Job(J),
    /// `job` shows the environment's values (`Y`) or `<hidden>` (`.`).
    EnvValues(J),
    Frames(J),
    ReadLog(J),
    /// `grep` over the job's logs: as reading them.
    Grep(J),
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
    /// A password sign-in as the dummy user, who has no password: the
    /// caller's own token makes no difference.
    Login,
}

impl Call {
    /// The rows that need no user's credential (the worker link, a
    /// sign-in): there every caller is refused alike, as unauthenticated or
    /// by closing the link.
    pub fn on_link(self) -> bool {
        matches!(
            self,
            Call::AttachAs | Call::RegisterAsAnother | Call::JoinWith | Call::Login
        )
    }
}

/// The expected decisions, one row per call and target, one character per
/// column of [`COLS`]: `Y` allowed, `.` refused.
pub fn table() -> Vec<(Call, &'static str)> {
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
        (History, SIGNED_IN),
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
        (Login, "..............."),
    ];
    for j in JOBS {
        rows.push((Job(j), read(j)));
        rows.push((Frames(j), read(j)));
        rows.push((EnvValues(j), act(j)));
        rows.push((ReadLog(j), act(j)));
        rows.push((Grep(j), act(j)));
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
