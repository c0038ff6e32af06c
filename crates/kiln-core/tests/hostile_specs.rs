//! No spec can exhaust the server: specs shaped to make reading them
//! expensive (YAML aliases that multiply, layers of a million frames) are
//! answered in bounded time and memory. Each shape is read in a child
//! process of this test binary, so its peak memory is its own; the child
//! runs under a 2 GiB address-space cap so a regression fails instead of
//! taking the machine.

use kiln_core::spec::{parse_and_validate, Format, SubmitContext};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHAPE_VAR: &str = "KILN_HOSTILE_SHAPE";

/// What the issue asks of the release server is 100 ms; tests run unoptimised
/// builds on busy machines, so the bound here is generous but real: the
/// unbounded reader took 3.5 s to a minute on these shapes.
const MAX_TIME: Duration = Duration::from_secs(2);
const MAX_PEAK_KB: u64 = 64 << 10;

fn layers(n: usize, frames: &str, chunk: u32) -> String {
    let mut s = String::from("name: hostile\nlayers:\n");
    for i in 0..n {
        s += &format!("  - {{name: l{i}, command: x, frames: \"{frames}\", chunk: {chunk}}}\n");
    }
    s
}

/// A "billion laughs" of under 3 KB: a wide anchored list of a thousand
/// values, then lists of ten aliases of the list before, five deep.
fn laughs() -> String {
    let mut s = format!("a0: &a0 [{}]\n", vec!["x"; 1000].join(","));
    for i in 1..6 {
        s += &format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(",")
        );
    }
    s + "name: *a5\nlayers: []\n"
}

/// The spec text of a shape, and whether the farm should accept it.
fn shape(name: &str) -> (String, bool) {
    match name {
        "laughs" => (laughs(), false),
        "60 layers of 1-1000000, chunk 1000000" => (layers(60, "1-1000000", 1_000_000), false),
        "1000 layers of 1-1000000, chunk 1000000" => (layers(1000, "1-1000000", 1_000_000), false),
        "60 layers of 1-1000000x2,2-1000000x2" => {
            (layers(60, "1-1000000x2,2-1000000x2", 1_000_000), false)
        }
        "1 layer of 1-1000000x2,2-1000000x2" => (layers(1, "1-1000000x2,2-1000000x2", 1000), true),
        "2 layers of 1-1000000, chunk 1000" => (layers(2, "1-1000000", 1000), true),
        "1 layer of 1-1000000:1000, chunk 1000" => (layers(1, "1-1000000:1000", 1000), true),
        // The biggest jobs the default limits allow: a million tasks, and
        // two million frames in a million tasks. Validation cuts no task
        // (once it held a record per task: 78 MB for the first).
        "1 layer of 1-1000000, chunk 1" => (layers(1, "1-1000000", 1), true),
        "2 layers of 1-1000000, chunk 2" => (layers(2, "1-1000000", 2), true),
        // Items that partly overlap are the one case counted frame by
        // frame (against a bitmap where the set is dense, a hash set where
        // it is sparse).
        "2 layers of 1-1000000x2,1-1000000x3, chunk 2" => {
            (layers(2, "1-1000000x2,1-1000000x3", 2), true)
        }
        "2 layers of 1-10^12x2000000,1-10^12x3000000, chunk 2" => (
            layers(2, "1-1000000000000x2000000,1-1000000000000x3000000", 2),
            true,
        ),
        other => panic!("no shape {other:?}"),
    }
}

const SHAPES: &[&str] = &[
    "laughs",
    "60 layers of 1-1000000, chunk 1000000",
    "1000 layers of 1-1000000, chunk 1000000",
    "60 layers of 1-1000000x2,2-1000000x2",
    "1 layer of 1-1000000x2,2-1000000x2",
    "2 layers of 1-1000000, chunk 1000",
    "1 layer of 1-1000000:1000, chunk 1000",
    "1 layer of 1-1000000, chunk 1",
    "2 layers of 1-1000000, chunk 2",
    "2 layers of 1-1000000x2,1-1000000x3, chunk 2",
    "2 layers of 1-10^12x2000000,1-10^12x3000000, chunk 2",
];

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The child's side: reads one shape and prints what it cost.
#[test]
#[ignore = "run by hostile_specs_are_answered_in_bounded_time_and_memory"]
fn read_one_shape() {
    let Ok(name) = std::env::var(SHAPE_VAR) else {
        return;
    };
    let (text, _) = shape(&name);
    let before = vm_hwm_kb();
    let t = Instant::now();
    let result = parse_and_validate(&text, Format::Auto, &SubmitContext::default());
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let peak = vm_hwm_kb().saturating_sub(before);
    let verdict = match &result {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    drop(result);
    println!(
        "SHAPE bytes={} ms={ms:.1} peak_kb={peak} {verdict}",
        text.len()
    );
}

#[test]
fn hostile_specs_are_answered_in_bounded_time_and_memory() {
    let exe = std::env::current_exe().unwrap();
    for name in SHAPES {
        let (_, accept) = shape(name);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 2097152; exec \"$0\" \"$@\"")
            .arg(&exe)
            .args(["read_one_shape", "--exact", "--ignored", "--nocapture"])
            .env(SHAPE_VAR, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("{name}: still reading after 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SHAPE "))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: the reader died ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        eprintln!("{name}: {line}");
        let field = |k: &str| -> f64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            field("ms=") < MAX_TIME.as_secs_f64() * 1e3,
            "{name}: too slow: {line}"
        );
        assert!(
            field("peak_kb=") < MAX_PEAK_KB as f64,
            "{name}: too much memory: {line}"
        );
        assert_eq!(line.contains(" accepted"), accept, "{name}: {line}");
    }
}

/// What accepting the biggest job then costs the farm: a record per task,
/// in proportion to the job, as expected (the server does it on the
/// applier's own thread, never on its runtime's). A measurement, run by
/// hand: `cargo test --release -p kiln-core --test hostile_specs --
/// --ignored --nocapture creating_the_biggest_job`.
#[test]
#[ignore = "a measurement, run by hand in release"]
fn creating_the_biggest_job() {
    use kiln_core::farm::{Farm, FarmConfig};
    let (text, _) = shape("1 layer of 1-1000000, chunk 1");
    let job = parse_and_validate(&text, Format::Auto, &SubmitContext::default()).unwrap();
    let mut farm = Farm::new(FarmConfig::default());
    let before = vm_hwm_kb();
    let t = Instant::now();
    let (_, frames) = farm.submit(job, 0).unwrap();
    let submit_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let dirty = farm.take_dirty();
    let dirty_ms = t.elapsed().as_secs_f64() * 1e3;
    let peak = vm_hwm_kb().saturating_sub(before);
    assert_eq!(frames, 1_000_000);
    assert_eq!(dirty.frames.len(), 1_000_000);
    println!(
        "CREATE frames={frames} submit_ms={submit_ms:.0} take_dirty_ms={dirty_ms:.0} peak_kb={peak}"
    );
}
