//! SIGTERM to the query-api binary while 16 clients read: every request it took is answered in
//! full (200 with a whole JSON body), the others are refused at the door, and it exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use event_store::StreamSettings;
use event_store::access::Service as Identity;
use remediation_domain::{Actor, Role};
use reqwest::StatusCode;
use service_kit::auth::TokenKeys;
use test_support::{NatsServer, TestDatabase};

const SECRET: &str = "test-secret-test-secret-test-secret!";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_reads_answers_what_it_took_in_full_and_exits_cleanly() {
    let nats = NatsServer::start();
    event_store::provision(
        &jetstream::new(nats.connect(Identity::Admin).await),
        &StreamSettings::default(),
    )
    .await
    .expect("provision the stream");
    // The projector's schemas, empty, as it prepares them.
    let database = TestDatabase::create();
    let pool = sqlx::PgPool::connect(&database.url()).await.expect("pool");
    readmodel::prepare_read_model(&pool, "")
        .await
        .expect("prepare the read model");

    let address = format!("127.0.0.1:{}", test_support::free_port());
    let mut binary = Command::new(env!("CARGO_BIN_EXE_query-api"))
        .env("DATABASE_URL", database.url())
        .env("QUERY_API_ADDR", &address)
        .env("TOKEN_SECRET", SECRET)
        .env("NATS_URL", nats.url())
        .env("NATS_NKEY_FILE", nats.nkey_file(Identity::QueryApi))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the query-api binary");
    let url = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{url}/healthz"))
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "the binary never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let token = TokenKeys::new(SECRET.as_bytes())
        .expect("keys")
        .issue(
            &Actor {
                user: "viewer".to_owned(),
                unit: None,
                role: Role::Viewer,
            },
            chrono::Duration::hours(1),
        )
        .expect("token");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut answered, mut refused) = (0, 0);
                for _ in 0..10_000 {
                    let sent = http
                        .get(format!("{url}/v1/overdue"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    let Ok(response) = sent else {
                        refused += 1;
                        break;
                    };
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: serde_json::Value = response.json().await.expect("a whole JSON body");
                    assert!(body.is_object(), "{body}");
                    answered += 1;
                }
                (answered, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Command::new("kill")
        .args(["-TERM", &binary.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM");
    let (mut answered, mut refused) = (0, 0);
    for client in clients {
        let (a, r) = client.await.expect("client");
        answered += a;
        refused += r;
    }
    let exited = tokio::task::spawn_blocking(move || binary.wait())
        .await
        .expect("join")
        .expect("wait for the binary");
    assert!(exited.success(), "the binary exits 0 on SIGTERM: {exited}");
    assert!(answered > 0, "the reads ran before the stop");
    assert_eq!(
        refused, 16,
        "every client is turned away once the service stops"
    );
    eprintln!("SIGTERM: {answered} reads answered in full, then every client refused");
}
