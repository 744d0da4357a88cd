-- Rows that every batch rewrites are given room on their own page: an update whose new version
-- fits beside the old one, and changes no indexed column, adds no index entry (a heap-only
-- tuple), and the page is pruned in place instead of the table growing by a row per change.
-- The chain heads change with every event, items and tasks with most of theirs, and a history
-- row is closed once after it is written. Existing pages keep what they hold; new ones leave
-- the room.
ALTER TABLE chain_heads SET (fillfactor = 50);
ALTER TABLE items SET (fillfactor = 50);
ALTER TABLE tasks SET (fillfactor = 50);
ALTER TABLE status_history SET (fillfactor = 50);
