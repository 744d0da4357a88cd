//! What a decision may know about other aggregates.
//!
//! A command is decided against the state of the one aggregate it changes (guarded by optimistic
//! concurrency) plus read-only facts about others: the units it names and their successors, the
//! groups and their members, the plan, the items a report covers. The command handler loads
//! these by following [`AggregateRef`]s until nothing new is referenced, then hands them over.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::access::AccessDay;
use crate::calendar::local_date;
use crate::group::Group;
use crate::item::{AssignmentRole, Item};
use crate::plan::Plan;
use crate::quarantine::QuarantineId;
use crate::rejection::Rejection;
use crate::text::{GroupId, ItemId, PlanId, ReportId, TaskId, UnitId};
use crate::unit::Unit;

/// A pointer to one aggregate instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "id")]
pub enum AggregateRef {
    Unit(UnitId),
    Group(GroupId),
    Plan(PlanId),
    Item(ItemId),
    Task(TaskId),
    Report(ReportId),
    /// The ledger of chain digests (one instance, [`crate::ledger::LEDGER_ID`]).
    Ledger,
    /// One day's log of reads of the audit trail ([`crate::access`]).
    Access(AccessDay),
    /// The quarantine decision for one stream sequence ([`crate::quarantine`]).
    Quarantine(QuarantineId),
}

impl AggregateRef {
    /// The aggregate type as it appears in subjects and envelopes.
    pub fn kind(&self) -> &'static str {
        match self {
            AggregateRef::Unit(_) => "unit",
            AggregateRef::Group(_) => "group",
            AggregateRef::Plan(_) => "plan",
            AggregateRef::Item(_) => "item",
            AggregateRef::Task(_) => "task",
            AggregateRef::Report(_) => "report",
            AggregateRef::Ledger => "ledger",
            AggregateRef::Access(_) => "access",
            AggregateRef::Quarantine(_) => "quarantine",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            AggregateRef::Unit(id) => id.as_str(),
            AggregateRef::Group(id) => id.as_str(),
            AggregateRef::Plan(id) => id.as_str(),
            AggregateRef::Item(id) => id.as_str(),
            AggregateRef::Task(id) => id.as_str(),
            AggregateRef::Report(id) => id.as_str(),
            AggregateRef::Ledger => crate::ledger::LEDGER_ID,
            AggregateRef::Access(day) => day.as_str(),
            AggregateRef::Quarantine(id) => id.as_str(),
        }
    }
}

/// Either a unit or a group of units, as the plan names those responsible.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Assignee {
    Unit(UnitId),
    Group(GroupId),
}

impl Assignee {
    pub fn reference(&self) -> AggregateRef {
        match self {
            Assignee::Unit(id) => AggregateRef::Unit(id.clone()),
            Assignee::Group(id) => AggregateRef::Group(id.clone()),
        }
    }
}

/// Read-only state of the aggregates a decision refers to.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub units: BTreeMap<UnitId, Unit>,
    pub groups: BTreeMap<GroupId, Group>,
    pub plans: BTreeMap<PlanId, Plan>,
    pub items: BTreeMap<ItemId, Item>,
}

/// Succession chains are short; a bound keeps a corrupt cycle from looping forever.
const MAX_SUCCESSION_DEPTH: usize = 16;

impl Facts {
    pub fn unit(&self, id: &UnitId) -> Result<&Unit, Rejection> {
        self.units
            .get(id)
            .ok_or_else(|| Rejection::not_found(format!("unit {id} is not registered")))
    }

    pub fn group(&self, id: &GroupId) -> Result<&Group, Rejection> {
        self.groups
            .get(id)
            .ok_or_else(|| Rejection::not_found(format!("unit group {id} is not defined")))
    }

    pub fn plan(&self, id: &PlanId) -> Result<&Plan, Rejection> {
        self.plans
            .get(id)
            .ok_or_else(|| Rejection::not_found(format!("plan {id} has not been issued")))
    }

    pub fn item(&self, id: &ItemId) -> Result<&Item, Rejection> {
        self.items
            .get(id)
            .ok_or_else(|| Rejection::not_found(format!("item {id} has not been recorded")))
    }

    /// The units that hold `unit`'s responsibilities on `date`: the unit itself, or, from the
    /// effective date of its succession, its successors (followed transitively).
    pub fn holders(&self, unit: &UnitId, date: NaiveDate) -> BTreeSet<UnitId> {
        let mut holders = BTreeSet::new();
        self.collect_holders(unit, date, 0, &mut holders);
        holders
    }

    fn collect_holders(
        &self,
        unit: &UnitId,
        date: NaiveDate,
        depth: usize,
        out: &mut BTreeSet<UnitId>,
    ) {
        let succession = self
            .units
            .get(unit)
            .and_then(|u| u.succession.as_ref())
            .filter(|s| s.effective_on <= date);
        match succession {
            Some(s) if depth < MAX_SUCCESSION_DEPTH => {
                for successor in &s.successors {
                    self.collect_holders(successor, date, depth + 1, out);
                }
            }
            _ => {
                out.insert(unit.clone());
            }
        }
    }

    /// The units an assignee stands for on `date`, after group membership and succession.
    pub fn units_of(&self, assignee: &Assignee, date: NaiveDate) -> BTreeSet<UnitId> {
        match assignee {
            Assignee::Unit(unit) => self.holders(unit, date),
            Assignee::Group(group) => self
                .groups
                .get(group)
                .map(|g| g.members_on(date))
                .unwrap_or_default()
                .iter()
                .flat_map(|member| self.holders(member, date))
                .collect(),
        }
    }

    /// The units responsible for `item` at `at` in `role` (any role when `None`).
    pub fn responsible_units(
        &self,
        item: &Item,
        role: Option<AssignmentRole>,
        at: DateTime<Utc>,
    ) -> BTreeSet<UnitId> {
        let date = local_date(at);
        item.assignments_at(at)
            .filter(|a| role.is_none_or(|r| a.role == r))
            .flat_map(|a| self.units_of(&a.assignee, date))
            .collect()
    }

    /// Whether staff of `actor_unit` may act for `unit` at `at`: they hold the unit's
    /// responsibilities — their own unit until it is succeeded, a predecessor's from the
    /// succession's effective date.
    pub fn acts_for(&self, actor_unit: &UnitId, unit: &UnitId, at: DateTime<Utc>) -> bool {
        self.holders(unit, local_date(at)).contains(actor_unit)
    }
}
