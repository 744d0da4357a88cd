//! Issue 8: a projection's stop is recorded next to its checkpoint, where the query service (a
//! process of its own) reads it — also when the database does not take it at once — and is
//! cleared once the projection runs again.

use std::time::{Duration, Instant};

use chrono::Utc;
use remediation_domain::Event;
use remediation_domain::text::{Name, Reason};
use remediation_domain::unit::UnitEvent;
use sqlx::{AssertSqlSafe, PgConnection};
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;
use crate::stall::wait_until_not_ready;

/// The recorded stop of `schema`'s projection: (sequence, reason), or `None` when none is.
async fn recorded_stop(conn: &mut PgConnection, schema: &str) -> Option<(Option<i64>, String)> {
    sqlx::query_as::<_, (Option<i64>, String)>(AssertSqlSafe(format!(
        "SELECT stalled_sequence, stalled_reason FROM \"{schema}\".checkpoints
         WHERE stalled_since IS NOT NULL"
    )))
    .fetch_optional(conn)
    .await
    .expect("checkpoints")
}

async fn wait_until(
    conn: &mut PgConnection,
    what: &str,
    done: impl AsyncFn(&mut PgConnection) -> bool,
) {
    let started = Instant::now();
    while !done(conn).await {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One unit registered, then a rename of it published straight to the stream, outside its hash
/// chain; returns the forgery's stream sequence.
async fn history_with_a_forgery(nats: &NatsServer) -> u64 {
    let (_client, js) = jetstream(nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    let forged = Event::Unit(UnitEvent::Renamed {
        from: Name::new("Sở Tài chính").expect("name"),
        to: Name::new("Sở Tài chính giả mạo").expect("name"),
        reason: Reason::new("Giả mạo").expect("reason"),
    });
    let forged = event_store::CloudEvent::new(&target, &forged, &meta("rename-unit", Utc::now()));
    let sequence = publisher
        .raw(
            "events.unit.so-tai-chinh",
            serde_json::to_vec(&[forged]).expect("json"),
        )
        .await;
    publisher.flush().await;
    sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_the_database_does_not_take_at_once_is_recorded_once_it_does() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let forged = history_with_a_forgery(&nats).await;
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    projector::prepare(&pool, "").await.expect("schemas");
    let mut conn = connect(&db.url()).await;
    // Until told otherwise, the core checkpoint refuses to record a stop.
    sqlx::raw_sql(
        "CREATE FUNCTION core.refuse_stops() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.stalled_since IS NOT NULL THEN RAISE EXCEPTION 'the database is away'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_stops BEFORE UPDATE ON core.checkpoints
             FOR EACH ROW EXECUTE FUNCTION core.refuse_stops();",
    )
    .execute(&mut conn)
    .await
    .expect("trigger");

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    // The audit projection's stop is recorded at once; the core one's is refused.
    wait_until(&mut conn, "the audit stop is recorded", async |conn| {
        recorded_stop(conn, "audit").await.is_some()
    })
    .await;
    let (sequence, reason) = recorded_stop(&mut conn, "audit").await.expect("audit stop");
    assert_eq!(sequence, Some(forged as i64));
    assert!(reason.contains("unit/so-tai-chinh"), "{reason}");
    let body = wait_until_not_ready(&projector.url).await;
    let started = Instant::now();
    let mut body = body;
    while body["projections"]["core"]["stalled"].is_null() {
        assert!(started.elapsed() < PATIENCE, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        body = get(&format!("{}/readyz", projector.url)).await.1;
    }
    assert_eq!(recorded_stop(&mut conn, "core").await, None);

    // Once the database takes it, the stop is recorded, without a restart.
    sqlx::raw_sql("DROP TRIGGER refuse_stops ON core.checkpoints")
        .execute(&mut conn)
        .await
        .expect("drop the trigger");
    wait_until(&mut conn, "the core stop is recorded", async |conn| {
        recorded_stop(conn, "core").await.is_some()
    })
    .await;
    let (sequence, reason) = recorded_stop(&mut conn, "core").await.expect("core stop");
    assert_eq!(sequence, Some(forged as i64));
    assert!(reason.contains("unit/so-tai-chinh"), "{reason}");
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_stop_is_cleared_once_the_projection_applies_or_finds_nothing_left() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, _, mut publisher) = stream_with_two_units(&nats).await;
    publisher.flush().await;
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    projector::prepare(&pool, "").await.expect("schemas");
    let mut conn = connect(&db.url()).await;
    // As an earlier run, stopped at the first commit by a bug since fixed, would have left it.
    let stop_earlier = async |conn: &mut PgConnection| {
        for schema in ["core", "audit"] {
            readmodel::record_stall(
                &pool,
                schema,
                readmodel::Projection::parse(schema).expect("projection"),
                Some(1),
                "stream sequence 1: an earlier build could not decode it",
            )
            .await
            .expect("record a stop");
            assert!(recorded_stop(conn, schema).await.is_some());
        }
    };
    stop_earlier(&mut conn).await;

    // It applies the commits: the stop goes with the batch that moves the checkpoint.
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    wait_for_checkpoints(&mut conn, "", 2).await;
    for schema in ["core", "audit"] {
        assert_eq!(recorded_stop(&mut conn, schema).await, None, "{schema}");
    }
    projector.stop().await;

    // Nothing left to apply: the stop goes once the projection has found so.
    stop_earlier(&mut conn).await;
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    for schema in ["core", "audit"] {
        wait_until(&mut conn, "the stop is cleared", async |conn| {
            recorded_stop(conn, schema).await.is_none()
        })
        .await;
    }
    assert_eq!(checkpoint(&mut conn, "core").await, Some(2));
    projector.stop().await;
}
