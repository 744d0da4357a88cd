//! Issue 8: a frozen read model must say so. A projection stopped on a commit it must not skip,
//! or behind the stream beyond the bounds, makes the query service not ready; every data answer
//! carries the checkpoint it reflects and whether that projection is stopped; and a
//! verification that finds a break in the stream still walks the audit table up to it.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::*;

/// How long a test waits for the projector or the query service to get somewhere.
const PATIENCE: Duration = Duration::from_secs(60);

/// Publishes, straight to the stream, a copy of `unit`'s newest event with another name in its
/// data and the original's hash: like a forgery, it links into no chain. Returns
/// its stream sequence.
async fn forge_rename(stack: &Stack, unit: &str) -> u64 {
    let envelope: Value = sqlx::query_scalar(
        "SELECT envelope || jsonb_build_object('data', payload) FROM audit.audit_log WHERE aggregate_type = 'unit' AND aggregate_id = $1
         ORDER BY stream_sequence DESC, position DESC LIMIT 1",
    )
    .bind(unit)
    .fetch_one(&stack.admin().await)
    .await
    .expect("the unit's newest event");
    let mut forged = envelope;
    forged["id"] = json!(uuid::Uuid::now_v7().to_string());
    forged["data"]["name"] = json!("Sở giả mạo");
    // The operator's key: only a key that may publish events can forge one.
    let client = stack
        .nats
        .connect(event_store::access::Service::Admin)
        .await;
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", event_store::BATCH_CONTENT_TYPE);
    let ack = js
        .publish_with_headers(
            format!("events.unit.{unit}"),
            headers,
            serde_json::to_vec(&[forged]).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    client.flush().await.expect("flush");
    ack.sequence
}

/// Polls `url`'s `/readyz` until `done` holds for its answer; returns that answer.
async fn readiness_until(
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = get_from(http, &format!("{url}/readyz"), None).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never got there: {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn projection<'a>(readiness: &'a Value, name: &str) -> &'a Value {
    readiness["projections"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["projection"] == name))
        .unwrap_or_else(|| panic!("no {name} in {readiness}"))
}

