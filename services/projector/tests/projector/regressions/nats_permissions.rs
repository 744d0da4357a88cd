//! Issue 8: anyone who could connect to NATS could publish to `events.>`, and one message with a
//! wrong hash or an unknown subject stops both projections until a person intervenes. Now each
//! service logs in with its own key and may do only its own work: these tests try the rest.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use event_store::access::Service as Identity;
use event_store::credentials;
use test_support::NatsServer;
use tokio::sync::mpsc;

use crate::harness::*;

/// A client logged in as `service` and the server errors it is told about (a refused publish
/// is reported only this way, asynchronously).
async fn connect_watched(
    nats: &NatsServer,
    service: Identity,
) -> (jetstream::Context, mpsc::UnboundedReceiver<String>) {
    let (errors, reported) = mpsc::unbounded_channel();
    let options = ConnectOptions::new().event_callback(move |event| {
        let errors = errors.clone();
        async move {
            if let Event::ServerError(error) = event {
                let _ = errors.send(error.to_string());
            }
        }
    });
    let client = credentials::login(options, service, Some(&nats.nkey_file(service)))
        .expect("seed")
        .connect(nats.url())
        .await
        .expect("connect");
    // Short: a refused request is never answered, and the refusal itself is checked below.
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client);
    (js, reported)
}

/// Waits for the server to report that publishing to `subject` was refused.
async fn refused(reported: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let wait = tokio::time::timeout(PATIENCE, async {
        while let Some(error) = reported.recv().await {
            if error.contains("Permissions Violation") && error.contains(subject) {
                return;
            }
        }
    });
    assert!(
        wait.await.is_ok(),
        "the server never refused a publish to {subject}"
    );
}

/// A provisioned stream with one commit; returns the operator's JetStream context.
async fn provisioned(nats: &NatsServer) -> jetstream::Context {
    let (_client, js) = jetstream(nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    publisher.raw("events.item.seeded", b"[]".to_vec()).await;
    publisher.flush().await;
    js
}

async fn messages(admin: &jetstream::Context) -> u64 {
    let mut stream = admin.get_stream(STREAM).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

async fn publish_is_refused(
    nats: &NatsServer,
    admin: &jetstream::Context,
    service: Identity,
    subject: &str,
) {
    let before = messages(admin).await;
    let (js, mut reported) = connect_watched(nats, service).await;
    let ack = js.publish(subject.to_owned(), b"[]".to_vec().into()).await;
    let acknowledged = match ack {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(!acknowledged, "{} published to {subject}", service.name());
    refused(&mut reported, subject).await;
    assert_eq!(messages(admin).await, before, "the stream changed");
}

#[tokio::test]
async fn the_projector_cannot_publish_events() {
    let nats = NatsServer::start();
    let admin = provisioned(&nats).await;
    publish_is_refused(&nats, &admin, Identity::Projector, "events.item.x").await;
}

#[tokio::test]
async fn the_query_service_cannot_publish_events_outside_the_access_log() {
    let nats = NatsServer::start();
    let admin = provisioned(&nats).await;
    publish_is_refused(&nats, &admin, Identity::QueryApi, "events.item.x").await;
    publish_is_refused(&nats, &admin, Identity::QueryApi, "events.ledger.chains").await;
}

#[tokio::test]
async fn a_client_without_a_key_is_refused() {
    let nats = NatsServer::start();
    let outcome = ConnectOptions::new().connect(nats.url()).await;
    assert!(
        matches!(&outcome, Err(e) if e.kind() == ConnectErrorKind::AuthorizationViolation),
        "an anonymous client was not refused: {:?}",
        outcome.err()
    );
}

#[tokio::test]
async fn the_command_services_key_appends() {
    let nats = NatsServer::start();
    let admin = provisioned(&nats).await;
    let before = messages(&admin).await;
    let (js, _) = connect_watched(&nats, Identity::CommandApi).await;
    let ack = js
        .publish("events.item.x", b"[]".to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged");
    assert_eq!(ack.sequence, before + 1);
    assert_eq!(messages(&admin).await, before + 1);
}

#[tokio::test]
async fn the_projector_manages_only_its_own_consumers_and_cannot_delete_the_stream() {
    let nats = NatsServer::start();
    let admin = provisioned(&nats).await;
    let (js, mut reported) = connect_watched(&nats, Identity::Projector).await;
    let stream = js.get_stream_no_info(STREAM).await.expect("stream");

    let own = stream
        .create_consumer(pull::Config {
            durable_name: Some("projector-core".to_owned()),
            ..Default::default()
        })
        .await;
    assert!(own.is_ok(), "its own durable consumer: {own:?}");

    let foreign = stream
        .create_consumer(pull::Config {
            durable_name: Some("intruder".to_owned()),
            ..Default::default()
        })
        .await;
    assert!(
        foreign.is_err(),
        "the projector created a consumer intruder"
    );
    refused(&mut reported, "CONSUMER.CREATE.PLAN_EVENTS.intruder").await;

    assert!(
        js.delete_stream(STREAM).await.is_err(),
        "the projector deleted the stream"
    );
    refused(&mut reported, "STREAM.DELETE.PLAN_EVENTS").await;

    let mut names = admin
        .get_stream(STREAM)
        .await
        .expect("the stream is still there")
        .consumer_names();
    let mut consumers = Vec::new();
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        consumers.push(name.expect("consumer name"));
    }
    assert_eq!(consumers, ["projector-core"]);
}

#[tokio::test]
async fn the_query_service_cannot_take_deliveries_from_a_projection() {
    let nats = NatsServer::start();
    let admin = provisioned(&nats).await;
    admin
        .get_stream(STREAM)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some("projector-core".to_owned()),
            ..Default::default()
        })
        .await
        .expect("the projection's consumer");
    let (js, mut reported) = connect_watched(&nats, Identity::QueryApi).await;
    // A pull request as any client library sends it; the answer would come to the inbox.
    let client = js.client();
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.PLAN_EVENTS.projector-core",
            inbox,
            r#"{"batch":10,"no_wait":true}"#.into(),
        )
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    tokio::select! {
        () = refused(&mut reported, "CONSUMER.MSG.NEXT.PLAN_EVENTS.projector-core") => {}
        answer = futures::StreamExt::next(&mut answers) => {
            panic!("the pull was answered: {answer:?}")
        }
    }
    let info = admin
        .get_stream(STREAM)
        .await
        .expect("stream")
        .consumer_info("projector-core")
        .await
        .expect("consumer info");
    assert_eq!(info.delivered.stream_sequence, 0, "a delivery was taken");
}
