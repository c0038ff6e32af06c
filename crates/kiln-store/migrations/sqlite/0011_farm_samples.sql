-- The farm over time: the gauges the server samples every so often (cores
-- busy by show against entitlement, frames waiting by reason, hosts by
-- state), one row per sample as JSON, kept for the charts' span and pruned
-- after it, so the wrangler's charts survive a restart.
--
-- Never edit this file once released (see 0001_init.sql); add 0012_*.sql.

CREATE TABLE farm_samples (
    at INTEGER PRIMARY KEY,  -- ms since the epoch
    sample TEXT NOT NULL
);
