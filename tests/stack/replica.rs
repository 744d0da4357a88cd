//! The query service reading a replica (`DATABASE_READ_URL`): it answers from the replica's
//! state, and `min_sequence` waits for the replica's checkpoint, not the primary's.
//!
//! A streaming replica cannot be set up inside a test on a shared PostgreSQL; the replica here is
//! a database of its own that receives the primary's projection schemas by `pg_dump | psql`
//! (a replica that replays only when told). That shows where the reads go and what they wait
//! for; replication itself is not exercised.

use std::process::{Command, Stdio};

use super::*;

/// Replaces the replica's projection schemas with the primary's, as they are now.
fn replay(primary: &TestDatabase, replica: &TestDatabase) {
    let drop = Command::new("psql")
        .arg(replica.url())
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg("DROP SCHEMA IF EXISTS core, audit CASCADE")
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(drop.success(), "drop the replica's schemas");
    let mut dump = Command::new("pg_dump")
        .arg(primary.url())
        .args(["--schema=core", "--schema=audit", "--no-owner"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("pg_dump (install Debian's postgresql-client)");
    let restore = Command::new("psql")
        .arg(replica.url())
        .args(["-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(dump.stdout.take().expect("pg_dump's output"))
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(dump.wait().expect("pg_dump").success(), "pg_dump");
    assert!(restore.success(), "restore into the replica");
}

#[tokio::test]
async fn a_query_service_on_a_replica_reads_it_and_waits_for_its_checkpoint() {
    let stack = Stack::start().await;
    let replica = TestDatabase::create();
    replay(&stack.database, &replica);
    let head = stack.head().await;
    // The primary is out of this service's reach altogether.
    let service = start_query(with(
        query_settings(&replica, &stack.nats),
        "DATABASE_READ_URL",
        replica.url(),
    ))
    .await;
    let url = service.url();
    let http = reqwest::Client::new();
    let item = format!("/v1/items/{ITEM_1}");

    let replicated = get_from(
        &http,
        &format!("{url}{item}?min_sequence={head}"),
        Some(&office()),
    )
    .await;
    assert_eq!(replicated.status, StatusCode::OK, "{}", replicated.body);
    assert_eq!(replicated.body["checkpoint"], head);

    // A write the primary has applied and the replica has not replayed.
    let due = stack
        .command(
            "set-item-deadline",
            &office(),
            json!({ "item_id": ITEM_1, "due_on": "2026-12-31" }),
        )
        .await;
    stack.settle().await;
    let primary = stack
        .read(&format!("{item}?min_sequence={due}"), &office())
        .await;
    assert_eq!(primary["item"]["due_on"], "2026-12-31");
    let behind = get_from(
        &http,
        &format!("{url}{item}?min_sequence={due}&wait_ms=300"),
        Some(&office()),
    )
    .await;
    assert_problem(
        &behind,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:projection-behind",
    );
    assert_eq!(behind.body["checkpoint"], head);
    assert_eq!(behind.body["min_sequence"], due);
    let stale = get_from(&http, &format!("{url}{item}"), Some(&office())).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    assert_ne!(stale.body["item"]["due_on"], "2026-12-31");

    // Once the replica has replayed it, the write is read there.
    replay(&stack.database, &replica);
    let caught_up = get_from(
        &http,
        &format!("{url}{item}?min_sequence={due}"),
        Some(&office()),
    )
    .await;
    assert_eq!(caught_up.status, StatusCode::OK, "{}", caught_up.body);
    assert_eq!(caught_up.body["item"]["due_on"], "2026-12-31");
    assert!(caught_up.body["checkpoint"].as_u64() >= Some(due));

    service.stop().await;
    stack.stop().await;
}
