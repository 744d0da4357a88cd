//! The core tables' rows as the fold holds them: loaded with one SELECT per table for the keys a
//! batch touches, written back with a few UNNEST statements per table.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

type Time = DateTime<Utc>;

/// One row through a batch: as loaded, as it is now, and whether the batch inserted it (with
/// its position among the batch's inserts).
#[derive(Debug, Clone)]
pub struct Tracked<R> {
    loaded: Option<R>,
    pub current: Option<R>,
    inserted: Option<u64>,
}

impl<R: Clone + PartialEq> Tracked<R> {
    fn loaded(row: R) -> Self {
        Self {
            loaded: Some(row.clone()),
            current: Some(row),
            inserted: None,
        }
    }

    pub fn absent() -> Self {
        Self {
            loaded: None,
            current: None,
            inserted: None,
        }
    }

    pub fn inserted(row: R, order: u64) -> Self {
        Self {
            loaded: None,
            current: Some(row),
            inserted: Some(order),
        }
    }

    /// Replaces the row with one the batch inserts. Over a row that exists, the insert is
    /// written as such and the database refuses it, as it refused the statement it replaces.
    pub fn insert(&mut self, row: R, order: u64) {
        self.current = Some(row);
        self.inserted = Some(order);
    }

    /// The row to write, if any, and whether it is inserted (else it exists and changed).
    fn to_write(&self) -> Option<(&R, Write)> {
        let current = self.current.as_ref()?;
        match self.inserted {
            Some(order) => Some((current, Write::Insert(order))),
            None if self.loaded.as_ref() != Some(current) => Some((current, Write::Update)),
            None => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Insert(u64),
    Update,
}

/// Rows by primary key.
pub type Table<R> = HashMap<String, Tracked<R>>;

/// Rows grouped by a key that is not unique (an aggregate's history, an item's assignments).
pub type Groups<K, R> = HashMap<K, Vec<Tracked<R>>>;

/// Splits rows to write into inserts (in the order the batch made them) and updates.
fn split<'a, R: Clone + PartialEq + 'a>(
    rows: impl Iterator<Item = &'a Tracked<R>>,
) -> (Vec<&'a R>, Vec<&'a R>) {
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for (row, write) in rows.filter_map(Tracked::to_write) {
        match write {
            Write::Insert(order) => inserts.push((order, row)),
            Write::Update => updates.push(row),
        }
    }
    inserts.sort_by_key(|(order, _)| *order);
    (inserts.into_iter().map(|(_, r)| r).collect(), updates)
}

/// One column of `rows`, to bind as an array.
fn column<'a, T, V>(rows: &'a [T], value: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(value).collect()
}

fn keyed<R: Clone + PartialEq>(
    keys: impl IntoIterator<Item = String>,
    rows: Vec<R>,
    key: impl Fn(&R) -> &str,
) -> Table<R> {
    let mut table: Table<R> = keys.into_iter().map(|k| (k, Tracked::absent())).collect();
    for row in rows {
        table.insert(key(&row).to_owned(), Tracked::loaded(row));
    }
    table
}

fn grouped<K: Eq + Hash, R: Clone + PartialEq>(
    rows: Vec<R>,
    key: impl Fn(&R) -> K,
) -> Groups<K, R> {
    let mut groups: Groups<K, R> = HashMap::new();
    for row in rows {
        groups
            .entry(key(&row))
            .or_default()
            .push(Tracked::loaded(row));
    }
    groups
}

/// The statement that writes rows: a plain insert, or an upsert on `conflict` that sets every
/// other column (for rows that exist).
fn upsert_sql(insert: &str, conflict: &str, columns: &[&str], upsert: bool) -> String {
    if !upsert {
        return insert.to_owned();
    }
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "{insert} ON CONFLICT ({conflict}) DO UPDATE SET {}",
        set.join(", ")
    )
}

// ── units ──────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UnitRow {
    pub unit_id: String,
    pub name: String,
    pub kind: String,
    pub registered_at: Time,
    pub succeeded_on: Option<NaiveDate>,
    pub successors: Vec<String>,
    pub succession_reason: Option<String>,
}

