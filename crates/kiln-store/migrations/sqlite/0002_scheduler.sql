-- The scheduler rewrite: farm structure (facilities, allocations, shows,
-- subscriptions, limits, services), core ranges, more resource kinds, job
-- caps and avoided hosts, host pools and manual tags, and the memory each
-- attempt reserved.
--
-- Never edit this file once released (see 0001_init.sql); add 0003_*.sql.
--
-- Every new column has a default that is right for rows written before it
-- existed, so a farm upgraded in place keeps running as it did:
--   * hosts.state may now also be REPAIR; attempts.outcome and
--     frames.outcome may now also be OOM (killed for using more memory than
--     reserved). Both are plain TEXT, so only the readers changed.

ALTER TABLE jobs ADD COLUMN max_cores INTEGER;                        -- centicores; NULL: no cap
ALTER TABLE jobs ADD COLUMN avoid_hosts TEXT NOT NULL DEFAULT '[]';  -- JSON [host id, ...]

-- What a frame asks for in cores, as written in a spec: 4, 0.5, 4+, 2-8 or
-- all. `cores` keeps the least of it, which is what one frame reserves.
ALTER TABLE layers ADD COLUMN cores_request TEXT NOT NULL DEFAULT '';
-- Existing layers asked for exactly their `cores`: write that as text
-- (400 -> "4", 150 -> "1.5", 125 -> "1.25").
UPDATE layers SET cores_request = CASE
    WHEN cores % 100 = 0 THEN CAST(cores / 100 AS TEXT)
    ELSE rtrim(rtrim(printf('%.2f', cores / 100.0), '0'), '.')
END;
ALTER TABLE layers ADD COLUMN gpu_memory_kb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE layers ADD COLUMN scratch_kb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE layers ADD COLUMN limits TEXT NOT NULL DEFAULT '[]';     -- JSON ["license", ...]
ALTER TABLE layers ADD COLUMN service TEXT;                           -- NULL: no service

-- Hosts registered before allocations existed are in the default one.
ALTER TABLE hosts ADD COLUMN allocation TEXT NOT NULL DEFAULT 'local.general';
ALTER TABLE hosts ADD COLUMN manual_tags TEXT NOT NULL DEFAULT '[]'; -- JSON, given by a wrangler

ALTER TABLE attempts ADD COLUMN memory_kb INTEGER NOT NULL DEFAULT 0;  -- reserved; 0: unknown

-- The structure records, keyed as kiln_core::structure::Record keys them
-- (a subscription is "show@allocation", a show's service "name@show").
-- They are few and read whole at start-up, so each is one JSON body.
CREATE TABLE structure (
    kind            TEXT    NOT NULL,          -- facility | allocation | show | subscription | limit | service
    key             TEXT    NOT NULL,
    body            TEXT    NOT NULL,          -- JSON of the Record
    PRIMARY KEY (kind, key)
) STRICT;
