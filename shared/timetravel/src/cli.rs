//! `projector replay`: the plan as of an instant, a diff between two instants, snapshot
//! maintenance and the latency benchmark.
//!
//! ```text
//! projector replay --as-of <RFC3339> [--axis recorded|effective] [--item ID | --unit ID] [--format json|table]
//! projector replay --diff <T1> <T2> [--axis recorded|effective] [--format json|table] [--limit N]
//! projector replay --snapshot [--every N] [--from-scratch]
//! projector replay --bench [--events N] [--every N] [--queries N] [--keep]
//! ```
//!
//! Configuration from the environment, like the projector: `DATABASE_URL`, `SCHEMA_PREFIX`, and
//! `SNAPSHOT_EVERY` (default 5 000).

use std::time::Duration;

use chrono::{DateTime, Utc};
use readmodel::Projection;
use remediation_domain::text::{ItemId, UnitId};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::snapshot::DEFAULT_EVERY;
use crate::{AsOf, Axis, TimeTravel, bench, snapshot, table};

/// Usage lines for the projector's own usage message.
pub const USAGE: &str = "\
       projector replay --as-of <RFC3339> [--axis recorded|effective] [--item ID | --unit ID] [--format json|table]
       projector replay --diff <T1> <T2> [--axis recorded|effective] [--format json|table] [--limit N]
       projector replay --snapshot [--every N] [--from-scratch]
       projector replay --bench [--events N] [--every N] [--queries N] [--keep]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Table,
}

#[derive(Debug)]
enum Mode {
    AsOf(DateTime<Utc>),
    Diff(DateTime<Utc>, DateTime<Utc>),
    Snapshot,
    Bench,
}

#[derive(Debug)]
struct Options {
    mode: Mode,
    axis: Axis,
    item: Option<ItemId>,
    unit: Option<UnitId>,
    format: Format,
    every: u64,
    events: u64,
    queries: usize,
    limit: u32,
    from_scratch: bool,
    no_snapshots: bool,
    keep: bool,
}

/// `now`, or an RFC 3339 instant with its offset (e.g. `2025-06-30T23:59:59+07:00`).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if text == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant: {e}"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse(args: &[&str]) -> Result<Options, String> {
    let mut mode = None;
    // The query service's default too: what the system knew at T.
    let mut axis = Axis::Recorded;
    let mut item = None;
    let mut unit = None;
    let mut format = Format::Json;
    let mut every = match env("SNAPSHOT_EVERY") {
        Some(v) => v.parse().map_err(|e| format!("SNAPSHOT_EVERY: {e}"))?,
        None => DEFAULT_EVERY,
    };
    let mut events = 100_000;
    let mut queries = 200;
    let mut limit = 1_000;
    let mut from_scratch = false;
    let mut no_snapshots = false;
    let mut keep = false;
    let mut rest = args.iter();
    let value = |flag: &str, rest: &mut std::slice::Iter<'_, &str>| {
        rest.next()
            .map(|v| (*v).to_owned())
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    let number = |flag: &str, v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
    while let Some(arg) = rest.next() {
        match *arg {
            "--as-of" => mode = Some(Mode::AsOf(parse_instant(&value(arg, &mut rest)?)?)),
            "--diff" => {
                let from = parse_instant(&value(arg, &mut rest)?)?;
                let to = parse_instant(&value(arg, &mut rest)?)?;
                mode = Some(Mode::Diff(from, to));
            }
            "--snapshot" => mode = Some(Mode::Snapshot),
            "--bench" => mode = Some(Mode::Bench),
            "--axis" => axis = value(arg, &mut rest)?.parse()?,
            "--item" => {
                item =
                    Some(ItemId::new(value(arg, &mut rest)?).map_err(|e| format!("--item: {e}"))?);
            }
            "--unit" => {
                unit =
                    Some(UnitId::new(value(arg, &mut rest)?).map_err(|e| format!("--unit: {e}"))?);
            }
            "--format" => {
                format = match value(arg, &mut rest)?.as_str() {
                    "json" => Format::Json,
                    "table" => Format::Table,
                    other => return Err(format!("--format must be json or table, not {other:?}")),
                };
            }
            "--every" => every = number(arg, value(arg, &mut rest)?)?,
            "--events" => events = number(arg, value(arg, &mut rest)?)?,
            "--queries" => queries = number(arg, value(arg, &mut rest)?)? as usize,
            "--limit" => {
                limit = u32::try_from(number(arg, value(arg, &mut rest)?)?)
                    .map_err(|e| format!("--limit: {e}"))?;
            }
            "--from-scratch" => from_scratch = true,
            "--no-snapshots" => no_snapshots = true,
            "--keep" => keep = true,
            other => return Err(format!("unknown argument {other:?}\nusage:\n{USAGE}")),
        }
    }
    let mode = mode.ok_or_else(|| {
        format!("replay needs --as-of, --diff, --snapshot or --bench\nusage:\n{USAGE}")
    })?;
    if item.is_some() && unit.is_some() {
        return Err("--item and --unit exclude each other".to_owned());
    }
    if every == 0 {
        return Err("--every must be at least 1".to_owned());
    }
    Ok(Options {
        mode,
        axis,
        item,
        unit,
        format,
        every,
        events,
        queries,
        limit,
        from_scratch,
        no_snapshots,
        keep,
    })
}

