//! Everything a decision needs besides the aggregate's own state: who acts, when, and facts.

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Role};
use crate::facts::Facts;
use crate::rejection::{Rejection, Rule};
use crate::text::UnitId;

/// The circumstances of one command. Time is passed in: the domain has no clock.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub actor: &'a Actor,
    /// When the system records the decision.
    pub now: DateTime<Utc>,
    /// When it happened in the world: `now`, or earlier for facts keyed in late (a paper report
    /// typed in two days after it arrived, a backdated correction).
    pub effective_at: DateTime<Utc>,
    pub facts: &'a Facts,
}

impl Context<'_> {
    /// Refuses actors whose role is not listed.
    pub fn require_role(&self, allowed: &[Role], action: &str) -> Result<(), Rejection> {
        if allowed.contains(&self.actor.role) {
            Ok(())
        } else {
            Err(Rejection::forbidden(format!(
                "role {} may not {action}",
                self.actor.role.as_str()
            )))
        }
    }

    /// The province office may act for any unit; unit staff only for their own unit or one whose
    /// responsibilities their unit took over by succession.
    pub fn require_acts_for(&self, unit: &UnitId, action: &str) -> Result<(), Rejection> {
        match (self.actor.role, &self.actor.unit) {
            (Role::ProvinceOffice, _) => Ok(()),
            (Role::UnitStaff, Some(own)) if self.facts.acts_for(own, unit, self.effective_at) => {
                Ok(())
            }
            (Role::UnitStaff, _) => Err(Rejection::forbidden(format!(
                "staff of {} may not {action} for unit {unit}",
                self.actor.unit.as_ref().map_or("no unit", UnitId::as_str)
            ))),
            (role, _) => Err(Rejection::forbidden(format!(
                "role {} may not {action}",
                role.as_str()
            ))),
        }
    }

    /// Checks the time axes: nothing is effective in the future, and only the offices that key
    /// in paper records (province office, Department of Finance) may backdate.
    pub fn check_effective_time(&self) -> Result<(), Rejection> {
        if self.effective_at > self.now {
            return Err(Rejection::rule(
                Rule::EffectiveTimeInFuture,
                "effective time lies in the future",
            ));
        }
        if self.effective_at < self.now
            && !matches!(
                self.actor.role,
                Role::ProvinceOffice | Role::DepartmentOfFinance
            )
        {
            return Err(Rejection::forbidden(
                "only the province office and the Department of Finance may backdate a record",
            ));
        }
        Ok(())
    }
}
