//! Changes to the identity registry: users, grants, tokens, sign-ins and
//! worker joins. Secrets arrive already made and hashed by the edge
//! (`auth::secret`); here each change is authorized, checked against the
//! registry, applied, queued for the step's commit and audited.

use super::{Applier, Caller};
use crate::auth::secret::NewToken;
use kiln_core::auth::identity::{Change, JoinRules, Source, Token, TokenKind, User};
use kiln_core::auth::views::{IdentityCmd, IdentityDone, LoggedIn};
use kiln_core::auth::{authorize, Action as A, Grant, Principal, Right, Target};
use kiln_core::Error as CoreError;
use kiln_store::Store;
use std::net::IpAddr;

/// How long a sign-in's session token lasts.
pub const SESSION_MS: i64 = 30 * 86_400_000;

/// An identity command with its secrets prepared by the edge: the
/// password's argon2id hash (the command's own password is blanked), and
/// the token a `CreateToken` hands out.
#[derive(Debug, Clone)]
pub struct IdentityAsk {
    pub cmd: IdentityCmd,
    pub password_hash: Option<String>,
    pub token: Option<NewToken>,
}

/// A sign-in the edge verified (a password, or a directory bind).
#[derive(Debug, Clone)]
pub struct LoginAsk {
    pub user: String,
    pub from: String,
    /// `Some`: a directory sign-in, with the grants its groups map to.
    pub directory_grants: Option<Vec<Grant>>,
    pub token_name: String,
    pub token: NewToken,
}

/// A worker's join: the presented token's id and hash, and the host
/// credential to bind the name to.
#[derive(Debug, Clone)]
pub struct JoinAsk {
    pub token_id: String,
    pub token_hash: String,
    pub host: String,
    pub from: Option<IpAddr>,
    pub from_text: String,
    pub credential: NewToken,
}

fn allow(who: &Principal, action: A, target: Target<'_>) -> Result<(), CoreError> {
    authorize(who, action, target)
        .into_result()
        .map_err(CoreError::Forbidden)
}

fn invalid(m: impl Into<String>) -> CoreError {
    CoreError::Invalid(m.into())
}

/// User, token and host names: what fits a command line and a log line.
fn check_name(what: &str, name: &str) -> Result<(), CoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {name:?} is not a valid name; use 1-128 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

fn grant_text(g: &Grant) -> String {
    match &g.show {
        None => format!("{} (farm-wide)", g.right),
        Some(s) => format!("{} of show {s}", g.right),
    }
}

impl<S: Store> Applier<S> {
    fn change(&mut self, c: Change) {
        self.identity.apply(c.clone());
        self.changes.push(c);
    }

    fn existing_user(&self, name: &str) -> Result<User, CoreError> {
        self.identity.user(name).cloned().ok_or_else(|| {
            CoreError::NotFound(format!(
                "no user {name:?}: `kiln user list` shows the users; `kiln user create {name}` makes one"
            ))
        })
    }

    pub(super) fn identity_cmd(
        &mut self,
        caller: &Caller,
        ask: IdentityAsk,
        now: i64,
    ) -> Result<IdentityDone, CoreError> {
        let (word, target) = words(&ask.cmd);
        let v = self.identity_change(caller, ask, now);
        let out = match &v {
            Ok(d) => format!("ok: {}", d.message),
            Err(CoreError::Forbidden(m)) => format!("denied: {m}"),
            Err(e) => format!("failed: {e}"),
        };
        self.audit(caller, word, target, out, now);
        v
    }

