//! Rebuild and swap while the live projector runs, commands keep arriving and readers keep
//! querying the live schemas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use projector::batch::{BatchError, apply_batch};
use projector::decode::Decoder;
use projector::rebuild::{Progress, RebuildError, rebuild};
use readmodel::{ApplyError, Projection};
use remediation_domain::Role;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

/// A query a reader repeats, and whether its answer may never go down (counts of append-only
/// facts, checkpoints).
struct Probe {
    sql: &'static str,
    monotonic: bool,
}

const CORE_PROBES: &[Probe] = &[
    Probe {
        sql: "SELECT last_sequence FROM checkpoints",
        monotonic: true,
    },
    Probe {
        sql: "SELECT count(*) FROM units",
        monotonic: true,
    },
    Probe {
        sql: "SELECT count(*) FROM items_overview WHERE deadline_qualifier IS NOT NULL",
        monotonic: false,
    },
    Probe {
        sql: "SELECT count(*) FROM reporting_compliance WHERE compliance IS NOT NULL",
        monotonic: false,
    },
    Probe {
        sql: "SELECT count(*) FROM status_history",
        monotonic: true,
    },
    Probe {
        sql: "SELECT count(*) FROM analytics_assignments",
        monotonic: true,
    },
];

const AUDIT_PROBES: &[Probe] = &[
    Probe {
        sql: "SELECT last_sequence FROM checkpoints",
        monotonic: true,
    },
    Probe {
        sql: "SELECT count(*) FROM audit_log",
        monotonic: true,
    },
    Probe {
        sql: "SELECT count(*) FROM audit_log WHERE command_name = 'register-unit'",
        monotonic: true,
    },
];

