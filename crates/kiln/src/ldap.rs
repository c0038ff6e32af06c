//! `kiln server`'s `--ldap-*` flags: sign-in against LDAP or Active
//! Directory, groups mapped to grants (docs/ldap.md).

use anyhow::{bail, Result};
use clap::Args;
use kiln_server::auth::ldap::{LdapConfig, RoleMap, DEFAULT_GROUP_FILTER};
use std::path::PathBuf;

#[derive(Args, Default)]
#[command(next_help_heading = "LDAP / Active Directory sign-in (docs/ldap.md)")]
pub struct LdapArgs {
    /// The directory: ldaps://HOST[:636], or ldap://HOST[:389] (with
    /// --ldap-starttls anywhere but a test directory on loopback).
    #[arg(long, value_name = "URL")]
    ldap_url: Option<String>,
    /// What a user binds as, {user} standing for the name typed:
    /// 'uid={user},ou=people,dc=example,dc=com' or '{user}@corp.example.com'.
    #[arg(long, value_name = "TEMPLATE", requires = "ldap_url")]
    ldap_user_dn: Option<String>,
    /// Where groups are searched: 'ou=groups,dc=example,dc=com'.
    #[arg(long, value_name = "DN", requires = "ldap_url")]
    ldap_group_base: Option<String>,
    /// How a user's groups are found ({dn}: the user's DN, {user}: the name).
    #[arg(long, value_name = "FILTER", default_value = DEFAULT_GROUP_FILTER, requires = "ldap_url")]
    ldap_group_filter: String,
    /// ROLE[:SHOW]=GROUP, repeatable: members of GROUP (a cn or a DN) get
    /// ROLE (viewer, artist, wrangler, admin, impersonate), farm-wide or on
    /// SHOW.
    #[arg(long, value_name = "ROLE[:SHOW]=GROUP", requires = "ldap_url")]
    ldap_role: Vec<String>,
    /// Upgrade an ldap:// connection with StartTLS before the bind.
    #[arg(long, requires = "ldap_url")]
    ldap_starttls: bool,
    /// The PEM CA that signed the directory's certificate (default: the
    /// system's roots).
    #[arg(long, value_name = "FILE", requires = "ldap_url")]
    ldap_ca: Option<PathBuf>,
    /// Look the user's entry up under this DN after the bind, for its DN
    /// (Active Directory, where the bind name is not a DN).
    #[arg(long, value_name = "DN", requires = "ldap_url")]
    ldap_user_base: Option<String>,
}

impl LdapArgs {
    /// The directory configuration, checked, or `None` without --ldap-url.
    pub fn config(self) -> Result<Option<LdapConfig>> {
        let Some(url) = self.ldap_url else {
            return Ok(None);
        };
        let Some(user_dn) = self.ldap_user_dn else {
            bail!(
                "--ldap-url needs --ldap-user-dn, e.g. 'uid={{user}},ou=people,dc=example,dc=com'"
            );
        };
        let Some(group_base) = self.ldap_group_base else {
            bail!("--ldap-url needs --ldap-group-base, e.g. 'ou=groups,dc=example,dc=com'");
        };
        let mut cfg = LdapConfig::new(&url, &user_dn, &group_base);
        cfg.group_filter = self.ldap_group_filter;
        cfg.roles = self
            .ldap_role
            .iter()
            .map(|r| RoleMap::parse(r))
            .collect::<Result<_, String>>()
            .map_err(anyhow::Error::msg)?;
        cfg.starttls = self.ldap_starttls;
        cfg.ca = self.ldap_ca;
        cfg.user_base = self.ldap_user_base;
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(cfg))
    }
}
