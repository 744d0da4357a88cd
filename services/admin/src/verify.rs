//! `remediation-admin verify`: walks the stream and the audit table and checks every hash
//! chain; optionally records the digest over all chain heads as an event.
//!
//! A break in the stream does not skip the table: it is walked up to the last commit the stream
//! walk could check, and the report says how many rows that was. Breaks an auditor signed off
//! (quarantine decisions that hold) are listed and do not fail the verification. The walks take as long as the
//! data is long, so the connection's slow-statement warnings (which would land in the report,
//! on stdout, with the logs) are off, and a progress bar on the terminal shows how far they got.

use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use command_app::handler::{CommandHandler, CommandRequest, HandlerSettings};
use command_app::outcome::CommandError;
use event_store::{
    Repository, SignedOffBreak, StoreError, Verification, digest, verify_stream_reporting,
};
use indicatif::{ProgressBar, ProgressStyle};
use readmodel::verify_audit;
use remediation_domain::ledger::RecordDigest;
use remediation_domain::{Actor, Command, Rejection, Role};
use service_kit::NatsError;
use service_kit::config::{ConfigError, stream_settings};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

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

/// Why the verification failed: a broken record, or the walk could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Every broken link found, worded for the operator.
    #[error("BROKEN: {}", .0.join("; BROKEN: "))]
    Broken(Vec<String>),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Stream(#[from] async_nats::jetstream::context::GetStreamError),
    #[error(transparent)]
    StreamInfo(#[from] async_nats::jetstream::stream::InfoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--database-url: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The domain refused to record the digest.
    #[error(transparent)]
    Refused(Rejection),
    #[error(transparent)]
    Flush(#[from] async_nats::client::FlushError),
}

/// A progress bar on stderr for the walks, drawn only on a terminal (the report on stdout stays
/// as it is when piped, and a log collector sees no bar).
fn bar(what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0).with_message(what);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:13} [{bar:30}] {pos}/{len} sequences  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-"),
    );
    bar
}

pub async fn run(nats: &NatsArgs, args: VerifyArgs) -> Result<(), VerifyError> {
    let (client, js) = nats
        .connect("remediation-verify", Duration::from_secs(10))
        .await?;
    let settings = stream_settings()?;
    let stream = js.get_stream(&settings.name).await?;
    let progress = bar("stream");
    let verification = verify_stream_reporting(&stream, |sequence, head| {
        progress.set_length(head);
        progress.set_position(sequence);
    })
    .await?;
    progress.finish_and_clear();
    let last_sequence = verification.last_sequence;
    let counts = format!(
        "{} commits, {} events, {} chains, up to sequence {last_sequence}",
        verification.commits,
        verification.events,
        verification.heads.len()
    );
    let signed_off = match verification.quarantined.len() {
        0 => String::new(),
        1 => ", 1 break signed off".to_owned(),
        n => format!(", {n} breaks signed off"),
    };
    let mut breaks = Vec::new();
    match &verification.broken {
        None => println!("stream OK: {counts}{signed_off}"),
        Some(broken) => {
            println!(
                "stream BROKEN at sequence {}: checked {counts}",
                broken.sequence
            );
            breaks.push(format!(
                "stream sequence {}, aggregate {}: {}",
                broken.sequence, broken.aggregate, broken.reason
            ));
        }
    }
    for known in &verification.quarantined {
        println!("{}", describe(known));
    }
    match &args.database_url {
        None => println!("audit table not checked: no --database-url (or DATABASE_URL) given"),
        Some(url) => {
            if let Some(broken) =
                check_table(url, &args.audit_schema, &stream, &verification).await?
            {
                breaks.push(broken);
            }
        }
    }
    if !breaks.is_empty() {
        return Err(VerifyError::Broken(breaks));
    }
    let digest = digest(
        verification
            .heads
            .iter()
            .map(|(a, h)| (a.as_str(), h.as_str())),
    );
    println!("digest over all chain heads: {digest}");
    if args.record_digest {
        let store = service_kit::open_store(&js, &settings).await?;
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
                principal: Actor {
                    user: "verifier".to_owned(),
                    unit: None,
                    role: Role::Auditor,
                }
                .into(),
                correlation_id: None,
                causation_id: None,
                effective_at: None,
                idempotency: None,
            })
            .await?
            .settled
            .map_err(VerifyError::Refused)?;
        println!(
            "digest recorded at stream sequence {}",
            answer.stream_sequence
        );
    }
    client.flush().await?;
    Ok(())
}

/// One signed-off break, on one line.
fn describe(known: &SignedOffBreak) -> String {
    let decision = &known.decision;
    format!(
        "signed-off break at stream sequence {} ({}, digest {}): {}; quarantined by {} ({}) at stream sequence {}: {}",
        decision.sequence,
        decision.subject,
        decision.digest,
        known.broken.reason,
        decision.decided_by,
        decision.decided_role,
        decision.decision_sequence,
        decision.reason
    )
}

/// Walks the audit table up to where the stream walk got and prints what it found; returns the
/// table's first broken link, worded for the error.
async fn check_table(
    url: &str,
    schema: &str,
    stream: &Stream,
    verification: &Verification,
) -> Result<Option<String>, VerifyError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(VerifyError::DatabaseUrl)?
        .application_name("remediation-verify")
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(VerifyError::Connect)?;
    // One snapshot: the newest row and the walk agree.
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let last_sequence = verification.last_sequence;
    let progress = bar("audit table");
    progress.set_length(last_sequence);
    let audit = verify_audit(&mut tx, schema, verification, |sequence| {
        progress.set_position(sequence)
    })
    .await?;
    progress.finish_and_clear();
    let quarantined = match audit.quarantined {
        0 => String::new(),
        1 => " and 1 quarantined message".to_owned(),
        n => format!(" and {n} quarantined messages"),
    };
    let checked = format!(
        "{} events{quarantined}, up to sequence {}",
        audit.rows, audit.checkpoint
    );
    let until_break = if verification.broken.is_some() {
        " (walked up to the stream's break)"
    } else {
        ""
    };
    let expected = verification.events_up_to(audit.checkpoint);
    let broken = if let Some(broken) = &audit.broken {
        Some(format!(
            "audit table at stream sequence {}, aggregate {}: {}",
            broken.sequence, broken.aggregate, broken.reason
        ))
    } else if audit.rows != expected {
        Some(format!(
            "audit table holds {} events up to sequence {}, the stream {expected}",
            audit.rows, audit.checkpoint
        ))
    } else if audit.newest > last_sequence {
        let head = stream.get_info().await?.state.last_sequence;
        audit.beyond(head).map(|broken| broken.reason)
    } else {
        None
    };
    match &broken {
        None => println!("audit table OK: {checked}{until_break}"),
        Some(_) => println!("audit table BROKEN after {checked} checked{until_break}"),
    }
    Ok(broken)
}
