-- Messages the stream holds that break the record (not a commit, or an event outside its
-- aggregate's hash chain) and that an auditor set aside with a quarantine decision: the audit
-- projection records each one here, at its stream position, when it continues past it. They
-- are no events, so they have no row in audit_log and no envelope; the decision itself is an
-- ordinary event there (aggregate_type 'quarantine', aggregate_id the sequence).
CREATE TABLE quarantined_messages (
    stream_sequence   bigint PRIMARY KEY,
    subject           text NOT NULL,
    digest            text NOT NULL,           -- SHA-256 hex over subject, LF, payload bytes
    size              bigint NOT NULL,         -- payload bytes
    stored_at         timestamptz NOT NULL,    -- when JetStream stored the message
    payload_encoding  text NOT NULL CHECK (payload_encoding IN ('utf-8', 'base64')),
    payload           text NOT NULL,           -- as stored: the text when it is UTF-8 (without NUL), else base64
    reason            text NOT NULL,           -- the auditor's
    decided_by        text NOT NULL,
    decided_role      text NOT NULL,
    decision_sequence bigint NOT NULL,
    decided_at        timestamptz NOT NULL
);
CREATE INDEX quarantined_messages_stored ON quarantined_messages (stored_at);
