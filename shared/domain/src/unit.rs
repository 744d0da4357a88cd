//! Đơn vị — a unit (agency): registered, renamed, succeeded by one or more successors.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::context::Context;
use crate::facts::AggregateRef;
use crate::rejection::{Rejection, Rule};
use crate::text::{Name, Reason, UnitId};

/// Loại đơn vị — kind of unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// Sở.
    Department,
    /// Ban (management boards, e.g. Ban Quản lý Khu kinh tế Nghi Sơn).
    Board,
    /// UBND cấp huyện (district, district-level town or city).
    DistrictCommittee,
    /// UBND cấp xã (commune or ward).
    CommuneCommittee,
    /// Cơ quan ngành dọc trung ương (police, military, social insurance…).
    CentralBranch,
    /// Hội, hiệp hội, đoàn thể.
    Association,
    /// Đơn vị sự nghiệp công lập (hospitals, land registration office…).
    PublicFacility,
    /// Other.
    Other,
}

/// Sáp nhập / giải thể — the unit's responsibilities pass to successors from a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Succession {
    pub successors: Vec<UnitId>,
    pub effective_on: NaiveDate,
    pub reason: Reason,
}

/// A registered unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub name: Name,
    pub kind: UnitKind,
    pub succession: Option<Succession>,
}

impl Unit {
    /// Units this one's rules depend on: its successors.
    pub fn references(&self) -> Vec<AggregateRef> {
        self.succession
            .iter()
            .flat_map(|s| s.successors.iter().cloned().map(AggregateRef::Unit))
            .collect()
    }

    /// Whether the unit has been succeeded by `date` and so takes no new work from then on.
    pub fn succeeded_by(&self, date: NaiveDate) -> bool {
        self.succession
            .as_ref()
            .is_some_and(|s| s.effective_on <= date)
    }
}

/// Đăng ký đơn vị.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterUnit {
    pub unit_id: UnitId,
    pub name: Name,
    pub kind: UnitKind,
}

/// Đổi tên đơn vị.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameUnit {
    pub unit_id: UnitId,
    pub name: Name,
    pub reason: Reason,
}

/// Sáp nhập, giải thể: the unit is succeeded by `successors` from `effective_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SucceedUnit {
    pub unit_id: UnitId,
    #[schemars(length(min = 1))]
    pub successors: Vec<UnitId>,
    pub effective_on: NaiveDate,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum UnitEvent {
    Registered {
        name: Name,
        kind: UnitKind,
    },
    Renamed {
        from: Name,
        to: Name,
        reason: Reason,
    },
    Succeeded(Succession),
}

pub type State = Option<Unit>;

pub fn evolve(state: State, event: &UnitEvent) -> State {
    match (state, event) {
        (None, UnitEvent::Registered { name, kind }) => Some(Unit {
            name: name.clone(),
            kind: *kind,
            succession: None,
        }),
        (Some(unit), UnitEvent::Renamed { to, .. }) => Some(Unit {
            name: to.clone(),
            ..unit
        }),
        (Some(unit), UnitEvent::Succeeded(succession)) => Some(Unit {
            succession: Some(succession.clone()),
            ..unit
        }),
        // Events that do not fit the state are impossible in a log written by `decide`; keeping
        // the state unchanged makes a fold total instead of panicking on a foreign event.
        (state, _) => state,
    }
}

const MANAGE: &[Role] = &[Role::ProvinceOffice];

pub fn register(
    state: &State,
    cmd: &RegisterUnit,
    ctx: &Context,
) -> Result<Vec<UnitEvent>, Rejection> {
    ctx.require_role(MANAGE, "register units")?;
    match state {
        None => Ok(vec![UnitEvent::Registered {
            name: cmd.name.clone(),
            kind: cmd.kind,
        }]),
        Some(unit) if unit.name == cmd.name && unit.kind == cmd.kind => Ok(vec![]),
        Some(unit) => Err(Rejection::rule(
            Rule::AlreadyExists,
            format!(
                "unit {} is already registered as {}",
                cmd.unit_id, unit.name
            ),
        )),
    }
}

pub fn rename(state: &State, cmd: &RenameUnit, ctx: &Context) -> Result<Vec<UnitEvent>, Rejection> {
    ctx.require_role(MANAGE, "rename units")?;
    let unit = existing(state, &cmd.unit_id)?;
    if unit.name == cmd.name {
        return Ok(vec![]);
    }
    Ok(vec![UnitEvent::Renamed {
        from: unit.name.clone(),
        to: cmd.name.clone(),
        reason: cmd.reason.clone(),
    }])
}

pub fn succeed(
    state: &State,
    cmd: &SucceedUnit,
    ctx: &Context,
) -> Result<Vec<UnitEvent>, Rejection> {
    ctx.require_role(MANAGE, "record unit successions")?;
    let unit = existing(state, &cmd.unit_id)?;
    let succession = Succession {
        successors: cmd.successors.clone(),
        effective_on: cmd.effective_on,
        reason: cmd.reason.clone(),
    };
    match &unit.succession {
        Some(existing)
            if existing.successors == succession.successors
                && existing.effective_on == succession.effective_on =>
        {
            return Ok(vec![]);
        }
        Some(_) => {
            return Err(Rejection::rule(
                Rule::InvalidSuccession,
                format!("unit {} already has a succession", cmd.unit_id),
            ));
        }
        None => {}
    }
    if cmd.successors.is_empty() {
        return Err(Rejection::rule(
            Rule::InvalidSuccession,
            "a succession names at least one successor",
        ));
    }
    for successor in &cmd.successors {
        if successor == &cmd.unit_id {
            return Err(Rejection::rule(
                Rule::InvalidSuccession,
                "a unit cannot succeed itself",
            ));
        }
        if ctx.facts.unit(successor)?.succeeded_by(cmd.effective_on) {
            return Err(Rejection::rule(
                Rule::UnitSucceeded,
                format!(
                    "successor {successor} is itself succeeded by {}",
                    cmd.effective_on
                ),
            ));
        }
    }
    Ok(vec![UnitEvent::Succeeded(succession)])
}

fn existing<'s>(state: &'s State, id: &UnitId) -> Result<&'s Unit, Rejection> {
    state
        .as_ref()
        .ok_or_else(|| Rejection::not_found(format!("unit {id} is not registered")))
}
