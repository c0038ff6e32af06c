//! LDAP sign-in against a real slapd that each test starts on its own port:
//! binds, group-to-grant mapping, and every way a login is refused.

#[path = "../../kiln/tests/common/slapd.rs"]
mod slapd;

use kiln_core::auth::{Grant, Right};
use kiln_server::auth::ldap::{login, LdapConfig, LdapError, RoleMap};
use slapd::Slapd;
use std::net::TcpListener;

/// Skips where slapd is not installed; under CI (`CI` set) fails instead.
/// The same rule as `kiln`'s tests/common `skip`.
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test for real, but {why}"
    );
    eprintln!("skipped: {why}");
}

/// alice is an artist, bob a wrangler and an artist of show demo, carol in a
/// group no role names, `x)(cn=*` in none at all.
fn directory() -> Option<Slapd> {
    directory_with(None)
}

fn directory_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Option<Slapd> {
    let users = [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("x)(cn=*", "x-pw"),
    ];
    let groups: [(&str, &[&str]); 5] = [
        ("artists", &["alice"]),
        ("wranglers", &["bob"]),
        ("demo-artists", &["bob"]),
        ("admins", &[]),
        ("lighting", &["carol"]),
    ];
    let s = Slapd::start_with(&users, &groups, tls);
    if s.is_none() {
        skip("/usr/sbin/slapd is not installed (Debian package slapd)");
    }
    s
}

