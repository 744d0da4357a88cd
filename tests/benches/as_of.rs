//! The as-of benchmark: latency of the whole plan as of random instants over a generated plan
//! history (`test_support::history`: Plan 63's seed followed by the everyday life of the plan,
//! every event decided by the domain), with stored snapshots, with a cache, and without either;
//! then after more history with backdated facts. It runs in a scratch audit schema of the
//! database at `DATABASE_URL`, dropped at the end.
//!
//! ```text
//! cargo bench -p stack-tests --bench as-of -- [--events N] [--every N] [--queries N] [--keep]
//! ```

use std::process::ExitCode;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use readmodel::{Projection, prepare_schema};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use test_support::history::{History, Rng, fill};
use time_travel::{AsOf, Axis, TimeTravel};

/// As-of latency over a generated plan history.
#[derive(Debug, Parser)]
#[command(name = "as-of")]
struct Args {
    /// Events in the generated history.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events between two stored snapshots.
    #[arg(long, env = "SNAPSHOT_EVERY", default_value_t = time_travel::DEFAULT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Queries per axis and configuration.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Keep the scratch schema for inspection (its name is printed).
    #[arg(long)]
    keep: bool,
    /// The database to measure in.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/kh63"
    )]
    database_url: String,
    /// Ignored: what `cargo bench` passes to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Why the benchmark stopped; the scratch schema is dropped all the same.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("generating the history: {0}")]
    History(#[from] readmodel::ApplyError),
    #[error("time travel: {0}")]
    TimeTravel(#[from] time_travel::Error),
    /// The snapshots answer something else than folding the whole history: the benchmark would
    /// time wrong answers.
    #[error("as of {instant} ({axis}) the snapshot-based fold differs from a full fold")]
    Differs { instant: DateTime<Utc>, axis: Axis },
}

/// p-th percentile (0 < p ≤ 1) of sorted samples.
fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    if sorted.is_empty() {
        return StdDuration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: StdDuration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Latencies of `plan` as of each instant: (whole answers, of which the fold alone), sorted.
async fn latencies(
    pool: &PgPool,
    tt: &TimeTravel,
    axis: Axis,
    instants: &[DateTime<Utc>],
) -> Result<(Vec<StdDuration>, Vec<StdDuration>, u64), BenchError> {
    let mut samples = Vec::with_capacity(instants.len());
    let mut folds = Vec::with_capacity(instants.len());
    let mut folded = 0;
    for instant in instants {
        let started = Instant::now();
        let mut conn = pool.acquire().await?;
        let as_of = AsOf::new(*instant, axis);
        let fold = tt.fold(&mut conn, as_of).await?;
        folds.push(started.elapsed());
        let view = time_travel::view::plan_view(&fold.state, as_of, fold.stats);
        samples.push(started.elapsed());
        folded += view.log.folded_after_snapshot;
    }
    samples.sort();
    folds.sort();
    Ok((samples, folds, folded / instants.len().max(1) as u64))
}

fn instants(rng: &mut Rng, from: DateTime<Utc>, to: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let span = (to - from).num_milliseconds().max(1) as u64;
    (0..n)
        .map(|_| from + Duration::milliseconds(rng.below(span) as i64))
        .collect()
}

async fn report_latencies(
    pool: &PgPool,
    tt: &TimeTravel,
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    queries: usize,
    label: &str,
) -> Result<(), BenchError> {
    for axis in Axis::ALL {
        let instants = instants(rng, from, to, queries);
        let (samples, folds, folded) = latencies(pool, tt, axis, &instants).await?;
        println!(
            "  {label:<22} {:<9}  p50 {:>9}  p99 {:>9}  max {:>9}  (fold alone p50 {}, p99 {}; {} queries, {folded} events folded after the snapshot on average)",
            axis.as_str(),
            ms(percentile(&samples, 0.50)),
            ms(percentile(&samples, 0.99)),
            ms(percentile(&samples, 1.0)),
            ms(percentile(&folds, 0.50)),
            ms(percentile(&folds, 0.99)),
            samples.len(),
        );
    }
    Ok(())
}

/// Checks that snapshot-based answers equal full folds at a few instants.
async fn verify(
    pool: &PgPool,
    tt: &TimeTravel,
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: usize,
) -> Result<(), BenchError> {
    let full = tt.clone().without_snapshots();
    for axis in Axis::ALL {
        for instant in instants(rng, from, to, n) {
            let as_of = AsOf::new(instant, axis);
            let mut conn = pool.acquire().await?;
            let fast = tt.fold(&mut conn, as_of).await?;
            let slow = full.fold(&mut conn, as_of).await?;
            if fast.state != slow.state {
                return Err(BenchError::Differs { instant, axis });
            }
        }
    }
    Ok(())
}

async fn measure(
    pool: &PgPool,
    schema: &str,
    events: u64,
    every: u64,
    queries: usize,
) -> Result<(), BenchError> {
    let span = Duration::days(540);
    let mut history = History::new(63, events, span);
    let started = Instant::now();
    fill(pool, schema, &mut history, true).await?;
    println!("history: {}", history.summary());
    println!(
        "  generated, decided, sealed and inserted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let from = history.issued_at();
    let to = history.clock;

    let tt = TimeTravel::new(schema)?;
    let report = tt.refresh_snapshots(pool, every).await?;
    let (size, total): (Option<f64>, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT avg(octet_length(state))::float8, pg_total_relation_size('\"{schema}\".fold_snapshots')
         FROM \"{schema}\".fold_snapshots"
    )))
    .fetch_one(pool)
    .await?;
    println!(
        "snapshots every {every} events: {} recorded in {:.1}s, {} effective in {:.1}s; {:.1} MB each on average, {:.0} MB stored",
        report.recorded.written,
        report.recorded.seconds,
        report.effective.written,
        report.effective.seconds,
        size.unwrap_or(0.0) / 1e6,
        total as f64 / 1e6
    );

    let states: Vec<(i32, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT format, state FROM \"{schema}\".fold_snapshots ORDER BY stream_sequence DESC LIMIT 3"
    )))
    .fetch_all(pool)
    .await?;
    let started = Instant::now();
    for (format, bytes) in &states {
        time_travel::snapshot::decode_state(*format, bytes.clone()).await?;
    }
    println!(
        "  decoding one of the latest snapshots takes {}",
        ms(started.elapsed() / states.len().max(1) as u32)
    );
    let mut rng = Rng::new(2025);
    verify(pool, &tt, &mut rng, from, to, 3).await?;
    println!("verified: snapshot-based folds equal full folds at 3 random instants per axis");
    println!("as-of latency of the whole plan (fold + view), random instants over the history:");
    report_latencies(pool, &tt, &mut rng, from, to, queries, "snapshots").await?;
    let cached = tt.clone().with_cache(64);
    report_latencies(
        pool,
        &cached,
        &mut rng,
        from,
        to,
        queries,
        "snapshots + cache(64)",
    )
    .await?;
    let full = tt.clone().without_snapshots();
    report_latencies(
        pool,
        &full,
        &mut rng,
        from,
        to,
        queries.min(5),
        "no snapshots",
    )
    .await?;

    // Life goes on: 1% more events, a third of the office's commands backdated by up to 30 days.
    let more = (events / 100).max(100);
    history.backdate_ratio = 0.33;
    history.extend(more);
    let before = history.backdated;
    fill(pool, schema, &mut history, false).await?;
    let report = tt.refresh_snapshots(pool, every).await?;
    println!(
        "appended {more} events ({} backdated); refresh: {} effective snapshots invalidated, {} written, {} events folded in {:.1}s; {} recorded written in {:.1}s",
        history.backdated - before,
        report.effective.invalidated,
        report.effective.written,
        report.effective.events_folded,
        report.effective.seconds,
        report.recorded.written,
        report.recorded.seconds,
    );
    verify(pool, &tt, &mut rng, from, history.clock, 3).await?;
    report_latencies(
        pool,
        &tt,
        &mut rng,
        from,
        history.clock,
        queries,
        "after the refresh",
    )
    .await?;
    Ok(())
}

/// Runs the benchmark in a scratch schema it drops afterwards (unless `keep`).
async fn run(args: Args) -> Result<(), BenchError> {
    let Args {
        events,
        every,
        queries,
        keep,
        database_url: url,
        ..
    } = args;
    if readmodel::create_database_if_missing(&url).await? {
        println!("created the database {url}");
    }
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .acquire_timeout(StdDuration::from_secs(30))
        .connect(&url)
        .await?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("tt_bench_{}_audit", &run_id[20..]);
    prepare_schema(&pool, Projection::Audit, &schema).await?;
    let outcome = measure(&pool, &schema, events, every, queries).await;
    if keep {
        println!("kept the scratch schema {schema}");
        return outcome;
    }
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await;
    outcome
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("as-of benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
