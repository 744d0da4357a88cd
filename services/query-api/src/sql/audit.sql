-- One page of the audit trail in stream order, after the cursor ($10, $11): the events, and the
-- messages set aside by quarantine decisions at their own stream positions (position 0; no event
-- shares a quarantined message's sequence, since it holds none). Every filter is optional (NULL:
-- no filter); time ranges are half-open [from, to). A quarantined message has no aggregate,
-- acting unit or user, event type or effective time, so any of those filters leaves it out; the
-- recorded range matches it by when JetStream stored it. $13 keeps only quarantined messages
-- (true) or only events (false). `{envelope}` is readmodel::AUDIT_ENVELOPE, filled in before use: the stored
-- envelope with its data (stored once, as the payload) put back.
(
    SELECT a.stream_sequence, a.position, {envelope} AS envelope, NULL::jsonb AS quarantined
    FROM audit_log a
    WHERE ($13::boolean IS NOT TRUE)
      AND ($1::text IS NULL OR a.aggregate_type = $1)
      AND ($2::text IS NULL OR a.aggregate_id = $2)
      AND ($3::text IS NULL OR a.actor_unit = $3)
      AND ($4::text IS NULL OR a.actor_user = $4)
      AND ($5::text IS NULL OR a.event_type = $5)
      AND ($6::timestamptz IS NULL OR a.recorded_at >= $6)
      AND ($7::timestamptz IS NULL OR a.recorded_at < $7)
      AND ($8::timestamptz IS NULL OR a.effective_at >= $8)
      AND ($9::timestamptz IS NULL OR a.effective_at < $9)
      AND (a.stream_sequence, a.position) > ($10::bigint, $11::integer)
    ORDER BY a.stream_sequence, a.position
    LIMIT $12
)
UNION ALL
(
    SELECT q.stream_sequence, 0, NULL::jsonb, jsonb_build_object(
        'subject', q.subject, 'digest', q.digest, 'size', q.size, 'stored_at', q.stored_at,
        'payload_encoding', q.payload_encoding, 'payload', q.payload, 'reason', q.reason,
        'decided_by', q.decided_by, 'decided_role', q.decided_role,
        'decision_sequence', q.decision_sequence, 'decided_at', q.decided_at)
    FROM quarantined_messages q
    WHERE ($13::boolean IS NOT FALSE)
      AND $1::text IS NULL AND $2::text IS NULL AND $3::text IS NULL AND $4::text IS NULL
      AND $5::text IS NULL AND $8::timestamptz IS NULL AND $9::timestamptz IS NULL
      AND ($6::timestamptz IS NULL OR q.stored_at >= $6)
      AND ($7::timestamptz IS NULL OR q.stored_at < $7)
      AND (q.stream_sequence, 0) > ($10::bigint, $11::integer)
    ORDER BY q.stream_sequence
    LIMIT $12
)
ORDER BY 1, 2
LIMIT $12
