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
