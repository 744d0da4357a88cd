//! `GET /v1/audit`: the change history, event by event, with each event's full CloudEvents
//! envelope exactly as stored — so a client can check it (hash chain, signatures) itself.
//!
//! Pagination is by keyset on (stream_sequence, position), the order the log was written in:
//! a commit's sequence is assigned by JetStream and the projector applies commits strictly in
//! order, so events appended while a client pages only ever appear after its cursor — no page
//! repeats or skips an entry.
//!
//! A message an auditor set aside with a quarantine decision is an entry too, at its own stream
//! position: it has no envelope (it is no event of this product), and says what was set aside
//! (subject, digest, payload as stored), by whom, why and where the decision is recorded.
//!
//! Every page is recorded as an `access.audit_read` event before it is answered
//! ([`crate::reads`]); a page that cannot be recorded is not answered (503).

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Snapshot;
use crate::access::Caller;
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::params::Params;
use crate::state::AppState;

/// One page's query, with the audit table's one expression for a whole envelope filled in.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("../sql/audit.sql").replace("{envelope}", readmodel::AUDIT_ENVELOPE)
});
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1_000;

/// Where a page ends; handed out hex-encoded, so that clients treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    sequence: i64,
    position: i32,
}

impl Cursor {
    const START: Cursor = Cursor {
        sequence: 0,
        position: -1,
    };

    fn encode(self) -> String {
        format!("{:016x}{:08x}", self.sequence, self.position)
    }

    fn decode(raw: &str) -> Result<Self, QueryError> {
        let invalid =
            || QueryError::Malformed("cursor is not one this service handed out".to_owned());
        if raw.len() != 24 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let sequence = raw
            .get(..16)
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .and_then(|s| i64::try_from(s).ok())
            .ok_or_else(invalid)?;
        let position = raw
            .get(16..)
            .and_then(|p| u32::from_str_radix(p, 16).ok())
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(invalid)?;
        Ok(Self { sequence, position })
    }
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// The commit's JetStream stream sequence.
    pub stream_sequence: i64,
    /// The event's index within its commit (0 for a quarantined message).
    pub position: i32,
    /// The CloudEvents 1.0 envelope as stored: specversion, id, source, type, subject, time,
    /// datacontenttype, data and the extension attributes (aggregatetype, aggregateid,
    /// effectivetime, actoruser, actorunit, actorrole, correlationid, causationid, commandid,
    /// commandname, …). Null for a quarantined message, which is no event.
    pub envelope: Option<Value>,
    /// Present only on a message set aside by a quarantine decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(json(nullable))]
    pub quarantined: Option<QuarantinedMessage>,
}

/// A stored message that broke the record, set aside by an auditor's quarantine decision: the
/// projections passed it without applying anything of it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct QuarantinedMessage {
    /// The NATS subject it was published on.
    pub subject: String,
    /// SHA-256 (hex) over the subject, a line feed and the payload bytes.
    pub digest: String,
    /// Payload bytes.
    pub size: i64,
    /// When JetStream stored it.
    pub stored_at: DateTime<Utc>,
    pub payload_encoding: PayloadEncoding,
    /// The payload as stored: its text, or base64 when it is no UTF-8 (or holds NUL).
    pub payload: String,
    /// Why the auditor set it aside.
    pub reason: String,
    pub decided_by: String,
    pub decided_role: String,
    /// Stream sequence of the `quarantine.message_quarantined` event (in the trail too).
    pub decision_sequence: i64,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub enum PayloadEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditPage {
    pub as_of: DateTime<Utc>,
    /// Stream sequence the audit projection had applied.
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the trail then ends at
    /// `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    pub limit: i64,
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` (with the same filters) for the next page; null when this page reached
    /// the end of what is recorded now.
    pub next_cursor: Option<String>,
    /// The position after this page's last entry (null for an empty page): pass it as `cursor`
    /// later to receive only what was recorded since — for following the log as it grows.
    pub end_cursor: Option<String>,
    /// Stream sequence of the `access.audit_read` event that recorded this read (who, this
    /// query, how many entries); it shows in the trail once the audit projection applies it.
    pub read_sequence: u64,
}

pub async fn handler(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    params: Params,
) -> Result<Fresh<Json<AuditPage>>, QueryError> {
    let (recorded_from, recorded_to) = params.range("recorded_from", "recorded_to")?;
    let (effective_from, effective_to) = params.range("effective_from", "effective_to")?;
    let after = params
        .text("cursor")
        .map(Cursor::decode)
        .transpose()?
        .unwrap_or(Cursor::START);
    let limit = params
        .integer("limit", 1, MAX_LIMIT)?
        .unwrap_or(DEFAULT_LIMIT);
    let mut snapshot = Snapshot::open(&state, Projection::Audit).await?;
    // One more row than asked tells whether another page follows.
    let mut entries: Vec<AuditEntry> = sqlx::query_as(PAGE.as_str())
        .bind(params.text("aggregate_type"))
        .bind(params.text("aggregate_id"))
        .bind(params.text("unit"))
        .bind(params.text("actor"))
        .bind(params.text("event_type"))
        .bind(recorded_from)
        .bind(recorded_to)
        .bind(effective_from)
        .bind(effective_to)
        .bind(after.sequence)
        .bind(after.position)
        .bind(limit + 1)
        .bind(params.text("quarantined").map(|only| only == "true"))
        .fetch_all(snapshot.conn())
        .await?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let end_cursor = entries.last().map(|last| {
        Cursor {
            sequence: last.stream_sequence,
            position: last.position,
        }
        .encode()
    });
    let next_cursor = if more { end_cursor.clone() } else { None };
    let (as_of, freshness) = (snapshot.as_of, snapshot.freshness);
    // The connection goes back to the pool before the (NATS) recording.
    drop(snapshot);
    let recorded = state
        .audit_reads
        .record(&caller, &uri, entries.len() as u64)
        .await?;
    Ok(Fresh(
        freshness,
        Json(AuditPage {
            as_of,
            checkpoint: freshness.checkpoint,
            stalled: freshness.stalled,
            limit,
            entries,
            next_cursor,
            end_cursor,
            read_sequence: recorded.sequence,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor {
            sequence: 1_234_567,
            position: 3,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        for bad in [
            "",
            "xyz",
            "00000000000000000000000g",
            "0000000000000000000000001",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
