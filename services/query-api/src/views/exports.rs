//! Exports over HTTP: the events (the audit trail) and the analytics views as NDJSON or CSV,
//! streamed row by row, and the Department of Finance's quarterly compilation as XLSX or CSV.
//!
//! An export is never held in memory whole: `readmodel::export::export` writes into one end of
//! an in-memory pipe from a task of its own, in a repeatable-read snapshot on the bulk pool
//! (whose statements may run as long as the export takes; the snapshot's checkpoint is what the
//! freshness headers name), and the response body reads the other end. A slow client slows the
//! query down instead of filling memory; a client that goes away ends it. Should the export fail
//! halfway, the body ends with an error, so the client sees a broken transfer rather than a
//! short file that looks complete.
//!
//! Exporting the events is reading the audit trail: it is recorded ([`crate::reads`]) before the
//! first byte is sent, and refused (503) if it cannot be.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use readmodel::Projection;
use readmodel::export::{
    Dataset, ExportError, Format, Range, compilation_csv, compilation_xlsx, export,
    quarterly_compilation,
};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

use super::compliance::quarter;
use super::{PathId, Snapshot};
use crate::access::Caller;
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::params::{Param, Params};
use crate::state::AppState;

/// The analytics datasets, as `readmodel::export::Dataset` names them (the events have a route
/// of their own: they are the audit trail and only its readers export them).
pub const ANALYTICS: &[&str] = &["status-changes", "reports", "assignments", "compliance"];
pub const FORMATS: &[&str] = &["ndjson", "csv"];
pub const COMPILATION_FORMATS: &[&str] = &["xlsx", "csv"];
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// How much of an export may sit between the database and the client.
const PIPE_BYTES: usize = 64 * 1024;

const COUNT_EVENTS: &str = "SELECT count(*) FROM audit_log
     WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) AND ($2::timestamptz IS NULL OR recorded_at < $2)";
const PLAN_CODE: &str = "SELECT p.code FROM plans p WHERE p.plan_id = $1";

/// The parameters of both export routes.
pub const EXPORT_PARAMS: &[Param] = &[
    Param::instant("from", "Start of the range (inclusive), RFC 3339"),
    Param::instant("to", "End of the range (exclusive), RFC 3339"),
    Param::choice(
        "format",
        FORMATS,
        "ndjson (default: one JSON object per line) or csv (UTF-8 with a byte-order mark, header row)",
    ),
];

fn export_format(params: &Params) -> Format {
    params
        .text("format")
        .and_then(Format::parse)
        .unwrap_or(Format::Ndjson)
}

fn export_range(params: &Params) -> Result<Range, QueryError> {
    let (from, to) = params.range("from", "to")?;
    Ok(Range { from, to })
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
    }
}

