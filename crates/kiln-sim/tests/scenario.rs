//! Reading scenarios (errors name the field), scaling them, and the
//! simulator's own guarantees: runs are reproducible, every frame is
//! accounted for, and nothing panics on odd input.

use kiln_sim::{run, Error, Scenario};
use proptest::prelude::*;

const SMALL: &str = r#"
name: small
duration: 30m
seed: 7
hosts:
  - {name: node, count: 4, cores: 8, memory: 32G}
  - {name: gpu, count: 1, cores: 8, memory: 32G, gpus: 1, gpu_memory: 16G}
shows:
  - name: a
    subscriptions: [{allocation: local.general, size: 60%, burst: 90%}]
limits: [{name: lic, max: 3}]
jobs:
  - name: j
    show: a
    count: 3
    every: 5m
    layers:
      - {name: pre, frames: 4, cores: 1, runtime: 1m..2m}
      - {name: main, frames: 40, cores: 2-4, memory: 2G, rss: 1G..3G, runtime: 2m..6m, depends: [pre], limits: [lic], fail_rate: 0.1}
"#;

fn field_error(text: &str) -> (String, String) {
    match Scenario::parse(text) {
        Err(Error::Scenario { field, message }) => (field, message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_field() {
    let bad_cores = SMALL.replace("count: 1, cores: 8", "count: 1, cores: -2");
    assert_eq!(field_error(&bad_cores).0, "hosts[1].cores");
    let bad_runtime = SMALL.replace("runtime: 1m..2m", "runtime: 2m..1m");
    let (f, m) = field_error(&bad_runtime);
    assert_eq!(f, "jobs[0].layers[0].runtime");
    assert!(m.contains("low..high"), "{m}");
    let unknown = SMALL.replace("seed: 7", "seed: 7\nsed: 8");
    let (f, m) = field_error(&unknown);
    assert_eq!(f, "sed");
    assert!(m.contains("unknown field"), "{m}");
    let (f, _) = field_error(&SMALL.replace("duration: 30m\n", ""));
    assert_eq!(f, "duration");
    let (f, _) = field_error(&SMALL.replace("allocation: local.general", "allocation: local.nope"));
    assert_eq!(f, "shows[0].subscriptions[0].allocation");
    let (f, m) = field_error(&SMALL.replace("burst: 90%", "burst: 10%"));
    assert_eq!(f, "shows[0].subscriptions[0].burst");
    assert!(m.contains("at least its size"), "{m}");
    // Checked by the farm's own spec validation, charged to the stream.
    let (f, _) = field_error(&SMALL.replace("cores: 2-4", "cores: 4-2"));
    assert_eq!(f, "jobs[0].layers[1].cores");
    let (f, _) = field_error(&SMALL.replace("depends: [pre]", "depends: [nope]"));
    assert_eq!(f, "jobs[0].layers[1].depends[0]");
    let (f, _) = field_error(&SMALL.replace("limits: [lic]", "limits: [other]"));
    assert_eq!(f, "jobs[0].layers[1].limits[0]");
    let (f, _) = field_error(&SMALL.replace("fail_rate: 0.1", "fail_rate: 2"));
    assert_eq!(f, "jobs[0].layers[1].fail_rate");
    assert!(matches!(
        Scenario::parse("name: [unclosed"),
        Err(Error::Syntax(_))
    ));
    assert!(matches!(Scenario::parse(""), Err(Error::Syntax(_))));
}

#[test]
fn json_reads_as_yaml_does() {
    let yaml = Scenario::parse(SMALL).unwrap();
    let json = serde_json::to_string(&yaml).unwrap();
    assert_eq!(Scenario::parse(&json).unwrap(), yaml);
    // Its errors name the field as the YAML reader's do.
    let mut v = serde_json::to_value(&yaml).unwrap();
    v["hosts"][1]["cores"] = (-2).into();
    assert_eq!(field_error(&v.to_string()).0, "hosts[1].cores");
    v["hosts"][1]["cores"] = 8.into();
    v.as_object_mut().unwrap().remove("duration");
    assert_eq!(field_error(&v.to_string()).0, "duration");
    assert!(matches!(
        Scenario::parse("{\"name\":"),
        Err(Error::Syntax(_))
    ));
}

#[test]
fn runs_are_reproducible() {
    let s = Scenario::parse(SMALL).unwrap();
    let (a, b) = (run(&s).unwrap(), run(&s).unwrap());
    assert_eq!(a.without_timings(), b.without_timings());
    let mut other = s.clone();
    other.seed = 8;
    assert_ne!(
        run(&other).unwrap().without_timings().frames,
        a.without_timings().frames
    );
}

#[test]
fn scaling_keeps_the_shape() {
    let s = Scenario::parse(SMALL).unwrap().scaled(0.5);
    assert_eq!((s.hosts[0].count, s.hosts[1].count), (2, 1));
    assert_eq!(s.jobs[0].layers[1].frames, "20");
    assert_eq!(s.jobs[0].count, 3);
    assert_eq!(s.limits[0].max, 2);
    assert_eq!(
        s.shows[0].subscriptions[0].size,
        kiln_sim::Share::Percent(60.0)
    );
    s.check().unwrap();
}

#[test]
fn every_frame_is_accounted_for() {
    let r = run(&Scenario::parse(SMALL).unwrap()).unwrap();
    let f = &r.frames;
    // Every attempt started has ended one way, or is running.
    assert_eq!(
        f.started,
        f.succeeded + f.failed + f.oom + f.lost + f.running_at_end,
        "{f:?}"
    );
    assert_eq!(
        f.succeeded + f.dead + f.waiting_at_end + f.running_at_end,
        3 * 44
    );
    assert!(r.limits[0].peak <= 3);
    assert!(r.text_is_sane());
}

trait Sane {
    fn text_is_sane(&self) -> bool;
}

impl Sane for kiln_sim::Report {
    fn text_is_sane(&self) -> bool {
        let t = self.to_text();
        t.contains("Scenario small")
            && t.contains("Planning")
            && serde_json::to_string(self).is_ok()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random small farms and work: the run ends, limits and bursts hold,
    /// and frames add up.
    #[test]
    fn random_scenarios_hold_the_invariants(
        hosts in 1u32..6, cores in 1u32..17, mem_gb in 1u64..65,
        frames in 1u32..60, req in 1u32..6, whole in any::<bool>(),
        mem_req in 1u64..40, rss in 1u64..40, fail in 0.0f64..0.5,
        jobs in 1u32..4, burst in 10u32..100, max in 1u32..5, seed in any::<u64>(),
    ) {
        let cores_req = if whole { "all".to_string() } else { req.to_string() };
        let text = format!(r#"
name: random
duration: 40m
seed: {seed}
hosts: [{{name: h, count: {hosts}, cores: {cores}, memory: {mem_gb}G}}]
shows: [{{name: s, subscriptions: [{{allocation: local.general, size: 0, burst: {burst}%}}]}}]
limits: [{{name: l, max: {max}}}]
jobs:
  - {{name: j, show: s, count: {jobs}, every: 3m, layers: [{{name: a, frames: {frames}, cores: "{cores_req}", memory: {mem_req}G, rss: {rss}G, limits: [l], runtime: 1m..5m, fail_rate: {fail}}}]}}
"#);
        let s = Scenario::parse(&text).unwrap();
        let r = run(&s).unwrap();
        let f = &r.frames;
        prop_assert_eq!(f.started, f.succeeded + f.failed + f.oom + f.lost + f.running_at_end);
        prop_assert!(r.limits[0].peak <= max);
        let cap = (hosts * cores) as f64 * burst as f64 / 100.0;
        prop_assert!(r.shows[0].max_cores <= cap + 1e-9, "{} > {}", r.shows[0].max_cores, cap);
        prop_assert!(r.utilisation.samples.iter().all(|&(_, p)| (0.0..=100.0).contains(&p)));
    }
}

/// The example in docs/simulate.md is a scenario that runs.
#[test]
fn the_documented_example_runs() {
    let doc = include_str!("../../../docs/simulate.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + 8;
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut s = Scenario::parse(text).unwrap_or_else(|e| panic!("{e}"));
    s.duration = kiln_sim::Dur(20 * 60_000);
    s.warmup = None;
    let r = run(&s).unwrap();
    assert_eq!(r.limits[0].peak, 20);
    assert!(r.frames.succeeded > 0);
}
