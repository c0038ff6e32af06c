-- Outputs: the images a layer's frames write (`outputs`, a JSON list of
-- paths with tokens) and what a bad one does (`bad_outputs`: flag, fail);
-- what each attempt's worker found of them, and the frame's copy of its
-- last attempt's (JSON lists of checks; NULL when none were checked).
--
-- Never edit this file once released (see 0001_init.sql); add 0011_*.sql.

ALTER TABLE layers ADD COLUMN outputs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE layers ADD COLUMN bad_outputs TEXT NOT NULL DEFAULT 'flag';
ALTER TABLE frames ADD COLUMN outputs TEXT;
ALTER TABLE attempts ADD COLUMN outputs TEXT;
