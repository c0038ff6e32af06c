//! LDAP / Active Directory sign-in: a simple bind as the user proves the
//! password, then a search of the user's groups maps them to grants
//! (`--ldap-role ROLE[:SHOW]=GROUP`). The directory is asked at every login,
//! so a user's grants follow their groups; nothing of the password is kept
//! or logged.

use kiln_core::auth::{Grant, Right};
use ldap3::{dn_escape, ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Groups whose members are the user, whichever way the schema lists them:
/// `groupOfNames` (member), `groupOfUniqueNames` (uniqueMember) or a NIS
/// `posixGroup` (memberUid). Active Directory: `(member={dn})`, or
/// `(member:1.2.840.113556.1.4.1941:={dn})` for nested groups.
pub const DEFAULT_GROUP_FILTER: &str = "(|(member={dn})(uniqueMember={dn})(memberUid={user}))";
/// How a user's entry is found under `user_base`, when one is set.
pub const DEFAULT_USER_FILTER: &str = "(|(uid={user})(sAMAccountName={user}))";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// What the user binds as, `{user}` standing for the name typed:
    /// `uid={user},ou=people,dc=kiln,dc=test`, or for Active Directory
    /// `{user}@corp.example.com`.
    pub user_dn: String,
    /// Where groups are searched (subtree).
    pub group_base: String,
    /// `{dn}`: the user's DN; `{user}`: the name typed.
    pub group_filter: String,
    pub roles: Vec<RoleMap>,
    /// StartTLS on an `ldap://` URL before the bind.
    pub starttls: bool,
    /// A PEM CA to trust for ldaps/StartTLS; else the system's roots.
    pub ca: Option<PathBuf>,
    /// For connect, bind and search together.
    pub timeout: Duration,
    /// When set, the user's DN for `{dn}` is looked up here after the bind,
    /// with `user_filter`: for Active Directory, whose bind name
    /// (`alice@corp.example.com`) is not the DN its groups list.
    pub user_base: Option<String>,
    pub user_filter: String,
}

impl LdapConfig {
    /// A configuration with the defaults: the group filter above, no roles,
    /// no TLS upgrade, the system's roots, 5 s.
    pub fn new(url: &str, user_dn: &str, group_base: &str) -> LdapConfig {
        LdapConfig {
            url: url.to_string(),
            user_dn: user_dn.to_string(),
            group_base: group_base.to_string(),
            group_filter: DEFAULT_GROUP_FILTER.to_string(),
            roles: Vec::new(),
            starttls: false,
            ca: None,
            timeout: DEFAULT_TIMEOUT,
            user_base: None,
            user_filter: DEFAULT_USER_FILTER.to_string(),
        }
    }

    /// Checks what can be checked before any login: for the server to refuse
    /// to start with, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("ldap://") || self.url.starts_with("ldaps://")) {
            return Err(format!(
                "--ldap-url {}: give ldap://HOST[:389] or ldaps://HOST[:636]",
                self.url
            ));
        }
        if !self.user_dn.contains("{user}") {
            return Err(format!(
                "--ldap-user-dn {}: must contain {{user}}, e.g. uid={{user}},ou=people,dc=example,dc=com or {{user}}@corp.example.com",
                self.user_dn
            ));
        }
        if !self.group_filter.starts_with('(') || !self.group_filter.ends_with(')') {
            return Err(format!(
                "--ldap-group-filter {}: must be an LDAP filter in parentheses, e.g. {DEFAULT_GROUP_FILTER}",
                self.group_filter
            ));
        }
        if let Some(ca) = &self.ca {
            tls_config(ca).map_err(|e| e.to_string())?;
        }
        if self.roles.is_empty() {
            return Err(
                "no --ldap-role: give at least one, e.g. --ldap-role artist=artists".into(),
            );
        }
        Ok(())
    }
}

/// Members of `group` get `grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap {
    /// A group's cn (`artists`) or its full DN.
    pub group: String,
    pub grant: Grant,
}

const ROLE_EXAMPLE: &str =
    "e.g. --ldap-role artist=artists, --ldap-role wrangler:demo=demo-wranglers or --ldap-role admin=cn=admins,ou=groups,dc=example,dc=com";

