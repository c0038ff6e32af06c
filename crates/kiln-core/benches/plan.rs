//! Scheduling at studio scale: `cargo bench -p kiln-core --bench plan`.
//!
//! Builds a farm of 10,000 hosts (16, 32, 48 and 64 cores), 5,000 jobs in
//! 10 shows and 1,000,000 waiting one-core frames, then times a cold pass
//! (the whole idle farm filled) and steady-state passes (about 1 % of the
//! slots just freed). Each pass is timed as snapshot + plan (what the
//! applier waits on before it can commit), with apply shown apart.
//! Arguments: `[HOSTS] [JOBS] [FRAMES_PER_JOB] [STEADY_PASSES]`.

use kiln_core::farm::{Admin, Farm, FarmConfig, WorkerEvent};
use kiln_core::link::{Exit, FrameEnded, WorkerMsg};
use kiln_core::model::{AttemptId, HostReport};
use kiln_core::sched;
use kiln_core::spec::{parse_and_validate, Format, SubmitContext};
use std::time::{Duration, Instant};

// What the `kiln` binary runs with, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let hosts = args.first().copied().unwrap_or(10_000);
    let jobs = args.get(1).copied().unwrap_or(5_000);
    let per_job = args.get(2).copied().unwrap_or(200);
    let rounds = args.get(3).copied().unwrap_or(20).max(1);
    let mut farm = Farm::new(FarmConfig::default());
    let t = Instant::now();
    let mut cores_total = 0u64;
    for h in 0..hosts {
        let cores = [16, 32, 48, 64][h % 4];
        cores_total += cores as u64;
        register(&mut farm, h, cores);
    }
    for s in 0..10 {
        farm.admin(
            Admin::PutShow {
                name: format!("show{s}"),
                enabled: None,
                default_priority: None,
                default_max_cores: None,
            },
            0,
        )
        .unwrap();
        farm.admin(
            Admin::PutSubscription {
                show: format!("show{s}"),
                allocation: "local.general".into(),
                size: (cores_total as u32 / 10) * 100,
                burst: (cores_total as u32) * 100,
            },
            0,
        )
        .unwrap();
    }
    let ctx = SubmitContext::default();
    for j in 0..jobs {
        let spec = format!(
            "name: j{j}\nshow: show{}\npriority: {}\nlayers: [{{name: a, command: x, frames: 1-{per_job}, memory: 2G}}]",
            j % 10,
            50 + j % 100
        );
        farm.submit(
            parse_and_validate(&spec, Format::Yaml, &ctx).unwrap(),
            j as i64,
        )
        .unwrap();
    }
    farm.take_dirty();
    farm.take_outgoing();
    println!(
        "farm: {hosts} hosts, {cores_total} cores, {jobs} jobs, {} waiting frames (built in {:.1?})",
        jobs * per_job,
        t.elapsed()
    );

    let mut now = 1_000_000;
    let (t_snap, t_plan, t_apply, n) = pass(&mut farm, now);
    println!(
        "cold pass:   snapshot {t_snap:>9.2?}  plan {t_plan:>9.2?}  = {:>9.2?}   (apply {t_apply:.1?}: {n} frames started)",
        t_snap + t_plan
    );
    let mut launches: Vec<AttemptId> = farm
        .take_outgoing()
        .into_iter()
        .filter_map(|o| match o.msg {
            kiln_core::link::ServerMsg::Launch(l) => Some(l.attempt),
            _ => None,
        })
        .collect();
    farm.take_dirty();

    // Steady state: about 1 % of the running frames end, then one pass.
    let mut times = Vec::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..rounds {
        now += 1_000;
        let ending = launches.len() / 100;
        for _ in 0..ending {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = (rng % launches.len() as u64) as usize;
            let attempt = launches.swap_remove(i);
            end(&mut farm, attempt, now);
        }
        farm.take_dirty();
        farm.take_outgoing();
        let (s, p, a, n) = pass(&mut farm, now);
        times.push((s + p, s, p, a, n));
        launches.extend(
            farm.take_outgoing()
                .into_iter()
                .filter_map(|o| match o.msg {
                    kiln_core::link::ServerMsg::Launch(l) => Some(l.attempt),
                    _ => None,
                }),
        );
        farm.take_dirty();
        if round == 0 {
            println!("steady pass: {ending} frames ended before each pass");
        }
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("max", 1.0)] {
        let (total, s, p, a, n) = pick(q);
        println!(
            "steady {name}:  snapshot {s:>9.2?}  plan {p:>9.2?}  = {total:>9.2?}   (apply {a:.1?}: {n} frames started)"
        );
    }
}

fn pass(farm: &mut Farm, now: i64) -> (Duration, Duration, Duration, usize) {
    let t = Instant::now();
    let Some(snap) = farm.snapshot(now) else {
        return (t.elapsed(), Duration::ZERO, Duration::ZERO, 0);
    };
    let t_snap = t.elapsed();
    let t = Instant::now();
    let plan = sched::plan(snap);
    let t_plan = t.elapsed();
    let t = Instant::now();
    let n = farm.apply_plan(&plan, now);
    (t_snap, t_plan, t.elapsed(), n)
}

fn register(farm: &mut Farm, h: usize, cores: u32) {
    farm.worker_event(
        WorkerEvent::Message {
            session: h as u64 + 1,
            msg: WorkerMsg::Register {
                host: HostReport {
                    name: format!("h{h}"),
                    cores: cores * 100,
                    memory_kb: (cores as u64 * 4) << 20,
                    ..Default::default()
                },
                running: vec![],
            },
        },
        0,
    );
}

fn end(farm: &mut Farm, attempt: AttemptId, now: i64) {
    let Some(a) = farm.live_attempt(attempt).cloned() else {
        return;
    };
    let session = a.host.0 as u64;
    farm.worker_event(
        WorkerEvent::Message {
            session,
            msg: WorkerMsg::Ended(FrameEnded {
                attempt,
                exit: Exit::Exited(0),
                started_at: a.started_at,
                ended_at: now,
                max_rss_kb: 1 << 20,
                cpu_ms: 1000,
                log_size: 0,
                usage: Vec::new(),
                outputs: Vec::new(),
            }),
        },
        now,
    );
}
