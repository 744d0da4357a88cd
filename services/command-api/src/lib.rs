//! Command service of the remediation-plan tracker: HTTP in, decisions by the domain, commits
//! appended to JetStream.

pub mod auth;
mod claim;
pub mod config;
pub mod error;
pub mod handler;
pub mod http;
pub mod idempotency;
pub mod metrics;
mod openapi;
pub mod quarantine;
pub mod seed;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use event_store::access::Service;
use event_store::{EventStore, Repository, StreamSettings, credentials, provision};

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::handler::CommandHandler;
use crate::http::AppState;

pub use openapi::document as openapi_document;

/// Reconnects quickly at first and then every two seconds: a NATS restart should cost a client
/// seconds, not the default's growing back-off.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5))).min(Duration::from_secs(2))
}

/// Connects to NATS as `service` and returns the client and its JetStream context. With
/// `nkey_file` (the service's seed) it logs in with that key and takes replies under the
/// service's own inbox prefix, as the generated server configuration requires; without it the
/// connection is anonymous, for a development server that runs without authentication.
pub async fn connect_nats(
    url: &str,
    service: Service,
    nkey_file: Option<&Path>,
    name: &str,
    timeout: Duration,
) -> Result<(async_nats::Client, jetstream::Context), String> {
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(timeout))
        .connection_timeout(timeout)
        .reconnect_delay_callback(reconnect_delay)
        .retry_on_initial_connect()
        // A refused publish or subscription is only reported asynchronously; without this the
        // caller sees nothing but a timeout.
        .event_callback(|event| async move {
            if let async_nats::Event::ServerError(error) = event {
                tracing::error!(%error, "NATS server error");
            }
        });
    let client = credentials::login(options, service, nkey_file)
        .map_err(|e| format!("cannot log in to NATS as {}: {e}", service.name()))?
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client.clone());
    Ok((client, js))
}

/// Provisions (idempotently) and opens the event store, waiting up to a minute for NATS to come
/// up: services and NATS are often started together.
pub async fn open_store(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<EventStore, String> {
    let mut last_error = String::new();
    for attempt in 1..=60 {
        match provision(js, settings).await {
            Ok(outcome) => {
                tracing::info!(stream = %settings.name, ?outcome, "stream provisioned");
                return EventStore::open(js.clone(), settings.clone())
                    .await
                    .map_err(|e| e.to_string());
            }
            Err(e) => {
                last_error = e.to_string();
                tracing::warn!(attempt, error = %e, "event store not ready yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(format!("event store never became ready: {last_error}"))
}

/// Builds the HTTP state: NATS connection, provisioned stream, handler, token keys.
pub async fn app_state(config: &Config) -> Result<AppState, String> {
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
    })
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let state = app_state(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    run(listener, state, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight commands finish and
/// flushes NATS.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let nats = state.nats.clone();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "command API listening");
    }
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    // Bounded: with NATS down a flush would wait forever and hold up the shutdown.
    match tokio::time::timeout(Duration::from_secs(5), nats.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not flush NATS on shutdown"),
        Err(_) => tracing::warn!("NATS flush timed out on shutdown"),
    }
    tracing::info!("command API stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight commands");
}

/// Logs as JSON when `LOG_FORMAT=json`, else human-readable; `RUST_LOG` filters.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that a CLI's results on stdout stay clean; colour only on a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
