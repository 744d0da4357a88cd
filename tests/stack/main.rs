//! End-to-end tests of the query service: each test starts its own nats-server and PostgreSQL
//! database, runs the command service, the projector and the query service as their own
//! processes, loads Plan 63 through the command handler, scripts a history over HTTP, and reads
//! it back.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use command_app::handler::{CommandHandler, HandlerSettings};
use command_app::seed::load_seed;
use event_store::access::Service as Identity;
use event_store::{Repository, StreamSettings};
use remediation_domain::calendar::{Quarter, local_date};
use remediation_domain::facts::Assignee;
use remediation_domain::seed::Seed;
use remediation_domain::text::UnitId;
use remediation_domain::{Actor, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::auth::TokenKeys;
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;
use test_support::{NatsServer, ServiceBinary, ServiceProcess, TestDatabase, all_checksums};

mod roles;

const SECRET: &str = "test-secret-test-secret-test-secret!";
const SEED: &str = include_str!("../../deploy/seed/ke-hoach-63.json");
const PLAN: &str = "kh-63-2025";
const ITEM_1: &str = "kh-63-2025-01";
/// Sở Nông nghiệp và Môi trường: lead of item 1 (among others).
const LEAD: &str = "so-nong-nghiep-va-moi-truong";
/// Sở Y tế: lead of items 8 and 9.
const HEALTH: &str = "so-y-te";
/// UBND thành phố Thanh Hóa: lead of item 1 through the group of district-level committees.
const CITY: &str = "ubnd-thanh-pho-thanh-hoa";
const SUBMITTED: &str = "vn.gov.thanhhoa.remediation.report.submitted.v1";
const AUDIT_READ: &str = "vn.gov.thanhhoa.remediation.access.audit_read.v1";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

mod regressions;

mod quarantine;

mod replica;

mod admin_bench;
mod admin_verify;
mod binaries;
mod cluster;
mod dashboard;
mod database_crash;
mod instances;

// ── harness ─────────────────────────────────────────────────────────────────────────────────

fn token_for(role: Role, unit: Option<&str>, ttl: chrono::Duration, secret: &str) -> String {
    TokenKeys::new(secret.as_bytes())
        .expect("keys")
        .issue(
            &Actor {
                user: user(role, unit),
                unit: unit.map(|u| UnitId::new(u).expect("unit id")),
                role,
            },
            ttl,
        )
        .expect("token")
}

fn user(role: Role, unit: Option<&str>) -> String {
    format!("{}.{}", role.as_str(), unit.unwrap_or("tinh"))
}

fn token(role: Role, unit: Option<&str>) -> String {
    token_for(role, unit, chrono::Duration::hours(1), SECRET)
}

fn office() -> String {
    token(Role::ProvinceOffice, None)
}

fn finance() -> String {
    token(Role::DepartmentOfFinance, None)
}

fn staff(unit: &str) -> String {
    token(Role::UnitStaff, Some(unit))
}

/// A '+' in a query string reads as a space; instants carry their offset percent-encoded.
fn instant_param(at: &str) -> String {
    at.replace('+', "%2B")
}

struct Reply {
    status: StatusCode,
    body: Value,
    content_type: String,
    retry_after: Option<String>,
}

fn assert_problem(reply: &Reply, status: StatusCode, problem_type: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["type"], problem_type, "body: {}", reply.body);
    assert_eq!(reply.body["status"], status.as_u16());
}

async fn get_from(http: &reqwest::Client, url: &str, token: Option<&str>) -> Reply {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        content_type,
        retry_after,
    }
}

/// The projector as its own process, logged in to `nats` as itself, on `database_url`.
async fn start_projector(nats: &NatsServer, database_url: &str) -> ServiceProcess {
    start_projector_on(
        &nats.url(),
        nats.nkey_file(Identity::Projector),
        database_url,
    )
    .await
}

