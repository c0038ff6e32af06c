-- Retention: finished jobs leave the server's memory after a while
-- (`archived_at` set; start-up no longer loads them) and are deleted with
-- their layers, frames and attempts once history no longer keeps them.
--
-- Never edit this file once released (see 0001_init.sql); add 0009_*.sql.
ALTER TABLE jobs ADD COLUMN archived_at INTEGER;

CREATE INDEX jobs_archived ON jobs (archived_at, id) WHERE archived_at IS NOT NULL;

-- The highest id of each kind ever handed out, as it was when rows were
-- first deleted: ids restart above it, so a purged job's id (or its
-- attempts', which name log files) is never given again.
CREATE TABLE id_floor (
    kind            TEXT    PRIMARY KEY,       -- job | layer | frame | attempt
    max_id          INTEGER NOT NULL
) STRICT;