async fn connect() -> Result<(PgPool, String), String> {
    let url =
        env("DATABASE_URL").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/kh63".to_owned());
    let prefix = env("SCHEMA_PREFIX").unwrap_or_default();
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    Ok((pool, Projection::Audit.schema(&prefix)))
}

fn print<T: Serialize>(
    value: &T,
    format: Format,
    table: impl Fn(&T) -> String,
) -> Result<(), String> {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
            );
        }
        Format::Table => print!("{}", table(value)),
    }
    Ok(())
}

/// Runs `projector replay <args>`.
pub async fn run(args: &[&str]) -> Result<(), String> {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse(args)?;
    if let Mode::Bench = options.mode {
        let url = env("DATABASE_URL")
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/kh63".to_owned());
        return bench::run(
            &url,
            options.events,
            options.every,
            options.queries,
            options.keep,
        )
        .await;
    }
    let (pool, schema) = connect().await?;
    let mut tt = TimeTravel::new(&schema).map_err(|e| e.to_string())?;
    if options.no_snapshots {
        tt = tt.without_snapshots();
    }
    let fail = |e: crate::Error| e.to_string();
    match options.mode {
        Mode::Snapshot => {
            if options.from_scratch {
                snapshot::clear(&pool, tt.schema()).await.map_err(fail)?;
            }
            let report = tt
                .refresh_snapshots(&pool, options.every)
                .await
                .map_err(fail)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            );
        }
        Mode::AsOf(instant) => {
            let as_of = AsOf::new(instant, options.axis);
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            if let Some(item) = &options.item {
                let view = tt
                    .item(&mut conn, as_of, item)
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| format!("item {item} was not recorded as of {instant}"))?;
                print(&view, options.format, table::item)?;
            } else if let Some(unit) = &options.unit {
                let view = tt
                    .unit(&mut conn, as_of, unit)
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| format!("unit {unit} was not registered as of {instant}"))?;
                print(&view, options.format, table::unit)?;
            } else {
                let view = tt.plan(&mut conn, as_of).await.map_err(fail)?;
                print(&view, options.format, table::plan)?;
            }
        }
        Mode::Diff(from, to) => {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            let diff = tt
                .diff(&mut conn, options.axis, from, to, options.limit)
                .await
                .map_err(fail)?;
            print(&diff, options.format, table::diff)?;
        }
        Mode::Bench => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            matches!(o.mode, Mode::AsOf(t) if t == parse_instant("2025-06-30T16:59:59Z").expect("instant"))
        );
        assert_eq!(o.axis, Axis::Effective);
        assert_eq!(o.format, Format::Table);
        assert!(o.item.is_some());
        let d = parse(&["--diff", "2025-04-08T00:00:00+07:00", "now"]).expect("parses");
        assert!(matches!(d.mode, Mode::Diff(..)));
        assert_eq!(d.axis, Axis::Recorded);
        assert!(parse(&["--as-of", "yesterday"]).is_err());
        assert!(parse(&["--as-of", "now", "--item", "a", "--unit", "b"]).is_err());
        assert!(parse(&["--snapshot", "--every", "0"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
