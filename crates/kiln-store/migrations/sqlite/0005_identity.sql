-- Identity and the audit trail: users, their grants, tokens and enrolled
-- hosts' credentials; and one row per state-changing call.
--
-- Never edit this file once released (see 0001_init.sql); add 0006_*.sql.
--
-- Identity records are few and read whole at start-up, like the structure,
-- so each is one JSON body per (kind, key): kind is user | grants | token |
-- host, keyed by user name, user name, token id and host name. Secrets are
-- never stored: tokens and host credentials hold a hash of their secret,
-- passwords an argon2id hash.
CREATE TABLE identity (
    kind            TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    body            TEXT    NOT NULL,          -- JSON of kiln_core::auth::identity::Change
    PRIMARY KEY (kind, key)
) STRICT;

-- Append-only; written in the same transaction as the change it records.
CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,          -- ms since the epoch
    who             TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_who_at ON audit (who, at);
