//! The README's quick start, as a newcomer runs it: `kiln up` with the
//! sample job renders real images and assembles them.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn kiln_up_renders_the_sample_job() {
    let dir = tempfile::tempdir().unwrap();
    // A private copy of the example, so the test writes nothing in the tree.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fractal");
    let ex = dir.path().join("fractal");
    std::fs::create_dir_all(&ex).unwrap();
    for f in ["job.yaml", "fractal.py", "assemble.py"] {
        std::fs::copy(src.join(f), ex.join(f)).unwrap();
    }
    let port = free_port();
    let out = Command::new(kiln_bin())
        .args([
            "up",
            "--exit-when-done",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .arg("--submit")
        .arg(ex.join("job.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kiln up failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("API at http://127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "web UI: http://127.0.0.1:{port}/login#token=kiln_api_"
        )),
        "{stderr}"
    );
    assert!(stdout.contains("25 succeeded"), "{stdout}");
    for n in 1..=24 {
        let png = std::fs::read(ex.join(format!("out/frame.{n:04}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let apng = std::fs::read(ex.join("out/fractal.apng")).unwrap();
    assert!(apng.windows(4).any(|w| w == b"acTL"), "an animated PNG");
    // Each rendered frame's preview, kept beside its log for the web UI.
    let previews = std::fs::read_dir(dir.path().join("data/logs"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".0.jpg"))
        .count();
    assert_eq!(previews, 24, "a preview of each rendered frame");
}

fn frames_json(port: u16, job: &str) -> serde_json::Value {
    let out = cli(
        &format!("http://127.0.0.1:{port}"),
        &["frames", job, "--json"],
    )
    .output()
    .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn sigterm_stops_kiln_up_and_records_its_frames_as_killed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("slow.yaml");
    std::fs::write(
        &spec,
        "name: slow\nlayers:\n  - name: a\n    command: 'sleep 31.7'\n    frames: 1-2\n",
    )
    .unwrap();
    let port = free_port();
    let up = |submit: bool| {
        let mut c = Command::new(kiln_bin());
        c.args([
            "up",
            "--cores",
            "2",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if submit {
            c.arg("--submit").arg(&spec);
        }
        c.spawn().unwrap()
    };
    let mut farm = up(true);
    // Two running frames.
    wait_until(Duration::from_secs(30), || {
        frames_json(port, "slow")
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["state"] == "RUNNING"))
    });
    unsafe { libc::kill(farm.id() as i32, libc::SIGTERM) };
    let status = farm.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted while waiting on its job"
    );
    let left = Command::new("pgrep")
        .args(["-f", "sleep 31.7"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "no frame outlives the farm");

    // The next `kiln up` on the same data knows what happened and runs them again.
    let mut farm = up(false);
    // Both frames run again.
    wait_until(Duration::from_secs(30), || {
        frames_json(port, "slow")
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["attempts"] == 2))
    });
    let log = cli(
        &format!("http://127.0.0.1:{port}"),
        &["log", "slow", "a/1", "--attempt", "1"],
    )
    .output()
    .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("killed: the worker is shutting down"), "{log}");
    unsafe { libc::kill(farm.id() as i32, libc::SIGTERM) };
    assert!(
        farm.wait().unwrap().success(),
        "a plain `kiln up` stops with 0"
    );
}
