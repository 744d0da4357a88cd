//! Fingerprints of read-model tables, for tests that require two databases (a projection that
//! went through a fault, and one built from scratch) to hold the same rows.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgConnection};

/// Row count and md5 of every table of `schema` (rows as text, sorted), leaving out the
/// migration bookkeeping, the checkpoint's wall-clock `updated_at` and the time-travel snapshots
/// (a cache over the audit log that a rebuilt schema starts without).
pub async fn checksums(conn: &mut PgConnection, schema: &str) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'
           AND table_name NOT LIKE 'fold\\_snapshot%'
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .expect("list tables");
    assert!(!tables.is_empty(), "schema {schema} has no tables");
    let mut sums = BTreeMap::new();
    for table in tables {
        let row = if table == "checkpoints" {
            "(t.projection, t.last_sequence, t.last_recorded_at)::text"
        } else {
            "t::text"
        };
        let (count, md5): (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(*), coalesce(md5(string_agg({row}, '|' ORDER BY {row} COLLATE \"C\")), '')
             FROM \"{schema}\".\"{table}\" t"
        )))
        .fetch_one(&mut *conn)
        .await
        .expect("checksum");
        sums.insert(table, (count, md5));
    }
    sums
}

/// The per-projection checksums of both projections under `prefix`.
pub async fn all_checksums(
    conn: &mut PgConnection,
    prefix: &str,
) -> BTreeMap<String, (i64, String)> {
    let mut sums = BTreeMap::new();
    for projection in ["core", "audit"] {
        for (table, sum) in checksums(conn, &format!("{prefix}{projection}")).await {
            sums.insert(format!("{projection}.{table}"), sum);
        }
    }
    sums
}
