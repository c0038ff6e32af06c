-- Idempotent submits: the key a client sent with the submit that made the
-- job. A repeat of that submit (a client retrying after losing the answer)
-- returns the job instead of making another.
--
-- Never edit this file once released (see 0001_init.sql); add 0004_*.sql.
--
-- Jobs from before have no key (NULL); the index holds only keyed jobs, and
-- being UNIQUE it makes a second job with one key fail the whole commit
-- rather than be stored.

ALTER TABLE jobs ADD COLUMN submit_key TEXT;
CREATE UNIQUE INDEX jobs_submit_key ON jobs (submit_key) WHERE submit_key IS NOT NULL;
