//! The running projector keeps the time-travel snapshots fresh, so as-of queries fold from a
//! recent snapshot however long the history grows, and what they answer does not change.

use std::time::{Duration, Instant};

use chrono::Utc;
use test_support::{NatsServer, TestDatabase};
use time_travel::{AsOf, Axis, PlanView, TimeTravel};

use crate::harness::*;

/// Snapshots every this many events: a handful over the seed's history.
const EVERY: u64 = 40;

async fn snapshots(conn: &mut sqlx::PgConnection, axis: Axis) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit.fold_snapshots WHERE axis = $1")
        .bind(axis.as_str())
        .fetch_one(conn)
        .await
        .expect("count snapshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_keeps_time_travel_snapshots_fresh_and_they_change_no_answer() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    let commits = service.load_seed().await;
    let (_client, js) = jetstream(&nats).await;
    let head = stream_head(&js).await;
    assert_eq!(usize::try_from(head).expect("head"), commits);

    let mut config = projector_config(&nats, &db.url(), "", 50);
    config.snapshot_interval = Some(Duration::from_millis(100));
    config.snapshot_every = EVERY;
    let projector = InProcessProjector::start(&config).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", head).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.audit_log")
        .fetch_one(&mut conn)
        .await
        .expect("count events");
    // One every EVERY events on each axis (the seed backdates nothing, so no effective-axis
    // snapshot is ever invalidated).
    let wanted = events / i64::try_from(EVERY).expect("every");
    let started = Instant::now();
    while snapshots(&mut conn, Axis::Recorded).await < wanted
        || snapshots(&mut conn, Axis::Effective).await < wanted
    {
        assert!(
            started.elapsed() < PATIENCE,
            "no snapshots after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    projector.stop().await;

    let with = TimeTravel::new("audit").expect("schema");
    let without = TimeTravel::new("audit")
        .expect("schema")
        .without_snapshots();
    let now = Utc::now();
    for axis in Axis::ALL {
        let as_of = AsOf::new(now, axis);
        let fast: PlanView = with.plan(&mut conn, as_of).await.expect("as of");
        let mut slow: PlanView = without.plan(&mut conn, as_of).await.expect("as of");
        assert!(
            fast.log.snapshot_sequence.is_some(),
            "{axis}: {:?}",
            fast.log
        );
        assert!(
            fast.log.folded_after_snapshot < EVERY,
            "{axis}: {:?}",
            fast.log
        );
        assert_eq!(fast.log.events_folded, slow.log.events_folded);
        slow.log = fast.log;
        assert_eq!(fast, slow, "{axis}");
        assert_eq!(fast.items.len(), 15);
    }
    service.shutdown().await;
}
