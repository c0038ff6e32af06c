//! What clients see: summaries of jobs, layers, frames and hosts, built from
//! the farm's records. These are the shapes `--json` prints.

mod history;
mod jobs;
mod metrics;
mod structure;
mod why;

pub use history::*;
pub use jobs::JobQuery;
pub use metrics::*;
pub use structure::*;
pub use why::*;

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A job's status as users see it, derived from its state and its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Has frames to run, none running yet.
    Pending,
    Running,
    Paused,
    /// Has dead frames and nothing left that can run: needs a retry or eat.
    Failed,
    /// Every frame succeeded or was eaten.
    Finished,
    Killed,
}

impl JobStatus {
    /// Whether the job is over and leaves the default `kiln jobs` listing.
    pub fn is_over(self) -> bool {
        matches!(self, JobStatus::Finished | JobStatus::Killed)
    }
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PENDING" => JobStatus::Pending,
            "RUNNING" => JobStatus::Running,
            "PAUSED" => JobStatus::Paused,
            "FAILED" => JobStatus::Failed,
            "FINISHED" => JobStatus::Finished,
            "KILLED" => JobStatus::Killed,
            _ => return None,
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// Frame counts by display state. `depend` counts waiting frames held by a
/// dependency; `waiting` counts those free to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub waiting: u32,
    pub depend: u32,
    pub running: u32,
    pub succeeded: u32,
    pub dead: u32,
    pub eaten: u32,
}

