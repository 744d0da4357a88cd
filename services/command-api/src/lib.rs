//! Command service of the remediation-plan tracker: HTTP in, decisions by the domain, commits
//! appended to JetStream.

pub mod config;
pub mod http;
mod openapi;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use command_app::handler::CommandHandler;
use event_store::Repository;
use event_store::access::Service;
use service_kit::auth::{TokenKeys, WeakSecret};
use service_kit::{NatsError, connect_nats, open_store};

use crate::config::Config;
use crate::http::AppState;

pub use openapi::document as openapi_document;

/// Why the command service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    TokenSecret(#[from] WeakSecret),
    #[error(transparent)]
    Listen(#[from] service_kit::ListenError),
}

/// Builds the HTTP state: NATS connection, provisioned stream, handler, token keys.
pub async fn app_state(config: &Config) -> Result<AppState, ServeError> {
    let (client, js) = connect_nats(
        &config.nats_url,
        Service::CommandApi,
        config.nats_nkey_file.as_deref(),
        "command-api",
        config.nats_timeout,
    )
    .await?;
    let store = open_store(&js, &config.stream).await?;
    Ok(AppState {
        handler: Arc::new(CommandHandler::new(
            Repository::new(store, config.cache_capacity),
            config.handler,
        )),
        keys: Arc::new(TokenKeys::rotating(
            &config.token_secret,
            config.previous_token_secret.as_deref(),
        )?),
        nats: client,
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.get())),
        max_in_flight: config.max_in_flight.get(),
    })
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = app_state(&config).await?;
    let listener = service_kit::listen(config.bind, config.http_max_connections)?;
    run(listener, state, shutdown).await;
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight commands finish and
/// flushes NATS.
pub async fn run(
    listener: impl Into<service_kit::HttpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let nats = state.nats.clone();
    service_kit::serve_http(
        "command API",
        listener.into(),
        http::router(state),
        shutdown,
    )
    .await;
    // Bounded: with NATS down a flush would wait forever and hold up the shutdown.
    match tokio::time::timeout(Duration::from_secs(5), nats.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not flush NATS on shutdown"),
        Err(_) => tracing::warn!("NATS flush timed out on shutdown"),
    }
    tracing::info!("command API stopped");
}
