//! Exports for downstream tools: events or an analytics view for a time range, as NDJSON or CSV
//! (UTF-8 with a byte-order mark so spreadsheet tools read Vietnamese), streamed row by row so
//! memory stays flat for millions of rows; and the Department of Finance's quarterly compilation
//! as CSV or XLSX.

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, PgExecutor, Row};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// UTF-8 byte-order mark: Excel and LibreOffice otherwise guess a legacy code page.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What can be exported, and the time column its range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// Every event with its envelope (`audit_log`), by recorded time.
    Events,
    /// `analytics_status_changes`, by effective time of the change.
    StatusChanges,
    /// `analytics_reports`, by first submission.
    Reports,
    /// `analytics_assignments`, by start of validity.
    Assignments,
    /// `reporting_compliance`, by due instant.
    Compliance,
}

impl Dataset {
    pub const ALL: [Dataset; 5] = [
        Dataset::Events,
        Dataset::StatusChanges,
        Dataset::Reports,
        Dataset::Assignments,
        Dataset::Compliance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Events => "events",
            Dataset::StatusChanges => "status-changes",
            Dataset::Reports => "reports",
            Dataset::Assignments => "assignments",
            Dataset::Compliance => "compliance",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// `(relation, time column, order)`.
    fn source(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Dataset::Events => ("audit_log", "recorded_at", "stream_sequence, position"),
            Dataset::StatusChanges => ("analytics_status_changes", "changed_at", "stream_sequence"),
            Dataset::Reports => (
                "analytics_reports",
                "first_submitted_at",
                "report_id, item_ordinal",
            ),
            Dataset::Assignments => (
                "analytics_assignments",
                "valid_from",
                "item_ordinal, role, assignee_id, valid_from",
            ),
            Dataset::Compliance => ("reporting_compliance", "due_at", "year, quarter, unit_id"),
        }
    }

