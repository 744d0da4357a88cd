//! Projector service: turns the event stream into the PostgreSQL read model.
//!
//! Each projection has its own schema and durable consumer. Batches and their checkpoint commit
//! in one transaction and are acknowledged only afterwards, so redelivery, a crash between commit
//! and ack, or a restart never applies an event twice nor skips one.

pub mod batch;
pub mod bench;
pub mod decode;
pub mod leader;
pub mod rebuild;
mod snapshots;
pub mod status;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State as ConnectionState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use event_store::access::Service;
use readmodel::Projection;
use serde_json::json;
use service_kit::config::{ConfigError, parsed, var};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::decode::Decoder;
use crate::status::Status;
use crate::worker::WorkerContext;

/// Configuration from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    /// The projector's NATS seed (`NATS_NKEY_FILE`); `None`: connect anonymously.
    pub nats_nkey_file: Option<std::path::PathBuf>,
    pub database_url: String,
    pub bind: SocketAddr,
    /// HTTP connections held open at once (`HTTP_MAX_CONNECTIONS`).
    pub http_max_connections: std::num::NonZeroU32,
    pub stream_name: String,
    /// Prepended to each projection's schema name (`core`, `audit`); tests use it to isolate.
    pub schema_prefix: String,
    pub batch_size: usize,
    /// The least time between the starts of two live batches while they come in below
    /// `batch_size` (`BATCH_INTERVAL_MS`; 0: none): see [`worker::WorkerContext::batch_interval`].
    pub batch_interval: Duration,
    /// How often the stored time-travel snapshots are brought up to date (`None`: never here;
    /// then `projector replay --snapshot` from cron keeps as-of queries fast).
    pub snapshot_interval: Option<Duration>,
    /// Events between two stored snapshots: an as-of query folds at most this many after one.
    pub snapshot_every: u64,
}