/// A request for every data route the service documents, filled in with identifiers the seed
/// has, with the projection it reads.
async fn data_paths(stack: &Stack) -> Vec<(String, String)> {
    let document = stack.get("/openapi.json", None).await.body;
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter_map(|(path, item)| {
            let operation = &item["get"];
            let reads = operation["x-reads"].as_array()?.first()?.as_str()?;
            let query = match operation["operationId"].as_str() {
                Some("as_of_diff") => "?from=2025-04-01T00:00:00Z",
                Some("export_events" | "export_dataset") => "?format=csv",
                _ => "",
            };
            Some((reads.to_owned(), format!("{}{query}", filled_in(path))))
        })
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_stopped_projection_makes_readyz_503_and_every_answer_says_it_is_frozen() {
    let stack = Stack::start().await;
    let head = stack.settle().await;
    let forged = forge_rename(&stack, HEALTH).await;
    assert_eq!(forged, head + 1);

    // Both projections refuse the forgery and stop at it; the query service learns of it from
    // the database alone.
    let not_ready = readiness_until(&stack.http, &stack.url, |reply| {
        reply.status == StatusCode::SERVICE_UNAVAILABLE
            && ["core", "audit"]
                .iter()
                .all(|name| projection(&reply.body, name)["stalled"] == true)
    })
    .await;
    assert_problem(
        &not_ready,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:not-ready",
    );
    let detail = not_ready.body["detail"].as_str().expect("detail");
    for name in ["core", "audit"] {
        assert!(
            detail.contains(&format!(
                "the {name} projection stopped at stream sequence {forged}"
            )),
            "{detail}"
        );
        let state = projection(&not_ready.body, name);
        assert_eq!(state["ready"], false, "{state}");
        assert_eq!(state["checkpoint"], head, "{state}");
        assert_eq!(state["stall"]["sequence"], forged, "{state}");
        let reason = state["stall"]["reason"].as_str().expect("reason");
        assert!(reason.contains(&format!("unit/{HEALTH}")), "{reason}");
        assert!(state["stall"]["since"].is_string(), "{state}");
    }
    // Alive all the same.
    let health = stack.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);

    // Every data answer, whatever its format, says which checkpoint it reflects and that the
    // projection it reads is stopped; JSON answers say so in their body too.
    let auditor = token(Role::Auditor, None);
    let paths = data_paths(&stack).await;
    assert_eq!(paths.len(), 15, "every data route is asked");
    for (name, path) in paths {
        let response = stack
            .http
            .get(format!("{}{path}", stack.url))
            .bearer_auth(&auditor)
            .send()
            .await
            .expect("send");
        let headers = response.headers().clone();
        let status = response.status();
        let body = response.bytes().await.expect("body");
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            header(&headers, "x-read-model-checkpoint"),
            Some(format!("{name}={head}").as_str()),
            "{path}"
        );
        assert_eq!(
            header(&headers, "x-read-model-stalled"),
            Some(format!("{name}=true").as_str()),
            "{path}"
        );
        let recorded_at = header(&headers, "x-read-model-last-recorded-at").expect("recorded at");
        let instant = recorded_at
            .strip_prefix(&format!("{name}="))
            .unwrap_or_else(|| panic!("{path}: {recorded_at}"));
        DateTime::parse_from_rfc3339(instant).unwrap_or_else(|e| panic!("{path}: {instant}: {e}"));
        if let Ok(json) = serde_json::from_slice::<Value>(&body)
            && json.get("checkpoint").is_some()
        {
            assert_eq!(json["checkpoint"], head, "{path}");
            assert_eq!(json["stalled"], true, "{path}");
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_projection_behind_the_stream_beyond_either_bound_is_not_ready_until_it_catches_up() {
    let mut stack = Stack::start().await;
    let head = stack.settle().await;
    // Two more services on the same read model: one allows two commits of lag, the other no
    // commit waiting at all.
    let settings = query_settings(&stack.database, &stack.nats);
    let by_events = start_query(with(
        with(settings.clone(), "READY_MAX_LAG_EVENTS", "2"),
        "READY_MAX_LAG_SECS",
        "3600",
    ))
    .await;
    let by_time = start_query(with(
        with(settings, "READY_MAX_LAG_EVENTS", "1000"),
        "READY_MAX_LAG_SECS",
        "0",
    ))
    .await;
    let (events_url, time_url) = (by_events.url(), by_time.url());
    for url in [&events_url, &time_url] {
        readiness_until(&stack.http, url, |reply| reply.status == StatusCode::OK).await;
    }

    stack.stop_projector().await;
    for due in ["2026-10-31", "2026-11-30", "2026-12-31"] {
        stack
            .command(
                "set-item-deadline",
                &office(),
                json!({ "item_id": ITEM_1, "due_on": due, "reason": "Điều chỉnh thời hạn" }),
            )
            .await;
    }
    // Three commits behind: beyond two.
    let behind = readiness_until(&stack.http, &events_url, |reply| {
        reply.status != StatusCode::OK
    })
    .await;
    assert_problem(
        &behind,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:not-ready",
    );
    assert_eq!(behind.body["max_lag_events"], 2);
    assert_eq!(behind.body["stream"]["sequence"], head + 3);
    assert_eq!(behind.body["stream"]["current"], true);
    for name in ["core", "audit"] {
        let state = projection(&behind.body, name);
        assert_eq!(
            (state["ready"].clone(), state["stalled"].clone()),
            (json!(false), json!(false)),
            "{state}"
        );
        assert_eq!(state["lag_events"], 3, "{state}");
        let reason = state["reason"].as_str().expect("reason");
        assert!(reason.contains("3 commits behind the stream"), "{reason}");
    }
    // The oldest of them has waited, which is already too long for the other service.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waited = get_from(&stack.http, &format!("{time_url}/readyz"), None).await;
    assert_problem(
        &waited,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:not-ready",
    );
    for name in ["core", "audit"] {
        let state = projection(&waited.body, name);
        assert!(state["lag_seconds"].as_f64() > Some(0.001), "{state}");
        let reason = state["reason"].as_str().expect("reason");
        assert!(
            reason.contains("the oldest commit not applied has waited"),
            "{reason}"
        );
    }

    // Without NATS, the last head seen still judges the lag, and the answer says it is not
    // current; dashboards keep answering.
    stack.nats.stop();
    let blind = get_from(&stack.http, &format!("{events_url}/readyz"), None).await;
    assert_problem(
        &blind,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:not-ready",
    );
    assert_eq!(blind.body["stream"]["sequence"], head + 3);
    assert_eq!(blind.body["stream"]["current"], false);
    assert_eq!(projection(&blind.body, "core")["lag_events"], 3);
    let overview = get_from(
        &stack.http,
        &format!("{events_url}/v1/plans/{PLAN}/overview"),
        Some(&office()),
    )
    .await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    stack.nats.restart();

    // Caught up, both are ready again.
    stack.restart_projector().await;
    for url in [&events_url, &time_url] {
        let ready = readiness_until(&stack.http, url, |reply| reply.status == StatusCode::OK).await;
        for name in ["core", "audit"] {
            let state = projection(&ready.body, name);
            assert_eq!(state["ready"], true, "{state}");
            assert_eq!(state["lag_events"], 0, "{state}");
            assert_eq!(state["reason"], Value::Null, "{state}");
        }
    }
    by_events.stop().await;
    by_time.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_verification_that_finds_the_stream_broken_reports_the_audit_rows_it_checked() {
    let stack = Stack::start().await;
    let head = stack.settle().await;
    let rows = stack.count("SELECT count(*) FROM audit.audit_log").await as u64;
    let forged = forge_rename(&stack, HEALTH).await;

    let answer = stack
        .read("/v1/audit/verify", &token(Role::Auditor, None))
        .await;
    assert_eq!(answer["status"], "broken", "{answer}");
    assert_eq!(answer["broken"]["place"], "stream", "{answer}");
    assert_eq!(answer["broken"]["sequence"], forged, "{answer}");
    assert_eq!(answer["last_sequence"], head, "{answer}");
    // The table was walked up to the break: every row the projector applied before it.
    assert_eq!(answer["audit_rows"], rows, "{answer}");
    assert_eq!(answer["audit_checkpoint"], head, "{answer}");
    assert_eq!(answer["audit_table_broken"], Value::Null, "{answer}");
    stack.stop().await;
}
