//! Who is acting: the user, their unit and their role, taken from a verified token.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::text::UnitId;

/// Vai trò — role of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Văn phòng UBND tỉnh — manages plans, items, assignments, deadlines; confirms completions.
    ProvinceOffice,
    /// Sở Tài chính — reviews quarterly reports: accepts them or returns them for revision.
    DepartmentOfFinance,
    /// Cán bộ đơn vị — manages its own unit's tasks and reports, nothing of other units.
    UnitStaff,
    /// Kiểm toán — reads everything, verifies the log; changes nothing.
    Auditor,
    /// Người xem — dashboards and exports only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::ProvinceOffice,
        Role::DepartmentOfFinance,
        Role::UnitStaff,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProvinceOffice => "province_office",
            Role::DepartmentOfFinance => "department_of_finance",
            Role::UnitStaff => "unit_staff",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }
}

/// Người thực hiện — the authenticated actor behind a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub user: String,
    /// The unit the user works for; required for unit staff.
    pub unit: Option<UnitId>,
    pub role: Role,
}