pub async fn load_units(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<UnitRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT unit_id, name, kind, registered_at, succeeded_on, successors, succession_reason
         FROM units WHERE unit_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(keyed(keys, rows, |r: &UnitRow| &r.unit_id))
}

pub async fn write_units(
    conn: &mut PgConnection,
    table: &Table<UnitRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(table.values());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        // text[] values travel as jsonb: UNNEST would flatten an array of arrays.
        let successors: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!(r.successors))
            .collect();
        let sql = upsert_sql(
            "INSERT INTO units (unit_id, name, kind, registered_at, succeeded_on, successors, succession_reason)
             SELECT u.unit_id, u.name, u.kind, u.registered_at, u.succeeded_on,
                    ARRAY(SELECT jsonb_array_elements_text(u.successors)), u.succession_reason
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::date[], $6::jsonb[], $7::text[])
                  AS u (unit_id, name, kind, registered_at, succeeded_on, successors, succession_reason)",
            "unit_id",
            &["name", "kind", "registered_at", "succeeded_on", "successors", "succession_reason"],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.registered_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.succeeded_on).collect::<Vec<_>>())
            .bind(successors)
            .bind(
                rows.iter()
                    .map(|r| r.succession_reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ── unit groups and their members ──────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GroupRow {
    pub group_id: String,
    pub name: String,
}

pub async fn load_groups(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<GroupRow>, sqlx::Error> {
    let rows = sqlx::query_as("SELECT group_id, name FROM unit_groups WHERE group_id = ANY($1)")
        .bind(&keys)
        .persistent(false)
        .fetch_all(conn)
        .await?;
    Ok(keyed(keys, rows, |r: &GroupRow| &r.group_id))
}

pub async fn write_groups(
    conn: &mut PgConnection,
    table: &Table<GroupRow>,
) -> Result<(), sqlx::Error> {
    // Groups are only ever defined: a row that exists never changes.
    let (inserts, _) = split(table.values());
    if inserts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO unit_groups (group_id, name) SELECT * FROM UNNEST($1::text[], $2::text[])",
    )
    .bind(
        inserts
            .iter()
            .map(|r| r.group_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(inserts.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MemberRow {
    /// `None` until the database numbers the stretch.
    pub membership_id: Option<i64>,
    pub group_id: String,
    pub unit_id: String,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub removal_reason: Option<String>,
}

/// The open stretches of each (group, unit) in `keys`: the only ones an event can change.
pub async fn load_members(
    conn: &mut PgConnection,
    keys: Vec<(String, String)>,
) -> Result<Groups<(String, String), MemberRow>, sqlx::Error> {
    let (groups, units): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
    let rows = sqlx::query_as(
        "SELECT membership_id, group_id, unit_id, valid_from, valid_until, removal_reason
         FROM group_members
         WHERE valid_until IS NULL AND (group_id, unit_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(groups)
    .bind(units)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(grouped(rows, |r: &MemberRow| {
        (r.group_id.clone(), r.unit_id.clone())
    }))
}

pub async fn write_members(
    conn: &mut PgConnection,
    groups: &Groups<(String, String), MemberRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(groups.values().flatten());
    if !inserts.is_empty() {
        // In the order of their events: the stretches are numbered as they were added.
        sqlx::query(
            "INSERT INTO group_members (group_id, unit_id, valid_from, valid_until, removal_reason)
             SELECT m.group_id, m.unit_id, m.valid_from, m.valid_until, m.removal_reason
             FROM UNNEST($1::text[], $2::text[], $3::date[], $4::date[], $5::text[])
                  WITH ORDINALITY AS m (group_id, unit_id, valid_from, valid_until, removal_reason, position)
             ORDER BY m.position",
        )
        .bind(inserts.iter().map(|r| r.group_id.as_str()).collect::<Vec<_>>())
        .bind(inserts.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
        .bind(inserts.iter().map(|r| r.valid_from).collect::<Vec<_>>())
        .bind(inserts.iter().map(|r| r.valid_until).collect::<Vec<_>>())
        .bind(inserts.iter().map(|r| r.removal_reason.as_deref()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !updates.is_empty() {
        sqlx::query(
            "UPDATE group_members g SET valid_until = m.valid_until, removal_reason = m.removal_reason
             FROM UNNEST($1::int8[], $2::date[], $3::text[]) AS m (membership_id, valid_until, removal_reason)
             WHERE g.membership_id = m.membership_id",
        )
        .bind(updates.iter().map(|r| r.membership_id).collect::<Vec<_>>())
        .bind(updates.iter().map(|r| r.valid_until).collect::<Vec<_>>())
        .bind(updates.iter().map(|r| r.removal_reason.as_deref()).collect::<Vec<_>>())
        .persistent(false)
        .execute(conn)
        .await?;
    }
    Ok(())
}

// ── plans ──────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanRow {
    pub plan_id: String,
    pub code: String,
    pub title: String,
    pub issuer: String,
    pub issued_on: NaiveDate,
    pub legal_basis: serde_json::Value,
    pub reporting_rule: String,
}

pub async fn load_plans(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<PlanRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT plan_id, code, title, issuer, issued_on, legal_basis, reporting_rule
         FROM plans WHERE plan_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(keyed(keys, rows, |r: &PlanRow| &r.plan_id))
}

pub async fn write_plans(
    conn: &mut PgConnection,
    table: &Table<PlanRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(table.values());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        let sql = upsert_sql(
            "INSERT INTO plans (plan_id, code, title, issuer, issued_on, legal_basis, reporting_rule)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::jsonb[], $7::text[])",
            "plan_id",
            &["code", "title", "issuer", "issued_on", "legal_basis", "reporting_rule"],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows.iter().map(|r| r.plan_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.code.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.issuer.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.issued_on).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.legal_basis.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.reporting_rule.as_str())
                    .collect::<Vec<_>>(),
            )
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ── items and their assignments ────────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ItemRow {
    pub item_id: String,
    pub plan_id: String,
    pub ordinal: i32,
    pub title: String,
    pub sector: Option<String>,
    pub causes_objective: Option<String>,
    pub causes_subjective: Option<String>,
    pub remedies: Option<String>,
    pub due_on: Option<NaiveDate>,
    pub status: String,
    pub status_since: Time,
    pub completed_at: Option<Time>,
}

pub async fn load_items(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<ItemRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT item_id, plan_id, ordinal, title, sector, causes_objective, causes_subjective, remedies,
                due_on, status, status_since, completed_at
         FROM items WHERE item_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(keyed(keys, rows, |r: &ItemRow| &r.item_id))
}

pub async fn write_items(
    conn: &mut PgConnection,
    table: &Table<ItemRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(table.values());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        let sql = upsert_sql(
            "INSERT INTO items (item_id, plan_id, ordinal, title, sector, causes_objective, causes_subjective,
                 remedies, due_on, status, status_since, completed_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::date[], $10::text[], $11::timestamptz[], $12::timestamptz[])",
            "item_id",
            &[
                "plan_id",
                "ordinal",
                "title",
                "sector",
                "causes_objective",
                "causes_subjective",
                "remedies",
                "due_on",
                "status",
                "status_since",
                "completed_at",
            ],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows.iter().map(|r| r.item_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.plan_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.ordinal).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.sector.as_deref()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.causes_objective.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.causes_subjective.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.remedies.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.due_on).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status_since).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.completed_at).collect::<Vec<_>>())
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AssignmentRow {
    pub item_id: String,
    pub role: String,
    pub assignee_type: String,
    pub assignee_id: String,
    pub valid_from: Time,
    pub valid_until: Option<Time>,
    pub revoke_reason: Option<String>,
    pub stream_sequence: i64,
}

/// Every assignment of the items in `keys`, closed ones included: an assignment that repeats
/// one's key is refused whether that one is open or not.
pub async fn load_assignments(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Groups<String, AssignmentRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT item_id, role, assignee_type, assignee_id, valid_from, valid_until, revoke_reason, stream_sequence
         FROM assignments WHERE item_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(grouped(rows, |r: &AssignmentRow| r.item_id.clone()))
}

pub async fn write_assignments(
    conn: &mut PgConnection,
    groups: &Groups<String, AssignmentRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(groups.values().flatten());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        let sql = upsert_sql(
            "INSERT INTO assignments (item_id, role, assignee_type, assignee_id, valid_from, valid_until,
                 revoke_reason, stream_sequence)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                 $6::timestamptz[], $7::text[], $8::int8[])",
            "item_id, role, assignee_type, assignee_id, valid_from",
            &["valid_until", "revoke_reason", "stream_sequence"],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows.iter().map(|r| r.item_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.role.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.assignee_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.assignee_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.valid_from).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.valid_until).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.revoke_reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.stream_sequence).collect::<Vec<_>>())
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ── tasks ──────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    pub task_id: String,
    pub item_id: String,
    pub unit_id: String,
    pub title: String,
    pub person_responsible: String,
    pub leader_in_charge: String,
    pub due_on: NaiveDate,
    pub status: String,
    pub status_since: Time,
    pub evidence: Option<String>,
    pub cancelled: bool,
    pub cancel_reason: Option<String>,
    pub planned_at: Time,
    pub completed_at: Option<Time>,
}

pub async fn load_tasks(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<TaskRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT task_id, item_id, unit_id, title, person_responsible, leader_in_charge, due_on, status,
                status_since, evidence, cancelled, cancel_reason, planned_at, completed_at
         FROM tasks WHERE task_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(keyed(keys, rows, |r: &TaskRow| &r.task_id))
}

pub async fn write_tasks(
    conn: &mut PgConnection,
    table: &Table<TaskRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(table.values());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        let sql = upsert_sql(
            "INSERT INTO tasks (task_id, item_id, unit_id, title, person_responsible, leader_in_charge, due_on,
                 status, status_since, evidence, cancelled, cancel_reason, planned_at, completed_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::date[], $8::text[], $9::timestamptz[], $10::text[], $11::bool[], $12::text[],
                 $13::timestamptz[], $14::timestamptz[])",
            "task_id",
            &[
                "item_id",
                "unit_id",
                "title",
                "person_responsible",
                "leader_in_charge",
                "due_on",
                "status",
                "status_since",
                "evidence",
                "cancelled",
                "cancel_reason",
                "planned_at",
                "completed_at",
            ],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.item_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.person_responsible.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.leader_in_charge.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.due_on).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status_since).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.evidence.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.cancelled).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.cancel_reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.planned_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.completed_at).collect::<Vec<_>>())
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ── reports and their lines ────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReportRow {
    pub report_id: String,
    pub plan_id: String,
    pub unit_id: String,
    pub year: i32,
    pub quarter: i32,
    pub due_at: Time,
    pub status: String,
    pub first_submitted_at: Time,
    pub last_revised_at: Option<Time>,
    pub revisions: i32,
    pub accepted_at: Option<Time>,
    pub returned_at: Option<Time>,
    pub return_reason: Option<String>,
}

