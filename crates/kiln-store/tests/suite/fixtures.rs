//! Records for the contract checks: a small farm that uses every variant and
//! every optional field both ways, and generators for bulk records.

use kiln_core::model::*;
use kiln_core::structure::*;
use kiln_store::Batch;
use std::collections::BTreeMap;

pub fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn host(id: i64, name: &str) -> Host {
    Host {
        id: HostId(id),
        report: HostReport {
            name: name.into(),
            os: "rocky9".into(),
            cores: 3200,
            memory_kb: 128 << 20,
            total_memory_kb: 130 << 20,
            swap_kb: 8 << 20,
            gpus: 2,
            gpu_memory_kb: 48 << 20,
            scratch_free_kb: 900 << 20,
            load: 3.75,
            tags: vec!["linux".into(), "gpu".into()],
            version: "0.1.0".into(),
        },
        allocation: DEFAULT_ALLOCATION.into(),
        tags: vec![],
        state: HostState::Up,
        lock: LockState::Open,
        registered_at: 1_700_000_000_000,
        last_seen: 1_700_000_060_000,
    }
}

pub fn job(id: i64, name: &str) -> Job {
    Job {
        id: JobId(id),
        name: name.into(),
        facility: "local".into(),
        show: "show".into(),
        shot: "sh010".into(),
        user: "ana".into(),
        priority: 100,
        env: env(&[("A", "1"), ("PATH", "/opt/bin:/usr/bin")]),
        paused: false,
        state: JobState::Active,
        depends: vec![],
        max_cores: None,
        avoid_hosts: vec![],
        submitted_at: 1_700_000_000_000,
        finished_at: None,
        submit_key: None,
    }
}

pub fn layer(id: i64, job: i64, name: &str) -> Layer {
    Layer {
        id: LayerId(id),
        job: JobId(job),
        index: 0,
        name: name.into(),
        command: Command::Shell("render -f #FRAME# 'quoted \"x\"'".into()),
        frames: "1-100x5".into(),
        chunk: 5,
        resources: Resources {
            cores: 150,
            memory_kb: 4 << 20,
            gpus: 0,
            gpu_memory_kb: 0,
            scratch_kb: 0,
        },
        cores: CoreRequest::Exact(150),
        tags: vec![
            TagReq {
                any_of: vec!["linux".into()],
            },
            TagReq {
                any_of: vec!["gpu".into(), "cuda".into()],
            },
        ],
        limits: vec![],
        service: None,
        env: env(&[("LAYER", "yes")]),
        retries: 3,
        timeout_s: Some(3600),
        depends: vec![],
        cwd: Some("/shows/show/sh010".into()),
        paused: false,
        outputs: vec![],
        bad_outputs: kiln_core::output::BadOutputs::Flag,
    }
}

pub fn frame(id: i64, job: i64, layer: i64, index: u32) -> Frame {
    Frame::new(
        FrameId(id),
        JobId(job),
        LayerId(layer),
        index,
        i64::from(index) * 5 + 1,
        format!("{}-{}", index * 5 + 1, index * 5 + 5),
    )
}

pub fn attempt(id: i64, frame: &Frame, number: u32, host: &Host) -> Attempt {
    Attempt {
        id: AttemptId(id),
        frame: frame.id,
        job: frame.job,
        number,
        host: host.id,
        host_name: host.report.name.clone(),
        cores: 150,
        memory_kb: 4 << 20,
        started_at: 1_700_000_100_000 + i64::from(number),
        ended_at: None,
        outcome: None,
        exit_status: None,
        exit_signal: None,
        max_rss_kb: 0,
        cpu_ms: 0,
        reason: None,
        outputs: vec![],
    }
}

