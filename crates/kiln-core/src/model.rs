//! The farm's records: jobs, layers, frames, attempts and hosts, as the store
//! keeps them and the server holds them in memory.
//!
//! Units follow OpenCue at the boundary so compatibility needs no reshaping:
//! cores are counted in centicores (100 = one core), memory in KiB, times in
//! milliseconds since the Unix epoch.

pub use crate::structure::CoreRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }
    )*};
}

id_type!(
    /// A job's id, unique over the life of a farm.
    JobId,
    /// A layer's id, unique over the life of a farm.
    LayerId,
    /// A frame's id (one task of a layer), unique over the life of a farm.
    FrameId,
    /// One run of a frame on a host.
    AttemptId,
    /// A render host.
    HostId,
);

/// Milliseconds since the Unix epoch. The domain never reads a clock.
pub type Millis = i64;

/// Centicores: 100 is one core, as in OpenCue.
pub type Centicores = u32;

/// What a layer asks of a host, and what a host offers. Every dimension is
/// a hard limit: a host never runs more than it offers of any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub cores: Centicores,
    pub memory_kb: u64,
    pub gpus: u32,
    /// GPU memory, summed over the GPUs asked for or offered.
    #[serde(default)]
    pub gpu_memory_kb: u64,
    /// Scratch (temporary) disk space.
    #[serde(default)]
    pub scratch_kb: u64,
}

impl Resources {
    pub fn fits_in(&self, free: &Resources) -> bool {
        self.cores <= free.cores
            && self.memory_kb <= free.memory_kb
            && self.gpus <= free.gpus
            && self.gpu_memory_kb <= free.gpu_memory_kb
            && self.scratch_kb <= free.scratch_kb
    }
    pub fn add(&mut self, other: &Resources) {
        self.cores += other.cores;
        self.memory_kb += other.memory_kb;
        self.gpus += other.gpus;
        self.gpu_memory_kb += other.gpu_memory_kb;
        self.scratch_kb += other.scratch_kb;
    }
    pub fn sub(&mut self, other: &Resources) {
        self.cores = self.cores.saturating_sub(other.cores);
        self.memory_kb = self.memory_kb.saturating_sub(other.memory_kb);
        self.gpus = self.gpus.saturating_sub(other.gpus);
        self.gpu_memory_kb = self.gpu_memory_kb.saturating_sub(other.gpu_memory_kb);
        self.scratch_kb = self.scratch_kb.saturating_sub(other.scratch_kb);
    }
}

/// How a layer's command is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// A string run by `/bin/sh -c`.
    Shell(String),
    /// An argument vector run directly, without a shell.
    Argv(Vec<String>),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Argv(v) => f.write_str(&v.join(" ")),
        }
    }
}

/// A dependency of a layer on another layer of the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDep {
    /// The name of the layer depended on.
    pub layer: String,
    /// `false`: wait for every frame of `layer`. `true`: frame N waits only for
    /// the task of `layer` that holds frame N.
    pub per_frame: bool,
}

/// A host tag requirement: the host must carry at least one of `any_of`.
/// A layer's requirements are all required (`[linux, "gpu|cuda"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TagReq {
    pub any_of: Vec<String>,
}

impl TagReq {
    pub fn satisfied_by(&self, tags: &[String]) -> bool {
        self.any_of.iter().any(|t| tags.iter().any(|h| h == t))
    }
}

impl fmt::Display for TagReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.any_of.join("|"))
    }
}

/// A job's own lifecycle. Whether it is done, failed or running is derived
/// from its frames (see [`crate::view::JobStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    Active,
    Killed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub name: String,
    pub facility: String,
    pub show: String,
    pub shot: String,
    pub user: String,
    pub priority: i32,
    pub env: BTreeMap<String, String>,
    pub paused: bool,
    pub state: JobState,
    /// Jobs that must finish (every frame succeeded or eaten) before this
    /// job's frames may start.
    pub depends: Vec<JobId>,
    /// The most cores the job may hold at once; `None`: no cap.
    pub max_cores: Option<Centicores>,
    /// Hosts this job no longer uses because its frames kept failing there.
    /// `kiln job JOB` lists them; a wrangler can clear them.
    pub avoid_hosts: Vec<HostId>,
    pub submitted_at: Millis,
    /// When the job last became finished or killed; `None` while it has work.
    pub finished_at: Option<Millis>,
    /// The submitter's idempotency key: a repeat of the submit with the
    /// same key returns this job instead of creating another.
    #[serde(default)]
    pub submit_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub id: LayerId,
    pub job: JobId,
    /// Position in the job's spec; also the tie-break between layers.
    pub index: u32,
    pub name: String,
    pub command: Command,
    /// The frame set as written in the spec, e.g. `1-100x5`.
    pub frames: String,
    pub chunk: u32,
    /// What one frame reserves; `resources.cores` is the least of `cores`.
    pub resources: Resources,
    /// The cores asked for, possibly a range; see [`CoreRequest`].
    pub cores: CoreRequest,
    pub tags: Vec<TagReq>,
    /// Limits (licenses) each running frame takes one of.
    pub limits: Vec<String>,
    /// The service whose defaults filled the fields the spec left out.
    pub service: Option<String>,
    pub env: BTreeMap<String, String>,
    pub retries: u32,
    /// Seconds a frame may run before it is killed and counted as failed.
    pub timeout_s: Option<u64>,
    pub depends: Vec<LayerDep>,
    /// Absolute working directory for frames; `None`: a scratch directory
    /// the worker makes per frame.
    pub cwd: Option<String>,
    pub paused: bool,
    /// Images each frame writes (tokens unsubstituted), checked and
    /// thumbnailed by the worker after the frame.
    pub outputs: Vec<String>,
    pub bad_outputs: crate::output::BadOutputs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FrameState {
    /// Not running. It may still be held by a dependency or a pause; the
    /// display state `DEPEND` is derived, not stored.
    Waiting,
    Running,
    Succeeded,
    /// Failed more often than its layer's retries allow, or killed by a user.
    Dead,
    /// Marked done by a user without succeeding.
    Eaten,
}

