//! Quarantining a stored message that breaks the record — what `remediation-admin quarantine`
//! does. The message is read from the stream itself and checked with the stream verification's
//! own walk, so what is shown is what the projections and the verification refuse; a message
//! that breaks nothing is not set aside. The auditor's decision then goes through the command
//! handler like every command: hash-chained, on its own subject, decided by the domain.

use std::num::NonZeroU64;

use async_nats::jetstream::stream;
use event_store::{
    Broken, SignedOff, StoreError, StoredMessage, decode_commit, stored_message,
    verify_stream_until,
};
use remediation_domain::quarantine::{MessageSubject, QuarantineMessage};
use remediation_domain::text::{Reason, TextError};
use remediation_domain::{Actor, Command, Principal, Rejection, Role};

use crate::handler::{CommandHandler, CommandRequest};
use crate::outcome::{CommandError, Receipt};

/// The message at a sequence and what is wrong with it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub message: StoredMessage,
    /// What the decision must name: see [`event_store::message_digest`].
    pub digest: String,
    /// Why the projections and the verification refuse it.
    pub problem: String,
    /// The decision that already sets it aside, if one does.
    pub signed_off: Option<SignedOff>,
}

/// Why a message is not quarantined.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("the stream holds no message at sequence {0}")]
    NoMessage(u64),
    #[error(
        "the stream breaks first at sequence {} ({}): the projections stop there first; set that one aside first, if it is one to sign off",
        .0.sequence, .0.reason
    )]
    EarlierBreak(Broken),
    #[error(
        "the message at sequence {0} is a commit whose every event links into its aggregate's hash chain: there is no break to sign off"
    )]
    Valid(u64),
    #[error(
        "the message at sequence {sequence} links into its aggregate's hash chain, but this build cannot read it ({reason}): it is part of the record, and setting it aside would break the chain after it; deploy a build that knows it instead"
    )]
    PartOfTheRecord { sequence: u64, reason: String },
    #[error("reason: {0}")]
    Reason(TextError),
    #[error("the message's subject cannot be named in a decision: {0}")]
    Subject(TextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The domain refused the decision: another decision sets the message aside already.
    #[error(transparent)]
    Refused(Rejection),
}

/// What to quarantine, why, and who decides (as an auditor).
#[derive(Debug, Clone)]
pub struct QuarantineRequest {
    pub sequence: u64,
    pub reason: String,
    pub user: String,
}

/// The message at `sequence` and why it breaks the record; an error when it does not, or when
/// the stream breaks earlier (the projections never get to it before that is settled).
pub async fn inspect(
    stream: &stream::Stream,
    sequence: u64,
) -> Result<Inspection, QuarantineError> {
    let message = stored_message(stream, sequence)
        .await?
        .ok_or(QuarantineError::NoMessage(sequence))?;
    let inspection = |problem: String, signed_off: Option<SignedOff>| Inspection {
        digest: message.digest(),
        message: message.clone(),
        problem,
        signed_off,
    };
    let walked = verify_stream_until(stream, sequence, |_, _| {}).await?;
    if let Some(broken) = walked.broken {
        return if broken.sequence < sequence {
            Err(QuarantineError::EarlierBreak(broken))
        } else {
            Ok(inspection(broken.reason, None))
        };
    }
    if let Some(known) = walked
        .quarantined
        .into_iter()
        .find(|known| known.decision.sequence == sequence)
    {
        return Ok(inspection(known.broken.reason, Some(known.decision)));
    }
    // Linked into its chains: the core projection may still fail to read an event of it (a
    // type from a newer build), but that is the record, not a break to sign off.
    let commit = decode_commit(sequence, &message.payload)?;
    for event in &commit.events {
        event
            .decode()
            .map_err(|e| QuarantineError::PartOfTheRecord {
                sequence,
                reason: e.to_string(),
            })?;
    }
    Err(QuarantineError::Valid(sequence))
}

/// Inspects the message and records the auditor's decision to set it aside (see [`record`]).
pub async fn quarantine(
    handler: &CommandHandler,
    stream: &stream::Stream,
    request: &QuarantineRequest,
) -> Result<(Inspection, Receipt), QuarantineError> {
    Reason::new(&request.reason).map_err(QuarantineError::Reason)?;
    let inspection = inspect(stream, request.sequence).await?;
    let receipt = record(handler, &inspection, &request.reason, &request.user).await?;
    Ok((inspection, receipt))
}

/// Records `user`'s decision, as an auditor, to set aside the message `inspection` found, naming
/// its subject, digest and size. Repeating the same decision changes nothing; another
/// decision for the same message is refused.
pub async fn record(
    handler: &CommandHandler,
    inspection: &Inspection,
    reason: &str,
    user: &str,
) -> Result<Receipt, QuarantineError> {
    let reason = Reason::new(reason).map_err(QuarantineError::Reason)?;
    let sequence = NonZeroU64::new(inspection.message.sequence)
        .ok_or(QuarantineError::NoMessage(inspection.message.sequence))?;
    let command = Command::QuarantineMessage(QuarantineMessage {
        sequence,
        subject: MessageSubject::new(&inspection.message.subject)
            .map_err(QuarantineError::Subject)?,
        digest: inspection.digest.clone(),
        size: inspection.message.payload.len() as u64,
        reason,
    });
    let answer = handler
        .handle(CommandRequest {
            command,
            principal: Principal::from(Actor {
                user: user.to_owned(),
                unit: None,
                role: Role::Auditor,
            }),
            correlation_id: Some(format!("quarantine:{sequence}")),
            causation_id: None,
            effective_at: None,
            idempotency: None,
        })
        .await?;
    answer.settled.map_err(QuarantineError::Refused)
}
