-- Per unit, its line on the item from its most recent quarterly report that has one; $2 limits
-- the units (NULL: all units).
SELECT DISTINCT ON (r.unit_id)
       r.unit_id, u.name AS unit_name, r.report_id, r.year, r.quarter, r.status AS review_status,
       r.first_submitted_at, r.last_revised_at, l.progress, l.reported_status
FROM report_lines l
JOIN reports r ON r.report_id = l.report_id
JOIN units u ON u.unit_id = r.unit_id
WHERE l.item_id = $1 AND ($2::text[] IS NULL OR r.unit_id = ANY($2::text[]))
ORDER BY r.unit_id, r.year DESC, r.quarter DESC
