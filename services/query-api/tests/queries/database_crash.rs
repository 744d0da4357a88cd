//! PostgreSQL crashes under a running stack (`pg_ctl stop -m immediate` of a server of the
//! test's own) while commands keep arriving, then comes back: the query service says the
//! database is unavailable meanwhile and recovers by itself, the projector waits and catches up,
//! and its tables equal a from-scratch projection of the same stream — nothing lost, nothing
//! doubled.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;
use test_support::{PostgresServer, TestDatabase, all_checksums};

use super::{ITEM_1, PLAN, Stack, office, start_projector};

/// Waits until both projections in `database` have applied `head`.
async fn wait_for_head(database: &TestDatabase, head: u64) {
    let mut conn = sqlx::PgConnection::connect(&database.url())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT last_sequence FROM core.checkpoints UNION ALL SELECT last_sequence FROM audit.checkpoints")
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
        if applied.len() == 2 && applied.iter().all(|s| *s as u64 >= head) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stuck at {applied:?}, waiting for {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_is_waited_out_and_the_read_model_loses_and_doubles_nothing() {
    let postgres = PostgresServer::start();
    let stack = Stack::start_on(postgres.database()).await;
    let before = stack.settle().await;

    postgres.crash();
    let ready = stack.get("/readyz", None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["type"], "urn:kh63:problem:database-unavailable");
    let read = stack
        .get(&format!("/v1/plans/{PLAN}/overview"), Some(&office()))
        .await;
    assert_eq!(
        read.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        read.body
    );
    assert_eq!(read.body["type"], "urn:kh63:problem:database-unavailable");

    // Commands go on while the database is down: the log does not need it.
    const WHILE_DOWN: u64 = 40;
    for n in 0..WHILE_DOWN {
        stack
            .command(
                "set-item-deadline",
                &office(),
                json!({
                    "item_id": ITEM_1,
                    "due_on": format!("2025-12-{:02}", 1 + n % 28),
                    "reason": format!("Điều chỉnh lần {n} khi cơ sở dữ liệu ngừng"),
                }),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    postgres.restart();
    let restarted = Instant::now();
    let head = stack.settle().await;
    eprintln!(
        "database back: {} commits caught up and the query service ready {:?} after the restart",
        head - before,
        restarted.elapsed()
    );
    assert!(head >= before + WHILE_DOWN);
    let overview = stack
        .read(&format!("/v1/plans/{PLAN}/overview"), &office())
        .await;
    assert!(overview.is_object(), "{overview}");

    // The reference: the same stream projected from scratch into a database of its own.
    let fresh = TestDatabase::create();
    let reference = start_projector(&stack.nats, &fresh.url()).await;
    wait_for_head(&fresh, head).await;
    reference.stop().await;
    let mut survived = sqlx::PgConnection::connect(&stack.database.url())
        .await
        .expect("connect");
    let mut scratch = sqlx::PgConnection::connect(&fresh.url())
        .await
        .expect("connect");
    assert_eq!(
        all_checksums(&mut survived, "").await,
        all_checksums(&mut scratch, "").await,
        "the projection that lived through the crash equals one built from scratch"
    );
    drop((survived, scratch));
    stack.stop().await;
}
