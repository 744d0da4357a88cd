-- Where this projection began tracking hash chains. A database that already held events when
-- chain_heads arrived has no head for the aggregates it had seen: the first event of such an
-- aggregate after this point is trusted to link where it says (its own hash is still checked),
-- and from then on every link is. A database built from the first event has 0 here, and every
-- aggregate's chain must start empty.
CREATE TABLE chain_tracking (
    since bigint NOT NULL
);
INSERT INTO chain_tracking (since) SELECT coalesce(max(last_sequence), 0) FROM checkpoints;
