//! `remediation-admin verify`: walks the stream and the audit table and checks every hash
//! chain; optionally records the digest over all chain heads as an event.

use std::num::NonZeroUsize;
use std::time::Duration;

use command_api::config::stream_settings;
use command_api::handler::{CommandHandler, CommandRequest, HandlerSettings};
use event_store::{Repository, digest, verify_stream};
use readmodel::verify_audit;
use remediation_domain::ledger::RecordDigest;
use remediation_domain::{Actor, Command, Role};

use crate::nats::NatsArgs;

/// What to check and whether to record the digest.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Also check the audit table of this database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Schema of the audit projection.
    #[arg(long, default_value = "audit")]
    audit_schema: String,
    /// Record the digest over all chain heads as a `ledger.digest_recorded` event.
    #[arg(long)]
    record_digest: bool,
}

pub async fn run(nats: &NatsArgs, args: VerifyArgs) -> Result<(), String> {
    let (client, js) = nats
        .connect("remediation-verify", Duration::from_secs(10))
        .await?;
    let settings = stream_settings()?;
    let stream = js
        .get_stream(&settings.name)
        .await
        .map_err(|e| e.to_string())?;
    let verification = verify_stream(&stream).await.map_err(|e| e.to_string())?;
    if let Some(broken) = &verification.broken {
        return Err(format!(
            "BROKEN: stream sequence {}, aggregate {}: {}",
            broken.sequence, broken.aggregate, broken.reason
        ));
    }
    let last_sequence = verification.last_sequence;
    println!(
        "stream OK: {} commits, {} events, {} chains, up to sequence {last_sequence}",
        verification.commits,
        verification.events,
        verification.heads.len()
    );
    if let Some(url) = &args.database_url {
        let pool = sqlx::PgPool::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let audit = verify_audit(
            &pool,
            &args.audit_schema,
            &verification.event_hashes,
            last_sequence,
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(broken) = &audit.broken {
            return Err(format!(
                "BROKEN: audit table at stream sequence {}, aggregate {}: {}",
                broken.sequence, broken.aggregate, broken.reason
            ));
        }
        let expected = verification.events_up_to(audit.checkpoint);
        if audit.rows != expected {
            return Err(format!(
                "BROKEN: audit table holds {} events up to sequence {}, the stream {expected}",
                audit.rows, audit.checkpoint
            ));
        }
        if audit.newest > last_sequence {
            let head = stream
                .get_info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            if let Some(broken) = audit.beyond(head) {
                return Err(format!("BROKEN: {}", broken.reason));
            }
        }
        println!(
            "audit table OK: {} events, up to sequence {}",
            audit.rows, audit.checkpoint
        );
    }
    let digest = digest(
        verification
            .heads
            .iter()
            .map(|(a, h)| (a.as_str(), h.as_str())),
    );
    println!("digest over all chain heads: {digest}");
    if args.record_digest {
        let store = command_api::open_store(&js, &settings).await?;
        let handler = CommandHandler::new(
            Repository::new(store, NonZeroUsize::new(16).expect("non-zero")),
            HandlerSettings::default(),
        );
        let answer = handler
            .handle(CommandRequest {
                command: Command::RecordDigest(RecordDigest {
                    up_to_sequence: last_sequence,
                    chains: verification.heads.len() as u64,
                    events: verification.events,
                    digest,
                }),
                actor: Actor {
                    user: "verifier".to_owned(),
                    unit: None,
                    role: Role::Auditor,
                },
                correlation_id: None,
                causation_id: None,
                effective_at: None,
                idempotency: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "digest recorded at stream sequence {}",
            answer.body["stream_sequence"]
        );
    }
    client.flush().await.map_err(|e| e.to_string())
}