/// The projector logged in with `nkey_file` at `nats_url` (one server or a list).
async fn start_projector_on(
    nats_url: &str,
    nkey_file: PathBuf,
    database_url: &str,
) -> ServiceProcess {
    let settings = vec![
        ("NATS_URL", nats_url.to_owned()),
        ("NATS_NKEY_FILE", nkey_file.display().to_string()),
        ("DATABASE_URL", database_url.to_owned()),
        // The tests that want time-travel snapshots make them themselves.
        ("SNAPSHOT_INTERVAL_SECS", "0".to_owned()),
    ];
    // Preparing creates the cluster-wide reader role when it is missing; databases prepared at
    // the same moment can race on that (see the report on readmodel::grant_reader), so retry.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ServiceProcess::start(ServiceBinary::Projector, settings.clone()).await {
            Ok(projector) => return projector,
            Err(e) if attempt < 5 => {
                eprintln!("projector start attempt {attempt} failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The query service as its own process with `settings`.
async fn start_query(settings: Settings) -> ServiceProcess {
    ServiceProcess::start(ServiceBinary::QueryApi, settings)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until both projections in `database` have applied `head`.
async fn wait_for_checkpoints(database: &TestDatabase, head: u64) {
    let mut conn = sqlx::PgConnection::connect(&database.url())
        .await
        .expect("connect");
    test_support::wait_for_checkpoints(&mut conn, "", head, Duration::from_secs(120)).await;
}

/// The fingerprints of both projections' tables in `database`.
async fn checksums_of(database: &TestDatabase) -> BTreeMap<String, (i64, String)> {
    let mut conn = sqlx::PgConnection::connect(&database.url())
        .await
        .expect("connect");
    all_checksums(&mut conn, "").await
}

/// Environment variables for a service process.
type Settings = Vec<(&'static str, String)>;

/// The command service's settings: NATS at `nats_url` (one server or a list), logged in with
/// `nkey_file`, the default stream.
fn command_settings(nats_url: &str, nkey_file: PathBuf) -> Settings {
    vec![
        ("NATS_URL", nats_url.to_owned()),
        ("NATS_NKEY_FILE", nkey_file.display().to_string()),
        ("TOKEN_SECRET", SECRET.to_owned()),
        ("CACHE_CAPACITY", "1000".to_owned()),
    ]
}

/// The command service as its own process.
async fn start_commands(settings: Settings) -> ServiceProcess {
    ServiceProcess::start(ServiceBinary::CommandApi, settings)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A command handler of the test's own on the stream at `nats_url`, as the command service builds
/// one: it loads the seed (as `remediation-admin seed` does) and reads the stream's head.
async fn command_handler(
    nats_url: &str,
    nkey_file: PathBuf,
    stream: &StreamSettings,
) -> CommandHandler {
    let (_client, js) = service_kit::connect_nats(
        nats_url,
        Identity::CommandApi,
        Some(&nkey_file),
        "stack-test",
        Duration::from_secs(3),
    )
    .await
    .expect("NATS");
    let store = service_kit::open_store(&js, stream)
        .await
        .expect("the stream");
    CommandHandler::new(
        Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
        HandlerSettings::default(),
    )
}

/// Stops a command service and requires a clean exit.
async fn stop_commands(service: ServiceProcess) {
    let status = service.stop().await;
    assert!(
        status.success(),
        "the command service stops cleanly: {status}"
    );
}

/// NATS, PostgreSQL, the command service with Plan 63 loaded, the projector, the query service:
/// each service its own process.
struct Stack {
    nats: NatsServer,
    database: TestDatabase,
    http: reqwest::Client,
    commands_url: String,
    /// The test's own handler on the stream (the seed, the head, quarantine decisions).
    handler: CommandHandler,
    command_service: ServiceProcess,
    projector: Option<ServiceProcess>,
    url: String,
    query_service: ServiceProcess,
}

impl Stack {
    async fn start() -> Self {
        Self::start_on(TestDatabase::create()).await
    }

    /// The stack with its read model in `database` (e.g. on a private PostgreSQL server).
    async fn start_on(database: TestDatabase) -> Self {
        let nats = NatsServer::start();
        let command_service = start_commands(command_settings(
            &nats.url(),
            nats.nkey_file(Identity::CommandApi),
        ))
        .await;
        let handler = command_handler(
            &nats.url(),
            nats.nkey_file(Identity::CommandApi),
            &StreamSettings::default(),
        )
        .await;
        load_seed(&handler, &seed()).await.expect("seed loads");
        let projector = start_projector(&nats, &database.url()).await;
        let query_service = start_query(query_settings(&database, &nats)).await;
        let stack = Self {
            http: reqwest::Client::new(),
            commands_url: command_service.url(),
            url: query_service.url(),
            nats,
            database,
            handler,
            command_service,
            projector: Some(projector),
            query_service,
        };
        stack.settle().await;
        stack
    }

    async fn stop(self) {
        if let Some(projector) = self.projector {
            projector.stop().await;
        }
        self.query_service.stop().await;
        stop_commands(self.command_service).await;
        drop(self.database);
        drop(self.nats);
    }

    async fn stop_projector(&mut self) {
        if let Some(projector) = self.projector.take() {
            projector.stop().await;
        }
    }

    async fn restart_projector(&mut self) {
        self.stop_projector().await;
        self.projector = Some(start_projector(&self.nats, &self.database.url()).await);
    }

    async fn head(&self) -> u64 {
        self.handler
            .repository()
            .store()
            .check()
            .await
            .expect("stream")
    }

    /// Waits until both projections have applied the whole stream; returns its head.
    async fn settle(&self) -> u64 {
        let head = self.head().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.get("/readyz", None).await;
            let caught_up = ready.status == StatusCode::OK
                && ready.body["projections"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["checkpoint"].as_u64() >= Some(head)));
            if caught_up {
                return head;
            }
            assert!(
                Instant::now() < deadline,
                "the projector did not reach {head}: {}",
                ready.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        get_from(&self.http, &format!("{}{path}", self.url), token).await
    }

    /// GET that must answer 200; returns the body.
    async fn read(&self, path: &str, token: &str) -> Value {
        let reply = self.get(path, Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.content_type, "application/json");
        reply.body
    }

    /// Sends a command that must succeed; returns the stream sequence of its answer.
    async fn command_with(
        &self,
        name: &str,
        token: &str,
        effective: Option<&str>,
        body: Value,
    ) -> u64 {
        let mut request = self
            .http
            .post(format!("{}/v1/commands/{name}", self.commands_url))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(at) = effective {
            request = request.header("X-Effective-Time", at);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let answer: Value = response.json().await.expect("json answer");
        assert_eq!(status, StatusCode::CREATED, "{name}: {answer}");
        answer["stream_sequence"].as_u64().expect("sequence")
    }

    async fn command(&self, name: &str, token: &str, body: Value) -> u64 {
        self.command_with(name, token, None, body).await
    }

    /// A superuser connection to the test database, to compare with what the service answers.
    async fn admin(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.database.url())
            .await
            .expect("admin connection")
    }
}

fn seed() -> Seed {
    Seed::from_json(SEED).expect("seed parses")
}

/// The query service's settings for a test stack: its database, its NATS.
fn query_settings(database: &TestDatabase, nats: &NatsServer) -> Settings {
    vec![
        ("DATABASE_URL", database.url()),
        ("TOKEN_SECRET", SECRET.to_owned()),
        ("NATS_URL", nats.url()),
        (
            "NATS_NKEY_FILE",
            nats.nkey_file(Identity::QueryApi).display().to_string(),
        ),
    ]
}

/// `settings` with `name` set to `value` instead.
fn with(mut settings: Settings, name: &'static str, value: impl Into<String>) -> Settings {
    settings.retain(|(n, _)| *n != name);
    settings.push((name, value.into()));
    settings
}

/// A documented path with identifiers the seed has in place of its parameters.
fn filled_in(path: &str) -> String {
    path.replace("{plan_id}", PLAN)
        .replace("{item_id}", ITEM_1)
        .replace("{unit_id}", LEAD)
        .replace("{dataset}", "status-changes")
}

/// (item, unit, role) for every unit the seed makes responsible for an item: directly or through
/// a group (every membership starts on the plan's issue date and the seed has no successions).
fn seed_responsibilities() -> BTreeSet<(String, String, &'static str)> {
    let seed = seed();
    let members: BTreeMap<&str, Vec<&str>> = seed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.members.iter().map(|m| m.unit_id.as_str()).collect(),
            )
        })
        .collect();
    let mut out = BTreeSet::new();
    for item in &seed.items {
        for (role, assignees) in [("lead", &item.leads), ("coordinator", &item.coordinators)] {
            for assignee in assignees {
                let units = match assignee {
                    Assignee::Unit(unit) => vec![unit.as_str()],
                    Assignee::Group(group) => members[group.as_str()].clone(),
                };
                for unit in units {
                    out.insert((item.item_id.as_str().to_owned(), unit.to_owned(), role));
                }
            }
        }
    }
    out
}

fn owing_units() -> BTreeSet<String> {
    seed_responsibilities()
        .into_iter()
        .map(|(_, unit, _)| unit)
        .collect()
}

/// Audit entries without the recorded reads of the audit trail: the changes to the plan.
fn changes(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| e["envelope"]["aggregatetype"] != "access")
        .cloned()
        .collect()
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v[key].as_str().expect("id").to_owned())
        .collect()
}

fn quarters_since_plan(now: DateTime<Utc>) -> Vec<Quarter> {
    let last = Quarter::containing(now);
    let mut quarter = Quarter::new(2025, 2).expect("quarter");
    let mut out = vec![];
    while quarter <= last {
        out.push(quarter);
        quarter = if quarter.quarter == 4 {
            Quarter::new(quarter.year + 1, 1)
        } else {
            Quarter::new(quarter.year, quarter.quarter + 1)
        }
        .expect("quarter");
    }
    out
}

// ── the scripted history ────────────────────────────────────────────────────────────────────

/// Dates relative to today (local), so that the qualifiers hold whenever the tests run.
struct Dates {
    today: NaiveDate,
}

impl Dates {
    fn now() -> Self {
        Self {
            today: local_date(Utc::now()),
        }
    }

    fn days(&self, n: i64) -> NaiveDate {
        self.today + chrono::Duration::days(n)
    }
}

/// The current quarter's report, submitted now: on time unless its due instant has passed.
fn current_quarter() -> (Quarter, bool) {
    let now = Utc::now();
    let quarter = Quarter::containing(now);
    (quarter, now < quarter.report_due())
}

fn report(unit: &str, quarter: Quarter, item: &str, progress: &str) -> Value {
    json!({
        "plan_id": PLAN, "unit_id": unit,
        "quarter": { "year": quarter.year, "quarter": quarter.quarter },
        "lines": [{ "item_id": item, "progress": progress, "status": "in_progress" }]
    })
}

fn task(task_id: &str, item: &str, unit: &str, due_on: NaiveDate) -> Value {
    json!({
        "task_id": task_id, "item_id": item, "unit_id": unit,
        "title": format!("Nhiệm vụ {task_id}: xây dựng mô hình ứng dụng công nghệ cao"),
        "person_responsible": "Nguyễn Văn An", "leader_in_charge": "Phó Giám đốc Lê Thị Bình",
        "due_on": due_on
    })
}

fn reason(text: &str) -> Value {
    json!(text)
}

/// Deadlines, statuses, tasks, assignments and reports across three units and two quarters.
async fn script(stack: &Stack, dates: &Dates) {
    let office = office();
    let (lead, health, city) = (staff(LEAD), staff(HEALTH), staff(CITY));
    let deadline = |item: &str, due: NaiveDate| json!({ "item_id": item, "due_on": due });
    stack
        .command(
            "set-item-deadline",
            &office,
            deadline(ITEM_1, dates.days(1)),
        )
        .await;
    stack
        .command(
            "set-item-deadline",
            &office,
            deadline(
                "kh-63-2025-02",
                NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
            ),
        )
        .await;
    stack
        .command(
            "set-item-deadline",
            &office,
            deadline("kh-63-2025-03", dates.days(30)),
        )
        .await;
    stack
        .command(
            "set-item-deadline",
            &office,
            deadline("kh-63-2025-06", dates.days(-30)),
        )
        .await;

    let status = |item: &str, to: &str, evidence: Option<&str>| json!({ "item_id": item, "to": to, "reason": reason("Theo kế hoạch chi tiết"), "evidence": evidence });
    stack
        .command(
            "change-item-status",
            &lead,
            status(ITEM_1, "in_progress", None),
        )
        .await;
    for (to, evidence) in [
        ("in_progress", None),
        (
            "awaiting_confirmation",
            Some("Báo cáo kết quả số 12/BC-SCT"),
        ),
        ("completed", None),
    ] {
        stack
            .command(
                "change-item-status",
                &office,
                status("kh-63-2025-02", to, evidence),
            )
            .await;
    }
    stack
        .command(
            "change-item-status",
            &office,
            status("kh-63-2025-05", "suspended", None),
        )
        .await;

    stack
        .command(
            "plan-task",
            &lead,
            task("snnmt-a", ITEM_1, LEAD, dates.days(-10)),
        )
        .await;
    stack
        .command(
            "plan-task",
            &lead,
            task("snnmt-b", ITEM_1, LEAD, dates.days(1)),
        )
        .await;
    stack
        .command(
            "plan-task",
            &city,
            task("tp-thanh-hoa-e", ITEM_1, CITY, dates.days(30)),
        )
        .await;
    stack
        .command(
            "plan-task",
            &health,
            task("syt-c", "kh-63-2025-08", HEALTH, dates.days(-5)),
        )
        .await;
    stack
        .command(
            "cancel-task",
            &health,
            json!({ "task_id": "syt-c", "reason": "Gộp vào nhiệm vụ khác" }),
        )
        .await;
    stack
        .command(
            "plan-task",
            &health,
            task("syt-d", "kh-63-2025-09", HEALTH, dates.days(-3)),
        )
        .await;
    for (to, token, evidence) in [
        ("in_progress", &health, None),
        (
            "awaiting_confirmation",
            &health,
            Some("Biên bản nghiệm thu"),
        ),
        ("completed", &office, None),
    ] {
        stack
            .command(
                "change-task-status",
                token,
                json!({ "task_id": "syt-d", "to": to, "reason": "Tiến độ", "evidence": evidence }),
            )
            .await;
    }
    stack
        .command(
            "plan-task",
            &health,
            task("syt-f", "kh-63-2025-09", HEALTH, dates.days(-2)),
        )
        .await;

    stack
        .command(
            "assign-coordinator",
            &office,
            json!({ "item_id": ITEM_1, "assignee": { "unit": "so-tai-chinh" } }),
        )
        .await;
    stack
        .command(
            "revoke-assignment",
            &office,
            json!({ "item_id": ITEM_1, "role": "coordinator",
                    "assignee": { "group": "cac-don-vi-lien-quan" }, "reason": "Xác định cụ thể đơn vị phối hợp" }),
        )
        .await;

    // Q2/2025: the lead unit's paper report keyed in by the province office, dated before the
    // deadline, and accepted; the health department's sent now (late), returned and revised.
    let q2 = Quarter::new(2025, 2).expect("quarter");
    stack
        .command_with(
            "submit-report",
            &office,
            Some("2025-06-10T09:00:00+07:00"),
            report(LEAD, q2, ITEM_1, "Đã xây dựng 3 mô hình"),
        )
        .await;
    let key = |unit: &str, q: Quarter| json!({ "plan_id": PLAN, "unit_id": unit, "quarter": { "year": q.year, "quarter": q.quarter } });
    stack
        .command("accept-report", &finance(), key(LEAD, q2))
        .await;
    stack
        .command(
            "submit-report",
            &health,
            report(HEALTH, q2, "kh-63-2025-08", "Đang rà soát"),
        )
        .await;
    let mut returned = key(HEALTH, q2);
    returned["reason"] = json!("Thiếu số liệu cơ sở y tế tuyến huyện");
    stack.command("return-report", &finance(), returned).await;
    let mut revised = report(
        HEALTH,
        q2,
        "kh-63-2025-08",
        "Đã bổ sung số liệu tuyến huyện",
    );
    revised["reason"] = json!("Bổ sung theo yêu cầu");
    stack.command("revise-report", &health, revised).await;

    // The current quarter: the lead unit and the city report on item 1.
    let (current, _) = current_quarter();
    stack
        .command(
            "submit-report",
            &lead,
            report(LEAD, current, ITEM_1, "Hoàn thành 4/5 mô hình"),
        )
        .await;
    stack
        .command(
            "submit-report",
            &city,
            report(CITY, current, ITEM_1, "Triển khai tại 3 phường"),
        )
        .await;
}

// ── tests ───────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn dashboards_answer_exactly_what_the_scripted_history_says() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    script(&stack, &dates).await;
    let head = stack.settle().await;
    let office = office();

    // Overview.
    let overview = stack
        .read(&format!("/v1/plans/{PLAN}/overview"), &office)
        .await;
    assert_eq!(overview["checkpoint"], head);
    assert_eq!(overview["plan"]["code"], "63/KH-UBND");
    assert_eq!(overview["plan"]["issued_on"], "2025-04-08");
    let items = overview["items"].as_array().expect("items");
    assert_eq!(
        items
            .iter()
            .map(|i| i["ordinal"].as_i64().expect("ordinal"))
            .collect::<Vec<_>>(),
        (1..=15).collect::<Vec<_>>()
    );
    let item = |ordinal: usize| &items[ordinal - 1];
    assert_eq!(item(1)["status"], "in_progress");
    assert_eq!(item(1)["due_on"], json!(dates.days(1)));
    assert_eq!(item(1)["deadline_qualifier"], "due_soon");
    assert_eq!(
        item(1)["leads"],
        json!([
            { "type": "unit", "id": LEAD, "name": "Sở Nông nghiệp và Môi trường" },
            { "type": "group", "id": "ubnd-cac-huyen-thi-xa-thanh-pho", "name": "UBND các huyện, thị xã, thành phố" },
        ])
    );
    assert_eq!(
        ids(&item(1)["coordinators"], "id"),
        ["so-khoa-hoc-va-cong-nghe", "so-tai-chinh"]
    );
    assert_eq!(
        (&item(2)["status"], &item(2)["deadline_qualifier"]),
        (&json!("completed"), &json!("overdue")),
        "completed after its deadline: completed late"
    );
    assert_eq!(item(3)["deadline_qualifier"], "within_time");
    assert_eq!(item(5)["status"], "suspended");
    assert_eq!(item(6)["deadline_qualifier"], "overdue");
    assert_eq!(item(15)["deadline_qualifier"], "no_deadline");
    assert_eq!(
        overview["counts"],
        json!({
            "items": 15,
            "by_status": { "not_started": 12, "in_progress": 1, "awaiting_confirmation": 0,
                           "completed": 1, "suspended": 1, "reopened": 0 },
            "by_deadline": { "within_time": 1, "due_soon": 1, "overdue": 2, "no_deadline": 11 },
        })
    );

    // Overdue and due soon: open work only.
    let overdue = stack.read("/v1/overdue", &office).await;
    assert_eq!(overdue["qualifier"], "overdue");
    assert_eq!(ids(&overdue["items"], "item_id"), ["kh-63-2025-06"]);
    assert_eq!(overdue["items"][0]["days_left"], -30);
    assert_eq!(ids(&overdue["tasks"], "task_id"), ["snnmt-a", "syt-f"]);
    assert_eq!(overdue["tasks"][0]["days_left"], -10);
    assert_eq!(overdue["tasks"][0]["held_by"], json!([LEAD]));
    assert_eq!(overdue["tasks"][1]["unit_name"], "Sở Y tế");
    let due_soon = stack.read("/v1/due-soon", &office).await;
    assert_eq!(ids(&due_soon["items"], "item_id"), [ITEM_1]);
    assert_eq!(due_soon["items"][0]["days_left"], 1);
    assert_eq!(
        ids(&due_soon["items"][0]["leads"], "id"),
        [LEAD, "ubnd-cac-huyen-thi-xa-thanh-pho"]
    );
    assert_eq!(ids(&due_soon["tasks"], "task_id"), ["snnmt-b"]);

    // Item detail, in full.
    let detail = stack.read(&format!("/v1/items/{ITEM_1}"), &office).await;
    assert_eq!(detail["visibility"], "full");
    assert_eq!(detail["item"]["status"], "in_progress");
    let assignments = detail["assignments"].as_array().expect("assignments");
    assert_eq!(assignments.len(), 5, "{assignments:?}");
    let revoked: Vec<&Value> = assignments
        .iter()
        .filter(|a| a["active"] == false)
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["assignee_id"], "cac-don-vi-lien-quan");
    assert_eq!(
        revoked[0]["revoke_reason"],
        "Xác định cụ thể đơn vị phối hợp"
    );
    assert!(revoked[0]["valid_until"].is_string());
    assert_eq!(
        assignments[0]["valid_from"], "2025-04-07T17:00:00Z",
        "effective from the issue date"
    );
    assert_eq!(assignments[4]["assignee_id"], "so-tai-chinh");
    let expected_responsible: BTreeSet<(String, String)> = seed_responsibilities()
        .into_iter()
        .filter(|(item, _, _)| item == ITEM_1)
        .map(|(_, unit, role)| (role.to_owned(), unit))
        .chain([("coordinator".to_owned(), "so-tai-chinh".to_owned())])
        .collect();
    let responsible: BTreeSet<(String, String)> = detail["responsible_units"]
        .as_array()
        .expect("responsible")
        .iter()
        .map(|r| {
            (
                r["role"].as_str().expect("role").to_owned(),
                r["unit_id"].as_str().expect("unit").to_owned(),
            )
        })
        .collect();
    assert_eq!(responsible, expected_responsible);
    assert_eq!(
        ids(&detail["tasks"], "task_id"),
        ["snnmt-a", "snnmt-b", "tp-thanh-hoa-e"]
    );
    assert_eq!(detail["tasks"][0]["deadline_qualifier"], "overdue");
    assert_eq!(detail["tasks"][0]["person_responsible"], "Nguyễn Văn An");
    let (current, on_time_now) = current_quarter();
    let lines = detail["report_lines"].as_array().expect("lines");
    assert_eq!(ids(&detail["report_lines"], "unit_id"), [LEAD, CITY]);
    assert_eq!(
        (
            &lines[0]["year"],
            &lines[0]["quarter"],
            &lines[0]["progress"]
        ),
        (
            &json!(current.year),
            &json!(current.quarter),
            &json!("Hoàn thành 4/5 mô hình")
        ),
        "the latest report's line, not Q2/2025's"
    );
    let history = detail["status_history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status"], "not_started");
    assert_eq!(history[0]["effective_until"], history[1]["effective_from"]);
    assert_eq!(history[0]["recorded_until"], history[1]["recorded_from"]);
    assert_eq!(
        (
            &history[1]["status"],
            &history[1]["previous_status"],
            &history[1]["actor_unit"]
        ),
        (&json!("in_progress"), &json!("not_started"), &json!(LEAD))
    );
    assert!(history[1]["effective_until"].is_null() && history[1]["recorded_until"].is_null());

    // … as unit staff see it: their own unit's tasks and lines only; as a viewer: neither.
    let as_lead = stack
        .read(&format!("/v1/items/{ITEM_1}"), &staff(LEAD))
        .await;
    assert_eq!(as_lead["visibility"], "own_units");
    assert_eq!(ids(&as_lead["tasks"], "task_id"), ["snnmt-a", "snnmt-b"]);
    assert_eq!(ids(&as_lead["report_lines"], "unit_id"), [LEAD]);
    assert_eq!(as_lead["assignments"], detail["assignments"]);
    let as_city = stack
        .read(&format!("/v1/items/{ITEM_1}"), &staff(CITY))
        .await;
    assert_eq!(ids(&as_city["tasks"], "task_id"), ["tp-thanh-hoa-e"]);
    assert_eq!(ids(&as_city["report_lines"], "unit_id"), [CITY]);
    let as_viewer = stack
        .read(&format!("/v1/items/{ITEM_1}"), &token(Role::Viewer, None))
        .await;
    assert_eq!(as_viewer["visibility"], "public");
    assert!(as_viewer.get("tasks").is_none() && as_viewer.get("report_lines").is_none());
    assert_eq!(as_viewer["status_history"], detail["status_history"]);

    // Compliance matrix for Q2/2025.
    let matrix = stack
        .read(
            &format!("/v1/plans/{PLAN}/compliance?year=2025&quarter=2"),
            &finance(),
        )
        .await;
    let owing = owing_units();
    assert_eq!(
        ids(&matrix["units"], "unit_id"),
        owing.iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(matrix["quarter"]["label"], "Q2/2025");
    assert_eq!(matrix["quarter"]["due_at"], "2025-06-14T17:00:00Z");
    let row = |unit: &str| {
        matrix["units"]
            .as_array()
            .expect("units")
            .iter()
            .find(|r| r["unit_id"] == unit)
            .cloned()
            .expect("row")
    };
    let lead_row = row(LEAD);
    assert_eq!(
        (
            &lead_row["compliance"],
            &lead_row["review_status"],
            &lead_row["first_submitted_at"]
        ),
        (
            &json!("on_time"),
            &json!("accepted"),
            &json!("2025-06-10T02:00:00Z")
        )
    );
    assert!(lead_row["accepted_at"].is_string());
    let health_row = row(HEALTH);
    assert_eq!(
        (
            &health_row["compliance"],
            &health_row["review_status"],
            &health_row["revisions"]
        ),
        (&json!("late"), &json!("submitted"), &json!(1))
    );
    assert!(health_row["last_revised_at"].is_string() && health_row["returned_at"].is_string());
    assert_eq!(
        health_row["return_reason"],
        "Thiếu số liệu cơ sở y tế tuyến huyện"
    );
    let city_row = row(CITY);
    assert_eq!(city_row["compliance"], "missing");
    assert!(city_row["first_submitted_at"].is_null() && city_row["review_status"].is_null());
    let n = owing.len() as u64;
    assert_eq!(
        matrix["totals"],
        json!({ "owed": n, "on_time": 1, "late": 1, "missing": n - 2, "pending": 0,
                "under_review": 1, "accepted": 1, "returned": 0 })
    );

    // The current quarter, by default.
    let now_matrix = stack
        .read(&format!("/v1/plans/{PLAN}/compliance"), &finance())
        .await;
    assert_eq!(now_matrix["quarter"]["label"], current.label());
    assert_eq!(ids(&now_matrix["units"], "unit_id").len(), owing.len());
    let (submitted, silent) = if on_time_now {
        ("on_time", "pending")
    } else {
        ("late", "missing")
    };
    assert_eq!(now_matrix["totals"]["owed"], n);
    assert_eq!(now_matrix["totals"][submitted], 2);
    assert_eq!(now_matrix["totals"][silent], n - 2);
    assert_eq!(now_matrix["totals"]["under_review"], 2);

    // Scorecard of the lead unit.
    let card = stack
        .read(&format!("/v1/units/{LEAD}/scorecard"), &staff(LEAD))
        .await;
    assert_eq!(card["unit"]["name"], "Sở Nông nghiệp và Môi trường");
    let mine: BTreeMap<String, bool> = seed_responsibilities()
        .into_iter()
        .filter(|(_, unit, _)| unit == LEAD)
        .fold(BTreeMap::new(), |mut acc, (item, _, role)| {
            *acc.entry(item).or_default() |= role == "lead";
            acc
        });
    let card_items: BTreeMap<String, bool> = card["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["item_id"].as_str().expect("id").to_owned(),
                i["lead"].as_bool().expect("lead"),
            )
        })
        .collect();
    assert_eq!(card_items, mine);
    assert_eq!(ids(&card["tasks"], "task_id"), ["snnmt-a", "snnmt-b"]);
    let expected_overdue_items: Vec<&str> = if mine.get("kh-63-2025-06") == Some(&true) {
        vec!["kh-63-2025-06"]
    } else {
        vec![]
    };
    assert_eq!(
        card["overdue"],
        json!({ "items": expected_overdue_items, "tasks": ["snnmt-a"] })
    );
    let quarters = quarters_since_plan(Utc::now());
    let record = card["compliance"].as_array().expect("compliance");
    assert_eq!(
        record
            .iter()
            .map(|c| (
                c["year"].as_i64().expect("y") as i32,
                c["quarter"].as_u64().expect("q") as u8
            ))
            .collect::<Vec<_>>(),
        quarters
            .iter()
            .map(|q| (q.year, q.quarter))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (&record[0]["compliance"], &record[0]["review_status"]),
        (&json!("on_time"), &json!("accepted"))
    );
    assert_eq!(record[record.len() - 1]["compliance"], submitted);
    let q = quarters.len() as u64;
    assert_eq!(
        card["compliance_totals"],
        json!({ "owed": q, "on_time": 1 + u64::from(on_time_now), "late": u64::from(!on_time_now),
                "missing": q - 2, "pending": 0, "under_review": 1, "accepted": 1, "returned": 0 })
    );

    stack.stop().await;
}

