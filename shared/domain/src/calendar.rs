//! Reporting calendar and deadline qualifiers, decided in Asia/Ho_Chi_Minh local time.
//!
//! Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact for every
//! date this product handles and needs no time-zone database.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Asia/Ho_Chi_Minh: UTC+07:00.
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

/// The local calendar date of an instant.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&vietnam()).date_naive()
}

/// The instant local midnight starts `date`.
pub fn start_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    vietnam()
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .single()
        .expect("a fixed offset has exactly one local midnight")
        .with_timezone(&Utc)
}

/// A calendar quarter (quý), e.g. Q2/2025.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "QuarterParts")]
pub struct Quarter {
    pub year: i32,
    /// 1–4.
    #[schemars(range(min = 1, max = 4))]
    pub quarter: u8,
}

/// The unchecked wire form of a [`Quarter`].
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QuarterParts {
    #[schemars(range(min = 2000, max = 2100))]
    year: i32,
    #[schemars(range(min = 1, max = 4))]
    quarter: u8,
}

/// A quarter outside 1–4, or a year outside 2000–2100.
#[derive(Debug, thiserror::Error)]
#[error("no quarter {quarter} of year {year}")]
pub struct NoSuchQuarter {
    pub year: i32,
    pub quarter: u8,
}

impl TryFrom<QuarterParts> for Quarter {
    type Error = NoSuchQuarter;

    fn try_from(parts: QuarterParts) -> Result<Self, NoSuchQuarter> {
        Self::new(parts.year, parts.quarter).ok_or(NoSuchQuarter {
            year: parts.year,
            quarter: parts.quarter,
        })
    }
}

impl Quarter {
    pub fn new(year: i32, quarter: u8) -> Option<Self> {
        ((1..=4).contains(&quarter) && (2000..=2100).contains(&year))
            .then_some(Self { year, quarter })
    }

    /// The quarter an instant falls in, in local time.
    pub fn containing(at: DateTime<Utc>) -> Self {
        let date = local_date(at);
        Self {
            year: date.year(),
            quarter: (date.month0() / 3 + 1) as u8,
        }
    }

    fn last_month(self) -> u32 {
        u32::from(self.quarter) * 3
    }

    /// First instant of the quarter (local midnight on its first day).
    pub fn starts_at(self) -> DateTime<Utc> {
        let first = NaiveDate::from_ymd_opt(self.year, self.last_month() - 2, 1)
            .expect("quarter months are valid");
        start_of_local_day(first)
    }

    /// The report for the quarter is due strictly before this instant: 00:00 local time on the
    /// 15th of the quarter's last month (Kế hoạch 63: "định kỳ trước ngày 15 của tháng cuối quý").
    pub fn report_due(self) -> DateTime<Utc> {
        let fifteenth = NaiveDate::from_ymd_opt(self.year, self.last_month(), 15)
            .expect("the 15th exists in every month");
        start_of_local_day(fifteenth)
    }

    /// `Q2/2025`, as Vietnamese reports write it.
    pub fn label(self) -> String {
        format!("Q{}/{}", self.quarter, self.year)
    }
}

/// Whether a quarterly report arrived in time (đúng hạn) or late (trễ hạn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Timeliness {
    OnTime,
    Late,
}

/// Timeliness of a report for `quarter` submitted (effectively) at `submitted_at`.
pub fn timeliness(quarter: Quarter, submitted_at: DateTime<Utc>) -> Timeliness {
    if submitted_at < quarter.report_due() {
        Timeliness::OnTime
    } else {
        Timeliness::Late
    }
}

/// Reporting compliance (tình trạng nộp báo cáo) of one unit for one quarter, seen at an instant:
/// the Department of Finance's matrix. The read model's SQL (`reporting_compliance_at`) applies
/// the same rule; `shared/readmodel/tests/rules.rs` holds the two equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compliance {
    /// Đúng hạn: first submitted before the due instant.
    OnTime,
    /// Trễ hạn: first submitted at or after it.
    Late,
    /// Chưa nộp, đã quá hạn: nothing submitted by `at`, and the due instant has passed.
    Missing,
    /// Chưa đến hạn: nothing submitted by `at`, not yet due.
    Pending,
}

impl Compliance {
    /// The standing of a report due at `due_at`, first submitted at `first_submitted_at` (if it
    /// was by `at`), seen at `at`.
    pub fn of(
        due_at: DateTime<Utc>,
        first_submitted_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Self {
        match first_submitted_at.filter(|submitted| *submitted <= at) {
            Some(submitted) if submitted < due_at => Compliance::OnTime,
            Some(_) => Compliance::Late,
            None if at >= due_at => Compliance::Missing,
            None => Compliance::Pending,
        }
    }

    /// The wire name (`on_time`, …), as the read model stores it.
    pub fn wire(self) -> &'static str {
        match self {
            Compliance::OnTime => "on_time",
            Compliance::Late => "late",
            Compliance::Missing => "missing",
            Compliance::Pending => "pending",
        }
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            Compliance::OnTime => "đúng hạn",
            Compliance::Late => "trễ hạn",
            Compliance::Missing => "chưa nộp (quá hạn)",
            Compliance::Pending => "chưa đến hạn",
        }
    }
}

