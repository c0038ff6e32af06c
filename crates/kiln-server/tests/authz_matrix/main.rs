//! The authorization matrix, end to end: every farm API call × every kind
//! of caller × own / another user's / another show's target, against a
//! real server on a real socket, with a real enrolled host.
//!
//! Each cell's expected decision is written in [`table`], from the roles of
//! issue 11 (the same rules `kiln_core::auth`'s own table tests without a
//! transport). Every refused write must leave the farm as it was (jobs,
//! frames' counts, hosts, structure, users, tokens) and add exactly one
//! `denied:` record to the audit trail, saying who was refused.

mod fixture;
mod prepare;
mod table;

use fixture::{enroll, first_admin, Fixture, Got};
use kiln_core::auth::identity::JoinRules;
use kiln_core::auth::views::IdentityCmd;
use kiln_core::farm::{Admin, FarmConfig};
use kiln_proto::client::{self, Client};
use kiln_proto::Error;
use kiln_server::{serve, ServerConfig};
use prepare::{put_show, spec, SHOWS};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;
use table::{grants, table, Call, COLS, USERS};

/// A refusal says whom to ask or what to do instead.
fn advises(m: &str) -> bool {
    m.contains(": ask ") || m.contains(": only ") || m.contains("submit as yourself")
}

/// Whether a cell came out as its row expects; if not, why.
fn verdict(want: char, col: usize, call: Call, got: &Got) -> Result<(), String> {
    match (want, got) {
        ('.', Got::Refused(_) | Got::Hidden) if call.on_link() => Ok(()),
        ('Y', Got::Done) => Ok(()),
        ('Y', Got::Hidden) => Err("allowed, but showed nothing".into()),
        ('Y', Got::Refused(e)) => Err(format!("refused: {e:?}")),
        ('.', Got::Done) => Err("allowed".into()),
        ('.', Got::Hidden) if col < USERS => Ok(()),
        ('.', Got::Refused(Error::Forbidden(m))) if col < USERS => {
            if advises(m) {
                Ok(())
            } else {
                Err(format!("refused without saying whom to ask: {m:?}"))
            }
        }
        ('.', Got::Refused(Error::Unauthenticated(m))) if col >= USERS => {
            if m.contains(says(COLS[col])) {
                Ok(())
            } else {
                Err(format!("refused without saying why: {m:?}"))
            }
        }
        ('.', Got::Refused(e)) => Err(format!("refused, but as {e:?}")),
        ('.', Got::Hidden) => Err("answered instead of refusing".into()),
        (_, Got::Bad(why)) => Err(why.clone()),
        (w, _) => Err(format!("bad expectation {w:?}")),
    }
}

/// What the farm API tells each caller that is not signed in.
fn says(col: &str) -> &'static str {
    match col {
        "off" => "is disabled",
        "old" | "junk" => "unknown or was revoked",
        "exp" => "expired",
        "host" => "host's credential",
        _ => "no token",
    }
}

#[test]
fn every_call_by_every_caller_on_every_target() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(matrix());
}

