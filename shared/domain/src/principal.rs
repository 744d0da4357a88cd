//! Người dùng — the principal behind a request: one user, their unit, and every role they hold
//! (the Department of Finance's staff, for one, review reports and also manage their own unit's
//! tasks and reports as a lead unit).
//!
//! The deciders judge one acting identity ([`Actor`]) at a time, so that each rule stays about one
//! role and each event records the capacity in which its command was decided. Which of a
//! principal's roles acts is chosen here, and only here: [`Command::decide_as`].

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Role};
use crate::command::Command;
use crate::context::Context;
use crate::event::{AggregateState, Event};
use crate::facts::Facts;
use crate::rejection::Rejection;
use crate::text::UnitId;

/// A user with one or more roles, in order of preference (the first is the primary role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user: String,
    unit: Option<UnitId>,
    roles: Vec<Role>,
}

/// Why a principal could not be formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("a principal holds at least one role")]
    NoRole,
}

impl Principal {
    /// Repeated roles are kept once, at their first place.
    pub fn new(
        user: impl Into<String>,
        unit: Option<UnitId>,
        roles: impl IntoIterator<Item = Role>,
    ) -> Result<Self, PrincipalError> {
        let mut held = Vec::new();
        for role in roles {
            if !held.contains(&role) {
                held.push(role);
            }
        }
        if held.is_empty() {
            return Err(PrincipalError::NoRole);
        }
        Ok(Self {
            user: user.into(),
            unit,
            roles: held,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn unit(&self) -> Option<&UnitId> {
        self.unit.as_ref()
    }

    /// Every role held, the primary one first; never empty.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn primary_role(&self) -> Role {
        self.roles[0]
    }

    pub fn holds(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The principal acting in one of its roles.
    fn acting_as(&self, role: Role) -> Actor {
        Actor {
            user: self.user.clone(),
            unit: self.unit.clone(),
            role,
        }
    }
}

impl From<Actor> for Principal {
    /// A single-role principal: what every token carried before principals held several roles.
    fn from(actor: Actor) -> Self {
        Self {
            user: actor.user,
            unit: actor.unit,
            roles: vec![actor.role],
        }
    }
}

/// A command decided for a principal: the events, and the role under which they were decided
/// (what the envelope records as the actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actor: Actor,
    pub events: Vec<Event>,
}

/// How much a rejection tells the caller: that a rule stands in the way says more than that the
/// thing is missing, which says more than that this role may not act at all.
fn informativeness(rejection: &Rejection) -> u8 {
    match rejection {
        Rejection::Forbidden(_) => 0,
        Rejection::NotFound(_) => 1,
        Rejection::Rule { .. } => 2,
    }
}

impl Command {
    /// Decides the command for `principal`: each role it holds is tried in order and the first
    /// the deciders accept acts. Deciding is pure and cheap, and a role only ever gates a
    /// command (the events do not depend on which role passed), so trying them in turn is exact.
    /// When every role is refused, the most informative rejection is returned (the earliest
    /// among equals): a Department of Finance officer refused a review of their own unit's
    /// report hears about that rule, not that unit staff may not review.
    pub fn decide_as(
        &self,
        state: &AggregateState,
        principal: &Principal,
        now: DateTime<Utc>,
        effective_at: DateTime<Utc>,
        facts: &Facts,
    ) -> Result<Decision, Rejection> {
        let mut refusal: Option<Rejection> = None;
        for &role in principal.roles() {
            let actor = principal.acting_as(role);
            let context = Context {
                actor: &actor,
                now,
                effective_at,
                facts,
            };
            match self.decide(state, &context) {
                Ok(events) => return Ok(Decision { actor, events }),
                Err(rejection) => {
                    if refusal
                        .as_ref()
                        .is_none_or(|r| informativeness(&rejection) > informativeness(r))
                    {
                        refusal = Some(rejection);
                    }
                }
            }
        }
        // A principal always holds a role; one without any could do nothing anyway.
        Err(refusal
            .unwrap_or_else(|| Rejection::forbidden("a principal without a role may not act")))
    }
}
