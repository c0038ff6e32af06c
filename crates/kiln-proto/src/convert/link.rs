//! Conversions of the worker link: registrations, heartbeats, log chunks,
//! frame ends and the server's launches, kills and acknowledgements.

use crate::pb;
use crate::{Error, Result};
use kiln_core::link::{self, Exit, FoundOutput, FrameEnded, RunningFrame, ServerMsg, WorkerMsg};
use kiln_core::model::*;
use kiln_core::output::{OutputCheck, OutputState};
use kiln_core::series::UsageSample;

impl From<HostReport> for pb::HostReport {
    fn from(r: HostReport) -> Self {
        pb::HostReport {
            name: r.name,
            os: r.os,
            cores: r.cores,
            memory_kb: r.memory_kb,
            total_memory_kb: r.total_memory_kb,
            swap_kb: r.swap_kb,
            gpus: r.gpus,
            gpu_memory_kb: r.gpu_memory_kb,
            scratch_free_kb: r.scratch_free_kb,
            load: r.load,
            tags: r.tags,
            version: r.version,
        }
    }
}

impl From<pb::HostReport> for HostReport {
    fn from(r: pb::HostReport) -> Self {
        HostReport {
            name: r.name,
            os: r.os,
            cores: r.cores,
            memory_kb: r.memory_kb,
            total_memory_kb: r.total_memory_kb,
            swap_kb: r.swap_kb,
            gpus: r.gpus,
            gpu_memory_kb: r.gpu_memory_kb,
            scratch_free_kb: r.scratch_free_kb,
            load: r.load,
            tags: r.tags,
            version: r.version,
        }
    }
}

impl From<RunningFrame> for pb::RunningFrame {
    fn from(r: RunningFrame) -> Self {
        pb::RunningFrame {
            attempt_id: r.attempt.0,
            rss_kb: r.rss_kb,
            max_rss_kb: r.max_rss_kb,
            cpu_ms: r.cpu_ms,
            log_size: r.log_size,
        }
    }
}

impl From<pb::RunningFrame> for RunningFrame {
    fn from(r: pb::RunningFrame) -> Self {
        RunningFrame {
            attempt: AttemptId(r.attempt_id),
            rss_kb: r.rss_kb,
            max_rss_kb: r.max_rss_kb,
            cpu_ms: r.cpu_ms,
            log_size: r.log_size,
        }
    }
}

impl From<FrameEnded> for pb::FrameEnded {
    fn from(e: FrameEnded) -> Self {
        let mut rss_kb = 0;
        let (exit, code, reason) = match e.exit {
            Exit::Exited(c) => ("exited", c, String::new()),
            Exit::Signaled(s) => ("signaled", s, String::new()),
            Exit::TimedOut => ("timed_out", 0, String::new()),
            Exit::Killed(r) => ("killed", 0, r),
            Exit::FailedToStart(r) => ("failed_to_start", 0, r),
            Exit::JobCannotStart(r) => ("job_cannot_start", 0, r),
            Exit::OutOfMemory { rss_kb: r } => {
                rss_kb = r;
                ("out_of_memory", 0, String::new())
            }
        };
        pb::FrameEnded {
            attempt_id: e.attempt.0,
            exit: exit.to_string(),
            code,
            reason,
            started_at: e.started_at,
            ended_at: e.ended_at,
            max_rss_kb: e.max_rss_kb,
            cpu_ms: e.cpu_ms,
            log_size: e.log_size,
            rss_kb,
            usage: e
                .usage
                .into_iter()
                .map(|u| pb::UsageSample {
                    t: u.t,
                    rss_kb: u.rss_kb,
                    cpu_ms: u.cpu_ms,
                })
                .collect(),
            outputs: e
                .outputs
                .into_iter()
                .map(|o| pb::OutputFound {
                    has_thumbnail: o.thumbnail.is_some(),
                    thumbnail: o.thumbnail.unwrap_or_default(),
                    ..output_to_wire(o.check)
                })
                .collect(),
        }
    }
}

