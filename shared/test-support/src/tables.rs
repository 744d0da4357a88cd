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

/// `schema`'s checkpoint, or `None` while the schema does not exist yet.
pub async fn checkpoint(conn: &mut PgConnection, schema: &str) -> Option<u64> {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT last_sequence FROM \"{schema}\".checkpoints"
    )))
    .fetch_optional(conn)
    .await
    .ok()
    .flatten()
    .and_then(|s| u64::try_from(s).ok())
}

/// Waits until the core and audit checkpoints under `prefix` are both at least `target`. The
/// patience only turns a projector that stopped making progress into a failure with a message
/// instead of a stuck run; it asserts nothing about speed.
pub async fn wait_for_checkpoints(
    conn: &mut PgConnection,
    prefix: &str,
    target: u64,
    patience: std::time::Duration,
) {
    let started = std::time::Instant::now();
    loop {
        let core = checkpoint(conn, &format!("{prefix}core")).await;
        let audit = checkpoint(conn, &format!("{prefix}audit")).await;
        if core >= Some(target) && audit >= Some(target) {
            return;
        }
        assert!(
            started.elapsed() < patience,
            "checkpoints stuck at core {core:?}, audit {audit:?}; waiting for {target}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
