//! The core projection as it was applied before the fold: one commit at a time, one to four
//! SQL statements per event, in stream order. The fold must leave the tables exactly as this does.

use chrono::{DateTime, Utc};
use event_store::{CloudEvent, Commit};
use remediation_domain::calendar::Quarter;
use remediation_domain::group::GroupEvent;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::PlanEvent;
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::task::TaskEvent;
use remediation_domain::unit::UnitEvent;
use remediation_domain::{Assignee, Event};
use sqlx::PgConnection;

use readmodel::ApplyError;

/// Snake-case wire name of a serde enum value (lifecycle, kinds, roles).
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn assignee_parts(assignee: &Assignee) -> (&'static str, &str) {
    match assignee {
        Assignee::Unit(id) => ("unit", id.as_str()),
        Assignee::Group(id) => ("group", id.as_str()),
    }
}

fn role_name(role: AssignmentRole) -> &'static str {
    match role {
        AssignmentRole::Lead => "lead",
        AssignmentRole::Coordinator => "coordinator",
    }
}

/// Where an event sits in the log and who caused it.
struct Meta<'a> {
    sequence: i64,
    envelope: &'a CloudEvent,
}

impl Meta<'_> {
    fn effective(&self) -> DateTime<Utc> {
        self.envelope.effectivetime
    }
}

pub async fn apply(conn: &mut PgConnection, commit: &Commit) -> Result<(), ApplyError> {
    for envelope in &commit.events {
        let event = envelope.decode().map_err(|e| ApplyError::Undecodable {
            sequence: commit.sequence,
            event_id: envelope.id,
            reason: e.to_string(),
        })?;
        let meta = Meta {
            sequence: commit.sequence as i64,
            envelope,
        };
        let id = envelope.aggregateid.as_str();
        match &event {
            Event::Unit(e) => unit(conn, id, e, &meta).await?,
            Event::Group(e) => group(conn, id, e).await?,
            Event::Plan(e) => plan(conn, id, e).await?,
            Event::Item(e) => item(conn, id, e, &meta).await?,
            Event::Task(e) => task(conn, id, e, &meta).await?,
            Event::Report(e) => report(conn, id, e).await?,
            // Chain digests, reads of the trail and quarantine decisions concern the log itself;
            // the audit projection keeps them.
            Event::Ledger(_) | Event::Access(_) | Event::Quarantine(_) => {}
        }
    }
    Ok(())
}

