//! `apply_batch` under redelivery: the checkpoint, committed with the rows, decides what is
//! applied. A redelivered or overlapping batch changes nothing it already applied; a gap and an
//! undecodable payload are refused with nothing written.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::Utc;
use projector::batch::{Applied, BatchError, Delivered, apply_batch};
use projector::decode::Decoder;
use readmodel::{ApplyError, HeadCache, Projection};
use remediation_domain::Role;
use serde_json::json;
use sqlx::PgConnection;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

/// The Plan 63 seed and a stretch of work on item 1: statuses, a task, a report submitted,
/// returned, revised twice (`revisions` counts, so a double application would show).
async fn history(nats: &NatsServer) -> Vec<Delivered> {
    let service = CommandService::start(nats).await;
    service.load_seed().await;
    let mut api = Api::new(&service);
    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
    let finance = who(
        "stc.tran-van-minh",
        Role::DepartmentOfFinance,
        Some("so-tai-chinh"),
    );
    let lead = "so-nong-nghiep-va-moi-truong";
    let item = "kh-63-2025-01";
    let q3 = json!({ "year": 2025, "quarter": 3 });
    api.post(
        "set-item-deadline",
        &office,
        None,
        json!({ "item_id": item, "due_on": "2025-12-31" }),
    )
    .await;
    api.post(
        "change-item-status",
        &office,
        None,
        json!({ "item_id": item, "to": "in_progress", "reason": "Triển khai" }),
    )
    .await;
    api.post("plan-task", &office, None, json!({
        "task_id": "snnmt-2025-01", "item_id": item, "unit_id": lead,
        "title": "Xây dựng mô hình nông nghiệp công nghệ cao", "person_responsible": "Nguyễn Văn An",
        "leader_in_charge": "Phó Giám đốc Lê Thị Bình", "due_on": "2025-12-15",
    }))
    .await;
    api.post(
        "change-task-status",
        &office,
        None,
        json!({ "task_id": "snnmt-2025-01", "to": "in_progress", "reason": "Bắt đầu" }),
    )
    .await;
    api.post("submit-report", &office, Some("2025-09-10T10:00:00+07:00"), json!({
        "plan_id": "kh-63-2025", "unit_id": lead, "quarter": q3,
        "lines": [{ "item_id": item, "progress": "Bước đầu triển khai", "status": "in_progress" }],
    }))
    .await;
    api.post("return-report", &finance, None,
        json!({ "plan_id": "kh-63-2025", "unit_id": lead, "quarter": q3, "reason": "Thiếu số liệu" }))
        .await;
    for progress in ["Đã triển khai 2/5 mô hình", "Đã triển khai 3/5 mô hình"] {
        api.post(
            "revise-report",
            &office,
            None,
            json!({
                "plan_id": "kh-63-2025", "unit_id": lead, "quarter": q3,
                "lines": [{ "item_id": item, "progress": progress, "status": "in_progress" }],
            }),
        )
        .await;
    }
    api.post(
        "change-item-status",
        &office,
        None,
        json!({
            "item_id": item, "to": "awaiting_confirmation", "reason": "Hoàn thành",
            "evidence": "Báo cáo số 45/BC-SNNMT",
        }),
    )
    .await;
    service.shutdown().await;
    let (_client, js) = jetstream(nats).await;
    let head = stream_head(&js).await;
    all_messages(&js, head).await
}

async fn state(
    conn: &mut PgConnection,
    schema: &str,
) -> (BTreeMap<String, (i64, String)>, u64, chrono::DateTime<Utc>) {
    let (sequence, updated_at): (i64, chrono::DateTime<Utc>) = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT last_sequence, updated_at FROM \"{schema}\".checkpoints"),
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("checkpoint");
    (checksums(conn, schema).await, sequence as u64, updated_at)
}

