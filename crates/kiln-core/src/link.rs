//! The messages between the server and a worker, in domain form. The wire
//! encoding lives in `kiln-proto`; both ends speak these types.

use crate::model::{AttemptId, Command, HostId, HostReport};
use std::collections::BTreeMap;

/// Live figures of a frame the worker is running.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunningFrame {
    pub attempt: AttemptId,
    pub rss_kb: u64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    pub log_size: u64,
}

/// How a frame's process ended, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Killed(String),
    FailedToStart(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameEnded {
    pub attempt: AttemptId,
    pub exit: Exit,
    pub started_at: i64,
    pub ended_at: i64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    /// The log's total size; every byte was sent before this report.
    pub log_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkerMsg {
    /// First message of every connection: startup and reconnect are one path.
    Register {
        host: HostReport,
        /// Every attempt the worker holds: running, or ended and not yet
        /// acknowledged (their log bytes and ends follow).
        running: Vec<RunningFrame>,
    },
    Heartbeat {
        load: f64,
        free_memory_kb: u64,
        running: Vec<RunningFrame>,
        seq: u64,
    },
    Log {
        attempt: AttemptId,
        offset: u64,
        data: Vec<u8>,
    },
    Ended(FrameEnded),
    /// The worker is shutting down: start nothing new on it; once it has
    /// reported its frames and disconnects, the host is DOWN at once.
    Goodbye,
}

/// What a worker needs to run one frame; tokens already substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub attempt: AttemptId,
    pub job: String,
    pub frame_label: String,
    pub command: Command,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub user: String,
    pub timeout_s: Option<u64>,
    pub gpus: u32,
    pub cores: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerMsg {
    Registered {
        host: HostId,
        heartbeat_ms: u32,
        lease_ms: u32,
        log_sizes: BTreeMap<AttemptId, u64>,
    },
    Launch(Launch),
    Kill {
        attempt: AttemptId,
        reason: String,
    },
    /// The server has durably recorded these frames' ends.
    Acked(Vec<AttemptId>),
    HeartbeatAck {
        seq: u64,
    },
}
