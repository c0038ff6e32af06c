-- Why a frame's last attempt ended as it did (the attempt's reason, kept on
-- the frame so `kiln frames` can name it without reading history): "user
-- "x" does not exist on host h", "ran past its timeout", ... NULL: none.
--
-- Never edit this file once released (see 0001_init.sql); add 0005_*.sql.

ALTER TABLE frames ADD COLUMN reason TEXT;