fn summary(a: &Applied) -> (u64, usize, usize) {
    (a.checkpoint, a.commits, a.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_overlapping_batches_change_nothing_and_gaps_or_garbage_are_refused() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let messages = history(&nats).await;
    let head = messages.len() as u64;
    assert!(
        head > 150,
        "the seed and the scripted work make {head} commits"
    );
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    projector::prepare(&pool, "").await.expect("prepare");
    projector::prepare(&pool, "ref_")
        .await
        .expect("prepare the reference");
    let mut conn = connect(&db.url()).await;
    let m = |from: u64, to: u64| messages[(from - 1) as usize..to as usize].to_vec();
    // Shared by every batch, as by the projector's workers: a payload spoiled after it was
    // decoded once is still decoded from its own bytes.
    let decoder = Decoder::new(1_000);

    for projection in Projection::ALL {
        let schema = projection.name().to_owned();
        let reference = format!("ref_{schema}");
        // The reference: every commit applied once, in one batch.
        let once = &mut HeadCache::default();
        let all = apply_batch(&pool, &decoder, &reference, projection, &messages, once)
            .await
            .expect("reference");
        // Every command of this history makes exactly one event.
        assert_eq!(summary(&all), (head, head as usize, head as usize));
        // The chain heads kept from batch to batch, as by a worker.
        let heads = &mut HeadCache::default();

        // 1..=60, then the very same batch again: nothing changes, not even the checkpoint's
        // updated_at (no write at all).
        let first = apply_batch(&pool, &decoder, &schema, projection, &m(1, 60), heads)
            .await
            .expect("batch");
        assert_eq!(summary(&first), (60, 60, 60));
        let after_first = state(&mut conn, &schema).await;
        let again = apply_batch(&pool, &decoder, &schema, projection, &m(1, 60), heads)
            .await
            .expect("redelivery");
        assert_eq!(summary(&again), (60, 0, 0));
        assert_eq!(
            state(&mut conn, &schema).await,
            after_first,
            "{schema}: redelivery wrote"
        );

        // A batch overlapping the applied one: only 61..=100 are applied.
        let overlap = apply_batch(&pool, &decoder, &schema, projection, &m(31, 100), heads)
            .await
            .expect("overlap");
        assert_eq!(summary(&overlap), (100, 40, 40));
        let after_overlap = state(&mut conn, &schema).await;

        // A gap: 121.. while the checkpoint is 100. Refused, nothing written.
        match apply_batch(&pool, &decoder, &schema, projection, &m(121, 140), heads).await {
            Err(BatchError::Gap {
                expected: 101,
                got: 121,
            }) => {}
            other => panic!("{schema}: expected a gap at 101, got {other:?}"),
        }
        // A gap inside a batch, after applicable commits: the whole batch is refused.
        let mut holed = m(101, 110);
        holed.extend(m(112, 115));
        let refused = apply_batch(&pool, &decoder, &schema, projection, &holed, heads).await;
        assert!(
            matches!(
                refused,
                Err(BatchError::Gap {
                    expected: 111,
                    got: 112
                })
            ),
            "{schema}: {refused:?}"
        );
        assert_eq!(
            state(&mut conn, &schema).await,
            after_overlap,
            "{schema}: a gap wrote"
        );

        // An undecodable payload at 101: refused with its sequence, a stall and not a retry.
        let garbage = Delivered {
            sequence: 101,
            payload: Bytes::from_static(b"{\"not\": \"a commit"),
        };
        let error = apply_batch(&pool, &decoder, &schema, projection, &[garbage], heads)
            .await
            .expect_err("garbage is refused");
        assert_eq!(error.stall_sequence(), Some(101), "{schema}: {error}");
        assert!(!error.is_transient(), "{schema}: {error}");
        assert!(matches!(
            error,
            BatchError::Apply(ApplyError::Inconsistent { sequence: 101, .. })
        ));
        // …also when it ends a batch of good commits: none of them is applied.
        let mut spoiled = m(101, 110);
        spoiled.push(Delivered {
            sequence: 111,
            payload: Bytes::from_static(b"[{]"),
        });
        let error = apply_batch(&pool, &decoder, &schema, projection, &spoiled, heads)
            .await
            .expect_err("garbage is refused");
        assert_eq!(error.stall_sequence(), Some(111), "{schema}: {error}");
        assert_eq!(
            state(&mut conn, &schema).await,
            after_overlap,
            "{schema}: garbage wrote"
        );

        // The rest in overlapping batches of 37 (each one re-sends 10 applied commits).
        let mut next = 101;
        while next <= head {
            let to = (next + 36).min(head);
            let batch = apply_batch(
                &pool,
                &decoder,
                &schema,
                projection,
                &m(next.saturating_sub(10).max(1), to),
                heads,
            )
            .await
            .expect("batch");
            assert_eq!(
                summary(&batch),
                (to, (to - next + 1) as usize, (to - next + 1) as usize)
            );
            next = to + 1;
        }
        // Same rows as applying everything exactly once.
        assert_eq!(
            checksums(&mut conn, &schema).await,
            checksums(&mut conn, &reference).await,
            "{schema} differs from a single clean pass"
        );
        assert_eq!(checkpoint(&mut conn, &schema).await, Some(head));
    }

    // The core projection refuses an event type it does not know, with its sequence; the audit
    // projection records any well-formed envelope.
    let (_client, js) = jetstream(&nats).await;
    let mut publisher = Publisher::new(&js, head);
    let sequence = publisher.unknown_type("so-moi", "Sở Mới").await;
    publisher.flush().await;
    let unknown = all_messages(&js, sequence).await.split_off(head as usize);
    let before = state(&mut conn, "core").await;
    let heads = &mut HeadCache::default();
    let error = apply_batch(&pool, &decoder, "core", Projection::Core, &unknown, heads)
        .await
        .expect_err("unknown type refused");
    assert!(
        matches!(error, BatchError::Apply(ApplyError::Undecodable { sequence: s, .. }) if s == sequence),
        "{error}"
    );
    assert_eq!(error.stall_sequence(), Some(sequence));
    assert_eq!(state(&mut conn, "core").await, before);
    let audited = apply_batch(&pool, &decoder, "audit", Projection::Audit, &unknown, heads)
        .await
        .expect("audit");
    assert_eq!(summary(&audited), (sequence, 1, 1));
}

/// A worker keeps its chain heads from one batch to the next, and reads from the table only the
/// aggregates it has not seen. Once something else moved the schema — here another writer, as a
/// projector that took the lock over would — what it kept is stale and must not be checked
/// against: the next batch reads the heads again and applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_chain_heads_are_read_again_once_another_writer_moved_the_schema() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let messages = history(&nats).await;
    let head = messages.len() as u64;
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    projector::prepare(&pool, "").await.expect("prepare");
    let m = |from: u64, to: u64| messages[(from - 1) as usize..to as usize].to_vec();
    let decoder = Decoder::new(1_000);
    for projection in Projection::ALL {
        let schema = projection.name();
        let kept = &mut HeadCache::default();
        apply_batch(&pool, &decoder, schema, projection, &m(1, head - 9), kept)
            .await
            .expect("the first batch");
        // head-8 and head-7 change item 1 (its deadline, its status), head-4 and head-3 its
        // report; the last batch changes both again.
        let other = &mut HeadCache::default();
        apply_batch(
            &pool,
            &decoder,
            schema,
            projection,
            &m(head - 8, head - 3),
            other,
        )
        .await
        .expect("another writer's batch");
        let last = apply_batch(
            &pool,
            &decoder,
            schema,
            projection,
            &m(head - 2, head),
            kept,
        )
        .await
        .unwrap_or_else(|e| panic!("{schema}: checked against stale heads: {e}"));
        assert_eq!(summary(&last), (head, 3, 3), "{schema}");
    }
}
