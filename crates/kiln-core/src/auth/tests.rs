//! The authorization table: every action × every kind of principal × own,
//! another user's and another show's target.

use super::*;

/// The principals of the table, each named by its column label, so "own"
/// targets are the ones whose owner is that label.
fn principals() -> Vec<Principal> {
    let user = |name: &str, grants: Vec<Grant>| Principal::user(name, grants);
    vec![
        user("adm", vec![Grant::farm(Right::Admin)]),
        user("wfarm", vec![Grant::farm(Right::Wrangler)]),
        user("wdemo", vec![Grant::show(Right::Wrangler, "demo")]),
        user("afarm", vec![Grant::farm(Right::Artist)]),
        user("ademo", vec![Grant::show(Right::Artist, "demo")]),
        user("vfarm", vec![Grant::farm(Right::Viewer)]),
        user("vdemo", vec![Grant::show(Right::Viewer, "demo")]),
        user("imp", vec![Grant::show(Right::Impersonate, "demo")]),
        user("none", vec![]),
        Principal::Worker {
            host: "render01".into(),
        },
    ]
}

/// Which target a row means; "own" resolves to the principal's own name.
#[derive(Clone, Copy)]
enum T {
    Farm,
    Show(&'static str),
    Job {
        own: bool,
        show: &'static str,
    },
    Submit {
        show: &'static str,
        run_as: Option<&'static str>,
    },
    Host(&'static str),
}

fn target<'a>(t: T, me: &'a str) -> Target<'a> {
    match t {
        T::Farm => Target::Farm,
        T::Show(s) => Target::Show(s),
        T::Job { own, show } => Target::Job {
            id: 42,
            owner: if own { me } else { "bob" },
            show,
        },
        T::Submit { show, run_as } => Target::Submit {
            show,
            run_as: run_as.unwrap_or(me),
        },
        T::Host(h) => Target::Host(h),
    }
}

const OWN_DEMO: T = T::Job {
    own: true,
    show: "demo",
};
const BOBS_DEMO: T = T::Job {
    own: false,
    show: "demo",
};
const OWN_OTHER: T = T::Job {
    own: true,
    show: "other",
};
const BOBS_OTHER: T = T::Job {
    own: false,
    show: "other",
};

/// One row: the action, its target, and the decision for each principal in
/// the order of [`principals`]: adm wfarm wdemo afarm ademo vfarm vdemo imp
/// none worker (`Y` allow, `.` deny).
fn table() -> Vec<(Action, T, &'static str)> {
    let mut rows = vec![
        (Action::Read, T::Farm, "YYYYYYY..."),
        (Action::Read, T::Host("render01"), "YYYYYYY..."),
        (Action::Read, T::Show("other"), "YYYYYYY..."),
        (Action::Read, OWN_DEMO, "YYYYYYY..."),
        (Action::Read, BOBS_DEMO, "YYYYYYY..."),
        (Action::Read, BOBS_OTHER, "YY.Y.Y...."),
        (Action::ReadSecrets, OWN_DEMO, "YYYYY....."),
        (Action::ReadSecrets, BOBS_DEMO, "YYY......."),
        (Action::ReadSecrets, OWN_OTHER, "YY.Y......"),
        (Action::ReadSecrets, BOBS_OTHER, "YY........"),
        (Action::SetJob, OWN_DEMO, "YYY......."),
        (Action::SetJob, BOBS_OTHER, "YY........"),
        (Action::Unavoid, BOBS_DEMO, "YYY......."),
        (Action::Unavoid, OWN_OTHER, "YY........"),
        (Action::Subscribe, T::Show("demo"), "YYY......."),
        (Action::Subscribe, T::Show("other"), "YY........"),
        (Action::PutShow, T::Show("demo"), "YYY......."),
        (Action::PutShow, T::Show("other"), "YY........"),
        (
            Action::Submit,
            T::Submit {
                show: "demo",
                run_as: None,
            },
            "YYYYY..Y..",
        ),
        (
            Action::Submit,
            T::Submit {
                show: "other",
                run_as: None,
            },
            "YY.Y......",
        ),
        (
            Action::Submit,
            T::Submit {
                show: "demo",
                run_as: Some("bob"),
            },
            "Y......Y..",
        ),
        (
            Action::Submit,
            T::Submit {
                show: "other",
                run_as: Some("bob"),
            },
            "Y.........",
        ),
        (
            Action::Submit,
            T::Submit {
                show: "demo",
                run_as: Some("root"),
            },
            "..........",
        ),
        (Action::Host, T::Host("render01"), "YY........"),
        (Action::Limit, T::Farm, "YY........"),
        (Action::Structure, T::Farm, "YY........"),
        (Action::Users, T::Farm, "Y........."),
        (Action::OwnTokens, T::Farm, "YYYYYYYYY."),
        (Action::TokensForOthers, T::Farm, "Y........."),
        (Action::Audit, T::Farm, "Y........."),
        (Action::Webhooks, T::Show("demo"), "YYY......."),
        (Action::Webhooks, T::Show("other"), "YY........"),
        (Action::Webhooks, T::Farm, "YY........"),
        (Action::Webhooks, T::Host("render01"), ".........."),
        (Action::AttachHost, T::Host("render01"), ".........Y"),
        (Action::AttachHost, T::Host("render02"), ".........."),
        // Actions on targets they do not apply to are refused for everyone.
        (Action::Submit, T::Farm, ".........."),
        (Action::SetJob, T::Show("demo"), ".........."),
        (Action::Subscribe, OWN_DEMO, ".........."),
    ];
    for verb in JobVerb::ALL {
        rows.push((Action::Job(verb), OWN_DEMO, "YYYYY....."));
        rows.push((Action::Job(verb), BOBS_DEMO, "YYY......."));
        rows.push((Action::Job(verb), OWN_OTHER, "YY.Y......"));
        rows.push((Action::Job(verb), BOBS_OTHER, "YY........"));
    }
    rows
}

