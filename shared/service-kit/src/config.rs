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
    #[error("cannot read TOKEN_SECRET_FILE {path}: {source}")]
    TokenSecretFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    TokenSecret(#[from] WeakSecret),
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

/// The token secret from `TOKEN_SECRET`, or the file named by `TOKEN_SECRET_FILE`.
pub fn token_secret() -> Result<Vec<u8>, ConfigError> {
    let secret = match (var("TOKEN_SECRET"), var("TOKEN_SECRET_FILE")) {
        (Some(secret), _) => secret.into_bytes(),
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|source| ConfigError::TokenSecretFile { path, source })?
            .trim_ascii()
            .to_vec(),
        (None, None) => return Err(ConfigError::NoTokenSecret),
    };
    TokenKeys::new(&secret)?;
    Ok(secret)
}

/// The NATS seed file from `NATS_NKEY_FILE`.
pub fn nats_nkey_file() -> Option<PathBuf> {
    var("NATS_NKEY_FILE").map(PathBuf::from)
}

/// The stream settings from `STREAM_NAME`, `STREAM_REPLICAS`, `DUPLICATE_WINDOW_SECS`.
pub fn stream_settings() -> Result<StreamSettings, ConfigError> {
    let defaults = StreamSettings::default();
    Ok(StreamSettings {
        name: var("STREAM_NAME").unwrap_or(defaults.name),
        replicas: parsed("STREAM_REPLICAS", defaults.replicas)?,
        duplicate_window: Duration::from_secs(parsed(
            "DUPLICATE_WINDOW_SECS",
            defaults.duplicate_window.as_secs(),
        )?),
        ..defaults
    })
}
