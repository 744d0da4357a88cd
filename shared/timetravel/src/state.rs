//! The whole plan's folded state: every aggregate's `AggregateState`, folded with the domain's
//! own `AggregateState::evolve`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use remediation_domain::event::ABOUT_THE_LOG;
use remediation_domain::facts::Facts;
use remediation_domain::group::Group;
use remediation_domain::item::Item;
use remediation_domain::plan::Plan;
use remediation_domain::report::Report;
use remediation_domain::task::Task;
use remediation_domain::text::{GroupId, ItemId, PlanId, ReportId, TaskId, UnitId};
use remediation_domain::unit::Unit;
use remediation_domain::{AggregateRef, AggregateState, Event};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every aggregate of the log (units, groups, plans, items, tasks, reports) with its state. The
/// ledger of chain digests, the record of audit-trail reads and quarantine decisions concern the
/// log itself and are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanState {
    aggregates: BTreeMap<AggregateRef, AggregateState>,
}

/// Serialised as a list of `[reference, state]` pairs: JSON object keys must be strings.
impl Serialize for PlanState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.aggregates.iter())
    }
}

impl<'de> Deserialize<'de> for PlanState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs: Vec<(AggregateRef, AggregateState)> = Vec::deserialize(deserializer)?;
        Ok(Self {
            aggregates: pairs.into_iter().collect(),
        })
    }
}

/// The aggregate an envelope's `aggregatetype` / `aggregateid` name; `None` for the ledger, the
/// audit-read record and
/// for anything malformed.
pub fn aggregate_ref(kind: &str, id: &str) -> Option<AggregateRef> {
    Some(match kind {
        "unit" => AggregateRef::Unit(UnitId::new(id).ok()?),
        "group" => AggregateRef::Group(GroupId::new(id).ok()?),
        "plan" => AggregateRef::Plan(PlanId::new(id).ok()?),
        "item" => AggregateRef::Item(ItemId::new(id).ok()?),
        "task" => AggregateRef::Task(TaskId::new(id).ok()?),
        "report" => AggregateRef::Report(ReportId::new(id).ok()?),
        _ => return None,
    })
}

macro_rules! existing {
    ($(#[$doc:meta])* $fn:ident, $one:ident, $variant:ident, $id:ty, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn(&self) -> impl Iterator<Item = (&$id, &$ty)> {
            self.aggregates.iter().filter_map(|(r, s)| match (r, s) {
                (AggregateRef::$variant(id), AggregateState::$variant(Some(v))) => Some((id, v)),
                _ => None,
            })
        }

        /// The aggregate, if it exists in this state.
        pub fn $one(&self, id: &$id) -> Option<&$ty> {
            match self.aggregates.get(&AggregateRef::$variant(id.clone())) {
                Some(AggregateState::$variant(Some(v))) => Some(v),
                _ => None,
            }
        }
    };
}

impl PlanState {
    /// Folds one event of `target` in, with the domain's `evolve`.
    pub fn apply(&mut self, target: &AggregateRef, event: &Event) {
        if ABOUT_THE_LOG.contains(&target.kind()) {
            return;
        }
        match self.aggregates.get_mut(target) {
            Some(state) => {
                // `evolve` takes the state by value; a placeholder stands in for the moment.
                let current = std::mem::replace(state, AggregateState::Ledger(None));
                *state = current.evolve(event);
            }
            None => {
                let state = AggregateState::initial(target).evolve(event);
                self.aggregates.insert(target.clone(), state);
            }
        }
    }

    /// The state of one aggregate (its initial state if no event touched it), borrowed: an item's
    /// assignment history grows with the log, and deciding on it needs no copy.
    pub fn get(&self, target: &AggregateRef) -> Cow<'_, AggregateState> {
        match self.aggregates.get(target) {
            Some(state) => Cow::Borrowed(state),
            None => Cow::Owned(AggregateState::initial(target)),
        }
    }

    /// Every aggregate any folded event touched, with its state.
    pub fn aggregates(&self) -> impl Iterator<Item = (&AggregateRef, &AggregateState)> {
        self.aggregates.iter()
    }

    /// A state from `(reference, state)` pairs (as stored in snapshots).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (AggregateRef, AggregateState)>) -> Self {
        Self {
            aggregates: pairs.into_iter().collect(),
        }
    }

    existing!(
        /// Registered units.
        units, unit, Unit, UnitId, Unit
    );
    existing!(
        /// Defined unit groups.
        groups, group, Group, GroupId, Group
    );
    existing!(
        /// Issued plans.
        plans, plan, Plan, PlanId, Plan
    );
    existing!(
        /// Recorded items.
        items, item, Item, ItemId, Item
    );
    existing!(
        /// Planned tasks (cancelled ones too).
        tasks, task, Task, TaskId, Task
    );
    existing!(
        /// Submitted reports.
        reports, report, Report, ReportId, Report
    );

    /// The facts a decision would consult, as of this state: what `Facts::responsible_units`
    /// and succession resolve against.
    pub fn facts(&self) -> Facts {
        let mut facts = Facts::default();
        for (target, state) in &self.aggregates {
            state.add_to(target, &mut facts);
        }
        facts
    }
}
