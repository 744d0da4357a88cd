//! Who may read what.
//!
//! Deny by default: a route names the roles that may call it in the route table
//! ([`crate::routes::ROUTES`]), the route guard authenticates and checks that list before the
//! handler runs, and the handler receives the [`Caller`] only from the guard — a handler on a
//! route without a guard finds none and answers 401. Finer rules that depend on the data (unit
//! staff see their own unit's internals only) are decided in the handlers, with [`Caller`]'s
//! helpers. A caller holding several roles may read what any of them may: access is the union.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use remediation_domain::{Principal, Role};
use service_kit::auth::Authenticated;

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
/// The roles that see every unit's internal work (tasks, report lines).
const SEE_ALL_UNITS: &[Role] = &[
    Role::ProvinceOffice,
    Role::DepartmentOfFinance,
    Role::Auditor,
];
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
    /// Whether any role the principal holds may call the route.
    pub fn allows(self, principal: &Principal) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => principal.roles().iter().any(|r| roles.contains(r)),
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
pub struct Caller(pub Authenticated);

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
    pub fn principal(&self) -> &Principal {
        &self.0.principal
    }

    /// Whether one of the caller's roles sees every unit's internal work.
    pub fn sees_all_units(&self) -> bool {
        SEE_ALL_UNITS.iter().any(|r| self.principal().holds(*r))
    }

    /// The caller's own unit, for unit staff.
    pub fn staff_unit(&self) -> Option<&str> {
        if self.principal().holds(Role::UnitStaff) {
            self.principal().unit().map(|u| u.as_str())
        } else {
            None
        }
    }
}
