-- One page of the audit trail in stream order, after the cursor ($10, $11). Every filter is
-- optional (NULL: no filter); time ranges are half-open [from, to).
SELECT a.stream_sequence, a.position, a.envelope
FROM audit_log a
WHERE ($1::text IS NULL OR a.aggregate_type = $1)
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
