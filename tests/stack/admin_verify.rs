//! `remediation-admin verify` as an operator runs it, against a private nats-server and
//! database: a break in the stream does not leave the audit table unchecked (issue 8), and the
//! report on stdout holds the report alone; `remediation-admin quarantine` sets a break aside,
//! and verification then lists it as signed off and passes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use event_store::access::Service;
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::{NatsServer, TestDatabase, workspace_binary};

use super::start_projector;

/// The operator's CLI, run as its own process.
static ADMIN: LazyLock<PathBuf> =
    LazyLock::new(|| workspace_binary("remediation-admin", "remediation-admin"));
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/seed/ke-hoach-63.json"
);

/// Provisions the stream and loads Plan 63, as `deploy/up.sh` does.
fn provision_and_seed(nats: &NatsServer) {
    for args in [&["provision"][..], &["seed", "--file", SEED]] {
        let out = admin(nats, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}

fn admin(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(&*ADMIN)
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
    provision_and_seed(&nats);
    let projector = start_projector(&nats, &db.url()).await;
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
        "SELECT envelope || jsonb_build_object('data', payload) FROM audit.audit_log WHERE aggregate_type = 'unit'
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
    projector.stop().await;
}

/// The connection this test publishes straight to the stream with — the one place to give it
/// the identity allowed to, once NATS asks for credentials.
async fn publishing_connection(
    nats: &NatsServer,
) -> (async_nats::Client, async_nats::jetstream::Context) {
    let client = nats.connect(Service::Admin).await;
    (client.clone(), async_nats::jetstream::new(client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_message_is_a_signed_off_break_and_verification_passes() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    provision_and_seed(&nats);
    let (client, js) = publishing_connection(&nats).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", event_store::BATCH_CONTENT_TYPE);
    let bad = js
        .publish_with_headers("events.bogus.1", headers, b"xin chao".to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    client.flush().await.expect("flush");
    let projector = start_projector(&nats, &db.url()).await;
    let pool = PgPool::connect(&db.url()).await.expect("database");
    let valid = (bad - 1).to_string();
    let bad = bad.to_string();

    // Before the decision: a break, exit 1; a valid message is refused; a dry run shows.
    let out = admin(&nats, &["verify"]);
    assert!(!out.status.success(), "{out:?}");
    let out = admin(
        &nats,
        &[
            "quarantine",
            "--sequence",
            &valid,
            "--reason",
            "x",
            "--user",
            "u",
        ],
    );
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(
        !out.status.success() && stderr.contains("no break to sign off"),
        "{stderr}"
    );
    let out = admin(&nats, &["quarantine", "--sequence", &bad, "--dry-run"]);
    let shown = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("subject:   events.bogus.1"), "{shown}");
    assert!(shown.contains("size:      8 bytes"), "{shown}");
    assert!(shown.contains("is unreadable"), "{shown}");

    let out = admin(
        &nats,
        &[
            "quarantine",
            "--sequence",
            &bad,
            "--reason",
            "Tin nhắn thử nghiệm gửi nhầm vào luồng",
            "--user",
            "kiem-toan.le-van-an",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{out:?}");
    let decision = (bad.parse::<u64>().expect("sequence") + 1).to_string();
    assert!(
        stdout.contains(&format!(
            "quarantined: the decision is recorded at stream sequence {decision}"
        )),
        "{stdout}"
    );
    let started = Instant::now();
    let head = decision.parse::<i64>().expect("sequence");
    while checkpoints(&pool).await < (head, head) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the projections never continued past the quarantined message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = admin(&nats, &["verify", "--database-url", &db.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("stream OK: ") && lines[0].ends_with(", 1 break signed off"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "signed-off break at stream sequence {bad} (events.bogus.1, digest "
        )) && lines[1].ends_with(&format!(
            "quarantined by kiem-toan.le-van-an (auditor) at stream sequence {decision}: Tin nhắn thử nghiệm gửi nhầm vào luồng"
        )),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("audit table OK: ")
            && lines[2].contains(" events and 1 quarantined message, "),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("digest over all chain heads: "),
        "{stdout}"
    );
    projector.stop().await;
}

/// The lines of `remediation-admin verify` against `nats` and `db`, which must pass.
fn verified(nats: &NatsServer, db: &TestDatabase) -> Vec<String> {
    let out = admin(nats, &["verify", "--database-url", &db.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{out:?}");
    stdout.lines().map(str::to_owned).collect()
}

/// Backup and restore as docs/operations.md has it: the stream's store copied while its server
/// is stopped, the database dumped; both restored into empty servers, where verification passes
/// with the same counts and the same digest over every chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_empty_servers_verifies_with_the_same_digest() {
    let mut nats = NatsServer::start();
    let db = TestDatabase::create();
    provision_and_seed(&nats);
    let projector = start_projector(&nats, &db.url()).await;
    let js = async_nats::jetstream::new(nats.connect(Service::Admin).await);
    let head = js
        .get_stream("PLAN_EVENTS")
        .await
        .expect("stream")
        .cached_info()
        .state
        .last_sequence as i64;
    let pool = PgPool::connect(&db.url()).await.expect("database");
    let started = Instant::now();
    while checkpoints(&pool).await != (head, head) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "projector never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    projector.stop().await;
    pool.close().await;
    let before = verified(&nats, &db);

    // The backups.
    let backup = std::env::temp_dir().join(format!(
        "kh63-backup-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    nats.stop();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(nats.store_dir())
        .arg(&backup)
        .status()
        .expect("cp");
    assert!(copied.success());
    let dump = Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(backup.with_extension("dump"))
        .arg(db.url())
        .status()
        .expect("pg_dump");
    assert!(dump.success());

    // Empty servers, the backups restored.
    let restored_nats = NatsServer::start_with_store(&backup);
    let restored_db = TestDatabase::create();
    let restore = Command::new("pg_restore")
        .args(["--exit-on-error", "--no-owner", "--dbname"])
        .arg(restored_db.url())
        .arg(backup.with_extension("dump"))
        .status()
        .expect("pg_restore");
    assert!(restore.success());
    let after = verified(&restored_nats, &restored_db);
    assert!(
        before
            .last()
            .is_some_and(|line| line.starts_with("digest over all chain heads: ")),
        "{before:?}"
    );
    assert_eq!(after, before);
    let _ = std::fs::remove_dir_all(&backup);
    let _ = std::fs::remove_file(backup.with_extension("dump"));
}
