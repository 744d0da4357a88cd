//! Loading a plan seed through the command handler — the same decisions a user's commands get —
//! never by writing events or rows directly. A second load decides to change nothing.

use remediation_domain::calendar::start_of_local_day;
use remediation_domain::seed::Seed;
use remediation_domain::{Actor, Principal, Role};

use crate::handler::{CommandHandler, CommandRequest};
use crate::outcome::CommandError;
use remediation_domain::Rejection;

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub commands: usize,
    pub changed: usize,
    pub events: usize,
}

/// Sends every command of `seed` as the province office, effective from the plan's issue date:
/// the plan's assignments hold from the day it was signed.
/// Why a seed did not load completely; the commands before the failing one are in the store.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Failed(#[from] CommandError),
    #[error("the seed's command {command} was refused: {rejection}")]
    Refused {
        command: &'static str,
        rejection: Rejection,
    },
}

pub async fn load_seed(handler: &CommandHandler, seed: &Seed) -> Result<SeedReport, SeedError> {
    let principal = Principal::from(Actor {
        user: "seed-loader".to_owned(),
        unit: None,
        role: Role::ProvinceOffice,
    });
    let effective_at = start_of_local_day(seed.plan.issued_on);
    let commands = seed.commands();
    let mut report = SeedReport {
        commands: commands.len(),
        changed: 0,
        events: 0,
    };
    for command in commands {
        let name = command.name();
        let answer = handler
            .handle(CommandRequest {
                command,
                principal: principal.clone(),
                correlation_id: Some(format!("seed:{}", seed.plan.plan_id)),
                causation_id: None,
                effective_at: Some(effective_at),
                idempotency: None,
            })
            .await
            .inspect_err(|e| tracing::error!(command = name, error = %e, "seed command failed"))?;
        let receipt = answer.settled.map_err(|rejection| {
            tracing::error!(command = name, %rejection, "seed command refused");
            SeedError::Refused {
                command: name,
                rejection,
            }
        })?;
        if receipt.changed {
            report.changed += 1;
            report.events += receipt.events.len();
        }
    }
    Ok(report)
}
