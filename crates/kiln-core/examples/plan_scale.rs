//! Times one scheduling pass of the farm at studio scale: a snapshot, the
//! plan, and applying it. `cargo run --release -p kiln-core --example
//! plan_scale -- [HOSTS] [JOBS] [FRAMES_PER_JOB]` (default 10000 5000 200).

use kiln_core::farm::{Farm, FarmConfig, WorkerEvent};
use kiln_core::link::WorkerMsg;
use kiln_core::model::HostReport;
use kiln_core::sched;
use kiln_core::spec::{parse_and_validate, Format, SubmitContext};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let hosts = args.first().copied().unwrap_or(10_000);
    let jobs = args.get(1).copied().unwrap_or(5_000);
    let per_job = args.get(2).copied().unwrap_or(200);
    let mut farm = Farm::new(FarmConfig::default());
    let t = Instant::now();
    for h in 0..hosts {
        let cores = [16, 32, 48, 64][h % 4];
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
    let ctx = SubmitContext::default();
    for j in 0..jobs {
        let spec = format!(
            "name: j{j}\npriority: {}\nlayers: [{{name: a, command: x, frames: 1-{per_job}, memory: 2G}}]",
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
        "farm: {hosts} hosts, {jobs} jobs, {} waiting frames (built in {:.1?})",
        jobs * per_job,
        t.elapsed()
    );
    let now = 1_000_000;
    let t = Instant::now();
    let snap = farm.snapshot(now);
    let t_snap = t.elapsed();
    let t = Instant::now();
    let plan = sched::plan(&snap);
    let t_plan = t.elapsed();
    let t = Instant::now();
    let n = farm.apply_plan(&plan, now);
    let t_apply = t.elapsed();
    println!(
        "cold pass: snapshot {t_snap:.1?} ({} demands), plan {t_plan:.1?}, apply {t_apply:.1?}: {n} frames placed",
        snap.demands.len()
    );
    let t = Instant::now();
    let snap = farm.snapshot(now + 1);
    let plan = sched::plan(&snap);
    println!(
        "full-farm pass (nothing fits): {:.1?}, {} placed",
        t.elapsed(),
        plan.assignments.len()
    );
}
