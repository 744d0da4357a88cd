//! Callers holding several roles: `GET /v1/me` shows them all, and read access — the route
//! checks and how much of units' internal work an answer shows — is the union of the roles'.

use remediation_domain::Principal;

use super::*;

/// Sở Tài chính: the recipient of Plan 63's reports and lead of items 6 and 13.
const FINANCE: &str = "so-tai-chinh";
const ITEM_6: &str = "kh-63-2025-06";

fn principal_token(user: &str, unit: Option<&str>, roles: &[Role]) -> String {
    let principal = Principal::new(
        user,
        unit.map(|u| UnitId::new(u).expect("unit id")),
        roles.iter().copied(),
    )
    .expect("a principal");
    TokenKeys::new(SECRET.as_bytes())
        .expect("keys")
        .issue_for(&principal, chrono::Duration::hours(1))
        .expect("token")
}

/// An officer of the Department of Finance, also staff of the department as a lead unit.
pub(crate) fn finance_officer() -> String {
    principal_token(
        "stc",
        Some(FINANCE),
        &[Role::DepartmentOfFinance, Role::UnitStaff],
    )
}

#[tokio::test]
async fn me_shows_every_role_the_caller_holds() {
    let stack = Stack::start().await;
    let officer = stack.read("/v1/me", &finance_officer()).await;
    assert_eq!(officer["user"], "stc");
    assert_eq!(officer["unit"], FINANCE);
    assert_eq!(
        officer["roles"],
        json!(["department_of_finance", "unit_staff"])
    );
    let expires_at = officer["expires_at"].as_str().expect("expiry");
    assert!(DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339") > Utc::now());

    let single = stack.read("/v1/me", &finance()).await;
    assert_eq!(single["roles"], json!(["department_of_finance"]));
    assert_eq!(single["unit"], Value::Null);

    assert_problem(
        &stack.get("/v1/me", None).await,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );
    // In the route table, so in the document and its role matrix: every role may ask.
    let document = stack.get("/openapi.json", None).await.body;
    assert_eq!(
        document["paths"]["/v1/me"]["get"]["x-roles"],
        json!(Role::ALL.map(Role::as_str))
    );
    stack.stop().await;
}

#[tokio::test]
async fn read_access_is_the_union_of_the_callers_roles() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    let officer = finance_officer();
    stack
        .command(
            "plan-task",
            &staff(LEAD),
            task("snnmt-u", ITEM_1, LEAD, dates.days(30)),
        )
        .await;
    stack
        .command(
            "plan-task",
            &officer,
            task("stc-u", ITEM_6, FINANCE, dates.days(30)),
        )
        .await;
    stack.settle().await;
    let item_1 = format!("/v1/items/{ITEM_1}");
    let lead_scorecard = format!("/v1/units/{LEAD}/scorecard");

    // The department's staff alone see their own unit's work; as the Department of Finance too,
    // every unit's, as the Department of Finance does.
    let staff_only = stack.read(&item_1, &staff(FINANCE)).await;
    assert_eq!(staff_only["visibility"], "own_units");
    assert_eq!(ids(&staff_only["tasks"], "task_id"), Vec::<String>::new());
    let as_officer = stack.read(&item_1, &officer).await;
    assert_eq!(as_officer["visibility"], "full");
    assert_eq!(ids(&as_officer["tasks"], "task_id"), ["snnmt-u"]);
    // Whatever the order of the roles on the token.
    let staff_first = principal_token(
        "stc",
        Some(FINANCE),
        &[Role::UnitStaff, Role::DepartmentOfFinance],
    );
    assert_eq!(
        stack.read(&item_1, &staff_first).await["visibility"],
        "full"
    );
    stack.read(&lead_scorecard, &staff_first).await;
    let own_item = stack.read(&format!("/v1/items/{ITEM_6}"), &officer).await;
    assert_eq!(ids(&own_item["tasks"], "task_id"), ["stc-u"]);
    assert_problem(
        &stack.get(&lead_scorecard, Some(&staff(FINANCE))).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    stack.read(&lead_scorecard, &officer).await;
    stack
        .read(&format!("/v1/units/{FINANCE}/scorecard"), &officer)
        .await;
    stack
        .read(&format!("/v1/as-of/units/{LEAD}"), &officer)
        .await;

    // A viewer who is also staff of a unit: the viewer's exports, and that unit's own work
    // (which a viewer alone does not see), but no other unit's scorecard.
    let viewer_staff = principal_token("xem", Some(LEAD), &[Role::Viewer, Role::UnitStaff]);
    let seen = stack.read(&item_1, &viewer_staff).await;
    assert_eq!(seen["visibility"], "own_units");
    assert_eq!(ids(&seen["tasks"], "task_id"), ["snnmt-u"]);
    stack.read(&lead_scorecard, &viewer_staff).await;
    assert_problem(
        &stack
            .get(
                &format!("/v1/units/{HEALTH}/scorecard"),
                Some(&viewer_staff),
            )
            .await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    let export = "/v1/exports/status-changes?format=csv";
    assert_eq!(
        stack.get(export, Some(&viewer_staff)).await.status,
        StatusCode::OK
    );
    assert_problem(
        &stack.get(export, Some(&staff(LEAD))).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );

    // Neither of the officer's roles reads the audit trail.
    assert_problem(
        &stack.get("/v1/audit", Some(&officer)).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    stack.stop().await;
}
