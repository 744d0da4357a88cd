//! The union of all aggregates' events and states, their wire names and versions, and the
//! upcasting hook that turns older stored versions into today's shape before decoding.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{self, AccessEvent};
use crate::facts::{AggregateRef, Facts};
use crate::group::{self, GroupEvent};
use crate::item::{self, ItemEvent};
use crate::ledger::{self, LedgerEvent};
use crate::plan::{self, PlanEvent};
use crate::quarantine::{self, QuarantineEvent};
use crate::report::{self, ReportEvent};
use crate::task::{self, TaskEvent};
use crate::unit::{self, UnitEvent};

/// Sự kiện — any domain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Unit(UnitEvent),
    Group(GroupEvent),
    Plan(PlanEvent),
    Item(ItemEvent),
    Task(TaskEvent),
    Report(ReportEvent),
    Ledger(LedgerEvent),
    Access(AccessEvent),
    Quarantine(QuarantineEvent),
}

/// The aggregate types whose events concern the log itself — chain digests, reads of the audit
/// trail, quarantine decisions — rather than the plan: nothing of the plan's state folds them.
pub const ABOUT_THE_LOG: &[&str] = &["ledger", "access", "quarantine"];

/// The version every event type is written with today. Bump it for an event type together with
/// an upcaster from the previous version whenever its payload changes incompatibly.
pub const CURRENT_VERSION: u32 = 1;

/// Why stored data could not become an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregate(String),
    #[error("event {kind}.{name} has version {version}; this build knows up to {CURRENT_VERSION}")]
    FutureVersion {
        kind: String,
        name: String,
        version: u32,
    },
    #[error("event {kind}.{name}: {source}")]
    Payload {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
}

/// Rewrites the payload of an older event version into the next version's shape.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub kind: &'static str,
    pub name: &'static str,
    /// The version this upcaster reads; it produces `from_version + 1`.
    pub from_version: u32,
    pub upcast: fn(Value) -> Value,
}

/// Upcasters for stored versions older than [`CURRENT_VERSION`]. Every event type is still at
/// its first version, so there is nothing to rewrite yet.
pub const UPCASTERS: &[Upcaster] = &[];

/// Applies `upcasters` in version order until the payload reaches `CURRENT_VERSION`.
pub fn upcast(
    upcasters: &[Upcaster],
    kind: &str,
    name: &str,
    mut version: u32,
    mut data: Value,
) -> Result<Value, DecodeError> {
    if version > CURRENT_VERSION {
        return Err(DecodeError::FutureVersion {
            kind: kind.to_owned(),
            name: name.to_owned(),
            version,
        });
    }
    while version < CURRENT_VERSION {
        if let Some(step) = upcasters
            .iter()
            .find(|u| u.kind == kind && u.name == name && u.from_version == version)
        {
            data = (step.upcast)(data);
        }
        version += 1;
    }
    Ok(data)
}

fn split<E: Serialize>(event: &E) -> (String, Value) {
    // Each aggregate's event enum is `#[serde(tag = "event", content = "data")]`: serialising it
    // yields the wire name and payload without a hand-kept table that could drift.
    let mut tagged = serde_json::to_value(event).expect("events always serialise");
    let name = tagged["event"].as_str().unwrap_or_default().to_owned();
    (
        name,
        tagged
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null),
    )
}

fn join<E: DeserializeOwned>(kind: &str, name: &str, data: Value) -> Result<E, DecodeError> {
    let tagged = if data.is_null() {
        json!({ "event": name })
    } else {
        json!({ "event": name, "data": data })
    };
    serde_json::from_value(tagged).map_err(|source| DecodeError::Payload {
        kind: kind.to_owned(),
        name: name.to_owned(),
        source,
    })
}

impl Event {
    /// The aggregate type: `unit`, `group`, `plan`, `item`, `task`, `report`, `ledger`, `access`,
    /// `quarantine`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Unit(_) => "unit",
            Event::Group(_) => "group",
            Event::Plan(_) => "plan",
            Event::Item(_) => "item",
            Event::Task(_) => "task",
            Event::Report(_) => "report",
            Event::Ledger(_) => "ledger",
            Event::Access(_) => "access",
            Event::Quarantine(_) => "quarantine",
        }
    }

    /// The event's wire name within its aggregate (e.g. `status_changed`) and its payload.
    pub fn name_and_data(&self) -> (String, Value) {
        match self {
            Event::Unit(e) => split(e),
            Event::Group(e) => split(e),
            Event::Plan(e) => split(e),
            Event::Item(e) => split(e),
            Event::Task(e) => split(e),
            Event::Report(e) => split(e),
            Event::Ledger(e) => split(e),
            Event::Access(e) => split(e),
            Event::Quarantine(e) => split(e),
        }
    }

    /// Decodes a stored event of any known version.
    pub fn decode(kind: &str, name: &str, version: u32, data: Value) -> Result<Event, DecodeError> {
        let data = upcast(UPCASTERS, kind, name, version, data)?;
        Ok(match kind {
            "unit" => Event::Unit(join(kind, name, data)?),
            "group" => Event::Group(join(kind, name, data)?),
            "plan" => Event::Plan(join(kind, name, data)?),
            "item" => Event::Item(join(kind, name, data)?),
            "task" => Event::Task(join(kind, name, data)?),
            "report" => Event::Report(join(kind, name, data)?),
            "ledger" => Event::Ledger(join(kind, name, data)?),
            "access" => Event::Access(join(kind, name, data)?),
            "quarantine" => Event::Quarantine(join(kind, name, data)?),
            other => return Err(DecodeError::UnknownAggregate(other.to_owned())),
        })
    }
}

