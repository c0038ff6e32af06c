//! The cost of one authorization check: `cargo bench -p kiln-core --bench auth`.
//!
//! Target: at most 1 µs a check. Times allowed and refused checks for a
//! principal holding a realistic handful of grants, over a mix of actions,
//! so a listing filtered per job stays cheap; then what rendering a
//! refusal's reason adds, which only a refused call pays.

use kiln_core::auth::{authorize, Action, Grant, JobVerb, Principal, Right, Target};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let mut grants: Vec<Grant> = (0..8)
        .map(|i| Grant::show(Right::Viewer, &format!("show{i:02}")))
        .collect();
    grants.push(Grant::show(Right::Artist, "demo"));
    grants.push(Grant::show(Right::Wrangler, "lookdev"));
    let alice = Principal::user("alice", grants);
    let jobs: Vec<(i64, &str, &str)> = vec![
        (1, "alice", "demo"),
        (2, "bob", "demo"),
        (3, "bob", "lookdev"),
        (4, "carol", "show07"),
        (5, "carol", "secret"),
    ];
    let actions = [
        Action::Read,
        Action::ReadSecrets,
        Action::Job(JobVerb::Kill),
        Action::SetJob,
    ];
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for &(id, owner, show) in &jobs {
        for &a in &actions {
            let t = Target::Job { id, owner, show };
            if authorize(&alice, a, t).is_allowed() {
                allowed.push((a, t));
            } else {
                refused.push((a, t));
            }
        }
    }
    for (label, checks) in [("allowed", &allowed), ("refused", &refused)] {
        let rounds = 200_000;
        let t = Instant::now();
        for _ in 0..rounds {
            for &(a, target) in checks.iter() {
                black_box(authorize(black_box(&alice), a, target));
            }
        }
        let done = rounds * checks.len();
        let ns = t.elapsed().as_nanos() as f64 / done as f64;
        println!(
            "authorize, {label}: {ns:.0} ns a check ({} kinds, {done} checks)",
            checks.len()
        );
    }
    // What a refused call pays once more, to tell its caller why.
    let rounds = 20_000;
    let t = Instant::now();
    for _ in 0..rounds {
        for &(a, target) in refused.iter() {
            black_box(
                authorize(black_box(&alice), a, target)
                    .into_result()
                    .unwrap_err(),
            );
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (rounds * refused.len()) as f64;
    println!("authorize, refused and its reason rendered: {ns:.0} ns");
}
