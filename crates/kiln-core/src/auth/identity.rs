//! Users, their grants and credentials as the server holds them: a pure
//! registry that the applier changes (each change durable before it is
//! answered) and the transport edges read to turn a credential into a
//! [`Principal`].
//!
//! Secrets never reach this module: the edge hashes what a client presents
//! and asks by the token's public id and that hash, so the registry (and the
//! store behind it) holds nothing a reader could replay.

use super::{Grant, Principal};
use crate::model::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// A person or a service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// Where the user signs in: a password kept here, or the directory.
    pub source: Source,
    /// A disabled user's tokens stop working at once; its jobs stay.
    pub disabled: bool,
    /// An argon2id hash in PHC form, for `Source::Local` users that have one.
    pub password: Option<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Local,
    /// Made at first LDAP login; its grants follow its directory groups.
    Ldap,
}

/// A bearer credential. The client holds `kiln_<kind>_<id>_<secret>`; the
/// registry holds the id and a hash of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub user: String,
    /// What its maker called it (`laptop`, `nuke-farm-submit`).
    pub name: String,
    pub hash: String,
    pub kind: TokenKind,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A personal or service API token (`kiln token create`).
    Api,
    /// What `kiln login` receives for a password or LDAP sign-in.
    Session,
    /// A worker join token: exchanged once per host for a host credential.
    Join(JoinRules),
}

/// What a join token admits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinRules {
    /// A glob host names must match (`render*`); `None`: any name.
    pub hosts: Option<String>,
    /// An address range the joining host must come from; `None`: any.
    pub cidr: Option<String>,
    /// Joins left; `None`: unlimited until it expires.
    pub uses_left: Option<u32>,
}

/// A host's own credential, issued when it joined; the host's name is bound
/// to it until `kiln host remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCredential {
    pub host: String,
    pub hash: String,
    pub issued_at: Millis,
}

/// One change to the registry, as the store writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    PutUser(User),
    /// Replaces every grant the user holds.
    PutGrants {
        user: String,
        grants: Vec<Grant>,
    },
    PutToken(Token),
    RemoveToken(String),
    PutHost(HostCredential),
    RemoveHost(String),
}

impl Change {
    /// The store's kind and key for the record this change puts or removes.
    pub fn kind_key(&self) -> (&'static str, &str) {
        match self {
            Change::PutUser(u) => ("user", &u.name),
            Change::PutGrants { user, .. } => ("grants", user),
            Change::PutToken(t) => ("token", &t.id),
            Change::RemoveToken(id) => ("token", id),
            Change::PutHost(h) => ("host", &h.host),
            Change::RemoveHost(h) => ("host", h),
        }
    }

    /// Whether this change removes its record rather than putting it.
    pub fn is_removal(&self) -> bool {
        matches!(self, Change::RemoveToken(_) | Change::RemoveHost(_))
    }
}

/// Why a credential was not accepted. Deliberately coarse towards the
/// client (the edge says "not logged in" for all but `Expired` and
/// `Disabled`); precise in the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("unknown or revoked credential")]
    Unknown,
    #[error("the credential expired")]
    Expired,
    #[error("user {0} is disabled")]
    Disabled(String),
    #[error("a join token cannot be used to call the API")]
    JoinToken,
    #[error("{0}")]
    Join(String),
}

/// The registry.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    users: BTreeMap<String, User>,
    grants: HashMap<String, Vec<Grant>>,
    tokens: HashMap<String, Token>,
    hosts: HashMap<String, HostCredential>,
}

