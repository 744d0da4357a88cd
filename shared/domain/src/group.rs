//! Nhóm đơn vị — a named group of units with members over time, as the plan assigns work to
//! "UBND các huyện, thị xã, thành phố" or "các đơn vị liên quan".

use std::collections::BTreeSet;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::calendar::local_date;
use crate::context::Context;
use crate::facts::AggregateRef;
use crate::rejection::{Rejection, Rule};
use crate::text::{GroupId, Name, Reason, UnitId};

/// One stretch of membership: from `from` (inclusive) until `until` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub unit: UnitId,
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: Name,
    pub memberships: Vec<Membership>,
}

impl Group {
    pub fn members_on(&self, date: NaiveDate) -> BTreeSet<UnitId> {
        self.memberships
            .iter()
            .filter(|m| m.from <= date && m.until.is_none_or(|until| date < until))
            .map(|m| m.unit.clone())
            .collect()
    }

    fn open_membership(&self, unit: &UnitId) -> Option<&Membership> {
        self.memberships
            .iter()
            .find(|m| &m.unit == unit && m.until.is_none())
    }

    /// Every unit that ever belonged: rules about any date may need any of them.
    pub fn references(&self) -> Vec<AggregateRef> {
        self.memberships
            .iter()
            .map(|m| m.unit.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(AggregateRef::Unit)
            .collect()
    }
}

/// Lập nhóm đơn vị.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineGroup {
    pub group_id: GroupId,
    pub name: Name,
}

/// Thêm đơn vị vào nhóm từ ngày `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGroupMember {
    pub group_id: GroupId,
    pub unit_id: UnitId,
    pub from: NaiveDate,
}

/// Đưa đơn vị ra khỏi nhóm từ ngày `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveGroupMember {
    pub group_id: GroupId,
    pub unit_id: UnitId,
    pub from: NaiveDate,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum GroupEvent {
    Defined {
        name: Name,
    },
    MemberAdded {
        unit_id: UnitId,
        from: NaiveDate,
    },
    MemberRemoved {
        unit_id: UnitId,
        from: NaiveDate,
        reason: Reason,
    },
}

pub type State = Option<Group>;

pub fn evolve(state: State, event: &GroupEvent) -> State {
    match (state, event) {
        (None, GroupEvent::Defined { name }) => Some(Group {
            name: name.clone(),
            memberships: vec![],
        }),
        (Some(mut group), GroupEvent::MemberAdded { unit_id, from }) => {
            group.memberships.push(Membership {
                unit: unit_id.clone(),
                from: *from,
                until: None,
            });
            Some(group)
        }
        (Some(mut group), GroupEvent::MemberRemoved { unit_id, from, .. }) => {
            if let Some(m) = group
                .memberships
                .iter_mut()
                .find(|m| &m.unit == unit_id && m.until.is_none())
            {
                m.until = Some(*from);
            }
            Some(group)
        }
        (state, _) => state,
    }
}

const MANAGE: &[Role] = &[Role::ProvinceOffice];

pub fn define(
    state: &State,
    cmd: &DefineGroup,
    ctx: &Context,
) -> Result<Vec<GroupEvent>, Rejection> {
    ctx.require_role(MANAGE, "define unit groups")?;
    match state {
        None => Ok(vec![GroupEvent::Defined {
            name: cmd.name.clone(),
        }]),
        Some(group) if group.name == cmd.name => Ok(vec![]),
        Some(group) => Err(Rejection::rule(
            Rule::AlreadyExists,
            format!(
                "group {} is already defined as {}",
                cmd.group_id, group.name
            ),
        )),
    }
}

pub fn add_member(
    state: &State,
    cmd: &AddGroupMember,
    ctx: &Context,
) -> Result<Vec<GroupEvent>, Rejection> {
    ctx.require_role(MANAGE, "change group membership")?;
    let group = existing(state, &cmd.group_id)?;
    if group.open_membership(&cmd.unit_id).is_some() {
        return Ok(vec![]);
    }
    let unit = ctx.facts.unit(&cmd.unit_id)?;
    if unit.succeeded_by(cmd.from.max(local_date(ctx.effective_at))) {
        return Err(Rejection::rule(
            Rule::UnitSucceeded,
            format!(
                "unit {} has been succeeded and takes no new assignments",
                cmd.unit_id
            ),
        ));
    }
    Ok(vec![GroupEvent::MemberAdded {
        unit_id: cmd.unit_id.clone(),
        from: cmd.from,
    }])
}

pub fn remove_member(
    state: &State,
    cmd: &RemoveGroupMember,
    ctx: &Context,
) -> Result<Vec<GroupEvent>, Rejection> {
    ctx.require_role(MANAGE, "change group membership")?;
    let group = existing(state, &cmd.group_id)?;
    let Some(membership) = group.open_membership(&cmd.unit_id) else {
        return Ok(vec![]);
    };
    if cmd.from < membership.from {
        return Err(Rejection::rule(
            Rule::InvalidTransition,
            format!("membership of {} began on {}", cmd.unit_id, membership.from),
        ));
    }
    Ok(vec![GroupEvent::MemberRemoved {
        unit_id: cmd.unit_id.clone(),
        from: cmd.from,
        reason: cmd.reason.clone(),
    }])
}

fn existing<'s>(state: &'s State, id: &GroupId) -> Result<&'s Group, Rejection> {
    state
        .as_ref()
        .ok_or_else(|| Rejection::not_found(format!("unit group {id} is not defined")))
}
