//! The scheduling policy, point by point, checked by running the scenarios
//! in `sim/` and reading their figures: each test is what a wrangler would
//! look for in that scenario's report.

use kiln_sim::{run, Report, Scenario};

fn scenario(name: &str) -> Scenario {
    let path = format!("{}/../../sim/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Scenario::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn report(name: &str) -> Report {
    run(&scenario(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn show<'r>(r: &'r Report, name: &str) -> &'r kiln_sim::ShowFigures {
    r.shows
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no show {name}"))
}

fn stream<'r>(r: &'r Report, name: &str) -> &'r kiln_sim::StreamFigures {
    r.streams
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stream {name}"))
}

#[test]
fn shares_hold_their_entitlement() {
    let r = report("shares");
    for s in &r.shows {
        let err = s.error_pct.expect("entitled in steady state");
        assert!(err <= 5.0, "{}: error {err}%\n{}", s.name, r.to_text());
        assert!(
            s.burst_cores.is_some_and(|b| s.max_cores <= b),
            "{} past its burst",
            s.name
        );
    }
    // Gamma runs dry; alpha and beta take its cores 5:3.
    let ratio = show(&r, "alpha").max_cores / show(&r, "beta").max_cores;
    assert!(
        (1.5..=1.75).contains(&ratio),
        "alpha:beta {ratio}\n{}",
        r.to_text()
    );
    assert!(r.utilisation.steady_mean_pct >= 99.0);
}

#[test]
fn priority_is_a_weight() {
    let r = report("priority");
    let ratio = stream(&r, "urgent").mean_cores / stream(&r, "normal").mean_cores;
    assert!(
        (1.6..=2.4).contains(&ratio),
        "urgent:normal {ratio}\n{}",
        r.to_text()
    );
}

#[test]
fn burst_caps_a_show_and_the_rest_stays_busy() {
    let r = report("burst");
    let capped = show(&r, "capped");
    assert!(
        capped.max_cores <= capped.burst_cores.unwrap(),
        "{}",
        r.to_text()
    );
    // Alone on an idle farm for 20 minutes, it still stops at its burst.
    assert_eq!(capped.max_cores, 80.0);
    assert!(r.utilisation.steady_mean_pct >= 97.0, "{}", r.to_text());
}

#[test]
fn wide_frames_get_a_host_within_a_bounded_wait() {
    let r = report("wide");
    assert_eq!(r.wide.started, 16, "{}", r.to_text());
    assert_eq!(r.wide.waiting_at_end, 0);
    // reserve_after (2m) + the longest small frame (10m), and a pass.
    let max = r.wide.wait_ms.unwrap().max;
    assert!(max <= 13.0 * 60_000.0, "wide wait {max}ms\n{}", r.to_text());
    assert!(r.utilisation.steady_mean_pct >= 95.0, "{}", r.to_text());
}

#[test]
fn bad_hosts_are_avoided_then_repaired() {
    let r = report("badhost");
    let class = |n: &str| r.host_classes.iter().find(|c| c.name == n).unwrap();
    let (good, broken) = (class("good"), class("broken"));
    assert_eq!(broken.in_repair, 2, "{}", r.to_text());
    assert_eq!(good.in_repair + good.failed as u32, 0);
    assert_eq!(r.placement.starts_on_repaired, 0);
    // Each of 3 jobs per host gives up on it: 2 hosts, 3 jobs each.
    assert_eq!(r.placement.avoided, 6);
    // Failures stop once the hosts are out: at most a host's worth of
    // frames per job and host before the job avoids it.
    assert!(broken.failed <= 6 * 2 * 8, "{}", r.to_text());
    assert!(broken.last_repair_ms.unwrap() <= 30 * 60_000);
    assert_eq!(r.frames.dead, 0);
    assert_eq!(r.frames.succeeded, 6 * 120);
}

#[test]
fn out_of_memory_frames_are_retried_and_the_layer_learns() {
    let r = report("memory");
    assert!(r.frames.oom > 0);
    // Only the first wave (one frame per core) is killed; later frames
    // reserve what the layer was seen to use.
    assert!(r.frames.oom <= 160, "{}", r.to_text());
    assert_eq!(r.frames.oom_recovered, r.frames.oom);
    assert_eq!(
        (r.frames.succeeded, r.frames.dead, r.frames.failed),
        (1000, 0, 0)
    );
}

#[test]
fn a_limit_is_never_exceeded() {
    let r = report("limits");
    let l = &r.limits[0];
    assert_eq!((l.max, l.peak), (20, 20), "{}", r.to_text());
    assert!((stream(&r, "comp").mean_cores - 20.0).abs() < 0.5);
    assert!(r.utilisation.steady_mean_pct >= 99.0);
}

#[test]
fn cpu_work_stays_off_gpu_hosts_while_cpu_hosts_have_room() {
    let r = report("gpu");
    assert_eq!(r.placement.cpu_on_gpu_with_room, 0, "{}", r.to_text());
    // The flood at 1h spills onto GPU hosts: capacity is not left idle.
    assert!(r.placement.cpu_on_gpu > 0);
    assert_eq!((r.frames.dead, r.frames.waiting_at_end), (0, 0));
}

#[test]
fn frames_go_back_to_warm_hosts() {
    let r = report("locality");
    let (warm, chance) = (
        r.placement.warm_pct.unwrap(),
        r.placement.warm_by_chance_pct.unwrap(),
    );
    assert!(
        warm >= 90.0 && warm >= 2.0 * chance,
        "warm {warm}% vs chance {chance}%"
    );
}

#[test]
fn maestro_fills_at_one_hundredth_scale() {
    let r = run(&scenario("maestro").scaled(0.01)).unwrap();
    assert_eq!(r.hosts, 16);
    assert!(r.fill_ms.is_some_and(|t| t <= 1000), "{}", r.to_text());
    assert_eq!(r.frames.succeeded + r.frames.running_at_end, 1200);
}

/// Larger frames win back their show's share as smaller ones end, though
/// every freed core would fit a 1-core frame first: a show below its size
/// reserves hosts for them.
#[test]
fn larger_frames_win_back_their_share() {
    let r = report("sizes");
    for name in ["small", "large"] {
        let err = show(&r, name).error_pct.unwrap();
        assert!(err <= 5.0, "{name} show error {err}%\n{}", r.to_text());
    }
    assert!(r.utilisation.steady_mean_pct >= 95.0, "{}", r.to_text());
}
