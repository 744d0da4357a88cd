//! Durable consumers that went wrong under the running projector, as replicated ones did when a
//! node was cut off and came back (`tests/stack/cluster.rs`): one that agrees with the checkpoint
//! but delivers nothing while the stream holds commits beyond it (nats-server 2.9, one run in
//! five: `num_pending` 0 four commits short of the head), and one that skipped commits the
//! stream holds. The projection waited forever, or stopped on the gap; it must make the consumer
//! anew at its checkpoint and catch up.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use serde_json::json;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

#[tokio::test]
async fn a_consumer_that_delivers_nothing_is_made_anew_and_the_projection_catches_up() {
    // A consumer of the same name that never delivers: it reads a subject no commit is on.
    core_catches_up_after_its_consumer_is_replaced(
        |seeded| pull::Config {
            durable_name: Some("projector-core".to_owned()),
            filter_subject: "events.nowhere.>".to_owned(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: seeded + 1,
            },
            ack_policy: AckPolicy::All,
            ..Default::default()
        },
        "a consumer that delivers nothing",
    )
    .await;
}

/// The consumer skipped a commit the stream holds — as when a pull's answer is lost with the
/// node it passed through (`tests/stack/cluster.rs` under load: `gap: expected stream sequence
/// 272, got 282`). The projection stopped for good on the gap; it must make the consumer anew
/// at its checkpoint and apply the skipped commit.
#[tokio::test]
async fn a_consumer_that_skips_a_commit_the_stream_holds_is_made_anew_and_nothing_is_skipped() {
    // Agrees with the checkpoint, but reads only the second unit's subject: its first delivery
    // is the second rename, one past the checkpoint's next.
    core_catches_up_after_its_consumer_is_replaced(
        |seeded| pull::Config {
            durable_name: Some("projector-core".to_owned()),
            filter_subject: format!("events.unit.{}", UNITS[1]),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: seeded + 1,
            },
            ack_policy: AckPolicy::All,
            ..Default::default()
        },
        "a consumer that skipped the first rename",
    )
    .await;
}

/// The units renamed, in this order, after the consumer is replaced.
const UNITS: [&str; 2] = ["so-tai-chinh", "so-cong-thuong"];

/// Seeds the stream, replaces the core projection's consumer under the running projector with
/// `replacement(seeded)` (`what` names it), renames each of [`UNITS`] and waits until the core
/// checkpoint reaches the stream's head.
async fn core_catches_up_after_its_consumer_is_replaced(
    replacement: impl FnOnce(u64) -> pull::Config,
    what: &str,
) {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let service = CommandService::start(&nats).await;
    service.load_seed().await;
    let config = projector_config(&nats, &db.url(), "", 100);
    let projector = InProcessProjector::start(&config).await;
    let mut conn = connect(&db.url()).await;
    let seeded = stream_head(&js).await;
    wait_for_checkpoints(&mut conn, "", seeded).await;

    // The projector's next pulls go to the replacement.
    let stream = js.get_stream(STREAM).await.expect("stream");
    stream
        .delete_consumer("projector-core")
        .await
        .expect("delete the consumer");
    stream
        .create_consumer(replacement(seeded))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));

    let api = Api::new(&service);
    let office = who(
        "vp.nguyen-thi-hoa",
        remediation_domain::Role::ProvinceOffice,
        None,
    );
    for (unit, name) in UNITS.into_iter().zip([
        "Sở Tài chính tỉnh Thanh Hóa",
        "Sở Công Thương tỉnh Thanh Hóa",
    ]) {
        let receipt = api
            .send(
                "rename-unit",
                &office,
                None,
                &json!({ "unit_id": unit, "name": name, "reason": "Theo quyết định của UBND tỉnh" }),
            )
            .await
            .expect("sent")
            .expect("decided");
        assert!(receipt.changed, "{receipt:?}");
    }
    let head = stream_head(&js).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let core = checkpoint(&mut conn, "core").await;
        if core >= Some(head) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the core projection waits at {core:?} behind {what}; the stream's head is {head}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    projector.stop().await;
    service.shutdown().await;
}