async fn unit(
    conn: &mut PgConnection,
    id: &str,
    event: &UnitEvent,
    meta: &Meta<'_>,
) -> Result<(), sqlx::Error> {
    match event {
        UnitEvent::Registered { name, kind } => {
            sqlx::query(
                "INSERT INTO units (unit_id, name, kind, registered_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(wire(kind))
            .bind(meta.effective())
            .execute(conn)
            .await?;
        }
        UnitEvent::Renamed { to, .. } => {
            sqlx::query("UPDATE units SET name = $2 WHERE unit_id = $1")
                .bind(id)
                .bind(to.as_str())
                .execute(conn)
                .await?;
        }
        UnitEvent::Succeeded(succession) => {
            let successors: Vec<&str> = succession.successors.iter().map(|s| s.as_str()).collect();
            sqlx::query("UPDATE units SET succeeded_on = $2, successors = $3, succession_reason = $4 WHERE unit_id = $1")
                .bind(id)
                .bind(succession.effective_on)
                .bind(successors)
                .bind(succession.reason.as_str())
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

async fn group(conn: &mut PgConnection, id: &str, event: &GroupEvent) -> Result<(), sqlx::Error> {
    match event {
        GroupEvent::Defined { name } => {
            sqlx::query("INSERT INTO unit_groups (group_id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(name.as_str())
                .execute(conn)
                .await?;
        }
        GroupEvent::MemberAdded { unit_id, from } => {
            sqlx::query(
                "INSERT INTO group_members (group_id, unit_id, valid_from) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(unit_id.as_str())
            .bind(from)
            .execute(conn)
            .await?;
        }
        GroupEvent::MemberRemoved {
            unit_id,
            from,
            reason,
        } => {
            sqlx::query(
                "UPDATE group_members SET valid_until = $3, removal_reason = $4
                 WHERE group_id = $1 AND unit_id = $2 AND valid_until IS NULL",
            )
            .bind(id)
            .bind(unit_id.as_str())
            .bind(from)
            .bind(reason.as_str())
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

async fn plan(conn: &mut PgConnection, id: &str, event: &PlanEvent) -> Result<(), sqlx::Error> {
    match event {
        PlanEvent::Issued(plan) => {
            sqlx::query(
                "INSERT INTO plans (plan_id, code, title, issuer, issued_on, legal_basis, reporting_rule)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(plan.code.as_str())
            .bind(plan.title.as_str())
            .bind(plan.issuer.as_str())
            .bind(plan.issued_on)
            .bind(serde_json::json!(plan.legal_basis))
            .bind(plan.reporting_rule.as_str())
            .execute(conn)
            .await?;
        }
        PlanEvent::Amended {
            title,
            legal_basis,
            reporting_rule,
            ..
        } => {
            sqlx::query(
                "UPDATE plans SET title = coalesce($2, title), legal_basis = coalesce($3, legal_basis),
                     reporting_rule = coalesce($4, reporting_rule)
                 WHERE plan_id = $1",
            )
            .bind(id)
            .bind(title.as_ref().map(|t| t.as_str()))
            .bind(legal_basis.as_ref().map(|l| serde_json::json!(l)))
            .bind(reporting_rule.as_ref().map(|r| r.as_str()))
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// One status an item or task took, as an event recorded it.
struct StatusChange<'a> {
    kind: &'static str,
    id: &'a str,
    from: Option<Lifecycle>,
    to: Lifecycle,
    reason: Option<&'a str>,
    evidence: Option<&'a str>,
    /// Effective instant of the change.
    at: DateTime<Utc>,
}

/// Adds a change to the aggregate's status history, keeping both axes consistent.
///
/// Recorded axis: the changes in stream order; each row is what the system held from its
/// recorded time until the next change was recorded. Effective axis: the changes in effective
/// order (ties by stream sequence); each row is true from its effective time until the next
/// change's. A backdated change lands in the middle of the effective timeline, so the effective
/// ends of the aggregate's rows are recomputed rather than merely closed.
async fn status_change(
    conn: &mut PgConnection,
    change: StatusChange<'_>,
    meta: &Meta<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE status_history SET recorded_until = $3
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND recorded_until IS NULL",
    )
    .bind(change.kind)
    .bind(change.id)
    .bind(meta.envelope.time)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO status_history (aggregate_type, aggregate_id, status, previous_status, reason, evidence,
             effective_from, recorded_from, actor_user, actor_unit, stream_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(change.kind)
    .bind(change.id)
    .bind(wire(&change.to))
    .bind(change.from.map(|f| wire(&f)))
    .bind(change.reason)
    .bind(change.evidence)
    .bind(change.at)
    .bind(meta.envelope.time)
    .bind(&meta.envelope.actoruser)
    .bind(&meta.envelope.actorunit)
    .bind(meta.sequence)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE status_history h SET effective_until = n.next_from
         FROM (SELECT stream_sequence,
                      lead(effective_from) OVER (ORDER BY effective_from, stream_sequence) AS next_from
               FROM status_history WHERE aggregate_type = $1 AND aggregate_id = $2) n
         WHERE h.aggregate_type = $1 AND h.aggregate_id = $2 AND h.stream_sequence = n.stream_sequence
           AND h.effective_until IS DISTINCT FROM n.next_from",
    )
    .bind(change.kind)
    .bind(change.id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn item(
    conn: &mut PgConnection,
    id: &str,
    event: &ItemEvent,
    meta: &Meta<'_>,
) -> Result<(), sqlx::Error> {
    match event {
        ItemEvent::Recorded {
            plan_id,
            ordinal,
            title,
            sector,
            causes_objective,
            causes_subjective,
            remedies,
            ..
        } => {
            sqlx::query(
                "INSERT INTO items (item_id, plan_id, ordinal, title, sector, causes_objective, causes_subjective,
                     remedies, status, status_since)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'not_started', $9)",
            )
            .bind(id)
            .bind(plan_id.as_str())
            .bind(i32::from(*ordinal))
            .bind(title.as_str())
            .bind(sector.as_ref().map(|s| s.as_str()))
            .bind(causes_objective.as_ref().map(|s| s.as_str()))
            .bind(causes_subjective.as_ref().map(|s| s.as_str()))
            .bind(remedies.as_ref().map(|s| s.as_str()))
            .bind(meta.effective())
            .execute(&mut *conn)
            .await?;
            status_change(
                conn,
                StatusChange {
                    kind: "item",
                    id,
                    from: None,
                    to: Lifecycle::NotStarted,
                    reason: None,
                    evidence: None,
                    at: meta.effective(),
                },
                meta,
            )
            .await?;
        }
        ItemEvent::Assigned {
            role,
            assignee,
            from,
        } => {
            let (kind, assignee_id) = assignee_parts(assignee);
            sqlx::query(
                "INSERT INTO assignments (item_id, role, assignee_type, assignee_id, valid_from, stream_sequence)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(role_name(*role))
            .bind(kind)
            .bind(assignee_id)
            .bind(from)
            .bind(meta.sequence)
            .execute(conn)
            .await?;
        }
        ItemEvent::AssignmentRevoked {
            role,
            assignee,
            until,
            reason,
        } => {
            let (kind, assignee_id) = assignee_parts(assignee);
            sqlx::query(
                "UPDATE assignments SET valid_until = $5, revoke_reason = $6
                 WHERE item_id = $1 AND role = $2 AND assignee_type = $3 AND assignee_id = $4 AND valid_until IS NULL",
            )
            .bind(id)
            .bind(role_name(*role))
            .bind(kind)
            .bind(assignee_id)
            .bind(until)
            .bind(reason.as_str())
            .execute(conn)
            .await?;
        }
        ItemEvent::DeadlineSet { due_on } | ItemEvent::DeadlineChanged { to: due_on, .. } => {
            sqlx::query("UPDATE items SET due_on = $2 WHERE item_id = $1")
                .bind(id)
                .bind(due_on)
                .execute(conn)
                .await?;
        }
        ItemEvent::StatusChanged {
            from,
            to,
            reason,
            evidence,
            at,
        } => {
            sqlx::query(
                "UPDATE items SET status = $2, status_since = $3,
                     completed_at = CASE WHEN $2 = 'completed' THEN $3 ELSE NULL END
                 WHERE item_id = $1",
            )
            .bind(id)
            .bind(wire(to))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            let evidence = evidence.as_ref().map(|e| e.as_str());
            status_change(
                conn,
                StatusChange {
                    kind: "item",
                    id,
                    from: Some(*from),
                    to: *to,
                    reason: Some(reason.as_str()),
                    evidence,
                    at: *at,
                },
                meta,
            )
            .await?;
        }
    }
    Ok(())
}

async fn task(
    conn: &mut PgConnection,
    id: &str,
    event: &TaskEvent,
    meta: &Meta<'_>,
) -> Result<(), sqlx::Error> {
    match event {
        TaskEvent::Planned {
            item_id,
            unit_id,
            title,
            person_responsible,
            leader_in_charge,
            due_on,
            ..
        } => {
            sqlx::query(
                "INSERT INTO tasks (task_id, item_id, unit_id, title, person_responsible, leader_in_charge, due_on,
                     status, status_since, planned_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'not_started', $8, $8)",
            )
            .bind(id)
            .bind(item_id.as_str())
            .bind(unit_id.as_str())
            .bind(title.as_str())
            .bind(person_responsible.as_str())
            .bind(leader_in_charge.as_str())
            .bind(due_on)
            .bind(meta.effective())
            .execute(&mut *conn)
            .await?;
            status_change(
                conn,
                StatusChange {
                    kind: "task",
                    id,
                    from: None,
                    to: Lifecycle::NotStarted,
                    reason: None,
                    evidence: None,
                    at: meta.effective(),
                },
                meta,
            )
            .await?;
        }
        TaskEvent::Rescheduled { to, .. } => {
            sqlx::query("UPDATE tasks SET due_on = $2 WHERE task_id = $1")
                .bind(id)
                .bind(to)
                .execute(conn)
                .await?;
        }
        TaskEvent::StatusChanged {
            from,
            to,
            reason,
            evidence,
            at,
        } => {
            sqlx::query(
                "UPDATE tasks SET status = $2, status_since = $3, evidence = coalesce($4, evidence),
                     completed_at = CASE WHEN $2 = 'completed' THEN $3 ELSE NULL END
                 WHERE task_id = $1",
            )
            .bind(id)
            .bind(wire(to))
            .bind(at)
            .bind(evidence.as_ref().map(|e| e.as_str()))
            .execute(&mut *conn)
            .await?;
            let evidence = evidence.as_ref().map(|e| e.as_str());
            status_change(
                conn,
                StatusChange {
                    kind: "task",
                    id,
                    from: Some(*from),
                    to: *to,
                    reason: Some(reason.as_str()),
                    evidence,
                    at: *at,
                },
                meta,
            )
            .await?;
        }
        TaskEvent::Cancelled { reason } => {
            sqlx::query("UPDATE tasks SET cancelled = true, cancel_reason = $2 WHERE task_id = $1")
                .bind(id)
                .bind(reason.as_str())
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

async fn replace_lines(
    conn: &mut PgConnection,
    id: &str,
    lines: &[ReportLine],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM report_lines WHERE report_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let items: Vec<&str> = lines.iter().map(|l| l.item_id.as_str()).collect();
    let progress: Vec<&str> = lines.iter().map(|l| l.progress.as_str()).collect();
    let statuses: Vec<Option<String>> = lines.iter().map(|l| l.status.map(|s| wire(&s))).collect();
    sqlx::query(
        "INSERT INTO report_lines (report_id, item_id, progress, reported_status)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[])",
    )
    .bind(id)
    .bind(items)
    .bind(progress)
    .bind(statuses)
    .execute(conn)
    .await?;
    Ok(())
}

async fn report(conn: &mut PgConnection, id: &str, event: &ReportEvent) -> Result<(), sqlx::Error> {
    match event {
        ReportEvent::Submitted {
            plan_id,
            unit_id,
            quarter,
            lines,
            submitted_at,
        } => {
            debug_assert_eq!(report_id(plan_id, unit_id, *quarter).as_str(), id);
            let due_at = Quarter::report_due(*quarter);
            sqlx::query(
                "INSERT INTO reports (report_id, plan_id, unit_id, year, quarter, due_at, status, first_submitted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'submitted', $7)",
            )
            .bind(id)
            .bind(plan_id.as_str())
            .bind(unit_id.as_str())
            .bind(quarter.year)
            .bind(i32::from(quarter.quarter))
            .bind(due_at)
            .bind(submitted_at)
            .execute(&mut *conn)
            .await?;
            replace_lines(conn, id, lines).await?;
        }
        ReportEvent::Revised {
            lines, revised_at, ..
        } => {
            sqlx::query(
                "UPDATE reports SET status = 'submitted', last_revised_at = $2, revisions = revisions + 1
                 WHERE report_id = $1",
            )
            .bind(id)
            .bind(revised_at)
            .execute(&mut *conn)
            .await?;
            replace_lines(conn, id, lines).await?;
        }
        ReportEvent::Accepted { accepted_at } => {
            sqlx::query(
                "UPDATE reports SET status = 'accepted', accepted_at = $2 WHERE report_id = $1",
            )
            .bind(id)
            .bind(accepted_at)
            .execute(conn)
            .await?;
        }
        ReportEvent::Returned {
            reason,
            returned_at,
        } => {
            sqlx::query(
                "UPDATE reports SET status = 'returned', returned_at = $2, return_reason = $3 WHERE report_id = $1",
            )
            .bind(id)
            .bind(returned_at)
            .bind(reason.as_str())
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
