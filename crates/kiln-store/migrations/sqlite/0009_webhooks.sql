-- Webhooks: where the farm's events are POSTed, how far each has got in
-- the events outbox (`delivered_seq`, so delivery resumes after a restart),
-- and a log of every try of every delivery, pruned with the events.
--
-- Never edit this file once released (see 0001_init.sql); add 0010_*.sql.
CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    kinds         TEXT NOT NULL,
    show          TEXT,
    owner         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id      INTEGER PRIMARY KEY,
    webhook INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status  INTEGER NOT NULL,
    error   TEXT NOT NULL,
    millis  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, id);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);