/// The folded state of one aggregate instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateState {
    Unit(unit::State),
    Group(group::State),
    Plan(plan::State),
    Item(item::State),
    Task(task::State),
    Report(report::State),
    Ledger(ledger::State),
    Access(access::State),
    Quarantine(quarantine::State),
}

impl AggregateState {
    /// The state of an aggregate that has no events yet.
    pub fn initial(of: &AggregateRef) -> Self {
        match of {
            AggregateRef::Unit(_) => AggregateState::Unit(None),
            AggregateRef::Group(_) => AggregateState::Group(None),
            AggregateRef::Plan(_) => AggregateState::Plan(None),
            AggregateRef::Item(_) => AggregateState::Item(None),
            AggregateRef::Task(_) => AggregateState::Task(None),
            AggregateRef::Report(_) => AggregateState::Report(None),
            AggregateRef::Ledger => AggregateState::Ledger(None),
            AggregateRef::Access(_) => AggregateState::Access(None),
            AggregateRef::Quarantine(_) => AggregateState::Quarantine(None),
        }
    }

    /// Folds one event in. An event of another aggregate type leaves the state as it is; the
    /// store never mixes them on one subject.
    pub fn evolve(self, event: &Event) -> Self {
        match (self, event) {
            (AggregateState::Unit(s), Event::Unit(e)) => AggregateState::Unit(unit::evolve(s, e)),
            (AggregateState::Group(s), Event::Group(e)) => {
                AggregateState::Group(group::evolve(s, e))
            }
            (AggregateState::Plan(s), Event::Plan(e)) => AggregateState::Plan(plan::evolve(s, e)),
            (AggregateState::Item(s), Event::Item(e)) => AggregateState::Item(item::evolve(s, e)),
            (AggregateState::Task(s), Event::Task(e)) => AggregateState::Task(task::evolve(s, e)),
            (AggregateState::Report(s), Event::Report(e)) => {
                AggregateState::Report(report::evolve(s, e))
            }
            (AggregateState::Ledger(s), Event::Ledger(e)) => {
                AggregateState::Ledger(ledger::evolve(s, e))
            }
            (AggregateState::Access(s), Event::Access(e)) => {
                AggregateState::Access(access::evolve(s, e))
            }
            (AggregateState::Quarantine(s), Event::Quarantine(e)) => {
                AggregateState::Quarantine(quarantine::evolve(s, e))
            }
            (state, _) => state,
        }
    }

    /// Whether any event has created the aggregate.
    pub fn exists(&self) -> bool {
        match self {
            AggregateState::Unit(s) => s.is_some(),
            AggregateState::Group(s) => s.is_some(),
            AggregateState::Plan(s) => s.is_some(),
            AggregateState::Item(s) => s.is_some(),
            AggregateState::Task(s) => s.is_some(),
            AggregateState::Report(s) => s.is_some(),
            AggregateState::Ledger(s) => s.is_some(),
            AggregateState::Access(s) => s.is_some(),
            AggregateState::Quarantine(s) => s.is_some(),
        }
    }

    /// Other aggregates whose state this one's rules consult.
    pub fn references(&self) -> Vec<AggregateRef> {
        match self {
            AggregateState::Unit(Some(u)) => u.references(),
            AggregateState::Group(Some(g)) => g.references(),
            AggregateState::Plan(Some(p)) => p.references(),
            AggregateState::Item(Some(i)) => i.references(),
            AggregateState::Task(Some(t)) => t.references(),
            _ => vec![],
        }
    }

    /// Records this state among the facts under `of`'s identity.
    pub fn add_to(&self, of: &AggregateRef, facts: &mut Facts) {
        match (self, of) {
            (AggregateState::Unit(Some(s)), AggregateRef::Unit(id)) => {
                facts.units.insert(id.clone(), s.clone());
            }
            (AggregateState::Group(Some(s)), AggregateRef::Group(id)) => {
                facts.groups.insert(id.clone(), s.clone());
            }
            (AggregateState::Plan(Some(s)), AggregateRef::Plan(id)) => {
                facts.plans.insert(id.clone(), s.clone());
            }
            (AggregateState::Item(Some(s)), AggregateRef::Item(id)) => {
                facts.items.insert(id.clone(), s.clone());
            }
            _ => {}
        }
    }
}