#[test]
fn the_table_holds() {
    let who = principals();
    let mut wrong = Vec::new();
    let mut cells = 0;
    for (action, t, expect) in table() {
        assert_eq!(expect.len(), who.len(), "row {action:?} {expect}");
        for (p, want) in who.iter().zip(expect.chars()) {
            cells += 1;
            let got = authorize(p, action, target(t, p.name()));
            let allowed = got.is_allowed();
            if allowed != (want == 'Y') {
                wrong.push(format!(
                    "{} {action:?} on {:?}: got {got:?}",
                    p.name(),
                    target(t, p.name())
                ));
            }
            if let Decision::Deny(refusal) = &got {
                let text = refusal.to_string();
                assert!(text.contains(": "), "{text}");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_action_has_a_row() {
    let rows = table();
    let actions = [
        Action::Read,
        Action::ReadSecrets,
        Action::Submit,
        Action::SetJob,
        Action::Unavoid,
        Action::Subscribe,
        Action::PutShow,
        Action::Host,
        Action::Limit,
        Action::Structure,
        Action::Users,
        Action::OwnTokens,
        Action::TokensForOthers,
        Action::Audit,
        Action::Webhooks,
        Action::AttachHost,
    ]
    .into_iter()
    .chain(JobVerb::ALL.map(Action::Job));
    for a in actions {
        assert!(rows.iter().any(|(r, ..)| *r == a), "no row for {a:?}");
    }
}

fn deny(who: &Principal, action: Action, target: Target) -> String {
    match authorize(who, action, target) {
        Decision::Deny(refusal) => refusal.to_string(),
        Decision::Allow => panic!("{action:?} allowed"),
    }
}

#[test]
fn refusals_say_who_what_and_whom_to_ask() {
    let alice = Principal::user("alice", vec![Grant::farm(Right::Artist)]);
    let bobs = Target::Job {
        id: 42,
        owner: "bob",
        show: "demo",
    };
    assert_eq!(
        deny(&alice, Action::Job(JobVerb::Kill), bobs),
        "alice (artist) may not kill job 42 of bob: ask a wrangler of show demo"
    );
    let carol = Principal::user("carol", vec![Grant::show(Right::Wrangler, "demo")]);
    assert_eq!(
        deny(&carol, Action::Host, Target::Host("render01")),
        "carol (wrangler of show demo) may not change host render01: ask a farm-wide wrangler"
    );
    let submit_as_bob = Target::Submit {
        show: "demo",
        run_as: "bob",
    };
    assert!(deny(&alice, Action::Submit, submit_as_bob).contains("impersonate right on show demo"));
    let root = Target::Submit {
        show: "demo",
        run_as: "root",
    };
    let admin = Principal::user("adm", vec![Grant::farm(Right::Admin)]);
    assert!(deny(&admin, Action::Submit, root).starts_with("no job may run as \"root\""));
    let nobody = Principal::user("dave", vec![]);
    assert!(deny(&nobody, Action::Read, Target::Farm)
        .starts_with("dave (no role) may not read the farm"));
    let worker = Principal::Worker {
        host: "render01".into(),
    };
    assert!(deny(&worker, Action::AttachHost, Target::Host("render02"))
        .starts_with("host render01 may not run the worker link of host render02"));
}

#[test]
fn the_strongest_grant_names_the_principal() {
    let p = Principal::user(
        "erin",
        vec![
            Grant::show(Right::Wrangler, "demo"),
            Grant::farm(Right::Artist),
            Grant::show(Right::Impersonate, "demo"),
        ],
    );
    assert_eq!(p.describe(), "erin (wrangler of show demo)");
    let q = Principal::user(
        "finn",
        vec![Grant::show(Right::Artist, "b"), Grant::farm(Right::Artist)],
    );
    assert_eq!(q.describe(), "finn (artist)");
}

#[test]
fn rights_parse_back() {
    for r in Right::ALL {
        assert_eq!(Right::parse(r.as_str()), Some(r));
    }
    assert_eq!(Right::parse("root"), None);
}
