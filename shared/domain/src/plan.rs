//! Kế hoạch — a plan: issued with its code, issuer, date, legal basis and reporting rule.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::context::Context;
use crate::facts::AggregateRef;
use crate::rejection::{Rejection, Rule};
use crate::text::{Name, PlanId, Prose, Reason, Title, UnitId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Số hiệu, e.g. "63/KH-UBND".
    pub code: Name,
    pub title: Title,
    /// Cơ quan ban hành.
    pub issuer: Name,
    pub issued_on: NaiveDate,
    /// Căn cứ pháp lý.
    pub legal_basis: Vec<Prose>,
    /// Chế độ báo cáo, as the plan words it.
    pub reporting_rule: Prose,
    /// Đơn vị nhận báo cáo — the unit the quarterly reports go to (Plan 63: Sở Tài chính, "gửi
    /// báo cáo … về Sở Tài chính để tổng hợp"). Its own reports are reviewed by the province
    /// office, since nobody reviews their own. Absent on plans issued before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_recipient: Option<UnitId>,
}

impl Plan {
    /// Units this plan's rules depend on: the recipient of its reports (and, through it, its
    /// successors).
    pub fn references(&self) -> Vec<AggregateRef> {
        self.report_recipient
            .iter()
            .cloned()
            .map(AggregateRef::Unit)
            .collect()
    }
}

/// Ban hành kế hoạch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuePlan {
    pub plan_id: PlanId,
    pub code: Name,
    pub title: Title,
    pub issuer: Name,
    pub issued_on: NaiveDate,
    pub legal_basis: Vec<Prose>,
    pub reporting_rule: Prose,
    /// Đơn vị nhận báo cáo.
    pub report_recipient: Option<UnitId>,
}

impl IssuePlan {
    fn plan(&self) -> Plan {
        Plan {
            code: self.code.clone(),
            title: self.title.clone(),
            issuer: self.issuer.clone(),
            issued_on: self.issued_on,
            legal_basis: self.legal_basis.clone(),
            reporting_rule: self.reporting_rule.clone(),
            report_recipient: self.report_recipient.clone(),
        }
    }
}

/// Sửa đổi kế hoạch: any of title, legal basis, reporting rule, recipient of reports (which
/// also names the recipient of a plan issued before it was recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendPlan {
    pub plan_id: PlanId,
    pub title: Option<Title>,
    pub legal_basis: Option<Vec<Prose>>,
    pub reporting_rule: Option<Prose>,
    pub report_recipient: Option<UnitId>,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum PlanEvent {
    Issued(Plan),
    Amended {
        title: Option<Title>,
        legal_basis: Option<Vec<Prose>>,
        reporting_rule: Option<Prose>,
        /// Absent from amendments that leave the recipient as it was (all those stored before
        /// it was recorded), so their payloads stay exactly as they were.
        #[serde(skip_serializing_if = "Option::is_none")]
        report_recipient: Option<UnitId>,
        reason: Reason,
    },
}

pub type State = Option<Plan>;

pub fn evolve(state: State, event: &PlanEvent) -> State {
    match (state, event) {
        (None, PlanEvent::Issued(plan)) => Some(plan.clone()),
        (
            Some(plan),
            PlanEvent::Amended {
                title,
                legal_basis,
                reporting_rule,
                report_recipient,
                ..
            },
        ) => Some(Plan {
            title: title.clone().unwrap_or(plan.title),
            legal_basis: legal_basis.clone().unwrap_or(plan.legal_basis),
            reporting_rule: reporting_rule.clone().unwrap_or(plan.reporting_rule),
            report_recipient: report_recipient.clone().or(plan.report_recipient),
            ..plan
        }),
        (state, _) => state,
    }
}

const MANAGE: &[Role] = &[Role::ProvinceOffice];

pub fn issue(state: &State, cmd: &IssuePlan, ctx: &Context) -> Result<Vec<PlanEvent>, Rejection> {
    ctx.require_role(MANAGE, "issue plans")?;
    let issued = cmd.plan();
    match state {
        None => Ok(vec![PlanEvent::Issued(issued)]),
        Some(plan) if plan == &issued => Ok(vec![]),
        Some(_) => Err(Rejection::rule(
            Rule::AlreadyExists,
            format!(
                "plan {} is already issued with other content; amend it instead",
                cmd.plan_id
            ),
        )),
    }
}

pub fn amend(state: &State, cmd: &AmendPlan, ctx: &Context) -> Result<Vec<PlanEvent>, Rejection> {
    ctx.require_role(MANAGE, "amend plans")?;
    let plan = state
        .as_ref()
        .ok_or_else(|| Rejection::not_found(format!("plan {} has not been issued", cmd.plan_id)))?;
    // Only fields that really change are recorded, so a repeated amendment yields nothing.
    let title = cmd.title.clone().filter(|t| t != &plan.title);
    let legal_basis = cmd.legal_basis.clone().filter(|l| l != &plan.legal_basis);
    let reporting_rule = cmd
        .reporting_rule
        .clone()
        .filter(|r| r != &plan.reporting_rule);
    let report_recipient = cmd
        .report_recipient
        .clone()
        .filter(|r| plan.report_recipient.as_ref() != Some(r));
    if title.is_none()
        && legal_basis.is_none()
        && reporting_rule.is_none()
        && report_recipient.is_none()
    {
        return Ok(vec![]);
    }
    Ok(vec![PlanEvent::Amended {
        title,
        legal_basis,
        reporting_rule,
        report_recipient,
        reason: cmd.reason.clone(),
    }])
}
