-- Kiln's first schema: the five records of kiln_core::model, one table each.
--
-- Never edit this file once released: sqlx records each migration's checksum
-- and refuses to start on a database migrated by a different text. Add
-- 0002_*.sql instead.
--
-- Conventions, so a DBA can read it without the Rust:
--   * ids are assigned by the server and stored as given (INTEGER PRIMARY KEY,
--     no AUTOINCREMENT); rows are written as upserts on id and never deleted;
--   * times are milliseconds since the Unix epoch, cores are centicores
--     (100 = one core), memory is KiB, as in OpenCue;
--   * enums are their UPPERCASE names; lists and maps are JSON text;
--   * foreign keys are checked at COMMIT (DEFERRABLE INITIALLY DEFERRED)
--     because a batch may name a frame's new attempt before the attempt row
--     itself is written;
--   * STRICT tables, so a value of the wrong type is an error, not a surprise.

CREATE TABLE hosts (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL,          -- UP | DOWN
    lock_state      TEXT    NOT NULL,          -- OPEN | LOCKED
    os              TEXT    NOT NULL,
    cores           INTEGER NOT NULL,          -- offered to Kiln, centicores
    memory_kb       INTEGER NOT NULL,          -- offered to Kiln
    gpus            INTEGER NOT NULL,
    load_avg        REAL,                      -- NULL: the worker sent NaN
    tags            TEXT    NOT NULL,          -- JSON ["linux", ...]
    report          TEXT    NOT NULL,          -- JSON: the rest of the worker's report
    registered_at   INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX hosts_name ON hosts (name);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    facility        TEXT    NOT NULL,
    show            TEXT    NOT NULL,
    shot            TEXT    NOT NULL,
    "user"          TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    state           TEXT    NOT NULL,          -- ACTIVE | KILLED
    paused          INTEGER NOT NULL,          -- 0 | 1
    env             TEXT    NOT NULL,          -- JSON {"NAME": "value"}
    depends         TEXT    NOT NULL,          -- JSON [job id, ...]
    submitted_at    INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;

CREATE TABLE layers (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    idx             INTEGER NOT NULL,          -- position in the job's spec
    name            TEXT    NOT NULL,
    command         TEXT    NOT NULL,          -- JSON: "shell string" or ["argv", ...]
    frame_range     TEXT    NOT NULL,          -- as written, e.g. 1-100x5
    chunk_size      INTEGER NOT NULL,
    cores           INTEGER NOT NULL,
    memory_kb       INTEGER NOT NULL,
    gpus            INTEGER NOT NULL,
    tags            TEXT    NOT NULL,          -- JSON [{"any_of": [...]}, ...]
    env             TEXT    NOT NULL,          -- JSON {"NAME": "value"}
    retries         INTEGER NOT NULL,
    timeout_s       INTEGER,
    depends         TEXT    NOT NULL,          -- JSON [{"layer": name, "per_frame": bool}, ...]
    cwd             TEXT,
    paused          INTEGER NOT NULL
) STRICT;

CREATE INDEX layers_job ON layers (job_id);

CREATE TABLE frames (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    layer_id        INTEGER NOT NULL REFERENCES layers (id) DEFERRABLE INITIALLY DEFERRED,
    idx             INTEGER NOT NULL,          -- dispatch order within the layer
    number          INTEGER NOT NULL,          -- first frame number of the chunk
    chunk           TEXT    NOT NULL,          -- the chunk's frames, e.g. 1-5
    state           TEXT    NOT NULL,          -- WAITING | RUNNING | SUCCEEDED | DEAD | EATEN
    attempts        INTEGER NOT NULL,
    failures        INTEGER NOT NULL,
    attempt_id      INTEGER REFERENCES attempts (id) DEFERRABLE INITIALLY DEFERRED,
    host_id         INTEGER REFERENCES hosts (id) DEFERRABLE INITIALLY DEFERRED,
    cores           INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    outcome         TEXT,                      -- of the last attempt
    exit_status     INTEGER,
    exit_signal     INTEGER,
    max_rss_kb      INTEGER NOT NULL,
    cpu_ms          INTEGER NOT NULL
) STRICT;

CREATE INDEX frames_job ON frames (job_id);

CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    frame_id        INTEGER NOT NULL REFERENCES frames (id) DEFERRABLE INITIALLY DEFERRED,
    job_id          INTEGER NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    number          INTEGER NOT NULL,          -- 1 for the frame's first attempt
    host_id         INTEGER NOT NULL REFERENCES hosts (id) DEFERRABLE INITIALLY DEFERRED,
    host_name       TEXT    NOT NULL,          -- copied, so history reads without a join
    cores           INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    outcome         TEXT,                      -- NULL while running
    exit_status     INTEGER,
    exit_signal     INTEGER,
    max_rss_kb      INTEGER NOT NULL,
    cpu_ms          INTEGER NOT NULL,
    reason          TEXT
) STRICT;

CREATE INDEX attempts_frame ON attempts (frame_id, number);

-- Start-up loads only the attempts still running; history can be large.
CREATE INDEX attempts_running ON attempts (id) WHERE outcome IS NULL;
