//! Cách ly — quarantine: an auditor's recorded decision to set aside one stored message that
//! breaks the record (not a commit of this product, or an event outside its aggregate's hash
//! chain), so that the read side may continue past it.
//!
//! A projection never skips such a message by itself: it stops there, loudly, and stays stopped.
//! Only this decision — an event of its own, hash-chained like any other, naming who decided, why,
//! and the digest of exactly the message set aside — lets it continue. The projections and the
//! verification check the decision against the message before they honour it.
//!
//! One instance per stream sequence, identified by that sequence in decimal: the decision for a
//! message is found with one read of its subject (`events.quarantine.187`). A message is
//! quarantined once; a different decision for the same sequence is refused.

use std::fmt;
use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::actor::Role;
use crate::context::Context;
use crate::ledger::{MAX_SAFE_INTEGER, is_sha256_hex};
use crate::rejection::{Rejection, Rule};
use crate::text::{Reason, Text, TextError};

/// Who may quarantine a message. Setting a message aside signs off a break in the tamper-evident
/// record, which is the auditors' call: they verify the log, and they change no plan data — so
/// the offices whose own records a break might concern cannot wave it through.
pub const DECIDED_BY: &[Role] = &[Role::Auditor];

/// The subject a stored message was published on, as the stream holds it.
pub type MessageSubject = Text<1000>;

/// Mã cách ly — the identity of one decision: the stream sequence of the message, in decimal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct QuarantineId(String);

impl QuarantineId {
    pub fn of(sequence: NonZeroU64) -> Self {
        Self(sequence.to_string())
    }

    /// Exactly the decimal form of a sequence (no sign, no leading zero): the identifier becomes
    /// a NATS subject token, and one sequence must have one subject.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        raw.parse::<NonZeroU64>()
            .ok()
            .map(Self::of)
            .filter(|id| id.0 == raw)
            .ok_or_else(|| TextError::BadIdentifier(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QuarantineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for QuarantineId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|_| {
            serde::de::Error::custom(format!("{raw:?} is not a stream sequence in decimal"))
        })
    }
}

/// Cách ly thông điệp — set aside the message stored at `sequence`. The command names what the
/// decision is about (subject, digest, size), so that nobody honours it for another message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineMessage {
    /// The stream sequence of the message.
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub sequence: NonZeroU64,
    /// The subject it was published on.
    pub subject: MessageSubject,
    /// SHA-256 (lowercase hex) over the subject's UTF-8 bytes, one line feed (0x0A), and the
    /// payload's bytes exactly as stored (a subject holds no whitespace, so the separator is
    /// unambiguous).
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub digest: String,
    /// The payload's size in bytes.
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub size: u64,
    /// Why it is set aside: what went wrong, and why it may be.
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum QuarantineEvent {
    /// A stored message is set aside; who decided is the envelope's actor.
    MessageQuarantined(QuarantineMessage),
}

/// The decision taken, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub decision: QuarantineMessage,
}

pub type State = Option<Quarantine>;

pub fn evolve(_: State, event: &QuarantineEvent) -> State {
    match event {
        QuarantineEvent::MessageQuarantined(decision) => Some(Quarantine {
            decision: decision.clone(),
        }),
    }
}

/// Records the decision, once: the same decision again changes nothing, another one is refused.
pub fn quarantine(
    state: &State,
    cmd: &QuarantineMessage,
    ctx: &Context,
) -> Result<Vec<QuarantineEvent>, Rejection> {
    ctx.require_role(DECIDED_BY, "quarantine a stored message")?;
    if !is_sha256_hex(&cmd.digest) {
        return Err(Rejection::rule(
            Rule::InvalidDigest,
            "a digest is 64 lowercase hex characters",
        ));
    }
    match state {
        None => Ok(vec![QuarantineEvent::MessageQuarantined(cmd.clone())]),
        Some(taken) if &taken.decision == cmd => Ok(vec![]),
        Some(taken) => Err(Rejection::rule(
            Rule::QuarantineConflict,
            format!(
                "stream sequence {} is already quarantined (digest {}, reason: {}); a decision is not changed",
                taken.decision.sequence, taken.decision.digest, taken.decision.reason
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_exactly_a_sequence_in_decimal() {
        let id = QuarantineId::parse("187").expect("an id");
        assert_eq!(
            id,
            QuarantineId::of(NonZeroU64::new(187).expect("non-zero"))
        );
        for bad in [
            "0",
            "0187",
            "+187",
            "-1",
            "18 7",
            "",
            "x",
            "18446744073709551616",
        ] {
            assert!(QuarantineId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
