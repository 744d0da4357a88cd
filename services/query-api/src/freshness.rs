//! What every data answer says about the read model it was read from, in the same headers
//! whatever its format (JSON, NDJSON, CSV, XLSX), so that a dashboard or a downstream consumer
//! can show "data as of …" and notice a frozen read model without asking `/readyz`:
//!
//! - `X-Read-Model-Checkpoint: core=412` — the last stream sequence the projection had applied
//!   in the snapshot the answer was read from;
//! - `X-Read-Model-Stalled: core=false` — whether the projection had stopped on a commit it must
//!   not skip (then the answer stays frozen at that checkpoint until the cause is repaired);
//! - `X-Read-Model-Last-Recorded-At: core=2025-10-01T08:30:00.123456Z` — when the newest applied
//!   event was recorded (absent before the first event).
//!
//! Each header holds one `projection=value` member per projection the answer reads (today every
//! route reads one), so the form stays the same should a route read more.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use readmodel::Projection;

use crate::db::Checkpoint;

pub const CHECKPOINT: HeaderName = HeaderName::from_static("x-read-model-checkpoint");
pub const STALLED: HeaderName = HeaderName::from_static("x-read-model-stalled");
pub const LAST_RECORDED_AT: HeaderName = HeaderName::from_static("x-read-model-last-recorded-at");

/// The state of one projection in the snapshot an answer was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub projection: Projection,
    pub checkpoint: u64,
    pub stalled: bool,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

impl Freshness {
    pub fn of(projection: Projection, checkpoint: &Checkpoint) -> Self {
        Self {
            projection,
            checkpoint: checkpoint.sequence(),
            stalled: checkpoint.stall().is_some(),
            last_recorded_at: checkpoint.last_recorded_at,
        }
    }

    fn member(&self, value: impl std::fmt::Display) -> HeaderValue {
        // A projection name and a number, a boolean or an RFC 3339 instant: visible ASCII only.
        HeaderValue::from_str(&format!("{}={value}", self.projection.name()))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Sets the freshness headers on an answer.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(CHECKPOINT, self.member(self.checkpoint));
        headers.insert(STALLED, self.member(self.stalled));
        if let Some(at) = self.last_recorded_at {
            headers.insert(
                LAST_RECORDED_AT,
                self.member(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            );
        }
    }
}

/// An answer together with the freshness of the snapshot it was read from.
#[derive(Debug)]
pub struct Fresh<T>(pub Freshness, pub T);

impl<T: IntoResponse> IntoResponse for Fresh<T> {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        self.0.apply(response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_names_the_projection_it_describes() {
        let at = DateTime::parse_from_rfc3339("2025-10-01T08:30:00.5+07:00")
            .expect("instant")
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        Freshness {
            projection: Projection::Audit,
            checkpoint: 412,
            stalled: true,
            last_recorded_at: Some(at),
        }
        .apply(&mut headers);
        assert_eq!(headers[&CHECKPOINT], "audit=412");
        assert_eq!(headers[&STALLED], "audit=true");
        assert_eq!(headers[&LAST_RECORDED_AT], "audit=2025-10-01T01:30:00.500Z");
    }
}
