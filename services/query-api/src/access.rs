//! Who may read what.
//!
//! Deny by default: a route names the roles that may call it in the route table
//! ([`crate::routes::ROUTES`]), the route guard authenticates and checks that list before the
//! handler runs, and the handler receives the [`Caller`] only from the guard — a handler on a
//! route without a guard finds none and answers 401. Finer rules that depend on the data (unit
//! staff see their own unit's internals only) are decided in the handlers, with [`Caller`]'s
//! helpers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use remediation_domain::{Actor, Role};

use crate::error::QueryError;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// No token needed: health, readiness, metrics, the OpenAPI document.
    Public,
    /// A valid bearer token with one of these roles.
    Roles(&'static [Role]),
}

/// Public plan data: dashboards that every role may see.
pub const EVERYONE: &[Role] = &Role::ALL;
/// Everyone but viewers.
pub const STAFF_AND_OVERSIGHT: &[Role] = &[
    Role::ProvinceOffice,
    Role::DepartmentOfFinance,
    Role::Auditor,
    Role::UnitStaff,
];
/// The full change history: the province office and auditors.
pub const AUDIT_READERS: &[Role] = &[Role::ProvinceOffice, Role::Auditor];
/// Verifying the log is the auditors' own business.
pub const AUDITORS: &[Role] = &[Role::Auditor];
/// Exports of the analytics views and the quarterly compilation: everyone but unit staff, whose
/// view of other units' work is limited (the exports are not).
pub const ANALYTICS_READERS: &[Role] = &[
    Role::ProvinceOffice,
    Role::DepartmentOfFinance,
    Role::Auditor,
    Role::Viewer,
];

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Public => &[],
            Access::Roles(roles) => roles,
        }
    }
}

/// The authenticated, authorised caller of a route; put in place by the route guard.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, QueryError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            QueryError::Unauthorized("this route authenticates no caller".to_owned())
        })
    }
}

/// How much of a unit's internal work (tasks, report lines) a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Province office, Department of Finance, auditor: everything.
    Full,
    /// Unit staff: only the units they act for (their own and those it succeeded).
    Units(Vec<String>),
    /// Viewer: public plan data only, no unit internals.
    Public,
}

impl Visibility {
    /// Whether the internal work (tasks, report lines) of `unit` is shown.
    pub fn sees(&self, unit: &str) -> bool {
        match self {
            Visibility::Full => true,
            Visibility::Units(units) => units.iter().any(|u| u == unit),
            Visibility::Public => false,
        }
    }
}

impl Caller {
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The caller's own unit, for unit staff.
    pub fn staff_unit(&self) -> Option<&str> {
        match self.0.role {
            Role::UnitStaff => self.0.unit.as_ref().map(|u| u.as_str()),
            _ => None,
        }
    }
}