impl RoleMap {
    /// `ROLE[:SHOW]=GROUP`: ROLE is viewer|artist|wrangler|admin|impersonate;
    /// GROUP is a group's cn or its full DN. Split at the first `=`, since a
    /// DN has more.
    pub fn parse(s: &str) -> Result<RoleMap, String> {
        let bad =
            |why: &str| format!("--ldap-role {s}: {why}; give ROLE[:SHOW]=GROUP, {ROLE_EXAMPLE}");
        let (role, group) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (role, show) = match role.split_once(':') {
            Some((r, show)) if show.trim().is_empty() => {
                return Err(bad(&format!("no show after {r}:")))
            }
            Some((r, show)) => (r, Some(show.trim())),
            None => (role, None),
        };
        let right = Right::parse(role.trim()).ok_or_else(|| {
            bad(&format!(
                "unknown role {:?} (viewer, artist, wrangler, admin or impersonate)",
                role.trim()
            ))
        })?;
        let group = group.trim();
        if group.is_empty() {
            return Err(bad("no group after '='"));
        }
        let grant = match show {
            Some(show) => Grant::show(right, show),
            None => Grant::farm(right),
        };
        Ok(RoleMap {
            group: group.to_string(),
            grant,
        })
    }

    /// Whether a group found as `dn` with these `cns` is this one's.
    fn matches(&self, dn: &str, cns: &[String]) -> bool {
        if self.group.contains('=') {
            normal_dn(&self.group) == normal_dn(dn)
        } else {
            cns.iter().any(|cn| cn.eq_ignore_ascii_case(&self.group))
        }
    }
}

/// A DN compared loosely: case and the spaces around `,` and `=` ignored
/// (`CN=Artists, OU=Groups` is `cn=artists,ou=groups`).
fn normal_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| match rdn.split_once('=') {
            Some((a, v)) => format!("{}={}", a.trim(), v.trim()),
            None => rdn.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error(
        "wrong user name or password (the LDAP server refused them): check both and try again"
    )]
    BadCredentials,
    /// Says which URL and what went wrong.
    #[error("{0}")]
    Unreachable(String),
    /// The directory's answer, with its result code.
    #[error("{0}")]
    Directory(String),
}

/// Binds as `user` with `password`, then returns the grants of every
/// [`RoleMap`] whose group lists the user. No matching group: no grants
/// (the caller decides whether such a user may sign in at all).
pub async fn login(cfg: &LdapConfig, user: &str, password: &str) -> Result<Vec<Grant>, LdapError> {
    // An empty simple bind is an anonymous bind, which most directories
    // accept: it must never reach the server as a login.
    if password.is_empty() || !valid_user(user) {
        return Err(LdapError::BadCredentials);
    }
    let bind_dn = fill(&cfg.user_dn, &[("user", &dn_escape(user))]);
    let unreachable = |why: String| {
        LdapError::Unreachable(format!(
            "cannot reach the LDAP server at {}: {why}; check --ldap-url and that the server is up",
            cfg.url
        ))
    };
    match tokio::time::timeout(cfg.timeout, session(cfg, user, &bind_dn, password)).await {
        Ok(Err(Fail::Ldap(e))) => Err(match tls_failure(&e) {
            Some(tls) => LdapError::Unreachable(format!(
                "TLS with the LDAP server at {} failed: {tls}; check --ldap-ca (the CA that signed its certificate) and that --ldap-url names the host in that certificate",
                cfg.url
            )),
            None => unreachable(e.to_string()),
        }),
        Ok(Err(Fail::Other(e))) => Err(e),
        Ok(Ok(grants)) => Ok(grants),
        Err(_) => Err(unreachable(format!("no answer within {:?}", cfg.timeout))),
    }
}

/// The TLS error under a transport error, if that is what it was: tokio-rustls
/// reports a failed handshake as an IO error.
fn tls_failure(e: &ldap3::LdapError) -> Option<&rustls::Error> {
    match e {
        ldap3::LdapError::Rustls { source } => Some(source),
        ldap3::LdapError::Io { source } => source.get_ref()?.downcast_ref(),
        _ => None,
    }
}

/// Why a session stopped: the transport (mapped by the caller, which knows
/// the URL) or an answer already put in words.
enum Fail {
    Ldap(ldap3::LdapError),
    Other(LdapError),
}

impl From<ldap3::LdapError> for Fail {
    fn from(e: ldap3::LdapError) -> Fail {
        Fail::Ldap(e)
    }
}

async fn session(
    cfg: &LdapConfig,
    user: &str,
    bind_dn: &str,
    password: &str,
) -> Result<Vec<Grant>, Fail> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.timeout)
        .set_starttls(cfg.starttls);
    if let Some(ca) = &cfg.ca {
        settings = settings.set_config(tls_config(ca).map_err(Fail::Other)?);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &cfg.url).await?;
    ldap3::drive!(conn);
    let result = lookup(cfg, &mut ldap, user, bind_dn, password).await;
    // Best effort: the connection closes with `ldap` anyway.
    let _ = ldap.unbind().await;
    result
}

