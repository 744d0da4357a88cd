SELECT p.plan_id, p.code, p.title, p.issuer, p.issued_on, p.legal_basis, p.reporting_rule
FROM plans p
WHERE p.plan_id = $1
