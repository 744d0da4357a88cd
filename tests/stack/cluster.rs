//! A three-node JetStream cluster losing a node while 32 clients send commands, each retrying
//! with its `Idempotency-Key` as a client behind a load balancer would — the stream's leader or
//! the idempotency bucket's killed with SIGKILL, or the stream's leader cut off (SIGSTOP) and
//! back: every command is answered `201` in the end, the stream holds each command's events
//! exactly once, and the pause the fault costs is printed (a measurement, not an assertion). The
//! projector, connected to the same cluster, applies all of it: its tables equal a from-scratch
//! projection of the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::Stream};
use command_app::seed::load_seed;
use event_store::StreamSettings;
use event_store::access::Service as Identity;
use futures::TryStreamExt;
use remediation_domain::Role;
use reqwest::StatusCode;
use serde_json::Value;
use test_support::{NatsCluster, TestDatabase};

use super::{
    LEAD, Settings, checksums_of, command_handler, command_settings, seed, start_commands,
    start_projector_on, stop_commands, token, wait_for_checkpoints, with,
};

const CLIENTS: usize = 32;
const COMMANDS_PER_CLIENT: usize = 12;

/// The command service on the cluster, with a replicated stream.
fn cluster_settings(cluster: &NatsCluster) -> Settings {
    let settings = command_settings(&cluster.urls(), cluster.nkey_file(Identity::CommandApi));
    let settings = with(settings, "STREAM_REPLICAS", "3");
    let settings = with(settings, "NATS_TIMEOUT_MS", "1500");
    // A send whose claim could not be released (the bucket's leader died under it) holds its
    // key until the lease ends; with the default 30 s the pause is that long.
    with(settings, "IDEMPOTENCY_LEASE_SECS", "8")
}

/// The event stream as the operator sees it through node `index`.
async fn events_stream(cluster: &NatsCluster, index: usize) -> Stream {
    let name = StreamSettings::default().name;
    jetstream::new(cluster.connect(index, Identity::Admin).await)
        .get_stream(&name)
        .await
        .unwrap_or_else(|e| panic!("stream {name}: {e}"))
}

