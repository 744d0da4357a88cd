//! Configuration from the environment, with the defaults a local stack needs.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use command_app::handler::HandlerSettings;
use event_store::StreamSettings;
use service_kit::config::{
    ConfigError, nats_nkey_file, parsed, previous_token_secret, stream_settings, token_secret, var,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    /// The service's NATS seed (`NATS_NKEY_FILE`); `None`: connect anonymously.
    pub nats_nkey_file: Option<PathBuf>,
    pub bind: SocketAddr,
    pub stream: StreamSettings,
    pub handler: HandlerSettings,
    pub cache_capacity: NonZeroUsize,
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
            stream: stream_settings()?,
            handler: HandlerSettings::from_env()?,
            cache_capacity: parsed(
                "CACHE_CAPACITY",
                NonZeroUsize::new(10_000).expect("non-zero"),
            )?,
            nats_timeout: Duration::from_millis(parsed("NATS_TIMEOUT_MS", 3_000)?),
            token_secret: token_secret()?,
            previous_token_secret: previous_token_secret()?,
        })
    }
}
