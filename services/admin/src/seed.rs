//! `remediation-admin seed`: reads a seed file and loads it through the command handler.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use command_app::handler::{CommandHandler, HandlerSettings};
use command_app::seed::load_seed;
use event_store::Repository;
use remediation_domain::seed::Seed;
use service_kit::config::stream_settings;

use crate::nats::NatsArgs;

/// Loads `file` and prints what changed.
pub async fn load(nats: &NatsArgs, file: &Path) -> Result<(), String> {
    let json = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let seed = Seed::from_json(&json).map_err(|e| format!("{}: {e}", file.display()))?;
    let (client, js) = nats
        .connect("remediation-admin", Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let store = service_kit::open_store(&js, &stream_settings().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let handler = CommandHandler::new(
        Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
        HandlerSettings::default(),
    );
    let report = load_seed(&handler, &seed)
        .await
        .map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
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