async fn lookup(
    cfg: &LdapConfig,
    ldap: &mut ldap3::Ldap,
    user: &str,
    bind_dn: &str,
    password: &str,
) -> Result<Vec<Grant>, Fail> {
    let bound = ldap.simple_bind(bind_dn, password).await?;
    match bound.rc {
        0 => {}
        // invalidCredentials: a wrong password, or (on most servers) no such user.
        49 => return Err(Fail::Other(LdapError::BadCredentials)),
        rc => {
            return Err(Fail::Other(directory(
                cfg,
                &format!("refused the bind as {bind_dn}"),
                rc,
                &bound.text,
            )))
        }
    }
    let dn = match &cfg.user_base {
        None => bind_dn.to_string(),
        Some(base) => {
            let filter = fill(&cfg.user_filter, &[("user", &ldap_escape(user))]);
            let entries = search(
                cfg,
                ldap,
                base,
                &filter,
                "the user search (--ldap-user-base)",
            )
            .await?;
            match entries.as_slice() {
                [one] => one.dn.clone(),
                found => {
                    return Err(Fail::Other(LdapError::Directory(format!(
                        "the LDAP server at {} has {} entries for {user} under {base} with {filter}, not one: check --ldap-user-base",
                        cfg.url,
                        found.len()
                    ))))
                }
            }
        }
    };
    let filter = fill(
        &cfg.group_filter,
        &[("dn", &ldap_escape(&dn)), ("user", &ldap_escape(user))],
    );
    let groups = search(
        cfg,
        ldap,
        &cfg.group_base,
        &filter,
        "the group search (--ldap-group-base, --ldap-group-filter)",
    )
    .await?;
    let mut grants: Vec<Grant> = Vec::new();
    for role in &cfg.roles {
        let member = groups
            .iter()
            .any(|g| role.matches(&g.dn, g.attrs.get("cn").map_or(&[][..], Vec::as_slice)));
        if member && !grants.contains(&role.grant) {
            grants.push(role.grant.clone());
        }
    }
    tracing::debug!(
        user,
        groups = groups.len(),
        grants = grants.len(),
        "LDAP sign-in"
    );
    Ok(grants)
}

async fn search(
    cfg: &LdapConfig,
    ldap: &mut ldap3::Ldap,
    base: &str,
    filter: &str,
    what: &str,
) -> Result<Vec<SearchEntry>, Fail> {
    let found = match ldap.search(base, Scope::Subtree, filter, vec!["cn"]).await {
        Err(ldap3::LdapError::FilterParsing) => {
            return Err(Fail::Other(LdapError::Directory(format!(
                "{what}: {filter} is not an LDAP filter; check the flag's parentheses"
            ))))
        }
        found => found?,
    };
    if found.1.rc != 0 {
        return Err(Fail::Other(directory(
            cfg,
            &format!("failed {what} under {base} with {filter}"),
            found.1.rc,
            &found.1.text,
        )));
    }
    Ok(found.0.into_iter().map(SearchEntry::construct).collect())
}

fn directory(cfg: &LdapConfig, what: &str, rc: u32, text: &str) -> LdapError {
    let text = if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    };
    LdapError::Directory(format!(
        "the LDAP server at {} {what}: result code {rc}{text}; check the --ldap-* flags against the directory",
        cfg.url
    ))
}

/// 1-128 characters, none of them control characters, no space at either
/// end (directories ignore those, so `alice ` would bind as alice under
/// another name). Everything else is escaped where it is used, so
/// `*)(uid=*` is a strange name, not a filter.
fn valid_user(user: &str) -> bool {
    (1..=128).contains(&user.chars().count())
        && !user.chars().any(char::is_control)
        && user.trim() == user
}

/// `template` with each `{name}` replaced, in one pass: a value that itself
/// contains `{user}` is not filled again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    'outer: while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        for (name, value) in values {
            if let Some(after) = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_prefix(name))
                .and_then(|r| r.strip_prefix('}'))
            {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        out.push('{');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

fn tls_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    let bad = |why: String| {
        LdapError::Unreachable(format!("--ldap-ca {}: {why}; give a PEM file of the CA that signed the LDAP server's certificate", ca.display()))
    };
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    // The provider is ring: the only one the build enables.
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests;