pub async fn load_reports(
    conn: &mut PgConnection,
    keys: Vec<String>,
) -> Result<Table<ReportRow>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT report_id, plan_id, unit_id, year, quarter, due_at, status, first_submitted_at,
                last_revised_at, revisions, accepted_at, returned_at, return_reason
         FROM reports WHERE report_id = ANY($1)",
    )
    .bind(&keys)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(keyed(keys, rows, |r: &ReportRow| &r.report_id))
}

pub async fn write_reports(
    conn: &mut PgConnection,
    table: &Table<ReportRow>,
) -> Result<(), sqlx::Error> {
    let (inserts, updates) = split(table.values());
    for (rows, upsert) in [(inserts, false), (updates, true)] {
        if rows.is_empty() {
            continue;
        }
        let sql = upsert_sql(
            "INSERT INTO reports (report_id, plan_id, unit_id, year, quarter, due_at, status, first_submitted_at,
                 last_revised_at, revisions, accepted_at, returned_at, return_reason)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::timestamptz[],
                 $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int4[], $11::timestamptz[],
                 $12::timestamptz[], $13::text[])",
            "report_id",
            &[
                "plan_id",
                "unit_id",
                "year",
                "quarter",
                "due_at",
                "status",
                "first_submitted_at",
                "last_revised_at",
                "revisions",
                "accepted_at",
                "returned_at",
                "return_reason",
            ],
            upsert,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(
                rows.iter()
                    .map(|r| r.report_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.plan_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.year).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.quarter).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.due_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.first_submitted_at)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.last_revised_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.revisions).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.accepted_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.returned_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.return_reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineRow {
    pub item_id: String,
    pub progress: String,
    pub reported_status: Option<String>,
}

