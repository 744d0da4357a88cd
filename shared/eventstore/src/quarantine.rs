//! Quarantine decisions as the stream holds them: finding the decision for a message and checking
//! that it really sets aside that very message.
//!
//! A stored message that breaks the record (not a commit, or an event outside its aggregate's
//! hash chain) stops every reader that checks the record: the projections and the verification
//! walk. An auditor's `quarantine.message_quarantined` event, recorded after it on the subject
//! `<prefix>.quarantine.<sequence>`, lets them continue — once they have checked it here: a
//! decision decodes, is the first link of its own chain, was taken by a role that may decide,
//! names this sequence and subject, and carries the digest and size of exactly the message stored
//! there. Anything else leaves the break standing.

use async_nats::jetstream::stream::{self, RawMessageErrorKind};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use remediation_domain::Event;
use remediation_domain::quarantine::{DECIDED_BY, QuarantineEvent};
use sha2::{Digest, Sha256};

use crate::chain::verify_link;
use crate::{StoreError, decode_commit};

/// One message exactly as the stream stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub sequence: u64,
    pub subject: String,
    pub payload: Bytes,
    /// When JetStream stored it (its own clock, not the message's say-so).
    pub stored_at: DateTime<Utc>,
}

impl StoredMessage {
    /// [`message_digest`] of this message.
    pub fn digest(&self) -> String {
        message_digest(&self.subject, &self.payload)
    }
}

/// The digest a quarantine decision names: SHA-256 (lowercase hex) over the subject's UTF-8
/// bytes, one line feed, and the payload's bytes as stored. Subjects hold no whitespace, so
/// no other subject and payload give the same bytes.
pub fn message_digest(subject: &str, payload: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(subject.as_bytes());
    hasher.update(b"\n");
    hasher.update(payload);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JetStream's timestamps, as the rest of the product holds instants.
pub(crate) fn utc(at: async_nats::datetime::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

/// The message stored at `sequence`; `Ok(None)` when the stream holds none there.
pub async fn stored_message(
    stream: &stream::Stream,
    sequence: u64,
) -> Result<Option<StoredMessage>, StoreError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(StoredMessage {
            sequence,
            subject: message.subject.to_string(),
            payload: message.payload,
            stored_at: utc(message.time),
        })),
        Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(StoreError::unavailable(e)),
    }
}

/// A message set aside by a decision that holds: what was set aside, by whom, why, and where the
/// decision is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOff {
    pub sequence: u64,
    pub subject: String,
    pub digest: String,
    pub size: u64,
    /// The auditor's reason.
    pub reason: String,
    pub decided_by: String,
    pub decided_role: String,
    /// Stream sequence of the decision's commit (always after `sequence`).
    pub decision_sequence: u64,
    /// When the decision was recorded.
    pub decided_at: DateTime<Utc>,
}