/// Deadline qualifier (tình trạng hạn): derived from a due date and an instant, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineQualifier {
    /// Trong hạn.
    WithinTime,
    /// Sắp quá hạn: three days or less left.
    DueSoon,
    /// Quá hạn.
    Overdue,
    /// Không hạn.
    NoDeadline,
}

impl DeadlineQualifier {
    pub fn label_vi(self) -> &'static str {
        match self {
            Self::WithinTime => "trong hạn",
            Self::DueSoon => "sắp quá hạn",
            Self::Overdue => "quá hạn",
            Self::NoDeadline => "không hạn",
        }
    }
}

/// How close to its deadline a piece of work is.
pub const DUE_SOON: Duration = Duration::days(3);

/// Work due on `due` may be done until the end of that local day.
pub fn deadline_instant(due: NaiveDate) -> DateTime<Utc> {
    start_of_local_day(due + Duration::days(1))
}

/// The qualifier of work due on `due`, looked at instant `at`. For completed work pass the
/// completion instant: completion after the deadline is "hoàn thành quá hạn".
pub fn deadline_qualifier(due: Option<NaiveDate>, at: DateTime<Utc>) -> DeadlineQualifier {
    let Some(due) = due else {
        return DeadlineQualifier::NoDeadline;
    };
    let deadline = deadline_instant(due);
    if at >= deadline {
        DeadlineQualifier::Overdue
    } else if deadline - at <= DUE_SOON {
        DeadlineQualifier::DueSoon
    } else {
        DeadlineQualifier::WithinTime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn q2_2025_report_due_edge_is_local_midnight_of_the_15th() {
        let q2 = Quarter::new(2025, 2).unwrap();
        assert_eq!(q2.report_due(), local("2025-06-15T00:00:00+07:00"));
        assert_eq!(
            timeliness(q2, local("2025-06-14T23:59:59+07:00")),
            Timeliness::OnTime
        );
        assert_eq!(
            timeliness(q2, local("2025-06-15T00:00:00+07:00")),
            Timeliness::Late
        );
        // 2025-06-14T17:30Z is already the 15th in Hà Nội: late, though still the 14th in UTC.
        assert_eq!(
            timeliness(q2, local("2025-06-14T17:30:00Z")),
            Timeliness::Late
        );
    }

    #[test]
    fn every_quarter_is_due_on_the_15th_of_its_last_month() {
        let months: Vec<u32> = (1..=4)
            .map(|q| {
                Quarter::new(2026, q)
                    .unwrap()
                    .report_due()
                    .with_timezone(&vietnam())
                    .month()
            })
            .collect();
        assert_eq!(months, [3, 6, 9, 12]);
    }

    #[test]
    fn quarter_of_an_instant_uses_local_date() {
        // 2025-06-30T17:00Z is 2025-07-01 00:00 in Vietnam: already Q3.
        assert_eq!(
            Quarter::containing(local("2025-06-30T17:00:00Z")),
            Quarter::new(2025, 3).unwrap()
        );
        assert_eq!(
            Quarter::containing(local("2025-06-30T16:59:59Z")),
            Quarter::new(2025, 2).unwrap()
        );
        assert_eq!(
            Quarter::new(2025, 3).unwrap().starts_at(),
            local("2025-07-01T00:00:00+07:00")
        );
    }

    #[test]
    fn deadline_qualifier_edges() {
        let due = NaiveDate::from_ymd_opt(2025, 9, 30);
        use DeadlineQualifier::*;
        assert_eq!(
            deadline_qualifier(None, local("2025-01-01T00:00:00Z")),
            NoDeadline
        );
        assert_eq!(
            deadline_qualifier(due, local("2025-09-27T23:59:59+07:00")),
            WithinTime
        );
        assert_eq!(
            deadline_qualifier(due, local("2025-09-28T00:00:00+07:00")),
            DueSoon
        );
        assert_eq!(
            deadline_qualifier(due, local("2025-09-30T23:59:59+07:00")),
            DueSoon
        );
        assert_eq!(
            deadline_qualifier(due, local("2025-10-01T00:00:00+07:00")),
            Overdue
        );
    }

    #[test]
    fn quarters_outside_1_to_4_do_not_exist() {
        assert!(Quarter::new(2025, 0).is_none());
        assert!(Quarter::new(2025, 5).is_none());
    }
}
