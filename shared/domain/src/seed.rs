//! Dữ liệu khởi tạo — the structured transcription of a plan (units, groups, items and who is
//! assigned to what), turned into the ordinary commands that load it. Nothing is written around
//! the deciders: a seed loaded twice decides to change nothing the second time.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::command::Command;
use crate::facts::Assignee;
use crate::group::{AddGroupMember, DefineGroup};
use crate::item::{Assign, RecordItem};
use crate::plan::IssuePlan;
use crate::text::{GroupId, ItemId, Name, Prose, Title, UnitId};
use crate::unit::RegisterUnit;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub plan: IssuePlan,
    pub units: Vec<RegisterUnit>,
    pub groups: Vec<SeedGroup>,
    pub items: Vec<SeedItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGroup {
    pub group_id: GroupId,
    pub name: Name,
    pub members: Vec<SeedMember>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMember {
    pub unit_id: UnitId,
    pub from: NaiveDate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedItem {
    pub item_id: ItemId,
    pub ordinal: u16,
    /// The shortcoming as the plan words it.
    pub title: Title,
    pub sector: Option<Name>,
    pub causes_objective: Option<Prose>,
    pub causes_subjective: Option<Prose>,
    pub remedies: Option<Prose>,
    /// Đơn vị chủ trì.
    pub leads: Vec<Assignee>,
    /// Đơn vị phối hợp.
    pub coordinators: Vec<Assignee>,
}

impl Seed {
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The commands that load the seed, in an order where every reference already exists.
    pub fn commands(&self) -> Vec<Command> {
        let mut commands = vec![Command::IssuePlan(self.plan.clone())];
        commands.extend(self.units.iter().cloned().map(Command::RegisterUnit));
        for group in &self.groups {
            commands.push(Command::DefineGroup(DefineGroup {
                group_id: group.group_id.clone(),
                name: group.name.clone(),
            }));
            commands.extend(group.members.iter().map(|m| {
                Command::AddGroupMember(AddGroupMember {
                    group_id: group.group_id.clone(),
                    unit_id: m.unit_id.clone(),
                    from: m.from,
                })
            }));
        }
        for item in &self.items {
            commands.push(Command::RecordItem(RecordItem {
                item_id: item.item_id.clone(),
                plan_id: self.plan.plan_id.clone(),
                ordinal: item.ordinal,
                title: item.title.clone(),
                sector: item.sector.clone(),
                causes_objective: item.causes_objective.clone(),
                causes_subjective: item.causes_subjective.clone(),
                remedies: item.remedies.clone(),
            }));
            let assign = |assignee: &Assignee| Assign {
                item_id: item.item_id.clone(),
                assignee: assignee.clone(),
            };
            commands.extend(item.leads.iter().map(|a| Command::AssignLead(assign(a))));
            commands.extend(
                item.coordinators
                    .iter()
                    .map(|a| Command::AssignCoordinator(assign(a))),
            );
        }
        commands
    }
}