/// Why the projector could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{name} must be at least 1")]
    Zero { name: &'static str },
    #[error("cannot connect to PostgreSQL: {0}")]
    Database(#[source] sqlx::Error),
    #[error("cannot prepare schema {schema}: {source}")]
    Prepare {
        schema: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Nats(#[from] service_kit::NatsError),
    #[error("stream {0} never became available")]
    NoStream(String),
    #[error(transparent)]
    Listen(#[from] service_kit::ListenError),
    #[error("the HTTP server's task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// `name` parsed, refusing 0.
pub(crate) fn at_least_one<T: std::str::FromStr + PartialEq + From<u8>>(
    name: &'static str,
    default: T,
) -> Result<T, StartError> {
    let value = parsed(name, default)?;
    if value == T::from(0) {
        return Err(StartError::Zero { name });
    }
    Ok(value)
}

impl Config {
    pub fn from_env() -> Result<Self, StartError> {
        Ok(Self {
            nats_url: var("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            nats_nkey_file: service_kit::config::nats_nkey_file(),
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/kh63".to_owned()),
            bind: parsed("PROJECTOR_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            http_max_connections: service_kit::config::http_max_connections()?,
            stream_name: var("STREAM_NAME").unwrap_or_else(|| "PLAN_EVENTS".to_owned()),
            schema_prefix: var("SCHEMA_PREFIX").unwrap_or_default(),
            batch_size: at_least_one("BATCH_SIZE", DEFAULT_BATCH_SIZE)?,
            batch_interval: Duration::from_millis(parsed(
                "BATCH_INTERVAL_MS",
                DEFAULT_BATCH_INTERVAL_MS,
            )?),
            snapshot_interval: match parsed("SNAPSHOT_INTERVAL_SECS", 60u64)? {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            snapshot_every: at_least_one("SNAPSHOT_EVERY", time_travel::DEFAULT_EVERY)?,
        })
    }
}

/// `BATCH_SIZE` unless set. Live batches are far smaller (what arrived within
/// [`DEFAULT_BATCH_INTERVAL_MS`]); the size bounds a catch-up's batches, where larger ones fold
/// more events into each row written, and the projector's memory: it holds a batch being applied,
/// the next one fetched, and [`DECODED_KEPT_BATCHES`] batches of decoded commits. With 1 000,
/// `projector bench 50000` caught up about 15 % faster than with 500, and the resident peak was
/// about 70 MB instead of 45 (README, Performance, "larger catch-up batches").
pub const DEFAULT_BATCH_SIZE: usize = 1_000;

/// `BATCH_INTERVAL_MS` unless set.
pub const DEFAULT_BATCH_INTERVAL_MS: u64 = 10;

/// How many batches' worth of commits the workers' shared [`Decoder`] keeps for a projection
/// that has not got to them yet: a projection further behind than that decodes for itself.
pub(crate) const DECODED_KEPT_BATCHES: usize = 4;

/// Connects to PostgreSQL.
pub async fn connect_database(url: &str) -> Result<PgPool, StartError> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(StartError::Database)
}

/// Migrates every projection's schema and lets the reader role read it.
pub async fn prepare(pool: &PgPool, prefix: &str) -> Result<(), StartError> {
    readmodel::prepare_read_model(pool, prefix)
        .await
        .map_err(|e| StartError::Prepare {
            schema: e.schema,
            source: e.source,
        })
}

/// The running projector's shared state.
#[derive(Debug, Clone)]
pub struct Projector {
    pub context: WorkerContext,
    pub nats: async_nats::Client,
    snapshot_interval: Option<Duration>,
    snapshot_every: u64,
}

impl Projector {
    /// Connects, migrates, and opens the stream.
    pub async fn connect(config: &Config) -> Result<Self, StartError> {
        let pool = connect_database(&config.database_url).await?;
        prepare(&pool, &config.schema_prefix).await?;
        let (nats, js) = service_kit::connect_nats(
            &config.nats_url,
            Service::Projector,
            config.nats_nkey_file.as_deref(),
            "projector",
            Duration::from_secs(5),
        )
        .await?;
        let mut stream = None;
        for _ in 0..60 {
            match js.get_stream(&config.stream_name).await {
                Ok(found) => {
                    stream = Some(found);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = %config.stream_name, "stream not available yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let stream = stream.ok_or_else(|| StartError::NoStream(config.stream_name.clone()))?;
        let status = Arc::new(Status::default());
        let decoder = Arc::new(Decoder::new(DECODED_KEPT_BATCHES * config.batch_size));
        status.count_decoding(&decoder);
        Ok(Self {
            context: WorkerContext {
                pool,
                stream,
                schema_prefix: config.schema_prefix.clone(),
                batch_size: config.batch_size,
                batch_interval: config.batch_interval,
                status,
                decoder,
            },
            nats,
            snapshot_interval: config.snapshot_interval,
            snapshot_every: config.snapshot_every,
        })
    }

    /// Runs every projection whose leader lock this instance gets (standing by for the others,
    /// see [`leader`]), the lag watcher and (if configured) the time-travel snapshot
    /// maintenance until `shutdown` resolves; in-flight batches finish first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for projection in Projection::ALL {
            tasks.push(tokio::spawn(leader::lead(
                self.context.clone(),
                projection,
                stopped.clone(),
            )));
        }
        if let Some(interval) = self.snapshot_interval {
            let options = (*self.context.pool.connect_options()).clone();
            let schema = Projection::Audit.schema(&self.context.schema_prefix);
            let every = self.snapshot_every;
            let mut stopped = stopped.clone();
            tasks.push(snapshots::spawn(
                options,
                schema,
                every,
                interval,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ));
        }
        tasks.push(tokio::spawn(worker::watch_lag(
            self.context.clone(),
            stopped,
        )));
        shutdown.await;
        let _ = stop.send(true);
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "projection task failed");
            }
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/healthz",
                get(|| async { Json(json!({ "status": "ok" })) }),
            )
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn readyz(State(projector): State<Projector>) -> impl IntoResponse {
    let (healthy, projections) = projector.context.status.report();
    let database = sqlx::query("SELECT 1")
        .execute(&projector.context.pool)
        .await
        .is_ok();
    let nats = projector.nats.connection_state() == ConnectionState::Connected;
    let ready = healthy && database && nats;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // An instance standing by for every projection is ready to take over: it says so, with 200.
    let label = match (ready, projector.context.status.active()) {
        (false, _) => "not_ready",
        (true, 0) => "standby",
        (true, _) => "ready",
    };
    (
        status,
        Json(json!({
            "status": label,
            "database": database,
            "nats": nats,
            "projections": projections,
        })),
    )
}

async fn metrics(State(projector): State<Projector>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        projector.context.status.render(),
    )
}

/// Serves HTTP and runs the projections until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let projector = Projector::connect(&config).await?;
    let listener = service_kit::listen(config.bind, config.http_max_connections)?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = projector.router();
    let http = tokio::spawn(service_kit::serve_http(
        "projector",
        listener,
        router,
        async {
            let _ = http_stopped.await;
        },
    ));
    projector.run(shutdown).await;
    let _ = stop_http.send(());
    http.await?;
    tracing::info!("projector stopped");
    Ok(())
}
