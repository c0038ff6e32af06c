-- History export: ended attempts read in the order they ended, from a
-- cursor (ended_at, id), without scanning the attempts that ended before.
--
-- Never edit this file once released (see 0001_init.sql); add 0007_*.sql.
CREATE INDEX attempts_ended ON attempts (ended_at, id) WHERE outcome IS NOT NULL;
