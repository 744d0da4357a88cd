//! Faults around a running command service: the stream out of room, two instances behind one
//! address, and a stop in the middle of a load — the graceful shutdown in-process, and SIGTERM to
//! the real binary. In each, a
//! command is stored once or not at all, and its client learns which.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use event_store::StreamSettings;
use futures::TryStreamExt;
use remediation_domain::Role;
use remediation_domain::seed::Seed;
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    Identity, LEAD_UNIT, SECRET, Service, assert_problem, jetstream_of, post_with, seeded,
    task_body, token,
};

async fn events(nats: &test_support::NatsServer) -> Stream {
    jetstream_of(nats)
        .await
        .get_stream(StreamSettings::default().name)
        .await
        .expect("the event stream")
}

/// How many messages each task's subject holds.
async fn task_subjects(stream: &Stream) -> HashMap<String, usize> {
    stream
        .info_with_subjects("events.task.>")
        .await
        .expect("subjects")
        .try_collect()
        .await
        .expect("subject counts")
}

async fn message_count(stream: &mut Stream) -> u64 {
    stream.info().await.expect("stream info").state.messages
}

/// Sets the stream's message limit as an operator would (`nats stream edit --max-msgs`).
async fn limit_messages(stream: &mut Stream, nats: &test_support::NatsServer, max: i64) {
    let mut config = stream.info().await.expect("stream info").config.clone();
    config.max_messages = max;
    jetstream_of(nats)
        .await
        .update_stream(config)
        .await
        .expect("update the stream's limits");
}

#[tokio::test]
async fn a_full_stream_refuses_with_store_full_and_the_same_command_lands_once_room_is_made() {
    let (nats, _config, service) = seeded(5).await;
    let mut stream = events(&nats).await;
    let before = message_count(&mut stream).await;
    limit_messages(&mut stream, &nats, before as i64).await;

    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    let key = [("Idempotency-Key", "task-while-full")];
    let body = task_body("snnmt-full", LEAD_UNIT).to_string().into_bytes();
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/commands/plan-task", service.url))
        .bearer_auth(&staff)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "task-while-full")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("60"),
        "room comes back when an operator acts, not in a second"
    );
    let refused = super::Reply {
        status: refused.status(),
        content_type: refused
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: refused.json().await.unwrap_or(Value::Null),
    };
    assert_problem(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:store-full",
    );
    assert_eq!(message_count(&mut stream).await, before, "nothing stored");

    limit_messages(&mut stream, &nats, -1).await;
    let landed = post_with(&service.url, "plan-task", Some(&staff), &key, body.clone()).await;
    assert_eq!(landed.status, StatusCode::CREATED, "{}", landed.body);
    let again = post_with(&service.url, "plan-task", Some(&staff), &key, body).await;
    assert_eq!((again.status, &again.body), (landed.status, &landed.body));
    assert_eq!(message_count(&mut stream).await, before + 1);
    assert_eq!(
        task_subjects(&stream).await.get("events.task.snnmt-full"),
        Some(&1)
    );
    service.shutdown().await;
}