fn frame_ended(e: pb::FrameEnded) -> Result<FrameEnded> {
    let exit = match e.exit.as_str() {
        "exited" => Exit::Exited(e.code),
        "signaled" => Exit::Signaled(e.code),
        "timed_out" => Exit::TimedOut,
        "killed" => Exit::Killed(e.reason),
        "failed_to_start" => Exit::FailedToStart(e.reason),
        "job_cannot_start" => Exit::JobCannotStart(e.reason),
        "out_of_memory" => Exit::OutOfMemory { rss_kb: e.rss_kb },
        other => return Err(Error::Malformed(format!("unknown exit kind {other:?}"))),
    };
    let outputs = e
        .outputs
        .into_iter()
        .map(output_from_wire)
        .collect::<Result<_>>()?;
    Ok(FrameEnded {
        attempt: AttemptId(e.attempt_id),
        exit,
        started_at: e.started_at,
        ended_at: e.ended_at,
        max_rss_kb: e.max_rss_kb,
        cpu_ms: e.cpu_ms,
        log_size: e.log_size,
        usage: e
            .usage
            .into_iter()
            .map(|u| UsageSample {
                t: u.t,
                rss_kb: u.rss_kb,
                cpu_ms: u.cpu_ms,
            })
            .collect(),
        outputs,
    })
}

/// An output check on the wire, without a thumbnail.
pub(crate) fn output_to_wire(c: OutputCheck) -> pb::OutputFound {
    pb::OutputFound {
        path: c.path,
        state: c.state.as_str().into(),
        size: c.size,
        width: c.width,
        height: c.height,
        brightness: c.brightness,
        detail: c.detail.unwrap_or_default(),
        thumbnail: Vec::new(),
        has_thumbnail: c.thumbnail,
    }
}

/// An output check (and its thumbnail, if sent) from the wire; `thumbnail`
/// in the check says whether it had one, which a frame's listing tells
/// without the bytes.
pub(crate) fn output_from_wire(o: pb::OutputFound) -> Result<FoundOutput> {
    let state = OutputState::parse(&o.state)
        .ok_or_else(|| Error::Malformed(format!("unknown output state {:?}", o.state)))?;
    Ok(FoundOutput {
        check: OutputCheck {
            path: o.path,
            state,
            size: o.size,
            width: o.width,
            height: o.height,
            brightness: o.brightness.filter(|b| b.is_finite()),
            thumbnail: o.has_thumbnail || !o.thumbnail.is_empty(),
            detail: (!o.detail.is_empty()).then_some(o.detail),
        },
        thumbnail: (!o.thumbnail.is_empty()).then_some(o.thumbnail),
    })
}

impl From<WorkerMsg> for pb::WorkerMessage {
    fn from(m: WorkerMsg) -> Self {
        use pb::worker_message::Msg;
        let msg = match m {
            WorkerMsg::Register { host, running } => Msg::Register(pb::Register {
                host: Some(host.into()),
                running: running.into_iter().map(Into::into).collect(),
            }),
            WorkerMsg::Heartbeat {
                load,
                free_memory_kb,
                running,
                seq,
            } => Msg::Heartbeat(pb::Heartbeat {
                load,
                free_memory_kb,
                running: running.into_iter().map(Into::into).collect(),
                seq,
            }),
            WorkerMsg::Log {
                attempt,
                offset,
                data,
            } => Msg::Log(pb::LogChunk {
                attempt_id: attempt.0,
                offset,
                data,
            }),
            WorkerMsg::Ended(e) => Msg::Ended(e.into()),
            WorkerMsg::Goodbye => Msg::Goodbye(pb::Goodbye {}),
        };
        pb::WorkerMessage { msg: Some(msg) }
    }
}

