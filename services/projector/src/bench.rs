//! `projector bench`: catch-up rate of the read model over a generated history, next to the raw
//! PostgreSQL COPY rate of the very rows that catch-up produced, measured in the same run.
//!
//! The history goes to a scratch stream and the read model to scratch schemas, both removed
//! afterwards; the live stream and schemas are not touched.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use chrono::{NaiveDate, Utc};
use event_store::{CloudEvent, CommandMeta, seal};
use futures::{StreamExt, TryStreamExt};
use readmodel::{HeadCache, Projection, quoted};
use remediation_domain::item::ItemEvent;
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::text::{ItemId, PlanId, Prose, Text, TextError};
use remediation_domain::{Actor, AggregateRef, Event, Role};
use sqlx::{AssertSqlSafe, PgPool};

use crate::StartError;
use crate::batch::{BatchError, apply_batch};
use crate::decode::Decoder;
use crate::rebuild::Reader;

/// Why the benchmark stopped; the scratch stream and schemas are removed all the same.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A generated identifier the domain refuses.
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    CreateStream(#[from] jetstream::context::CreateStreamError),
    #[error(transparent)]
    GetStream(#[from] jetstream::context::GetStreamError),
    #[error(transparent)]
    Publish(#[from] jetstream::context::PublishError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Apply(#[from] BatchError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Rebuild(#[from] crate::rebuild::RebuildError),
    /// A projection's catch-up task ended without an answer (it panicked).
    #[error("a catch-up task ended without an answer: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the benchmark times over the generated history.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Catch-up as the live worker applies commits: each projection alone, then both at once
    /// `rounds` times, each round followed by the COPY limit.
    CatchUp {
        batch_size: usize,
        rounds: NonZeroU16,
    },
    /// `projector rebuild all`: both projections rebuilt at once into fresh schemas and swapped in.
    Rebuild { batch_size: usize },
}

/// One item's history: recorded, then alternating deadline and status changes.
const EVENTS_PER_ITEM: u64 = 20;

fn text<const MAX: usize>(s: &str) -> Text<MAX> {
    Text::new(s).expect("generated text is valid")
}

fn item_event(item: u64, step: u64, plan: &PlanId) -> Event {
    let day = |d: u64| NaiveDate::from_ymd_opt(2025, 12, 1 + (d % 28) as u32).expect("valid date");
    Event::Item(match step {
        0 => ItemEvent::Recorded {
            plan_id: plan.clone(),
            plan_issued_on: NaiveDate::from_ymd_opt(2025, 4, 8).expect("valid date"),
            ordinal: (item % 999 + 1) as u16,
            title: text(&format!(
                "Nội dung hạn chế số {item} cần khắc phục trong năm 2025"
            )),
            sector: Some(text("Nông nghiệp")),
            causes_objective: None,
            causes_subjective: None,
            remedies: Some(text("Tăng cường ứng dụng công nghệ cao trong sản xuất")),
        },
        1 => ItemEvent::DeadlineSet { due_on: day(item) },
        s if s % 2 == 0 => {
            let (from, to) = match s {
                2 => (Lifecycle::NotStarted, Lifecycle::InProgress),
                s if s % 4 == 0 => (Lifecycle::InProgress, Lifecycle::Suspended),
                _ => (Lifecycle::Suspended, Lifecycle::InProgress),
            };
            ItemEvent::StatusChanged {
                from,
                to,
                reason: text(&format!("Cập nhật tiến độ lần {s}")),
                evidence: None::<Prose>,
                at: Utc::now(),
            }
        }
        s => ItemEvent::DeadlineChanged {
            from: day(item + s - 2),
            to: day(item + s),
            reason: text("Điều chỉnh thời hạn theo tiến độ thực tế"),
        },
    })
}

/// Publishes `events` commits to a scratch stream: items in parallel, each item's commits in
/// order with their expected subject sequence, as the command side would write them.
async fn publish_history(
    js: &jetstream::Context,
    subject_prefix: &str,
    events: u64,
) -> Result<(), BenchError> {
    let plan = PlanId::new("bench-plan")?;
    let meta = CommandMeta {
        command_id: uuid::Uuid::now_v7(),
        command_name: "bench",
        actor: Actor {
            user: "bench".to_owned(),
            unit: None,
            role: Role::ProvinceOffice,
        },
        correlation_id: "bench".to_owned(),
        causation_id: "bench".to_owned(),
        recorded_at: Utc::now(),
        effective_at: Utc::now(),
    };
    let items = events.div_ceil(EVENTS_PER_ITEM);
    let mut last_sequence = vec![0u64; items as usize];
    let mut heads = vec![String::new(); items as usize];
    let mut pending = futures::stream::FuturesOrdered::new();
    let mut published = 0u64;
    // Round-robin over steps: every item's step s is published after all step s−1 acks.
    for step in 0..EVENTS_PER_ITEM {
        for item in 0..items {
            if published == events {
                break;
            }
            let target = AggregateRef::Item(ItemId::new(format!("bench-{item:07}"))?);
            let mut envelope = CloudEvent::new(&target, &item_event(item, step, &plan), &meta);
            heads[item as usize] = seal(&heads[item as usize], std::slice::from_mut(&mut envelope));
            let payload = serde_json::to_vec(&[envelope])?;
            let publish = PublishMessage::build()
                .payload(payload.into())
                .expected_last_subject_sequence(last_sequence[item as usize]);
            let ack = js
                .send_publish(format!("{subject_prefix}.item.bench-{item:07}"), publish)
                .await?;
            pending.push_back(async move { (item, ack.await) });
            published += 1;
            if pending.len() >= 5_000 {
                let (item, ack) = pending.next().await.expect("non-empty");
                last_sequence[item as usize] = ack?.sequence;
            }
        }
        while let Some((item, ack)) = pending.next().await {
            last_sequence[item as usize] = ack?.sequence;
        }
    }
    Ok(())
}

/// Tables each projection fills, for the COPY comparison.
const TABLES: &[(Projection, &str)] = &[
    (Projection::Core, "items"),
    (Projection::Core, "status_history"),
    (Projection::Audit, "audit_log"),
];

/// The COPY limit of one run: every table the catch-up filled, and the audit table alone (one row
/// per event, the limit the issue measures against).
struct CopyRate {
    rows: u64,
    seconds: f64,
    audit_rows: u64,
    audit_seconds: f64,
}

impl CopyRate {
    fn audit_rate(&self) -> f64 {
        self.audit_rows as f64 / self.audit_seconds
    }
}

/// One filled table's rows, copied out as `COPY … TO STDOUT` wrote them.
struct Dump {
    table: &'static str,
    source: String,
    twin: String,
    chunks: Vec<bytes::Bytes>,
    rows: u64,
}

/// Copies every row of the tables in `prefix`'s schemas out, once: the rounds time `COPY` of the
/// same bytes, and reading them is not part of what is timed.
async fn dump(pool: &PgPool, prefix: &str) -> Result<Vec<Dump>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut dumps = Vec::new();
    for &(projection, table) in TABLES {
        let schema = quoted(&projection.schema(prefix));
        let source = format!("{schema}.{}", quoted(table));
        let chunks: Vec<bytes::Bytes> = conn
            .copy_out_raw(&format!("COPY {source} TO STDOUT"))
            .await?
            .try_collect()
            .await?;
        dumps.push(Dump {
            table,
            twin: format!("{schema}.{}", quoted(&format!("{table}_copy"))),
            source,
            rows: chunks.iter().map(|c| bytecount_newlines(c)).sum(),
            chunks,
        });
    }
    Ok(dumps)
}

/// Times `COPY … FROM STDIN` of `dumps` into empty twins of their tables with the same indexes,
/// table by table; each twin is dropped again, ready for the next round.
async fn copy_rate(pool: &PgPool, dumps: &[Dump]) -> Result<CopyRate, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut rate = CopyRate {
        rows: 0,
        seconds: 0.0,
        audit_rows: 0,
        audit_seconds: 0.0,
    };
    for Dump {
        table,
        source,
        twin,
        chunks,
        rows,
    } in dumps
    {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {twin} (LIKE {source} INCLUDING ALL)"
        )))
        .execute(&mut *conn)
        .await?;
        let started = Instant::now();
        let mut copy = conn.copy_in_raw(&format!("COPY {twin} FROM STDIN")).await?;
        for chunk in chunks {
            copy.send(chunk.clone()).await?;
        }
        copy.finish().await?;
        let seconds = started.elapsed().as_secs_f64();
        rate.rows += rows;
        rate.seconds += seconds;
        if *table == "audit_log" {
            rate.audit_rows = *rows;
            rate.audit_seconds = seconds;
        }
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {twin}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok(rate)
}

