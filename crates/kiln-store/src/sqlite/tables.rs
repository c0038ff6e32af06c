//! Each table's columns in the one order its rows are written and read back
//! in: the writers bind and the readers decode by position.

pub(super) struct Table {
    pub name: &'static str,
    /// `id` first; quoted where the name is an SQL keyword.
    pub cols: &'static [&'static str],
}

impl Table {
    /// `SELECT <cols> FROM <table>`, for callers to add their clauses to.
    pub fn select(&self) -> String {
        format!("SELECT {} FROM {}", self.cols.join(", "), self.name)
    }
}

pub(super) const JOBS: Table = Table {
    name: "jobs",
    cols: &[
        "id",
        "name",
        "facility",
        "show",
        "shot",
        "\"user\"",
        "priority",
        "state",
        "paused",
        "env",
        "depends",
        "submitted_at",
        "finished_at",
        "max_cores",
        "avoid_hosts",
        "submit_key",
    ],
};

pub(super) const LAYERS: Table = Table {
    name: "layers",
    cols: &[
        "id",
        "job_id",
        "idx",
        "name",
        "command",
        "frame_range",
        "chunk_size",
        "cores",
        "memory_kb",
        "gpus",
        "tags",
        "env",
        "retries",
        "timeout_s",
        "depends",
        "cwd",
        "paused",
        "cores_request",
        "gpu_memory_kb",
        "scratch_kb",
        "limits",
        "service",
        "outputs",
        "bad_outputs",
    ],
};

pub(super) const FRAMES: Table = Table {
    name: "frames",
    cols: &[
        "id",
        "job_id",
        "layer_id",
        "idx",
        "number",
        "chunk",
        "state",
        "attempts",
        "failures",
        "attempt_id",
        "host_id",
        "cores",
        "started_at",
        "ended_at",
        "outcome",
        "exit_status",
        "exit_signal",
        "max_rss_kb",
        "cpu_ms",
        "reason",
        "outputs",
    ],
};

pub(super) const ATTEMPTS: Table = Table {
    name: "attempts",
    cols: &[
        "id",
        "frame_id",
        "job_id",
        "number",
        "host_id",
        "host_name",
        "cores",
        "started_at",
        "ended_at",
        "outcome",
        "exit_status",
        "exit_signal",
        "max_rss_kb",
        "cpu_ms",
        "reason",
        "memory_kb",
        "outputs",
    ],
};

pub(super) const HOSTS: Table = Table {
    name: "hosts",
    cols: &[
        "id",
        "name",
        "state",
        "lock_state",
        "os",
        "cores",
        "memory_kb",
        "gpus",
        "load_avg",
        "tags",
        "report",
        "registered_at",
        "last_seen",
        "allocation",
        "manual_tags",
    ],
};
