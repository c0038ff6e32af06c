//! Conversions of the identity API: users, grants, tokens, the audit trail.

use crate::pb;
use crate::pb::identity_request::Cmd;
use crate::{Error, Result};
use kiln_core::auth::audit::AuditRecord;
use kiln_core::auth::identity::{JoinRules, Source};
use kiln_core::auth::views::*;
use kiln_core::auth::{Grant, Right};

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn time(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

pub(crate) fn source_text(s: Source) -> &'static str {
    match s {
        Source::Local => "local",
        Source::Ldap => "ldap",
    }
}

pub(crate) fn source(s: &str) -> Source {
    if s == "ldap" {
        Source::Ldap
    } else {
        Source::Local
    }
}

impl From<Grant> for pb::GrantMsg {
    fn from(g: Grant) -> Self {
        pb::GrantMsg {
            right: g.right.as_str().to_string(),
            show: g.show.unwrap_or_default(),
        }
    }
}

/// A grant as the wire carries it; an unknown right names the ones there are.
pub(crate) fn grant(g: pb::GrantMsg) -> Result<Grant> {
    let right = Right::parse(&g.right).ok_or_else(|| {
        Error::Invalid(format!(
            "role {:?} is not one Kiln has: use viewer, artist, wrangler, admin or impersonate",
            g.right
        ))
    })?;
    Ok(Grant {
        right,
        show: some(g.show),
    })
}

pub(crate) fn grants(v: Vec<pb::GrantMsg>) -> Result<Vec<Grant>> {
    v.into_iter().map(grant).collect()
}

fn pb_grants(v: Vec<Grant>) -> Vec<pb::GrantMsg> {
    v.into_iter().map(Into::into).collect()
}

impl From<WhoAmI> for pb::WhoAmIReply {
    fn from(w: WhoAmI) -> Self {
        pb::WhoAmIReply {
            user: w.user,
            grants: pb_grants(w.grants),
            source: source_text(w.source).into(),
        }
    }
}

pub(crate) fn whoami(r: pb::WhoAmIReply) -> Result<WhoAmI> {
    Ok(WhoAmI {
        user: r.user,
        grants: grants(r.grants)?,
        source: source(&r.source),
    })
}

impl From<LoggedIn> for pb::LoginReply {
    fn from(l: LoggedIn) -> Self {
        pb::LoginReply {
            user: l.user,
            token: l.token,
            expires_at: l.expires_at.unwrap_or(0),
            grants: pb_grants(l.grants),
        }
    }
}

pub(crate) fn logged_in(r: pb::LoginReply) -> Result<LoggedIn> {
    Ok(LoggedIn {
        user: r.user,
        token: r.token,
        expires_at: time(r.expires_at),
        grants: grants(r.grants)?,
    })
}

impl From<UserInfo> for pb::UserMsg {
    fn from(u: UserInfo) -> Self {
        pb::UserMsg {
            name: u.name,
            source: source_text(u.source).into(),
            disabled: u.disabled,
            grants: pb_grants(u.grants),
            created_at: u.created_at,
            has_password: u.has_password,
        }
    }
}

pub(crate) fn user_info(u: pb::UserMsg) -> Result<UserInfo> {
    Ok(UserInfo {
        name: u.name,
        source: source(&u.source),
        disabled: u.disabled,
        grants: grants(u.grants)?,
        created_at: u.created_at,
        has_password: u.has_password,
    })
}

impl From<TokenInfo> for pb::TokenMsg {
    fn from(t: TokenInfo) -> Self {
        let join = t.join.unwrap_or_default();
        pb::TokenMsg {
            id: t.id,
            user: t.user,
            name: t.name,
            kind: t.kind,
            created_at: t.created_at,
            expires_at: t.expires_at.unwrap_or(0),
            hosts: join.hosts.unwrap_or_default(),
            cidr: join.cidr.unwrap_or_default(),
            uses_left: join.uses_left.map_or(-1, i64::from),
        }
    }
}

pub(crate) fn token_info(t: pb::TokenMsg) -> TokenInfo {
    let join = (t.kind == "join").then(|| JoinRules {
        hosts: some(t.hosts),
        cidr: some(t.cidr),
        uses_left: u32::try_from(t.uses_left).ok(),
    });
    TokenInfo {
        id: t.id,
        user: t.user,
        name: t.name,
        kind: t.kind,
        created_at: t.created_at,
        expires_at: time(t.expires_at),
        join,
    }
}

