//! The lifecycle shared by items and tasks, as Vietnamese task trackers show it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Trạng thái thực hiện — lifecycle status of an item or a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Chưa thực hiện.
    #[default]
    NotStarted,
    /// Đang thực hiện.
    InProgress,
    /// Chờ xác nhận: the unit reports it done; the province office has yet to confirm.
    AwaitingConfirmation,
    /// Đã hoàn thành: confirmed by the province office.
    Completed,
    /// Tạm hoãn.
    Suspended,
    /// Thực hiện lại: returned at confirmation, or reopened after completion.
    Reopened,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::NotStarted,
        Lifecycle::InProgress,
        Lifecycle::AwaitingConfirmation,
        Lifecycle::Completed,
        Lifecycle::Suspended,
        Lifecycle::Reopened,
    ];

    pub fn label_vi(self) -> &'static str {
        match self {
            Lifecycle::NotStarted => "chưa thực hiện",
            Lifecycle::InProgress => "đang thực hiện",
            Lifecycle::AwaitingConfirmation => "chờ xác nhận",
            Lifecycle::Completed => "đã hoàn thành",
            Lifecycle::Suspended => "tạm hoãn",
            Lifecycle::Reopened => "thực hiện lại",
        }
    }

    /// The transitions a tracker allows. Same-state "changes" are not transitions: a repeated
    /// command that changes nothing yields no events and is handled before this is asked.
    pub fn can_become(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        matches!(
            (self, to),
            (NotStarted, InProgress)
                | (NotStarted, Suspended)
                | (InProgress, AwaitingConfirmation)
                | (InProgress, Suspended)
                | (AwaitingConfirmation, Completed)
                | (AwaitingConfirmation, Reopened)
                | (Completed, Reopened)
                | (Suspended, InProgress)
                | (Reopened, AwaitingConfirmation)
                | (Reopened, Suspended)
        )
    }

    /// Moves that only the province office may make: confirming a completion, and taking a
    /// confirmed completion back.
    pub fn needs_province_office(self, to: Lifecycle) -> bool {
        to == Lifecycle::Completed || self == Lifecycle::Completed
    }
}
