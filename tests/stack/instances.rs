//! Two command services behind one address (round robin) and two projectors for the same
//! projections, under 16 clients: every accepted command is one commit, and the read model equals
//! what one projector makes of the same stream from scratch.

use std::time::Duration;

use async_nats::jetstream;
use command_app::seed::load_seed;
use event_store::StreamSettings;
use event_store::access::Service as Identity;
use remediation_domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{NatsServer, TestDatabase};

use super::{
    ITEM_1, LEAD, checksums_of, command_handler, command_settings, office, seed, start_commands,
    start_projector, stop_commands, task, token, wait_for_checkpoints,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_command_services_and_two_projectors_make_what_one_of_each_makes() {
    let nats = NatsServer::start();
    let database = TestDatabase::create();
    let settings = command_settings(&nats.url(), nats.nkey_file(Identity::CommandApi));
    let first_service = start_commands(settings.clone()).await;
    let second_service = start_commands(settings).await;
    let (first_url, second_url) = (first_service.url(), second_service.url());
    let handler = command_handler(
        &nats.url(),
        nats.nkey_file(Identity::CommandApi),
        &StreamSettings::default(),
    )
    .await;
    load_seed(&handler, &seed()).await.expect("seed loads");
    let projectors = [
        start_projector(&nats, &database.url()).await,
        start_projector(&nats, &database.url()).await,
    ];

    // 16 clients, round robin over the two services: tasks of their own, and deadline changes
    // all on one item (conflicts between the instances).
    let urls = [first_url, second_url];
    let (staff, office) = (token(Role::UnitStaff, Some(LEAD)), office());
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (urls, staff, office) = (urls.clone(), staff.clone(), office.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut accepted = Vec::new();
                for n in 0..10 {
                    let url = &urls[(client + n) % 2];
                    let (command, token, body) = if n % 2 == 0 {
                        let due = chrono::NaiveDate::from_ymd_opt(2025, 9, 30).expect("date");
                        let id = format!("hai-phien-ban-{client}-{n}");
                        ("plan-task", &staff, task(&id, ITEM_1, LEAD, due))
                    } else {
                        let day = 1 + (client * 10 + n) % 28;
                        let body = json!({
                            "item_id": ITEM_1,
                            "due_on": format!("2025-11-{day:02}"),
                            "reason": "Điều chỉnh theo tiến độ thực tế",
                        });
                        ("set-item-deadline", &office, body)
                    };
                    let response = http
                        .post(format!("{url}/v1/commands/{command}"))
                        .bearer_auth(token)
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("an answer");
                    let status = response.status();
                    let answer: Value = response.json().await.expect("JSON");
                    match status {
                        StatusCode::CREATED => {
                            accepted.push(answer["stream_sequence"].as_u64().expect("sequence"));
                        }
                        // Another instance changed the item first, or the same date was set
                        // before (nothing to change).
                        StatusCode::CONFLICT | StatusCode::OK => {}
                        other => panic!("{command}: {other} {answer}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.expect("client"));
    }
    accepted.sort_unstable();
    let commits = accepted.len();
    accepted.dedup();
    assert_eq!(accepted.len(), commits, "every 201 is a commit of its own");

    let mut stream = jetstream::new(nats.connect(Identity::Admin).await)
        .get_stream(StreamSettings::default().name)
        .await
        .expect("stream");
    let head = stream.info().await.expect("info").state.last_sequence;
    assert_eq!(
        head as usize,
        seed().commands().len() + commits,
        "the stream holds the seed and exactly the accepted commands"
    );
    wait_for_checkpoints(&database, head).await;
    // Let the stand-by notice nothing is left either, then stop both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for projector in projectors {
        projector.stop().await;
    }

    let fresh = TestDatabase::create();
    let single = start_projector(&nats, &fresh.url()).await;
    wait_for_checkpoints(&fresh, head).await;
    single.stop().await;
    assert_eq!(
        checksums_of(&database).await,
        checksums_of(&fresh).await,
        "two projectors made what one makes"
    );
    eprintln!(
        "two instances each: {commits} commands accepted of 160, the read model equal to one projector's"
    );
    for service in [first_service, second_service] {
        stop_commands(service).await;
    }
}
