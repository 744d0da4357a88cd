//! The documented SQL as-of queries (`sql_as_of.sql`) over the core projection's history tables,
//! by name, and helpers that run them with the projection schemas on the search path.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{AsOf, Axis, Error};

/// The file itself, comments and all: what the README documents.
pub const SQL_AS_OF: &str = include_str!("sql_as_of.sql");

fn queries() -> &'static BTreeMap<&'static str, &'static str> {
    static QUERIES: OnceLock<BTreeMap<&'static str, &'static str>> = OnceLock::new();
    QUERIES.get_or_init(|| {
        SQL_AS_OF
            .split("-- name: ")
            .skip(1)
            .filter_map(|chunk| {
                let (name, body) = chunk.split_once('\n')?;
                Some((name.trim(), body.trim().trim_end_matches(';')))
            })
            .collect()
    })
}

/// One named query of `sql_as_of.sql` (its leading comment included), without the final `;`.
pub fn query(name: &str) -> Option<&'static str> {
    queries().get(name).copied()
}

/// An assignment valid at T, as the SQL answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, sqlx::FromRow)]
pub struct SqlAssignment {
    pub item_id: String,
    pub role: String,
    pub assignee_type: String,
    pub assignee_id: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

fn named(name: &str) -> Result<&'static str, Error> {
    query(name).ok_or_else(|| Error::Invalid(format!("no SQL query named {name}")))
}

/// Puts `core` and `audit` (unquoted schema names) on the search path of `tx` for its duration.
async fn search_path(
    conn: &mut PgConnection,
    core_schema: &str,
    audit_schema: &str,
) -> Result<(), Error> {
    crate::checked_schema(core_schema)?;
    crate::checked_schema(audit_schema)?;
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(format!("\"{core_schema}\", \"{audit_schema}\""))
        .execute(conn)
        .await?;
    Ok(())
}

/// The status of every aggregate of `aggregate_type` (`item` or `task`) as of `as_of`, from
/// `status_history`.
pub async fn statuses_as_of(
    conn: &mut PgConnection,
    core_schema: &str,
    audit_schema: &str,
    as_of: AsOf,
    aggregate_type: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let name = match as_of.axis {
        Axis::Recorded => "status_recorded",
        Axis::Effective => "status_effective",
    };
    let mut tx = conn.begin().await?;
    search_path(&mut tx, core_schema, audit_schema).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(named(name)?))
        .bind(as_of.instant)
        .bind(aggregate_type)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(rows.into_iter().collect())
}

/// The assignments valid at `as_of.instant` on `as_of.axis`, from `assignments` (and the audit
/// log for recorded times).
pub async fn assignments_as_of(
    conn: &mut PgConnection,
    core_schema: &str,
    audit_schema: &str,
    as_of: AsOf,
) -> Result<Vec<SqlAssignment>, Error> {
    let name = match as_of.axis {
        Axis::Recorded => "assignments_recorded",
        Axis::Effective => "assignments_effective",
    };
    let mut tx = conn.begin().await?;
    search_path(&mut tx, core_schema, audit_schema).await?;
    let rows = sqlx::query_as(AssertSqlSafe(named(name)?))
        .bind(as_of.instant)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_query_is_found_by_name() {
        for name in [
            "status_recorded",
            "status_effective",
            "assignments_effective",
            "assignments_recorded",
        ] {
            let sql = query(name).unwrap_or_default();
            assert!(sql.contains("SELECT"), "{name}");
            assert!(!sql.trim_end().ends_with(';'), "{name}");
            assert!(!sql.contains("-- name:"), "{name}");
        }
    }
}