impl FrameState {
    /// Done for dependency purposes: nothing waits on it any more.
    pub fn is_done(self) -> bool {
        matches!(self, FrameState::Succeeded | FrameState::Eaten)
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Succeeded,
    /// Exited non-zero, died of a signal, or could not start.
    Failed,
    /// Ran past its layer's timeout and was killed.
    TimedOut,
    /// Killed on purpose (a user, a shutdown, a lost lease); does not count
    /// against the layer's retries.
    Killed,
    /// Its host went away; the frame was requeued.
    Lost,
    /// The worker killed it for using more memory than it reserved; it is
    /// retried with a larger reservation and does not use up a retry.
    #[serde(rename = "OOM")]
    OutOfMemory,
}

impl Outcome {
    /// Whether this outcome uses up one of the layer's retries.
    pub fn counts_as_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::TimedOut)
    }
}

/// One task of a layer: a chunk of `chunk` frames, named by its first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub id: FrameId,
    pub job: JobId,
    pub layer: LayerId,
    /// Dispatch order within the layer (the frame set's order).
    pub index: u32,
    /// The first frame number of the chunk.
    pub number: i64,
    /// The frames of the chunk as a frame set, e.g. `1-5` or `7`.
    pub chunk: String,
    pub state: FrameState,
    /// Times the frame was dispatched.
    pub attempts: u32,
    /// Attempts that counted against the layer's retries.
    pub failures: u32,
    /// The current attempt while running, else the last one.
    pub attempt: Option<AttemptId>,
    pub host: Option<HostId>,
    /// Cores granted to the current or last attempt.
    pub cores: Centicores,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub outcome: Option<Outcome>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    /// Why the last attempt ended as it did, when there was more to say
    /// than its exit status (the attempt's `reason`).
    #[serde(default)]
    pub reason: Option<String>,
    /// What its last attempt found of the layer's outputs (checked after a
    /// clean exit; empty while an attempt runs, or if it did not exit 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::output::OutputCheck>,
}

impl Frame {
    /// A frame that has never run: what submission creates.
    pub fn new(
        id: FrameId,
        job: JobId,
        layer: LayerId,
        index: u32,
        number: i64,
        chunk: String,
    ) -> Frame {
        Frame {
            id,
            job,
            layer,
            index,
            number,
            chunk,
            state: FrameState::Waiting,
            attempts: 0,
            failures: 0,
            attempt: None,
            host: None,
            cores: 0,
            started_at: None,
            ended_at: None,
            outcome: None,
            exit_status: None,
            exit_signal: None,
            max_rss_kb: 0,
            cpu_ms: 0,
            reason: None,
            outputs: Vec::new(),
        }
    }
}

/// One run of a frame on a host: the history behind a frame's last-attempt
/// summary, and the key of its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub frame: FrameId,
    pub job: JobId,
    /// 1 for the first attempt of the frame.
    pub number: u32,
    pub host: HostId,
    pub host_name: String,
    pub cores: Centicores,
    /// Memory reserved for the attempt; the worker kills it past this.
    pub memory_kb: u64,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    /// `None` while running.
    pub outcome: Option<Outcome>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    /// A line saying why, for outcomes other than a plain exit.
    pub reason: Option<String>,
    /// The layer's outputs as the worker found them after a clean exit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::output::OutputCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HostState {
    Up,
    Down,
    /// Taken out of service by a wrangler, or by Kiln after frames of
    /// several jobs kept failing on it; stays so until a wrangler clears it.
    Repair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockState {
    Open,
    Locked,
}

/// What a worker says about its machine when it registers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostReport {
    pub name: String,
    pub os: String,
    /// Cores offered to Kiln, in centicores.
    pub cores: Centicores,
    /// Memory offered to Kiln.
    pub memory_kb: u64,
    pub total_memory_kb: u64,
    pub swap_kb: u64,
    pub gpus: u32,
    pub gpu_memory_kb: u64,
    pub scratch_free_kb: u64,
    /// One-minute load average.
    pub load: f64,
    pub tags: Vec<String>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub id: HostId,
    pub report: HostReport,
    /// The allocation (pool) the host belongs to.
    pub allocation: String,
    /// Tags a wrangler gave the host, on top of those its worker detects.
    pub tags: Vec<String>,
    pub state: HostState,
    pub lock: LockState,
    pub registered_at: Millis,
    /// Last message from the worker, as seen by the server.
    pub last_seen: Millis,
}

impl Host {
    pub fn offers(&self) -> Resources {
        Resources {
            cores: self.report.cores,
            memory_kb: self.report.memory_kb,
            gpus: self.report.gpus,
            gpu_memory_kb: self.report.gpu_memory_kb,
            scratch_kb: self.report.scratch_free_kb,
        }
    }

    /// Detected and manual tags together, each once.
    pub fn all_tags(&self) -> Vec<String> {
        let mut t = self.report.tags.clone();
        for m in &self.tags {
            if !t.contains(m) {
                t.push(m.clone());
            }
        }
        t
    }
}