fn attachment(filename: &str) -> HeaderValue {
    // File names are built from slugs, digits and '-': plain ASCII, nothing to escape.
    HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A file answer: its media type, a download name, and no caching of what may be sensitive.
fn file(body: Body, content_type: &'static str, filename: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_DISPOSITION, attachment(filename));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A body that reads what `task` writes into the other end of `reader`'s pipe and then ends as
/// the task did: cleanly, or with an error that aborts the transfer.
fn piped(
    reader: DuplexStream,
    task: JoinHandle<Result<u64, ExportError>>,
    name: &'static str,
) -> Body {
    let outcome = futures::stream::once(async move {
        let failure = match task.await {
            Ok(Ok(rows)) => {
                tracing::info!(dataset = name, rows, "export sent");
                return None;
            }
            Ok(Err(ExportError::Io(e))) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::info!(dataset = name, "client left during an export");
                return None;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(dataset = name, error = %failure, "export failed halfway; aborting the transfer");
        Some(Err::<Bytes, io::Error>(io::Error::other(failure)))
    })
    .filter_map(std::future::ready);
    Body::from_stream(ReaderStream::new(reader).chain(outcome))
}

/// The export as a streamed body, read in `snapshot` (a bulk one: its statement may run as long
/// as the export takes), whose freshness the answer carries.
fn streamed(
    snapshot: Snapshot,
    dataset: Dataset,
    range: Range,
    format: Format,
    at: DateTime<Utc>,
) -> Response {
    let (mut writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let freshness = snapshot.freshness;
    let mut tx = snapshot.tx;
    let task =
        tokio::spawn(async move { export(&mut *tx, dataset, range, format, &mut writer).await });
    let body = piped(reader, task, dataset.name());
    let filename = format!(
        "kh63-{}-{}.{}",
        dataset.name(),
        at.format("%Y%m%dT%H%M%SZ"),
        extension(format)
    );
    Fresh(freshness, file(body, format.content_type(), &filename)).into_response()
}

/// `GET /v1/exports/events`: every event with its envelope, recorded in `[from, to)`.
///
/// `to` is capped at the moment of the request: the export is the trail as it stood then, and
/// stays the same however long it streams (and leaves out the record of its own read).
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    params: Params,
) -> Result<Response, QueryError> {
    let started = Utc::now();
    let format = export_format(&params);
    let mut range = export_range(&params)?;
    range.to = Some(range.to.map_or(started, |to| to.min(started)));
    // The count, the record of the read and the export come from one snapshot, so the record
    // names exactly the entries exported. The bulk connection waits through the recording: the
    // export would take one right after anyway.
    let mut snapshot = Snapshot::open_bulk(&state, Projection::Audit).await?;
    let rows: i64 = sqlx::query_scalar(COUNT_EVENTS)
        .bind(range.from)
        .bind(range.to)
        .fetch_one(snapshot.conn())
        .await?;
    let recorded = state
        .audit_reads
        .record(&caller, &uri, u64::try_from(rows).unwrap_or(0))
        .await?;
    let mut response = streamed(snapshot, Dataset::Events, range, format, started);
    response.headers_mut().insert(
        "x-audit-read-sequence",
        HeaderValue::from(recorded.sequence),
    );
    Ok(response)
}

/// `GET /v1/exports/{dataset}`: an analytics view, by the view's own time column.
pub async fn dataset(
    State(state): State<AppState>,
    PathId(name): PathId,
    params: Params,
) -> Result<Response, QueryError> {
    let dataset = Dataset::parse(&name)
        .filter(|d| *d != Dataset::Events)
        .ok_or_else(|| {
            QueryError::NotFound(format!(
                "no dataset {name:?}; exports are events, {}",
                ANALYTICS.join(", ")
            ))
        })?;
    let format = export_format(&params);
    let range = export_range(&params)?;
    // Before the 200 goes out: the read model answers (else 503 with a problem document).
    let snapshot = Snapshot::open_bulk(&state, Projection::Core).await?;
    let at = snapshot.as_of;
    Ok(streamed(snapshot, dataset, range, format, at))
}

fn compilation_failed(error: ExportError) -> QueryError {
    match error {
        ExportError::Database(e) => e.into(),
        other => QueryError::Internal(other.to_string()),
    }
}

/// `GET /v1/plans/{plan_id}/compilation`: the Department of Finance's quarterly compilation.
pub async fn compilation(
    State(state): State<AppState>,
    PathId(plan_id): PathId,
    params: Params,
) -> Result<Fresh<Response>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Core).await?;
    let quarter = quarter(&params, snapshot.as_of)?;
    let code: Option<String> = sqlx::query_scalar(PLAN_CODE)
        .bind(&plan_id)
        .fetch_optional(snapshot.conn())
        .await?;
    let code = code.ok_or_else(|| QueryError::NotFound(format!("no plan {plan_id}")))?;
    let at = snapshot.as_of;
    let rows = quarterly_compilation(snapshot.conn(), &plan_id, quarter.year, quarter.quarter, at)
        .await
        .map_err(compilation_failed)?;
    let freshness = snapshot.freshness;
    drop(snapshot);
    let csv = params.text("format") == Some("csv");
    let (bytes, content_type, extension) = if csv {
        (compilation_csv(&rows), Format::Csv.content_type(), "csv")
    } else {
        (
            compilation_xlsx(&rows, &code, quarter.year, quarter.quarter)
                .map_err(compilation_failed)?,
            XLSX,
            "xlsx",
        )
    };
    let filename = format!(
        "tong-hop-{plan_id}-q{}-{}.{extension}",
        quarter.quarter, quarter.year
    );
    Ok(Fresh(
        freshness,
        file(Body::from(bytes), content_type, &filename),
    ))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn body_of(outcome: Result<u64, ExportError>) -> Result<Bytes, axum::Error> {
        let (mut writer, reader) = tokio::io::duplex(8);
        let task = tokio::spawn(async move {
            writer.write_all(b"first rows\n").await?;
            outcome
        });
        axum::body::to_bytes(piped(reader, task, "test"), usize::MAX).await
    }

    #[tokio::test]
    async fn a_finished_export_ends_the_body_cleanly() {
        let body = body_of(Ok(1)).await.expect("complete body");
        assert_eq!(&body[..], b"first rows\n");
    }

    #[tokio::test]
    async fn an_export_failing_halfway_aborts_the_body_instead_of_ending_it() {
        let failed = body_of(Err(ExportError::Xlsx("the database went away".to_owned()))).await;
        let error = failed.expect_err("no clean end after a failure");
        assert!(
            format!("{error:?}").contains("the database went away"),
            "{error:?}"
        );
    }
}
