//! `remediation-admin quarantine`: an auditor sets aside one stored message that breaks the
//! record, so that the projections stopped at it continue. Shows the message it is about to set
//! aside (subject, size, digest) and what is wrong with it, then records the decision — or, with
//! `--dry-run`, only shows. See `command_app::quarantine` for what is refused.

use std::num::NonZeroUsize;
use std::time::Duration;

use command_app::handler::{CommandHandler, HandlerSettings};
use command_app::quarantine::{Inspection, QuarantineError, inspect, record};
use event_store::Repository;
use service_kit::NatsError;
use service_kit::config::{ConfigError, stream_settings};

use crate::nats::NatsArgs;

/// Which message, why, and who decides.
#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// Stream sequence of the message (where the projections stopped: see /readyz).
    #[arg(long)]
    sequence: u64,
    /// Why it may be set aside: what went wrong (recorded in the decision, shown in the audit
    /// trail and by every verification).
    #[arg(long, required_unless_present = "dry_run")]
    reason: Option<String>,
    /// The auditor deciding (recorded as the decision's actor).
    #[arg(long, required_unless_present = "dry_run")]
    user: Option<String>,
    /// Only show the message and what is wrong with it.
    #[arg(long)]
    dry_run: bool,
}

fn show(inspection: &Inspection) {
    let message = &inspection.message;
    println!("stream sequence {}", message.sequence);
    println!("  subject:   {}", message.subject);
    println!("  stored at: {}", message.stored_at.to_rfc3339());
    println!("  size:      {} bytes", message.payload.len());
    println!("  digest:    {}", inspection.digest);
    println!("  problem:   {}", inspection.problem);
    if let Some(decision) = &inspection.signed_off {
        println!(
            "  already quarantined by {} ({}) at stream sequence {}: {}",
            decision.decided_by, decision.decided_role, decision.decision_sequence, decision.reason
        );
    }
}

/// Why nothing (or not everything) was set aside.
#[derive(Debug, thiserror::Error)]
pub enum SetAsideError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Stream(#[from] async_nats::jetstream::context::GetStreamError),
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error("--reason and --user are required unless --dry-run")]
    Undecided,
    #[error(transparent)]
    Flush(#[from] async_nats::client::FlushError),
}

pub async fn run(nats: &NatsArgs, args: QuarantineArgs) -> Result<(), SetAsideError> {
    let (client, js) = nats
        .connect("remediation-quarantine", Duration::from_secs(10))
        .await?;
    let settings = stream_settings()?;
    let stream = js.get_stream(&settings.name).await?;
    let inspection = inspect(&stream, args.sequence).await?;
    show(&inspection);
    if args.dry_run {
        return Ok(());
    }
    let (Some(reason), Some(user)) = (args.reason, args.user) else {
        return Err(SetAsideError::Undecided);
    };
    let store = service_kit::open_store(&js, &settings).await?;
    let handler = CommandHandler::new(
        Repository::new(store, NonZeroUsize::new(16).expect("non-zero")),
        HandlerSettings::default(),
    );
    let receipt = record(&handler, &inspection, &reason, &user).await?;
    let at = receipt.stream_sequence;
    if receipt.changed {
        println!("quarantined: the decision is recorded at stream sequence {at}");
    } else {
        println!("unchanged: this very decision is recorded at stream sequence {at}");
    }
    client.flush().await?;
    Ok(())
}