impl Identity {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::PutUser(u) => {
                self.users.insert(u.name.clone(), u);
            }
            Change::PutGrants { user, grants } => {
                if grants.is_empty() {
                    self.grants.remove(&user);
                } else {
                    self.grants.insert(user, grants);
                }
            }
            Change::PutToken(t) => {
                self.tokens.insert(t.id.clone(), t);
            }
            Change::RemoveToken(id) => {
                self.tokens.remove(&id);
            }
            Change::PutHost(h) => {
                self.hosts.insert(h.host.clone(), h);
            }
            Change::RemoveHost(host) => {
                self.hosts.remove(&host);
            }
        }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn grants(&self, user: &str) -> &[Grant] {
        self.grants.get(user).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn token(&self, id: &str) -> Option<&Token> {
        self.tokens.get(id)
    }

    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.tokens.values()
    }

    pub fn host(&self, host: &str) -> Option<&HostCredential> {
        self.hosts.get(host)
    }

    /// The user behind an API or session token, with the grants it holds now.
    pub fn principal(&self, id: &str, hash: &str, now: Millis) -> Result<Principal, Rejected> {
        let t = self.live_token(id, hash, now)?;
        if matches!(t.kind, TokenKind::Join(_)) {
            return Err(Rejected::JoinToken);
        }
        let user = self.users.get(&t.user).ok_or(Rejected::Unknown)?;
        if user.disabled {
            return Err(Rejected::Disabled(user.name.clone()));
        }
        Ok(Principal::user(
            &user.name,
            self.grants(&user.name).to_vec(),
        ))
    }

    /// The worker behind a host credential.
    pub fn worker(&self, host: &str, hash: &str) -> Result<Principal, Rejected> {
        match self.hosts.get(host) {
            Some(c) if same(&c.hash, hash) => Ok(Principal::Worker {
                host: host.to_string(),
            }),
            _ => Err(Rejected::Unknown),
        }
    }

    /// Checks a join: the token is live and admits this host name from this
    /// address, and the name is not already bound to another credential.
    /// Returns the changes that spend one use and bind the name to
    /// `credential_hash` (a secret the edge made and will hand back once).
    pub fn join(
        &self,
        token_id: &str,
        token_hash: &str,
        host: &str,
        from: IpAddr,
        credential_hash: &str,
        now: Millis,
    ) -> Result<Vec<Change>, Rejected> {
        let t = self.live_token(token_id, token_hash, now)?;
        let TokenKind::Join(rules) = &t.kind else {
            return Err(Rejected::Join(
                "that token is not a worker join token".into(),
            ));
        };
        if let Some(pattern) = &rules.hosts {
            if !glob(pattern, host) {
                return Err(Rejected::Join(format!(
                    "host name {host:?} does not match the join token's hosts {pattern:?}"
                )));
            }
        }
        if let Some(cidr) = &rules.cidr {
            if !in_cidr(cidr, from) {
                return Err(Rejected::Join(format!(
                    "address {from} is outside the join token's range {cidr}"
                )));
            }
        }
        if self.hosts.contains_key(host) {
            return Err(Rejected::Join(format!(
                "host name {host:?} is already enrolled; if this machine replaces it, a wrangler runs `kiln host remove {host}` first"
            )));
        }
        let mut spent = t.clone();
        let mut changes = Vec::with_capacity(2);
        match &mut spent.kind {
            TokenKind::Join(JoinRules {
                uses_left: Some(n), ..
            }) if *n <= 1 => changes.push(Change::RemoveToken(spent.id.clone())),
            TokenKind::Join(JoinRules {
                uses_left: Some(n), ..
            }) => {
                *n -= 1;
                changes.push(Change::PutToken(spent));
            }
            _ => {}
        }
        changes.push(Change::PutHost(HostCredential {
            host: host.to_string(),
            hash: credential_hash.to_string(),
            issued_at: now,
        }));
        Ok(changes)
    }

    fn live_token(&self, id: &str, hash: &str, now: Millis) -> Result<&Token, Rejected> {
        let t = self.tokens.get(id).ok_or(Rejected::Unknown)?;
        if !same(&t.hash, hash) {
            return Err(Rejected::Unknown);
        }
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(Rejected::Expired);
        }
        Ok(t)
    }
}

/// Compares two hashes in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `addr` lies in `cidr` (`10.0.0.0/8`, `fd00::/8`, or one address).
/// A range that does not parse admits nothing; callers validate it when the
/// token is made.
pub fn in_cidr(cidr: &str, addr: IpAddr) -> bool {
    let Some((net, bits)) = parse_cidr(cidr) else {
        return false;
    };
    let addr = match (net, addr) {
        (IpAddr::V4(_), IpAddr::V6(a)) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        _ => addr,
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        _ => false,
    }
}

/// `(network, prefix length)`, or `None` with the text unreadable.
pub fn parse_cidr(cidr: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = match cidr.split_once('/') {
        Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, bits.parse::<u32>().ok()?),
        None => {
            let ip = cidr.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}
