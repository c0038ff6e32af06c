//! The scheduler's mirror against snapshots built from scratch, over random
//! sequences of what happens on a farm: hosts coming and going, jobs
//! submitted, run, failed, paused, killed and retried, structure changed.

use super::*;
use crate::link::{Exit, FrameEnded, WorkerMsg};
use crate::sched;
use crate::spec::{parse_and_validate, Format, SubmitContext};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Register {
        host: u8,
        cores: u8,
    },
    Disconnect(u8),
    Goodbye(u8),
    Lock(u8, bool),
    Repair(u8, bool),
    Tag(u8),
    Submit {
        layers: u8,
        frames: u8,
        link: u8,
        limit: bool,
        priority: u8,
    },
    Pass,
    End {
        pick: u16,
        ok: bool,
    },
    Act {
        job: u8,
        action: u8,
    },
    Priority {
        job: u8,
        priority: u8,
    },
    Limit(u8),
    Show(bool),
    Tick(u16),
    Unavoid(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, 1u8..9).prop_map(|(host, cores)| Op::Register { host, cores }),
        1 => (0u8..6).prop_map(Op::Disconnect),
        1 => (0u8..6).prop_map(Op::Goodbye),
        1 => (0u8..6, any::<bool>()).prop_map(|(h, l)| Op::Lock(h, l)),
        1 => (0u8..6, any::<bool>()).prop_map(|(h, r)| Op::Repair(h, r)),
        1 => (0u8..6).prop_map(Op::Tag),
        4 => (1u8..4, 1u8..6, 0u8..4, any::<bool>(), 1u8..4).prop_map(
            |(layers, frames, link, limit, priority)| Op::Submit {
                layers,
                frames,
                link,
                limit,
                priority
            }
        ),
        8 => Just(Op::Pass),
        10 => (any::<u16>(), prop::bool::weighted(0.7)).prop_map(|(pick, ok)| Op::End { pick, ok }),
        2 => (0u8..8, 0u8..5).prop_map(|(job, action)| Op::Act { job, action }),
        1 => (0u8..8, 1u8..4).prop_map(|(job, priority)| Op::Priority { job, priority }),
        1 => (0u8..4).prop_map(Op::Limit),
        1 => prop::bool::weighted(0.8).prop_map(Op::Show),
        1 => (1u16..30_000).prop_map(Op::Tick),
        1 => (0u8..8).prop_map(Op::Unavoid),
    ]
}

struct World {
    farm: Farm,
    now: Millis,
    jobs: Vec<JobId>,
    /// (attempt, session) of frames launched and not yet ended.
    running: Vec<(AttemptId, u64)>,
    next_session: u64,
}

impl World {
    fn new() -> World {
        let mut farm = Farm::new(FarmConfig {
            heartbeat_ms: 1_000,
            down_after_ms: 20_000,
            reserve_after_ms: 3_000,
            ..FarmConfig::default()
        });
        farm.admin(
            Admin::PutLimit {
                name: "lic".into(),
                max: 3,
            },
            0,
        )
        .unwrap();
        let mut w = World {
            farm,
            now: 0,
            jobs: Vec::new(),
            running: Vec::new(),
            next_session: 1,
        };
        for host in 0..3 {
            w.run(Op::Register { host, cores: 4 });
        }
        w
    }

    fn session(&self, host: u8) -> Option<u64> {
        let id = *self.farm.host_by_name.get(&format!("h{host}"))?;
        self.farm.hosts.get(&id)?.session
    }

    fn send(&mut self, session: u64, msg: WorkerMsg) {
        let ev = WorkerEvent::Message { session, msg };
        self.farm.worker_event(ev, self.now);
    }

