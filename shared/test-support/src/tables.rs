//! Fingerprints of read-model tables, for tests that require two databases (a projection that
//! went through a fault, and one built from scratch) to hold the same rows.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgConnection};

/// A row of `group_members` (as `t`) with its `membership_id` replaced by its rank: the
/// memberships in the order they were made, whatever numbers their sequence handed out.
pub const GROUP_MEMBER_BY_RANK: &str = "(to_jsonb(t) - 'membership_id'
    || jsonb_build_object('rank', row_number() OVER (ORDER BY t.membership_id)))::text";

/// Row count and md5 of every table of `schema` (rows as text, sorted), leaving out the
/// migration bookkeeping, the checkpoint's wall-clock `updated_at` and the time-travel snapshots
/// (a cache over the audit log that a rebuilt schema starts without). Stretches of group
/// membership are numbered by a sequence, which a rolled-back batch advances too and a crashed
/// server moves on by up to 32 values: they are compared by their rank, as the fold's property
/// test compares them.
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
        let row = match table.as_str() {
            "checkpoints" => "(t.projection, t.last_sequence, t.last_recorded_at)::text",
            "group_members" => GROUP_MEMBER_BY_RANK,
            _ => "t::text",
        };
        let (count, md5): (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(*), coalesce(md5(string_agg(r, '|' ORDER BY r COLLATE \"C\")), '')
             FROM (SELECT {row} AS r FROM \"{schema}\".\"{table}\" t) rows"
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

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;
    use crate::TestDatabase;

    /// Group memberships as two databases hold them after the same events, one of which had a
    /// batch with a membership rolled back first (its sequence value spent): equal checksums; a
    /// membership that differs in what it says: different ones.
    #[tokio::test]
    async fn memberships_are_compared_by_their_rank_not_their_sequence_value() {
        let databases = [
            TestDatabase::create(),
            TestDatabase::create(),
            TestDatabase::create(),
        ];
        let mut sums = Vec::new();
        for (n, database) in databases.iter().enumerate() {
            let mut conn = PgConnection::connect(&database.url())
                .await
                .expect("connect");
            sqlx::raw_sql(
                "CREATE SCHEMA core;
                 CREATE TABLE core.group_members (
                     membership_id bigserial PRIMARY KEY, group_id text NOT NULL, unit_id text NOT NULL);",
            )
            .execute(&mut conn)
            .await
            .expect("schema");
            if n > 0 {
                sqlx::query("SELECT nextval('core.group_members_membership_id_seq')")
                    .execute(&mut conn)
                    .await
                    .expect("a spent sequence value");
            }
            let second_unit = if n == 2 { "so-y-te" } else { "so-tai-chinh" };
            sqlx::query(
                "INSERT INTO core.group_members (group_id, unit_id) VALUES ('to-cong-tac', 'so-xay-dung'), ('to-cong-tac', $1)",
            )
            .bind(second_unit)
            .execute(&mut conn)
            .await
            .expect("rows");
            sums.push(checksums(&mut conn, "core").await);
        }
        assert_eq!(sums[0], sums[1], "the same memberships, numbered apart");
        assert_ne!(sums[0], sums[2], "a membership of another unit");
    }
}