/// Ends an attempt and records it on its frame, as the server would.
pub fn finish(frame: &mut Frame, attempt: &mut Attempt, outcome: Outcome, state: FrameState) {
    attempt.ended_at = Some(attempt.started_at + 60_000);
    attempt.outcome = Some(outcome);
    attempt.max_rss_kb = 3 << 20;
    attempt.cpu_ms = 59_000;
    match outcome {
        Outcome::Succeeded => attempt.exit_status = Some(0),
        Outcome::Failed => attempt.exit_status = Some(2),
        Outcome::TimedOut | Outcome::Killed => {
            attempt.exit_signal = Some(9);
            attempt.reason = Some(format!("{outcome:?}: ran past its timeout or was killed"));
        }
        Outcome::Lost => attempt.reason = Some("host r2 stopped answering".into()),
        Outcome::OutOfMemory => {
            attempt.exit_signal = Some(9);
            attempt.reason = Some("used 5G of memory, more than the 4G it reserved".into());
        }
    }
    frame.state = state;
    frame.attempts = frame.attempts.max(attempt.number);
    frame.failures += u32::from(outcome.counts_as_failure());
    frame.attempt = Some(attempt.id);
    frame.host = Some(attempt.host);
    frame.cores = attempt.cores;
    frame.started_at = Some(attempt.started_at);
    frame.ended_at = attempt.ended_at;
    frame.outcome = attempt.outcome;
    frame.exit_status = attempt.exit_status;
    frame.exit_signal = attempt.exit_signal;
    frame.max_rss_kb = attempt.max_rss_kb;
    frame.cpu_ms = attempt.cpu_ms;
}

/// A farm using every enum variant, both `Command`s, both kinds of
/// `LayerDep`, and each optional field as `None` and as `Some`.
pub fn farm() -> Batch {
    let r1 = host(1, "r1");
    let mut r2 = host(2, "r2.example.com");
    r2.state = HostState::Down;
    r2.lock = LockState::Locked;
    r2.report.tags = vec![];
    r2.report.gpus = 0;
    r2.report.load = 0.0;
    r2.report.os = String::new();
    r2.allocation = "paris.gpu".into();
    r2.tags = vec!["fast".into(), "nuke".into()];
    let mut r3 = host(3, "r3");
    r3.state = HostState::Repair;

    let j1 = job(1, "show-sh010-comp");
    let mut j2 = job(2, "show-sh020-fx");
    j2.state = JobState::Killed;
    j2.paused = true;
    j2.priority = -5;
    j2.env = BTreeMap::new();
    j2.depends = vec![JobId(1), JobId(7)];
    j2.finished_at = Some(1_700_000_900_000);
    j2.max_cores = Some(2450);
    j2.avoid_hosts = vec![HostId(1), HostId(2)];

    let l1 = layer(1, 1, "sim");
    let mut l2 = layer(2, 1, "render");
    l2.index = 1;
    l2.command = Command::Argv(vec![
        "/bin/render".into(),
        "--frame".into(),
        "#FRAME#".into(),
        "a b".into(),
    ]);
    l2.depends = vec![LayerDep {
        layer: "sim".into(),
        per_frame: true,
    }];
    l2.timeout_s = None;
    l2.cwd = None;
    l2.tags = vec![];
    l2.env = BTreeMap::new();
    l2.paused = true;
    l2.cores = CoreRequest::AtLeast(200);
    l2.resources.cores = 200;
    l2.limits = vec!["nuke".into(), "arnold".into()];
    l2.service = Some("comp".into());
    l2.outputs = vec!["out/#LAYER#.#ZFRAME#.exr".into(), "/abs/'q'.png".into()];
    l2.bad_outputs = kiln_core::output::BadOutputs::Fail;
    let mut l3 = layer(3, 2, "fx");
    l3.depends = vec![LayerDep {
        layer: "sim".into(),
        per_frame: false,
    }];
    l3.resources = Resources {
        cores: 0,
        memory_kb: u64::MAX >> 1,
        gpus: 4,
        gpu_memory_kb: 96 << 20,
        scratch_kb: 1 << 30,
    };
    l3.cores = CoreRequest::Between(0, 1600);
    let mut l4 = layer(4, 2, "whole");
    l4.index = 1;
    l4.cores = CoreRequest::WholeHost;
    l4.resources.cores = 100;

    let mut frames: Vec<Frame> = (0..7)
        .map(|i| frame(i + 1, 1, 1 + i % 2, i as u32))
        .collect();
    frames.push(frame(8, 2, 3, 0));
    frames.push(frame(9, 2, 4, 0));
    let mut attempts = vec![];
    let ends = [
        (Outcome::Succeeded, FrameState::Succeeded),
        (Outcome::Failed, FrameState::Dead),
        (Outcome::TimedOut, FrameState::Waiting),
        (Outcome::Killed, FrameState::Eaten),
        (Outcome::Lost, FrameState::Waiting),
        (Outcome::OutOfMemory, FrameState::Waiting),
    ];
    for (i, (outcome, state)) in ends.into_iter().enumerate() {
        let mut a = attempt(
            i as i64 + 1,
            &frames[i],
            1,
            if i % 2 == 0 { &r1 } else { &r2 },
        );
        finish(&mut frames[i], &mut a, outcome, state);
        if outcome == Outcome::Succeeded {
            // What a worker found of its outputs, on both the attempt and
            // the frame (brightness a float that must come back exactly).
            use kiln_core::output::{OutputCheck, OutputState};
            let found = |path: &str, state, brightness| OutputCheck {
                path: path.into(),
                state,
                size: 1 << 33,
                width: 4096,
                height: 2160,
                brightness,
                thumbnail: brightness.is_some(),
                detail: (state == OutputState::Unreadable).then(|| "bad \"magic\"".into()),
            };
            a.outputs = vec![
                found("out/render.0001.exr", OutputState::Ok, Some(0.123_456_79)),
                found("ü.png", OutputState::Unreadable, None),
            ];
            frames[i].outputs = a.outputs.clone();
        }
        attempts.push(a);
    }
    // Frame 7 is running its first attempt: no outcome anywhere yet.
    let running = attempt(7, &frames[6], 1, &r1);
    let f = &mut frames[6];
    f.state = FrameState::Running;
    f.attempts = 1;
    f.attempt = Some(running.id);
    f.host = Some(r1.id);
    f.cores = running.cores;
    f.started_at = Some(running.started_at);
    attempts.push(running);
    frames[0].max_rss_kb = i64::MAX as u64;
    frames[0].number = -3;

    Batch {
        jobs: vec![j1, j2],
        layers: vec![l1, l2, l3, l4],
        frames,
        attempts,
        hosts: vec![r1, r2, r3],
        structure: structure().into_iter().map(Change::Put).collect(),
        ..Batch::default()
    }
}