    fn run(&mut self, op: Op) {
        self.now += 500;
        let now = self.now;
        match op {
            Op::Register { host, cores } => {
                let session = self.next_session;
                self.next_session += 1;
                let running: Vec<_> = self
                    .running
                    .iter()
                    .filter(|(_, s)| Some(*s) == self.session(host))
                    .map(|&(attempt, _)| crate::link::RunningFrame {
                        attempt,
                        ..Default::default()
                    })
                    .collect();
                let report = HostReport {
                    name: format!("h{host}"),
                    cores: cores as u32 * 100,
                    memory_kb: 16 << 20,
                    gpus: (host == 5) as u32,
                    ..Default::default()
                };
                let ids: Vec<AttemptId> = running.iter().map(|r| r.attempt).collect();
                self.send(
                    session,
                    WorkerMsg::Register {
                        host: report,
                        running,
                    },
                );
                for r in &mut self.running {
                    if ids.contains(&r.0) {
                        r.1 = session;
                    }
                }
            }
            Op::Disconnect(h) => {
                if let Some(session) = self.session(h) {
                    let ev = WorkerEvent::Disconnected { session };
                    self.farm.worker_event(ev, now);
                }
            }
            Op::Goodbye(h) => {
                if let Some(session) = self.session(h) {
                    self.send(session, WorkerMsg::Goodbye);
                }
            }
            Op::Lock(h, on) => drop(self.farm.set_lock(&format!("h{h}"), on, 0)),
            Op::Repair(h, on) => {
                let cmd = Admin::Repair {
                    host: format!("h{h}"),
                    on,
                };
                drop(self.farm.admin(cmd, now));
            }
            Op::Tag(h) => {
                let cmd = Admin::TagHost {
                    host: format!("h{h}"),
                    add: vec!["fast".into()],
                    remove: vec![],
                };
                drop(self.farm.admin(cmd, now));
            }
            Op::Submit {
                layers,
                frames,
                link,
                limit,
                priority,
            } => {
                let mut yaml = format!("name: j{}\npriority: {}\n", self.jobs.len(), priority * 50);
                if link == 3 {
                    if let Some(first) = self.jobs.first() {
                        yaml += &format!("depends: [\"{first}\"]\n");
                    }
                }
                yaml += "layers:\n";
                for l in 0..layers {
                    yaml += &format!("  - {{name: l{l}, command: x, frames: 1-{frames}");
                    if l > 0 && link == 1 {
                        yaml += &format!(", depends: [l{}]", l - 1);
                    }
                    if l > 0 && link == 2 {
                        yaml += &format!(", depends: [{{layer: l{}, per_frame: true}}]", l - 1);
                    }
                    if limit && l == 0 {
                        yaml += ", limits: [lic]";
                    }
                    if l == 2 {
                        yaml += ", tags: [fast]";
                    }
                    yaml += "}\n";
                }
                let spec = parse_and_validate(&yaml, Format::Yaml, &SubmitContext::default());
                if let Ok(Ok((id, _))) = spec.map(|s| self.farm.submit(s, now)) {
                    self.jobs.push(id);
                }
            }
            Op::Pass => {
                if let Some(snap) = self.farm.snapshot(now) {
                    let plan = sched::plan(snap);
                    self.farm.apply_plan(&plan, now);
                }
                for o in self.farm.take_outgoing() {
                    if let crate::link::ServerMsg::Launch(l) = o.msg {
                        self.running.push((l.attempt, o.session));
                    }
                }
            }
            Op::End { pick, ok } => {
                if self.running.is_empty() {
                    return;
                }
                let (attempt, session) =
                    self.running.swap_remove(pick as usize % self.running.len());
                let Some(a) = self.farm.live_attempt(attempt).cloned() else {
                    return;
                };
                self.send(
                    session,
                    WorkerMsg::Ended(FrameEnded {
                        attempt,
                        exit: Exit::Exited(if ok { 0 } else { 1 }),
                        started_at: a.started_at,
                        ended_at: now,
                        max_rss_kb: 1 << 20,
                        cpu_ms: 10,
                        log_size: 0,
                        usage: Vec::new(),
                        outputs: Vec::new(),
                    }),
                );
            }
            Op::Act { job, action } => {
                let Some(id) = self.jobs.get(job as usize) else {
                    return;
                };
                let action = [
                    Action::Kill,
                    Action::Pause,
                    Action::Resume,
                    Action::Retry,
                    Action::Eat,
                ][action as usize];
                let key = id.to_string();
                drop(self.farm.act(action, &key, &[], None, "test", now));
            }
            Op::Priority { job, priority } => {
                let Some(id) = self.jobs.get(job as usize) else {
                    return;
                };
                let cmd = Admin::SetJob {
                    job: id.to_string(),
                    priority: Some(priority as i32 * 50),
                    max_cores: Some((priority == 3).then_some(200)),
                };
                drop(self.farm.admin(cmd, now));
            }
            Op::Limit(max) => {
                let cmd = Admin::PutLimit {
                    name: "lic".into(),
                    max: max as u32,
                };
                drop(self.farm.admin(cmd, now));
            }
            Op::Show(enabled) => {
                let cmd = Admin::PutShow {
                    name: "default".into(),
                    enabled: Some(enabled),
                    default_priority: None,
                    default_max_cores: None,
                };
                drop(self.farm.admin(cmd, now));
            }
            Op::Tick(ms) => {
                self.now += ms as Millis;
                self.farm.tick(self.now);
            }
            Op::Unavoid(job) => {
                let Some(id) = self.jobs.get(job as usize) else {
                    return;
                };
                let cmd = Admin::Unavoid {
                    job: id.to_string(),
                    host: None,
                };
                drop(self.farm.admin(cmd, now));
            }
        }
        self.farm.take_dirty();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// After every step the kept snapshot says what a fresh one says.
    #[test]
    fn the_mirror_matches_a_snapshot_built_from_scratch(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        for op in ops {
            w.run(op);
            let now = w.now;
            w.farm.snapshot(now);
            w.farm.mirror.check(&w.farm, now);
        }
    }
}

/// A job read again every pass (a frame-by-frame dependency) that has
/// nothing to run counts as one dead row, not one more per pass: else the
/// rows would be swept and rebuilt every few hundred passes.
#[test]
fn a_paused_volatile_job_is_not_counted_dead_every_pass() {
    let mut w = World::new();
    w.run(Op::Submit {
        layers: 2,
        frames: 3,
        link: 2,
        limit: false,
        priority: 1,
    });
    w.run(Op::Pass);
    w.run(Op::Act { job: 0, action: 1 });
    for _ in 0..50 {
        w.run(Op::Pass);
    }
    assert!(w.farm.mirror.dead <= 3, "dead rows: {}", w.farm.mirror.dead);
}
