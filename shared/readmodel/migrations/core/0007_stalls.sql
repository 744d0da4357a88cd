-- A projection that stops on a commit it must not skip says so here, next to its checkpoint: the
-- query service runs in another process and learns of the stop only from the database. Set by
-- the projector when the projection stops (stalled_since not null means stopped; the sequence is
-- null when the stop concerns no single commit, a crashed worker); cleared in the transaction of
-- the next batch it applies.
ALTER TABLE checkpoints
    ADD COLUMN stalled_sequence bigint,
    ADD COLUMN stalled_reason   text,
    ADD COLUMN stalled_since    timestamptz;