/// The wait asks NATS for the stream's head alongside, not before: a read whose checkpoint
/// arrives is answered then, however long NATS takes to answer (before, it waited for NATS first:
/// up to the JetStream request timeout, 5 s, seen as staleness outliers of 5 s under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_is_answered_when_its_checkpoint_commits_even_while_nats_does_not_answer() {
    let mut stack = Stack::start().await;
    stack.settle().await;
    stack.stop_projector().await;
    // A commit the stream holds and the read model has not applied: whether or not NATS answers
    // the read's head check, only the checkpoint can answer the read.
    let wanted = stack
        .command(
            "set-item-deadline",
            &office(),
            json!({ "item_id": ITEM_1, "due_on": "2026-12-31" }),
        )
        .await;
    stack.nats.freeze();
    let started = Instant::now();
    let path = format!("/v1/overdue?min_sequence={wanted}&wait_ms=10000");
    let caller = office();
    let read = stack.get(&path, Some(&caller));
    // What the projector's next batch would do, which cannot come while NATS is frozen: commit
    // the core checkpoint at the sequence the read waits for.
    let commit = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut conn = sqlx::PgConnection::connect(&stack.database.url())
            .await
            .expect("connect");
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query("SET LOCAL search_path TO core")
            .execute(&mut *tx)
            .await
            .expect("search path");
        readmodel::save_checkpoint(&mut tx, readmodel::Projection::Core, wanted, None)
            .await
            .expect("checkpoint");
        tx.commit().await.expect("commit");
    };
    let (reply, ()) = tokio::join!(read, commit);
    let waited = started.elapsed();
    stack.nats.thaw();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        waited < Duration::from_secs(3),
        "answered after {waited:?}: the read waited for NATS"
    );
    stack.stop().await;
}

