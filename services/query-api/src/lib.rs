//! Query service of the remediation-plan tracker: dashboards, reporting compliance and the audit
//! trail over the PostgreSQL read model, read-only, with read-your-writes on request.

pub mod access;
pub mod config;
pub mod consistency;
pub mod db;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod state;
pub mod views;

use std::future::Future;

pub use crate::config::Config;
pub use crate::routes::router;
pub use crate::state::AppState;

/// Builds the HTTP state. The database is not contacted yet: `/readyz` reports it.
pub fn app_state(config: &Config) -> Result<AppState, String> {
    AppState::new(config)
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let state = app_state(&config)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    run(listener, state, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves, lets in-flight queries finish, then closes
/// the pool.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "query API listening");
    }
    let pool = state.read_model.pool.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    pool.close().await;
    tracing::info!("query API stopped");
    Ok(())
}
