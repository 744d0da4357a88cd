//! Configuration from the environment, with the defaults a local stack needs.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use event_store::StreamSettings;

use crate::auth::TokenKeys;
use crate::handler::HandlerSettings;

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

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    var(name).map_or(Ok(default), |raw| {
        raw.parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid value"))
    })
}

/// A secret from the variable `name`, or the file named by `<name>_FILE` (trimmed); `None` when
/// neither is set.
fn secret(name: &str) -> Result<Option<Vec<u8>>, String> {
    let file = format!("{name}_FILE");
    let secret = match (var(name), var(&file)) {
        (Some(secret), _) => secret.into_bytes(),
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|e| format!("cannot read {file} {path}: {e}"))?
            .trim_ascii()
            .to_vec(),
        (None, None) => return Ok(None),
    };
    Ok(Some(secret))
}

/// The token secret from `TOKEN_SECRET`, or the file named by `TOKEN_SECRET_FILE`: it signs new
/// tokens and verifies them.
pub fn token_secret() -> Result<Vec<u8>, String> {
    let secret =
        secret("TOKEN_SECRET")?.ok_or("set TOKEN_SECRET or TOKEN_SECRET_FILE".to_owned())?;
    TokenKeys::new(&secret)?;
    Ok(secret)
}

/// The secret being rotated out, from `TOKEN_SECRET_PREVIOUS` or the file named by
/// `TOKEN_SECRET_PREVIOUS_FILE`: tokens signed with it are still accepted, none is signed.
pub fn previous_token_secret() -> Result<Option<Vec<u8>>, String> {
    let previous = secret("TOKEN_SECRET_PREVIOUS")?;
    if let Some(previous) = &previous {
        TokenKeys::new(previous).map_err(|e| format!("TOKEN_SECRET_PREVIOUS: {e}"))?;
    }
    Ok(previous)
}

/// The NATS seed file from `NATS_NKEY_FILE`.
pub fn nats_nkey_file() -> Option<PathBuf> {
    var("NATS_NKEY_FILE").map(PathBuf::from)
}

/// The stream settings from `STREAM_NAME`, `SUBJECT_PREFIX`, `IDEMPOTENCY_BUCKET`,
/// `STREAM_REPLICAS`, `DUPLICATE_WINDOW_SECS`. Two deployments in one NATS account need their
/// own of the first three: streams may not share subjects.
pub fn stream_settings() -> Result<StreamSettings, String> {
    let defaults = StreamSettings::default();
    Ok(StreamSettings {
        name: var("STREAM_NAME").unwrap_or(defaults.name),
        subject_prefix: var("SUBJECT_PREFIX").unwrap_or(defaults.subject_prefix),
        idempotency_bucket: var("IDEMPOTENCY_BUCKET").unwrap_or(defaults.idempotency_bucket),
        replicas: parsed("STREAM_REPLICAS", defaults.replicas)?,
        duplicate_window: Duration::from_secs(parsed(
            "DUPLICATE_WINDOW_SECS",
            defaults.duplicate_window.as_secs(),
        )?),
        ..defaults
    })
}

/// The handler settings from `MAX_ATTEMPTS`, `IDEMPOTENCY_LEASE_SECS`, `IDEMPOTENCY_WAIT_MS`.
fn handler_settings() -> Result<HandlerSettings, String> {
    let defaults = HandlerSettings::default();
    Ok(HandlerSettings {
        max_attempts: parsed("MAX_ATTEMPTS", defaults.max_attempts)?,
        idempotency_lease: Duration::from_secs(parsed(
            "IDEMPOTENCY_LEASE_SECS",
            defaults.idempotency_lease.as_secs(),
        )?),
        idempotency_wait: Duration::from_millis(parsed(
            "IDEMPOTENCY_WAIT_MS",
            u64::try_from(defaults.idempotency_wait.as_millis()).unwrap_or(u64::MAX),
        )?),
    })
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            nats_url: var("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            nats_nkey_file: nats_nkey_file(),
            bind: parsed("COMMAND_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            stream: stream_settings()?,
            handler: handler_settings()?,
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
