//! The README's quick start, as a newcomer runs it: `kiln up` with the
//! sample job renders real images and assembles them.

use std::process::Command;

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
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
    assert!(stdout.contains("25 succeeded"), "{stdout}");
    for n in 1..=24 {
        let png = std::fs::read(ex.join(format!("out/frame.{n:04}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let apng = std::fs::read(ex.join("out/fractal.apng")).unwrap();
    assert!(apng.windows(4).any(|w| w == b"acTL"), "an animated PNG");
}
