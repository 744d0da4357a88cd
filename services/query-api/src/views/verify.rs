//! `GET /v1/audit/verify`: the tamper check over HTTP. Walks the whole stream, checking every
//! event's hash and its link to the previous event of its aggregate, then the audit table against
//! it — each row's envelope (reassembled with its payload, the data stored once) against its
//! hash, its chain, and its hash against the stream's — and counts the table's rows against the stream's events.
//! Answers `ok` with the counts and the digest over all chain heads, `signed_off` when the only
//! breaks are messages an auditor set aside with quarantine decisions (listed in `quarantined`),
//! or `broken` with the first broken link that is not: where (stream or audit table), its
//! stream sequence, its aggregate and why.
//!
//! A break in the stream does not skip the table: the table is walked up to the last commit the
//! stream walk could check, so the answer still says how many rows were checked and whether
//! they agree with the stream up to there (what follows the break has nothing checked to be
//! compared with). The table walk reads one snapshot of the audit projection, whose checkpoint
//! the freshness headers carry.
//!
//! The walks are those of `remediation-admin verify`; the answer is recorded as a read of the
//! audit trail ([`crate::reads`]).

use async_nats::jetstream;
use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use chrono::{DateTime, Utc};
use event_store::{
    Broken, SignedOffBreak, Verification as StreamVerification, digest, verify_stream,
};
use readmodel::{Projection, verify_audit};
use schemars::JsonSchema;
use serde::Serialize;

use super::Snapshot;
use crate::access::Caller;
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every hash and link checks, and the audit table holds exactly the stream's events up to
    /// its last row.
    Ok,
    /// As `ok`, except for messages that break the record and that an auditor set aside with a
    /// quarantine decision that holds: known, signed-off breaks, listed in `quarantined`.
    SignedOff,
    /// See `broken`.
    Broken,
}

/// A break an auditor signed off: the message set aside, what is wrong with it, and the decision.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SignedOffBreakView {
    /// Stream sequence of the message.
    pub sequence: u64,
    /// The subject it was published on.
    pub subject: String,
    /// SHA-256 (hex) over the subject, a line feed and the payload bytes.
    pub digest: String,
    /// What breaks: why the walk (and the projections) refuse it.
    pub problem: String,
    /// Why the auditor set it aside.
    pub reason: String,
    pub decided_by: String,
    pub decided_role: String,
    /// Stream sequence of the `quarantine.message_quarantined` event.
    pub decision_sequence: u64,
    pub decided_at: DateTime<Utc>,
}