/// Why a message is not (or not yet) set aside.
#[derive(Debug, thiserror::Error)]
pub enum NotSignedOff {
    #[error("no quarantine decision names stream sequence {0}")]
    NoDecision(u64),
    #[error("the quarantine decision at stream sequence {decision} does not hold: {reason}")]
    Invalid {
        decision: u64,
        reason: DecisionFault,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `<prefix>.quarantine.<sequence>`, with the prefix the stream was provisioned with
/// (`<prefix>.>`), so that every reader finds the subject the command side writes to.
fn decision_subject(stream: &stream::Stream, sequence: u64) -> Result<String, StoreError> {
    let config = &stream.cached_info().config;
    config
        .subjects
        .iter()
        .find_map(|subject| subject.strip_suffix(".>"))
        .map(|prefix| format!("{prefix}.quarantine.{sequence}"))
        .ok_or_else(|| {
            StoreError::Misconfigured(format!(
                "stream {} has no subjects of the form <prefix>.>",
                config.name
            ))
        })
}

/// The decision that sets `message` aside, checked against it: the first commit on the
/// decision's subject after the message (a decision cannot precede what it names).
pub async fn signed_off(
    stream: &stream::Stream,
    message: &StoredMessage,
) -> Result<SignedOff, NotSignedOff> {
    let subject = decision_subject(stream, message.sequence)?;
    signed_off_on(stream, &subject, message).await
}

/// [`signed_off`], the decision's subject given.
pub(crate) async fn signed_off_on<I>(
    stream: &stream::Stream<I>,
    subject: &str,
    message: &StoredMessage,
) -> Result<SignedOff, NotSignedOff> {
    let found = stream
        .raw_message_builder()
        .sequence(message.sequence + 1)
        .next_by_subject(subject.to_owned())
        .send()
        .await;
    match found {
        Ok(decision) => {
            check_decision(message, decision.sequence, &decision.payload).map_err(|reason| {
                NotSignedOff::Invalid {
                    decision: decision.sequence,
                    reason,
                }
            })
        }
        Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => {
            Err(NotSignedOff::NoDecision(message.sequence))
        }
        Err(e) => Err(StoreError::unavailable(e).into()),
    }
}

/// The message stored at `sequence` and the decision that sets it aside. A sequence the stream
/// holds no message at has nothing to set aside.
pub async fn signed_off_at(
    stream: &stream::Stream,
    sequence: u64,
) -> Result<(StoredMessage, SignedOff), NotSignedOff> {
    let message = stored_message(stream, sequence)
        .await?
        .ok_or(NotSignedOff::NoDecision(sequence))?;
    let decision = signed_off(stream, &message).await?;
    Ok((message, decision))
}

/// Why a stored quarantine decision does not set a message aside.
#[derive(Debug, thiserror::Error)]
pub enum DecisionFault {
    #[error("it cannot be read: {0}")]
    Unreadable(StoreError),
    #[error("a decision is one event; the commit holds {0}")]
    NotOneEvent(usize),
    #[error("it is an event of {kind}/{id}, not of quarantine/{expected}")]
    OtherAggregate {
        kind: String,
        id: String,
        expected: u64,
    },
    #[error("it is not the first link of its chain: {0}")]
    NotFirstLink(String),
    #[error("{0} is not a quarantine decision")]
    NotADecision(String),
    #[error("it was taken by role {0}, which may not quarantine")]
    RoleMayNotDecide(String),
    #[error("it names stream sequence {0}")]
    OtherSequence(u64),
    #[error("it names subject {named}, the message's is {actual}")]
    OtherSubject { named: String, actual: String },
    #[error(
        "it names digest {named} ({named_size} bytes), the message stored there has digest {actual} ({actual_size} bytes)"
    )]
    OtherDigest {
        named: String,
        named_size: u64,
        actual: String,
        actual_size: u64,
    },
}

