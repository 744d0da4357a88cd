//! The read-only connection pool and the projection checkpoints.
//!
//! The service reads the projector's schemas as the NOLOGIN role `kh63_reader`, which may only
//! read them: every pooled connection switches to it, makes its transactions read-only and puts
//! the projection schemas on its search path before it is handed out. A bug or an injection in a
//! query can therefore not change the read model, whatever login the service was given.
//!
//! Two pools are set up so: one for answers (short statement timeout, sized for concurrency) and
//! a small one for exports and audit verification, whose single statements stream for as long
//! as the data takes and must neither be cut short nor starve the answers of connections.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use readmodel::{Projection, READER_ROLE};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

use crate::StartError;
use crate::config::Config;
use crate::error::QueryError;

const CHECKPOINTS: &str = include_str!("sql/checkpoints.sql");

/// One projection's progress, as its own transaction left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Checkpoint {
    pub projection: String,
    pub last_sequence: i64,
    pub last_recorded_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    stalled_sequence: Option<i64>,
    stalled_reason: Option<String>,
    stalled_since: Option<DateTime<Utc>>,
    /// The database's `now()`: the instant the caller's snapshot answers for.
    pub as_of: DateTime<Utc>,
}

/// A projection stopped on a commit it must not skip, as the projector recorded it: the read
/// model stays frozen at the checkpoint until someone repairs the cause.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Stall {
    /// Stream sequence of the commit it stopped at; null when the stop concerns no single
    /// commit (a worker that crashed).
    pub sequence: Option<u64>,
    pub reason: String,
    /// When the projector first recorded the stop at this sequence.
    pub since: DateTime<Utc>,
}

impl Checkpoint {
    pub fn sequence(&self) -> u64 {
        u64::try_from(self.last_sequence).unwrap_or(0)
    }

    /// The recorded stop, if the projection is stopped.
    pub fn stall(&self) -> Option<Stall> {
        self.stalled_since.map(|since| Stall {
            sequence: self.stalled_sequence.and_then(|s| u64::try_from(s).ok()),
            reason: self.stalled_reason.clone().unwrap_or_default(),
            since,
        })
    }
}

/// The pools plus the SQL that names the projection schemas.
#[derive(Debug, Clone)]
pub struct ReadModel {
    pub pool: PgPool,
    /// Exports and verification: long-running, streaming statements.
    pub bulk: PgPool,
    /// The session that listens for checkpoints (see [`crate::consistency`]).
    pub listen: PgPool,
    /// The projections' schemas (unquoted), as their checkpoints announce them.
    pub schemas: [String; 2],
    /// The audit projection's schema (unquoted), for code that names it itself.
    pub audit_schema: String,
    checkpoints_sql: Arc<str>,
}

/// A lazily connecting pool of read-only sessions as the reader role.
fn reader_pool(
    options: &PgConnectOptions,
    search_path: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
    statement_timeout: std::time::Duration,
) -> PgPool {
    let session: Arc<str> = format!(
        "SET ROLE {READER_ROLE};
         SET default_transaction_read_only = on;
         SET search_path = {search_path};
         SET statement_timeout = {}",
        statement_timeout.as_millis()
    )
    .into();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            let session = session.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(session)).execute(conn).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.clone())
}

impl ReadModel {
    /// A lazily connecting pool: the service starts (and `/readyz` says why it is not ready)
    /// while PostgreSQL or the projector's schemas are still on their way.
    pub fn connect(config: &Config) -> Result<Self, StartError> {
        // Schema names end up in SQL text: the rule the projector applies before creating them.
        let core = readmodel::quoted_schema(&Projection::Core.schema(&config.schema_prefix))?;
        let audit = readmodel::quoted_schema(&Projection::Audit.schema(&config.schema_prefix))?;
        let search_path = format!("{core}, {audit}");
        let options = PgConnectOptions::from_str(&config.database_url)
            .map_err(StartError::DatabaseUrl)?
            .application_name("query-api");
        let pool = reader_pool(
            &options,
            &search_path,
            config.max_connections,
            config.acquire_timeout,
            config.statement_timeout,
        );
        let bulk = reader_pool(
            &options.clone().application_name("query-api-bulk"),
            &search_path,
            config.bulk_connections.max(1),
            config.acquire_timeout,
            config.bulk_statement_timeout,
        );
        // One session, held by the checkpoint listener (LISTEN needs its own connection).
        let listen = reader_pool(
            &options.clone().application_name("query-api-listen"),
            &search_path,
            1,
            config.acquire_timeout,
            config.statement_timeout,
        );
        let checkpoints_sql = CHECKPOINTS
            .replace("{core}", &core)
            .replace("{audit}", &audit)
            .into();
        Ok(Self {
            pool,
            bulk,
            listen,
            schemas: Projection::ALL.map(|p| p.schema(&config.schema_prefix)),
            audit_schema: Projection::Audit.schema(&config.schema_prefix),
            checkpoints_sql,
        })
    }

    /// Every projection's checkpoint, in the snapshot of `conn`.
    pub async fn checkpoints(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<Checkpoint>, QueryError> {
        Ok(sqlx::query_as(AssertSqlSafe(self.checkpoints_sql.clone()))
            .fetch_all(conn)
            .await?)
    }

    /// The checkpoint of `projection`; a missing row means the projector never prepared it.
    pub async fn checkpoint(
        &self,
        conn: &mut PgConnection,
        projection: Projection,
    ) -> Result<Checkpoint, QueryError> {
        self.checkpoints(conn)
            .await?
            .into_iter()
            .find(|c| c.projection == projection.name())
            .ok_or_else(|| {
                QueryError::DatabaseUnavailable(format!(
                    "the {} projection has no checkpoint yet",
                    projection.name()
                ))
            })
    }

    /// A read-only, repeatable-read transaction: every query of one answer sees the same
    /// snapshot (and the same `now()`), so counts and rows never disagree mid-batch.
    pub async fn snapshot(&self) -> Result<Transaction<'static, Postgres>, QueryError> {
        Self::begin(&self.pool).await
    }

    /// The same on the bulk pool, for an export or a verification that streams from it.
    pub async fn bulk_snapshot(&self) -> Result<Transaction<'static, Postgres>, QueryError> {
        Self::begin(&self.bulk).await
    }

    async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, QueryError> {
        Ok(pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }
}