    fn identity_change(
        &mut self,
        caller: &Caller,
        ask: IdentityAsk,
        now: i64,
    ) -> Result<IdentityDone, CoreError> {
        let who = &caller.who;
        let me = who.name().to_string();
        let done = |message: String| IdentityDone {
            message,
            ..IdentityDone::default()
        };
        match ask.cmd {
            IdentityCmd::CreateUser { name, .. } => {
                allow(who, A::Users, Target::Farm)?;
                check_name("user", &name)?;
                if self.identity.user(&name).is_some() {
                    return Err(invalid(format!(
                        "user {name} exists already: `kiln grant ROLE {name}` gives it a role"
                    )));
                }
                self.change(Change::PutUser(User {
                    name: name.clone(),
                    source: Source::Local,
                    disabled: false,
                    password: ask.password_hash,
                    created_at: now,
                }));
                Ok(done(format!("created user {name}")))
            }
            IdentityCmd::SetDisabled { name, disabled } => {
                allow(who, A::Users, Target::Farm)?;
                let mut u = self.existing_user(&name)?;
                if disabled && name == me {
                    return Err(invalid(
                        "you cannot disable yourself: ask another admin".to_string(),
                    ));
                }
                u.disabled = disabled;
                self.change(Change::PutUser(u));
                let word = if disabled { "disabled" } else { "enabled" };
                Ok(done(format!("{word} user {name}")))
            }
            IdentityCmd::Grant { user, grant } => {
                allow(who, A::Users, Target::Farm)?;
                self.existing_user(&user)?;
                if let Some(show) = &grant.show {
                    check_name("show", show)?;
                }
                let mut grants = self.identity.grants(&user).to_vec();
                if grants.contains(&grant) {
                    return Ok(done(format!("{user} already holds {}", grant_text(&grant))));
                }
                let text = grant_text(&grant);
                grants.push(grant);
                self.change(Change::PutGrants {
                    user: user.clone(),
                    grants,
                });
                Ok(done(format!("granted {text} to {user}")))
            }
            IdentityCmd::Revoke { user, grant } => {
                allow(who, A::Users, Target::Farm)?;
                self.existing_user(&user)?;
                let mut grants = self.identity.grants(&user).to_vec();
                let Some(at) = grants.iter().position(|g| *g == grant) else {
                    return Err(invalid(format!(
                        "{user} does not hold {}: `kiln user list` shows who holds what",
                        grant_text(&grant)
                    )));
                };
                if grant == Grant::farm(Right::Admin) && self.admins().len() <= 1 {
                    return Err(invalid(format!(
                        "{user} is the farm's last admin: grant admin to someone else first"
                    )));
                }
                grants.remove(at);
                self.change(Change::PutGrants {
                    user: user.clone(),
                    grants,
                });
                Ok(done(format!("revoked {} from {user}", grant_text(&grant))))
            }
            IdentityCmd::SetPassword { user, .. } => {
                if user != me {
                    allow(who, A::Users, Target::Farm)?;
                }
                let mut u = self.existing_user(&user)?;
                if u.source != Source::Local {
                    return Err(invalid(format!(
                        "{user} signs in through the directory: change the password there"
                    )));
                }
                u.password = ask.password_hash;
                self.change(Change::PutUser(u));
                Ok(done(format!("set the password of {user}")))
            }
            IdentityCmd::CreateToken {
                name,
                user,
                expires_in,
                join,
            } => {
                check_name("token name", &name)?;
                let owner = user.unwrap_or_else(|| me.clone());
                let kind = match join {
                    Some(rules) => {
                        allow(who, A::TokensForOthers, Target::Farm)?;
                        check_join_rules(&rules)?;
                        TokenKind::Join(rules)
                    }
                    None => {
                        if owner == me {
                            allow(who, A::OwnTokens, Target::Farm)?;
                        } else {
                            allow(who, A::TokensForOthers, Target::Farm)?;
                        }
                        let u = self.existing_user(&owner)?;
                        if u.disabled {
                            return Err(invalid(format!(
                                "user {owner} is disabled: enable it first"
                            )));
                        }
                        TokenKind::Api
                    }
                };
                if expires_in.is_some_and(|ms| ms <= 0) {
                    return Err(invalid("expires: give a positive duration such as 30d"));
                }
                let made = ask
                    .token
                    .ok_or_else(|| CoreError::Invalid("no token was made".into()))?;
                let is_join = matches!(kind, TokenKind::Join(_));
                self.change(Change::PutToken(Token {
                    id: made.id.clone(),
                    user: owner.clone(),
                    name: name.clone(),
                    hash: made.hash,
                    kind,
                    created_at: now,
                    expires_at: expires_in.map(|ms| now + ms),
                }));
                let message = if is_join {
                    format!("made worker join token {name} ({})", made.id)
                } else {
                    format!("made token {name} ({}) for {owner}", made.id)
                };
                Ok(IdentityDone {
                    message,
                    token: Some(made.text),
                    token_id: Some(made.id),
                })
            }
            IdentityCmd::RevokeToken(key) => {
                let t = self
                    .identity
                    .token(&key)
                    .or_else(|| {
                        self.identity
                            .tokens()
                            .find(|t| t.user == me && t.name == key)
                    })
                    .cloned()
                    .ok_or_else(|| {
                        CoreError::NotFound(format!(
                            "no token {key:?}: `kiln token list` shows ids and names"
                        ))
                    })?;
                let joins = matches!(t.kind, TokenKind::Join(_));
                if t.user == me && !joins {
                    allow(who, A::OwnTokens, Target::Farm)?;
                } else {
                    allow(who, A::TokensForOthers, Target::Farm)?;
                }
                self.change(Change::RemoveToken(t.id.clone()));
                Ok(done(format!("revoked token {} ({})", t.name, t.id)))
            }
            IdentityCmd::RemoveHost(host) => {
                allow(who, A::Host, Target::Host(&host))?;
                if self.identity.host(&host).is_none() {
                    return Err(CoreError::NotFound(format!(
                        "host {host:?} holds no credential: `kiln hosts` lists the hosts"
                    )));
                }
                self.change(Change::RemoveHost(host.clone()));
                // Its open links end now: the worker's reconnect is refused.
                self.sessions.retain(|_, (h, _)| *h != host);
                Ok(done(format!(
                    "removed host {host}'s credential; it must join again to reconnect"
                )))
            }
        }
    }

    fn admins(&self) -> Vec<String> {
        self.identity
            .users()
            .filter(|u| {
                !u.disabled
                    && self
                        .identity
                        .grants(&u.name)
                        .contains(&Grant::farm(Right::Admin))
            })
            .map(|u| u.name.clone())
            .collect()
    }