pub(crate) fn worker_msg(m: pb::WorkerMessage) -> Result<WorkerMsg> {
    use pb::worker_message::Msg;
    Ok(
        match m
            .msg
            .ok_or_else(|| Error::Malformed("empty worker message".into()))?
        {
            Msg::Register(r) => WorkerMsg::Register {
                host: r
                    .host
                    .ok_or_else(|| Error::Malformed("register without a host report".into()))?
                    .into(),
                running: r.running.into_iter().map(Into::into).collect(),
            },
            Msg::Heartbeat(h) => WorkerMsg::Heartbeat {
                load: h.load,
                free_memory_kb: h.free_memory_kb,
                running: h.running.into_iter().map(Into::into).collect(),
                seq: h.seq,
            },
            Msg::Log(l) => WorkerMsg::Log {
                attempt: AttemptId(l.attempt_id),
                offset: l.offset,
                data: l.data,
            },
            Msg::Ended(e) => WorkerMsg::Ended(frame_ended(e)?),
            Msg::Goodbye(_) => WorkerMsg::Goodbye,
        },
    )
}

impl From<ServerMsg> for pb::ServerMessage {
    fn from(m: ServerMsg) -> Self {
        use pb::server_message::Msg;
        let msg = match m {
            ServerMsg::Registered {
                host,
                heartbeat_ms,
                lease_ms,
                log_sizes,
            } => Msg::Registered(pb::Registered {
                host_id: host.0,
                heartbeat_ms,
                lease_ms,
                log_sizes: log_sizes.into_iter().map(|(k, v)| (k.0, v)).collect(),
            }),
            ServerMsg::Launch(l) => {
                let (shell, argv) = match l.command {
                    Command::Shell(s) => (s, Vec::new()),
                    Command::Argv(v) => (String::new(), v),
                };
                Msg::Launch(pb::Launch {
                    attempt_id: l.attempt.0,
                    job: l.job,
                    frame_label: l.frame_label,
                    shell,
                    argv,
                    env: l
                        .base_env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    cwd: l.cwd.unwrap_or_default(),
                    user: l.user,
                    timeout_s: l.timeout_s.unwrap_or(0),
                    gpus: l.gpus,
                    cores: l.cores,
                    memory_kb: l.memory_kb,
                    frame_id: l.frame.0,
                    number: l.number,
                    last: l.last,
                    chunk: l.chunk,
                    attempt_number: l.attempt_number,
                    outputs: l.outputs,
                })
            }
            ServerMsg::Kill { attempt, reason } => Msg::Kill(pb::Kill {
                attempt_id: attempt.0,
                reason,
            }),
            ServerMsg::Acked(ids) => Msg::Acked(pb::Acked {
                attempt_ids: ids.into_iter().map(|a| a.0).collect(),
            }),
            ServerMsg::HeartbeatAck { seq } => Msg::HeartbeatAck(pb::HeartbeatAck { seq }),
        };
        pb::ServerMessage { msg: Some(msg) }
    }
}

