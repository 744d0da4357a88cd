//! `remediation-admin export` and `compile`: analytics exports and the quarterly compilation.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use readmodel::export::{
    Dataset, ExportError, Format, Range, compilation_csv, compilation_xlsx, export,
    quarterly_compilation,
};
use sqlx::postgres::PgPoolOptions;

/// Why an export or a compilation was not written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("{raw:?} is not an RFC 3339 instant: {source}")]
    Instant {
        raw: String,
        source: chrono::ParseError,
    },
    #[error("no dataset {0:?}")]
    Dataset(String),
    #[error("no format {0:?}")]
    Format(String),
    #[error("--quarter is 1–4")]
    Quarter,
    #[error("no plan {0:?} in the read model")]
    Plan(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A pool whose sessions see the read model's schemas.
async fn read_model(url: &str, prefix: &str) -> Result<sqlx::PgPool, RunError> {
    let search_path = format!("SET search_path TO \"{prefix}core\", \"{prefix}audit\"");
    PgPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(search_path))
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(RunError::Connect)
}

fn instant(raw: &str) -> Result<DateTime<Utc>, RunError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|source| RunError::Instant {
            raw: raw.to_owned(),
            source,
        })
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// events, status-changes, reports, assignments or compliance.
    dataset: String,
    /// Start of the range (inclusive), RFC 3339.
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339.
    #[arg(long)]
    to: Option<String>,
    /// ndjson or csv (UTF-8 with BOM).
    #[arg(long, default_value = "ndjson")]
    format: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/kh63"
    )]
    database_url: String,
    #[arg(long, env = "SCHEMA_PREFIX", default_value = "")]
    schema_prefix: String,
}

/// Streams the export to stdout.
pub async fn run_export(args: ExportArgs) -> Result<(), RunError> {
    let dataset =
        Dataset::parse(&args.dataset).ok_or_else(|| RunError::Dataset(args.dataset.clone()))?;
    let format =
        Format::parse(&args.format).ok_or_else(|| RunError::Format(args.format.clone()))?;
    let range = Range {
        from: args.from.as_deref().map(instant).transpose()?,
        to: args.to.as_deref().map(instant).transpose()?,
    };
    let pool = read_model(&args.database_url, &args.schema_prefix).await?;
    let mut stdout = tokio::io::stdout();
    let rows = export(&pool, dataset, range, format, &mut stdout).await?;
    eprintln!("{rows} rows exported");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    #[arg(long, default_value = "kh-63-2025")]
    plan: String,
    #[arg(long)]
    year: i32,
    #[arg(long)]
    quarter: u8,
    /// xlsx or csv.
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// Where to write; defaults to tong-hop-<plan>-q<quarter>-<year>.<format>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// See the compilation as of this instant (default now).
    #[arg(long)]
    at: Option<String>,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/kh63"
    )]
    database_url: String,
    #[arg(long, env = "SCHEMA_PREFIX", default_value = "")]
    schema_prefix: String,
}

/// Writes the Department of Finance's compilation for a quarter.
pub async fn run_compile(args: CompileArgs) -> Result<(), RunError> {
    if !(1..=4).contains(&args.quarter) {
        return Err(RunError::Quarter);
    }
    let at = args
        .at
        .as_deref()
        .map(instant)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let pool = read_model(&args.database_url, &args.schema_prefix).await?;
    let rows = quarterly_compilation(&pool, &args.plan, args.year, args.quarter, at).await?;
    let code: Option<String> = sqlx::query_scalar("SELECT code FROM plans WHERE plan_id = $1")
        .bind(&args.plan)
        .fetch_optional(&pool)
        .await?;
    let code = code.ok_or_else(|| RunError::Plan(args.plan.clone()))?;
    let bytes = match args.format.as_str() {
        "xlsx" => compilation_xlsx(&rows, &code, args.year, args.quarter)?,
        "csv" => compilation_csv(&rows),
        other => return Err(RunError::Format(other.to_owned())),
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "tong-hop-{}-q{}-{}.{}",
            args.plan, args.quarter, args.year, args.format
        ))
    });
    std::fs::write(&out, bytes).map_err(|source| RunError::Write {
        path: out.clone(),
        source,
    })?;
    println!("{} rows written to {}", rows.len(), out.display());
    Ok(())
}
