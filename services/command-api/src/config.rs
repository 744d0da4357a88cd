//! Configuration from the environment, with the defaults a local stack needs.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use command_app::handler::HandlerSettings;
use event_store::StreamSettings;
use service_kit::config::{
    ConfigError, http_max_connections, nats_nkey_file, parsed, previous_token_secret,
    stream_settings, token_secret, var,
};

/// Twice the 128 clients the benchmark keeps busy without a refusal; far below the flood that
/// took 500 MB (an open-loop 5 000 commands/s on two cores queued tens of thousands).
pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");

#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    /// The service's NATS seed (`NATS_NKEY_FILE`); `None`: connect anonymously.
    pub nats_nkey_file: Option<PathBuf>,
    pub bind: SocketAddr,
    /// Connections held open at once (`HTTP_MAX_CONNECTIONS`).
    pub http_max_connections: std::num::NonZeroU32,
    pub stream: StreamSettings,
    pub handler: HandlerSettings,
    pub cache_capacity: NonZeroUsize,
    /// Commands decided at once (`MAX_IN_FLIGHT`); one more is refused at once with 503
    /// `overloaded`, so that a flood costs bounded memory and answers fast instead of queueing.
    pub max_in_flight: NonZeroUsize,
    /// How long to wait for NATS to answer a request or acknowledge a publish.
    pub nats_timeout: Duration,
    pub token_secret: Vec<u8>,
    /// Accepted besides `token_secret` while it is rotated out (`TOKEN_SECRET_PREVIOUS`).
    pub previous_token_secret: Option<Vec<u8>>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            nats_url: var("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            nats_nkey_file: nats_nkey_file(),
            bind: parsed("COMMAND_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            http_max_connections: http_max_connections()?,
            stream: stream_settings()?,
            handler: HandlerSettings::from_env()?,
            cache_capacity: parsed(
                "CACHE_CAPACITY",
                NonZeroUsize::new(10_000).expect("non-zero"),
            )?,
            max_in_flight: parsed("MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?,
            nats_timeout: Duration::from_millis(parsed("NATS_TIMEOUT_MS", 3_000)?),
            token_secret: token_secret()?,
            previous_token_secret: previous_token_secret()?,
        })
    }
}
