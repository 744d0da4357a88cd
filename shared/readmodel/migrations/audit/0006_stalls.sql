-- A projection that stops on a commit it must not skip says so here (see core's 0007_stalls.sql).
ALTER TABLE checkpoints
    ADD COLUMN stalled_sequence bigint,
    ADD COLUMN stalled_reason   text,
    ADD COLUMN stalled_since    timestamptz;
