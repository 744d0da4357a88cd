//! Loading a seed file through the command handler — the same decisions a user's commands get —
//! never by writing events or rows directly.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use command_api::config::stream_settings;
use command_api::handler::{CommandHandler, CommandRequest, HandlerSettings};
use event_store::Repository;
use remediation_domain::calendar::start_of_local_day;
use remediation_domain::seed::Seed;
use remediation_domain::{Actor, Role};

/// Loads `file` and prints what changed.
pub async fn load(nats_url: &str, file: &Path) -> Result<(), String> {
    let json = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let seed = Seed::from_json(&json).map_err(|e| format!("{}: {e}", file.display()))?;
    let (client, js) =
        command_api::connect_nats(nats_url, "remediation-admin", Duration::from_secs(5)).await?;
    let store = command_api::open_store(&js, &stream_settings()?).await?;
    let handler = CommandHandler::new(
        Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
        HandlerSettings::default(),
    );
    let actor = Actor {
        user: "seed-loader".to_owned(),
        unit: None,
        role: Role::ProvinceOffice,
    };
    // The plan's facts hold from its issue date: assignments made by the plan count from then.
    let effective_at = start_of_local_day(seed.plan.issued_on);
    let (mut changed, mut unchanged, mut events) = (0, 0, 0);
    let commands = seed.commands();
    for command in &commands {
        let answer = handler
            .handle(CommandRequest {
                command: command.clone(),
                actor: actor.clone(),
                correlation_id: Some(format!("seed:{}", seed.plan.plan_id)),
                causation_id: None,
                effective_at: Some(effective_at),
                idempotency: None,
            })
            .await
            .map_err(|e| format!("{} failed: {e}", command.name()))?;
        if answer.status == 201 {
            changed += 1;
            events += answer.body["events"].as_array().map_or(0, Vec::len);
        } else {
            unchanged += 1;
        }
    }
    client.flush().await.map_err(|e| e.to_string())?;
    println!(
        "seed {}: {} commands, {changed} changed ({events} events appended), {unchanged} already in place",
        seed.plan.code,
        commands.len()
    );
    Ok(())
}
