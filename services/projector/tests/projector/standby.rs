//! Two projector processes for the same projections: exactly one applies each projection (it
//! holds the projection's leader lock), the other stands by and says so; `kill -9` of the active
//! one mid catch-up, and the stand-by takes over from the checkpoint. The read model ends equal,
//! table by table, to a from-scratch `projector rebuild all`. The take-over time is printed.

use std::time::{Duration, Instant};

use chrono::Utc;
use projector::leader::leader_key;
use reqwest::StatusCode;
use sqlx::PgConnection;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

/// Commits before the second instance starts, and while the first is killed.
const BEFORE: u64 = 2_000;
const DURING: u64 = 4_000;

/// How many sessions hold `schema`'s leader lock in the current database.
async fn holders(conn: &mut PgConnection, schema: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND objsubid = 1
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(leader_key(schema))
    .fetch_one(conn)
    .await
    .expect("pg_locks")
}

/// Polls `/readyz` until it answers 200 with `status` and every projection in `role`.
async fn wait_role(url: &str, status: &str, role: &str) -> Instant {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("{url}/readyz")).await {
            let code = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if code == StatusCode::OK
                && body["status"] == status
                && ["core", "audit"]
                    .iter()
                    .all(|p| body["projections"][p]["role"] == role)
            {
                return Instant::now();
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{url} never became {status} ({role})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers units `from..to` as commits of their own.
async fn publish_units(publisher: &mut Publisher, from: u64, to: u64) -> u64 {
    let mut head = 0;
    for n in from..to {
        let (target, event) = registered(&format!("dv-{n:05}"), &format!("UBND xã số {n}"));
        head = publisher
            .commit(&target, &[event], &meta("register-unit", Utc::now()))
            .await;
    }
    publisher.flush().await;
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_by_projector_takes_over_when_the_active_one_is_killed() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let reference_db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let first_head = publish_units(&mut publisher, 0, BEFORE).await;
    let log = std::env::temp_dir().join(format!(
        "projector-standby-test-{}-{}.log",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut conn = connect(&db.url()).await;

    let (a_addr, b_addr) = (free_addr(), free_addr());
    let (a_url, b_url) = (format!("http://{a_addr}"), format!("http://{b_addr}"));
    let mut a = spawn_projector(&[], &nats, &db.url(), a_addr, 100, "", &log);
    wait_role(&a_url, "ready", "active").await;
    let mut b = spawn_projector(&[], &nats, &db.url(), b_addr, 100, "", &log);
    wait_role(&b_url, "standby", "standby").await;
    wait_for_checkpoints(&mut conn, "", first_head).await;

    // One holder per projection; the stand-by applied nothing and reports the database's
    // checkpoint.
    for schema in ["core", "audit"] {
        assert_eq!(holders(&mut conn, schema).await, 1, "{schema}");
    }
    let metrics = get_text(&format!("{b_url}/metrics")).await.1;
    for projection in ["core", "audit"] {
        assert!(
            metrics.contains(&format!(
                "kh63_projector_active{{projection=\"{projection}\"}} 0"
            )),
            "{metrics}"
        );
        assert!(
            !metrics.contains(&format!(
                "kh63_projector_events_applied_total{{projection=\"{projection}\"}}"
            )),
            "{metrics}"
        );
    }
    let a_metrics = get_text(&format!("{a_url}/metrics")).await.1;
    assert!(
        a_metrics.contains("kh63_projector_active{projection=\"core\"} 1"),
        "{a_metrics}"
    );

    // More commits; kill -9 the active instance while it catches up on them.
    let head = publish_units(&mut publisher, BEFORE, BEFORE + DURING).await;
    loop {
        let core = checkpoint(&mut conn, "core").await.unwrap_or(0);
        if core > first_head + 200 {
            break;
        }
        assert!(a.running(), "the first projector exited: {}", log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let core_at_kill = checkpoint(&mut conn, "core").await.unwrap_or(0);
    let killed = Instant::now();
    a.kill();
    let active = wait_role(&b_url, "ready", "active").await;
    let moving = loop {
        let core = checkpoint(&mut conn, "core").await.unwrap_or(0);
        if core > core_at_kill || core == head {
            break Instant::now();
        }
        assert!(b.running(), "the stand-by exited: {}", log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "take-over: stand-by active {:.0} ms after kill -9, core checkpoint moving again after {:.0} ms (core at {core_at_kill} of {head} when killed)",
        (active - killed).as_secs_f64() * 1000.0,
        (moving - killed).as_secs_f64() * 1000.0
    );
    wait_for_checkpoints(&mut conn, "", head).await;
    for schema in ["core", "audit"] {
        assert_eq!(holders(&mut conn, schema).await, 1, "{schema}");
        assert_eq!(checkpoint(&mut conn, schema).await, Some(head), "{schema}");
    }

    // Identical to one projector's work: a from-scratch rebuild in a database of its own.
    let mut rebuild = spawn_projector(
        &["rebuild", "all"],
        &nats,
        &reference_db.url(),
        free_addr(),
        1_000,
        "",
        &log,
    );
    let status = rebuild.wait();
    assert!(status.success(), "rebuild failed: {}", log_text());
    let taken_over = all_checksums(&mut conn, "").await;
    let mut reference = connect(&reference_db.url()).await;
    let rebuilt = all_checksums(&mut reference, "").await;
    assert_eq!(taken_over["core.units"].0 as u64, BEFORE + DURING);
    assert_eq!(taken_over["audit.audit_log"].0 as u64, head);
    assert_eq!(taken_over, rebuilt);
    b.kill();
    let _ = std::fs::remove_file(&log);
}
