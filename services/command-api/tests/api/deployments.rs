//! Several deployments on one nats-server, isolated. In accounts of their own (the NATS way:
//! `remediation-admin nats-credentials --account A --account B`) two stacks with the very same
//! stream, subjects and bucket share nothing; in one account, a second stack with its own
//! `STREAM_NAME`, `SUBJECT_PREFIX` and `IDEMPOTENCY_BUCKET` provisions beside the first instead
//! of failing with "subjects overlap", and each stream holds its own commits only.

use super::*;

const KEY: [(&str, &str); 1] = [("Idempotency-Key", "deadline-of-item-1")];

fn deadline(due_on: &str) -> Vec<u8> {
    json!({ "item_id": ITEM, "due_on": due_on })
        .to_string()
        .into_bytes()
}

/// A command service of one deployment with the Plan 63 seed loaded; the seed's commits.
async fn seeded_with(config: &Config) -> (Service, usize) {
    let service = Service::start(config).await;
    let seed = Seed::from_json(SEED).expect("seed parses");
    let report = load_seed(service.handler(), &seed)
        .await
        .expect("seed loads");
    (service, report.changed)
}

/// The stream's message count and the last commit on item 1's subject (its JSON text), read by
/// `client` (the deployment's operator).
async fn item_commit(client: async_nats::Client, settings: &StreamSettings) -> (u64, String) {
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&settings.name).await.expect("stream");
    let messages = stream.info().await.expect("stream info").state.messages;
    let last = stream
        .get_last_raw_message_by_subject(&format!("{}.item.{ITEM}", settings.subject_prefix))
        .await
        .expect("item 1's last commit");
    (
        messages,
        String::from_utf8_lossy(&last.payload).into_owned(),
    )
}

/// `seen` is the deployment's stream with `commits` commits, the last on item 1 setting `mine`
/// and nothing of `theirs`.
#[track_caller]
fn assert_own(seen: &(u64, String), commits: u64, mine: &str, theirs: &str) {
    assert_eq!(seen.0, commits, "{}", seen.1);
    assert!(seen.1.contains(mine), "{}", seen.1);
    assert!(!seen.1.contains(theirs), "{}", seen.1);
}

#[tokio::test]
async fn two_deployments_in_accounts_of_their_own_share_nothing() {
    let nats = NatsServer::start_with_accounts(&["KH63_THANH_HOA", "KH63_STAGING"]);
    let config_of = |account: &str| Config {
        nats_nkey_file: Some(nats.account_nkey_file(account, Identity::CommandApi)),
        ..config(&nats, StreamSettings::default(), 5)
    };
    let (province, seed_commits) = seeded_with(&config_of("KH63_THANH_HOA")).await;
    let (staging, staging_commits) = seeded_with(&config_of("KH63_STAGING")).await;
    assert_eq!(seed_commits, staging_commits, "both loaded the whole seed");

    // The same user and Idempotency-Key in both: each deployment decides on its own (a shared
    // bucket would refuse the second as a key reused for another request).
    let first = post_with(
        &province.url,
        "set-item-deadline",
        Some(&office()),
        &KEY,
        deadline("2025-11-30"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = post_with(
        &staging.url,
        "set-item-deadline",
        Some(&office()),
        &KEY,
        deadline("2025-10-31"),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(
        first.body["stream_sequence"],
        second.body["stream_sequence"]
    );

    let settings = StreamSettings::default();
    let commits = seed_commits as u64 + 1;
    let province_admin = nats
        .connect_to_account("KH63_THANH_HOA", Identity::Admin)
        .await;
    let staging_admin = nats
        .connect_to_account("KH63_STAGING", Identity::Admin)
        .await;
    assert_own(
        &item_commit(province_admin, &settings).await,
        commits,
        "2025-11-30",
        "2025-10-31",
    );
    assert_own(
        &item_commit(staging_admin, &settings).await,
        commits,
        "2025-10-31",
        "2025-11-30",
    );
    province.shutdown().await;
    staging.shutdown().await;
}

#[tokio::test]
async fn a_second_deployment_in_one_account_with_its_own_stream_prefix_and_bucket() {
    let nats = NatsServer::start();
    let (production, seed_commits) =
        seeded_with(&config(&nats, StreamSettings::default(), 5)).await;
    let staging_settings = StreamSettings {
        name: "STAGING_EVENTS".to_owned(),
        subject_prefix: "staging".to_owned(),
        idempotency_bucket: "STAGING_IDEMPOTENCY".to_owned(),
        ..StreamSettings::default()
    };
    // The test server's accounts grant the service users the default layout only; the operator
    // key stands in for the staging deployment's command service (`nats-credentials` with the
    // staging settings grants its own users exactly its stream, subjects and bucket).
    let staging_config = Config {
        nats_nkey_file: Some(nats.nkey_file(Identity::Admin)),
        ..config(&nats, staging_settings.clone(), 5)
    };
    let (staging, staging_commits) = seeded_with(&staging_config).await;
    assert_eq!(seed_commits, staging_commits);

    let first = post_with(
        &production.url,
        "set-item-deadline",
        Some(&office()),
        &KEY,
        deadline("2025-11-30"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = post_with(
        &staging.url,
        "set-item-deadline",
        Some(&office()),
        &KEY,
        deadline("2025-10-31"),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);

    let commits = seed_commits as u64 + 1;
    let admin = nats.connect(Identity::Admin).await;
    assert_own(
        &item_commit(admin.clone(), &StreamSettings::default()).await,
        commits,
        "2025-11-30",
        "2025-10-31",
    );
    assert_own(
        &item_commit(admin, &staging_settings).await,
        commits,
        "2025-10-31",
        "2025-11-30",
    );
    // Production's command service may not write into staging's subjects.
    let js = jetstream::new(nats.connect(Identity::CommandApi).await);
    let refused = async {
        js.publish(format!("staging.item.{ITEM}"), "{}".into())
            .await?
            .await
    }
    .await;
    assert!(
        refused.is_err(),
        "published into another deployment's subjects"
    );
    production.shutdown().await;
    staging.shutdown().await;
}