    fn query(self, select: &str) -> String {
        let (relation, time, order) = self.source();
        let columns = if self == Dataset::Events {
            // The stored envelope lacks its data (stored once, as the payload): reassembled.
            format!("stream_sequence, {} AS envelope", crate::AUDIT_ENVELOPE)
        } else {
            "*".to_owned()
        };
        format!(
            "SELECT {select} FROM (SELECT {columns} FROM {relation}
               WHERE ($1::timestamptz IS NULL OR {time} >= $1) AND ($2::timestamptz IS NULL OR {time} < $2)
               ORDER BY {order}) AS t"
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A time range `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("xlsx: {0}")]
    Xlsx(String),
}

/// Quotes one CSV field when it needs it (RFC 4180).
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Streams `dataset` within `range` to `out`, read through `executor` (a pool, or a transaction
/// whose snapshot the caller wants the export to come from), whose sessions must already have
/// the schemas on their search path. Returns the rows written.
pub async fn export<'c>(
    executor: impl PgExecutor<'c>,
    dataset: Dataset,
    range: Range,
    format: Format,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, ExportError> {
    let mut rows = 0u64;
    match format {
        Format::Ndjson => {
            let sql = dataset.query(if dataset == Dataset::Events {
                "t.envelope::text"
            } else {
                "row_to_json(t)::text"
            });
            let mut stream = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
                .bind(range.from)
                .bind(range.to)
                .fetch(executor);
            while let Some(line) = stream.try_next().await? {
                out.write_all(line.as_bytes()).await?;
                out.write_all(b"\n").await?;
                rows += 1;
            }
        }
        Format::Csv => {
            out.write_all(BOM).await?;
            let mut stream = sqlx::query(AssertSqlSafe(dataset.query("t.*")))
                .bind(range.from)
                .bind(range.to)
                .fetch(executor);
            let mut header_written = false;
            while let Some(row) = stream.try_next().await? {
                if !header_written {
                    let names: Vec<String> = row
                        .columns()
                        .iter()
                        .map(|c| csv_field(sqlx::Column::name(c)))
                        .collect();
                    out.write_all(names.join(",").as_bytes()).await?;
                    out.write_all(b"\r\n").await?;
                    header_written = true;
                }
                let fields: Vec<String> = (0..row.len())
                    .map(|i| csv_field(&text_of(&row, i)))
                    .collect();
                out.write_all(fields.join(",").as_bytes()).await?;
                out.write_all(b"\r\n").await?;
                rows += 1;
            }
        }
    }
    out.flush().await?;
    Ok(rows)
}

/// Any column as text, the way PostgreSQL would print it.
fn text_of(row: &sqlx::postgres::PgRow, index: usize) -> String {
    use sqlx::ValueRef;
    let Ok(raw) = row.try_get_raw(index) else {
        return String::new();
    };
    if raw.is_null() {
        return String::new();
    }
    let type_name = sqlx::TypeInfo::name(raw.type_info().as_ref()).to_owned();
    match type_name.as_str() {
        "INT2" => row.try_get::<i16, _>(index).map(|v| v.to_string()),
        "INT4" => row.try_get::<i32, _>(index).map(|v| v.to_string()),
        "INT8" => row.try_get::<i64, _>(index).map(|v| v.to_string()),
        "BOOL" => row.try_get::<bool, _>(index).map(|v| v.to_string()),
        "DATE" => row.try_get::<NaiveDate, _>(index).map(|v| v.to_string()),
        "TIMESTAMPTZ" => row
            .try_get::<DateTime<Utc>, _>(index)
            .map(|v| v.to_rfc3339()),
        "UUID" => row.try_get::<uuid::Uuid, _>(index).map(|v| v.to_string()),
        "JSON" | "JSONB" => row
            .try_get::<serde_json::Value, _>(index)
            .map(|v| v.to_string()),
        "TEXT[]" => row.try_get::<Vec<String>, _>(index).map(|v| v.join("; ")),
        _ => row.try_get::<String, _>(index),
    }
    .unwrap_or_default()
}

/// One row of the quarterly compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilationRow {
    pub ordinal: i32,
    pub item_title: String,
    pub lead_unit: String,
    pub status: String,
    pub deadline_qualifier: String,
    pub due_on: Option<NaiveDate>,
    pub progress: Option<String>,
    pub report: String,
    pub submitted_at: Option<DateTime<Utc>>,
}

/// Column headers as the Department of Finance's forms word them.
pub const COMPILATION_HEADERS: [&str; 9] = [
    "STT",
    "Nội dung hạn chế, yếu kém",
    "Đơn vị chủ trì",
    "Trạng thái thực hiện",
    "Tình trạng hạn",
    "Thời hạn hoàn thành",
    "Kết quả thực hiện (theo báo cáo quý)",
    "Báo cáo quý",
    "Ngày gửi báo cáo",
];

/// dd/mm/yyyy, in local time for instants.
fn vn_date(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

impl CompilationRow {
    fn cells(&self) -> [String; 9] {
        [
            self.ordinal.to_string(),
            self.item_title.clone(),
            self.lead_unit.clone(),
            self.status.clone(),
            self.deadline_qualifier.clone(),
            self.due_on.map(vn_date).unwrap_or_default(),
            self.progress.clone().unwrap_or_default(),
            self.report.clone(),
            self.submitted_at
                .map(|t| vn_date(remediation_domain::calendar::local_date(t)))
                .unwrap_or_default(),
        ]
    }
}

/// The compilation of `plan` for `year`/`quarter`, as seen at `at`, read through `executor`.
pub async fn quarterly_compilation<'c>(
    executor: impl PgExecutor<'c>,
    plan: &str,
    year: i32,
    quarter: u8,
    at: DateTime<Utc>,
) -> Result<Vec<CompilationRow>, ExportError> {
    let rows = sqlx::query(
        "SELECT ordinal, item_title, lead_unit, status, deadline_qualifier, due_on, progress, report, submitted_at
         FROM quarterly_compilation($1, $2, $3, $4)",
    )
    .bind(plan)
    .bind(year)
    .bind(i32::from(quarter))
    .bind(at)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CompilationRow {
                ordinal: r.try_get("ordinal")?,
                item_title: r.try_get("item_title")?,
                lead_unit: r.try_get("lead_unit")?,
                status: r.try_get("status")?,
                deadline_qualifier: r.try_get("deadline_qualifier")?,
                due_on: r.try_get("due_on")?,
                progress: r.try_get("progress")?,
                report: r.try_get("report")?,
                submitted_at: r.try_get("submitted_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ExportError::from)
}

/// The compilation as CSV with a byte-order mark.
pub fn compilation_csv(rows: &[CompilationRow]) -> Vec<u8> {
    let mut out = BOM.to_vec();
    let header: Vec<String> = COMPILATION_HEADERS.iter().map(|h| csv_field(h)).collect();
    out.extend_from_slice(header.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
    for row in rows {
        let cells: Vec<String> = row.cells().iter().map(|c| csv_field(c)).collect();
        out.extend_from_slice(cells.join(",").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The compilation as an XLSX workbook: a title row, bold headers, wrapped text, frozen header.
pub fn compilation_xlsx(
    rows: &[CompilationRow],
    plan_code: &str,
    year: i32,
    quarter: u8,
) -> Result<Vec<u8>, ExportError> {
    use rust_xlsxwriter::{Format as Cell, FormatAlign, FormatBorder, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| ExportError::Xlsx(e.to_string());
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet
        .set_name(format!("Quý {quarter}-{year}"))
        .map_err(fail)?;
    let title = Cell::new().set_bold().set_font_size(13);
    let header = Cell::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(0xDDEBF7);
    let body = Cell::new()
        .set_text_wrap()
        .set_align(FormatAlign::Top)
        .set_border(FormatBorder::Thin);
    sheet
        .write_string_with_format(
            0,
            0,
            format!("Tổng hợp kết quả khắc phục hạn chế, yếu kém — Kế hoạch {plan_code} — Quý {quarter}/{year}"),
            &title,
        )
        .map_err(fail)?;
    for (column, text) in COMPILATION_HEADERS.iter().enumerate() {
        sheet
            .write_string_with_format(2, column as u16, *text, &header)
            .map_err(fail)?;
    }
    for (index, row) in rows.iter().enumerate() {
        for (column, text) in row.cells().iter().enumerate() {
            sheet
                .write_string_with_format(3 + index as u32, column as u16, text, &body)
                .map_err(fail)?;
        }
    }
    for (column, width) in [6.0, 48.0, 30.0, 16.0, 14.0, 14.0, 48.0, 14.0, 14.0]
        .into_iter()
        .enumerate()
    {
        sheet.set_column_width(column as u16, width).map_err(fail)?;
    }
    sheet.set_freeze_panes(3, 0).map_err(fail)?;
    workbook.save_to_buffer().map_err(fail)
}