impl StateCounts {
    pub fn total(&self) -> u32 {
        self.waiting + self.depend + self.running + self.succeeded + self.dead + self.eaten
    }
    pub fn done(&self) -> u32 {
        self.succeeded + self.eaten
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: i64,
    pub name: String,
    pub facility: String,
    pub show: String,
    pub shot: String,
    pub user: String,
    pub priority: i32,
    pub status: JobStatus,
    pub paused: bool,
    pub counts: StateCounts,
    pub total: u32,
    #[schema(value_type = i64)]
    pub submitted_at: Millis,
    #[schema(value_type = Option<i64>)]
    pub finished_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerSummary {
    pub id: i64,
    pub name: String,
    pub command: String,
    pub frames: String,
    pub chunk: u32,
    /// What one frame reserves at least (the least of `cores_request`).
    #[schema(value_type = u32)]
    pub cores: Centicores,
    /// The cores asked for, as a spec writes them: `4`, `4+`, `2-8`, `all`.
    pub cores_request: String,
    /// What one frame reserves, as asked (raised when frames are killed
    /// for using more).
    pub memory_kb: u64,
    pub gpus: u32,
    pub gpu_memory_kb: u64,
    pub scratch_kb: u64,
    pub tags: Vec<String>,
    /// Limits each running frame takes one of.
    pub limits: Vec<String>,
    /// The service that filled in what the spec left out.
    pub service: Option<String>,
    /// Why its waiting frames wait; `None` when none wait.
    pub why: Option<Why>,
    pub retries: u32,
    pub timeout_s: Option<u64>,
    /// `layer` for a whole-layer dependency, `layer (per frame)` otherwise.
    pub depends: Vec<String>,
    pub paused: bool,
    pub counts: StateCounts,
    pub total: u32,
    /// The images its frames write, tokens unsubstituted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub bad_outputs: crate::output::BadOutputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDetail {
    pub job: JobSummary,
    pub layers: Vec<LayerSummary>,
    pub depends_on_jobs: Vec<i64>,
    pub env: BTreeMap<String, String>,
    /// The most cores the job may hold at once; `None`: no cap.
    #[schema(value_type = Option<u32>)]
    pub max_cores: Option<Centicores>,
    /// Cores its running frames hold now.
    #[schema(value_type = u32)]
    pub cores_used: Centicores,
    /// Hosts the job no longer uses after its frames kept failing there.
    pub avoid_hosts: Vec<String>,
}

/// A frame's display state: the stored state, with waiting frames held by
/// a dependency shown as `DEPEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DisplayState {
    Waiting,
    Depend,
    Running,
    Succeeded,
    Dead,
    Eaten,
}

impl DisplayState {
    pub fn parse(s: &str) -> Option<DisplayState> {
        Some(match s.to_ascii_uppercase().as_str() {
            "WAITING" => DisplayState::Waiting,
            "DEPEND" => DisplayState::Depend,
            "RUNNING" => DisplayState::Running,
            "SUCCEEDED" => DisplayState::Succeeded,
            "DEAD" => DisplayState::Dead,
            "EATEN" => DisplayState::Eaten,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DisplayState::Waiting => "WAITING",
            DisplayState::Depend => "DEPEND",
            DisplayState::Running => "RUNNING",
            DisplayState::Succeeded => "SUCCEEDED",
            DisplayState::Dead => "DEAD",
            DisplayState::Eaten => "EATEN",
        }
    }
}

impl fmt::Display for DisplayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed => "FAILED",
            Outcome::TimedOut => "TIMEDOUT",
            Outcome::Killed => "KILLED",
            Outcome::Lost => "LOST",
            Outcome::OutOfMemory => "OOM",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "SUCCEEDED" => Outcome::Succeeded,
            "FAILED" => Outcome::Failed,
            "TIMEDOUT" => Outcome::TimedOut,
            "KILLED" => Outcome::Killed,
            "LOST" => Outcome::Lost,
            "OOM" => Outcome::OutOfMemory,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrameInfo {
    pub id: i64,
    pub layer: String,
    pub number: i64,
    pub chunk: String,
    pub state: DisplayState,
    pub attempts: u32,
    pub failures: u32,
    pub host: Option<String>,
    #[schema(value_type = u32)]
    pub cores: Centicores,
    /// Memory the running attempt reserved; 0 when not running.
    pub memory_kb: u64,
    #[schema(value_type = Option<i64>)]
    pub started_at: Option<Millis>,
    #[schema(value_type = Option<i64>)]
    pub ended_at: Option<Millis>,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    pub outcome: Option<Outcome>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
    pub attempt_id: Option<i64>,
    /// Why a WAITING or DEPEND frame is not running.
    pub why: Option<Why>,
    /// Why its last attempt ended as it did, when there is more to say than
    /// the exit status ("user \"x\" does not exist on host h").
    #[serde(default)]
    pub reason: Option<String>,
    /// The layer's outputs as its last attempt found them (after a clean
    /// exit; empty while an attempt runs); one with `thumbnail` has a
    /// preview at `/api/v1/frames/{id}/outputs/{n}/thumbnail?attempt=`
    /// (its attempt number is `attempts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::output::OutputCheck>,
    /// Why the frame looks bad: an output missing, empty, all black or
    /// unreadable, or a flicker against the frames beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

impl FrameInfo {
    /// Wall time of the current or last attempt, up to `now` while running.
    pub fn runtime_ms(&self, now: Millis) -> Option<u64> {
        let start = self.started_at?;
        let end = self.ended_at.unwrap_or(now);
        Some(end.saturating_sub(start).max(0) as u64)
    }
}

/// A job's frames, in the order of its layers and their frames (that is,
/// by id): of one layer or all, in one display state or any, those after
/// the frame id `after` and `offset` more, at most `limit` (0: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameQuery {
    pub job: String,
    pub layer: Option<String>,
    /// A [`DisplayState`] by name, as the caller wrote it.
    pub state: Option<String>,
    /// Only frames that last ran (or run) on this host (name or id).
    pub host: Option<String>,
    pub after: Option<i64>,
    /// Frames to pass over (after `after`) before the page starts.
    pub offset: u64,
    pub limit: u32,
}

/// A page of hosts, by id: those after `after`, at most `limit` (0: all);
/// with `name`, only the host of that name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostQuery {
    pub after: Option<i64>,
    pub limit: u32,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostInfo {
    pub id: i64,
    pub name: String,
    /// The allocation (pool) it belongs to, `facility.pool`.
    pub allocation: String,
    pub state: HostState,
    pub lock: LockState,
    pub os: String,
    #[schema(value_type = u32)]
    pub cores: Centicores,
    #[schema(value_type = u32)]
    pub cores_used: Centicores,
    pub memory_kb: u64,
    pub memory_used_kb: u64,
    pub total_memory_kb: u64,
    pub gpus: u32,
    pub gpus_used: u32,
    pub gpu_memory_kb: u64,
    pub swap_kb: u64,
    pub scratch_free_kb: u64,
    pub load: f64,
    /// Every tag layers can ask for: its worker's and a wrangler's.
    pub tags: Vec<String>,
    /// The tags a wrangler gave it (`kiln host tag`).
    pub manual_tags: Vec<String>,
    pub version: String,
    pub running: u32,
    #[schema(value_type = i64)]
    pub last_seen: Millis,
}

/// A frame found by its id, with the job it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrameDetail {
    pub job_id: i64,
    pub job: String,
    pub frame: FrameInfo,
}

/// A frame running now: its job, the attempt in flight, and when that
/// attempt last wrote to its log (none yet: `null`). A frame whose log has
/// been quiet for long is likely stuck.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningFrame {
    pub job_id: i64,
    pub job: String,
    pub show: String,
    pub user: String,
    pub attempt_id: i64,
    pub frame: FrameInfo,
    pub last_output_at: Option<Millis>,
}