    pub(super) fn login(&mut self, ask: LoginAsk, now: i64) -> Result<LoggedIn, CoreError> {
        let caller = Caller {
            who: Principal::user(&ask.user, vec![]),
            from: ask.from.clone(),
        };
        let v = self.issue_session(ask, now);
        let out = match &v {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("denied: {e}"),
        };
        self.audit(
            &caller,
            "login",
            format!("user {}", caller.who.name()),
            out,
            now,
        );
        v
    }

    fn issue_session(&mut self, ask: LoginAsk, now: i64) -> Result<LoggedIn, CoreError> {
        let name = ask.user;
        match (self.identity.user(&name).cloned(), ask.directory_grants) {
            (Some(u), _) if u.disabled => {
                return Err(CoreError::Forbidden(format!(
                    "user {name} is disabled: ask an admin"
                )))
            }
            (None, None) => return Err(CoreError::Forbidden("unknown user".into())),
            (None, Some(grants)) => {
                check_name("user", &name)?;
                self.change(Change::PutUser(User {
                    name: name.clone(),
                    source: Source::Ldap,
                    disabled: false,
                    password: None,
                    created_at: now,
                }));
                self.change(Change::PutGrants {
                    user: name.clone(),
                    grants,
                });
            }
            // A directory user's roles follow its groups at each sign-in.
            (Some(u), Some(grants)) if u.source == Source::Ldap => {
                if self.identity.grants(&name) != grants.as_slice() {
                    self.change(Change::PutGrants {
                        user: name.clone(),
                        grants,
                    });
                }
            }
            // The name is a local account's: a directory's word is not its.
            (Some(_), Some(_)) => {
                return Err(CoreError::Forbidden(format!(
                    "{name} is a local user: sign in with its Kiln password"
                )))
            }
            (Some(_), None) => {}
        }
        let expires_at = now + SESSION_MS;
        self.change(Change::PutToken(Token {
            id: ask.token.id.clone(),
            user: name.clone(),
            name: ask.token_name,
            hash: ask.token.hash,
            kind: TokenKind::Session,
            created_at: now,
            expires_at: Some(expires_at),
        }));
        Ok(LoggedIn {
            grants: self.identity.grants(&name).to_vec(),
            user: name,
            token: ask.token.text,
            expires_at: Some(expires_at),
        })
    }

    pub(super) fn join(&mut self, ask: JoinAsk, now: i64) -> Result<String, CoreError> {
        let from = ask.from.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let v = check_name("host", &ask.host)
            .and_then(|()| {
                self.identity
                    .join(
                        &ask.token_id,
                        &ask.token_hash,
                        &ask.host,
                        from,
                        &ask.credential.hash,
                        now,
                    )
                    .map_err(|r| {
                        use kiln_core::auth::identity::Rejected;
                        CoreError::Forbidden(match r {
                            Rejected::Join(m) => m,
                            _ => "the join token is unknown, used up, revoked or expired: make a new one with `kiln token create --worker`".into(),
                        })
                    })
            });
        let out = match &v {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("denied: {e}"),
        };
        let caller = Caller {
            who: Principal::Worker {
                host: ask.host.clone(),
            },
            from: ask.from_text,
        };
        self.audit(&caller, "join", format!("host {}", ask.host), out, now);
        for c in v? {
            self.change(c);
        }
        Ok(ask.credential.text)
    }
}

fn check_join_rules(r: &JoinRules) -> Result<(), CoreError> {
    if let Some(c) = &r.cidr {
        if kiln_core::auth::identity::parse_cidr(c).is_none() {
            return Err(invalid(format!(
                "cidr {c:?} is not an address range: write it like 10.0.0.0/8"
            )));
        }
    }
    if let Some(h) = &r.hosts {
        if h.is_empty() || h.len() > 128 {
            return Err(invalid("hosts: give a pattern such as 'render*'"));
        }
    }
    Ok(())
}

/// The audit words for an identity command: the call and what it names.
fn words(c: &IdentityCmd) -> (&'static str, String) {
    match c {
        IdentityCmd::CreateUser { name, .. } => ("user create", format!("user {name}")),
        IdentityCmd::SetDisabled { name, disabled } => (
            if *disabled {
                "user disable"
            } else {
                "user enable"
            },
            format!("user {name}"),
        ),
        IdentityCmd::Grant { user, grant } => {
            ("grant", format!("user {user}: {}", grant_text(grant)))
        }
        IdentityCmd::Revoke { user, grant } => {
            ("revoke", format!("user {user}: {}", grant_text(grant)))
        }
        IdentityCmd::SetPassword { user, .. } => ("password", format!("user {user}")),
        IdentityCmd::CreateToken {
            name, user, join, ..
        } => (
            if join.is_some() {
                "token create --worker"
            } else {
                "token create"
            },
            match user {
                Some(u) => format!("token {name} of {u}"),
                None => format!("token {name}"),
            },
        ),
        IdentityCmd::RevokeToken(k) => ("token revoke", format!("token {k}")),
        IdentityCmd::RemoveHost(h) => ("host remove", format!("host {h}")),
    }
}
