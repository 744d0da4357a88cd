-- The chain heads change with every event: each page keeps room for the new versions, so an
-- update is heap-only (no new index entry) and the page is pruned in place instead of the table
-- growing by a row per event. Existing pages keep what they hold; new ones leave the room.
ALTER TABLE chain_heads SET (fillfactor = 50);