fn config(s: &Slapd) -> LdapConfig {
    let mut cfg = LdapConfig::new(&s.url(), &s.user_dn_template(), &s.group_base());
    cfg.roles = [
        "artist=artists".to_string(),
        // By DN, in another case and spacing than the directory's.
        format!("wrangler=CN=Wranglers, {}", s.group_base().to_uppercase()),
        "artist:demo=demo-artists".to_string(),
        "admin=admins".to_string(),
    ]
    .iter()
    .map(|r| RoleMap::parse(r).unwrap())
    .collect();
    cfg.validate().unwrap();
    cfg
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn members_get_the_grants_of_their_groups() {
    let Some(s) = directory() else { return };
    let cfg = config(&s);
    assert_eq!(
        login(&cfg, "alice", "alice-pw").await.unwrap(),
        vec![Grant::farm(Right::Artist)]
    );
    assert_eq!(
        login(&cfg, "bob", "bob-pw").await.unwrap(),
        vec![
            Grant::farm(Right::Wrangler),
            Grant::show(Right::Artist, "demo")
        ]
    );
    // A good password, but no group a role names: signed in, no grants.
    assert_eq!(login(&cfg, "carol", "carol-pw").await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_dn_can_be_looked_up_after_the_bind() {
    // As for Active Directory: the bind name is not the DN groups list, so
    // the DN is found under --ldap-user-base. Here the bind name is a DN
    // too, but the groups are matched through the looked-up one.
    let Some(s) = directory() else { return };
    let mut cfg = config(&s);
    cfg.user_base = Some(s.user_base());
    cfg.group_filter = "(member={dn})".into();
    assert_eq!(
        login(&cfg, "bob", "bob-pw").await.unwrap(),
        vec![
            Grant::farm(Right::Wrangler),
            Grant::show(Right::Artist, "demo")
        ]
    );
    // Where the lookup finds no one, the configuration is wrong: say so.
    cfg.user_base = Some(s.group_base());
    let e = login(&cfg, "bob", "bob-pw").await.unwrap_err();
    assert!(
        matches!(&e, LdapError::Directory(m) if m.contains("--ldap-user-base")),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_are_bad_credentials() {
    let Some(s) = directory() else { return };
    let cfg = config(&s);
    for (user, pw) in [
        ("alice", "bob-pw"),
        ("alice", "alice-pw "),
        ("mallory", "alice-pw"),
        ("alice", ""),
        // Directories ignore spaces around a name: this would be alice.
        ("alice ", "alice-pw"),
    ] {
        let got = login(&cfg, user, pw).await;
        assert!(
            matches!(got, Err(LdapError::BadCredentials)),
            "{user:?}/{pw:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn names_cannot_inject_into_the_dn_or_the_filter() {
    let Some(s) = directory() else { return };
    let mut cfg = config(&s);
    // Unescaped, `x)(cn=*` would add `(cn=*)` to the group filter and match
    // every group: admin.
    assert_eq!(login(&cfg, "x)(cn=*", "x-pw").await.unwrap(), vec![]);
    for user in ["*)(uid=*", "*", "alice)(uid=*"] {
        let got = login(&cfg, user, "alice-pw").await;
        assert!(
            matches!(got, Err(LdapError::BadCredentials)),
            "{user:?}: {got:?}"
        );
    }
    // Unescaped, the comma would move the bind into ou=people: alice.
    cfg.user_dn = format!("uid={{user}},{}", slapd::SUFFIX);
    let got = login(&cfg, "alice,ou=people", "alice-pw").await;
    assert!(matches!(got, Err(LdapError::BadCredentials)), "{got:?}");
}

#[tokio::test]
async fn an_empty_password_never_reaches_the_server() {
    // An empty simple bind is anonymous, and slapd accepts it: refused here,
    // before any connection (a closed port would otherwise be Unreachable).
    let Some(s) = directory() else { return };
    let mut cfg = config(&s);
    assert!(matches!(
        login(&cfg, "alice", "").await,
        Err(LdapError::BadCredentials)
    ));
    cfg.url = format!("ldap://127.0.0.1:{}", closed_port());
    assert!(matches!(
        login(&cfg, "alice", "").await,
        Err(LdapError::BadCredentials)
    ));
    assert!(matches!(
        login(&cfg, "alice", "alice-pw").await,
        Err(LdapError::Unreachable(_))
    ));
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_says_which() {
    let Some(s) = directory() else { return };
    let mut cfg = config(&s);
    cfg.url = format!("ldap://127.0.0.1:{}", closed_port());
    let e = login(&cfg, "alice", "alice-pw").await.unwrap_err();
    assert!(matches!(e, LdapError::Unreachable(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains(&cfg.url) && m.contains("--ldap-url"), "{m}");
}

#[tokio::test]
async fn a_failed_group_search_is_a_directory_error() {
    let Some(s) = directory() else { return };
    let mut cfg = config(&s);
    cfg.group_base = format!("ou=nowhere,{}", slapd::SUFFIX);
    let e = login(&cfg, "alice", "alice-pw").await.unwrap_err();
    // noSuchObject, after a good bind.
    assert!(
        matches!(&e, LdapError::Directory(m) if m.contains("32") && m.contains("ou=nowhere")),
        "{e:?}"
    );
    // A filter that does not parse is the flag's fault, not the network's.
    let mut cfg = config(&s);
    cfg.group_filter = "(|(member={dn})(cn=*)".into();
    let e = login(&cfg, "alice", "alice-pw").await.unwrap_err();
    assert!(
        matches!(&e, LdapError::Directory(m) if m.contains("--ldap-group-filter")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Connects (the kernel accepts into the backlog), then silence.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", silent.local_addr().unwrap());
    let mut cfg = LdapConfig::new(&url, "uid={user},dc=t", "dc=t");
    cfg.timeout = std::time::Duration::from_millis(300);
    let start = std::time::Instant::now();
    let e = login(&cfg, "alice", "alice-pw").await.unwrap_err();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(&e, LdapError::Unreachable(m) if m.contains(&url) && m.contains("--ldap-url")),
        "{e:?}"
    );
}

#[tokio::test]
async fn ldaps_and_starttls_trust_the_given_ca_only() {
    // A CA and a certificate for localhost, as kiln server makes its own.
    let certs = tempfile::tempdir().unwrap();
    let own = kiln_server::tls::Tls::OwnCa { names: vec![] };
    kiln_server::tls::prepare(certs.path(), &own).unwrap();
    let (cert, key) = (
        certs.path().join("server.pem"),
        certs.path().join("server.key"),
    );
    let Some(s) = directory_with(Some((&cert, &key))) else {
        return;
    };
    let mut cfg = config(&s);
    cfg.ca = Some(certs.path().join("ca.pem"));
    let artist = vec![Grant::farm(Right::Artist)];

    cfg.url = s.ldaps_url().unwrap();
    assert_eq!(login(&cfg, "alice", "alice-pw").await.unwrap(), artist);
    cfg.url = s.url().replace("127.0.0.1", "localhost");
    cfg.starttls = true;
    assert_eq!(login(&cfg, "alice", "alice-pw").await.unwrap(), artist);

    // Another CA (the system's roots, or one of another server) is refused,
    // and the error says which flag to look at.
    let other = tempfile::tempdir().unwrap();
    kiln_server::tls::prepare(other.path(), &own).unwrap();
    for ca in [None, Some(other.path().join("ca.pem"))] {
        for (url, starttls) in [(s.ldaps_url().unwrap(), false), (cfg.url.clone(), true)] {
            let mut cfg = cfg.clone();
            (cfg.url, cfg.starttls, cfg.ca) = (url, starttls, ca.clone());
            let e = login(&cfg, "alice", "alice-pw").await.unwrap_err();
            assert!(
                matches!(&e, LdapError::Unreachable(m) if m.contains("--ldap-ca") && m.contains(&cfg.url)),
                "{ca:?} {starttls}: {e:?}"
            );
        }
    }
}
