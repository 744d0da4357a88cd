//! Creating, migrating, granting and swapping projection schemas.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::Projection;

/// The role the query service reads as: USAGE on the projection schemas, SELECT on their
/// tables and views, nothing else.
pub const READER_ROLE: &str = "kh63_reader";

/// Schema names come from configuration and end up in SQL text, so every crate that splices one
/// in holds it to this rule first: 1–48 lowercase ASCII letters, digits or '_' (room for the
/// `_rebuild` and `_retired` suffixes within PostgreSQL's 63 bytes, and nothing to escape).
/// Returns the name double-quoted.
pub fn quoted_schema(schema: &str) -> Result<String, InvalidSchemaName> {
    let ok = !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(format!("\"{schema}\""))
    } else {
        Err(InvalidSchemaName(schema.to_owned()))
    }
}

/// A schema name outside the rule of [`quoted_schema`].
#[derive(Debug, thiserror::Error)]
#[error("schema name {0:?} must be at most 48 lowercase letters, digits or '_'")]
pub struct InvalidSchemaName(pub String);

fn checked(schema: &str) -> Result<&str, sqlx::Error> {
    quoted_schema(schema)
        .map(|_| schema)
        .map_err(|e| sqlx::Error::Configuration(e.into()))
}

async fn execute(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Creates `schema` if needed, applies `projection`'s migrations inside it, and makes sure its
/// checkpoint row exists.
/// Creates the database `url` names unless it exists; true when it made it. A benchmark's
/// scratch database is the tool's to make: followed from the README, `projector replay --bench`
/// stopped with `database "kh63_bench" does not exist`. Another process creating it at the same
/// moment is not an error.
pub async fn create_database_if_missing(url: &str) -> Result<bool, sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if sqlx::Postgres::database_exists(url).await? {
        return Ok(false);
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        Err(_) if sqlx::Postgres::database_exists(url).await? => Ok(false),
        Err(e) => Err(e),
    }
}

/// A projection's schema that could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare schema {schema}: {source}")]
pub struct PrepareError {
    pub schema: String,
    #[source]
    pub source: sqlx::Error,
}

/// Migrates every projection's schema under `prefix` and lets the reader role read it: what the
/// projector does before it applies anything, and what a query service needs to find.
pub async fn prepare_read_model(pool: &PgPool, prefix: &str) -> Result<(), PrepareError> {
    for projection in Projection::ALL {
        let schema = projection.schema(prefix);
        let prepared = match prepare_schema(pool, projection, &schema).await {
            Ok(()) => grant_reader(pool, &schema).await,
            Err(e) => Err(e),
        };
        prepared.map_err(|source| PrepareError { schema, source })?;
    }
    Ok(())
}

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
/// and functions move with their schema; queries already running finish on the old tables, and
/// the caller drops `retired` once they are done.
pub async fn swap_schema(
    conn: &mut PgConnection,
    live: &str,
    rebuilt: &str,
    retired: &str,
) -> Result<(), sqlx::Error> {
    let (live, rebuilt, retired) = (checked(live)?, checked(rebuilt)?, checked(retired)?);
    drop_schema(conn, retired).await?;
    execute(conn, format!("ALTER SCHEMA {live} RENAME TO {retired}")).await?;
    execute(conn, format!("ALTER SCHEMA {rebuilt} RENAME TO {live}")).await?;
    Ok(())
}

/// Drops `schema` with everything in it, if it exists (waiting for queries still reading it).
pub async fn drop_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let schema = checked(schema)?;
    execute(conn, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

/// Secondary indexes the projections' own writes find rows by (the open stretches of a group
/// member): a bulk load keeps them.
const LOOKUP_INDEXES: &[&str] = &["group_members_group"];

/// Drops `schema`'s secondary indexes — those that back no constraint and that no write of the
/// projection looks rows up by — and returns their definitions for [`create_indexes`]: before a
/// bulk load, since building an index once afterwards costs far less than keeping it up to
/// date row by row.
pub async fn drop_secondary_indexes(
    pool: &PgPool,
    schema: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let schema = checked(schema)?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef
         FROM pg_indexes i
         JOIN pg_namespace n ON n.nspname = i.schemaname
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = i.indexname
         WHERE i.schemaname = $1 AND i.indexname <> ALL($2)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
         ORDER BY i.indexname",
    )
    .bind(schema)
    .bind(LOOKUP_INDEXES)
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    for (name, _) in &indexes {
        execute(&mut conn, format!("DROP INDEX {schema}.\"{name}\"")).await?;
    }
    Ok(indexes
        .into_iter()
        .map(|(_, definition)| definition)
        .collect())
}

/// Creates the indexes [`drop_secondary_indexes`] dropped, from their definitions.
pub async fn create_indexes(pool: &PgPool, definitions: &[String]) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    for definition in definitions {
        execute(&mut conn, definition.clone()).await?;
    }
    Ok(())
}
