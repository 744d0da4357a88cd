//! `projector replay`: the plan as of an instant, a diff between two instants, and snapshot
//! maintenance, in the terminal.
//!
//! ```text
//! projector replay --as-of <RFC3339> [--axis recorded|effective] [--item ID | --unit ID] [--format json|table]
//! projector replay --diff <T1> <T2> [--axis recorded|effective] [--format json|table] [--limit N]
//! projector replay --snapshot [--every N] [--from-scratch]
//! ```
//!
//! Configuration from the environment, like the projector: `DATABASE_URL`, `SCHEMA_PREFIX`, and
//! `SNAPSHOT_EVERY` (default 5 000). The as-of latency benchmark is
//! `cargo bench -p stack-tests --bench as-of`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, ValueEnum};
use readmodel::Projection;
use remediation_domain::text::{ItemId, UnitId};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time_travel::{AsOf, Axis, DEFAULT_EVERY, TimeTravel, snapshot, table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum Format {
    #[default]
    Json,
    Table,
}

/// The arguments of `projector replay`: one of `--as-of`, `--diff`, `--snapshot`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["as_of", "diff", "snapshot"])))]
pub struct ReplayArgs {
    /// The plan (or `--item`, `--unit`) as of this instant: RFC 3339 with its offset, or `now`.
    #[arg(long, value_parser = parse_instant)]
    as_of: Option<DateTime<Utc>>,
    /// Every change between two instants, with who did it.
    #[arg(long, num_args = 2, value_names = ["T1", "T2"], value_parser = parse_instant)]
    diff: Option<Vec<DateTime<Utc>>>,
    /// Bring the stored snapshots up to date.
    #[arg(long)]
    snapshot: bool,
    /// `recorded` (what the system knew then) or `effective` (what was true then).
    #[arg(long, default_value = "recorded", value_parser = parse_axis)]
    axis: Axis,
    #[arg(long, conflicts_with = "unit", value_parser = |s: &str| ItemId::new(s))]
    item: Option<ItemId>,
    #[arg(long, value_parser = |s: &str| UnitId::new(s))]
    unit: Option<UnitId>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Events between two stored snapshots.
    #[arg(long, env = "SNAPSHOT_EVERY", default_value_t = DEFAULT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Most changes a diff lists.
    #[arg(long, default_value_t = 1_000)]
    limit: u32,
    /// With `--snapshot`: drop the stored snapshots first.
    #[arg(long)]
    from_scratch: bool,
    /// Fold from the start of the log, ignoring stored snapshots.
    #[arg(long)]
    no_snapshots: bool,
}

/// An instant argument that is neither `now` nor RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 instant: {source}")]
pub struct InvalidInstant {
    text: String,
    source: chrono::ParseError,
}

/// `now`, or an RFC 3339 instant with its offset (e.g. `2025-06-30T23:59:59+07:00`).
fn parse_instant(text: &str) -> Result<DateTime<Utc>, InvalidInstant> {
    if text == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|source| InvalidInstant {
            text: text.to_owned(),
            source,
        })
}

/// Why `projector replay` gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    TimeTravel(#[from] time_travel::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("item {item} was not recorded as of {instant}")]
    NoItem {
        item: ItemId,
        instant: DateTime<Utc>,
    },
    #[error("unit {unit} was not registered as of {instant}")]
    NoUnit {
        unit: UnitId,
        instant: DateTime<Utc>,
    },
}

fn parse_axis(text: &str) -> Result<Axis, time_travel::UnknownAxis> {
    text.parse()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn connect() -> Result<(PgPool, String), ReplayError> {
    let url =
        env("DATABASE_URL").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/kh63".to_owned());
    let prefix = env("SCHEMA_PREFIX").unwrap_or_default();
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(ReplayError::Connect)?;
    Ok((pool, Projection::Audit.schema(&prefix)))
}

fn print<T: Serialize>(
    value: &T,
    format: Format,
    table: impl Fn(&T) -> String,
) -> Result<(), ReplayError> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Table => print!("{}", table(value)),
    }
    Ok(())
}

/// Runs `projector replay`.
pub async fn run(options: ReplayArgs) -> Result<(), ReplayError> {
    let (pool, schema) = connect().await?;
    let mut tt = TimeTravel::new(&schema)?;
    if options.no_snapshots {
        tt = tt.without_snapshots();
    }
    if options.snapshot {
        if options.from_scratch {
            snapshot::clear(&pool, tt.schema()).await?;
        }
        let report = tt.refresh_snapshots(&pool, options.every).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(instant) = options.as_of {
        let as_of = AsOf::new(instant, options.axis);
        let mut conn = pool.acquire().await?;
        if let Some(item) = &options.item {
            let view =
                tt.item(&mut conn, as_of, item)
                    .await?
                    .ok_or_else(|| ReplayError::NoItem {
                        item: item.clone(),
                        instant,
                    })?;
            print(&view, options.format, table::item)?;
        } else if let Some(unit) = &options.unit {
            let view =
                tt.unit(&mut conn, as_of, unit)
                    .await?
                    .ok_or_else(|| ReplayError::NoUnit {
                        unit: unit.clone(),
                        instant,
                    })?;
            print(&view, options.format, table::unit)?;
        } else {
            let view = tt.plan(&mut conn, as_of).await?;
            print(&view, options.format, table::plan)?;
        }
    } else if let Some([from, to]) = options.diff.as_deref() {
        let mut conn = pool.acquire().await?;
        let diff = tt
            .diff(&mut conn, options.axis, *from, *to, options.limit)
            .await?;
        print(&diff, options.format, table::diff)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        replay: ReplayArgs,
    }

    fn parse(args: &[&str]) -> Result<ReplayArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("replay").chain(args.iter().copied()))
            .map(|cli| cli.replay)
    }

    #[test]
    fn arguments_parse() {
        let o = parse(&[
            "--as-of",
            "2025-06-30T23:59:59+07:00",
            "--axis",
            "effective",
            "--item",
            "kh-63-2025-01",
            "--format",
            "table",
        ])
        .expect("parses");
        assert_eq!(
            o.as_of,
            Some(parse_instant("2025-06-30T16:59:59Z").expect("instant"))
        );
        assert_eq!(o.axis, Axis::Effective);
        assert_eq!(o.format, Format::Table);
        assert!(o.item.is_some());
        let d = parse(&["--diff", "2025-04-08T00:00:00+07:00", "now"]).expect("parses");
        assert_eq!(d.diff.as_ref().map(Vec::len), Some(2));
        assert_eq!(d.axis, Axis::Recorded);
        assert!(parse(&["--as-of", "yesterday"]).is_err());
        assert!(parse(&["--as-of", "now", "--item", "a", "--unit", "b"]).is_err());
        assert!(parse(&["--snapshot", "--every", "0"]).is_err());
        assert!(parse(&["--as-of", "now", "--snapshot"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