#[tokio::test]
async fn a_full_disk_refuses_with_store_full_and_the_command_lands_once_space_returns() {
    // A disk of 400 kB for JetStream: the seed takes about half of it.
    let mut nats = test_support::NatsServer::start();
    nats.limit_file_store(Some(400_000));
    nats.restart();
    let mut config = super::config(&nats, StreamSettings::default(), 5);
    // The refused send's claim on its key cannot be released while the disk is full either: a
    // retry takes the key over once the lease ends (30 s by default).
    config.handler.idempotency_lease = Duration::from_secs(3);
    let service = Service::start(&config).await;
    super::load_seed(
        service.handler(),
        &Seed::from_json(super::SEED).expect("seed"),
    )
    .await
    .expect("the seed fits");
    let mut stream = events(&nats).await;

    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    let mut refused = None;
    for n in 0..2_000 {
        let task = format!("snnmt-disk-{n}");
        let key = [("Idempotency-Key", task.as_str())];
        let body = task_body(&task, LEAD_UNIT).to_string().into_bytes();
        let before = message_count(&mut stream).await;
        let reply = post_with(&service.url, "plan-task", Some(&staff), &key, body.clone()).await;
        if reply.status == StatusCode::CREATED {
            continue;
        }
        assert_problem(
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:kh63:problem:store-full",
        );
        assert_eq!(message_count(&mut stream).await, before, "nothing stored");
        refused = Some((task, body));
        break;
    }
    let (task, body) = refused.expect("the disk fills within 2 000 commands");

    // Space returns: the same command with the same key lands, once.
    nats.limit_file_store(None);
    nats.restart();
    let key = [("Idempotency-Key", task.as_str())];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let landed = loop {
        let reply = post_with(&service.url, "plan-task", Some(&staff), &key, body.clone()).await;
        let in_flight = reply.status == StatusCode::CONFLICT
            && reply.body["type"] == "urn:kh63:problem:idempotency-key-in-flight";
        if reply.status != StatusCode::SERVICE_UNAVAILABLE && !in_flight {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(landed.status, StatusCode::CREATED, "{}", landed.body);
    let subject = format!("events.task.{task}");
    assert_eq!(task_subjects(&stream).await.get(&subject), Some(&1));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_command_services_behind_one_address_store_each_accepted_command_once() {
    let (nats, config, first) = seeded(5).await;
    let second = Service::start(&config).await;
    let office = super::office();
    let mut stream = events(&nats).await;
    let before = message_count(&mut stream).await;

    // 16 clients, round robin over the two instances, all on the same item: conflicts between
    // the instances are the point. Every command changes the deadline to a date of its own.
    let urls = [first.url.clone(), second.url.clone()];
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (urls, office) = (urls.clone(), office.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..8 {
                    let url = &urls[(client + n) % 2];
                    let day = 1 + (client * 8 + n) % 28;
                    let month = 7 + (client * 8 + n) / 28;
                    let body = serde_json::json!({
                        "item_id": super::ITEM,
                        "due_on": format!("2025-{month:02}-{day:02}"),
                        "reason": "Điều chỉnh theo tiến độ thực tế",
                    });
                    let key = format!("round-robin-{client}-{n}");
                    let reply = post_with(
                        url,
                        "set-item-deadline",
                        Some(&office),
                        &[("Idempotency-Key", key.as_str())],
                        body.to_string().into_bytes(),
                    )
                    .await;
                    answers.push((reply.status, reply.body));
                }
                answers
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for client in clients {
        for (status, body) in client.await.expect("client") {
            match status {
                StatusCode::CREATED => accepted.push(body["stream_sequence"].as_u64()),
                StatusCode::CONFLICT => assert_eq!(
                    body["type"], "urn:kh63:problem:concurrency-conflict",
                    "{body}"
                ),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert!(!accepted.is_empty(), "some commands are accepted");
    eprintln!(
        "two instances, one item: {} accepted, {} conflicts",
        accepted.len(),
        16 * 8 - accepted.len()
    );
    let mut sequences: Vec<u64> = accepted.iter().map(|s| s.expect("sequence")).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), accepted.len(), "one commit per 201");
    assert_eq!(
        message_count(&mut stream).await,
        before + accepted.len() as u64,
        "the stream holds exactly the accepted commands"
    );
    first.shutdown().await;
    second.shutdown().await;
}

/// Sends `plan-task` for `task` as `staff`, with the Idempotency-Key `<key_prefix>-<task>`.
async fn send_plan(
    url: &str,
    staff: &str,
    task: &str,
    key_prefix: &str,
) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{url}/v1/commands/plan-task"))
        .bearer_auth(staff)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", format!("{key_prefix}-{task}"))
        .body(task_body(task, LEAD_UNIT).to_string())
        .send()
        .await
}

/// Sends `plan-task` for `task` with its own key; `None` when no answer came (the service was
/// going away or gone).
async fn try_plan(url: &str, staff: &str, task: &str) -> Option<(StatusCode, Value)> {
    let response = send_plan(url, staff, task, "stop").await.ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

/// What each command of [`stop_under_load`] got: its task and the answer, `None` when none came.
type Outcomes = Vec<(String, Option<(StatusCode, Value)>)>;

/// 32 clients plan tasks on `url` one after the other until the service stops answering; `stop`
/// runs 300 ms into the load. Then: every answered command is stored once and every unanswered
/// one not at all, and a service started with `config` takes the unanswered ones, each once.
/// Prints the counts; `label` names the stop.
async fn stop_under_load(
    nats: &test_support::NatsServer,
    config: &command_api::config::Config,
    url: &str,
    label: &str,
    stop: impl Future<Output = ()>,
) {
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let (url, staff) = (url.to_owned(), staff.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..20 {
                    let task = format!("stop-{client}-{n}");
                    let answer = try_plan(&url, &staff, &task).await;
                    let gone = answer.is_none();
                    outcomes.push((task, answer));
                    if gone {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.await;

    let mut outcomes: Outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("client"));
    }
    let stream = events(nats).await;
    let stored = task_subjects(&stream).await;
    let mut answered = 0;
    for (task, answer) in &outcomes {
        let subject = format!("events.task.{task}");
        match answer {
            Some((status, body)) => {
                assert_eq!(*status, StatusCode::CREATED, "{task}: {body}");
                assert_eq!(stored.get(&subject), Some(&1), "{task} answered and stored");
                answered += 1;
            }
            // Refused at the door: never taken, never stored.
            None => assert_eq!(stored.get(&subject), None, "{task} unanswered yet stored"),
        }
    }
    assert!(answered > 0, "the load ran before the stop");
    eprintln!(
        "{label}: {answered} commands answered 201 and stored once, {} turned away unstored",
        outcomes.len() - answered
    );
    assert_eq!(stored.len(), answered, "only answered commands are stored");

    // A restart takes the commands the stop turned away, each once.
    let restarted = Service::start(config).await;
    for (task, answer) in &outcomes {
        if answer.is_none() {
            let (status, body) = try_plan(&restarted.url, &staff, task)
                .await
                .expect("the restarted service answers");
            assert_eq!(status, StatusCode::CREATED, "{task}: {body}");
        }
    }
    let stored = task_subjects(&stream).await;
    assert_eq!(stored.len(), outcomes.len());
    assert!(stored.values().all(|count| *count == 1));
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_under_load_answers_what_it_took_and_a_restart_takes_the_rest() {
    let (nats, config, service) = seeded(5).await;
    let url = service.url.clone();
    stop_under_load(&nats, &config, &url, "graceful stop", service.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_to_the_binary_under_load_answers_what_it_took_and_it_exits_cleanly() {
    let (nats, config, service) = seeded(5).await;
    service.shutdown().await;
    let address = format!("127.0.0.1:{}", test_support::free_port());
    let mut binary = std::process::Command::new(env!("CARGO_BIN_EXE_command-api"))
        .env("NATS_URL", nats.url())
        .env("NATS_NKEY_FILE", nats.nkey_file(Identity::CommandApi))
        .env("COMMAND_API_ADDR", &address)
        .env("TOKEN_SECRET", std::str::from_utf8(SECRET).expect("text"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the command-api binary");
    let url = format!("http://{address}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{url}/readyz"))
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the binary never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = binary.id();
    let sigterm = async move {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
    };
    stop_under_load(&nats, &config, &url, "SIGTERM", sigterm).await;
    let exited = tokio::task::spawn_blocking(move || binary.wait())
        .await
        .expect("join")
        .expect("wait for the binary");
    assert!(exited.success(), "the binary exits 0 on SIGTERM: {exited}");
}

/// Sends `plan-task` for `task` with its own key and answers (status, Retry-After, body).
async fn plan_answer(url: &str, staff: &str, task: &str) -> (StatusCode, Option<String>, Value) {
    let response = send_plan(url, staff, task, "overload")
        .await
        .expect("the service answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, response.json().await.expect("JSON"))
}

/// More commands at once than the service decides at once (`MAX_IN_FLIGHT`, here 1): those
/// beyond the limit are refused at once with 503 `overloaded` and `Retry-After`, nothing of
/// theirs is stored, and each lands once when sent again. Without the limit a flood queued in
/// memory (an open-loop 5 000 commands/s took the service to 500 MB and 8 s answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_beyond_the_in_flight_limit_are_refused_at_once_and_store_nothing() {
    let (nats, mut config, first) = seeded(5).await;
    config.max_in_flight = std::num::NonZeroUsize::MIN;
    let limited = Service::start(&config).await;
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    let stream = events(&nats).await;

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let senders: Vec<_> = (0..32)
        .map(|n| {
            let (url, staff, start) = (limited.url.clone(), staff.clone(), start.clone());
            tokio::spawn(async move {
                let task = format!("overload-{n}");
                start.wait().await;
                let answer = plan_answer(&url, &staff, &task).await;
                (task, answer)
            })
        })
        .collect();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for sender in senders {
        let (task, (status, retry_after, body)) = sender.await.expect("sender");
        match status {
            StatusCode::CREATED => accepted.push(task),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["type"], "urn:kh63:problem:overloaded", "{body}");
                assert_eq!(body["status"], 503, "{body}");
                assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                refused.push(task);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    eprintln!(
        "32 at once, 1 in flight: {} accepted, {} refused",
        accepted.len(),
        refused.len()
    );
    assert!(!accepted.is_empty(), "the first command is decided");
    assert!(
        !refused.is_empty(),
        "32 commands at once exceed a limit of 1"
    );
    let stored = task_subjects(&stream).await;
    for task in &accepted {
        assert_eq!(
            stored.get(&format!("events.task.{task}")),
            Some(&1),
            "{task}"
        );
    }
    for task in &refused {
        assert_eq!(stored.get(&format!("events.task.{task}")), None, "{task}");
    }

    // Sent again one at a time, each refused command lands, once.
    for task in &refused {
        let (status, _, body) = plan_answer(&limited.url, &staff, task).await;
        assert_eq!(status, StatusCode::CREATED, "{task}: {body}");
    }
    let stored = task_subjects(&stream).await;
    for task in accepted.iter().chain(&refused) {
        assert_eq!(
            stored.get(&format!("events.task.{task}")),
            Some(&1),
            "{task}"
        );
    }
    limited.shutdown().await;
    first.shutdown().await;
}
