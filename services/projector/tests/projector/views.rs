//! Every view after a scripted history: the exact rows, written out by hand.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use event_store::Commit;
use remediation_domain::Role;
use remediation_domain::calendar::{Quarter, deadline_qualifier};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

const PLAN: &str = "kh-63-2025";
const PLAN_TITLE: &str = "Kế hoạch khắc phục những hạn chế, yếu kém năm 2024";
const LEGAL_BASIS: [&str; 2] = [
    "Nghị quyết số 18-NQ/TU ngày 05/12/2024 của Ban Chấp hành Đảng bộ tỉnh",
    "Nghị quyết số 592/NQ-HĐND ngày 14/12/2024 của HĐND tỉnh",
];
const RULE: &str = "Định kỳ trước ngày 15 của tháng cuối quý, gửi báo cáo về Sở Tài chính.";
const RULE_AMENDED: &str = "Định kỳ trước ngày 15 của tháng cuối quý, gửi báo cáo bằng văn bản và qua hệ thống về Sở Tài chính.";

const TC: &str = "so-tai-chinh";
const NN: &str = "so-nong-nghiep-va-moi-truong";
const YT: &str = "so-y-te";
const HH: &str = "ubnd-huyen-hoang-hoa";
const NS: &str = "ubnd-huyen-nga-son";
const XA: &str = "ubnd-xa-hoang-tien";
const GROUP: &str = "ubnd-cac-huyen";

const TC_NAME: &str = "Sở Tài chính";
const NN_NAME: &str = "Sở Nông nghiệp và Môi trường";
const YT_NAME: &str = "Sở Y tế";
const YT_RENAMED: &str = "Sở Y tế tỉnh Thanh Hóa";
const HH_NAME: &str = "UBND huyện Hoằng Hóa";
const NS_NAME: &str = "UBND huyện Nga Sơn";
const XA_NAME: &str = "UBND xã Hoằng Tiến";
const GROUP_NAME: &str = "UBND các huyện, thị xã, thành phố";

const I1: &str = "kh-63-2025-01";
const I2: &str = "kh-63-2025-02";
const I1_TITLE: &str = "Tăng trưởng ngành nông nghiệp chưa đạt kế hoạch";
const I2_TITLE: &str = "Chất lượng dịch vụ y tế cơ sở còn hạn chế";

const T_NN: &str = "snnmt-2025-01";
const T_HH: &str = "hh-2025-01";
const T_YT: &str = "syt-2025-01";

/// Plan issue day, 08:00 local: when the paper plan's facts are keyed in as effective.
const P0: &str = "2025-04-08T08:00:00+07:00";

fn report_id(unit: &str, year: i32, quarter: u8) -> String {
    format!("{PLAN}--{unit}--{year}-q{quarter}")
}