pub(crate) fn server_msg(m: pb::ServerMessage) -> Result<ServerMsg> {
    use pb::server_message::Msg;
    Ok(
        match m
            .msg
            .ok_or_else(|| Error::Malformed("empty server message".into()))?
        {
            Msg::Registered(r) => ServerMsg::Registered {
                host: HostId(r.host_id),
                heartbeat_ms: r.heartbeat_ms,
                lease_ms: r.lease_ms,
                log_sizes: r
                    .log_sizes
                    .into_iter()
                    .map(|(k, v)| (AttemptId(k), v))
                    .collect(),
            },
            Msg::Launch(l) => {
                let command = if l.argv.is_empty() {
                    Command::Shell(l.shell)
                } else {
                    Command::Argv(l.argv)
                };
                ServerMsg::Launch(link::Launch {
                    attempt: AttemptId(l.attempt_id),
                    job: l.job,
                    frame_label: l.frame_label,
                    command,
                    base_env: std::sync::Arc::new(l.env.into_iter().collect()),
                    cwd: (!l.cwd.is_empty()).then_some(l.cwd),
                    user: l.user,
                    timeout_s: (l.timeout_s != 0).then_some(l.timeout_s),
                    gpus: l.gpus,
                    cores: l.cores,
                    memory_kb: l.memory_kb,
                    frame: FrameId(l.frame_id),
                    number: l.number,
                    last: l.last,
                    chunk: l.chunk,
                    attempt_number: l.attempt_number,
                    outputs: l.outputs,
                })
            }
            Msg::Kill(k) => ServerMsg::Kill {
                attempt: AttemptId(k.attempt_id),
                reason: k.reason,
            },
            Msg::Acked(a) => ServerMsg::Acked(a.attempt_ids.into_iter().map(AttemptId).collect()),
            Msg::HeartbeatAck(h) => ServerMsg::HeartbeatAck { seq: h.seq },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_messages_round_trip() {
        let msgs = vec![
            WorkerMsg::Register {
                host: HostReport {
                    name: "h1".into(),
                    cores: 1600,
                    tags: vec!["a".into()],
                    ..Default::default()
                },
                running: vec![RunningFrame {
                    attempt: AttemptId(3),
                    rss_kb: 10,
                    max_rss_kb: 20,
                    cpu_ms: 5,
                    log_size: 7,
                }],
            },
            WorkerMsg::Log {
                attempt: AttemptId(1),
                offset: 9,
                data: b"hi".to_vec(),
            },
            WorkerMsg::Ended(FrameEnded {
                attempt: AttemptId(2),
                exit: Exit::OutOfMemory { rss_kb: 5 << 20 },
                started_at: 1,
                ended_at: 2,
                max_rss_kb: 5 << 20,
                cpu_ms: 0,
                log_size: 0,
                usage: Vec::new(),
                outputs: Vec::new(),
            }),
            WorkerMsg::Ended(FrameEnded {
                attempt: AttemptId(1),
                exit: Exit::Signaled(9),
                started_at: 1,
                ended_at: 2,
                max_rss_kb: 0,
                cpu_ms: 0,
                log_size: 0,
                usage: vec![
                    UsageSample {
                        t: 1_796_000_000_000,
                        rss_kb: 1 << 20,
                        cpu_ms: 5,
                    },
                    UsageSample {
                        t: 1_796_000_001_000,
                        rss_kb: 3 << 20,
                        cpu_ms: 900,
                    },
                ],
                outputs: vec![
                    FoundOutput {
                        check: OutputCheck {
                            path: "out/ü.0001.exr".into(),
                            state: OutputState::Black,
                            size: 1 << 33,
                            width: 4096,
                            height: 2160,
                            brightness: Some(0.0),
                            thumbnail: true,
                            detail: None,
                        },
                        thumbnail: Some(vec![0xff, 0xd8, 0, 1]),
                    },
                    FoundOutput {
                        check: OutputCheck {
                            path: "b.tif".into(),
                            state: OutputState::Unreadable,
                            size: 3,
                            width: 0,
                            height: 0,
                            brightness: None,
                            thumbnail: false,
                            detail: Some("bad magic".into()),
                        },
                        thumbnail: None,
                    },
                ],
            }),
        ];
        for m in msgs {
            assert_eq!(worker_msg(m.clone().into()).unwrap(), m);
        }
    }

    #[test]
    fn launch_round_trips_both_command_forms() {
        for command in [
            Command::Shell("echo #FRAME#".into()),
            Command::Argv(vec!["a".into(), "b c".into()]),
        ] {
            let m = ServerMsg::Launch(link::Launch {
                attempt: AttemptId(1),
                job: "j".into(),
                frame_label: "l/1".into(),
                command,
                base_env: std::sync::Arc::new([("A".to_string(), "1".to_string())].into()),
                cwd: Some("/tmp".into()),
                user: "u".into(),
                timeout_s: Some(5),
                gpus: 1,
                cores: 100,
                memory_kb: 4 << 20,
                frame: FrameId(7),
                number: 11,
                last: 15,
                chunk: "11-15".into(),
                attempt_number: 2,
                outputs: vec!["out/a.0011.exr".into(), "/abs/b.png".into()],
            });
            assert_eq!(server_msg(m.clone().into()).unwrap(), m);
        }
    }
}
