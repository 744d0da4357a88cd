//! PostgreSQL crashes under a running stack (`pg_ctl stop -m immediate` of a server of the
//! test's own) while commands keep arriving, then comes back: the query service says the
//! database is unavailable meanwhile and recovers by itself, the projector waits and catches up,
//! and its tables equal a from-scratch projection of the same stream — nothing lost, nothing
//! doubled.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use test_support::{PostgresServer, TestDatabase};

use super::{ITEM_1, PLAN, Stack, checksums_of, office, start_projector, wait_for_checkpoints};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_is_waited_out_and_the_read_model_loses_and_doubles_nothing() {
    let postgres = PostgresServer::start();
    let mut stack = Stack::start_on(postgres.database()).await;
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

    // The reference: the same stream projected from scratch into a database of its own (the
    // stack's projector stopped first: both would use the same durable consumers).
    stack.stop_projector().await;
    let fresh = TestDatabase::create();
    let reference = start_projector(&stack.nats, &fresh.url()).await;
    wait_for_checkpoints(&fresh, head).await;
    reference.stop().await;
    assert_eq!(
        checksums_of(&stack.database).await,
        checksums_of(&fresh).await,
        "the projection that lived through the crash equals one built from scratch"
    );
    stack.stop().await;
}