/// Replaces the lines of every report in `replaced` (whose lines the batch set) at once.
pub async fn write_lines(
    conn: &mut PgConnection,
    replaced: &HashMap<String, Vec<LineRow>>,
) -> Result<(), sqlx::Error> {
    if replaced.is_empty() {
        return Ok(());
    }
    let reports: Vec<&str> = replaced.keys().map(String::as_str).collect();
    sqlx::query("DELETE FROM report_lines WHERE report_id = ANY($1)")
        .bind(&reports)
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    let lines: Vec<(&str, &LineRow)> = replaced
        .iter()
        .flat_map(|(report, lines)| lines.iter().map(move |l| (report.as_str(), l)))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO report_lines (report_id, item_id, progress, reported_status)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(lines.iter().map(|(r, _)| *r).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.item_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.progress.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.reported_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

// ── status history ─────────────────────────────────────────────────────────────────────────

/// A status history row as the fold sees it: its key and where it sits on the two time axes,
/// which is all a later change moves (it closes the open row on the recorded axis and recomputes
/// the effective ends). The rest is written once, when the row is inserted, and never read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HistoryRow {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub stream_sequence: i64,
    pub effective_from: Time,
    pub effective_until: Option<Time>,
    pub recorded_until: Option<Time>,
    /// The rest of a row the batch inserts; `None` for a row loaded from the table. Boxed, since
    /// a batch holds every loaded row of the aggregates it touches, twice (as loaded and as
    /// folded), and inline the entry's columns tripled each one's size.
    #[sqlx(skip)]
    pub entry: Option<Box<HistoryEntry>>,
}

/// What a status history row records besides its key and its ends.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub status: String,
    pub previous_status: Option<String>,
    pub reason: Option<String>,
    pub evidence: Option<String>,
    pub recorded_from: Time,
    pub actor_user: String,
    pub actor_unit: Option<String>,
}

