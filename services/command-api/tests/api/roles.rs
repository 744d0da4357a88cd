//! Principals with several roles and separation of duties, over HTTP: the Department of Finance
//! is also a lead unit (items 6 and 13 of Plan 63), so its officers plan tasks and submit
//! reports as staff of their unit; nobody reviews their own unit's report, and the province
//! office reviews the Department of Finance's.
//!
//! Tokens are signed here from raw claims, so that the tests show the wire format: tokens issued
//! before `roles` existed (one `role`, no `roles`) and tokens with both.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use super::*;

const FINANCE: &str = "so-tai-chinh";
const ITEM_6: &str = "kh-63-2025-06";
const ITEM_13: &str = "kh-63-2025-13";
const OWN_REPORT_REVIEW: &str = "own-report-review";

/// A token with exactly these claims (absent ones left out), valid for an hour.
fn signed(user: &str, unit: Option<&str>, role: &str, roles: Option<&[&str]>) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": user, "role": role, "iss": "kh63-remediation", "iat": now, "exp": now + 3600
    });
    if let Some(unit) = unit {
        claims["unit"] = json!(unit);
    }
    if let Some(roles) = roles {
        claims["roles"] = json!(roles);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("token")
}

/// An officer of Sở Tài chính: reviews reports, and is staff of the department as a lead unit.
fn finance_officer() -> String {
    signed(
        "stc",
        Some(FINANCE),
        "department_of_finance",
        Some(&["department_of_finance", "unit_staff"]),
    )
}

/// A Department of Finance token as issued before `roles` existed: one role, no unit.
fn old_finance_token() -> String {
    signed("stc-cu", None, "department_of_finance", None)
}

fn quarter_3() -> Value {
    json!({ "year": 2025, "quarter": 3 })
}

fn report_key(unit: &str) -> Value {
    json!({ "plan_id": "kh-63-2025", "unit_id": unit, "quarter": quarter_3() })
}

fn finance_report() -> Value {
    let mut report = report_key(FINANCE);
    report["lines"] = json!([
        { "item_id": ITEM_6, "progress": "Đã giải ngân 65% kế hoạch vốn đầu tư công", "status": "in_progress" },
        { "item_id": ITEM_13, "progress": "Đã ban hành hướng dẫn rà soát nguồn thu", "status": "in_progress" }
    ]);
    report
}

fn lead_unit_report() -> Value {
    let mut report = report_key(LEAD_UNIT);
    report["lines"] = json!([{ "item_id": ITEM, "progress": "Đã xây dựng 3 mô hình" }]);
    report
}

fn return_body(unit: &str) -> Value {
    let mut body = report_key(unit);
    body["reason"] = json!("Thiếu số liệu giải ngân theo từng dự án");
    body
}

/// Posts a command that must be accepted; returns the acting role the stored event records.
async fn accepted_as(
    nats: &NatsServer,
    url: &str,
    command: &str,
    token: &str,
    body: Value,
) -> String {
    let reply = post(url, command, token, body).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{command}: {}",
        reply.body
    );
    let sequence = reply.body["stream_sequence"].as_u64().expect("sequence");
    let commit = open_store(nats, &StreamSettings::default())
        .await
        .commit_at(sequence)
        .await
        .expect("commit");
    commit.events[0].actorrole.clone()
}

fn assert_own_report_review(reply: &Reply) {
    assert_problem(
        reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:rule-violated",
    );
    assert_eq!(reply.body["rule"], OWN_REPORT_REVIEW, "{}", reply.body);
}