/// One structure record of each kind, and each optional field both ways.
pub fn structure() -> Vec<Record> {
    vec![
        Record::Facility(Facility {
            name: "local".into(),
        }),
        Record::Facility(Facility {
            name: "paris".into(),
        }),
        Record::Allocation(Allocation {
            name: DEFAULT_ALLOCATION.into(),
            facility: "local".into(),
            tags: vec![],
        }),
        Record::Allocation(Allocation {
            name: "paris.gpu".into(),
            facility: "paris".into(),
            tags: vec!["gpu".into(), "cuda".into()],
        }),
        Record::Show(Show::new("show")),
        Record::Show(Show {
            name: "film".into(),
            enabled: false,
            default_priority: 7,
            default_max_cores: Some(12_345),
        }),
        Record::Subscription(Subscription {
            show: "film".into(),
            allocation: "paris.gpu".into(),
            size: 1000,
            burst: UNLIMITED,
        }),
        Record::Limit(Limit {
            name: "nuke".into(),
            max: 0,
        }),
        Record::Service(Service {
            name: "arnold".into(),
            ..Service::default()
        }),
        Record::Service(Service {
            name: "arnold".into(),
            show: Some("film".into()),
            cores: Some(CoreRequest::Between(200, 800)),
            memory_kb: Some(8 << 20),
            gpus: Some(1),
            gpu_memory_kb: Some(8 << 20),
            tags: Some(vec![TagReq {
                any_of: vec!["gpu".into(), "cuda".into()],
            }]),
            timeout_s: Some(7200),
            limits: Some(vec!["arnold".into()]),
        }),
    ]
}
