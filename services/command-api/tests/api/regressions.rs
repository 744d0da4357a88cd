//! Regression tests: each one reproduces a reported failure and failed before its fix.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use event_store::StreamSettings;
use remediation_domain::AggregateRef;
use remediation_domain::seed::Seed;
use remediation_domain::text::ItemId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::NatsServer;

use super::{ITEM, SEED, Service, config, jetstream_of, load_seed, office, open_store, post_with};

fn item() -> AggregateRef {
    AggregateRef::Item(ItemId::new(ITEM).expect("item id"))
}

/// `set-item-deadline` commands the service counted with `outcome`.
fn deadlines_counted(service: &Service, outcome: &str) -> u64 {
    let line = format!(
        r#"kh63_command_commands_total{{command="set-item-deadline",outcome="{outcome}"}} "#
    );
    let metrics = service.handler().metrics().render();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.parse().expect("counter value"))
}

/// Issue 8: a client that times out and retries while its first send is in flight sends the same
/// command with the same Idempotency-Key at the same moment. Every sender must get the one answer
/// (status and body), the stream must hold one commit, and the answer must outlive JetStream's
/// duplicate window and a restart of the service. Before the fix a sender could get `200 changed:
/// false` while the other got `201` with the events, and the record kept was whichever came last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_sends_with_one_idempotency_key_get_one_answer() {
    const SENDERS: [usize; 3] = [2, 8, 32];
    const ROUNDS_EACH: usize = 10;
    let nats = NatsServer::start();
    let settings = StreamSettings {
        duplicate_window: Duration::from_secs(1),
        ..StreamSettings::default()
    };
    let config = config(&nats, settings.clone(), 5);
    let service = Service::start(&config).await;
    load_seed(service.handler(), &Seed::from_json(SEED).expect("seed"))
        .await
        .expect("seed");
    let store = open_store(&nats, &settings).await;
    let office = office();
    let first_day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    let accepted_before = deadlines_counted(&service, "accepted");
    let replayed_before = deadlines_counted(&service, "replayed");

    // (key, body, the round's one answer)
    let mut rounds: Vec<(String, Vec<u8>, (StatusCode, Value))> = Vec::new();
    for (round, senders) in SENDERS
        .iter()
        .flat_map(|n| std::iter::repeat_n(*n, ROUNDS_EACH))
        .enumerate()
    {
        // Every round moves the deadline to a day no earlier round used, so it changes state.
        let due_on = first_day + Days::new(round as u64);
        let body = json!({ "item_id": ITEM, "due_on": due_on, "reason": format!("Điều chỉnh lần {round}") })
            .to_string()
            .into_bytes();
        let key = format!("race-{round}-{senders}");
        let before = store.check().await.expect("stream");

        let replies = futures::future::join_all((0..senders).map(|_| {
            let (url, office, body, key) = (
                service.url.clone(),
                office.clone(),
                body.clone(),
                key.clone(),
            );
            tokio::spawn(async move {
                post_with(
                    &url,
                    "set-item-deadline",
                    Some(&office),
                    &[("Idempotency-Key", &key)],
                    body,
                )
                .await
            })
        }))
        .await;
        let answers: Vec<(StatusCode, Value)> = replies
            .into_iter()
            .map(|r| {
                let reply = r.expect("sender");
                (reply.status, reply.body)
            })
            .collect();
        let first = answers[0].clone();
        for answer in &answers {
            assert_eq!(
                answer, &first,
                "round {round} ({senders} senders): every sender gets the one answer"
            );
        }
        assert_eq!(first.0, StatusCode::CREATED, "round {round}: {}", first.1);

        let commits = store.commits_after(&item(), before).await.expect("commits");
        assert_eq!(commits.len(), 1, "round {round}: exactly one commit");
        assert_eq!(first.1["stream_sequence"], json!(commits[0].sequence));
        assert_eq!(first.1["events"][0]["id"], json!(commits[0].events[0].id));
        rounds.push((key, body, first));
    }
    let last = store.check().await.expect("stream");
    // One send per round decided; every other one replayed its answer.
    assert_eq!(
        deadlines_counted(&service, "accepted") - accepted_before,
        rounds.len() as u64
    );
    let sends: usize = SENDERS.iter().map(|n| n * ROUNDS_EACH).sum();
    assert_eq!(
        deadlines_counted(&service, "replayed") - replayed_before,
        (sends - rounds.len()) as u64
    );

    service.shutdown().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await; // past JetStream's duplicate window
    let restarted = Service::start(&config).await;
    for (round, (key, body, first)) in rounds.into_iter().enumerate() {
        let again = post_with(
            &restarted.url,
            "set-item-deadline",
            Some(&office),
            &[("Idempotency-Key", &key)],
            body,
        )
        .await;
        assert_eq!(
            (again.status, again.body),
            first,
            "round {round}: the same answer after the window and a restart"
        );
    }
    assert_eq!(
        store.check().await.expect("stream"),
        last,
        "nothing appended by the resends"
    );
    restarted.shutdown().await;
}

/// nats-server 2.9.10 let a replica of the stream drift by a sequence or two after its leader was
/// cut off (tests/stack/cluster.rs). The command service starting with replicas on such a server is
/// refused with a message that says why, and creates no stream; a newer server is left to judge
/// the replica count itself (a single node refuses it in its own words).
#[tokio::test]
async fn replicas_on_a_nats_server_older_than_2_10_are_refused_before_anything_is_created() {
    let nats = NatsServer::start();
    let js = jetstream_of(&nats).await;
    let version = js.client().server_info().version;
    let replicated = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let refused = match command_api::app_state(&config(&nats, replicated, 1)).await {
        Ok(_) => panic!("three replicas on one node of nats-server {version} were accepted"),
        Err(e) => e.to_string(),
    };
    let ours = refused.contains("replicated streams need nats-server 2.10 or later");
    assert_eq!(
        ours,
        !event_store::replicates_safely(&version),
        "nats-server {version}: {refused}"
    );
    assert!(
        js.get_stream(StreamSettings::default().name).await.is_err(),
        "no stream was created"
    );
}
