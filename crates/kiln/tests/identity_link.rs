//! A worker link can only touch its own attempts: an enrolled host that
//! writes log bytes for, truncates, or reports the end of another host's
//! attempt changes nothing of it. Over TLS, with a raw protocol client
//! (its own test binary: it sets this process's trusted CA).

mod common;

use common::{wait_until, Farm};
use futures::StreamExt;
use kiln_core::link::{Exit, FrameEnded, RunningFrame, WorkerMsg};
use kiln_core::model::{AttemptId, HostReport};
use kiln_proto::client::{connect_worker, join, HostAuth};
use std::time::Duration;

#[test]
fn a_forged_log_chunk_or_end_from_another_connection_changes_nothing() {
    let mut farm = Farm::start_tls(0, 1);
    farm.add_worker("render01", 1);
    farm.wait_hosts(1);
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let spec = format!(
        "name: real\nlayers:\n  - name: a\n    command: 'echo the real log; echo ran >> {}/m; sleep 4; echo the end'\n    frames: 1\n",
        marks.display()
    );
    let job = farm.submit("real", &spec);
    wait_until(Duration::from_secs(20), || {
        farm.frames(&job)
            .first()
            .is_some_and(|f| f["state"] == "RUNNING")
    });
    let attempt = AttemptId(farm.frames(&job)[0]["attempt_id"].as_i64().unwrap());
    // The real bytes are on the server before the forger comes.
    wait_until(Duration::from_secs(10), || {
        farm.kiln(&["log", &job, "a/1"]).contains("the real log")
    });
    let token = farm.join_token();
    let url = farm.url();
    kiln_proto::tls::trust_ca_file(farm.path("data/ca.pem"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let credential = join(&url, &token, "evil").await.unwrap();
        let auth = HostAuth {
            host: "evil".into(),
            credential,
        };
        let report = HostReport {
            name: "evil".into(),
            cores: 100,
            memory_kb: 1 << 20,
            ..Default::default()
        };
        let now = common::now_ms() as i64;
        let msgs = vec![
            // It even claims the attempt as one of its own.
            WorkerMsg::Register {
                host: report,
                running: vec![RunningFrame {
                    attempt,
                    ..Default::default()
                }],
            },
            WorkerMsg::Log {
                attempt,
                offset: 0,
                data: b"FORGED\n".to_vec(),
            },
            WorkerMsg::Ended(FrameEnded {
                attempt,
                exit: Exit::Exited(0),
                started_at: now,
                ended_at: now,
                max_rss_kb: 0,
                cpu_ms: 0,
                log_size: 0,
                usage: Vec::new(),
                // And a preview of it, to be kept on the server's disk.
                outputs: vec![kiln_core::link::FoundOutput {
                    check: kiln_core::output::OutputCheck {
                        path: "a.png".into(),
                        state: kiln_core::output::OutputState::Ok,
                        size: 1,
                        width: 1,
                        height: 1,
                        brightness: Some(0.5),
                        thumbnail: true,
                        detail: None,
                    },
                    thumbnail: Some(b"FORGED".to_vec()),
                }],
            }),
            WorkerMsg::Log {
                attempt,
                offset: 1 << 40,
                data: b"x".to_vec(),
            },
        ];
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for m in msgs {
            tx.send(m).unwrap();
        }
        let stream = connect_worker(
            &url,
            &auth,
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        )
        .await
        .unwrap();
        // Read what the server answers for a moment, then leave.
        let mut stream = Box::pin(stream);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while stream.next().await.is_some() {}
        })
        .await;
        drop(tx);
    });

    // Still running on its own host, its log its own.
    let f = &farm.frames(&job)[0];
    assert_eq!(f["state"], "RUNNING", "a forged end ended it: {f}");
    assert_eq!(f["host"], "render01");
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let log = farm.kiln(&["log", &job, "a/1"]);
    assert!(
        log.contains("the real log") && log.contains("the end") && !log.contains("FORGED"),
        "{log}"
    );
    let files: Vec<_> = std::fs::read_dir(farm.path("data/logs"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .collect();
    // (The real frame's own memory and CPU over time may be there.)
    assert!(
        files.iter().all(|e| e.path().extension().unwrap() != "jpg"),
        "the forged end's preview was kept: {files:?}"
    );
    let size = files
        .iter()
        .filter(|e| e.path().extension().unwrap() == "log")
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(size < 1 << 20, "a sparse log of {size} bytes");
    let ran = std::fs::read_to_string(marks.join("m")).unwrap();
    assert_eq!(ran.lines().count(), 1, "ran once");
}
