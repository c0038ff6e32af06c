//! `kiln simulate` from the real binary: a scenario's figures in JSON, and
//! bad input refused with a message naming the fix.

mod common;

use common::kiln_bin;
use std::path::Path;
use std::process::Command;

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(kiln_bin())
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("kiln runs")
}

#[test]
fn shares_scenario_holds_every_show_near_its_entitlement() {
    let out = kiln(&["simulate", "sim/shares.yaml", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let shows = report["shows"].as_array().expect("shows");
    assert_eq!(shows.len(), 3);
    for s in shows {
        let err = s["error_pct"].as_f64().expect("error_pct");
        assert!(err <= 5.0, "{} is {err}% off its entitlement", s["name"]);
    }
    let text = kiln(&["simulate", "sim/shares.yaml", "--scale", "0.5"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("Shows, steady state"));
}

#[test]
fn bad_scenarios_are_refused_clearly() {
    let out = kiln(&["simulate", "sim/does-not-exist.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a scenario file"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\nduration: 1h\nhosts: [{count: 2, cores: -4}]\n",
    )
    .unwrap();
    let out = kiln(&["simulate", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hosts[0]"), "{err}");
    let out = kiln(&["simulate", "sim/shares.yaml", "--scale", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scale"));
}
