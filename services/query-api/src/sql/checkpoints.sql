-- Each projection's checkpoint and recorded stop, read in the caller's snapshot, with the
-- database's clock. {core} and {audit} are replaced once at start-up by the checked, quoted
-- schema names: the two projections keep their checkpoint in their own schema, so the search
-- path alone cannot tell them apart.
SELECT 'core' AS projection, c.last_sequence, c.last_recorded_at, c.updated_at,
       c.stalled_sequence, c.stalled_reason, c.stalled_since, now() AS as_of
FROM {core}.checkpoints c
WHERE c.projection = 'core'
UNION ALL
SELECT 'audit', a.last_sequence, a.last_recorded_at, a.updated_at,
       a.stalled_sequence, a.stalled_reason, a.stalled_since, now()
FROM {audit}.checkpoints a
WHERE a.projection = 'audit'