/// The node leading stream `name`'s RAFT group, asked through node `index`; waits while the
/// group has none (an election in progress, when a request about the stream may also go
/// unanswered until it times out).
async fn leader(cluster: &NatsCluster, index: usize, name: &str) -> usize {
    let js = jetstream::new(cluster.connect(index, Identity::Admin).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(stream) = js.get_stream(name).await
            && let Some(name) = stream
                .cached_info()
                .cluster
                .as_ref()
                .and_then(|c| c.leader.clone())
            && let Some(node) = cluster.index_of(&name)
        {
            return node;
        }
        assert!(Instant::now() < deadline, "the stream has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one command until it is answered, retrying with the same key on every answer a
/// failover may give (no answer, `503` store unavailable, `409` while the first send still holds
/// the key); returns the status and body of the final answer and when it came.
async fn send_until_answered(
    http: &reqwest::Client,
    url: &str,
    staff: &str,
    task: &str,
) -> (StatusCode, Value, Instant) {
    let due_on = chrono::NaiveDate::from_ymd_opt(2025, 9, 30).expect("a date");
    let body = super::task(task, super::ITEM_1, LEAD, due_on).to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = http
            .post(format!("{url}/v1/commands/plan-task"))
            .bearer_auth(staff)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", format!("cluster-{task}"))
            .body(body.clone())
            .send()
            .await
            .expect("the command service answers");
        let status = sent.status();
        let answer: Value = sent.json().await.unwrap_or(Value::Null);
        let retry = status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::CONFLICT
                && answer["type"] == "urn:kh63:problem:idempotency-key-in-flight");
        if !retry {
            return (status, answer, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "{task}: still {status} after two minutes: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What happens to the cluster mid-load.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL to the node leading the event stream.
    StreamLeaderKilled,
    /// SIGKILL to the node leading the idempotency bucket's stream.
    BucketLeaderKilled,
    /// SIGSTOP to the stream's leader for a few seconds, then SIGCONT: a node partitioned away
    /// and back.
    StreamLeaderPartitioned,
}

/// 32 clients send `COMMANDS_PER_CLIENT` commands each; once a quarter are answered, `fault`
/// strikes. Every command must end `201` and be stored exactly once.
async fn commands_survive(fault: Fault) {
    let mut cluster = NatsCluster::start();
    let command_service = start_commands(cluster_settings(&cluster)).await;
    let url = command_service.url();
    let replicated = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let handler = command_handler(
        &cluster.urls(),
        cluster.nkey_file(Identity::CommandApi),
        &replicated,
    )
    .await;
    load_seed(&handler, &seed())
        .await
        .expect("seed loads on the replicated stream");
    let database = TestDatabase::create();
    let projector = start_projector_on(
        &cluster.urls(),
        cluster.nkey_file(Identity::Projector),
        &database.url(),
    )
    .await;
    let bucket = format!("KV_{}", StreamSettings::default().idempotency_bucket);
    let victim = match fault {
        Fault::StreamLeaderKilled | Fault::StreamLeaderPartitioned => {
            leader(&cluster, 0, &StreamSettings::default().name).await
        }
        Fault::BucketLeaderKilled => leader(&cluster, 0, &bucket).await,
    };
    let survivor = (victim + 1) % 3;

    let staff = token(Role::UnitStaff, Some(LEAD));
    let http = reqwest::Client::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url, staff) = (http.clone(), url.clone(), staff.clone());
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut answers = Vec::with_capacity(COMMANDS_PER_CLIENT);
                for n in 0..COMMANDS_PER_CLIENT {
                    let task = format!("failover-{client}-{n}");
                    let (status, body, at) = send_until_answered(&http, &url, &staff, &task).await;
                    answered.fetch_add(1, Ordering::Relaxed);
                    answers.push((task, status, body, at));
                }
                answers
            })
        })
        .collect();

    // Strike once a quarter of the commands are in, while the rest are in flight.
    while answered.load(Ordering::Relaxed) < CLIENTS * COMMANDS_PER_CLIENT / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let struck_at = Instant::now();
    match fault {
        Fault::StreamLeaderKilled | Fault::BucketLeaderKilled => cluster.kill(victim),
        Fault::StreamLeaderPartitioned => {
            cluster.pause(victim);
            tokio::time::sleep(Duration::from_secs(6)).await;
            cluster.resume(victim);
        }
    }

    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.expect("client"));
    }
    for (task, status, body, _) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{task}: {body}");
    }
    let stream_leader = leader(&cluster, survivor, &StreamSettings::default().name).await;
    if let Fault::StreamLeaderKilled = fault {
        assert_ne!(stream_leader, victim, "a surviving node leads the stream");
    }

    // Exactly once: one message on each task's subject, and no task subject besides them.
    let mut stream = events_stream(&cluster, survivor).await;
    let subjects: std::collections::HashMap<String, usize> = stream
        .info_with_subjects("events.task.>")
        .await
        .expect("subjects")
        .try_collect()
        .await
        .expect("subject counts");
    assert_eq!(subjects.len(), CLIENTS * COMMANDS_PER_CLIENT);
    for (task, ..) in &answers {
        assert_eq!(
            subjects.get(&format!("events.task.{task}")),
            Some(&1),
            "{task} stored exactly once"
        );
    }

    // The fault's cost: the longest time no command was answered after it struck.
    let mut times: Vec<Instant> = answers.iter().map(|(.., at)| *at).collect();
    times.push(struck_at);
    times.sort();
    let pause = times
        .windows(2)
        .filter(|w| w[1] >= struck_at)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "{fault:?} (n{}): {} commands, each stored once; longest pause without an answer \
         {pause:?}; stream leader now n{}",
        victim + 1,
        answers.len(),
        stream_leader + 1
    );

    // The node rejoins, and the stream goes on taking commands.
    if !matches!(fault, Fault::StreamLeaderPartitioned) {
        cluster.restart(victim);
    }
    let (status, body, _) = send_until_answered(&http, &url, &staff, "after-rejoin").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The projector applied all of it, and equals a projection of the stream from scratch (its
    // own projector stopped first: both would use the same durable consumers).
    let head = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    wait_for_checkpoints(&database, head).await;
    projector.stop().await;
    let fresh = TestDatabase::create();
    let reference = start_projector_on(
        &cluster.urls(),
        cluster.nkey_file(Identity::Projector),
        &fresh.url(),
    )
    .await;
    wait_for_checkpoints(&fresh, head).await;
    reference.stop().await;
    assert_eq!(
        checksums_of(&database).await,
        checksums_of(&fresh).await,
        "the projection that lived through the fault equals one built from scratch"
    );
    stop_commands(command_service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_stream_leader_under_load_loses_and_doubles_no_command() {
    commands_survive(Fault::StreamLeaderKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_idempotency_bucket_leader_under_load_loses_and_doubles_no_command() {
    commands_survive(Fault::BucketLeaderKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioning_the_stream_leader_away_and_back_loses_and_doubles_no_command() {
    commands_survive(Fault::StreamLeaderPartitioned).await;
}
