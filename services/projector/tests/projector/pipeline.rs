//! The live worker asks NATS for its next batch while the database applies one, so that neither
//! waits on the other, and still applies and acknowledges nothing of the next batch before the
//! one before it commits.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

/// Commits per batch: the history below is three batches and a bit.
const BATCH: usize = 10;

#[tokio::test]
async fn the_next_batch_is_fetched_while_one_is_applied_and_applied_only_after_it() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_admin, js, mut publisher) = stream_with_two_units(&nats).await;
    let mut head = 0;
    for n in 0..(3 * BATCH) {
        head = publisher
            .register(&format!("don-vi-{n}"), &format!("Đơn vị {n}"))
            .await;
    }
    publisher.flush().await;

    // The core projection's batches wait for the lock its schema's writers take, held here.
    let mut holder = connect(&db.url()).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(readmodel::lock_key("core"))
        .execute(&mut holder)
        .await
        .expect("lock");
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", BATCH)).await;
    let stream = js.get_stream(STREAM).await.expect("stream");
    let consumer_name = event_store::access::projector_consumer("core");
    let deadline = Instant::now() + PATIENCE;
    let info = loop {
        if let Ok(mut consumer) = stream.get_consumer::<pull::Config>(&consumer_name).await
            && let Ok(info) = consumer.info().await
            && info.delivered.stream_sequence >= 2 * BATCH as u64
        {
            break info.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the core worker did not ask for a second batch while its first waited for the \
             database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Nothing of either batch is applied or acknowledged while the first cannot commit.
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acknowledged early: {info:?}"
    );
    let mut conn = connect(&db.url()).await;
    assert_eq!(
        checkpoint(&mut conn, "core").await,
        Some(0),
        "the core projection applied while its lock was held"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(readmodel::lock_key("core"))
        .execute(&mut holder)
        .await
        .expect("unlock");
    wait_for_checkpoints(&mut conn, "", head).await;
    let units: i64 = sqlx::query_scalar("SELECT count(*) FROM core.units")
        .fetch_one(&mut conn)
        .await
        .expect("units");
    assert_eq!(units, 2 + 3 * BATCH as i64, "every unit once, none twice");
    projector.stop().await;
}

/// Batches `projection` applied up to stream sequence `through` (the batch size histogram's
/// count, read once the metrics show that checkpoint: they are counted after the commit).
async fn batches(projector: &InProcessProjector, projection: &str, through: u64) -> u64 {
    let number = |metrics: &str, name: &str| {
        metric(metrics, name, projection).and_then(|value| value.parse::<u64>().ok())
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, metrics) = get_text(&format!("{}/metrics", projector.url)).await;
        if number(&metrics, "kh63_projector_checkpoint").is_some_and(|at| at >= through) {
            return number(&metrics, "kh63_projector_batch_size_count").unwrap_or(0);
        }
        assert!(
            Instant::now() < deadline,
            "{projection} never showed {through}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A projector holding small batches' fetches for `interval`, caught up on the stream's two
/// commits (one small batch: the fetch after it is held); the servers live as long as it does.
struct Held {
    publisher: Publisher,
    projector: InProcessProjector,
    conn: sqlx::PgConnection,
    _admin: async_nats::Client,
    _db: TestDatabase,
    _nats: NatsServer,
}

async fn caught_up_holding(interval: Duration) -> Held {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let mut config = projector_config(&nats, &db.url(), "", 500);
    config.batch_interval = interval;
    let CaughtUp {
        admin,
        publisher,
        projector,
        conn,
    } = caught_up_on_two_units(&nats, &config).await;
    Held {
        publisher,
        projector,
        conn,
        _admin: admin,
        _db: db,
        _nats: nats,
    }
}

/// While commits trickle in, the live worker's batches start `batch_interval` apart (here 2 s,
/// so that the counts below cannot come from timing): a first commit after a quiet stretch is
/// applied at once, the twenty close behind it (one every 30 ms) wait for the interval and come
/// in one batch (three at most, for a slow machine). Fetching again the moment it could, the
/// worker applied about one batch per commit.
#[tokio::test]
async fn small_batches_start_the_batch_interval_apart_but_a_first_commit_is_not_held() {
    // Moved out field by field: the servers in `held` live to the end of the test.
    let held = caught_up_holding(Duration::from_secs(2)).await;
    let (mut publisher, projector, mut conn) = (held.publisher, held.projector, held.conn);
    // The fetch after the catch-up's batch is held for the interval; past it, the worker waits
    // on a fetch that gets the next commit as soon as it is stored.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = batches(&projector, "core", 2).await;

    let stored_at = Instant::now();
    let first = publisher.register("don-vi-0", "Đơn vị 0").await;
    publisher.flush().await;
    wait_for_checkpoints(&mut conn, "", first).await;
    let took = stored_at.elapsed();
    assert!(
        took < Duration::from_millis(1_000),
        "a commit after a quiet stretch was held: applied {took:?} after it was stored"
    );

    let mut last = first;
    for n in 1..=20 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        last = publisher
            .register(&format!("don-vi-{n}"), &format!("Đơn vị {n}"))
            .await;
        publisher.flush().await;
    }
    wait_for_checkpoints(&mut conn, "", last).await;
    let trickle = batches(&projector, "core", last).await - before - 1;
    eprintln!(
        "the first commit applied {took:?} after it was stored; the 20 after it in {trickle} batches"
    );
    assert!(
        (1..=3).contains(&trickle),
        "20 commits 30 ms apart came in {trickle} batches, not held for the interval"
    );
    projector.stop().await;
}

/// A fetch held for the batch interval gives way to a shutdown like any other fetch: with the
/// interval at an hour, the projector stops within 30 s of being asked while the fetch after its
/// small catch-up batch is held. The hold once sat outside the wait for the shutdown, and the
/// stop waited out the whole interval.
#[tokio::test]
async fn a_fetch_held_for_the_batch_interval_gives_way_to_a_shutdown() {
    let held = caught_up_holding(Duration::from_secs(3_600)).await;

    let asked = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), held.projector.stop())
        .await
        .unwrap_or_else(|_| panic!("still stopping {:?} after being asked", asked.elapsed()));
}
