//! The contract for identity records (users, grants, tokens, host
//! credentials) and the audit trail: identity changes apply in order and
//! survive a reopen; audit records are written with their batch or not at
//! all, and read back newest first, filtered.

use super::fixtures::{farm, host};
use super::Backend;
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::identity::{
    Change, HostCredential, JoinRules, Source, Token, TokenKind, User,
};
use kiln_core::auth::{Grant, Right};
use kiln_store::{Batch, Store};

fn user(name: &str, disabled: bool) -> Change {
    Change::PutUser(User {
        name: name.into(),
        source: Source::Local,
        disabled,
        password: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: 1_700_000_000_000,
    })
}

fn token(id: &str, kind: TokenKind) -> Change {
    Change::PutToken(Token {
        id: id.into(),
        user: "alice".into(),
        name: "laptop".into(),
        hash: format!("sha256-{id}"),
        kind,
        created_at: 5,
        expires_at: Some(99),
    })
}

pub async fn identity_changes_apply_in_order(b: &impl Backend) {
    let store = b.open().await;
    let changes = vec![
        user("alice", false),
        user("bob", false),
        // The later put wins.
        user("bob", true),
        Change::PutGrants {
            user: "alice".into(),
            grants: vec![
                Grant::show(Right::Artist, "demo"),
                Grant::farm(Right::Viewer),
            ],
        },
        token("t1", TokenKind::Api),
        token(
            "j1",
            TokenKind::Join(JoinRules {
                hosts: Some("render*".into()),
                cidr: Some("10.0.0.0/8".into()),
                uses_left: Some(3),
            }),
        ),
        // Put then removed: absent.
        token("t2", TokenKind::Session),
        Change::RemoveToken("t2".into()),
        // Removing what is not there changes nothing.
        Change::RemoveHost("ghost".into()),
        Change::PutHost(HostCredential {
            host: "render01".into(),
            hash: "sha256-cred".into(),
            issued_at: 7,
        }),
    ];
    let batch = Batch {
        identity: changes.clone(),
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    let want = vec![
        changes[3].clone(), // grants alice
        changes[9].clone(), // host render01
        changes[5].clone(), // token j1
        changes[4].clone(), // token t1
        changes[0].clone(), // user alice
        changes[2].clone(), // user bob, disabled
    ];
    assert_eq!(store.load().await.unwrap().identity, want);
    b.close(store).await;

    let store = b.open().await;
    assert_eq!(store.load().await.unwrap().identity, want);
    let revoke = Batch {
        identity: vec![
            Change::RemoveToken("t1".into()),
            Change::RemoveHost("render01".into()),
        ],
        ..Batch::default()
    };
    store.commit(&revoke).await.unwrap();
    let left: Vec<_> = want
        .into_iter()
        .filter(|c| !matches!(c.kind_key(), ("token", "t1") | ("host", "render01")))
        .collect();
    assert_eq!(store.load().await.unwrap().identity, left);
}

fn record(id: i64, at: i64, who: &str, action: &str) -> AuditRecord {
    AuditRecord {
        id,
        at,
        who: who.into(),
        from: "10.0.0.7:53122".into(),
        action: action.into(),
        target: format!("job {id}"),
        outcome: "ok".into(),
    }
}

pub async fn audit_goes_with_its_batch(b: &impl Backend) {
    let store = b.open().await;
    store.commit(&farm()).await.unwrap();
    // A batch that fails takes its audit records and identity changes with it.
    let bad = Batch {
        hosts: vec![host(10, "twin"), host(11, "twin")],
        identity: vec![user("mallory", false)],
        audit: vec![record(1, 10, "mallory", "grant")],
        ..Batch::default()
    };
    store.commit(&bad).await.expect_err("two hosts named twin");
    let image = store.load().await.unwrap();
    assert!(image.identity.is_empty());
    assert_eq!(image.max_ids.audit, 0);
    assert!(store
        .audit(&AuditQuery::default())
        .await
        .unwrap()
        .is_empty());

    let records = vec![
        record(1, 100, "alice", "submit"),
        record(2, 200, "bob", "kill"),
        record(3, 300, "alice", "kill"),
        AuditRecord {
            outcome:
                "denied: alice (artist) may not kill job 4 of bob: ask a wrangler of show demo"
                    .into(),
            ..record(4, 400, "alice", "kill")
        },
    ];
    let good = Batch {
        audit: records.clone(),
        ..Batch::default()
    };
    store.commit(&good).await.unwrap();
    let all = store.audit(&AuditQuery::default()).await.unwrap();
    let newest_first: Vec<_> = records.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);
    let alices = store
        .audit(&AuditQuery {
            who: Some("alice".into()),
            since: Some(300),
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(alices, vec![records[3].clone(), records[2].clone()]);
    let one = store
        .audit(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one, vec![records[3].clone()]);
    assert_eq!(store.load().await.unwrap().max_ids.audit, 4);
    // An audit id is never written twice.
    let again = Batch {
        audit: vec![record(4, 500, "carol", "pause")],
        ..Batch::default()
    };
    store.commit(&again).await.expect_err("audit id 4 exists");
    b.close(store).await;

    let store = b.open().await;
    assert_eq!(
        store.audit(&AuditQuery::default()).await.unwrap(),
        newest_first
    );
}