fn wire(qualifier: &remediation_domain::calendar::DeadlineQualifier) -> Value {
    serde_json::to_value(qualifier).expect("serialises")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_holds_exactly_the_rows_of_a_scripted_history() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    let mut api = Api::new(&service);

    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
    let finance = who("stc.tran-van-minh", Role::DepartmentOfFinance, Some(TC));
    let staff_nn = who("snnmt.le-van-an", Role::UnitStaff, Some(NN));
    let staff_yt = who("syt.pham-thi-dung", Role::UnitStaff, Some(YT));
    let staff_xa = who("xht.hoang-van-cuong", Role::UnitStaff, Some(XA));

    // ── the history ──────────────────────────────────────────────────────────────────────────
    let o = &office;
    api.post("issue-plan", o, Some(P0), json!({
        "plan_id": PLAN, "code": "63/KH-UBND", "title": PLAN_TITLE, "issuer": "UBND tỉnh Thanh Hóa",
        "issued_on": "2025-04-08", "legal_basis": LEGAL_BASIS, "reporting_rule": RULE,
    })).await; // 1
    for (unit, name, kind) in [
        (TC, TC_NAME, "department"),
        (NN, NN_NAME, "department"),
        (YT, YT_NAME, "department"),
        (HH, HH_NAME, "district_committee"),
        (NS, NS_NAME, "district_committee"),
    ] {
        api.post(
            "register-unit",
            o,
            Some(P0),
            json!({ "unit_id": unit, "name": name, "kind": kind }),
        )
        .await; // 2–6
    }
    api.post(
        "register-unit",
        o,
        Some("2025-06-20T08:00:00+07:00"),
        json!({ "unit_id": XA, "name": XA_NAME, "kind": "commune_committee" }),
    )
    .await; // 7
    // Typed with a combining acute accent: stored NFC.
    api.post(
        "rename-unit",
        o,
        Some("2025-04-10T09:00:00+07:00"),
        json!({
            "unit_id": YT, "name": "Sở Y tế tỉnh Thanh Ho\u{0301}a",
            "reason": "Chuẩn hóa tên gọi theo quyết định thành lập",
        }),
    )
    .await; // 8
    api.post(
        "define-group",
        o,
        Some(P0),
        json!({ "group_id": GROUP, "name": GROUP_NAME }),
    )
    .await; // 9
    for unit in [HH, NS] {
        api.post(
            "add-group-member",
            o,
            Some(P0),
            json!({ "group_id": GROUP, "unit_id": unit, "from": "2025-04-08" }),
        )
        .await; // 10, 11
    }
    api.post(
        "remove-group-member",
        o,
        Some("2025-05-01T08:00:00+07:00"),
        json!({
            "group_id": GROUP, "unit_id": NS, "from": "2025-05-01",
            "reason": "Huyện không có nhiệm vụ liên quan",
        }),
    )
    .await; // 12
    api.post("amend-plan", o, Some("2025-04-15T10:00:00+07:00"), json!({
        "plan_id": PLAN, "reporting_rule": RULE_AMENDED, "reason": "Bổ sung hình thức gửi báo cáo",
    })).await; // 13
    api.post("record-item", o, Some(P0), json!({
        "item_id": I1, "plan_id": PLAN, "ordinal": 1, "title": I1_TITLE, "sector": "Nông nghiệp",
        "causes_objective": "Thời tiết diễn biến phức tạp",
        "causes_subjective": "Công tác chỉ đạo chưa quyết liệt",
        "remedies": "Ứng dụng công nghệ cao trong sản xuất",
    })).await; // 14
    api.post(
        "record-item",
        o,
        Some(P0),
        json!({ "item_id": I2, "plan_id": PLAN, "ordinal": 2, "title": I2_TITLE }),
    )
    .await; // 15
    api.post(
        "assign-lead",
        o,
        Some(P0),
        json!({ "item_id": I1, "assignee": { "unit": NN } }),
    )
    .await; // 16
    api.post(
        "assign-coordinator",
        o,
        Some(P0),
        json!({ "item_id": I1, "assignee": { "group": GROUP } }),
    )
    .await; // 17
    api.post(
        "assign-lead",
        o,
        Some(P0),
        json!({ "item_id": I2, "assignee": { "unit": YT } }),
    )
    .await; // 18
    api.post(
        "assign-coordinator",
        o,
        Some(P0),
        json!({ "item_id": I2, "assignee": { "unit": TC } }),
    )
    .await; // 19
    api.post(
        "revoke-assignment",
        o,
        Some("2025-08-01T08:00:00+07:00"),
        json!({
            "item_id": I2, "role": "coordinator", "assignee": { "unit": TC },
            "reason": "Sở Tài chính chỉ tổng hợp báo cáo",
        }),
    )
    .await; // 20
    api.post(
        "set-item-deadline",
        o,
        Some(P0),
        json!({ "item_id": I1, "due_on": "2025-12-31" }),
    )
    .await; // 21
    api.post(
        "set-item-deadline",
        o,
        Some("2025-11-20T08:00:00+07:00"),
        json!({
            "item_id": I1, "due_on": "2026-12-31", "reason": "Gia hạn theo đề nghị của Sở",
        }),
    )
    .await; // 22
    api.post(
        "set-item-deadline",
        o,
        Some(P0),
        json!({ "item_id": I2, "due_on": "2025-09-30" }),
    )
    .await; // 23
    api.post(
        "succeed-unit",
        o,
        Some("2025-06-25T08:00:00+07:00"),
        json!({
            "unit_id": HH, "successors": [XA], "effective_on": "2025-07-01",
            "reason": "Không tổ chức chính quyền cấp huyện từ 01/7/2025",
        }),
    )
    .await; // 24
    api.post(
        "change-item-status",
        o,
        Some("2025-05-01T08:00:00+07:00"),
        json!({ "item_id": I2, "to": "in_progress", "reason": "Bắt đầu triển khai" }),
    )
    .await; // 25
    api.post(
        "change-item-status",
        o,
        Some("2025-06-01T08:00:00+07:00"),
        json!({ "item_id": I2, "to": "suspended", "reason": "Chờ bố trí kinh phí" }),
    )
    .await; // 26
    api.post(
        "plan-task",
        &staff_nn,
        None,
        json!({
            "task_id": T_NN, "item_id": I1, "unit_id": NN,
            "title": "Xây dựng 5 mô hình sản xuất nông nghiệp ứng dụng công nghệ cao",
            "person_responsible": "Nguyễn Văn An", "leader_in_charge": "Phó Giám đốc Lê Thị Bình",
            "due_on": "2026-12-15",
        }),
    )
    .await; // 27
    api.post(
        "reschedule-task",
        &staff_nn,
        None,
        json!({ "task_id": T_NN, "due_on": "2027-03-31", "reason": "Điều chỉnh theo mùa vụ" }),
    )
    .await; // 28
    api.post(
        "change-task-status",
        &staff_nn,
        None,
        json!({ "task_id": T_NN, "to": "in_progress", "reason": "Bắt đầu triển khai" }),
    )
    .await; // 29
    api.post(
        "change-task-status",
        &staff_nn,
        None,
        json!({
            "task_id": T_NN, "to": "awaiting_confirmation", "reason": "Đã hoàn thành 5 mô hình",
            "evidence": "Biên bản nghiệm thu số 12/BB-SNNMT",
        }),
    )
    .await; // 30
    api.post(
        "change-task-status",
        o,
        None,
        json!({ "task_id": T_NN, "to": "completed", "reason": "Xác nhận hoàn thành" }),
    )
    .await; // 31
    api.post(
        "plan-task",
        o,
        Some("2025-05-10T08:00:00+07:00"),
        json!({
            "task_id": T_HH, "item_id": I1, "unit_id": HH,
            "title": "Rà soát diện tích đất lúa chuyển đổi", "person_responsible": "Trần Văn Cường",
            "leader_in_charge": "Phó Chủ tịch UBND huyện", "due_on": "2025-06-30",
        }),
    )
    .await; // 32
    api.post(
        "plan-task",
        &staff_yt,
        None,
        json!({
            "task_id": T_YT, "item_id": I2, "unit_id": YT, "title": "Nâng cấp trạm y tế xã",
            "person_responsible": "Phạm Thị Dung", "leader_in_charge": "Giám đốc Sở Y tế",
            "due_on": "2026-12-31",
        }),
    )
    .await; // 33
    api.post(
        "cancel-task",
        &staff_yt,
        None,
        json!({ "task_id": T_YT, "reason": "Trùng với nhiệm vụ của đề án khác" }),
    )
    .await; // 34
    api.post(
        "change-item-status",
        &staff_nn,
        None,
        json!({ "item_id": I1, "to": "in_progress", "reason": "Triển khai kế hoạch chi tiết" }),
    )
    .await; // 35
    api.post(
        "change-item-status",
        &staff_nn,
        None,
        json!({
            "item_id": I1, "to": "awaiting_confirmation", "reason": "Đã hoàn thành các mô hình",
            "evidence": "Báo cáo kết quả số 45/BC-SNNMT",
        }),
    )
    .await; // 36
    api.post(
        "change-item-status",
        o,
        None,
        json!({ "item_id": I1, "to": "completed", "reason": "Xác nhận hoàn thành" }),
    )
    .await; // 37
    let q2 = json!({ "year": 2025, "quarter": 2 });
    api.post("submit-report", o, Some("2025-06-10T16:00:00+07:00"), json!({
        "plan_id": PLAN, "unit_id": NN, "quarter": q2,
        "lines": [{ "item_id": I1, "progress": "Đã triển khai 3/5 mô hình", "status": "in_progress" }],
    })).await; // 38
    api.post(
        "return-report",
        &finance,
        Some("2025-06-12T09:00:00+07:00"),
        json!({
            "plan_id": PLAN, "unit_id": NN, "quarter": q2, "reason": "Thiếu số liệu về diện tích",
        }),
    )
    .await; // 39
    api.post("revise-report", &staff_nn, None, json!({
        "plan_id": PLAN, "unit_id": NN, "quarter": q2, "reason": "Bổ sung số liệu",
        "lines": [{ "item_id": I1, "progress": "Đã triển khai 3/5 mô hình trên 120 ha", "status": "in_progress" }],
    })).await; // 40
    api.post(
        "accept-report",
        &finance,
        None,
        json!({ "plan_id": PLAN, "unit_id": NN, "quarter": q2 }),
    )
    .await; // 41
    api.post("submit-report", o, Some("2025-06-20T10:00:00+07:00"), json!({
        "plan_id": PLAN, "unit_id": YT, "quarter": q2,
        "lines": [{ "item_id": I2, "progress": "Đang chờ bố trí kinh phí", "status": "suspended" }],
    })).await; // 42
    api.post(
        "accept-report",
        &finance,
        Some("2025-06-21T10:00:00+07:00"),
        json!({ "plan_id": PLAN, "unit_id": YT, "quarter": q2 }),
    )
    .await; // 43
    api.post(
        "submit-report",
        &staff_xa,
        None,
        json!({
            "plan_id": PLAN, "unit_id": XA, "quarter": { "year": 2025, "quarter": 3 },
            "lines": [{ "item_id": I1, "progress": "Hoàn thành rà soát diện tích" }],
        }),
    )
    .await; // 44

    let sequences: Vec<u64> = api.sent.iter().map(|s| s.sequence).collect();
    assert_eq!(
        sequences,
        (1..=44).collect::<Vec<u64>>(),
        "one commit per command, in order"
    );

    // ── project it ───────────────────────────────────────────────────────────────────────────
    let (_client, js) = jetstream(&nats).await;
    let head = stream_head(&js).await;
    assert_eq!(head, 44);
    let commits = all_commits(&open_store(&js).await, head).await;
    let recorded: BTreeMap<u64, DateTime<Utc>> = commits
        .iter()
        .map(|c| (c.sequence, c.events[0].time))
        .collect();
    let r = |sequence: u64| ts(recorded[&sequence]);

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 7)).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", head).await;

    // ── units, groups, plans ────────────────────────────────────────────────────────────────
    let unit = |id: &str, name: &str, kind: &str, registered: &str| {
        json!({
            "unit_id": id, "name": name, "kind": kind, "registered_at": registered,
            "succeeded_on": null, "successors": [], "succession_reason": null,
        })
    };
    let mut hh = unit(HH, HH_NAME, "district_committee", P0);
    hh["succeeded_on"] = json!("2025-07-01");
    hh["successors"] = json!([XA]);
    hh["succession_reason"] = json!("Không tổ chức chính quyền cấp huyện từ 01/7/2025");
    assert_rows(
        "units",
        &rows(
            &mut conn,
            "SELECT * FROM core.units",
            "unit_id COLLATE \"C\"",
        )
        .await,
        &[
            unit(NN, NN_NAME, "department", P0),
            unit(TC, TC_NAME, "department", P0),
            unit(YT, YT_RENAMED, "department", P0),
            hh,
            unit(NS, NS_NAME, "district_committee", P0),
            unit(
                XA,
                XA_NAME,
                "commune_committee",
                "2025-06-20T08:00:00+07:00",
            ),
        ],
    );
    assert_rows(
        "unit_groups",
        &rows(&mut conn, "SELECT * FROM core.unit_groups", "group_id").await,
        &[json!({ "group_id": GROUP, "name": GROUP_NAME })],
    );
    assert_rows(
        "group_members",
        &rows(
            &mut conn,
            "SELECT group_id, unit_id, valid_from, valid_until, removal_reason FROM core.group_members",
            "unit_id COLLATE \"C\"",
        )
        .await,
        &[
            json!({ "group_id": GROUP, "unit_id": HH, "valid_from": "2025-04-08",
                    "valid_until": null, "removal_reason": null }),
            json!({ "group_id": GROUP, "unit_id": NS, "valid_from": "2025-04-08",
                    "valid_until": "2025-05-01", "removal_reason": "Huyện không có nhiệm vụ liên quan" }),
        ],
    );
    assert_rows(
        "plans",
        &rows(&mut conn, "SELECT * FROM core.plans", "plan_id").await,
        &[json!({
            "plan_id": PLAN, "code": "63/KH-UBND", "title": PLAN_TITLE,
            "issuer": "UBND tỉnh Thanh Hóa", "issued_on": "2025-04-08",
            "legal_basis": LEGAL_BASIS, "reporting_rule": RULE_AMENDED,
        })],
    );

    // ── items, with the derived qualifier and the open assignments ──────────────────────────
    // The qualifier is the domain's rule: I1 judged at its completion, I2 (open, due
    // 2025-09-30) at now, which is long past.
    let i1_qualifier = deadline_qualifier(
        Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("date")),
        recorded[&37],
    );
    let i2_qualifier = deadline_qualifier(
        Some(chrono::NaiveDate::from_ymd_opt(2025, 9, 30).expect("date")),
        Utc::now(),
    );
    assert_rows(
        "items_overview",
        &rows(&mut conn, "SELECT * FROM core.items_overview", "ordinal").await,
        &[
            json!({
                "item_id": I1, "plan_id": PLAN, "ordinal": 1, "title": I1_TITLE,
                "sector": "Nông nghiệp", "causes_objective": "Thời tiết diễn biến phức tạp",
                "causes_subjective": "Công tác chỉ đạo chưa quyết liệt",
                "remedies": "Ứng dụng công nghệ cao trong sản xuất",
                "due_on": "2026-12-31", "status": "completed", "status_since": r(37),
                "completed_at": r(37), "deadline_qualifier": wire(&i1_qualifier),
                "leads": [NN], "coordinators": [GROUP],
            }),
            json!({
                "item_id": I2, "plan_id": PLAN, "ordinal": 2, "title": I2_TITLE,
                "sector": null, "causes_objective": null, "causes_subjective": null, "remedies": null,
                "due_on": "2025-09-30", "status": "suspended",
                "status_since": "2025-06-01T08:00:00+07:00", "completed_at": null,
                "deadline_qualifier": "overdue", "leads": [YT], "coordinators": [],
            }),
        ],
    );
    assert_eq!(wire(&i2_qualifier), json!("overdue"));

    // ── assignments with validity ───────────────────────────────────────────────────────────
    let assignment = |item: &str, role: &str, kind: &str, id: &str, seq: u64| {
        json!({
            "item_id": item, "role": role, "assignee_type": kind, "assignee_id": id,
            "valid_from": P0, "valid_until": null, "revoke_reason": null, "stream_sequence": seq,
        })
    };
    let mut revoked = assignment(I2, "coordinator", "unit", TC, 19);
    revoked["valid_until"] = json!("2025-08-01T08:00:00+07:00");
    revoked["revoke_reason"] = json!("Sở Tài chính chỉ tổng hợp báo cáo");
    let assignments = [
        assignment(I1, "lead", "unit", NN, 16),
        assignment(I1, "coordinator", "group", GROUP, 17),
        assignment(I2, "lead", "unit", YT, 18),
        revoked,
    ];
    assert_rows(
        "assignments",
        &rows(
            &mut conn,
            "SELECT * FROM core.assignments",
            "stream_sequence",
        )
        .await,
        &assignments,
    );

    // ── tasks ───────────────────────────────────────────────────────────────────────────────
    assert_rows(
        "tasks",
        &rows(
            &mut conn,
            "SELECT * FROM core.tasks",
            "task_id COLLATE \"C\"",
        )
        .await,
        &[
            json!({
                "task_id": T_HH, "item_id": I1, "unit_id": HH,
                "title": "Rà soát diện tích đất lúa chuyển đổi", "person_responsible": "Trần Văn Cường",
                "leader_in_charge": "Phó Chủ tịch UBND huyện", "due_on": "2025-06-30",
                "status": "not_started", "status_since": "2025-05-10T08:00:00+07:00",
                "evidence": null, "cancelled": false, "cancel_reason": null,
                "planned_at": "2025-05-10T08:00:00+07:00", "completed_at": null,
            }),
            json!({
                "task_id": T_NN, "item_id": I1, "unit_id": NN,
                "title": "Xây dựng 5 mô hình sản xuất nông nghiệp ứng dụng công nghệ cao",
                "person_responsible": "Nguyễn Văn An", "leader_in_charge": "Phó Giám đốc Lê Thị Bình",
                "due_on": "2027-03-31", "status": "completed", "status_since": r(31),
                "evidence": "Biên bản nghiệm thu số 12/BB-SNNMT", "cancelled": false,
                "cancel_reason": null, "planned_at": r(27), "completed_at": r(31),
            }),
            json!({
                "task_id": T_YT, "item_id": I2, "unit_id": YT, "title": "Nâng cấp trạm y tế xã",
                "person_responsible": "Phạm Thị Dung", "leader_in_charge": "Giám đốc Sở Y tế",
                "due_on": "2026-12-31", "status": "not_started", "status_since": r(33),
                "evidence": null, "cancelled": true,
                "cancel_reason": "Trùng với nhiệm vụ của đề án khác", "planned_at": r(33),
                "completed_at": null,
            }),
        ],
    );

    // ── reports and their lines ─────────────────────────────────────────────────────────────
    let q2_due = "2025-06-15T00:00:00+07:00";
    let q3_due = "2025-09-15T00:00:00+07:00";
    assert_rows(
        "reports",
        &rows(
            &mut conn,
            "SELECT * FROM core.reports",
            "report_id COLLATE \"C\"",
        )
        .await,
        &[
            json!({
                "report_id": report_id(NN, 2025, 2), "plan_id": PLAN, "unit_id": NN,
                "year": 2025, "quarter": 2, "due_at": q2_due, "status": "accepted",
                "first_submitted_at": "2025-06-10T16:00:00+07:00", "last_revised_at": r(40),
                "revisions": 1, "accepted_at": r(41), "returned_at": "2025-06-12T09:00:00+07:00",
                "return_reason": "Thiếu số liệu về diện tích",
            }),
            json!({
                "report_id": report_id(YT, 2025, 2), "plan_id": PLAN, "unit_id": YT,
                "year": 2025, "quarter": 2, "due_at": q2_due, "status": "accepted",
                "first_submitted_at": "2025-06-20T10:00:00+07:00", "last_revised_at": null,
                "revisions": 0, "accepted_at": "2025-06-21T10:00:00+07:00", "returned_at": null,
                "return_reason": null,
            }),
            json!({
                "report_id": report_id(XA, 2025, 3), "plan_id": PLAN, "unit_id": XA,
                "year": 2025, "quarter": 3, "due_at": q3_due, "status": "submitted",
                "first_submitted_at": r(44), "last_revised_at": null, "revisions": 0,
                "accepted_at": null, "returned_at": null, "return_reason": null,
            }),
        ],
    );
    let lines = [
        (
            report_id(NN, 2025, 2),
            I1,
            "Đã triển khai 3/5 mô hình trên 120 ha",
            json!("in_progress"),
        ),
        (
            report_id(YT, 2025, 2),
            I2,
            "Đang chờ bố trí kinh phí",
            json!("suspended"),
        ),
        (
            report_id(XA, 2025, 3),
            I1,
            "Hoàn thành rà soát diện tích",
            Value::Null,
        ),
    ];
    assert_rows(
        "report_lines",
        &rows(
            &mut conn,
            "SELECT * FROM core.report_lines",
            "report_id COLLATE \"C\", item_id",
        )
        .await,
        &lines
            .iter()
            .map(|(report, item, progress, status)| {
                json!({ "report_id": report, "item_id": item, "progress": progress,
                        "reported_status": status })
            })
            .collect::<Vec<_>>(),
    );

    // ── status history on both axes ─────────────────────────────────────────────────────────
    // (kind, id, status, previous, reason, evidence, effective from/until, recorded from/until,
    //  actor, sequence)
    struct H<'a> {
        kind: &'static str,
        id: &'static str,
        status: &'static str,
        previous: Option<&'static str>,
        reason: Option<&'static str>,
        evidence: Option<&'static str>,
        effective: (String, Option<String>),
        recorded: (String, Option<String>),
        actor: &'a Who,
        sequence: u64,
    }
    let (office, staff_nn, staff_yt) = (&office, &staff_nn, &staff_yt);
    let history = vec![
        H {
            kind: "item",
            id: I1,
            status: "not_started",
            previous: None,
            reason: None,
            evidence: None,
            effective: (P0.into(), Some(r(35))),
            recorded: (r(14), Some(r(35))),
            actor: office,
            sequence: 14,
        },
        H {
            kind: "item",
            id: I2,
            status: "not_started",
            previous: None,
            reason: None,
            evidence: None,
            effective: (P0.into(), Some("2025-05-01T08:00:00+07:00".into())),
            recorded: (r(15), Some(r(25))),
            actor: office,
            sequence: 15,
        },
        H {
            kind: "item",
            id: I2,
            status: "in_progress",
            previous: Some("not_started"),
            reason: Some("Bắt đầu triển khai"),
            evidence: None,
            effective: (
                "2025-05-01T08:00:00+07:00".into(),
                Some("2025-06-01T08:00:00+07:00".into()),
            ),
            recorded: (r(25), Some(r(26))),
            actor: office,
            sequence: 25,
        },
        H {
            kind: "item",
            id: I2,
            status: "suspended",
            previous: Some("in_progress"),
            reason: Some("Chờ bố trí kinh phí"),
            evidence: None,
            effective: ("2025-06-01T08:00:00+07:00".into(), None),
            recorded: (r(26), None),
            actor: office,
            sequence: 26,
        },
        H {
            kind: "task",
            id: T_NN,
            status: "not_started",
            previous: None,
            reason: None,
            evidence: None,
            effective: (r(27), Some(r(29))),
            recorded: (r(27), Some(r(29))),
            actor: staff_nn,
            sequence: 27,
        },
        H {
            kind: "task",
            id: T_NN,
            status: "in_progress",
            previous: Some("not_started"),
            reason: Some("Bắt đầu triển khai"),
            evidence: None,
            effective: (r(29), Some(r(30))),
            recorded: (r(29), Some(r(30))),
            actor: staff_nn,
            sequence: 29,
        },
        H {
            kind: "task",
            id: T_NN,
            status: "awaiting_confirmation",
            previous: Some("in_progress"),
            reason: Some("Đã hoàn thành 5 mô hình"),
            evidence: Some("Biên bản nghiệm thu số 12/BB-SNNMT"),
            effective: (r(30), Some(r(31))),
            recorded: (r(30), Some(r(31))),
            actor: staff_nn,
            sequence: 30,
        },
        H {
            kind: "task",
            id: T_NN,
            status: "completed",
            previous: Some("awaiting_confirmation"),
            reason: Some("Xác nhận hoàn thành"),
            evidence: None,
            effective: (r(31), None),
            recorded: (r(31), None),
            actor: office,
            sequence: 31,
        },
        H {
            kind: "task",
            id: T_HH,
            status: "not_started",
            previous: None,
            reason: None,
            evidence: None,
            effective: ("2025-05-10T08:00:00+07:00".into(), None),
            recorded: (r(32), None),
            actor: office,
            sequence: 32,
        },
        H {
            kind: "task",
            id: T_YT,
            status: "not_started",
            previous: None,
            reason: None,
            evidence: None,
            effective: (r(33), None),
            recorded: (r(33), None),
            actor: staff_yt,
            sequence: 33,
        },
        H {
            kind: "item",
            id: I1,
            status: "in_progress",
            previous: Some("not_started"),
            reason: Some("Triển khai kế hoạch chi tiết"),
            evidence: None,
            effective: (r(35), Some(r(36))),
            recorded: (r(35), Some(r(36))),
            actor: staff_nn,
            sequence: 35,
        },
        H {
            kind: "item",
            id: I1,
            status: "awaiting_confirmation",
            previous: Some("in_progress"),
            reason: Some("Đã hoàn thành các mô hình"),
            evidence: Some("Báo cáo kết quả số 45/BC-SNNMT"),
            effective: (r(36), Some(r(37))),
            recorded: (r(36), Some(r(37))),
            actor: staff_nn,
            sequence: 36,
        },
        H {
            kind: "item",
            id: I1,
            status: "completed",
            previous: Some("awaiting_confirmation"),
            reason: Some("Xác nhận hoàn thành"),
            evidence: None,
            effective: (r(37), None),
            recorded: (r(37), None),
            actor: office,
            sequence: 37,
        },
    ];
    let history_rows: Vec<Value> = history
        .iter()
        .map(|h| {
            json!({
                "aggregate_type": h.kind, "aggregate_id": h.id, "status": h.status,
                "previous_status": h.previous, "reason": h.reason, "evidence": h.evidence,
                "effective_from": h.effective.0, "effective_until": h.effective.1,
                "recorded_from": h.recorded.0, "recorded_until": h.recorded.1,
                "actor_user": h.actor.user, "actor_unit": h.actor.unit,
                "stream_sequence": h.sequence,
            })
        })
        .collect();
    let actual_history = rows(
        &mut conn,
        "SELECT * FROM core.status_history",
        "stream_sequence",
    )
    .await;
    assert_rows("status_history", &actual_history, &history_rows);
    // The intervals chain on both axes: per aggregate, each row ends where the next begins, and
    // only the last is open.
    let mut by_aggregate: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for row in &actual_history {
        by_aggregate
            .entry((
                row["aggregate_type"].to_string(),
                row["aggregate_id"].to_string(),
            ))
            .or_default()
            .push(row);
    }
    for (aggregate, chain) in &by_aggregate {
        for pair in chain.windows(2) {
            assert_eq!(
                pair[0]["effective_until"], pair[1]["effective_from"],
                "{aggregate:?}"
            );
            assert_eq!(
                pair[0]["recorded_until"], pair[1]["recorded_from"],
                "{aggregate:?}"
            );
            assert_eq!(
                pair[0]["status"], pair[1]["previous_status"],
                "{aggregate:?}"
            );
        }
        let last = chain.last().expect("a row");
        assert!(last["effective_until"].is_null() && last["recorded_until"].is_null());
    }
    // As-of on either axis: what was true on 2025-05-15, and what the system knew just before
    // it recorded the suspension.
    let as_of: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, status FROM core.status_history
         WHERE effective_from <= $1 AND (effective_until IS NULL OR $1 < effective_until)
           AND aggregate_type = 'item' ORDER BY aggregate_id",
    )
    .bind(at("2025-05-15T00:00:00+07:00"))
    .fetch_all(&mut conn)
    .await
    .expect("as of");
    assert_eq!(
        as_of,
        [
            (I1.to_owned(), "not_started".to_owned()),
            (I2.to_owned(), "in_progress".to_owned())
        ]
    );
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT status FROM core.status_history
         WHERE aggregate_id = $2 AND recorded_from <= $1 AND (recorded_until IS NULL OR $1 < recorded_until)",
    )
    .bind(recorded[&26] - chrono::Duration::microseconds(1))
    .bind(I2)
    .fetch_all(&mut conn)
    .await
    .expect("as known");
    assert_eq!(known, ["in_progress"]);

    // ── reporting compliance (now), quarter by quarter ──────────────────────────────────────
    // The compliance functions resolve their tables through the search path (see regressions::projection).
    let mut tx = sqlx::Connection::begin(&mut conn).await.expect("begin");
    sqlx::query("SET LOCAL search_path TO core")
        .execute(&mut *tx)
        .await
        .expect("search path");
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await
        .expect("now");
    let compliance = rows(
        &mut tx,
        "SELECT * FROM core.reporting_compliance",
        "year, quarter, unit_id COLLATE \"C\"",
    )
    .await;
    tx.rollback().await.expect("rollback");
    let row = |year: i32,
               quarter: u8,
               unit: &str,
               name: &str,
               first: Value,
               revised: Value,
               review: Value,
               compliance: &str| {
        json!({
            "plan_id": PLAN, "unit_id": unit, "unit_name": name, "year": year, "quarter": quarter,
            "due_at": ts(Quarter::new(year, quarter).expect("quarter").report_due()),
            "first_submitted_at": first, "last_revised_at": revised, "review_status": review,
            "compliance": compliance,
        })
    };
    let none = Value::Null;
    let mut expected = vec![
        row(
            2025,
            2,
            NN,
            NN_NAME,
            json!("2025-06-10T16:00:00+07:00"),
            json!(r(40)),
            json!("accepted"),
            "on_time",
        ),
        row(
            2025,
            2,
            TC,
            TC_NAME,
            none.clone(),
            none.clone(),
            none.clone(),
            "missing",
        ),
        row(
            2025,
            2,
            YT,
            YT_RENAMED,
            json!("2025-06-20T10:00:00+07:00"),
            none.clone(),
            json!("accepted"),
            "late",
        ),
        row(
            2025,
            2,
            HH,
            HH_NAME,
            none.clone(),
            none.clone(),
            none.clone(),
            "missing",
        ),
        row(
            2025,
            3,
            NN,
            NN_NAME,
            none.clone(),
            none.clone(),
            none.clone(),
            "missing",
        ),
        row(
            2025,
            3,
            YT,
            YT_RENAMED,
            none.clone(),
            none.clone(),
            none.clone(),
            "missing",
        ),
        row(
            2025,
            3,
            XA,
            XA_NAME,
            json!(r(44)),
            none.clone(),
            json!("submitted"),
            "late",
        ),
    ];
    // From Q4/2025 to the quarter of now: the lead units and the successor of the group member
    // owe a report, missing once due, pending before.
    let mut quarter = Quarter::new(2025, 4).expect("quarter");
    let current = Quarter::containing(now);
    while quarter <= current {
        let state = if now >= quarter.report_due() {
            "missing"
        } else {
            "pending"
        };
        for (unit, name) in [(NN, NN_NAME), (YT, YT_RENAMED), (XA, XA_NAME)] {
            expected.push(row(
                quarter.year,
                quarter.quarter,
                unit,
                name,
                none.clone(),
                none.clone(),
                none.clone(),
                state,
            ));
        }
        quarter = if quarter.quarter == 4 {
            Quarter::new(quarter.year + 1, 1).expect("quarter")
        } else {
            Quarter::new(quarter.year, quarter.quarter + 1).expect("quarter")
        };
    }
    assert_rows("reporting_compliance", &compliance, &expected);

    // ── analytics views: one row per fact, with names ──────────────────────────────────────
    let unit_names: BTreeMap<&str, &str> = [
        (TC, TC_NAME),
        (NN, NN_NAME),
        (YT, YT_RENAMED),
        (HH, HH_NAME),
        (NS, NS_NAME),
        (XA, XA_NAME),
    ]
    .into_iter()
    .collect();
    let task_of: BTreeMap<&str, (&str, &str)> =
        [(T_NN, (I1, NN)), (T_HH, (I1, HH)), (T_YT, (I2, YT))]
            .into_iter()
            .collect();
    let title_of = |item: &str| if item == I1 { I1_TITLE } else { I2_TITLE };
    let status_changes: Vec<Value> = history
        .iter()
        .map(|h| {
            let (item, task_unit) = if h.kind == "item" {
                (h.id, None)
            } else {
                let (item, unit) = task_of[h.id];
                (item, Some(unit))
            };
            json!({
                "aggregate_type": h.kind, "aggregate_id": h.id, "item_id": item,
                "item_title": title_of(item), "task_unit_id": task_unit,
                "task_unit_name": task_unit.map(|u| unit_names[u]),
                "previous_status": h.previous, "status": h.status, "reason": h.reason,
                "evidence": h.evidence, "changed_at": h.effective.0, "recorded_at": h.recorded.0,
                "actor_user": h.actor.user, "actor_unit": h.actor.unit,
                "actor_unit_name": h.actor.unit.as_deref().map(|u| unit_names[u]),
                "stream_sequence": h.sequence,
            })
        })
        .collect();
    assert_rows(
        "analytics_status_changes",
        &rows(
            &mut conn,
            "SELECT * FROM core.analytics_status_changes",
            "stream_sequence",
        )
        .await,
        &status_changes,
    );
    let report_row = |unit: &str,
                      quarter: u8,
                      first: String,
                      revised: Value,
                      revisions: i32,
                      review: &str,
                      timeliness: &str,
                      line: usize| {
        let (report, item, progress, status) = &lines[line];
        json!({
            "report_id": report, "plan_id": PLAN, "unit_id": unit, "unit_name": unit_names[unit],
            "year": 2025, "quarter": quarter,
            "due_at": if quarter == 2 { q2_due } else { q3_due },
            "first_submitted_at": first, "last_revised_at": revised, "revisions": revisions,
            "review_status": review, "timeliness": timeliness, "item_id": item,
            "item_ordinal": if *item == I1 { 1 } else { 2 }, "item_title": title_of(item),
            "progress": progress, "reported_status": status,
        })
    };
    assert_rows(
        "analytics_reports",
        &rows(
            &mut conn,
            "SELECT * FROM core.analytics_reports",
            "report_id COLLATE \"C\", item_id",
        )
        .await,
        &[
            report_row(
                NN,
                2,
                "2025-06-10T16:00:00+07:00".into(),
                json!(r(40)),
                1,
                "accepted",
                "on_time",
                0,
            ),
            report_row(
                YT,
                2,
                "2025-06-20T10:00:00+07:00".into(),
                Value::Null,
                0,
                "accepted",
                "late",
                1,
            ),
            report_row(XA, 3, r(44), Value::Null, 0, "submitted", "late", 2),
        ],
    );
    let assignment_rows: Vec<Value> = assignments
        .iter()
        .map(|a| {
            let item = a["item_id"].as_str().expect("item");
            let assignee = a["assignee_id"].as_str().expect("assignee");
            json!({
                "item_id": item, "item_ordinal": if item == I1 { 1 } else { 2 },
                "item_title": title_of(item), "role": a["role"], "assignee_type": a["assignee_type"],
                "assignee_id": assignee,
                "assignee_name": unit_names.get(assignee).copied().unwrap_or(GROUP_NAME),
                "valid_from": a["valid_from"], "valid_until": a["valid_until"],
                "revoke_reason": a["revoke_reason"],
            })
        })
        .collect();
    assert_rows(
        "analytics_assignments",
        &rows(
            &mut conn,
            "SELECT * FROM core.analytics_assignments",
            "item_id, role DESC, assignee_id",
        )
        .await,
        &assignment_rows,
    );

    // ── the audit log: every event, in stream order, with its whole envelope ───────────────
    let audit = rows(
        &mut conn,
        "SELECT * FROM audit.audit_log",
        "stream_sequence, position",
    )
    .await;
    let events: usize = commits.iter().map(|c| c.events.len()).sum();
    assert_eq!(audit.len(), events);
    assert_rows("audit_log", &audit, &audit_rows(&commits));
    // Reassembled, each stored envelope is the very one the stream holds, and hashes to its hash.
    let reassembled: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT ({})::text FROM audit.audit_log ORDER BY stream_sequence, position",
        readmodel::AUDIT_ENVELOPE
    )))
    .fetch_all(&mut conn)
    .await
    .expect("reassembled envelopes");
    let sent: Vec<Value> = commits
        .iter()
        .flat_map(|c| &c.events)
        .map(|e| serde_json::to_value(e).expect("envelope"))
        .collect();
    assert_eq!(reassembled.len(), sent.len());
    for (text, envelope) in reassembled.iter().zip(&sent) {
        let value: Value = serde_json::from_str(text).expect("jsonb text");
        assert_eq!(&value, envelope);
        assert_eq!(
            event_store::envelope_hash(&value),
            envelope["hash"].as_str().expect("hash"),
            "the reassembled envelope hashes to its hash"
        );
    }
    // …and it says what the test did: who, which command, effective when.
    for (row, sent) in audit.iter().zip(&api.sent) {
        assert_eq!(row["stream_sequence"], json!(sent.sequence));
        assert_eq!(row["command_name"], json!(sent.command));
        assert_eq!(row["actor_user"], json!(sent.user));
        assert_eq!(row["actor_role"], json!(sent.role.as_str()));
        assert_eq!(row["actor_unit"], json!(sent.unit));
        let effective = sent.effective.unwrap_or(recorded[&sent.sequence]);
        assert_eq!(
            row["effective_at"],
            json!(ts(effective)),
            "{}",
            sent.command
        );
        assert_eq!(row["recorded_at"], json!(r(sent.sequence)));
    }

    // ── checkpoints and readiness ───────────────────────────────────────────────────────────
    for schema in ["core", "audit"] {
        let checkpoints = rows(
            &mut conn,
            &format!(
                "SELECT projection, last_sequence, last_recorded_at FROM {schema}.checkpoints"
            ),
            "projection",
        )
        .await;
        assert_rows(
            "checkpoints",
            &checkpoints,
            &[json!({ "projection": schema, "last_sequence": head, "last_recorded_at": r(head) })],
        );
    }
    let (status, ready) = get(&format!("{}/readyz", projector.url)).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["projections"]["core"]["checkpoint"], json!(head));
    assert_eq!(ready["projections"]["audit"]["checkpoint"], json!(head));

    projector.stop().await;
    service.shutdown().await;
}

/// The audit rows the stream's commits call for.
pub fn audit_rows(commits: &[Commit]) -> Vec<Value> {
    commits
        .iter()
        .flat_map(|commit| {
            commit.events.iter().enumerate().map(move |(position, e)| {
                json!({
                    "stream_sequence": commit.sequence, "position": position, "event_id": e.id,
                    "event_type": e.event_type, "aggregate_type": e.aggregatetype,
                    "aggregate_id": e.aggregateid, "recorded_at": ts(e.time),
                    "effective_at": ts(e.effectivetime), "actor_user": e.actoruser,
                    "actor_unit": e.actorunit, "actor_role": e.actorrole,
                    "correlation_id": e.correlationid, "causation_id": e.causationid,
                    "command_id": e.commandid, "command_name": e.commandname, "payload": e.data,
                    "envelope": without_data(serde_json::to_value(e).expect("envelope")),
                })
            })
        })
        .collect()
}

/// An envelope as the audit table stores it: its data is stored once, as the payload.
fn without_data(mut envelope: Value) -> Value {
    if let Some(members) = envelope.as_object_mut() {
        members.remove("data");
    }
    envelope
}
