//! RoleMap parsing, templates and escaping, and what is refused before any
//! connection; the directory itself is in tests/ldap.rs, against slapd.

use super::*;

#[test]
fn role_maps_parse() {
    let r = RoleMap::parse("artist=artists").unwrap();
    assert_eq!(r.group, "artists");
    assert_eq!(r.grant, Grant::farm(Right::Artist));
    let r = RoleMap::parse("wrangler:demo=demo-wranglers").unwrap();
    assert_eq!(r.grant, Grant::show(Right::Wrangler, "demo"));
    // Split at the first '=': a DN keeps its own.
    let r = RoleMap::parse("admin=cn=admins,ou=groups,dc=kiln,dc=test").unwrap();
    assert_eq!(r.group, "cn=admins,ou=groups,dc=kiln,dc=test");
    assert_eq!(r.grant, Grant::farm(Right::Admin));
    assert_eq!(
        RoleMap::parse("impersonate:demo=pipeline").unwrap().grant,
        Grant::show(Right::Impersonate, "demo")
    );
    for bad in [
        "artists",
        "boss=artists",
        "artist=",
        "artist:=x",
        "=artists",
        "",
    ] {
        let e = RoleMap::parse(bad).unwrap_err();
        assert!(
            e.starts_with("--ldap-role ") && e.contains("ROLE[:SHOW]=GROUP") && e.contains("e.g."),
            "{bad}: {e}"
        );
    }
}

#[test]
fn groups_match_by_cn_or_dn() {
    let cn = RoleMap::parse("artist=Artists").unwrap();
    let dn = RoleMap::parse("admin=CN=Admins, OU=Groups,DC=kiln,DC=test").unwrap();
    let cns = |c: &str| vec![c.to_string()];
    assert!(cn.matches("cn=artists,ou=groups,dc=kiln,dc=test", &cns("artists")));
    assert!(!cn.matches("cn=artists2,ou=groups,dc=kiln,dc=test", &cns("artists2")));
    assert!(dn.matches("cn=admins,ou=groups,dc=kiln,dc=test", &cns("admins")));
    assert!(!dn.matches("cn=admins,ou=other,dc=kiln,dc=test", &cns("admins")));
}

#[test]
fn templates_fill_escaped_values_once() {
    let t = "uid={user},ou=people,dc=kiln,dc=test";
    assert_eq!(
        fill(t, &[("user", &dn_escape("alice"))]),
        "uid=alice,ou=people,dc=kiln,dc=test"
    );
    // A name cannot add an RDN or change the attribute.
    assert_eq!(
        fill(t, &[("user", &dn_escape("a,ou=x"))]),
        "uid=a\\2cou\\3dx,ou=people,dc=kiln,dc=test"
    );
    assert_eq!(
        fill(t, &[("user", &dn_escape("*)(uid=*"))]),
        "uid=*)(uid\\3d*,ou=people,dc=kiln,dc=test"
    );
    // ... nor widen a filter.
    let f = fill(
        DEFAULT_GROUP_FILTER,
        &[
            ("dn", &ldap_escape("uid=x,dc=t")),
            ("user", &ldap_escape("*)(uid=*")),
        ],
    );
    assert_eq!(
        f,
        "(|(member=uid=x,dc=t)(uniqueMember=uid=x,dc=t)(memberUid=\\2a\\29\\28uid=\\2a))"
    );
    // One pass: a value holding a placeholder stays as it is.
    assert_eq!(
        fill("{dn}/{user}", &[("dn", "{user}"), ("user", "u")]),
        "{user}/u"
    );
    assert_eq!(fill("{other}{user", &[("user", "u")]), "{other}{user");
}

#[test]
fn user_names_are_checked() {
    assert!(valid_user("alice"));
    assert!(valid_user("*)(uid=*"));
    assert!(valid_user(&"é".repeat(128)));
    assert!(!valid_user(""));
    assert!(!valid_user(&"a".repeat(129)));
    assert!(!valid_user("al\nice"));
    assert!(!valid_user("al\0ice"));
    assert!(!valid_user("alice "));
    assert!(!valid_user(" alice"));
}

#[tokio::test]
async fn empty_passwords_and_bad_names_never_reach_the_server() {
    // Nothing listens on port 1: reaching it would be Unreachable.
    let mut cfg = LdapConfig::new("ldap://127.0.0.1:1", "uid={user},dc=t", "dc=t");
    cfg.roles.push(RoleMap::parse("viewer=all").unwrap());
    for (user, pw) in [("alice", ""), ("", "pw"), ("a\nb", "pw")] {
        assert!(
            matches!(login(&cfg, user, pw).await, Err(LdapError::BadCredentials)),
            "{user:?}"
        );
    }
    assert!(matches!(
        login(&cfg, "alice", "pw").await,
        Err(LdapError::Unreachable(_))
    ));
}

#[test]
fn configs_are_validated() {
    let mut cfg = LdapConfig::new("ldap://h", "uid={user},dc=t", "dc=t");
    assert!(cfg.validate().unwrap_err().contains("--ldap-role"));
    cfg.roles.push(RoleMap::parse("viewer=all").unwrap());
    assert_eq!(cfg.validate(), Ok(()));
    cfg.ca = Some("/nonexistent/ca.pem".into());
    assert!(cfg
        .validate()
        .unwrap_err()
        .contains("--ldap-ca /nonexistent/ca.pem"));
    cfg.ca = None;
    cfg.user_dn = "uid=alice".into();
    assert!(cfg.validate().unwrap_err().contains("--ldap-user-dn"));
    cfg.user_dn = "{user}@corp".into();
    cfg.url = "http://h".into();
    assert!(cfg.validate().unwrap_err().contains("--ldap-url"));
}
