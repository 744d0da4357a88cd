//! Nhật ký truy cập — access log: who read the audit trail, what they asked for, and when.
//!
//! The audit trail shows who changed what; reading it is itself worth recording, so that the
//! trail also shows who looked at it. Every read of the audit trail (a page of `GET /v1/audit`,
//! an export of the events) is recorded here before its answer is handed out, as an event like
//! any other — hash-chained, projected into the audit table and visible to auditors there.
//!
//! One instance per local day (Asia/Ho_Chi_Minh), identified `yyyy-mm-dd`: the log of one day
//! stays small, so deciding (which loads the day's log) stays cheap however long the product
//! runs, and a day's reads are one subject (`events.access.2025-07-15`).
//!
//! **Deliberately not idempotent.** Every other command that would change nothing yields no
//! events; here every read is a fact of its own, so recording the same read twice yields two
//! events — the reader did read twice. A retry that must not be counted twice is the caller's
//! to prevent (an Idempotency-Key over HTTP).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use crate::actor::Role;
use crate::calendar::local_date;
use crate::context::Context;
use crate::rejection::{Rejection, Rule};
use crate::text::{Text, TextError};

/// What was read: the endpoint and its query string or filters.
pub type ReadQuery = Text<2000>;

/// Ngày — the identity of one day's access log: a local (Asia/Ho_Chi_Minh) date, `yyyy-mm-dd`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AccessDay(String);

impl AccessDay {
    /// The log of a local date.
    pub fn of(date: NaiveDate) -> Self {
        Self(date.format("%Y-%m-%d").to_string())
    }

    /// The log of the local day an instant falls on.
    pub fn containing(at: DateTime<Utc>) -> Self {
        Self::of(local_date(at))
    }

    /// Exactly `yyyy-mm-dd`, a real date: the identifier becomes a NATS subject token.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .map(Self::of)
            .filter(|day| day.0 == raw)
            .ok_or_else(|| TextError::BadIdentifier(raw.to_owned()))
    }

    pub fn date(&self) -> NaiveDate {
        NaiveDate::parse_from_str(&self.0, "%Y-%m-%d").expect("checked when constructed")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccessDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|_| {
            serde::de::Error::custom(format!("{raw:?} is not a date written yyyy-mm-dd"))
        })
    }
}

impl JsonSchema for AccessDay {
    fn schema_name() -> Cow<'static, str> {
        "AccessDay".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": "A local (Asia/Ho_Chi_Minh) date, yyyy-mm-dd."
        })
    }
}

/// Ghi nhận lượt đọc nhật ký kiểm toán — record one read of the audit trail, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAuditRead {
    /// The day's log the read goes into: the local date of the moment it is recorded (the
    /// command names it because it names the aggregate; a day other than today is refused).
    pub day: AccessDay,
    /// What was read: the endpoint and its query string or filters.
    pub query: ReadQuery,
    /// How many entries the reader received.
    pub results: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum AccessEvent {
    /// Somebody read the audit trail; who is the envelope's actor.
    AuditRead {
        query: ReadQuery,
        results: u32,
        at: DateTime<Utc>,
    },
}

/// One day's log, as far as a decision needs it (nothing, today) and a reader may want it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    pub reads: u64,
    pub last_read_at: DateTime<Utc>,
}

pub type State = Option<AccessLog>;

pub fn evolve(state: State, event: &AccessEvent) -> State {
    match event {
        AccessEvent::AuditRead { at, .. } => Some(AccessLog {
            reads: state.map_or(0, |log| log.reads) + 1,
            last_read_at: *at,
        }),
    }
}

/// Records a read: always exactly one event (see the module documentation), by those who may
/// read the audit trail, today, never backdated.
pub fn record_read(
    _state: &State,
    cmd: &RecordAuditRead,
    ctx: &Context,
) -> Result<Vec<AccessEvent>, Rejection> {
    ctx.require_role(
        &[Role::Auditor, Role::ProvinceOffice],
        "record reads of the audit trail",
    )?;
    if ctx.effective_at != ctx.now {
        return Err(Rejection::forbidden(
            "a read of the audit trail is recorded as it happens; it cannot be backdated",
        ));
    }
    let today = AccessDay::containing(ctx.now);
    if cmd.day != today {
        return Err(Rejection::rule(
            Rule::WrongAccessDay,
            format!(
                "a read recorded now goes into the log of {today}, not of {}",
                cmd.day
            ),
        ));
    }
    Ok(vec![AccessEvent::AuditRead {
        query: cmd.query.clone(),
        results: cmd.results,
        at: ctx.now,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_exactly_yyyy_mm_dd() {
        let day = AccessDay::parse("2025-07-15").expect("a day");
        assert_eq!(
            day.date(),
            NaiveDate::from_ymd_opt(2025, 7, 15).expect("date")
        );
        for bad in [
            "2025-7-15",
            "2025-02-30",
            "15/07/2025",
            "2025-07-15 ",
            "",
            "x",
        ] {
            assert!(AccessDay::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_day_of_an_instant_is_its_local_date() {
        let late_evening_utc = "2025-07-14T17:30:00Z".parse().expect("instant");
        assert_eq!(
            AccessDay::containing(late_evening_utc).as_str(),
            "2025-07-15"
        );
    }
}