/// Repeats `probes` on one connection whose search path is `schema` until `stop`; returns every
/// failure (an error, or a monotonic answer going down).
async fn reader(
    url: String,
    schema: &'static str,
    probes: &'static [Probe],
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Vec<String> {
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    sqlx::query(AssertSqlSafe(format!("SET search_path TO {schema}")))
        .execute(&mut conn)
        .await
        .expect("search path");
    let mut failures = Vec::new();
    let mut highest: BTreeMap<&str, i64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        for probe in probes {
            match sqlx::query_scalar::<_, i64>(probe.sql)
                .fetch_one(&mut conn)
                .await
            {
                Ok(value) => {
                    let high = highest.entry(probe.sql).or_insert(value);
                    if probe.monotonic && value < *high {
                        failures.push(format!(
                            "{schema}: {} went from {high} to {value}",
                            probe.sql
                        ));
                    }
                    *high = (*high).max(value);
                }
                Err(e) => failures.push(format!("{schema}: {}: {e}", probe.sql)),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    failures
}

/// `schema`'s indexes as (name, definition), the schema's name left out of the definitions.
async fn indexes(pool: &sqlx::PgPool, schema: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, replace(indexdef, schemaname || '.', '')
         FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("indexes")
}

/// Waits until `counter` has moved on by `by` from now.
async fn wait_for_more(counter: &AtomicU64, by: u64) {
    let target = counter.load(Ordering::Relaxed) + by;
    let started = Instant::now();
    while counter.load(Ordering::Relaxed) < target {
        assert!(started.elapsed() < PATIENCE, "stopped making progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Both projections applied to the stream's first `head` commits, one after the other and with
/// no rebuild involved, into `prefix`'s schemas: the reference a rebuild is compared with.
async fn fresh_pass(
    pool: &sqlx::PgPool,
    js: &async_nats::jetstream::Context,
    head: u64,
    prefix: &str,
) {
    projector::prepare(pool, prefix)
        .await
        .expect("prepare the reference");
    let messages = all_messages(js, head).await;
    let decoder = Decoder::new(500);
    for projection in Projection::ALL {
        let heads = &mut readmodel::HeadCache::default();
        for chunk in messages.chunks(500) {
            apply_batch(
                pool,
                &decoder,
                &projection.schema(prefix),
                projection,
                chunk,
                heads,
            )
            .await
            .expect("reference batch");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_swaps_in_under_queries_and_traffic_and_the_live_projector_carries_on() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    service.load_seed().await;
    let (_client, js) = jetstream(&nats).await;
    let live = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 50)).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", stream_head(&js).await).await;

    // Commands keep arriving: units registered, deadlines moved.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer =
        tokio::spawn({
            let (stop, written) = (stop_writing.clone(), written.clone());
            let mut api = Api::new(&service);
            async move {
                let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    api.post("register-unit", &office, None, json!({
                    "unit_id": format!("xa-moi-{n:04}"), "name": format!("UBND xã mới số {n}"),
                    "kind": "commune_committee",
                }))
                .await;
                    let due = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
                        + chrono::Duration::days(n as i64);
                    api.post(
                        "set-item-deadline",
                        &office,
                        None,
                        json!({
                            "item_id": format!("kh-63-2025-{:02}", n % 15 + 1), "due_on": due,
                            "reason": "Điều chỉnh theo tiến độ",
                        }),
                    )
                    .await;
                    n += 1;
                    written.fetch_add(2, Ordering::Relaxed);
                    // A steady trickle, not a flood: the point is arrivals during the rebuild.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });

    // Readers keep querying the live schemas, each on its own connection.
    let stop_reading = Arc::new(AtomicBool::new(false));
    let queried = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = [
        ("core", CORE_PROBES),
        ("core", CORE_PROBES),
        ("core", CORE_PROBES),
        ("audit", AUDIT_PROBES),
    ]
    .into_iter()
    .map(|(schema, probes)| {
        tokio::spawn(reader(
            db.url(),
            schema,
            probes,
            stop_reading.clone(),
            queried.clone(),
        ))
    })
    .collect();
    wait_for_more(&written, 20).await;
    wait_for_more(&queried, 50).await;

    // Rebuild both projections from the stream and swap them in, with progress.
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    let stream = js.get_stream(STREAM).await.expect("stream");
    let head_before = stream_head(&js).await;
    let (queried_before, written_before) = (
        queried.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
    );
    let mut progress: Vec<Progress> = Vec::new();
    let core = rebuild(&pool, &stream, Projection::Core, "core", 40, |p| {
        progress.push(p)
    })
    .await
    .expect("core rebuilt");
    let audit = rebuild(&pool, &stream, Projection::Audit, "audit", 40, |_| {})
        .await
        .expect("audit rebuilt");
    assert!(
        core >= head_before && audit >= head_before,
        "{core}, {audit} < {head_before}"
    );
    // Queries and commands really ran while the rebuild did.
    assert!(queried.load(Ordering::Relaxed) > queried_before);
    assert!(written.load(Ordering::Relaxed) > written_before);
    // Progress was reported batch by batch up to the head the rebuild started from.
    assert!(progress.len() >= 3, "{} progress reports", progress.len());
    assert!(progress.windows(2).all(|w| w[0].applied <= w[1].applied));
    let last = progress.last().expect("progress");
    assert_eq!(last.applied, last.head);
    assert!(last.head >= head_before);
    // The swapped-in tables come with planner statistics (before PostgreSQL 15 the statistics
    // views lag by up to half a second).
    let started = Instant::now();
    loop {
        let unanalysed: Vec<String> = sqlx::query_scalar(
            "SELECT schemaname || '.' || relname FROM pg_stat_user_tables
             WHERE schemaname IN ('core', 'audit') AND last_analyze IS NULL",
        )
        .fetch_all(&pool)
        .await
        .expect("statistics");
        if unanalysed.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never analysed: {unanalysed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The rebuild builds the secondary indexes after its bulk load: the swapped-in schemas have
    // every index a freshly migrated one has.
    for projection in Projection::ALL {
        let fresh = format!("{}_fresh", projection.name());
        readmodel::prepare_schema(&pool, projection, &fresh)
            .await
            .expect("migrate");
        assert_eq!(
            indexes(&pool, projection.name()).await,
            indexes(&pool, &fresh).await,
            "{}",
            projection.name()
        );
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {fresh} CASCADE")))
            .execute(&pool)
            .await
            .expect("drop");
    }

    // The swapped-in schemas keep serving, and the live projector keeps applying to them.
    wait_for_more(&queried, 100).await;
    wait_for_more(&written, 10).await;
    stop_writing.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let mut api = Api::new(&service);
    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
    let after_swap = api
        .post("register-unit", &office, None, json!({
            "unit_id": "xa-sau-hoan-doi", "name": "UBND xã Sau Hoán Đổi", "kind": "commune_committee",
        }))
        .await;
    let head = stream_head(&js).await;
    assert_eq!(head, after_swap);
    wait_for_checkpoints(&mut conn, "", head).await;
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM core.units WHERE unit_id = 'xa-sau-hoan-doi'")
            .fetch_optional(&mut conn)
            .await
            .expect("unit");
    assert_eq!(name.as_deref(), Some("UBND xã Sau Hoán Đổi"));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.audit_log WHERE stream_sequence = $1")
            .bind(after_swap as i64)
            .fetch_one(&mut conn)
            .await
            .expect("audit");
    assert_eq!(audited, 1);
    assert_eq!(
        live.projector.context.status.stalled(Projection::Core),
        None
    );
    assert_eq!(
        live.projector.context.status.stalled(Projection::Audit),
        None
    );

    stop_reading.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for reader in readers {
        failures.extend(reader.await.expect("reader"));
    }
    assert!(
        failures.is_empty(),
        "{} failed queries: {failures:#?}",
        failures.len()
    );
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '%\\_rebuild' OR nspname LIKE '%\\_retired'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("schemas");
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Equal, table by table, to an independent from-scratch pass over the same stream in
    // schemas of its own.
    fresh_pass(&pool, &js, head, "ref_").await;
    assert_eq!(
        all_checksums(&mut conn, "").await,
        all_checksums(&mut conn, "ref_").await
    );

    live.stop().await;
    service.shutdown().await;
}

/// A rebuild holds its chain heads in memory between batches. When a batch fails past the chain
/// check, at an event the core projection cannot apply, the rebuild goes through that batch a
/// commit at a time, as it must to find the commit; the commits before it are then checked
/// against the heads as they were before the failed attempt, so the rebuild stops at that
/// event, with its error, and not at an earlier commit as if it were forged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_stops_at_the_event_it_cannot_apply_not_at_the_commits_before_it() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js, mut publisher) = stream_with_two_units(&nats).await;
    let unknown = publisher.unknown_type("so-moi", "Sở Mới").await;
    publisher.flush().await;
    assert_eq!(unknown, 3);

    let pool = projector::connect_database(&db.url()).await.expect("pool");
    let stream = js.get_stream(STREAM).await.expect("stream");
    let error = rebuild(&pool, &stream, Projection::Core, "core", 10, |_| {})
        .await
        .expect_err("the unknown event stops the rebuild");
    assert!(
        matches!(
            &error,
            RebuildError::Apply(BatchError::Apply(ApplyError::Undecodable { sequence, .. }))
                if *sequence == unknown
        ),
        "{error}"
    );
}

/// `projector rebuild all` reads the stream once for both projections and keeps them within a
/// few batches of each other, so each commit is decoded and hashed once. Read apart, the audit
/// projection ran ahead of the core one by more than the decoder keeps, and most commits were
/// decoded twice. The rebuilt tables equal an independent pass over the same stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_both_projections_decodes_each_commit_once_and_equals_a_fresh_pass() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    let commits = service.load_seed().await as u64;
    let (_client, js) = jetstream(&nats).await;
    let head = stream_head(&js).await;
    assert_eq!(head, commits);
    assert!(head > 100, "{head} commits");

    let pool = projector::connect_database(&db.url()).await.expect("pool");
    projector::prepare(&pool, "").await.expect("prepare");
    let stream = js.get_stream(STREAM).await.expect("stream");
    // Batches of two: the decoder keeps eight commits, so a drift of a few batches shows.
    let rebuilt =
        projector::rebuild::rebuild_all(&pool, &stream, &Projection::ALL, "", 2, |_, _| {})
            .await
            .expect("rebuilt");
    assert_eq!(
        rebuilt
            .projections
            .iter()
            .map(|&(projection, checkpoint, _)| (projection, checkpoint))
            .collect::<Vec<_>>(),
        Projection::ALL
            .map(|projection| (projection, head))
            .to_vec()
    );
    assert_eq!(rebuilt.decoded, head, "decodes for {head} commits");

    fresh_pass(&pool, &js, head, "ref_").await;
    let mut conn = connect(&db.url()).await;
    assert_eq!(
        all_checksums(&mut conn, "").await,
        all_checksums(&mut conn, "ref_").await
    );
    service.shutdown().await;
}