#[tokio::test]
async fn min_sequence_reads_your_writes_and_answers_503_when_the_projection_is_behind() {
    let mut stack = Stack::start().await;
    let item = format!("/v1/items/{ITEM_1}");

    // Right after a command, with the projector running: the answer has the new state.
    let sequence = stack
        .command(
            "change-item-status",
            &staff(LEAD),
            json!({ "item_id": ITEM_1, "to": "in_progress", "reason": "Bắt đầu" }),
        )
        .await;
    let fresh = stack
        .read(&format!("{item}?min_sequence={sequence}"), &office())
        .await;
    assert_eq!(fresh["item"]["status"], "in_progress");
    assert!(fresh["checkpoint"].as_u64() >= Some(sequence));

    // With the projector stopped, a write cannot be read within the wait: 503 projection-behind.
    stack.stop_projector().await;
    let due = stack
        .command(
            "set-item-deadline",
            &office(),
            json!({ "item_id": ITEM_1, "due_on": "2026-12-31" }),
        )
        .await;
    let started = Instant::now();
    let behind = stack
        .get(
            &format!("{item}?min_sequence={due}&wait_ms=300"),
            Some(&office()),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_problem(
        &behind,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:projection-behind",
    );
    assert_eq!(behind.body["checkpoint"], sequence);
    assert_eq!(behind.body["min_sequence"], due);
    assert_eq!(behind.body["projection"], "core");
    assert_eq!(behind.retry_after.as_deref(), Some("1"));
    // The audit trail waits for its own projection.
    let audit_behind = stack
        .get(
            &format!("/v1/audit?min_sequence={due}&wait_ms=0"),
            Some(&office()),
        )
        .await;
    assert_problem(
        &audit_behind,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:projection-behind",
    );
    assert_eq!(audit_behind.body["projection"], "audit");

    // A reader waiting when the projector comes back gets the new state.
    let waiting = {
        let (http, url, office) = (
            stack.http.clone(),
            format!("{}{item}?min_sequence={due}&wait_ms=10000", stack.url),
            office(),
        );
        tokio::spawn(async move { get_from(&http, &url, Some(&office)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the reader waits for the projector");
    stack.restart_projector().await;
    let caught_up = waiting.await.expect("reader");
    assert_eq!(caught_up.status, StatusCode::OK, "{}", caught_up.body);
    assert_eq!(caught_up.body["item"]["due_on"], "2026-12-31");

    // The audit trail waits for its own projection.
    let audit = stack
        .read(
            &format!("/v1/audit?aggregate_id={ITEM_1}&min_sequence={due}"),
            &office(),
        )
        .await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.last().expect("entry")["stream_sequence"], due);

    // A sequence the stream has not reached was never handed out: 422 at once, no wait.
    let head = stack.settle().await;
    let started = Instant::now();
    let unreachable = stack
        .get(
            &format!("/v1/overdue?min_sequence={}&wait_ms=10000", head + 1),
            Some(&office()),
        )
        .await;
    assert_problem(
        &unreachable,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:sequence-not-reached",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(unreachable.body["stream_head"], head);
    assert_eq!(unreachable.body["min_sequence"], head + 1);

    // Malformed waits.
    for query in [
        "min_sequence=abc",
        "min_sequence=-1",
        "min_sequence=1&wait_ms=10001",
        "wait_ms=x",
    ] {
        let reply = stack
            .get(&format!("/v1/overdue?{query}"), Some(&office()))
            .await;
        assert_problem(
            &reply,
            StatusCode::BAD_REQUEST,
            "urn:kh63:problem:malformed-request",
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn every_endpoint_answers_every_role_exactly_as_the_matrix_says() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    stack
        .command(
            "plan-task",
            &staff(LEAD),
            task("snnmt-a", ITEM_1, LEAD, dates.days(5)),
        )
        .await;
    stack.settle().await;

    let forged = token_for(
        Role::ProvinceOffice,
        None,
        chrono::Duration::hours(1),
        "another-secret-another-secret-another!",
    );
    let expired = token_for(
        Role::ProvinceOffice,
        None,
        chrono::Duration::hours(-1),
        SECRET,
    );
    let callers: [(&str, Option<String>); 8] = [
        ("province_office", Some(office())),
        ("department_of_finance", Some(finance())),
        ("auditor", Some(token(Role::Auditor, None))),
        ("unit_staff", Some(staff(LEAD))),
        ("viewer", Some(token(Role::Viewer, None))),
        ("no token", None),
        ("forged", Some(forged)),
        ("expired", Some(expired)),
    ];
    let all = |status: u16| [status, status, status, status, status, 401, 401, 401];
    let scorecard = |own: u16, other: u16| [own, own, own, other, 403, 401, 401, 401];
    let audit = |ok: u16| [ok, 403, ok, 403, 403, 401, 401, 401];
    let auditors = |ok: u16| [403, 403, ok, 403, 403, 401, 401, 401];
    let analytics = |ok: u16| [ok, ok, ok, 403, ok, 401, 401, 401];
    let public = [200; 8];
    let plan = format!("/v1/plans/{PLAN}");
    let matrix: Vec<(String, [u16; 8])> = vec![
        (format!("{plan}/overview"), all(200)),
        (format!("/v1/items/{ITEM_1}"), all(200)),
        (format!("/v1/units/{LEAD}/scorecard"), scorecard(200, 200)),
        (format!("/v1/units/{HEALTH}/scorecard"), scorecard(200, 403)),
        (format!("{plan}/compliance?year=2025&quarter=2"), all(200)),
        (format!("{plan}/compliance"), all(200)),
        ("/v1/overdue".into(), all(200)),
        ("/v1/due-soon".into(), all(200)),
        ("/v1/audit".into(), audit(200)),
        ("/v1/audit?aggregate_type=item&limit=5".into(), audit(200)),
        ("/v1/audit/verify".into(), auditors(200)),
        ("/v1/exports/events".into(), audit(200)),
        (
            "/v1/exports/events?format=csv&from=2025-04-01T00:00:00Z".into(),
            audit(200),
        ),
        ("/v1/exports/status-changes".into(), analytics(200)),
        ("/v1/exports/reports?format=csv".into(), analytics(200)),
        (
            "/v1/exports/assignments?format=ndjson".into(),
            analytics(200),
        ),
        (
            "/v1/exports/compliance?format=csv&to=2026-01-01T00:00:00Z".into(),
            analytics(200),
        ),
        (format!("{plan}/compilation"), analytics(200)),
        (
            format!("{plan}/compilation?year=2025&quarter=3&format=csv"),
            analytics(200),
        ),
        (
            format!("{plan}/compilation?year=2025&quarter=2&format=xlsx"),
            analytics(200),
        ),
        ("/v1/as-of/plan".into(), all(200)),
        (
            "/v1/as-of/plan?axis=effective&at=2025-06-01T00:00:00Z".into(),
            all(200),
        ),
        (format!("/v1/as-of/items/{ITEM_1}"), all(200)),
        (format!("/v1/as-of/units/{LEAD}"), scorecard(200, 200)),
        (format!("/v1/as-of/units/{HEALTH}"), scorecard(200, 403)),
        (
            "/v1/as-of/diff?from=2025-01-01T00:00:00Z&limit=5".into(),
            audit(200),
        ),
        ("/healthz".into(), public),
        ("/readyz".into(), public),
        ("/metrics".into(), public),
        ("/openapi.json".into(), public),
        // Unknown identifiers: 404 once the caller may ask at all.
        ("/v1/plans/khong-co/overview".into(), all(404)),
        ("/v1/items/khong-co".into(), all(404)),
        ("/v1/units/khong-co/scorecard".into(), scorecard(404, 403)),
        ("/v1/plans/khong-co/compliance".into(), all(404)),
        ("/v1/exports/khong-co".into(), analytics(404)),
        ("/v1/plans/khong-co/compilation".into(), analytics(404)),
        ("/v1/as-of/items/khong-co".into(), all(404)),
        // Before the plan was issued, its items did not exist yet.
        (
            format!("/v1/as-of/items/{ITEM_1}?axis=effective&at=2020-01-01T00:00:00Z"),
            all(404),
        ),
        ("/v1/as-of/units/khong-co".into(), scorecard(404, 403)),
        ("/v1/khong-co".into(), [404; 8]),
        // Malformed parameters: 400 once the caller may ask at all.
        (format!("{plan}/compliance?year=2025&quarter=5"), all(400)),
        // A part left out is the current quarter's.
        (format!("{plan}/compliance?year=2025"), all(200)),
        (format!("{plan}/compliance?quarter=1"), all(200)),
        (format!("{plan}/compliance?year=1999&quarter=1"), all(400)),
        (format!("{plan}/overview?unknown=1"), all(400)),
        ("/v1/overdue?min_sequence=1&min_sequence=2".into(), all(400)),
        ("/v1/audit?limit=0".into(), audit(400)),
        ("/v1/audit?limit=1001".into(), audit(400)),
        ("/v1/audit?recorded_from=yesterday".into(), audit(400)),
        (
            "/v1/audit?recorded_from=2025-07-01T00:00:00Z&recorded_to=2025-06-01T00:00:00Z".into(),
            audit(422),
        ),
        ("/v1/audit?cursor=not-a-cursor".into(), audit(400)),
        ("/v1/audit/verify?limit=5".into(), auditors(400)),
        ("/v1/exports/events?format=xlsx".into(), audit(400)),
        ("/v1/exports/events?from=yesterday".into(), audit(400)),
        (
            "/v1/exports/events?from=2025-07-01T00:00:00Z&to=2025-06-01T00:00:00Z".into(),
            audit(422),
        ),
        (
            "/v1/exports/status-changes?format=pdf".into(),
            analytics(400),
        ),
        (
            "/v1/exports/reports?from=2025-07-01T00:00:00Z&to=2025-06-01T00:00:00Z".into(),
            analytics(422),
        ),
        (format!("{plan}/compilation?format=pdf"), analytics(400)),
        (format!("{plan}/compilation?year=2025"), analytics(200)),
        ("/v1/audit?cursor=".into(), audit(400)),
        // No command answer carried a sequence the stream has not reached.
        ("/v1/overdue?min_sequence=999999999".into(), all(422)),
        (
            format!("{plan}/compilation?year=2025&quarter=0"),
            analytics(400),
        ),
        ("/v1/as-of/plan?axis=sideways".into(), all(400)),
        ("/v1/as-of/plan?at=yesterday".into(), all(400)),
        (
            format!("/v1/as-of/items/{ITEM_1}?from=2025-01-01T00:00:00Z"),
            all(400),
        ),
        ("/v1/as-of/diff".into(), audit(400)),
        (
            "/v1/as-of/diff?from=2025-07-01T00:00:00Z&to=2025-06-01T00:00:00Z".into(),
            audit(422),
        ),
        (
            "/v1/as-of/diff?from=2025-07-01T00:00:00Z&limit=0".into(),
            audit(400),
        ),
    ];
    let problem_types = BTreeMap::from([
        (400, "urn:kh63:problem:malformed-request"),
        (401, "urn:kh63:problem:unauthenticated"),
        (403, "urn:kh63:problem:forbidden"),
        (404, "urn:kh63:problem:not-found"),
    ]);
    let mut failures = vec![];
    for (path, expected) in &matrix {
        for ((caller, token), status) in callers.iter().zip(expected) {
            let reply = stack.get(path, token.as_deref()).await;
            if reply.status.as_u16() != *status {
                failures.push(format!(
                    "{path} as {caller}: {} (expected {status}): {}",
                    reply.status, reply.body
                ));
                continue;
            }
            if *status >= 400 {
                // 422: a min_sequence beyond the stream, or a time range that ends before it starts.
                let problem_type = match status {
                    422 if path.contains("min_sequence") => "urn:kh63:problem:sequence-not-reached",
                    422 => "urn:kh63:problem:invalid-range",
                    status => problem_types[status],
                };
                assert_problem(&reply, reply.status, problem_type);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every answered read of the audit trail was recorded, with its reader; nothing else was.
    let reads_audit = |path: &str| {
        ["/v1/audit", "/v1/exports/events", "/v1/as-of/diff"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
    };
    let mut expected_reads: BTreeMap<String, i64> = BTreeMap::new();
    for (_, statuses) in matrix.iter().filter(|(path, _)| reads_audit(path)) {
        for (role, status) in [
            (Role::ProvinceOffice, statuses[0]),
            (Role::Auditor, statuses[2]),
        ] {
            if status == 200 {
                *expected_reads.entry(user(role, None)).or_default() += 1;
            }
        }
    }
    stack.settle().await;
    let recorded: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT actor_user, count(*) FROM audit.audit_log WHERE aggregate_type = 'access' GROUP BY 1",
    )
    .fetch_all(&stack.admin().await)
    .await
    .expect("recorded reads")
    .into_iter()
    .collect();
    assert_eq!(recorded, expected_reads);

    // Unit staff of another unit get the item without the lead unit's task.
    let other = stack
        .read(&format!("/v1/items/{ITEM_1}"), &staff(HEALTH))
        .await;
    assert_eq!(other["tasks"], json!([]));
    let method = stack
        .http
        .post(format!("{}/v1/overdue", stack.url))
        .send()
        .await
        .expect("send");
    assert_eq!(method.status(), StatusCode::METHOD_NOT_ALLOWED);
    stack.stop().await;
}

/// The item's status in an as-of plan view.
fn status_in(view: &Value, item: &str) -> String {
    view["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|row| row["item_id"] == item)
        .and_then(|row| row["status"].as_str())
        .unwrap_or_else(|| panic!("{item} not in {view}"))
        .to_owned()
}

#[tokio::test]
async fn as_of_answers_on_both_clocks_counts_backdated_facts_and_diffs_who_did_what() {
    let stack = Stack::start().await;
    let office = office();
    let auditor = token(Role::Auditor, None);
    let dates = Dates::now();
    let after_seed = Utc::now();
    // The province office records today that work on item 1 began on 1 July 2025 (backdated).
    let backdated = stack
        .command_with(
            "change-item-status",
            &office,
            Some("2025-07-01T08:00:00+07:00"),
            json!({ "item_id": ITEM_1, "to": "in_progress", "reason": "Theo báo cáo của đơn vị" }),
        )
        .await;
    let after_status = Utc::now();
    stack
        .command(
            "plan-task",
            &staff(LEAD),
            task("snnmt-a", ITEM_1, LEAD, dates.days(20)),
        )
        .await;
    let head = stack.settle().await;
    assert!(head > backdated);

    let plan_at = |axis: &str, at: DateTime<Utc>| {
        format!(
            "/v1/as-of/plan?axis={axis}&at={}",
            instant_param(&at.to_rfc3339())
        )
    };
    // What the system knew: not started until the change was recorded, in progress after.
    let known_before = stack.read(&plan_at("recorded", after_seed), &office).await;
    assert_eq!(status_in(&known_before, ITEM_1), "not_started");
    assert_eq!(known_before["axis"], "recorded");
    assert_eq!(known_before["visibility"], "full");
    let known_after = stack
        .read(&plan_at("recorded", after_status), &office)
        .await;
    assert_eq!(status_in(&known_after, ITEM_1), "in_progress");
    // What was true: in progress from 1 July 2025, although nobody knew it until today.
    let july = |day: u32| {
        DateTime::parse_from_rfc3339(&format!("2025-07-{day:02}T00:00:00+07:00"))
            .expect("instant")
            .with_timezone(&Utc)
    };
    let true_before = stack.read(&plan_at("effective", july(1)), &office).await;
    assert_eq!(status_in(&true_before, ITEM_1), "not_started");
    let true_after = stack.read(&plan_at("effective", july(2)), &office).await;
    assert_eq!(status_in(&true_after, ITEM_1), "in_progress");
    assert_eq!(
        true_after["items"].as_array().expect("items").len(),
        15,
        "the plan's fifteen items"
    );

    // As of now, the fold agrees with the current-state dashboard, item by item.
    let now_view = stack.read("/v1/as-of/plan", &office).await;
    assert!(now_view["log"]["head_sequence"].as_i64() >= Some(i64::try_from(head).expect("head")));
    let overview = stack
        .read(&format!("/v1/plans/{PLAN}/overview"), &office)
        .await;
    for item in overview["items"].as_array().expect("items") {
        let id = item["item_id"].as_str().expect("id");
        assert_eq!(status_in(&now_view, id), item["status"], "{id}");
    }

    // One item: the lead unit's task shows to the office and the lead's staff, not to others.
    let item_path = format!("/v1/as-of/items/{ITEM_1}");
    let task_ids = |view: &Value| ids(&view["tasks"], "task_id");
    let full = stack.read(&item_path, &office).await;
    assert_eq!(task_ids(&full), ["snnmt-a"]);
    assert_eq!(full["item"]["status"], "in_progress");
    assert_eq!(
        task_ids(&stack.read(&item_path, &staff(LEAD)).await),
        ["snnmt-a"]
    );
    let other = stack.read(&item_path, &staff(HEALTH)).await;
    assert_eq!(other["visibility"], "own_units");
    assert!(task_ids(&other).is_empty());
    let viewer = stack.read(&item_path, &token(Role::Viewer, None)).await;
    assert_eq!(viewer["visibility"], "public");
    assert!(task_ids(&viewer).is_empty());
    // Before the task was planned, the item had none.
    let earlier = stack
        .read(
            &format!(
                "{item_path}?at={}",
                instant_param(&after_status.to_rfc3339())
            ),
            &office,
        )
        .await;
    assert!(task_ids(&earlier).is_empty());

    // One unit: the items it leads and its task.
    let unit = stack
        .read(&format!("/v1/as-of/units/{LEAD}"), &staff(LEAD))
        .await;
    assert_eq!(unit["unit"]["unit_id"], LEAD);
    assert!(
        unit["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|row| row["role"] == "lead" && row["item"]["item_id"] == ITEM_1),
        "{unit}"
    );
    assert_eq!(task_ids(&unit), ["snnmt-a"]);

    // The diff since the seed: the status change, field by field, and who did what, when.
    let diff = stack
        .read(
            &format!(
                "/v1/as-of/diff?from={}",
                instant_param(&after_seed.to_rfc3339())
            ),
            &auditor,
        )
        .await;
    let changes = diff["changes"].as_array().expect("changes");
    assert!(
        changes.iter().any(|c| c["change"] == "changed"
            && c["entity"] == "item"
            && c["key"] == ITEM_1
            && c["field"] == "status"
            && c["before"] == "not_started"
            && c["after"] == "in_progress"),
        "{diff}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c["change"] == "added" && c["entity"] == "task" && c["key"] == "snnmt-a"),
        "{diff}"
    );
    let events = diff["events"].as_array().expect("events");
    let status_event = events
        .iter()
        .find(|e| e["stream_sequence"] == backdated)
        .unwrap_or_else(|| panic!("the status change is listed: {diff}"));
    assert_eq!(status_event["actor_user"], user(Role::ProvinceOffice, None));
    assert_eq!(status_event["command_name"], "change-item-status");
    assert!(
        status_event["effective_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2025-07-01T01:00:00"))
    );
    assert!(events.iter().any(|e| e["actor_unit"] == LEAD));
    // Listing who did what is a read of the audit trail, recorded before the answer.
    let read_sequence = diff["read_sequence"].as_u64().expect("read sequence");
    assert!(read_sequence > head);
    stack.settle().await;
    let recorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor_user, payload->>'query' FROM audit.audit_log WHERE stream_sequence = $1",
    )
    .bind(i64::try_from(read_sequence).expect("sequence"))
    .fetch_all(&stack.admin().await)
    .await
    .expect("recorded read");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, user(Role::Auditor, None));
    assert!(recorded[0].1.starts_with("GET /v1/as-of/diff?from="));

    // On the effective clock, the backdated change falls between 30 June and 2 July 2025.
    let effective = stack
        .read(
            &format!(
                "/v1/as-of/diff?axis=effective&from={}&to={}",
                instant_param("2025-06-30T00:00:00+07:00"),
                instant_param("2025-07-02T00:00:00+07:00")
            ),
            &auditor,
        )
        .await;
    assert_eq!(effective["events_total"], 1, "{effective}");
    assert_eq!(effective["events"][0]["stream_sequence"], backdated);
    stack.stop().await;
}

#[tokio::test]
async fn audit_trail_filters_and_pages_without_gaps_or_duplicates_in_stream_order() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    script(&stack, &dates).await;
    stack.settle().await;
    let office = office();
    let auditor = token(Role::Auditor, None);

    // Page through everything; halfway, another command is appended.
    let mut pages = 0;
    let mut entries: Vec<Value> = vec![];
    let mut cursor: Option<String> = None;
    let mut appended = None;
    loop {
        let mut path = "/v1/audit?limit=37".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        if let Some(sequence) = appended {
            path.push_str(&format!("&min_sequence={sequence}"));
        }
        let page = stack.read(&path, &auditor).await;
        let batch = page["entries"].as_array().expect("entries");
        assert!(batch.len() <= 37);
        assert_eq!(page["limit"], 37);
        entries.extend(batch.iter().cloned());
        pages += 1;
        if pages == 2 {
            appended = Some(
                stack
                    .command("rename-unit", &office, json!({ "unit_id": CITY, "name": "UBND TP. Thanh Hóa", "reason": "Viết tắt" }))
                    .await,
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page["end_cursor"], page["next_cursor"]);
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    let admin = stack.admin().await;
    let paged: Vec<(i64, i32, uuid::Uuid)> = entries
        .iter()
        .map(|e| {
            (
                e["stream_sequence"].as_i64().expect("sequence"),
                e["position"].as_i64().expect("position") as i32,
                e["envelope"]["id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("uuid"),
            )
        })
        .collect();
    // Every page read was itself recorded (access.audit_read) and those records join the trail
    // as the pager goes: the pages hold everything up to where they stopped, reads included.
    let (last_sequence, last_position, _) = *paged.last().expect("entries");
    let stored: Vec<(i64, i32, uuid::Uuid)> = sqlx::query_as(
        "SELECT stream_sequence, position, event_id FROM audit.audit_log
         WHERE (stream_sequence, position) <= ($1, $2) ORDER BY stream_sequence, position",
    )
    .bind(last_sequence)
    .bind(last_position)
    .fetch_all(&admin)
    .await
    .expect("audit rows");
    assert_eq!(paged, stored, "every event exactly once, in stream order");
    assert!(pages > 2);
    assert_eq!(
        changes(&entries).last().expect("entry")["envelope"]["type"],
        "vn.gov.thanhhoa.remediation.unit.renamed.v1",
        "the event appended while paging comes last"
    );
    assert!(
        entries.iter().any(|e| e["envelope"]["type"] == AUDIT_READ
            && e["envelope"]["actoruser"] == user(Role::Auditor, None)),
        "the first pages' reads are in the later pages"
    );
    let first = &entries[0]["envelope"];
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["subject"], format!("plan/{PLAN}"));
    assert!(first["data"].is_object() && first["commandid"].is_string());

    /// Every page of a filtered query, concatenated.
    async fn all_pages(stack: &Stack, token: &str, filter: &str, limit: usize) -> Vec<Value> {
        let mut out: Vec<Value> = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/audit?{filter}&limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = stack.read(&path, token).await;
            out.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return out,
            }
        }
    }
    let expect = |keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| keep(&e["envelope"]))
            .cloned()
            .collect()
    };
    let cases: Vec<(String, Vec<Value>)> = vec![
        (
            format!("aggregate_type=item&aggregate_id={ITEM_1}"),
            expect(&|e| e["aggregatetype"] == "item" && e["aggregateid"] == ITEM_1),
        ),
        (
            "aggregate_type=task".to_owned(),
            expect(&|e| e["aggregatetype"] == "task"),
        ),
        (format!("unit={LEAD}"), expect(&|e| e["actorunit"] == LEAD)),
        (
            format!("actor={}", user(Role::UnitStaff, Some(HEALTH))),
            expect(&|e| e["actoruser"] == user(Role::UnitStaff, Some(HEALTH))),
        ),
        (
            format!("event_type={SUBMITTED}"),
            expect(&|e| e["type"] == SUBMITTED),
        ),
        (
            format!("event_type={SUBMITTED}&unit={CITY}"),
            expect(&|e| e["type"] == SUBMITTED && e["actorunit"] == CITY),
        ),
    ];
    for (filter, expected) in &cases {
        assert!(!expected.is_empty(), "{filter} selects something");
        for limit in [3, 1000] {
            let got = all_pages(&stack, &auditor, filter, limit).await;
            assert_eq!(&got, expected, "{filter} (limit {limit})");
        }
    }
    let reports = all_pages(&stack, &auditor, &format!("event_type={SUBMITTED}"), 100).await;
    assert_eq!(reports.len(), 4);

    // Time ranges are half-open, on either axis.
    let middle = entries[entries.len() / 2]["envelope"]["time"]
        .as_str()
        .expect("time")
        .to_owned();
    let at: DateTime<Utc> = middle.parse().expect("instant");
    let recorded = |e: &Value| {
        e["time"]
            .as_str()
            .expect("time")
            .parse::<DateTime<Utc>>()
            .expect("instant")
    };
    // Reads recorded since the pages were collected come on top of `entries`: compare changes.
    let since = all_pages(
        &stack,
        &auditor,
        &format!("recorded_from={}", instant_param(&middle)),
        1000,
    )
    .await;
    assert_eq!(changes(&since), changes(&expect(&|e| recorded(e) >= at)));
    let before = all_pages(
        &stack,
        &auditor,
        &format!("recorded_to={}", instant_param(&middle)),
        1000,
    )
    .await;
    assert_eq!(before, expect(&|e| recorded(e) < at));
    assert_eq!(
        changes(&since).len() + changes(&before).len(),
        changes(&entries).len()
    );
    let june = all_pages(
        &stack,
        &office,
        &format!(
            "effective_from={}&effective_to={}",
            instant_param("2025-06-01T00:00:00+07:00"),
            instant_param("2025-07-01T00:00:00+07:00")
        ),
        1000,
    )
    .await;
    assert_eq!(
        june.len(),
        1,
        "only the paper report keyed in with its June date"
    );
    assert_eq!(june[0]["envelope"]["type"], SUBMITTED);
    assert_eq!(june[0]["envelope"]["effectivetime"], "2025-06-10T02:00:00Z");
    // An unencoded '+' arrives as a space and is read back as the offset it was.
    let lenient = all_pages(
        &stack,
        &office,
        "effective_from=2025-06-01T00:00:00+07:00&effective_to=2025-07-01T00:00:00+07:00",
        1000,
    )
    .await;
    assert_eq!(lenient, june);
    stack.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let stack = Stack::start().await;
    let head = stack.settle().await;

    let health = stack.get("/healthz", None).await;
    assert_eq!(
        (health.status, &health.body),
        (StatusCode::OK, &json!({ "status": "ok" }))
    );
    let ready = stack.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let projections = ready.body["projections"].as_array().expect("projections");
    assert_eq!(
        ids(&ready.body["projections"], "projection"),
        ["core", "audit"]
    );
    for projection in projections {
        assert_eq!(projection["checkpoint"], head);
        assert!(projection["last_recorded_at"].is_string());
        assert!(projection["last_recorded_age_seconds"].as_f64() >= Some(0.0));
    }

    stack
        .read(&format!("/v1/plans/{PLAN}/overview"), &office())
        .await;
    stack.get("/v1/overdue", None).await;
    stack.get("/v1/khong-co", None).await;
    let metrics = stack.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().expect("text");
    for expected in [
        "kh63_query_requests_total{endpoint=\"plan_overview\",status=\"200\"} 1",
        "kh63_query_requests_total{endpoint=\"overdue\",status=\"401\"} 1",
        "kh63_query_requests_total{endpoint=\"unmatched\",status=\"404\"} 1",
        "kh63_query_query_duration_seconds_count{endpoint=\"plan_overview\"} 1",
        "kh63_query_consistency_wait_seconds",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }

    // The document lists exactly the routes served (every listed path answers, asking for a
    // token where it needs one; a path it does not list is not found), and every reference
    // resolves. That it lists each route of the service's table once is the service's own test.
    let document = stack.get("/openapi.json", None).await.body;
    assert_eq!(document["openapi"], "3.1.0");
    let paths: BTreeSet<String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert!(paths.len() > 15, "{paths:?}");
    for path in &paths {
        let reply = stack.get(&filled_in(path), None).await;
        if document["paths"][path]["get"]["security"] == json!([]) {
            assert_ne!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                reply.body
            );
        } else {
            assert_problem(
                &reply,
                StatusCode::UNAUTHORIZED,
                "urn:kh63:problem:unauthenticated",
            );
        }
    }
    let unlisted = stack.get("/v1/khong-co-duong-nay", None).await;
    assert_eq!(unlisted.status, StatusCode::NOT_FOUND, "{}", unlisted.body);
    let overview = &document["paths"]["/v1/plans/{plan_id}/overview"]["get"];
    assert_eq!(overview["security"], json!([{ "bearer": [] }]));
    let names: Vec<&str> = overview["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["plan_id", "min_sequence", "wait_ms"]);
    assert_eq!(
        document["paths"]["/v1/audit"]["get"]["x-roles"],
        json!(["province_office", "auditor"])
    );
    let operation = |path: &str| document["paths"][path]["get"].clone();
    assert_eq!(operation("/v1/audit/verify")["x-roles"], json!(["auditor"]));
    assert_eq!(
        operation("/v1/exports/events")["x-roles"],
        json!(["province_office", "auditor"])
    );
    let analytics = json!([
        "province_office",
        "department_of_finance",
        "auditor",
        "viewer"
    ]);
    assert_eq!(operation("/v1/exports/{dataset}")["x-roles"], analytics);
    assert_eq!(
        operation("/v1/plans/{plan_id}/compilation")["x-roles"],
        analytics
    );
    // The reads of the audit trail say that they are recorded, and that they fail closed.
    for path in paths.iter().map(String::as_str) {
        let records = operation(path)["x-records-read"] == true;
        assert_eq!(
            records,
            [
                "/v1/audit",
                "/v1/audit/verify",
                "/v1/exports/events",
                "/v1/as-of/diff"
            ]
            .contains(&path),
            "{path}"
        );
        if records {
            let unavailable = operation(path)["responses"]["503"]["description"]
                .as_str()
                .expect("503")
                .to_owned();
            assert!(unavailable.contains("read-not-recorded"), "{path}");
        }
    }
    let dataset = &operation("/v1/exports/{dataset}")["parameters"][0];
    assert_eq!(dataset["in"], "path");
    assert_eq!(
        dataset["schema"]["enum"],
        json!(["status-changes", "reports", "assignments", "compliance"])
    );
    let formats = operation("/v1/exports/events")["responses"]["200"]["content"].clone();
    assert!(
        formats.get("application/x-ndjson").is_some()
            && formats.get("text/csv; charset=utf-8").is_some()
    );
    let compilation =
        operation("/v1/plans/{plan_id}/compilation")["responses"]["200"]["content"].clone();
    assert!(compilation.get(XLSX).is_some(), "{compilation}");
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all_refs = vec![];
    refs(&document, &mut all_refs);
    assert!(all_refs.iter().any(|r| r.ends_with("/PlanOverview")));
    for reference in all_refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{reference} resolves"
        );
    }

    // A service whose database is unreachable is alive but not ready, and says so.
    let service = start_query(with(
        query_settings(&stack.database, &stack.nats),
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/kh63",
    ))
    .await;
    let url = service.url();
    let http = reqwest::Client::new();
    assert_eq!(
        get_from(&http, &format!("{url}/healthz"), None)
            .await
            .status,
        StatusCode::OK
    );
    let unready = get_from(&http, &format!("{url}/readyz"), None).await;
    assert_problem(
        &unready,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:database-unavailable",
    );
    assert_eq!(unready.retry_after.as_deref(), Some("1"));
    let unavailable = get_from(&http, &format!("{url}/v1/overdue"), Some(&office())).await;
    assert_problem(
        &unavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:database-unavailable",
    );
    service.stop().await;
    stack.stop().await;
}

/// A file answer: status, the headers that matter, the raw body.
struct Download {
    status: StatusCode,
    content_type: String,
    disposition: String,
    read_sequence: Option<u64>,
    body: Vec<u8>,
}

impl Stack {
    async fn download(&self, path: &str, token: &str) -> Download {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let download = Download {
            status: response.status(),
            content_type: header("content-type").unwrap_or_default(),
            disposition: header("content-disposition").unwrap_or_default(),
            read_sequence: header("x-audit-read-sequence").and_then(|s| s.parse().ok()),
            body: Vec::new(),
        };
        assert_eq!(
            header("cache-control").as_deref(),
            (download.status == StatusCode::OK).then_some("no-store"),
            "{path}"
        );
        Download {
            body: response.bytes().await.expect("body").to_vec(),
            ..download
        }
    }

    /// The count of `sql` (a `SELECT count(*)`), as the superuser sees it (the views name their
    /// tables unqualified, as the projector's search path has them).
    async fn count(&self, sql: &str) -> usize {
        let admin = self.admin().await;
        let mut conn = admin.acquire().await.expect("connection");
        sqlx::query("SET search_path = core, audit")
            .execute(&mut *conn)
            .await
            .expect("search path");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        usize::try_from(count).expect("a count")
    }

    /// The recorded reads of the audit trail up to `sequence`, as the trail shows them.
    async fn recorded_reads(&self, sequence: u64) -> Vec<Value> {
        let page = self
            .read(
                &format!("/v1/audit?event_type={AUDIT_READ}&limit=1000&min_sequence={sequence}"),
                &token(Role::Auditor, None),
            )
            .await;
        page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["envelope"].clone())
            .collect()
    }
}

/// The body as text after the UTF-8 byte-order mark, which must be there.
fn after_bom(body: &[u8]) -> &str {
    let text = body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or_else(|| panic!("no byte-order mark: {:?}", &body[..body.len().min(16)]));
    std::str::from_utf8(text).expect("UTF-8")
}

#[tokio::test]
async fn every_read_of_the_audit_trail_is_recorded_before_it_is_answered_or_not_answered_at_all() {
    let mut stack = Stack::start().await;
    let auditor = token(Role::Auditor, None);
    let office = office();

    // An auditor reads a page; the trail then holds the record of that read.
    let path = format!("/v1/audit?aggregate_id={ITEM_1}&limit=5");
    let page = stack.read(&path, &auditor).await;
    let first = page["read_sequence"].as_u64().expect("read sequence");
    assert!(first > page["checkpoint"].as_u64().expect("checkpoint"));
    let shown = page["entries"].as_array().expect("entries").len();
    assert_eq!(shown, 5);
    let reads = stack
        .read(
            &format!("/v1/audit?event_type={AUDIT_READ}&min_sequence={first}"),
            &office,
        )
        .await;
    let entries = reads["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{reads}");
    assert_eq!(entries[0]["stream_sequence"], first);
    let read = &entries[0]["envelope"];
    let at: DateTime<Utc> = read["time"]
        .as_str()
        .expect("time")
        .parse()
        .expect("instant");
    assert_eq!(read["type"], AUDIT_READ);
    assert_eq!(read["subject"], format!("access/{}", local_date(at)));
    assert_eq!(read["aggregatetype"], "access");
    assert_eq!(read["aggregateid"], local_date(at).to_string());
    assert_eq!(read["actoruser"], user(Role::Auditor, None));
    assert_eq!(read["actorrole"], "auditor");
    assert_eq!(read["commandname"], "record-audit-read");
    assert_eq!(read["effectivetime"], read["time"]);
    assert_eq!(read["data"]["query"], format!("GET {path}"));
    assert_eq!(read["data"]["results"], shown);
    let data_at: DateTime<Utc> = read["data"]["at"]
        .as_str()
        .expect("at")
        .parse()
        .expect("instant");
    assert_eq!(data_at, at);
    assert_eq!(
        read["prevhash"], "",
        "the day's first read starts its chain"
    );

    // The office's read of the reads was recorded in turn, on the same day's chain.
    let second = reads["read_sequence"].as_u64().expect("read sequence");
    let recorded = stack.recorded_reads(second).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let office_read = &recorded[1];
    assert_eq!(office_read["actoruser"], user(Role::ProvinceOffice, None));
    assert_eq!(office_read["actorrole"], "province_office");
    assert_eq!(
        office_read["data"]["query"],
        format!("GET /v1/audit?event_type={AUDIT_READ}&min_sequence={first}")
    );
    assert_eq!(office_read["data"]["results"], 1);
    if office_read["aggregateid"] == read["aggregateid"] {
        assert_eq!(office_read["prevhash"], read["hash"]);
    }
    // The very same read again is a read again.
    let again = stack.read(&path, &auditor).await;
    let third = again["read_sequence"].as_u64().expect("read sequence");
    assert!(third > second);
    let recorded = stack.recorded_reads(third).await;
    assert_eq!(
        recorded.len(),
        4,
        "two pages of the reads were read meanwhile"
    );
    assert_eq!(
        recorded[3]["data"],
        json!({ "query": format!("GET {path}"), "results": 5, "at": recorded[3]["data"]["at"] })
    );

    // Refused and unauthenticated requests hand nothing out and record nothing.
    for token in [
        Some(finance()),
        Some(staff(LEAD)),
        Some(token(Role::Viewer, None)),
        None,
    ] {
        let reply = stack.get("/v1/audit", token.as_deref()).await;
        assert!(matches!(reply.status.as_u16(), 401 | 403), "{}", reply.body);
        let export = stack.get("/v1/exports/events", token.as_deref()).await;
        assert!(
            matches!(export.status.as_u16(), 401 | 403),
            "{}",
            export.body
        );
    }
    stack.settle().await;
    let readers = stack
        .count(
            "SELECT count(DISTINCT actor_user) FROM audit.audit_log
             WHERE aggregate_type = 'access' AND actor_role NOT IN ('auditor', 'province_office')",
        )
        .await;
    assert_eq!(readers, 0);

    // Fail closed: with the event store down, the audit trail is not handed out — neither a
    // page, nor an export, nor a verification — while the dashboards answer as before.
    stack.nats.stop();
    let refused = stack.get("/v1/audit?limit=1", Some(&auditor)).await;
    assert_problem(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:read-not-recorded",
    );
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    let export = stack.download("/v1/exports/events", &office).await;
    assert_eq!(export.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(export.content_type, "application/problem+json");
    let body: Value = serde_json::from_slice(&export.body).expect("problem");
    assert_eq!(body["type"], "urn:kh63:problem:read-not-recorded");
    let verify = stack.get("/v1/audit/verify", Some(&auditor)).await;
    assert_eq!(
        verify.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        verify.body
    );
    stack.read("/v1/overdue", &office).await;
    stack
        .read(&format!("/v1/plans/{PLAN}/overview"), &auditor)
        .await;

    // Back up, reads are recorded and answered again.
    stack.nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = stack.get("/v1/audit?limit=2", Some(&auditor)).await;
        if reply.status == StatusCode::OK {
            assert!(reply.body["read_sequence"].as_u64() > Some(third));
            break;
        }
        assert_problem(
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:kh63:problem:read-not-recorded",
        );
        assert!(Instant::now() < deadline, "recording never resumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A service that never reached NATS does not hand out the trail either.
    let service = start_query(with(
        query_settings(&stack.database, &stack.nats),
        "NATS_URL",
        "nats://127.0.0.1:1",
    ))
    .await;
    let url = service.url();
    let http = reqwest::Client::new();
    let cut_off = get_from(&http, &format!("{url}/v1/audit"), Some(&auditor)).await;
    assert_problem(
        &cut_off,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:read-not-recorded",
    );
    let dashboard = get_from(&http, &format!("{url}/v1/overdue"), Some(&auditor)).await;
    assert_eq!(dashboard.status, StatusCode::OK);
    service.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn audit_verification_reports_ok_with_the_counts_then_the_tampered_row() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    script(&stack, &dates).await;
    let auditor = token(Role::Auditor, None);

    // What the stream and the table hold, walked independently.
    let head = stack.settle().await;
    let js = async_nats::jetstream::new(stack.nats.connect(Identity::Admin).await);
    let stream = js
        .get_stream(StreamSettings::default().name)
        .await
        .expect("stream");
    let walked = event_store::verify_stream(&stream).await.expect("walk");
    let events = stack.count("SELECT count(*) FROM audit.audit_log").await as u64;
    let chains = stack
        .count("SELECT count(DISTINCT (aggregate_type, aggregate_id)) FROM audit.audit_log")
        .await as u64;

    let ok = stack.read("/v1/audit/verify", &auditor).await;
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(ok["commits"], head);
    assert_eq!(ok["last_sequence"], head);
    assert_eq!(ok["events"], events);
    assert_eq!(ok["chains"], chains);
    assert_eq!(ok["audit_rows"], events);
    assert_eq!(ok["audit_checkpoint"], head);
    let digest = event_store::digest(walked.heads.iter().map(|(a, h)| (a.as_str(), h.as_str())));
    assert_eq!(ok["digest"], digest);
    assert_eq!(ok["broken"], Value::Null);
    // The verification was recorded as a read, after the walk it reports.
    assert_eq!(ok["read_sequence"], head + 1);

    // One payload changed in the audit table: the row is named.
    let (sequence, aggregate, original): (i64, String, Value) = sqlx::query_as(
        "SELECT stream_sequence, aggregate_type || '/' || aggregate_id, payload FROM audit.audit_log
         WHERE event_type = 'vn.gov.thanhhoa.remediation.unit.registered.v1'
         ORDER BY stream_sequence OFFSET 3 LIMIT 1",
    )
    .fetch_one(&stack.admin().await)
    .await
    .expect("a unit's registration");
    let admin = stack.admin().await;
    sqlx::query(
        "UPDATE audit.audit_log SET payload = jsonb_set(payload, '{name}', '\"Sở giả mạo\"')
         WHERE stream_sequence = $1",
    )
    .bind(sequence)
    .execute(&admin)
    .await
    .expect("tamper");
    let broken = stack.read("/v1/audit/verify", &auditor).await;
    assert_eq!(broken["status"], "broken", "{broken}");
    assert_eq!(broken["broken"]["place"], "audit_table");
    assert_eq!(broken["broken"]["sequence"], sequence);
    assert_eq!(broken["broken"]["aggregate"], aggregate);
    // The data is stored once, as the payload: the envelope reassembled with it no longer
    // hashes to its hash.
    let reason = broken["broken"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("envelope does not match its hash"),
        "{reason}"
    );
    assert_eq!(broken["digest"], Value::Null);
    assert_eq!(
        broken["commits"],
        head + 1,
        "the stream itself still checks"
    );

    // Repaired, it checks again; a row missing altogether (an aggregate's only event, so no
    // chain notices) is caught by the count.
    sqlx::query("UPDATE audit.audit_log SET payload = $2 WHERE stream_sequence = $1")
        .bind(sequence)
        .bind(&original)
        .execute(&admin)
        .await
        .expect("repair");
    stack.settle().await;
    let repaired = stack.read("/v1/audit/verify", &auditor).await;
    assert_eq!(repaired["status"], "ok", "{repaired}");
    let deleted: i64 = sqlx::query_scalar(
        "DELETE FROM audit.audit_log WHERE event_id = (
             SELECT min(event_id::text)::uuid FROM audit.audit_log a
             WHERE aggregate_type = 'unit'
               AND (SELECT count(*) FROM audit.audit_log b
                    WHERE b.aggregate_type = a.aggregate_type AND b.aggregate_id = a.aggregate_id) = 1)
         RETURNING stream_sequence",
    )
    .fetch_one(&admin)
    .await
    .expect("delete a row");
    assert!(deleted > 0);
    stack.settle().await;
    let missing = stack.read("/v1/audit/verify", &auditor).await;
    assert_eq!(missing["status"], "broken", "{missing}");
    assert_eq!(missing["broken"]["place"], "audit_table");
    assert_eq!(missing["broken"]["aggregate"], Value::Null);
    assert_eq!(missing["broken"]["sequence"], missing["audit_checkpoint"]);
    assert_eq!(
        missing["audit_rows"].as_u64(),
        missing["events"].as_u64().map(|e| e - 1)
    );
    stack.stop().await;
}

#[tokio::test]
async fn exports_stream_the_trail_and_the_analytics_views_and_the_compilation_downloads() {
    let stack = Stack::start().await;
    let dates = Dates::now();
    script(&stack, &dates).await;
    let auditor = token(Role::Auditor, None);
    let viewer = token(Role::Viewer, None);

    // The events as NDJSON: one envelope per line, every audit row, in stream order.
    stack.settle().await;
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM audit.audit_log ORDER BY stream_sequence, position",
    )
    .fetch_all(&stack.admin().await)
    .await
    .expect("audit rows");
    let ndjson = stack.download("/v1/exports/events", &auditor).await;
    assert_eq!(ndjson.status, StatusCode::OK);
    assert_eq!(ndjson.content_type, "application/x-ndjson");
    assert!(
        ndjson
            .disposition
            .starts_with("attachment; filename=\"kh63-events-")
            && ndjson.disposition.ends_with(".ndjson\""),
        "{}",
        ndjson.disposition
    );
    let text = std::str::from_utf8(&ndjson.body).expect("UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.len(), stored.len());
    let exported: Vec<uuid::Uuid> = lines
        .iter()
        .map(|e| e["id"].as_str().expect("id").parse().expect("uuid"))
        .collect();
    assert_eq!(exported, stored);
    assert!(
        lines
            .iter()
            .all(|e| e["specversion"] == "1.0" && e["hash"].is_string())
    );

    // …recorded as a read of the audit trail, with how many events it held.
    let sequence = ndjson.read_sequence.expect("X-Audit-Read-Sequence");
    let reads = stack.recorded_reads(sequence).await;
    let read = reads.last().expect("the export's read");
    assert_eq!(read["actoruser"], user(Role::Auditor, None));
    assert_eq!(read["data"]["query"], "GET /v1/exports/events");
    assert_eq!(read["data"]["results"], stored.len());

    // As CSV, within a range: byte-order mark, header, one row per event recorded in it.
    stack.settle().await;
    let middle: DateTime<Utc> = lines[lines.len() / 2]["time"]
        .as_str()
        .expect("time")
        .parse()
        .expect("instant");
    let from = instant_param(&middle.to_rfc3339());
    // Bound, not spelled out: the instant reaches PostgreSQL as the service's bind does.
    let in_range: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.audit_log WHERE recorded_at >= $1")
            .bind(middle)
            .fetch_one(&stack.admin().await)
            .await
            .expect("count");
    let csv = stack
        .download(
            &format!("/v1/exports/events?format=csv&from={from}"),
            &token(Role::ProvinceOffice, None),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert!(csv.disposition.ends_with(".csv\""), "{}", csv.disposition);
    let rows: Vec<&str> = after_bom(&csv.body).split_terminator("\r\n").collect();
    assert_eq!(rows[0], "stream_sequence,envelope");
    assert_eq!(rows.len() - 1, usize::try_from(in_range).expect("count"));
    assert!(csv.read_sequence.is_some());

    // The analytics views, as NDJSON and as CSV, for every role that may export them.
    for (dataset, view, column) in [
        ("status-changes", "analytics_status_changes", "item_title"),
        ("reports", "analytics_reports", "unit_name"),
        ("assignments", "analytics_assignments", "assignee_name"),
        ("compliance", "reporting_compliance", "compliance"),
    ] {
        let rows = stack
            .count(&format!("SELECT count(*) FROM core.{view}"))
            .await;
        assert!(rows > 0, "{view} has rows");
        let ndjson = stack
            .download(&format!("/v1/exports/{dataset}"), &viewer)
            .await;
        assert_eq!(ndjson.status, StatusCode::OK, "{dataset}");
        assert_eq!(ndjson.content_type, "application/x-ndjson");
        assert_eq!(
            ndjson.read_sequence, None,
            "analytics are not the audit trail"
        );
        let text = std::str::from_utf8(&ndjson.body).expect("UTF-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect();
        assert_eq!(lines.len(), rows, "{dataset}");
        assert!(lines[0].get(column).is_some(), "{dataset}: {}", lines[0]);
        let csv = stack
            .download(&format!("/v1/exports/{dataset}?format=csv"), &finance())
            .await;
        assert_eq!(csv.status, StatusCode::OK, "{dataset}");
        assert_eq!(csv.content_type, "text/csv; charset=utf-8");
        assert!(
            csv.disposition
                .starts_with(&format!("attachment; filename=\"kh63-{dataset}-")),
            "{}",
            csv.disposition
        );
        let text = after_bom(&csv.body);
        let header = text.split("\r\n").next().expect("header");
        assert!(
            header.split(',').any(|name| name == column),
            "{dataset}: {header}"
        );
    }

    // The quarterly compilation: a workbook, or CSV with the Department of Finance's headers.
    let (quarter, _) = current_quarter();
    let compiled = stack
        .count(&format!(
            "SELECT count(*) FROM core.quarterly_compilation('{PLAN}', {}, {}, now())",
            quarter.year, quarter.quarter
        ))
        .await;
    let xlsx = stack
        .download(
            &format!(
                "/v1/plans/{PLAN}/compilation?year={}&quarter={}",
                quarter.year, quarter.quarter
            ),
            &finance(),
        )
        .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    assert_eq!(xlsx.content_type, XLSX);
    assert_eq!(
        xlsx.disposition,
        format!(
            "attachment; filename=\"tong-hop-{PLAN}-q{}-{}.xlsx\"",
            quarter.quarter, quarter.year
        )
    );
    assert!(xlsx.body.starts_with(b"PK"), "a ZIP container");
    let csv = stack
        .download(&format!("/v1/plans/{PLAN}/compilation?format=csv"), &viewer)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    let text = after_bom(&csv.body);
    assert!(
        text.starts_with("STT,\"Nội dung hạn chế, yếu kém\",Đơn vị chủ trì,"),
        "{text}"
    );
    assert_eq!(text.split_terminator("\r\n").count(), compiled + 1);
    stack.stop().await;
}

/// Both OpenAPI documents against their own services, fuzzed by schemathesis (from PyPI, in a
/// venv the test makes; settings in `tests/api-fuzz/schemathesis.toml`): no 5xx, every status
/// code, content type and body as documented, schema-valid requests accepted (or refused by a
/// business rule), schema-invalid ones refused, and nothing answered without authentication.
#[tokio::test]
async fn both_openapi_documents_hold_under_schemathesis() {
    let stack = Stack::start().await;
    let python = test_support::python_venv("api-fuzz-venv", "tests/api-fuzz/requirements.txt");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("tests/api-fuzz/schemathesis.toml");
    for (url, token) in [
        (&stack.commands_url, office()),
        (&stack.url, token(Role::Auditor, None)),
    ] {
        let output = tokio::process::Command::new(python.with_file_name("schemathesis"))
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("{url}/openapi.json"), "--checks", "all"])
            // Generation health checks judge the fuzzer's speed on this machine, not the API.
            .args(["--suppress-health-check", "too_slow,filter_too_much"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .current_dir(root.join("target"))
            .output()
            .await
            .expect("run schemathesis");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis found problems in {url}/openapi.json:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(report.contains("Tested:"), "{report}");
        // Whatever the fuzzed commands appended, the projections apply (a stall shows here).
        stack.settle().await;
    }
    stack.stop().await;
}
