//! Why a command was refused. Every variant maps to one HTTP status at the edge.

use std::fmt;

/// A refused command. Refusals never produce events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The aggregate the command targets, or one it refers to, does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The actor may not issue this command (403).
    #[error("{0}")]
    Forbidden(String),
    /// A business rule forbids the command in the current state (422).
    #[error("{detail}")]
    Rule { rule: Rule, detail: String },
}

/// The business rules a command can break; each has a stable code for clients, which is also its
/// serialised form (an idempotency record keeps the rule a refusal named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    AlreadyExists,
    UnitSucceeded,
    NotAssigned,
    DeadlineBeforePlanIssue,
    InvalidTransition,
    EvidenceRequired,
    ReportAccepted,
    ReportReturned,
    QuarterNotStarted,
    EffectiveTimeInFuture,
    InvalidSuccession,
    EmptyReport,
    DuplicateLine,
    WrongPlan,
    TaskClosed,
    InvalidDigest,
    WrongAccessDay,
    RevokedBeforeAssigned,
    OwnReportReview,
    QuarantineConflict,
}

impl Rule {
    /// Every rule, for checks over all of them.
    pub const ALL: [Rule; 20] = [
        Rule::AlreadyExists,
        Rule::UnitSucceeded,
        Rule::NotAssigned,
        Rule::DeadlineBeforePlanIssue,
        Rule::InvalidTransition,
        Rule::EvidenceRequired,
        Rule::ReportAccepted,
        Rule::ReportReturned,
        Rule::QuarterNotStarted,
        Rule::EffectiveTimeInFuture,
        Rule::InvalidSuccession,
        Rule::EmptyReport,
        Rule::DuplicateLine,
        Rule::WrongPlan,
        Rule::TaskClosed,
        Rule::InvalidDigest,
        Rule::WrongAccessDay,
        Rule::RevokedBeforeAssigned,
        Rule::OwnReportReview,
        Rule::QuarantineConflict,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Rule::AlreadyExists => "already-exists",
            Rule::UnitSucceeded => "unit-succeeded",
            Rule::NotAssigned => "not-assigned",
            Rule::DeadlineBeforePlanIssue => "deadline-before-plan-issue",
            Rule::InvalidTransition => "invalid-transition",
            Rule::EvidenceRequired => "evidence-required",
            Rule::ReportAccepted => "report-accepted",
            Rule::ReportReturned => "report-returned",
            Rule::QuarterNotStarted => "quarter-not-started",
            Rule::EffectiveTimeInFuture => "effective-time-in-future",
            Rule::InvalidSuccession => "invalid-succession",
            Rule::EmptyReport => "empty-report",
            Rule::DuplicateLine => "duplicate-line",
            Rule::WrongPlan => "wrong-plan",
            Rule::TaskClosed => "task-closed",
            Rule::InvalidDigest => "invalid-digest",
            Rule::WrongAccessDay => "wrong-access-day",
            Rule::RevokedBeforeAssigned => "revoked-before-assigned",
            Rule::OwnReportReview => "own-report-review",
            Rule::QuarantineConflict => "quarantine-conflict",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Rejection {
    pub fn rule(rule: Rule, detail: impl Into<String>) -> Self {
        Rejection::Rule {
            rule,
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Rejection::NotFound(detail.into())
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Rejection::Forbidden(detail.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_serialised_as_its_code_and_read_back_from_it() {
        for rule in Rule::ALL {
            let json = serde_json::to_value(rule).expect("a rule serialises");
            assert_eq!(json, rule.code(), "{rule:?}");
            assert_eq!(
                serde_json::from_value::<Rule>(json).expect("a code reads back"),
                rule
            );
        }
        // No two rules share a code, or a stored refusal would read back as the other rule.
        let codes: std::collections::BTreeSet<_> = Rule::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Rule::ALL.len());
    }
}
