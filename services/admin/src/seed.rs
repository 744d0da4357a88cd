//! `remediation-admin seed`: reads a seed file and loads it through the command handler.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use command_app::handler::{CommandHandler, HandlerSettings};
use command_app::seed::{SeedError as LoadError, load_seed};
use event_store::Repository;
use remediation_domain::seed::Seed;
use service_kit::NatsError;
use service_kit::config::{ConfigError, stream_settings};

use crate::nats::NatsArgs;

/// Why a seed was not (completely) loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Flush(#[from] async_nats::client::FlushError),
}

/// Loads `file` and prints what changed.
pub async fn load(nats: &NatsArgs, file: &Path) -> Result<(), SeedError> {
    let json = std::fs::read_to_string(file).map_err(|source| SeedError::Read {
        path: file.to_owned(),
        source,
    })?;
    let seed = Seed::from_json(&json).map_err(|source| SeedError::Parse {
        path: file.to_owned(),
        source,
    })?;
    let (client, js) = nats
        .connect("remediation-admin", Duration::from_secs(5))
        .await?;
    let store = service_kit::open_store(&js, &stream_settings()?).await?;
    let handler = CommandHandler::new(
        Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
        HandlerSettings::default(),
    );
    let report = load_seed(&handler, &seed).await?;
    client.flush().await?;
    println!(
        "seed {}: {} commands, {} changed ({} events appended), {} already in place",
        seed.plan.code,
        report.commands,
        report.changed,
        report.events,
        report.commands - report.changed
    );
    Ok(())
}
