//! Rotating the token secret without downtime: while the new secret signs and the old one is
//! configured as the previous secret (`TOKEN_SECRET_PREVIOUS`), tokens signed with either are
//! accepted; once the previous secret is removed, tokens signed with it are refused.

use super::*;

const NEW_SECRET: &[u8] = b"the-new-secret-the-new-secret-the-new-secret";

fn office_actor() -> Actor {
    Actor {
        user: "vp-ubnd".into(),
        unit: None,
        role: Role::ProvinceOffice,
    }
}

/// `GET /v1/me` with `token`: the status.
async fn me(url: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{url}/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/me")
        .status()
}

#[tokio::test]
async fn tokens_of_the_previous_secret_work_until_it_is_removed_and_new_ones_use_the_new_secret() {
    let (nats, old_config, service) = seeded(5).await;
    let old_token = office();
    assert_eq!(me(&service.url, &old_token).await, StatusCode::OK);
    service.shutdown().await;

    // During the change: the new secret signs, the old one is still accepted.
    let rotating = Config {
        token_secret: NEW_SECRET.to_vec(),
        previous_token_secret: Some(SECRET.to_vec()),
        ..old_config.clone()
    };
    let service = Service::start(&rotating).await;
    let new_token = service
        .state
        .keys
        .issue(&office_actor(), chrono::Duration::hours(1))
        .expect("token");
    // New tokens are signed with the new secret only.
    assert!(
        TokenKeys::new(NEW_SECRET)
            .expect("keys")
            .verify(&new_token)
            .is_ok()
    );
    assert!(
        TokenKeys::new(SECRET)
            .expect("keys")
            .verify(&new_token)
            .is_err()
    );
    assert_eq!(me(&service.url, &old_token).await, StatusCode::OK);
    assert_eq!(me(&service.url, &new_token).await, StatusCode::OK);
    // A command under a token of the old secret is served, not just its identity.
    let body = json!({"item_id": ITEM, "due_on": "2025-11-30"});
    let reply = post(&service.url, "set-item-deadline", &old_token, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "body: {}", reply.body);
    // The previous secret does not revive expired tokens, nor does it let other secrets in.
    let expired = TokenKeys::new(SECRET)
        .expect("keys")
        .issue(&office_actor(), chrono::Duration::hours(-1))
        .expect("token");
    assert_eq!(me(&service.url, &expired).await, StatusCode::UNAUTHORIZED);
    let forged = TokenKeys::new(b"a-third-secret-a-third-secret-a-third-secret")
        .expect("keys")
        .issue(&office_actor(), chrono::Duration::hours(1))
        .expect("token");
    assert_eq!(me(&service.url, &forged).await, StatusCode::UNAUTHORIZED);
    service.shutdown().await;

    // After the change: only the new secret.
    let rotated = Config {
        previous_token_secret: None,
        ..rotating
    };
    let service = Service::start(&rotated).await;
    assert_eq!(me(&service.url, &new_token).await, StatusCode::OK);
    let refused = post_with(
        &service.url,
        "set-item-deadline",
        Some(&old_token),
        &[],
        json!({"item_id": ITEM, "due_on": "2025-12-31"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_problem(
        &refused,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );
    service.shutdown().await;
    drop(nats);
}

#[test]
fn a_short_previous_secret_is_refused() {
    assert!(TokenKeys::rotating(NEW_SECRET, Some(b"short")).is_err());
    assert!(TokenKeys::rotating(NEW_SECRET, Some(SECRET)).is_ok());
}
