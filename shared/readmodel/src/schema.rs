//! Creating, migrating, granting and swapping projection schemas.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::Projection;

/// The role the query service reads as: USAGE on the projection schemas, SELECT on their
/// tables and views, nothing else.
pub const READER_ROLE: &str = "kh63_reader";

/// Schema names come from configuration; they are checked before being spliced into DDL.
fn checked(schema: &str) -> Result<&str, sqlx::Error> {
    let ok = !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(schema)
    } else {
        Err(sqlx::Error::Configuration(
            format!("schema name {schema:?} must be lowercase letters, digits or '_'").into(),
        ))
    }
}

async fn execute(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Creates `schema` if needed, applies `projection`'s migrations inside it, and makes sure its
/// checkpoint row exists.
pub async fn prepare_schema(
    pool: &PgPool,
    projection: Projection,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let schema = checked(schema)?;
    let mut conn = pool.acquire().await?;
    execute(&mut conn, format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
    execute(&mut conn, format!("SET search_path TO {schema}")).await?;
    projection.migrator().run(&mut *conn).await?;
    sqlx::query("INSERT INTO checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(projection.name())
        .execute(&mut *conn)
        .await?;
    execute(&mut conn, "RESET search_path".to_owned()).await?;
    Ok(())
}

/// Creates the reader role if needed and lets it read `schema`.
pub async fn grant_reader(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let schema = checked(schema)?;
    let mut conn = pool.acquire().await?;
    execute(
        &mut conn,
        format!(
            // Roles are cluster-wide: two databases prepared at once may both try to create it.
            "DO $$ BEGIN
                CREATE ROLE {READER_ROLE} NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$"
        ),
    )
    .await?;
    execute(
        &mut conn,
        format!("GRANT USAGE ON SCHEMA {schema} TO {READER_ROLE}"),
    )
    .await?;
    execute(
        &mut conn,
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {READER_ROLE}"),
    )
    .await?;
    execute(
        &mut conn,
        format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {READER_ROLE}"),
    )
    .await?;
    Ok(())
}

/// Within the caller's transaction: `live` becomes `retired`, `rebuilt` becomes `live`. Views
/// and functions move with their schema.
///
/// The live tables are locked exclusively first. PostgreSQL resolves names against the latest
/// catalog even inside a repeatable-read transaction, so a reader that had already read the live
/// schema would otherwise find the rebuilt tables in the middle of its snapshot; with the locks
/// the swap waits for such readers to finish, and new readers wait the few milliseconds the
/// rename takes.
pub async fn swap_schema(
    conn: &mut PgConnection,
    live: &str,
    rebuilt: &str,
    retired: &str,
) -> Result<(), sqlx::Error> {
    let (live, rebuilt, retired) = (checked(live)?, checked(rebuilt)?, checked(retired)?);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await?;
    if !tables.is_empty() {
        lock_without_waiting(conn, &tables).await?;
    }
    execute(conn, format!("DROP SCHEMA IF EXISTS {retired} CASCADE")).await?;
    execute(conn, format!("ALTER SCHEMA {live} RENAME TO {retired}")).await?;
    execute(conn, format!("ALTER SCHEMA {rebuilt} RENAME TO {live}")).await?;
    Ok(())
}

/// Takes exclusive locks on `tables` without ever deadlocking with a reader.
///
/// A reader that holds one live table and asks for another would deadlock with a swap holding
/// the second and waiting for the first. Each attempt therefore waits at most a short lock
/// timeout — less than PostgreSQL's deadlock timeout, so the reader is never the one aborted —
/// and on expiry releases what it got and queues again. While it waits it stands in the lock
/// queue ahead of readers arriving later, so a steady stream of readers cannot starve it.
async fn lock_without_waiting(
    conn: &mut PgConnection,
    tables: &[String],
) -> Result<(), sqlx::Error> {
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", "));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    execute(conn, "SET LOCAL lock_timeout = '200ms'".to_owned()).await?;
    loop {
        execute(conn, "SAVEPOINT swap_locks".to_owned()).await?;
        match sqlx::query(AssertSqlSafe(lock.clone()))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {
                execute(conn, "RELEASE SAVEPOINT swap_locks".to_owned()).await?;
                return execute(conn, "SET LOCAL lock_timeout = 0".to_owned()).await;
            }
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55P03") && std::time::Instant::now() < deadline =>
            {
                execute(conn, "ROLLBACK TO SAVEPOINT swap_locks".to_owned()).await?;
                execute(conn, "RELEASE SAVEPOINT swap_locks".to_owned()).await?;
            }
            Err(e) => return Err(e),
        }
    }
}