impl From<&SignedOffBreak> for SignedOffBreakView {
    fn from(known: &SignedOffBreak) -> Self {
        let decision = &known.decision;
        Self {
            sequence: decision.sequence,
            subject: decision.subject.clone(),
            digest: decision.digest.clone(),
            problem: known.broken.reason.clone(),
            reason: decision.reason.clone(),
            decided_by: decision.decided_by.clone(),
            decided_role: decision.decided_role.clone(),
            decision_sequence: decision.decision_sequence,
            decided_at: decision.decided_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Stream,
    AuditTable,
}

/// The first broken link found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BrokenLink {
    /// Whether the stream itself or the audit table (the read model's copy) is broken.
    pub place: Place,
    /// Stream sequence of the commit (or audit row) that does not check.
    pub sequence: u64,
    /// `aggregate type/id`; null when the audit table's row count is what disagrees.
    pub aggregate: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditVerification {
    pub status: Status,
    /// When the walk started.
    pub checked_at: DateTime<Utc>,
    /// Commits (messages), events and aggregate chains in the stream, up to `last_sequence`
    /// (quarantined messages are in none of them).
    pub commits: u64,
    pub events: u64,
    pub chains: u64,
    /// The last stream sequence checked: the stream's last, or the last before its break.
    pub last_sequence: u64,
    /// Rows of the audit table checked: every row up to `last_sequence` (when the stream is
    /// broken, the rows before its break), or those before the table's own first broken link.
    pub audit_rows: u64,
    /// Stream sequence of the last audit row checked.
    pub audit_checkpoint: u64,
    /// Quarantined messages the audit table records (up to `last_sequence`), each checked against
    /// the stream's signed-off break.
    pub audit_quarantined: u64,
    /// Breaks signed off by quarantine decisions, in stream order (up to `last_sequence`).
    pub quarantined: Vec<SignedOffBreakView>,
    /// SHA-256 over the sorted `aggregate=head` lines of every chain (what
    /// `ledger.digest_recorded` events record); null when broken.
    pub digest: Option<String>,
    /// The first broken link: the stream's when the stream is broken (the stream is the
    /// record; the table is its copy), else the audit table's.
    pub broken: Option<BrokenLink>,
    /// The audit table's first broken link within what was walked, whether or not the stream is
    /// broken too.
    pub audit_table_broken: Option<BrokenLink>,
    /// Stream sequence of the `access.audit_read` event that recorded this verification.
    pub read_sequence: u64,
}

fn link(place: Place, broken: &Broken) -> BrokenLink {
    BrokenLink {
        place,
        sequence: broken.sequence,
        aggregate: Some(broken.aggregate.clone()),
        reason: broken.reason.clone(),
    }
}

/// Walks the audit table, in `snapshot`, up to where the stream walk got; fills in its counts
/// and returns its first broken link, if any.
async fn audit_table_break(
    state: &AppState,
    snapshot: &mut Snapshot,
    stream: &jetstream::stream::Stream,
    walked: &StreamVerification,
    answer: &mut AuditVerification,
) -> Result<Option<BrokenLink>, QueryError> {
    let table = verify_audit(
        snapshot.conn(),
        &state.read_model.audit_schema,
        walked,
        |_| {},
    )
    .await?;
    answer.audit_rows = table.rows;
    answer.audit_checkpoint = table.checkpoint;
    answer.audit_quarantined = table.quarantined;
    if let Some(broken) = &table.broken {
        return Ok(Some(link(Place::AuditTable, broken)));
    }
    let expected = walked.events_up_to(table.checkpoint);
    if table.rows != expected {
        return Ok(Some(BrokenLink {
            place: Place::AuditTable,
            sequence: table.checkpoint,
            aggregate: None,
            reason: format!(
                "the audit table holds {} events up to stream sequence {}, the stream {expected}",
                table.rows, table.checkpoint
            ),
        }));
    }
    // Rows newer than the walk are the projector's work since; only rows newer than the stream
    // as it stands now cannot have come from it. The stream is asked only when that is possible.
    if table.newest > walked.last_sequence {
        let head = stream
            .get_info()
            .await
            .map_err(|e| QueryError::StoreUnavailable(e.to_string()))?
            .state
            .last_sequence;
        if let Some(broken) = table.beyond(head) {
            return Ok(Some(BrokenLink {
                place: Place::AuditTable,
                sequence: broken.sequence,
                aggregate: None,
                reason: broken.reason,
            }));
        }
    }
    Ok(None)
}

pub async fn handler(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Fresh<Json<AuditVerification>>, QueryError> {
    // A walk reads everything; one at a time per process is plenty.
    let _turn = state.verification.lock().await;
    let checked_at = Utc::now();
    let stream = state.audit_reads.stream().await?;
    let walked = verify_stream(&stream)
        .await
        .map_err(|e| QueryError::StoreUnavailable(e.to_string()))?;
    let mut answer = AuditVerification {
        status: Status::Ok,
        checked_at,
        commits: walked.commits,
        events: walked.events,
        chains: walked.heads.len() as u64,
        last_sequence: walked.last_sequence,
        audit_rows: 0,
        audit_checkpoint: 0,
        audit_quarantined: 0,
        quarantined: walked.quarantined.iter().map(Into::into).collect(),
        digest: None,
        broken: None,
        audit_table_broken: None,
        read_sequence: 0,
    };
    let mut snapshot = Snapshot::open_bulk(&state, Projection::Audit).await?;
    answer.audit_table_broken =
        audit_table_break(&state, &mut snapshot, &stream, &walked, &mut answer).await?;
    let freshness = snapshot.freshness;
    drop(snapshot);
    answer.broken = walked
        .broken
        .as_ref()
        .map(|broken| link(Place::Stream, broken))
        .or_else(|| answer.audit_table_broken.clone());
    if answer.broken.is_none() {
        answer.digest = Some(digest(
            walked.heads.iter().map(|(a, h)| (a.as_str(), h.as_str())),
        ));
    }
    if answer.broken.is_some() {
        answer.status = Status::Broken;
        tracing::error!(broken = ?answer.broken, "audit verification found a broken link");
    } else if !answer.quarantined.is_empty() {
        answer.status = Status::SignedOff;
    }
    let recorded = state
        .audit_reads
        .record(&caller, &uri, answer.events)
        .await?;
    answer.read_sequence = recorded.sequence;
    Ok(Fresh(freshness, Json(answer)))
}
