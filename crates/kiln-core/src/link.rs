//! The messages between the server and a worker, in domain form. The wire
//! encoding lives in `kiln-proto`; both ends speak these types.

use crate::model::{AttemptId, Command, FrameId, HostId, HostReport};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Could not start for a reason of the job's own, the same on any host
    /// (its user unknown, its working directory missing, its program not
    /// found or not executable): counted against the frame, never the host.
    JobCannotStart(String),
    /// Killed by the worker for using more memory than the frame reserved.
    OutOfMemory {
        rss_kb: u64,
    },
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
    /// The layer's outputs, checked after a clean exit (else empty).
    pub outputs: Vec<FoundOutput>,
    /// Its memory and CPU over time, as the worker sampled them.
    pub usage: Vec<crate::series::UsageSample>,
}

/// One output as a worker found it, with its thumbnail (a small JPEG).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundOutput {
    pub check: crate::output::OutputCheck,
    pub thumbnail: Option<Vec<u8>>,
}

impl FoundOutput {
    /// `check` found unreadable, for `why`.
    pub fn unreadable(mut check: crate::output::OutputCheck, why: String) -> FoundOutput {
        check.state = crate::output::OutputState::Unreadable;
        check.detail = Some(why);
        FoundOutput {
            check,
            thumbnail: None,
        }
    }
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
///
/// The environment comes in two parts so that starting a frame costs the
/// server almost nothing: `base_env` is built once per layer and shared by
/// all its launches (job and layer env, `KILN_JOB`, `KILN_SHOW`, ...), and
/// the per-frame variables are derived from the typed fields by
/// [`Launch::env`], where the frame actually starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub attempt: AttemptId,
    pub job: String,
    pub frame_label: String,
    pub command: Command,
    pub base_env: Arc<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub user: String,
    pub timeout_s: Option<u64>,
    pub gpus: u32,
    pub cores: u32,
    /// The frame's memory reservation; the worker kills a frame whose
    /// resident memory goes past it. 0: no limit.
    pub memory_kb: u64,
    pub frame: FrameId,
    /// First and last frame numbers of the chunk, and the chunk itself.
    pub number: i64,
    pub last: i64,
    pub chunk: String,
    /// 1 for the frame's first attempt.
    pub attempt_number: u32,
    /// Paths to check after a clean exit, tokens substituted for each
    /// frame of the chunk; relative ones are in the frame's directory.
    pub outputs: Vec<String>,
}

impl Launch {
    /// The frame's whole environment: the shared part, then the variables
    /// of this frame and attempt.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = (*self.base_env).clone();
        let threads = self.cores.div_ceil(100).max(1).to_string();
        let cores = if self.cores.is_multiple_of(100) {
            (self.cores / 100).to_string()
        } else {
            format!("{}", self.cores as f64 / 100.0)
        };
        for (k, v) in [
            ("KILN_FRAME", self.number.to_string()),
            ("KILN_FRAME_ID", self.frame.to_string()),
            ("KILN_FRAME_START", self.number.to_string()),
            ("KILN_FRAME_END", self.last.to_string()),
            ("KILN_FRAMESPEC", self.chunk.clone()),
            ("KILN_ATTEMPT", self.attempt_number.to_string()),
            ("KILN_ATTEMPT_ID", self.attempt.to_string()),
            ("KILN_CORES", cores),
            ("KILN_THREADS", threads.clone()),
            // OpenCue's name for the same thing, so existing wrappers work.
            ("CUE_THREADS", threads),
            ("KILN_MEMORY_KB", self.memory_kb.to_string()),
        ] {
            env.insert(k.to_owned(), v);
        }
        env
    }
}

// Nearly every message to a worker is a launch: boxing it would allocate
// once more for each, to shrink the rare others.
#[allow(clippy::large_enum_variant)]
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
