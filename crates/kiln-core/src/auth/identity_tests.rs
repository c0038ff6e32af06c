//! The identity registry: which credentials turn into which principals.

use super::identity::*;
use super::{Grant, Principal, Right};
use std::net::IpAddr;

fn user(name: &str) -> User {
    User {
        name: name.into(),
        source: Source::Local,
        disabled: false,
        password: None,
        created_at: 0,
    }
}

fn token(id: &str, user: &str, kind: TokenKind, expires_at: Option<i64>) -> Token {
    Token {
        id: id.into(),
        user: user.into(),
        name: "t".into(),
        hash: format!("hash-of-{id}"),
        kind,
        created_at: 0,
        expires_at,
    }
}

fn join_token(id: &str, rules: JoinRules) -> Token {
    token(id, "adm", TokenKind::Join(rules), Some(1_000))
}

fn registry() -> Identity {
    let mut id = Identity::default();
    id.apply(Change::PutUser(user("alice")));
    id.apply(Change::PutUser(user("adm")));
    id.apply(Change::PutGrants {
        user: "alice".into(),
        grants: vec![Grant::show(Right::Artist, "demo")],
    });
    id.apply(Change::PutToken(token("a1", "alice", TokenKind::Api, None)));
    id.apply(Change::PutToken(token(
        "a2",
        "alice",
        TokenKind::Session,
        Some(500),
    )));
    id
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_token_names_its_user_with_the_grants_held_now() {
    let mut id = registry();
    let p = id.principal("a1", "hash-of-a1", 100).unwrap();
    assert_eq!(
        p,
        Principal::user("alice", vec![Grant::show(Right::Artist, "demo")])
    );
    id.apply(Change::PutGrants {
        user: "alice".into(),
        grants: vec![],
    });
    assert_eq!(
        id.principal("a1", "hash-of-a1", 100).unwrap(),
        Principal::user("alice", vec![])
    );
}

#[test]
fn bad_expired_revoked_and_disabled_credentials_are_refused() {
    let mut id = registry();
    assert_eq!(id.principal("a1", "hash-of-a2", 0), Err(Rejected::Unknown));
    assert_eq!(id.principal("zz", "hash-of-a1", 0), Err(Rejected::Unknown));
    assert!(id.principal("a2", "hash-of-a2", 499).is_ok());
    assert_eq!(
        id.principal("a2", "hash-of-a2", 500),
        Err(Rejected::Expired)
    );
    id.apply(Change::RemoveToken("a1".into()));
    assert_eq!(id.principal("a1", "hash-of-a1", 0), Err(Rejected::Unknown));
    let mut disabled = user("alice");
    disabled.disabled = true;
    id.apply(Change::PutUser(disabled));
    assert_eq!(
        id.principal("a2", "hash-of-a2", 0),
        Err(Rejected::Disabled("alice".into()))
    );
    id.apply(Change::PutToken(join_token("j1", JoinRules::default())));
    assert_eq!(
        id.principal("j1", "hash-of-j1", 0),
        Err(Rejected::JoinToken)
    );
}

#[test]
fn a_join_spends_a_use_and_binds_the_host_name() {
    let mut id = registry();
    let rules = JoinRules {
        hosts: Some("render*".into()),
        cidr: Some("10.0.0.0/8".into()),
        uses_left: Some(2),
    };
    id.apply(Change::PutToken(join_token("j1", rules)));
    let join = |id: &Identity, host: &str, from: &str, now| {
        id.join(
            "j1",
            "hash-of-j1",
            host,
            ip(from),
            &format!("cred-{host}"),
            now,
        )
    };
    for change in join(&id, "render01", "10.1.2.3", 10).unwrap() {
        id.apply(change);
    }
    assert_eq!(
        id.worker("render01", "cred-render01"),
        Ok(Principal::Worker {
            host: "render01".into()
        })
    );
    assert_eq!(id.worker("render01", "cred-other"), Err(Rejected::Unknown));
    let err = |r: Result<Vec<Change>, Rejected>| match r {
        Err(Rejected::Join(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(err(join(&id, "render01", "10.1.2.4", 10)).contains("already enrolled"));
    assert!(err(join(&id, "comp01", "10.1.2.4", 10)).contains("does not match"));
    assert!(err(join(&id, "render02", "192.168.1.1", 10)).contains("outside"));
    assert_eq!(
        join(&id, "render02", "10.1.2.4", 1_000),
        Err(Rejected::Expired)
    );
    for change in join(&id, "render02", "10.1.2.4", 10).unwrap() {
        id.apply(change);
    }
    // Both uses spent: the token is gone.
    assert_eq!(
        join(&id, "render03", "10.1.2.5", 10),
        Err(Rejected::Unknown)
    );
    assert!(id.token("j1").is_none());
    id.apply(Change::RemoveHost("render01".into()));
    assert_eq!(
        id.worker("render01", "cred-render01"),
        Err(Rejected::Unknown)
    );
    // An API token does not enrol hosts.
    assert!(
        err(id.join("a1", "hash-of-a1", "x", ip("10.0.0.1"), "c", 0))
            .contains("not a worker join token")
    );
}

#[test]
fn globs() {
    for (p, n, want) in [
        ("render*", "render01", true),
        ("render*", "render", true),
        ("render*", "rend", false),
        ("*", "", true),
        ("r?nder0*", "render07", true),
        ("*01", "render01", true),
        ("*01", "render02", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("render01", "render01", true),
        ("render01", "render011", false),
    ] {
        assert_eq!(glob(p, n), want, "{p} {n}");
    }
}

#[test]
fn ranges() {
    for (cidr, addr, want) in [
        ("10.0.0.0/8", "10.255.1.1", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("192.168.4.0/22", "192.168.7.255", true),
        ("192.168.4.0/22", "192.168.8.0", false),
        ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "127.0.0.2", false),
        ("0.0.0.0/0", "8.8.8.8", true),
        ("10.0.0.0/8", "::ffff:10.0.0.9", true),
        ("fd00::/8", "fd12::1", true),
        ("fd00::/8", "fe80::1", false),
        ("10.0.0.0/33", "10.0.0.1", false),
        ("nonsense", "10.0.0.1", false),
    ] {
        assert_eq!(in_cidr(cidr, ip(addr)), want, "{cidr} {addr}");
    }
}
