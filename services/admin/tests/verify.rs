//! `remediation-admin verify` as an operator runs it, against a private nats-server and
//! database: a break in the stream does not leave the audit table unchecked (issue 8), and the
//! report on stdout holds the report alone.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use event_store::access::Service;
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::{NatsServer, TestDatabase};

const ADMIN: &str = env!("CARGO_BIN_EXE_remediation-admin");
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/seed/ke-hoach-63.json"
);

fn admin(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(ADMIN)
        .args(args)
        .env("NATS_URL", nats.url())
        .env("NATS_NKEY_FILE", nats.nkey_file(Service::Admin))
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .output()
        .expect("remediation-admin runs")
}

/// Both projections' checkpoints.
async fn checkpoints(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT last_sequence FROM core.checkpoints), (SELECT last_sequence FROM audit.checkpoints)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or((0, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_in_the_stream_still_reports_the_audit_rows_checked_up_to_it() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    for args in [&["provision"][..], &["seed", "--file", SEED]] {
        let out = admin(&nats, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let config = projector::Config {
        nats_url: nats.url(),
        database_url: db.url(),
        bind: "127.0.0.1:0".parse().expect("address"),
        stream_name: "PLAN_EVENTS".to_owned(),
        schema_prefix: String::new(),
        batch_size: 500,
        snapshot_interval: None,
        snapshot_every: 5_000,
        nats_nkey_file: Some(nats.nkey_file(Service::Projector)),
    };
    let projector = projector::Projector::connect(&config)
        .await
        .expect("projector");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(projector.run(async {
        let _ = stopped.await;
    }));
    // The operator's key: only a key that may publish events can forge one.
    let client = nats.connect(Service::Admin).await;
    let js = async_nats::jetstream::new(client.clone());
    let head = js
        .get_stream("PLAN_EVENTS")
        .await
        .expect("stream")
        .cached_info()
        .state
        .last_sequence;
    let pool = PgPool::connect(&db.url()).await.expect("database");
    let started = Instant::now();
    while checkpoints(&pool).await != (head as i64, head as i64) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "projector never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit.audit_log")
        .fetch_one(&pool)
        .await
        .expect("rows");

    // A unit's newest event published again with another name and a new id, its hash kept:
    // it links into no chain.
    let (mut forged,): (Value,) = sqlx::query_as(
        "SELECT envelope FROM audit.audit_log WHERE aggregate_type = 'unit'
         ORDER BY stream_sequence DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("an envelope");
    forged["id"] = json!(uuid::Uuid::now_v7().to_string());
    forged["data"]["name"] = json!("Sở giả mạo");
    let subject = format!(
        "events.unit.{}",
        forged["aggregateid"].as_str().expect("id")
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", event_store::BATCH_CONTENT_TYPE);
    let broken = js
        .publish_with_headers(
            subject,
            headers,
            serde_json::to_vec(&[&forged]).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    client.flush().await.expect("flush");

    let out = admin(&nats, &["verify", "--database-url", &db.url()]);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(!out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "the report and nothing else: {stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "stream BROKEN at sequence {broken}: checked {head} commits, "
        )),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!(
            "audit table OK: {rows} events, up to sequence {head} (walked up to the stream's break)"
        )
    );
    assert!(
        stderr.contains(&format!(
            "BROKEN: stream sequence {broken}, aggregate unit/"
        )),
        "{stderr}"
    );
    let _ = stop.send(());
    running.await.expect("projector stops");
}
