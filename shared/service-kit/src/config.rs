//! Reading settings from the environment, the same way in every service: an empty variable is
//! an absent one, and a value that does not parse is an error naming the variable, never a
//! silent default.

use std::path::PathBuf;
use std::time::Duration;

use event_store::StreamSettings;

use crate::auth::{TokenKeys, WeakSecret};

/// A setting that is missing where it is required, or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={raw:?} is not a valid value")]
    Invalid { name: &'static str, raw: String },
    #[error("set TOKEN_SECRET or TOKEN_SECRET_FILE")]
    NoTokenSecret,
    #[error("cannot read {name}_FILE {path}: {source}")]
    SecretFile {
        name: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{name}: {source}")]
    WeakSecret {
        name: &'static str,
        source: WeakSecret,
    },
}

/// The variable's value; empty counts as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    var(name).map_or(Ok(default), |raw| {
        raw.parse().map_err(|_| ConfigError::Invalid { name, raw })
    })
}

/// A secret from the variable `name`, or the file named by `<name>_FILE` (trimmed); `None` when
/// neither is set.
fn secret(name: &'static str) -> Result<Option<Vec<u8>>, ConfigError> {
    let file = format!("{name}_FILE");
    let secret = match (var(name), var(&file)) {
        (Some(secret), _) => secret.into_bytes(),
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|source| ConfigError::SecretFile { name, path, source })?
            .trim_ascii()
            .to_vec(),
        (None, None) => return Ok(None),
    };
    Ok(Some(secret))
}

/// The token secret from `TOKEN_SECRET`, or the file named by `TOKEN_SECRET_FILE`: it signs new
/// tokens and verifies them.
pub fn token_secret() -> Result<Vec<u8>, ConfigError> {
    let secret = secret("TOKEN_SECRET")?.ok_or(ConfigError::NoTokenSecret)?;
    TokenKeys::new(&secret).map_err(|source| ConfigError::WeakSecret {
        name: "TOKEN_SECRET",
        source,
    })?;
    Ok(secret)
}

/// The secret being rotated out, from `TOKEN_SECRET_PREVIOUS` or the file named by
/// `TOKEN_SECRET_PREVIOUS_FILE`: tokens signed with it are still accepted, none is signed.
pub fn previous_token_secret() -> Result<Option<Vec<u8>>, ConfigError> {
    let previous = secret("TOKEN_SECRET_PREVIOUS")?;
    if let Some(previous) = &previous {
        TokenKeys::new(previous).map_err(|source| ConfigError::WeakSecret {
            name: "TOKEN_SECRET_PREVIOUS",
            source,
        })?;
    }
    Ok(previous)
}

/// The NATS seed file from `NATS_NKEY_FILE`.
pub fn nats_nkey_file() -> Option<PathBuf> {
    var("NATS_NKEY_FILE").map(PathBuf::from)
}

/// Connections the service's HTTP listener holds open at once (`HTTP_MAX_CONNECTIONS`); more
/// wait in the kernel's accept queue until one closes.
pub fn http_max_connections() -> Result<std::num::NonZeroU32, ConfigError> {
    parsed("HTTP_MAX_CONNECTIONS", crate::DEFAULT_MAX_CONNECTIONS)
}

/// The stream settings from `STREAM_NAME`, `SUBJECT_PREFIX`, `IDEMPOTENCY_BUCKET`,
/// `STREAM_REPLICAS`, `DUPLICATE_WINDOW_SECS`. Two deployments in one NATS account need their
/// own of the first three: streams may not share subjects.
pub fn stream_settings() -> Result<StreamSettings, ConfigError> {
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
