//! What changed between two instants: the views compared row by row and field by field, and the
//! events in between with who did them and when (both clocks), from the audit log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::source::PLAN_KINDS;
use crate::view::PlanView;
use crate::{Axis, Error};

/// What kind of row changed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Plan,
    Item,
    Assignment,
    Task,
    Report,
    Compliance,
}

/// One difference between two views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A row present at the later instant only.
    Added {
        entity: Entity,
        key: String,
        value: Value,
    },
    /// A row present at the earlier instant only.
    Removed {
        entity: Entity,
        key: String,
        value: Value,
    },
    /// A field whose value differs.
    Changed {
        entity: Entity,
        key: String,
        field: String,
        before: Value,
        after: Value,
    },
}

/// An event between the two instants, with who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, sqlx::FromRow)]
pub struct AuditEvent {
    pub stream_sequence: i64,
    pub position: i32,
    #[schemars(with = "String")]
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub recorded_at: DateTime<Utc>,
    pub effective_at: DateTime<Utc>,
    pub actor_user: String,
    pub actor_unit: Option<String>,
    pub actor_role: String,
    pub command_name: String,
    pub correlation_id: String,
}

/// Two instants compared on one axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanDiff {
    pub axis: Axis,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub changes: Vec<Change>,
    /// The events whose time on the axis lies in (earlier, later], in the axis's order.
    pub events: Vec<AuditEvent>,
    /// How many such events there are (more than `events` holds when it was cut short).
    pub events_total: u64,
}

fn keyed<T: Serialize>(rows: &[T], key: impl Fn(&T) -> String) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|row| (key(row), serde_json::to_value(row).unwrap_or(Value::Null)))
        .collect()
}

/// Labels restate other fields in Vietnamese; comparing them again would only repeat a change.
fn compared(field: &str) -> bool {
    !field.ends_with("_label")
}

fn compare(
    entity: Entity,
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    out: &mut Vec<Change>,
) {
    for (key, old) in before {
        match after.get(key) {
            None => out.push(Change::Removed {
                entity,
                key: key.clone(),
                value: old.clone(),
            }),
            Some(new) if new != old => {
                let (Value::Object(old_fields), Value::Object(new_fields)) = (old, new) else {
                    continue;
                };
                for (field, old_value) in old_fields.iter().filter(|(f, _)| compared(f)) {
                    let new_value = new_fields.get(field).unwrap_or(&Value::Null);
                    if new_value != old_value {
                        out.push(Change::Changed {
                            entity,
                            key: key.clone(),
                            field: field.clone(),
                            before: old_value.clone(),
                            after: new_value.clone(),
                        });
                    }
                }
                for (field, new_value) in new_fields
                    .iter()
                    .filter(|(f, _)| compared(f) && !old_fields.contains_key(*f))
                {
                    out.push(Change::Changed {
                        entity,
                        key: key.clone(),
                        field: field.clone(),
                        before: Value::Null,
                        after: new_value.clone(),
                    });
                }
            }
            Some(_) => {}
        }
    }
    for (key, new) in after {
        if !before.contains_key(key) {
            out.push(Change::Added {
                entity,
                key: key.clone(),
                value: new.clone(),
            });
        }
    }
}

fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// What changed from `a` to `b`, row by row: plans, items, assignments valid at each instant,
/// tasks, reports and compliance.
pub fn diff(a: &PlanView, b: &PlanView) -> Vec<Change> {
    let mut changes = Vec::new();
    let plan_key = |p: &crate::view::PlanRow| p.plan_id.to_string();
    compare(
        Entity::Plan,
        &keyed(&a.plans, plan_key),
        &keyed(&b.plans, plan_key),
        &mut changes,
    );
    let item_key = |i: &crate::view::ItemRow| i.item_id.to_string();
    compare(
        Entity::Item,
        &keyed(&a.items, item_key),
        &keyed(&b.items, item_key),
        &mut changes,
    );
    let assignment_key = |r: &crate::view::AssignmentRow| {
        format!(
            "{}/{}/{}",
            r.item_id,
            wire(&r.role),
            wire(&r.assignee).replace(['{', '}', '"'], "")
        )
    };
    compare(
        Entity::Assignment,
        &keyed(&a.assignments, assignment_key),
        &keyed(&b.assignments, assignment_key),
        &mut changes,
    );
    let task_key = |t: &crate::view::TaskRow| t.task_id.to_string();
    compare(
        Entity::Task,
        &keyed(&a.tasks, task_key),
        &keyed(&b.tasks, task_key),
        &mut changes,
    );
    let report_key = |r: &crate::view::ReportRow| r.report_id.to_string();
    compare(
        Entity::Report,
        &keyed(&a.reports, report_key),
        &keyed(&b.reports, report_key),
        &mut changes,
    );
    let compliance_key = |c: &crate::view::ComplianceRow| {
        format!("{}/{}/{}", c.plan_id, c.unit_id, c.quarter.label())
    };
    compare(
        Entity::Compliance,
        &keyed(&a.compliance, compliance_key),
        &keyed(&b.compliance, compliance_key),
        &mut changes,
    );
    changes
}

/// The events of the plan's aggregates in `schema`'s audit log whose time on `axis` lies in
/// `(from, to]`, in the axis's order, at most `limit`; and how many there are.
pub async fn events_between(
    conn: &mut PgConnection,
    schema: &str,
    axis: Axis,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<(Vec<AuditEvent>, u64), Error> {
    let (time, order) = match axis {
        Axis::Recorded => ("recorded_at", "stream_sequence, position"),
        Axis::Effective => ("effective_at", "effective_at, stream_sequence, position"),
    };
    let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.audit_log
         WHERE {time} > $1 AND {time} <= $2 AND aggregate_type IN {PLAN_KINDS}"
    )))
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    let events = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT stream_sequence, position, event_id, event_type, aggregate_type, aggregate_id,
                recorded_at, effective_at, actor_user, actor_unit, actor_role, command_name, correlation_id
         FROM {schema}.audit_log
         WHERE {time} > $1 AND {time} <= $2 AND aggregate_type IN {PLAN_KINDS}
         ORDER BY {order} LIMIT $3"
    )))
    .bind(from)
    .bind(to)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok((events, u64::try_from(total).unwrap_or(0)))
}

/// [`diff`] plus the events between the two views' instants.
pub async fn plan_diff(
    conn: &mut PgConnection,
    schema: &str,
    a: &PlanView,
    b: &PlanView,
    limit: u32,
) -> Result<PlanDiff, Error> {
    if a.axis != b.axis {
        return Err(Error::Invalid(
            "both views of a diff must be on the same axis".to_owned(),
        ));
    }
    let (lo, hi) = if a.as_of <= b.as_of {
        (a.as_of, b.as_of)
    } else {
        (b.as_of, a.as_of)
    };
    let (events, events_total) = events_between(conn, schema, a.axis, lo, hi, limit).await?;
    Ok(PlanDiff {
        axis: a.axis,
        from: a.as_of,
        to: b.as_of,
        changes: diff(a, b),
        events,
        events_total,
    })
}