/// Which running frames: on one host (name or id) or all; with
/// `quiet_ms`, only those whose log has not grown for that long (stuck).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningQuery {
    pub host: Option<String>,
    pub quiet_ms: Option<u64>,
}

/// One attempt of a frame: where and when it ran, what it used, how it
/// ended (`outcome` absent while it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptInfo {
    pub attempt_id: i64,
    /// 1 for the frame's first attempt.
    pub attempt: u32,
    pub host: String,
    #[schema(value_type = u32)]
    pub cores: Centicores,
    pub memory_kb: u64,
    #[schema(value_type = i64)]
    pub started_at: Millis,
    #[schema(value_type = Option<i64>)]
    pub ended_at: Option<Millis>,
    /// Wall time, up to now while it runs.
    pub runtime_ms: i64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    pub outcome: Option<Outcome>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
    /// Why it ended as it did, when there is more to say than the exit.
    pub reason: Option<String>,
}

/// What a log read returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSlice {
    pub data: Vec<u8>,
    pub next_offset: u64,
    pub complete: bool,
    pub attempt_id: i64,
    pub attempt_number: u32,
    pub frame_state: String,
}

/// A request for part of a frame's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogQuery {
    pub job: String,
    /// `layer/frame` or a frame id.
    pub frame: String,
    /// `None`: the latest attempt; else 1 for the first attempt.
    pub attempt: Option<u32>,
    pub offset: u64,
    pub max_bytes: u32,
}

/// A request for a frame's memory and CPU over time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageQuery {
    pub job: String,
    /// `layer/frame` or a frame id.
    pub frame: String,
    /// `None`: the latest attempt; else 1 for the first attempt.
    pub attempt: Option<u32>,
}

/// An attempt's memory and CPU over time: while it runs, from its host's
/// heartbeats (every few seconds); once ended, as its worker sampled it
/// (every second, thinned to about 120 points).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrameUsage {
    /// 1 for the first attempt; 0: the frame has not run.
    pub attempt: u32,
    pub running: bool,
    pub samples: Vec<crate::series::UsageSample>,
}

/// A request for the preview of one of a frame's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThumbnailQuery {
    pub job: String,
    /// `layer/frame` or a frame id.
    pub frame: String,
    /// `None`: the latest attempt; else 1 for the first attempt.
    pub attempt: Option<u32>,
    /// Which output, in the order the frame lists them (from 0).
    pub output: u32,
}

