-- Where this projection began tracking hash chains (see core's 0006_chain_tracking.sql). The
-- audit log holds every event's hash, so the heads of the aggregates already seen are filled in
-- exactly and nothing needs to be trusted here.
CREATE TABLE chain_tracking (
    since bigint NOT NULL
);
INSERT INTO chain_tracking (since) SELECT coalesce(max(last_sequence), 0) FROM checkpoints;
INSERT INTO chain_heads (aggregate, head)
SELECT DISTINCT ON (aggregate_type, aggregate_id)
       aggregate_type || '/' || aggregate_id, envelope->>'hash'
FROM audit_log
ORDER BY aggregate_type, aggregate_id, stream_sequence DESC, position DESC
ON CONFLICT (aggregate) DO NOTHING;
