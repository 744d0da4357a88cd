-- The Department of Finance's matrix: every unit that owed the plan a report for the quarter.
SELECT c.unit_id, c.unit_name, c.due_at, c.compliance, c.first_submitted_at, c.last_revised_at,
       c.review_status, coalesce(r.revisions, 0) AS revisions, r.accepted_at, r.returned_at,
       r.return_reason
FROM reporting_compliance c
LEFT JOIN reports r ON r.plan_id = c.plan_id AND r.unit_id = c.unit_id
                   AND r.year = c.year AND r.quarter = c.quarter
WHERE c.plan_id = $1 AND c.year = $2 AND c.quarter = $3
ORDER BY c.unit_id
