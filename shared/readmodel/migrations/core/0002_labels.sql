-- Vietnamese labels for codes, so exports and BI tools can show what a user reads.

CREATE FUNCTION lifecycle_label_vi(status text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'not_started' THEN 'chưa thực hiện'
        WHEN 'in_progress' THEN 'đang thực hiện'
        WHEN 'awaiting_confirmation' THEN 'chờ xác nhận'
        WHEN 'completed' THEN 'đã hoàn thành'
        WHEN 'suspended' THEN 'tạm hoãn'
        WHEN 'reopened' THEN 'thực hiện lại'
        ELSE status
    END $$;

CREATE FUNCTION qualifier_label_vi(qualifier text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE qualifier
        WHEN 'within_time' THEN 'trong hạn'
        WHEN 'due_soon' THEN 'sắp quá hạn'
        WHEN 'overdue' THEN 'quá hạn'
        WHEN 'no_deadline' THEN 'không hạn'
        ELSE qualifier
    END $$;

CREATE FUNCTION compliance_label_vi(compliance text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE compliance
        WHEN 'on_time' THEN 'đúng hạn'
        WHEN 'late' THEN 'trễ hạn'
        WHEN 'missing' THEN 'không gửi'
        WHEN 'pending' THEN 'chưa đến hạn'
        ELSE compliance
    END $$;

-- The Department of Finance's compilation for a quarter, as seen at `t`: one row per item and
-- lead unit, with the item's lifecycle and deadline qualifier, the progress the unit reported on
-- it for the quarter, and whether its report came on time, late or not at all.
CREATE FUNCTION quarterly_compilation(p_plan text, p_year integer, p_quarter integer, t timestamptz)
    RETURNS TABLE (ordinal integer, item_title text, lead_unit_id text, lead_unit text,
                   status text, deadline_qualifier text, due_on date, progress text,
                   report text, submitted_at timestamptz)
    LANGUAGE sql STABLE AS $$
    WITH leads AS (
        SELECT DISTINCT r.item_id, r.unit_id
        FROM responsible_units(least(report_due(p_year, p_quarter), t)) r
        WHERE r.role = 'lead'
    )
    SELECT i.ordinal, i.title, u.unit_id, u.name,
           lifecycle_label_vi(i.status),
           qualifier_label_vi(deadline_qualifier(i.due_on, coalesce(i.completed_at, t))),
           i.due_on, l.progress,
           compliance_label_vi(coalesce(c.compliance,
               CASE WHEN t >= report_due(p_year, p_quarter) THEN 'missing' ELSE 'pending' END)),
           rp.first_submitted_at
    FROM leads
    JOIN items i ON i.item_id = leads.item_id AND i.plan_id = p_plan
    JOIN units u ON u.unit_id = leads.unit_id
    LEFT JOIN reports rp ON rp.plan_id = p_plan AND rp.unit_id = leads.unit_id
                        AND rp.year = p_year AND rp.quarter = p_quarter
    LEFT JOIN report_lines l ON l.report_id = rp.report_id AND l.item_id = leads.item_id
    LEFT JOIN reporting_compliance_at(t) c ON c.plan_id = p_plan AND c.unit_id = leads.unit_id
                                          AND c.year = p_year AND c.quarter = p_quarter
    ORDER BY i.ordinal, u.name
$$;
