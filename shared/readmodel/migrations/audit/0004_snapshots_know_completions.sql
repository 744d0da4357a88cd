-- Item and task states now carry when their completion took effect (the deadline qualifier of
-- completed work is judged then). Snapshots folded before that hold states without it, which
-- would decode as "never completed at any time": they are a cache, so they go, and the
-- projector's snapshot maintenance (or `projector replay --snapshot`) builds them again.
DELETE FROM fold_snapshots;
DELETE FROM fold_snapshot_progress;
