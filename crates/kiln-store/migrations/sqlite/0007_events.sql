-- The outbox: domain events, written in the same transaction as the
-- change each describes, read back in order by clients that follow the
-- farm (`GET /api/v1/events`, `kiln events`) and pruned by age.
--
-- Never edit this file once released (see 0001_init.sql); add 0008_*.sql.
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    at   INTEGER NOT NULL,
    kind TEXT NOT NULL,
    job  INTEGER,
    show TEXT,
    body TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);