/// A search of a job's logs (the latest attempt of each frame) for lines
/// matching a regular expression.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrepQuery {
    pub job: String,
    pub pattern: String,
    /// Only this layer's frames.
    pub layer: Option<String>,
    /// Only this frame (`layer/frame` or an id).
    pub frame: Option<String>,
    pub ignore_case: bool,
    /// At most this many lines (0: the server's cap).
    pub max_lines: u32,
}

/// A matching log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrepLine {
    /// `layer/frame`, as `kiln log` takes it.
    pub frame: String,
    pub attempt: u32,
    /// 1 for the log's first line.
    pub line_number: u64,
    pub text: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrepResult {
    pub lines: Vec<GrepLine>,
    /// Logs read (frames that have run).
    pub logs: u32,
    /// The line cap was reached: there may be more.
    pub truncated: bool,
}

/// Which ended attempts to export, in the order they ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    pub show: Option<String>,
    pub user: Option<String>,
    /// A job's name or id.
    pub job: Option<String>,
    /// Ended at or after this.
    pub since: Option<Millis>,
    /// Ended before this.
    pub until: Option<Millis>,
    /// Only attempts after this (ended_at, attempt id): a page's cursor.
    pub after: Option<(Millis, i64)>,
    /// At most this many.
    pub limit: u32,
}

/// One ended attempt, flat, for a spreadsheet or a data frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryRow {
    pub attempt_id: i64,
    pub job_id: i64,
    pub job: String,
    pub show: String,
    pub user: String,
    pub layer: String,
    /// The first frame number of the task.
    pub frame: i64,
    pub chunk: String,
    /// 1 for the frame's first attempt.
    pub attempt: u32,
    pub host: String,
    pub cores: f64,
    pub memory_kb: u64,
    pub started_at: Millis,
    pub ended_at: Millis,
    pub runtime_ms: i64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    /// SUCCEEDED, FAILED, TIMEDOUT, KILLED, LOST or OOM.
    pub outcome: String,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
    pub reason: Option<String>,
}

impl HistoryRow {
    /// The CSV header `kiln history --format csv` and the REST API write.
    pub const CSV_COLUMNS: [&'static str; 21] = [
        "attempt_id",
        "job_id",
        "job",
        "show",
        "user",
        "layer",
        "frame",
        "chunk",
        "attempt",
        "host",
        "cores",
        "memory_kb",
        "started_at",
        "ended_at",
        "runtime_ms",
        "max_rss_kb",
        "cpu_ms",
        "outcome",
        "exit_status",
        "exit_signal",
        "reason",
    ];

    /// The row as a CSV line (RFC 4180 quoting), in [`Self::CSV_COLUMNS`] order.
    pub fn csv_line(&self) -> String {
        fn csv(s: &str) -> String {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        }
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map_or(String::new(), T::to_string)
        }
        [
            self.attempt_id.to_string(),
            self.job_id.to_string(),
            csv(&self.job),
            csv(&self.show),
            csv(&self.user),
            csv(&self.layer),
            self.frame.to_string(),
            csv(&self.chunk),
            self.attempt.to_string(),
            csv(&self.host),
            self.cores.to_string(),
            self.memory_kb.to_string(),
            self.started_at.to_string(),
            self.ended_at.to_string(),
            self.runtime_ms.to_string(),
            self.max_rss_kb.to_string(),
            self.cpu_ms.to_string(),
            self.outcome.clone(),
            opt(&self.exit_status),
            opt(&self.exit_signal),
            csv(self.reason.as_deref().unwrap_or_default()),
        ]
        .join(",")
    }
}

/// A page of history, and where the next one starts (`None`: the last).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
    pub next: Option<(Millis, i64)>,
}

/// A user action on a job, some layers or some frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActQuery {
    pub action: String,
    pub job: String,
    pub targets: Vec<String>,
    pub state: Option<String>,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    pub version: String,
    pub data_dir: String,
    pub jobs: u32,
    pub hosts: u32,
}

/// What a submission created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: i64,
    pub name: String,
    pub frames: u32,
}
