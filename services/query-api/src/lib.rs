//! Query service of the remediation-plan tracker: dashboards, reporting compliance, exports and
//! the audit trail over the PostgreSQL read model, read-only, with read-your-writes on request.
//! Its one write: every read of the audit trail is recorded as an event before it is answered.

pub mod access;
pub mod config;
pub mod consistency;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod freshness;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod readiness;
pub mod reads;
pub mod routes;
pub mod state;
pub mod views;

use std::future::Future;

pub use crate::config::Config;
pub use crate::routes::router;
pub use crate::state::AppState;

/// Why the query service could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("schema name from SCHEMA_PREFIX: {0}")]
    Schema(#[from] readmodel::InvalidSchemaName),
    #[error("DATABASE_URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error(transparent)]
    TimeTravel(#[from] time_travel::Error),
    #[error("token secret: {0}")]
    Tokens(#[from] service_kit::auth::WeakSecret),
    #[error(transparent)]
    Nats(#[from] service_kit::NatsError),
    #[error(transparent)]
    Listen(#[from] service_kit::ListenError),
}

/// Builds the HTTP state. The database is not contacted yet (`/readyz` reports it), nor is NATS
/// waited for (reads of the audit trail answer 503 until the event store is open).
pub async fn app_state(config: &Config) -> Result<AppState, StartError> {
    AppState::new(config).await
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = app_state(&config).await?;
    let listener = service_kit::listen(config.bind, config.http_max_connections)?;
    run(listener, state, shutdown).await;
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves, lets in-flight queries finish, then closes
/// the pools and flushes NATS.
pub async fn run(
    listener: impl Into<service_kit::HttpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let read_model = state.read_model.clone();
    let audit_reads = state.audit_reads.clone();
    service_kit::serve_http("query API", listener.into(), router(state), shutdown).await;
    read_model.listen.close().await;
    read_model.pool.close().await;
    read_model.bulk.close().await;
    audit_reads.close().await;
    tracing::info!("query API stopped");
}