fn bytecount_newlines(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Runs the benchmark with `events` commits of one event each.
pub async fn run(
    pool: &PgPool,
    js: &jetstream::Context,
    events: u64,
    mode: Mode,
) -> Result<(), BenchError> {
    let run_id = uuid::Uuid::now_v7().simple().to_string()[..12].to_owned();
    let stream_name = format!("BENCH_{run_id}");
    let subject_prefix = format!("bench-{run_id}");
    let prefix = format!("bench_{run_id}_");
    js.create_stream(stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{subject_prefix}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let outcome = measure(
        pool,
        js,
        &stream_name,
        &subject_prefix,
        &prefix,
        events,
        mode,
    )
    .await;
    let _ = js.delete_stream(&stream_name).await;
    // Every schema of the run, the rounds' among them, even when it stopped halfway.
    if let Err(error) = drop_schemas(pool, &prefix).await {
        tracing::warn!(%error, prefix, "the benchmark's scratch schemas could not all be dropped");
    }
    outcome
}

/// Drops every schema whose name starts with `prefix`.
async fn drop_schemas(pool: &PgPool, prefix: &str) -> Result<(), sqlx::Error> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    for schema in schemas {
        readmodel::drop_schema(&mut conn, &schema).await?;
    }
    Ok(())
}

/// Applies the whole scratch stream to `projection` in `prefix`'s schemas, in batches of
/// `batch_size` as the live worker does (the next batch read while one is applied); returns the
/// seconds it took.
async fn catch_up(
    pool: &PgPool,
    decoder: &Decoder,
    stream: &stream::Stream,
    prefix: &str,
    projection: Projection,
    events: u64,
    batch_size: usize,
) -> Result<f64, BenchError> {
    let mut reader = Reader::open(stream, 1, batch_size).await?;
    let schema = projection.schema(prefix);
    let started = Instant::now();
    let mut heads = HeadCache::default();
    let mut batch = reader.next_batch(0, events).await?;
    while let Some(last) = batch.last().map(|d| d.sequence) {
        let (applied, next) = tokio::join!(
            apply_batch(pool, decoder, &schema, projection, &batch, &mut heads),
            reader.next_batch(last, events)
        );
        applied?;
        batch = next?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Times both projections rebuilt at once over the scratch stream, as `projector rebuild all`
/// does, then the COPY limit of the rows they produced.
async fn measure_rebuild(
    pool: &PgPool,
    stream: &stream::Stream,
    prefix: &str,
    events: u64,
    batch_size: usize,
) -> Result<(), BenchError> {
    let started = Instant::now();
    let rebuilt = crate::rebuild::rebuild_all(
        pool,
        stream,
        &Projection::ALL,
        prefix,
        batch_size,
        |_, _| {},
    )
    .await?;
    let took = |which: Projection| {
        rebuilt
            .projections
            .iter()
            .find(|(projection, ..)| *projection == which)
            .map_or(0.0, |(.., took)| took.as_secs_f64())
    };
    let (core, audit) = (took(Projection::Core), took(Projection::Audit));
    let seconds = started.elapsed().as_secs_f64();
    // Read before the COPY below, which reads every table back into this process.
    let resident_peak = resident_peak();
    let copy = copy_rate(pool, &dump(pool, prefix).await?).await?;
    let rate = events as f64 / seconds;
    let copy_audit = copy.audit_rate();
    println!(
        "events: {events} (one per commit; {EVENTS_PER_ITEM} per item: recorded, deadline and status changes)"
    );
    println!(
        "rebuild of both projections at once: {rate:>9.0} events/s ({seconds:.2}s; core {core:.2}s, audit {audit:.2}s)"
    );
    println!(
        "  commits decoded and hashed: {} for {events} commits",
        rebuilt.decoded
    );
    if let Some(bytes) = resident_peak {
        println!(
            "  resident peak through the rebuild: {} MB",
            bytes / (1024 * 1024)
        );
    }
    println!(
        "raw COPY of the resulting {} rows:    {:>9.0} rows/s ({:.2}s)",
        copy.rows,
        copy.rows as f64 / copy.seconds,
        copy.seconds
    );
    println!(
        "raw COPY of the audit table's {} rows: {copy_audit:>9.0} rows/s ({:.2}s)",
        copy.audit_rows, copy.audit_seconds
    );
    println!(
        "rebuild ratio: {:.2} of the audit table's COPY rate",
        rate / copy_audit
    );
    Ok(())
}

/// The process's resident peak so far (`VmHWM`, Linux): through the rebuild, whose memory
/// outgrows the publishing before it. `None` where `/proc` does not say.
fn resident_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kilobytes * 1024)
}

/// Both projections caught up at once over the whole scratch stream into `prefix`'s schemas, as
/// the projector runs them (a worker each, on a task of its own, sharing one decoder); returns
/// the seconds it took and the decoder's counts (decoded, taken by a second projection).
async fn both_at_once(
    pool: &PgPool,
    stream: &stream::Stream,
    prefix: &str,
    events: u64,
    batch_size: usize,
) -> Result<(f64, (u64, u64)), BenchError> {
    let decoder = Arc::new(Decoder::new(crate::DECODED_KEPT_BATCHES * batch_size));
    let started = Instant::now();
    let [core, audit] = Projection::ALL.map(|projection| {
        let (pool, stream, prefix) = (pool.clone(), stream.clone(), prefix.to_owned());
        let decoder = Arc::clone(&decoder);
        tokio::spawn(async move {
            catch_up(
                &pool, &decoder, &stream, &prefix, projection, events, batch_size,
            )
            .await
        })
    });
    let (core, audit) = tokio::join!(core, audit);
    core??;
    audit??;
    let seconds = started.elapsed().as_secs_f64();
    let (decoded, taken) = decoder.counters();
    Ok((seconds, (decoded.get(), taken.get())))
}

/// One round of both projections at once and the COPY limit measured right after it.
struct Round {
    seconds: f64,
    shared: (u64, u64),
    copy: CopyRate,
}

impl Round {
    fn ratio(&self, events: u64) -> f64 {
        events as f64 / self.seconds / self.copy.audit_rate()
    }
}

/// The round whose ratio is the median; of an even number, the lower of the middle two. `None`
/// for no round.
fn median(mut rounds: Vec<Round>, events: u64) -> Option<Round> {
    rounds.sort_by(|a, b| a.ratio(events).total_cmp(&b.ratio(events)));
    let middle = rounds.len().checked_sub(1)? / 2;
    Some(rounds.swap_remove(middle))
}

async fn measure(
    pool: &PgPool,
    js: &jetstream::Context,
    stream_name: &str,
    subject_prefix: &str,
    prefix: &str,
    events: u64,
    mode: Mode,
) -> Result<(), BenchError> {
    let started = Instant::now();
    publish_history(js, subject_prefix, events).await?;
    eprintln!(
        "published {events} commits in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    crate::prepare(pool, prefix).await?;
    let stream = js.get_stream(stream_name).await?;
    let (batch_size, rounds) = match mode {
        Mode::CatchUp { batch_size, rounds } => (batch_size, rounds),
        Mode::Rebuild { batch_size } => {
            return measure_rebuild(pool, &stream, prefix, events, batch_size).await;
        }
    };

    // One projection after the other: what each costs on its own.
    let mut per_projection = Vec::new();
    for projection in Projection::ALL {
        let decoder = Decoder::new(crate::DECODED_KEPT_BATCHES * batch_size);
        let seconds = catch_up(
            pool, &decoder, &stream, prefix, projection, events, batch_size,
        )
        .await?;
        eprintln!(
            "{:<5} caught up on {events} events in {seconds:.1}s",
            projection.name()
        );
        per_projection.push((projection, seconds));
    }
    let total_seconds: f64 = per_projection.iter().map(|(_, s)| s).sum();
    // Measured before any COPY twin exists: what the catch-up itself stored.
    let audit_bytes: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT pg_total_relation_size('{}.audit_log')",
        quoted(&Projection::Audit.schema(prefix))
    )))
    .fetch_one(pool)
    .await?;
    let dumps = dump(pool, prefix).await?;
    let mut measured = Vec::new();
    for number in 1..=rounds.get() {
        // The same history applied again into schemas of the round's own, then the COPY limit
        // right after it, so that each ratio sets two measurements of the same moment side by
        // side.
        let round_prefix = format!("{prefix}parallel{number}_");
        crate::prepare(pool, &round_prefix).await?;
        let (seconds, shared) =
            both_at_once(pool, &stream, &round_prefix, events, batch_size).await?;
        let copy = copy_rate(pool, &dumps).await?;
        drop_schemas(pool, &round_prefix).await?;
        let round = Round {
            seconds,
            shared,
            copy,
        };
        println!(
            "both at once, round {number} of {rounds}: {:.0} events/s, COPY of the audit rows {:.0} rows/s: ratio {:.2}",
            events as f64 / round.seconds,
            round.copy.audit_rate(),
            round.ratio(events)
        );
        measured.push(round);
    }
    let Round {
        seconds: parallel_seconds,
        shared: (decoded, taken),
        copy,
    } = median(measured, events).expect("at least one round: NonZeroU16");
    let catch_up = events as f64 / total_seconds;
    let parallel = events as f64 / parallel_seconds;
    let copy_all = copy.rows as f64 / copy.seconds;
    let copy_audit = copy.audit_rate();
    println!(
        "events: {events} (one per commit; {EVENTS_PER_ITEM} per item: recorded, deadline and status changes)"
    );
    for (projection, seconds) in &per_projection {
        println!(
            "  {:<5} catch-up: {:>9.0} events/s",
            projection.name(),
            events as f64 / seconds
        );
    }
    println!("read model catch-up (both projections): {catch_up:>9.0} events/s");
    println!(
        "both projections in parallel:           {parallel:>9.0} events/s ({parallel_seconds:.2}s)"
    );
    println!(
        "  decoded and hashed once for both: {taken} of {events} commits (decoded {decoded} times)"
    );
    println!(
        "raw COPY of the resulting {} rows:    {copy_all:>9.0} rows/s ({:.2}s)",
        copy.rows, copy.seconds
    );
    println!(
        "raw COPY of the audit table's {} rows: {copy_audit:>9.0} rows/s ({:.2}s)",
        copy.audit_rows, copy.audit_seconds
    );
    println!("ratio: {:.2} of the raw COPY rate", catch_up / copy_all);
    println!(
        "ratio in parallel: {:.2} of the audit table's COPY rate (the median of {rounds} rounds)",
        parallel / copy_audit
    );
    println!(
        "audit table: {:.1} MB with its indexes ({audit_bytes} bytes, {:.0} bytes/event)",
        audit_bytes as f64 / 1e6,
        audit_bytes as f64 / events as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round of 1 000 events that took `seconds`, next to a COPY of 1 000 rows in 0.5 s.
    fn round(seconds: f64) -> Round {
        Round {
            seconds,
            shared: (0, 0),
            copy: CopyRate {
                rows: 1_000,
                seconds: 0.5,
                audit_rows: 1_000,
                audit_seconds: 0.5,
            },
        }
    }

    /// The round reported is a measured one, the middle by ratio, whatever order the rounds ran
    /// in; of an even number, the lower middle (no round's ratio is made better than measured).
    #[test]
    fn the_median_round_is_the_middle_one_by_ratio_and_the_lower_of_two() {
        let ratio = |r: Option<Round>| r.map(|r| (r.ratio(1_000) * 100.0).round());
        // Ratios 0.25, 1.0 and 0.5: 1 000 events in 2, 0.5 and 1 s against 2 000 rows/s.
        let rounds = vec![round(2.0), round(0.5), round(1.0)];
        assert_eq!(ratio(median(rounds, 1_000)), Some(50.0));
        assert_eq!(
            ratio(median(vec![round(0.5), round(2.0)], 1_000)),
            Some(25.0)
        );
        assert_eq!(ratio(median(vec![round(1.0)], 1_000)), Some(50.0));
        assert!(median(Vec::new(), 1_000).is_none());
    }
}
