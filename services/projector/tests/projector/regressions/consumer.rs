//! A durable consumer that agrees with the checkpoint but delivers nothing while the stream holds
//! commits beyond it — how nats-server 2.9 left a replicated consumer after its leader was cut
//! off and came back (`tests/stack/cluster.rs`, one run in five: `num_pending` 0 four commits
//! short of the head). The projection waited forever; it must make the consumer anew and catch
//! up.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use serde_json::json;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

#[tokio::test]
async fn a_consumer_that_delivers_nothing_is_made_anew_and_the_projection_catches_up() {
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

    // The core projection's consumer, replaced under the running projector by one of the same
    // name that never delivers (it reads a subject no commit is on): the projector's next pulls
    // go to it.
    let stream = js.get_stream(STREAM).await.expect("stream");
    stream
        .delete_consumer("projector-core")
        .await
        .expect("delete the consumer");
    stream
        .create_consumer(pull::Config {
            durable_name: Some("projector-core".to_owned()),
            filter_subject: "events.nowhere.>".to_owned(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: seeded + 1,
            },
            ack_policy: AckPolicy::All,
            ..Default::default()
        })
        .await
        .expect("a consumer that delivers nothing");

    let api = Api::new(&service);
    let office = who(
        "vp.nguyen-thi-hoa",
        remediation_domain::Role::ProvinceOffice,
        None,
    );
    let receipt = api
        .send(
            "rename-unit",
            &office,
            None,
            &json!({ "unit_id": "so-tai-chinh", "name": "Sở Tài chính tỉnh Thanh Hóa", "reason": "Theo quyết định của UBND tỉnh" }),
        )
        .await
        .expect("sent")
        .expect("decided");
    assert!(receipt.changed, "{receipt:?}");
    let head = stream_head(&js).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let core = checkpoint(&mut conn, "core").await;
        if core >= Some(head) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the core projection waits at {core:?} for a consumer that delivers nothing; the \
             stream's head is {head}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    projector.stop().await;
    service.shutdown().await;
}
