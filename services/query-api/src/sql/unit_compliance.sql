SELECT c.plan_id, c.year, c.quarter, c.due_at, c.first_submitted_at, c.last_revised_at,
       c.review_status, c.compliance
FROM reporting_compliance c
WHERE c.unit_id = $1
ORDER BY c.plan_id, c.year, c.quarter
