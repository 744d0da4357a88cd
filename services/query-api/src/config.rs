//! Configuration from the environment, with the defaults a local stack needs.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use command_app::handler::HandlerSettings;
use event_store::StreamSettings;
use service_kit::config::{
    ConfigError, http_max_connections, nats_nkey_file, parsed, stream_settings, token_secret, var,
};

use crate::readiness::Bounds;

/// Everything the query service needs to start.
#[derive(Clone)]
pub struct Config {
    /// Where the read model is read: `DATABASE_READ_URL` when set (a streaming replica of the
    /// projector's database), else `DATABASE_URL`. The service writes nothing to PostgreSQL, so
    /// a replica serves it whole; read-your-writes waits for the checkpoint as the replica has
    /// replayed it, because the checkpoint is read in the answer's own snapshot.
    pub database_url: String,
    pub bind: SocketAddr,
    /// HTTP connections held open at once (`HTTP_MAX_CONNECTIONS`).
    pub http_max_connections: NonZeroU32,
    /// Prepended to the projection schemas: the service reads `<prefix>core` and
    /// `<prefix>audit`, as the projector writes them.
    pub schema_prefix: String,
    pub token_secret: Vec<u8>,
    /// Accepted besides `token_secret` while it is rotated out (`TOKEN_SECRET_PREVIOUS`).
    pub previous_token_secret: Option<Vec<u8>>,
    /// Pool size; each request holds one connection for its snapshot.
    pub max_connections: u32,
    /// How long a request waits for a database connection before answering 503: bounded so that
    /// an unreachable database turns into a quick, honest answer rather than a hung client.
    pub acquire_timeout: Duration,
    /// Longest a single SQL statement may run; a runaway query answers 503 instead of holding a
    /// connection.
    pub statement_timeout: Duration,
    /// Exports and audit verifications stream for as long as the data takes: they run on a
    /// pool of their own, this small, with this statement timeout instead.
    pub bulk_connections: u32,
    pub bulk_statement_timeout: Duration,
    /// Where reads of the audit trail are recorded (as `access.audit_read` events), through the
    /// same command handler as every other command.
    pub nats_url: String,
    /// The query service's NATS seed (`NATS_NKEY_FILE`); `None`: connect anonymously.
    pub nats_nkey_file: Option<PathBuf>,
    pub stream: StreamSettings,
    pub handler: HandlerSettings,
    /// How long to wait for NATS to answer a request or acknowledge a publish.
    pub nats_timeout: Duration,
    /// How far behind the stream a projection may be before `/readyz` answers 503.
    pub readiness: Bounds,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("http_max_connections", &self.http_max_connections)
            .field("schema_prefix", &self.schema_prefix)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("bulk_connections", &self.bulk_connections)
            .field("bulk_statement_timeout", &self.bulk_statement_timeout)
            .field("nats_url", &self.nats_url)
            .field("nats_nkey_file", &self.nats_nkey_file)
            .field("stream", &self.stream.name)
            .field("nats_timeout", &self.nats_timeout)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults for everything but the secret.
    pub fn new(database_url: impl Into<String>, token_secret: Vec<u8>) -> Self {
        Self {
            database_url: database_url.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8082)),
            http_max_connections: service_kit::DEFAULT_MAX_CONNECTIONS,
            schema_prefix: String::new(),
            token_secret,
            previous_token_secret: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(15),
            bulk_connections: 4,
            bulk_statement_timeout: Duration::from_secs(3_600),
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            nats_nkey_file: None,
            stream: StreamSettings::default(),
            handler: HandlerSettings::default(),
            nats_timeout: Duration::from_millis(3_000),
            readiness: Bounds::default(),
        }
    }

    /// `DATABASE_READ_URL` or `DATABASE_URL`, `QUERY_API_ADDR`, `SCHEMA_PREFIX`, `TOKEN_SECRET` / `TOKEN_SECRET_FILE`,
    /// `TOKEN_SECRET_PREVIOUS` / `TOKEN_SECRET_PREVIOUS_FILE`,
    /// `EXPORT_TIMEOUT_SECS`, `READY_MAX_LAG_EVENTS`, `READY_MAX_LAG_SECS`; `NATS_URL`,
    /// `NATS_NKEY_FILE`, `STREAM_NAME` (…), `MAX_ATTEMPTS`, `NATS_TIMEOUT_MS` as the command
    /// service reads them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::new(
            var("DATABASE_READ_URL")
                .or_else(|| var("DATABASE_URL"))
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/kh63".to_owned()),
            token_secret()?,
        );
        config.previous_token_secret = service_kit::config::previous_token_secret()?;
        config.bind = parsed("QUERY_API_ADDR", config.bind)?;
        config.http_max_connections = http_max_connections()?;
        config.schema_prefix = var("SCHEMA_PREFIX").unwrap_or_default();
        config.bulk_statement_timeout = Duration::from_secs(parsed(
            "EXPORT_TIMEOUT_SECS",
            config.bulk_statement_timeout.as_secs(),
        )?);
        config.readiness.max_lag_events =
            parsed("READY_MAX_LAG_EVENTS", config.readiness.max_lag_events)?;
        config.readiness.max_lag = Duration::from_secs(parsed(
            "READY_MAX_LAG_SECS",
            config.readiness.max_lag.as_secs(),
        )?);
        if let Some(url) = var("NATS_URL") {
            config.nats_url = url;
        }
        config.nats_nkey_file = nats_nkey_file();
        config.stream = stream_settings()?;
        config.handler.max_attempts = parsed("MAX_ATTEMPTS", config.handler.max_attempts)?;
        config.nats_timeout = Duration::from_millis(parsed(
            "NATS_TIMEOUT_MS",
            u64::try_from(config.nats_timeout.as_millis()).unwrap_or(3_000),
        )?);
        Ok(config)
    }
}