/// Whether the commit `payload` stored at `decision_sequence` is a decision that holds for
/// `message`; why not otherwise.
fn check_decision(
    message: &StoredMessage,
    decision_sequence: u64,
    payload: &[u8],
) -> Result<SignedOff, DecisionFault> {
    let commit = decode_commit(decision_sequence, payload).map_err(DecisionFault::Unreadable)?;
    let [event] = commit.events.as_slice() else {
        return Err(DecisionFault::NotOneEvent(commit.events.len()));
    };
    if event.aggregatetype != "quarantine" || event.aggregateid != message.sequence.to_string() {
        return Err(DecisionFault::OtherAggregate {
            kind: event.aggregatetype.clone(),
            id: event.aggregateid.clone(),
            expected: message.sequence,
        });
    }
    verify_link("", std::slice::from_ref(event))
        .map_err(|e| DecisionFault::NotFirstLink(e.to_string()))?;
    let Ok(Event::Quarantine(QuarantineEvent::MessageQuarantined(decision))) = event.decode()
    else {
        return Err(DecisionFault::NotADecision(event.event_type.clone()));
    };
    if !DECIDED_BY
        .iter()
        .any(|role| role.as_str() == event.actorrole)
    {
        return Err(DecisionFault::RoleMayNotDecide(event.actorrole.clone()));
    }
    let digest = message.digest();
    let size = message.payload.len() as u64;
    if decision.sequence.get() != message.sequence {
        return Err(DecisionFault::OtherSequence(decision.sequence.get()));
    }
    if decision.subject.as_str() != message.subject {
        return Err(DecisionFault::OtherSubject {
            named: decision.subject.to_string(),
            actual: message.subject.clone(),
        });
    }
    if decision.digest != digest || decision.size != size {
        return Err(DecisionFault::OtherDigest {
            named: decision.digest.to_string(),
            named_size: decision.size,
            actual: digest,
            actual_size: size,
        });
    }
    Ok(SignedOff {
        sequence: message.sequence,
        subject: message.subject.clone(),
        digest,
        size,
        reason: decision.reason.to_string(),
        decided_by: event.actoruser.clone(),
        decided_role: event.actorrole.clone(),
        decision_sequence,
        decided_at: event.time,
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use remediation_domain::quarantine::{QuarantineId, QuarantineMessage};
    use remediation_domain::text::{Reason, Text};
    use remediation_domain::{Actor, AggregateRef, Role};
    use uuid::Uuid;

    use super::*;
    use crate::{CloudEvent, CommandMeta, seal};

    fn message(payload: &'static [u8]) -> StoredMessage {
        StoredMessage {
            sequence: 7,
            subject: "events.bogus.1".to_owned(),
            payload: Bytes::from_static(payload),
            stored_at: DateTime::UNIX_EPOCH,
        }
    }

    /// The commit of a decision about `about`, taken by `role`, linked onto `head`.
    fn decision(about: &StoredMessage, role: Role, head: &str) -> Vec<u8> {
        let sequence = NonZeroU64::new(about.sequence).expect("non-zero");
        let target = AggregateRef::Quarantine(QuarantineId::of(sequence));
        let event = Event::Quarantine(QuarantineEvent::MessageQuarantined(QuarantineMessage {
            sequence,
            subject: Text::new(&about.subject).expect("subject"),
            digest: about.digest(),
            size: about.payload.len() as u64,
            reason: Reason::new("Tin nhắn thử nghiệm gửi nhầm vào luồng").expect("reason"),
        }));
        let command_id = Uuid::now_v7();
        let meta = CommandMeta {
            command_id,
            command_name: "quarantine-message",
            actor: Actor {
                user: "kiem-toan-vien".to_owned(),
                unit: None,
                role,
            },
            correlation_id: command_id.to_string(),
            causation_id: command_id.to_string(),
            recorded_at: Utc::now(),
            effective_at: Utc::now(),
        };
        let mut events = [CloudEvent::new(&target, &event, &meta)];
        seal(head, &mut events);
        serde_json::to_vec(&events).expect("JSON")
    }

    #[test]
    fn the_digest_is_sha256_over_subject_line_feed_and_payload() {
        // Known answer: `printf 'events.bogus.1\nping' | sha256sum`.
        assert_eq!(
            message_digest("events.bogus.1", b"ping"),
            "da491bc3cd202f82f78e3017d41aeffe30288eb6c5051ddb61cfa70602475df1"
        );
        assert_ne!(message_digest("a", b"bc"), message_digest("ab", b"c"));
    }

    #[test]
    fn a_decision_holds_only_for_the_very_message_it_names() {
        let junk = message(b"\x00\xffnot a commit");
        let signed = check_decision(&junk, 9, &decision(&junk, Role::Auditor, ""))
            .expect("the decision holds");
        assert_eq!(
            (signed.sequence, signed.decision_sequence, signed.size),
            (7, 9, 14)
        );
        assert_eq!(signed.decided_by, "kiem-toan-vien");
        assert_eq!(signed.digest, junk.digest());

        let other = message(b"\x00\xffnot a commit!");
        let refused = check_decision(&other, 9, &decision(&junk, Role::Auditor, ""))
            .expect_err("another message");
        assert!(
            matches!(refused, DecisionFault::OtherDigest { .. }),
            "{refused}"
        );

        let refused = check_decision(&junk, 9, &decision(&junk, Role::ProvinceOffice, ""))
            .expect_err("not an auditor");
        assert!(refused.to_string().contains("province_office"), "{refused}");

        let refused = check_decision(&junk, 9, &decision(&junk, Role::Auditor, &"0".repeat(64)))
            .expect_err("a second link");
        assert!(
            matches!(refused, DecisionFault::NotFirstLink(_)),
            "{refused}"
        );

        let refused = check_decision(&junk, 9, b"[]").expect_err("no event");
        assert!(
            matches!(refused, DecisionFault::NotOneEvent(0)),
            "{refused}"
        );
    }
}