/// (aggregate type, aggregate id).
pub type Aggregate = (&'static str, String);

/// Every history row of the aggregates in `keys`: a change recomputes the effective ends of all
/// of them.
pub async fn load_history(
    conn: &mut PgConnection,
    keys: Vec<Aggregate>,
) -> Result<Groups<Aggregate, HistoryRow>, sqlx::Error> {
    let (types, ids): (Vec<&str>, Vec<String>) = keys.into_iter().unzip();
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, stream_sequence, effective_from, effective_until,
                recorded_until
         FROM status_history
         WHERE (aggregate_type, aggregate_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(types)
    .bind(ids)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    let mut groups: Groups<Aggregate, HistoryRow> = HashMap::new();
    for row in rows {
        let kind = if row.aggregate_type == "task" {
            "task"
        } else {
            "item"
        };
        groups
            .entry((kind, row.aggregate_id.clone()))
            .or_default()
            .push(Tracked::loaded(row));
    }
    Ok(groups)
}

/// Writes the history of every aggregate the batch changed, after recomputing its effective
/// ends: each row is true until the next change in effective order (ties by stream sequence).
pub async fn write_history(
    conn: &mut PgConnection,
    groups: &mut Groups<Aggregate, HistoryRow>,
) -> Result<(), sqlx::Error> {
    for rows in groups.values_mut() {
        if rows.iter().all(|r| r.inserted.is_none()) {
            continue;
        }
        let mut order: Vec<(Time, i64, usize)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.current
                    .as_ref()
                    .map(|c| (c.effective_from, c.stream_sequence, i))
            })
            .collect();
        order.sort();
        let nexts: Vec<(usize, Option<Time>)> = order
            .iter()
            .enumerate()
            .map(|(n, (_, _, i))| (*i, order.get(n + 1).map(|(from, _, _)| *from)))
            .collect();
        for (i, next) in nexts {
            if let Some(row) = rows[i].current.as_mut() {
                row.effective_until = next;
            }
        }
    }
    let (inserts, updates) = split(groups.values().flatten());
    // Only the fold makes inserted rows, and it makes them whole. One without its entry would be
    // refused by the table's NOT NULL columns (status, recorded_from, actor_user), not left out.
    fn entry<'a>(row: &&'a HistoryRow) -> Option<&'a HistoryEntry> {
        row.entry.as_deref()
    }
    if !inserts.is_empty() {
        sqlx::query(
            "INSERT INTO status_history (aggregate_type, aggregate_id, status, previous_status, reason, evidence,
                 effective_from, effective_until, recorded_from, recorded_until, actor_user, actor_unit,
                 stream_sequence)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::text[],
                 $12::text[], $13::int8[])",
        )
        .bind(column(&inserts, |r| r.aggregate_type.as_str()))
        .bind(column(&inserts, |r| r.aggregate_id.as_str()))
        .bind(column(&inserts, |r| entry(r).map(|e| e.status.as_str())))
        .bind(column(&inserts, |r| {
            entry(r).and_then(|e| e.previous_status.as_deref())
        }))
        .bind(column(&inserts, |r| entry(r).and_then(|e| e.reason.as_deref())))
        .bind(column(&inserts, |r| entry(r).and_then(|e| e.evidence.as_deref())))
        .bind(column(&inserts, |r| r.effective_from))
        .bind(column(&inserts, |r| r.effective_until))
        .bind(column(&inserts, |r| entry(r).map(|e| e.recorded_from)))
        .bind(column(&inserts, |r| r.recorded_until))
        .bind(column(&inserts, |r| entry(r).map(|e| e.actor_user.as_str())))
        .bind(column(&inserts, |r| {
            entry(r).and_then(|e| e.actor_unit.as_deref())
        }))
        .bind(column(&inserts, |r| r.stream_sequence))
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    // A row that was there before the batch changes only at its ends.
    if !updates.is_empty() {
        sqlx::query(
            "UPDATE status_history AS h
             SET effective_until = u.effective_until, recorded_until = u.recorded_until
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::timestamptz[])
                 AS u (aggregate_type, aggregate_id, stream_sequence, effective_until, recorded_until)
             WHERE (h.aggregate_type, h.aggregate_id, h.stream_sequence)
                 = (u.aggregate_type, u.aggregate_id, u.stream_sequence)",
        )
        .bind(column(&updates, |r| r.aggregate_type.as_str()))
        .bind(column(&updates, |r| r.aggregate_id.as_str()))
        .bind(column(&updates, |r| r.stream_sequence))
        .bind(column(&updates, |r| r.effective_until))
        .bind(column(&updates, |r| r.recorded_until))
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch holds every history row of the aggregates it touches, twice (as loaded and as
    /// folded), in vectors that grow by doubling: with the inserted rows' columns inline, these
    /// were the largest thing a rebuild held (42 of 120 MB at the peak of `projector bench 100000
    /// --rebuild`, by heaptrack), though every loaded row leaves them empty.
    #[test]
    fn a_tracked_history_row_keeps_the_inserted_columns_out_of_line() {
        let size = size_of::<Tracked<HistoryRow>>();
        assert!(size <= 256, "a tracked history row takes {size} bytes");
    }
}
