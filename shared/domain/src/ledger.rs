//! Sổ chuỗi băm — the ledger of digests over all hash chains.
//!
//! Every event is linked into its aggregate's hash chain by the event store. Periodically a
//! digest over every chain's head is recorded here, as an event like any other: rewriting
//! history wholesale would then have to agree with digests that were themselves published and
//! copied downstream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::context::Context;
use crate::rejection::{Rejection, Rule};

/// The largest integer every JSON reader holds exactly (2^53 − 1): far beyond any stream
/// sequence or count, and what the schema promises clients.
pub(crate) const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// The ledger's one identity.
pub const LEDGER_ID: &str = "chains";

/// Ghi nhận bản tóm lược — record a digest of all chains up to a stream sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordDigest {
    /// The stream sequence the digest covers, inclusive.
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub up_to_sequence: u64,
    /// How many aggregate chains and events it covers.
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub chains: u64,
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub events: u64,
    /// SHA-256 (lowercase hex) over the sorted `aggregate=head` lines.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum LedgerEvent {
    DigestRecorded(RecordDigest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub last: RecordDigest,
}

pub type State = Option<Ledger>;

pub fn evolve(_: State, event: &LedgerEvent) -> State {
    match event {
        LedgerEvent::DigestRecorded(digest) => Some(Ledger {
            last: digest.clone(),
        }),
    }
}

/// Whether `digest` is a SHA-256 written as 64 lowercase hex characters.
pub(crate) fn is_sha256_hex(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn record(
    state: &State,
    cmd: &RecordDigest,
    ctx: &Context,
) -> Result<Vec<LedgerEvent>, Rejection> {
    ctx.require_role(
        &[Role::Auditor, Role::ProvinceOffice],
        "record chain digests",
    )?;
    if !is_sha256_hex(&cmd.digest) {
        return Err(Rejection::rule(
            Rule::InvalidDigest,
            "a digest is 64 lowercase hex characters",
        ));
    }
    match state {
        Some(ledger) if &ledger.last == cmd => Ok(vec![]),
        Some(ledger) if ledger.last.up_to_sequence >= cmd.up_to_sequence => Err(Rejection::rule(
            Rule::InvalidDigest,
            format!(
                "a digest up to stream sequence {} is already recorded",
                ledger.last.up_to_sequence
            ),
        )),
        _ => Ok(vec![LedgerEvent::DigestRecorded(cmd.clone())]),
    }
}