impl From<AuditRecord> for pb::AuditMsg {
    fn from(a: AuditRecord) -> Self {
        pb::AuditMsg {
            id: a.id,
            at: a.at,
            who: a.who,
            from: a.from,
            action: a.action,
            target: a.target,
            outcome: a.outcome,
        }
    }
}

pub(crate) fn audit_record(a: pb::AuditMsg) -> AuditRecord {
    AuditRecord {
        id: a.id,
        at: a.at,
        who: a.who,
        from: a.from,
        action: a.action,
        target: a.target,
        outcome: a.outcome,
    }
}

impl From<IdentityCmd> for pb::IdentityRequest {
    fn from(c: IdentityCmd) -> Self {
        let named = |name| pb::NamedRef { name };
        let cmd = match c {
            IdentityCmd::CreateUser { name, password } => Cmd::CreateUser(pb::CreateUser {
                name,
                password: password.unwrap_or_default(),
            }),
            IdentityCmd::SetDisabled { name, disabled } => {
                Cmd::SetDisabled(pb::SetDisabled { name, disabled })
            }
            IdentityCmd::Grant { user, grant } => Cmd::Grant(pb::GrantChange {
                user,
                grant: Some(grant.into()),
            }),
            IdentityCmd::Revoke { user, grant } => Cmd::Revoke(pb::GrantChange {
                user,
                grant: Some(grant.into()),
            }),
            IdentityCmd::SetPassword { user, password } => {
                Cmd::SetPassword(pb::SetPassword { user, password })
            }
            IdentityCmd::CreateToken {
                name,
                user,
                expires_in,
                join,
            } => {
                let worker = join.is_some();
                let join = join.unwrap_or_default();
                Cmd::CreateToken(pb::CreateToken {
                    name,
                    user: user.unwrap_or_default(),
                    expires_in: expires_in.unwrap_or(0),
                    worker,
                    hosts: join.hosts.unwrap_or_default(),
                    cidr: join.cidr.unwrap_or_default(),
                    uses: join.uses_left.unwrap_or(0),
                })
            }
            IdentityCmd::RevokeToken(id) => Cmd::RevokeToken(named(id)),
            IdentityCmd::RemoveHost(h) => Cmd::RemoveHost(named(h)),
        };
        pb::IdentityRequest { cmd: Some(cmd) }
    }
}

/// An identity command off the wire; what the wire cannot say wrongly is
/// left to the server to check.
pub(crate) fn identity_cmd(r: pb::IdentityRequest) -> Result<IdentityCmd> {
    let missing = |what: &str| Error::Invalid(format!("{what}: missing; send a grant"));
    Ok(match r.cmd {
        None => {
            return Err(Error::Invalid(
                "identity request names no command; this client may be newer than the server"
                    .into(),
            ))
        }
        Some(Cmd::CreateUser(u)) => IdentityCmd::CreateUser {
            name: u.name,
            password: some(u.password),
        },
        Some(Cmd::SetDisabled(d)) => IdentityCmd::SetDisabled {
            name: d.name,
            disabled: d.disabled,
        },
        Some(Cmd::Grant(g)) => IdentityCmd::Grant {
            user: g.user,
            grant: grant(g.grant.ok_or_else(|| missing("grant"))?)?,
        },
        Some(Cmd::Revoke(g)) => IdentityCmd::Revoke {
            user: g.user,
            grant: grant(g.grant.ok_or_else(|| missing("grant"))?)?,
        },
        Some(Cmd::SetPassword(p)) => IdentityCmd::SetPassword {
            user: p.user,
            password: p.password,
        },
        Some(Cmd::CreateToken(t)) => IdentityCmd::CreateToken {
            name: t.name,
            user: some(t.user),
            expires_in: time(t.expires_in),
            join: t.worker.then(|| JoinRules {
                hosts: some(t.hosts),
                cidr: some(t.cidr),
                uses_left: (t.uses != 0).then_some(t.uses),
            }),
        },
        Some(Cmd::RevokeToken(n)) => IdentityCmd::RevokeToken(n.name),
        Some(Cmd::RemoveHost(n)) => IdentityCmd::RemoveHost(n.name),
    })
}

impl From<IdentityDone> for pb::IdentityReply {
    fn from(d: IdentityDone) -> Self {
        pb::IdentityReply {
            message: d.message,
            token: d.token.unwrap_or_default(),
            token_id: d.token_id.unwrap_or_default(),
        }
    }
}

pub(crate) fn identity_done(r: pb::IdentityReply) -> IdentityDone {
    IdentityDone {
        message: r.message,
        token: some(r.token),
        token_id: some(r.token_id),
    }
}