async fn matrix() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        farm: FarmConfig::default(),
        connections: Default::default(),
        tls: kiln_server::tls::Tls::Plaintext,
        ldap: None,
        retention: Default::default(),
        event_retention: kiln_server::DEFAULT_EVENT_RETENTION,
        metrics_public: false,
        sample_every: kiln_server::history::DEFAULT_SAMPLE_EVERY,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // As `kiln server` runs it: on a runtime of its own, from its thread.
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        })
    });
    let admin = first_admin(&url, dir.path()).await;

    // The farm: two shows, an allocation to subscribe and move hosts to,
    // the users with their roles and tokens, and the dummy user that user
    // commands change.
    for show in SHOWS {
        admin.admin(put_show(show, 100)).await.unwrap();
    }
    admin
        .admin(Admin::PutFacility {
            name: "studio".into(),
        })
        .await
        .unwrap();
    admin
        .admin(Admin::PutAllocation {
            name: "studio.main".into(),
            tags: vec![],
        })
        .await
        .unwrap();
    let mut tokens = HashMap::new();
    for user in COLS[..USERS + 3].iter().copied().chain(["bob", "dummy"]) {
        admin
            .identity(IdentityCmd::CreateUser {
                name: user.into(),
                password: None,
            })
            .await
            .unwrap();
        for grant in grants(user) {
            admin
                .identity(IdentityCmd::Grant {
                    user: user.into(),
                    grant,
                })
                .await
                .unwrap();
        }
        let made = admin
            .identity(IdentityCmd::CreateToken {
                name: "api".into(),
                user: Some(user.into()),
                expires_in: (user == "exp").then_some(1),
                join: None,
            })
            .await
            .unwrap();
        tokens.insert(user, made.token.unwrap());
        let undo = match user {
            "off" => IdentityCmd::SetDisabled {
                name: user.into(),
                disabled: true,
            },
            "old" => IdentityCmd::RevokeToken(made.token_id.unwrap()),
            _ => continue,
        };
        admin.identity(undo).await.unwrap();
    }
    let join = admin
        .identity(IdentityCmd::CreateToken {
            name: "hosts".into(),
            user: None,
            expires_in: None,
            join: Some(JoinRules {
                hosts: None,
                cidr: None,
                uses_left: None,
            }),
        })
        .await
        .unwrap()
        .token
        .unwrap();
    let (link, drain, link_ended) = enroll(&url, &join).await;
    let hosts = admin.hosts().await.unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let home = hosts[0].allocation.clone();
    assert_ne!(home, "studio.main");

    // The callers. `host` presents the host's credential to the farm API;
    // `junk` the admin's token id with another secret.
    let credential = client::join(&url, &join, "render02").await.unwrap();
    let adm = &tokens["adm"];
    let forged = format!(
        "{}{}",
        &adm[..adm.len() - 1],
        if adm.ends_with('0') { '1' } else { '0' }
    );
    let mut callers = Vec::new();
    let mut presented = HashMap::new();
    for col in COLS {
        let token = match col {
            "host" => Some(credential.clone()),
            "anon" => None,
            "junk" => Some(forged.clone()),
            user => Some(tokens[user].clone()),
        };
        callers.push(Client::connect_as(&url, token.as_deref()).await.unwrap());
        if let Some(t) = token {
            presented.insert(col, t);
        }
    }

    // Every caller's own job in each show, and bob's, submitted by the
    // admin to run as them.
    let mut jobs = HashMap::new();
    for owner in COLS.iter().copied().chain(["bob"]) {
        for show in SHOWS {
            let s = admin
                .submit(
                    spec(&format!("{owner}-{show}"), show, None),
                    owner.into(),
                    None,
                    None,
                )
                .await
                .unwrap();
            jobs.insert((owner.to_string(), show), s.id.to_string());
        }
    }
    let mut f = Fixture {
        url: url.clone(),
        admin,
        jobs,
        home,
        join,
        tokens: presented,
        n: 0,
    };
    let frames = f
        .admin
        .frames(&f.jobs[&("bob".into(), "demo")], None, None)
        .await
        .unwrap();
    assert_eq!(frames.len(), 3, "{frames:?}");
    let setup = started.elapsed();

    let rows = table();
    let mut wrong = Vec::new();
    let (mut cells, mut refused_writes) = (0, 0);
    for (call, expect) in &rows {
        let t = Instant::now();
        assert_eq!(expect.len(), COLS.len(), "row {call:?}: {expect}");
        for (col, (me, want)) in COLS.iter().zip(expect.chars()).enumerate() {
            cells += 1;
            let c = &callers[col];
            let req = f.prepare(me, c, *call, want == 'Y').await;
            let job = req.job().map(str::to_string);
            let before = if req.is_write() {
                let (snap, last) = tokio::join!(f.snapshot(job.as_deref()), f.last_audit());
                Some((snap, last))
            } else {
                None
            };
            let got = f.perform(me, c, req).await;
            let mut why = verdict(want, col, *call, &got).err();
            if let (Some((before, last)), Got::Refused(_) | Got::Hidden) = (before, &got) {
                refused_writes += 1;
                let after = f.snapshot(job.as_deref()).await;
                if let Some(changed) = first_change(&before, &after) {
                    why.get_or_insert(format!("refused, but the farm changed: {changed}"));
                }
                if let Err(e) = f.audited(*call, me, &got, last).await {
                    why.get_or_insert(e);
                }
            }
            if let Some(why) = why {
                wrong.push(format!("{call:?} by {me} (want {want}): {why}"));
            }
        }
        if std::env::var_os("AUTHZ_TIMES").is_some() {
            eprintln!("{call:?}: {:?}", t.elapsed());
        }
    }
    assert!(!link_ended.load(Ordering::SeqCst), "the host's link ended");
    eprintln!(
        "authorization matrix: {} rows × {} callers = {cells} cells ({refused_writes} refused \
         writes checked against the store and the audit); setup {setup:?}, all {:?}",
        rows.len(),
        COLS.len(),
        started.elapsed()
    );
    let _ = stop.send(());
    // The server waits for its clients to leave before it stops.
    drain.abort();
    drop((link, callers, f));
    server.join().unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Where two snapshots first differ: that line, before and after, from a
/// little before the first character that changed.
fn first_change(before: &[String], after: &[String]) -> Option<String> {
    if before == after {
        return None;
    }
    let i = before
        .iter()
        .zip(after)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    let (a, b) = (
        before.get(i).map_or("(nothing)", String::as_str),
        after.get(i).map_or("(nothing)", String::as_str),
    );
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let from = a[..at.min(a.len())]
        .char_indices()
        .map(|(k, _)| k)
        .rfind(|&k| k + 60 <= at)
        .unwrap_or(0);
    let cut = |s: &str| {
        s.get(from..)
            .unwrap_or(s)
            .chars()
            .take(160)
            .collect::<String>()
    };
    Some(format!("line {i}: …{:?} became …{:?}", cut(a), cut(b)))
}