#[tokio::test]
async fn a_finance_officer_plans_and_reports_for_items_6_and_13_and_reviews_other_units() {
    let (nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let officer = finance_officer();

    let mut task = task_body("stc-2025-06", FINANCE);
    task["item_id"] = json!(ITEM_6);
    task["title"] = json!("Rà soát, đẩy nhanh giải ngân vốn đầu tư công");
    assert_eq!(
        accepted_as(&nats, url, "plan-task", &officer, task).await,
        "unit_staff"
    );
    assert_eq!(
        accepted_as(&nats, url, "submit-report", &officer, finance_report()).await,
        "unit_staff"
    );

    let lead = token(Role::UnitStaff, Some(LEAD_UNIT));
    assert_eq!(
        post(url, "submit-report", &lead, lead_unit_report())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        accepted_as(&nats, url, "accept-report", &officer, report_key(LEAD_UNIT)).await,
        "department_of_finance"
    );
    service.shutdown().await;
}

#[tokio::test]
async fn nobody_reviews_their_own_units_report_and_the_province_office_reviews_the_departments() {
    let (nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let officer = finance_officer();
    let lead = token(Role::UnitStaff, Some(LEAD_UNIT));
    for (token, report) in [(&officer, finance_report()), (&lead, lead_unit_report())] {
        let reply = post(url, "submit-report", token, report).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let store = open_store(&nats, &StreamSettings::default()).await;
    let head = store.check().await.expect("stream");

    // The officer, whatever the order of their roles, and a unitless Department of Finance
    // token alike: the report is the Department of Finance's own.
    let staff_first = signed(
        "stc",
        Some(FINANCE),
        "unit_staff",
        Some(&["unit_staff", "department_of_finance"]),
    );
    for token in [&officer, &staff_first, &old_finance_token()] {
        assert_own_report_review(&post(url, "accept-report", token, report_key(FINANCE)).await);
        assert_own_report_review(&post(url, "return-report", token, return_body(FINANCE)).await);
    }
    assert_eq!(
        store.check().await.expect("stream"),
        head,
        "nothing appended"
    );

    // The province office reviews exactly the Department of Finance's reports.
    assert_problem(
        &post(url, "accept-report", &office(), report_key(LEAD_UNIT)).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    assert_eq!(
        accepted_as(&nats, url, "return-report", &office(), return_body(FINANCE)).await,
        "province_office"
    );
    let mut revised = finance_report();
    revised["lines"][0]["progress"] =
        json!("Đã giải ngân 70% kế hoạch vốn, kèm số liệu từng dự án");
    assert_eq!(
        accepted_as(&nats, url, "revise-report", &officer, revised).await,
        "unit_staff"
    );
    assert_eq!(
        accepted_as(&nats, url, "accept-report", &office(), report_key(FINANCE)).await,
        "province_office"
    );
    service.shutdown().await;
}

#[tokio::test]
async fn tokens_issued_before_roles_existed_keep_working() {
    let (nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let old_staff = signed("snnmt", Some(LEAD_UNIT), "unit_staff", None);
    assert_eq!(
        accepted_as(
            &nats,
            url,
            "plan-task",
            &old_staff,
            task_body("snnmt-cu", LEAD_UNIT)
        )
        .await,
        "unit_staff"
    );
    assert_eq!(
        accepted_as(&nats, url, "submit-report", &old_staff, lead_unit_report()).await,
        "unit_staff"
    );
    assert_eq!(
        accepted_as(
            &nats,
            url,
            "accept-report",
            &old_finance_token(),
            report_key(LEAD_UNIT)
        )
        .await,
        "department_of_finance"
    );
    let old_office = signed("vp-ubnd", None, "province_office", None);
    let coordinator = json!({ "item_id": ITEM_6, "assignee": { "unit": "so-xay-dung" } });
    assert_eq!(
        accepted_as(&nats, url, "assign-coordinator", &old_office, coordinator).await,
        "province_office"
    );
    service.shutdown().await;
}

async fn me(url: &str, token: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new().get(format!("{url}/v1/me"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Reply {
        status,
        body: response.json().await.unwrap_or(Value::Null),
        content_type,
    }
}

#[tokio::test]
async fn me_shows_the_user_unit_every_role_and_the_expiry() {
    let (_nats, _config, service) = seeded(5).await;
    let url = &service.url;

    let officer = me(url, Some(&finance_officer())).await;
    assert_eq!(officer.status, StatusCode::OK, "{}", officer.body);
    assert_eq!(officer.body["user"], "stc");
    assert_eq!(officer.body["unit"], FINANCE);
    assert_eq!(
        officer.body["roles"],
        json!(["department_of_finance", "unit_staff"])
    );
    let expires_at = officer.body["expires_at"].as_str().expect("expiry");
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
    assert!(expires_at > chrono::Utc::now());

    let old = me(url, Some(&old_finance_token())).await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    assert_eq!(old.body["roles"], json!(["department_of_finance"]));
    assert_eq!(old.body["unit"], Value::Null);

    assert_problem(
        &me(url, None).await,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );
    let document: Value = reqwest::get(format!("{url}/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(
        document["paths"]["/v1/me"]["get"]["security"],
        json!([{ "bearer": [] }])
    );
    service.shutdown().await;
}

#[tokio::test]
async fn tokens_whose_roles_contradict_themselves_are_refused() {
    let (_nats, _config, service) = seeded(5).await;
    let url = &service.url;
    // A reader of `role` alone would see a viewer; `roles` claims more: neither is trusted.
    let contradictory = signed(
        "x",
        Some(FINANCE),
        "viewer",
        Some(&["department_of_finance", "unit_staff"]),
    );
    // Unit staff among the roles need a unit.
    let staff_without_unit = signed(
        "x",
        None,
        "department_of_finance",
        Some(&["department_of_finance", "unit_staff"]),
    );
    let no_roles = signed("x", Some(FINANCE), "unit_staff", Some(&[]));
    for token in [contradictory, staff_without_unit, no_roles] {
        assert_problem(
            &me(url, Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "urn:kh63:problem:unauthenticated",
        );
        assert_problem(
            &post(url, "submit-report", &token, finance_report()).await,
            StatusCode::UNAUTHORIZED,
            "urn:kh63:problem:unauthenticated",
        );
    }
    service.shutdown().await;
}
