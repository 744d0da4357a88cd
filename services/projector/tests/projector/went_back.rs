//! The read model goes back under the running projector: PostgreSQL lost the last batches in a
//! crash (they commit without waiting for their WAL flush), or a backup was restored, after the
//! worker had acknowledged them. The stream still holds them, and the projector applies them
//! again by itself, with no new commit to show it the gap.

use std::time::Duration;

use test_support::{NatsServer, PostgresServer};

use crate::harness::*;

#[tokio::test]
async fn a_read_model_that_went_back_is_brought_forward_without_a_new_commit() {
    let postgres = PostgresServer::start();
    let db = postgres.database();
    let nats = NatsServer::start();
    let CaughtUp {
        mut publisher,
        projector,
        conn,
        ..
    } = caught_up_on_two_units(&nats, &projector_config(&nats, &db.url(), "", 100)).await;
    drop(conn);

    postgres.save();
    let lost = publisher.register("so-cong-thuong", "Sở Công Thương").await;
    publisher.flush().await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", lost).await;
    drop(conn);
    postgres.go_back();

    // Far above the leader lock's heartbeat and a restart of the worker; nothing else is
    // published, so only the projector itself can find what it lost.
    let mut conn = connect(&db.url()).await;
    test_support::wait_for_checkpoints(&mut conn, "", lost, Duration::from_secs(60)).await;
    // Read after the fact, as the projector may apply it again before any look right after the
    // restart: the checkpoints were written by the server as it came back, not kept through it.
    for schema in ["core", "audit"] {
        let rewritten: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT updated_at >= pg_postmaster_start_time() FROM {schema}.checkpoints"
        )))
        .fetch_one(&mut conn)
        .await
        .expect("checkpoint");
        assert!(
            rewritten,
            "{schema}: the database went back one commit (log: {})",
            postgres.log().display()
        );
    }
    let units: i64 = sqlx::query_scalar("SELECT count(*) FROM core.units")
        .fetch_one(&mut conn)
        .await
        .expect("units");
    assert_eq!(units, 3, "the lost registration applied again, once");
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.audit_log")
        .fetch_one(&mut conn)
        .await
        .expect("audit rows");
    assert_eq!(logged, 3, "one audit row per event, none twice");
    projector.stop().await;
}
