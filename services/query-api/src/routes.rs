//! The route table: every endpoint once, with who may call it, what it reads, the parameters it
//! takes and the shape of its answer. The router ([`router`]) and the OpenAPI document
//! ([`crate::openapi::document`]) are both built from it, so neither can drift from the other,
//! and a route cannot be served without its access rule.

use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use readmodel::Projection;
use schemars::{Schema, SchemaGenerator};
use serde_json::json;
use service_kit::auth::Authenticated;
use service_kit::problem::problem_response;

use crate::access::{
    ANALYTICS_READERS, AUDIT_READERS, AUDITORS, Access, Caller, EVERYONE, STAFF_AND_OVERSIGHT,
};
use crate::consistency::{self, Consistency};
use crate::error::QueryError;
use crate::openapi;
use crate::params::{Param, Params};
use crate::state::AppState;
use crate::views::exports::{self, ANALYTICS, COMPILATION_FORMATS, EXPORT_PARAMS, XLSX};
use crate::views::{
    as_of, audit, compliance, deadlines, health, item, me, overview, scorecard, verify,
};

/// What a route answers with, for the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// JSON described by a Rust type's schema.
    Json(fn(&mut SchemaGenerator) -> Schema),
    /// Another media type, not described further.
    Other(&'static str),
    /// A file download in one of these media types (the `format` parameter chooses).
    Files(&'static [&'static str]),
}

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub access: Access,
    /// The projections the answer comes from: what `min_sequence` waits for.
    pub reads: &'static [Projection],
    /// Path parameters (all identifiers, strings).
    pub path_params: &'static [Param],
    pub query_params: &'static [Param],
    /// Whether the route answers 404 for an unknown identifier in its path.
    pub finds: bool,
    /// Whether some callers that pass the role check may still be refused (403) by the data.
    pub scoped: bool,
    /// Whether the answer hands out the audit trail and is therefore recorded as an
    /// `access.audit_read` event first (503 read-not-recorded when it cannot be).
    pub records_read: bool,
    pub body: Body,
    pub handler: fn() -> MethodRouter<AppState>,
}

const CORE: &[Projection] = &[Projection::Core];
const AUDIT: &[Projection] = &[Projection::Audit];

const PLAN_ID: Param = Param::text("plan_id", "Plan identifier, e.g. kh-63-2025");
const ITEM_ID: Param = Param::text("item_id", "Item identifier, e.g. kh-63-2025-01");
const UNIT_ID: Param = Param::text("unit_id", "Unit identifier, e.g. so-tai-chinh");
const YEAR: Param = Param::integer(
    "year",
    2000,
    2100,
    "Year of the quarter (default: this year)",
);
const QUARTER: Param = Param::integer(
    "quarter",
    1,
    4,
    "Quarter 1–4 (default: the current quarter's number)",
);
const AT: Param = Param::instant(
    "at",
    "The instant T (RFC 3339; default: now); send + as %2B",
);
const AXIS: Param = Param::choice(
    "axis",
    AXES,
    "recorded (default): what the system knew at T; effective: what was true at T, counting backdated facts recorded later",
);
const AXES: &[&str] = &["recorded", "effective"];
const CSV: &str = "text/csv; charset=utf-8";
const EXPORT_FILES: &[&str] = &["application/x-ndjson", CSV];

/// Every route the service serves.
pub static ROUTES: &[Route] = &[
    Route {
        path: "/v1/plans/{plan_id}/overview",
        operation_id: "plan_overview",
        tag: "dashboards",
        summary: "A plan, its items with status, deadline qualifier, leads and coordinators, and counts",
        description: "Items in plan order. The deadline qualifier of a completed item is judged at its completion (completed late shows `overdue`); of open work, now. Leads and coordinators are the assignments in force now, as the plan names them (units or groups).",
        access: Access::Roles(EVERYONE),
        reads: CORE,
        path_params: &[PLAN_ID],
        query_params: &[],
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<overview::PlanOverview>()),
        handler: || get(overview::handler),
    },
    Route {
        path: "/v1/items/{item_id}",
        operation_id: "item_detail",
        tag: "dashboards",
        summary: "An item: assignments over time, responsible units, tasks, latest report lines per unit, status history on both time axes",
        description: "Unit staff see the tasks and report lines of the units they act for only; viewers see neither (`tasks` and `report_lines` are absent and `visibility` is `public`).",
        access: Access::Roles(EVERYONE),
        reads: CORE,
        path_params: &[ITEM_ID],
        query_params: &[],
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<item::ItemDetail>()),
        handler: || get(item::handler),
    },
    Route {
        path: "/v1/units/{unit_id}/scorecard",
        operation_id: "unit_scorecard",
        tag: "dashboards",
        summary: "A unit's items, tasks, overdue work and quarterly reporting compliance",
        description: "Unit staff may read the scorecard of their own unit (or of a unit it succeeded) only. Overdue work: items the unit leads and tasks it holds that are neither completed nor cancelled and past their deadline.",
        access: Access::Roles(STAFF_AND_OVERSIGHT),
        reads: CORE,
        path_params: &[UNIT_ID],
        query_params: &[],
        finds: true,
        scoped: true,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<scorecard::Scorecard>()),
        handler: || get(scorecard::handler),
    },
    Route {
        path: "/v1/plans/{plan_id}/compliance",
        operation_id: "plan_compliance",
        tag: "dashboards",
        summary: "The Department of Finance's reporting matrix for one quarter",
        description: "Every unit that owed the plan a report for the quarter (responsible for one of its items at the report's due instant, or now if that is earlier): on_time, late, missing or pending, first submission, last revision, review status; and totals. A part left out is the current quarter's: neither gives the current quarter.",
        access: Access::Roles(EVERYONE),
        reads: CORE,
        path_params: &[PLAN_ID],
        query_params: &[YEAR, QUARTER],
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<compliance::ComplianceMatrix>()),
        handler: || get(compliance::handler),
    },
    Route {
        path: "/v1/overdue",
        operation_id: "overdue",
        tag: "dashboards",
        summary: "Items and tasks past their deadline, neither completed nor cancelled",
        description: "Work due on a date may be done until the end of that local (Asia/Ho_Chi_Minh) day.",
        access: Access::Roles(EVERYONE),
        reads: CORE,
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<deadlines::DeadlineList>()),
        handler: || get(deadlines::overdue),
    },
    Route {
        path: "/v1/due-soon",
        operation_id: "due_soon",
        tag: "dashboards",
        summary: "Items and tasks with three days or less left, neither completed nor cancelled",
        description: "Sắp quá hạn: the end of the due date's local day is at most three days away.",
        access: Access::Roles(EVERYONE),
        reads: CORE,
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<deadlines::DeadlineList>()),
        handler: || get(deadlines::due_soon),
    },
    Route {
        path: "/v1/audit",
        operation_id: "audit_trail",
        tag: "audit",
        summary: "The audit trail: every event with its full CloudEvents envelope, and every quarantined message, in stream order",
        description: "Filters combine with AND; time ranges are half-open [from, to). Pages follow (stream_sequence, position); pass `next_cursor` back as `cursor` with the same filters for the next page (null: no more entries now). A message an auditor set aside with a quarantine decision (it broke the record: no commit of this product, or an event outside its aggregate's hash chain) is an entry at its own stream position with `envelope` null and `quarantined`: subject, digest, size, when JetStream stored it, the payload (text, or base64), the reason, who decided, and the stream sequence of the decision (a `quarantine.message_quarantined` event, itself in the trail); it matches no aggregate, unit, actor, event type or effective-time filter, matches recorded_from/recorded_to by when it was stored, and `quarantined=true` lists only such entries. Every page is recorded as an `access.audit_read` event (the reader, this request's path and query string, the number of entries) before it is answered; `read_sequence` is its stream sequence. Recorded reads are in the trail like any other event: `event_type=vn.gov.thanhhoa.remediation.access.audit_read.v1`.",
        access: Access::Roles(AUDIT_READERS),
        reads: AUDIT,
        path_params: &[],
        query_params: &[
            Param::text(
                "aggregate_type",
                "unit, group, plan, item, task, report, ledger, access or quarantine",
            ),
            Param::text("aggregate_id", "The aggregate's identifier"),
            Param::text("unit", "The acting user's unit (actorunit)"),
            Param::text("actor", "The acting user (actoruser)"),
            Param::text(
                "event_type",
                "Full CloudEvents type, e.g. vn.gov.thanhhoa.remediation.item.assigned.v1",
            ),
            Param::instant("recorded_from", "Recorded at or after this instant"),
            Param::instant("recorded_to", "Recorded before this instant"),
            Param::instant("effective_from", "Effective at or after this instant"),
            Param::instant("effective_to", "Effective before this instant"),
            Param::choice(
                "quarantined",
                &["true", "false"],
                "true: only messages set aside by quarantine decisions; false: only events",
            ),
            Param::opaque("cursor", "The next_cursor of the previous page"),
            Param::integer("limit", 1, 1000, "Entries per page (default 100)"),
        ],
        finds: false,
        scoped: false,
        records_read: true,
        body: Body::Json(|g| g.subschema_for::<audit::AuditPage>()),
        handler: || get(audit::handler),
    },
    Route {
        path: "/v1/audit/verify",
        operation_id: "audit_verify",
        tag: "audit",
        summary: "Tamper check: every hash chain in the stream, and the audit table against the stream",
        description: "Walks the whole stream (every event's hash and its link to the previous event of its aggregate), then the audit table (each row's envelope, with its payload as its data, against its hash, its chain, its hash against the stream's) and counts its rows against the stream's events up to its last row. `status` is `ok` with the counts and the digest over all chain heads; `signed_off` when the only breaks are messages an auditor set aside with quarantine decisions that hold (each listed in `quarantined`: sequence, subject, digest, problem, reason, who decided, decision sequence; they are in no count or chain, and the audit table's record of them is checked too, `audit_quarantined`); or `broken` with the first broken link that is not signed off: place (stream or audit_table), stream sequence, aggregate and reason. Walks everything: it takes as long as the stream is long, one verification at a time.",
        access: Access::Roles(AUDITORS),
        reads: AUDIT,
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: true,
        body: Body::Json(|g| g.subschema_for::<verify::AuditVerification>()),
        handler: || get(verify::handler),
    },
    Route {
        path: "/v1/exports/events",
        operation_id: "export_events",
        tag: "exports",
        summary: "Export the audit trail: every event with its envelope, recorded in [from, to), as NDJSON or CSV",
        description: "Streamed row by row in stream order (one envelope per NDJSON line; CSV columns stream_sequence, envelope, UTF-8 with a byte-order mark). `to` is capped at the moment of the request, so the export is the trail as it stood then. The export is recorded as a read of the audit trail before the first byte (`X-Audit-Read-Sequence`: the stream sequence of that record). An error halfway aborts the transfer rather than ending it cleanly.",
        access: Access::Roles(AUDIT_READERS),
        reads: AUDIT,
        path_params: &[],
        query_params: EXPORT_PARAMS,
        finds: false,
        scoped: false,
        records_read: true,
        body: Body::Files(EXPORT_FILES),
        handler: || get(exports::events),
    },
    Route {
        path: "/v1/exports/{dataset}",
        operation_id: "export_dataset",
        tag: "exports",
        summary: "Export an analytics view in [from, to) as NDJSON or CSV",
        description: "status-changes (analytics_status_changes, by the change's effective time), reports (analytics_reports, one row per report line, by first submission), assignments (analytics_assignments, by start of validity), compliance (reporting_compliance, by due instant). Streamed row by row (CSV: UTF-8 with a byte-order mark and a header row). An error halfway aborts the transfer rather than ending it cleanly.",
        access: Access::Roles(ANALYTICS_READERS),
        reads: CORE,
        path_params: &[Param::choice(
            "dataset",
            ANALYTICS,
            "The analytics view to export",
        )],
        query_params: EXPORT_PARAMS,
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Files(EXPORT_FILES),
        handler: || get(exports::dataset),
    },
    Route {
        path: "/v1/plans/{plan_id}/compilation",
        operation_id: "plan_compilation",
        tag: "exports",
        summary: "The Department of Finance's quarterly compilation (tổng hợp) as XLSX or CSV",
        description: "One row per item × lead unit: lifecycle status, deadline qualifier, the progress text of the unit's report for the quarter, report on time / late / missing; Vietnamese column headers, dates as dd/mm/yyyy. A part left out is the current quarter's: neither gives the current quarter. XLSX by default; CSV is UTF-8 with a byte-order mark.",
        access: Access::Roles(ANALYTICS_READERS),
        reads: CORE,
        path_params: &[PLAN_ID],
        query_params: &[
            YEAR,
            QUARTER,
            Param::choice("format", COMPILATION_FORMATS, "xlsx (default) or csv"),
        ],
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Files(&[XLSX, CSV]),
        handler: || get(exports::compilation),
    },
    Route {
        path: "/v1/as-of/plan",
        operation_id: "as_of_plan",
        tag: "time travel",
        summary: "The whole plan as of an instant, on either clock",
        description: "Plans, items (status, deadline, deadline qualifier at T, leads and coordinators at T after groups and succession), assignments valid at T, tasks, reports and reporting compliance as seen at T — folded from the audit log with the domain's own evolve, from the nearest stored snapshot. `log.head_sequence` is the last stream sequence the fold read. Unit staff see the tasks of the units they act for only; viewers see none (`tasks` is empty and `visibility` is `public`).",
        access: Access::Roles(EVERYONE),
        reads: AUDIT,
        path_params: &[],
        query_params: &[AT, AXIS],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<as_of::Visible<time_travel::PlanView>>()),
        handler: || get(as_of::plan),
    },
    Route {
        path: "/v1/as-of/items/{item_id}",
        operation_id: "as_of_item",
        tag: "time travel",
        summary: "One item as of an instant: status, deadline qualifier, every assignment known then, tasks and report lines",
        description: "404 when the item did not exist (yet) at T on that axis. Unit staff see the tasks and report lines of the units they act for only; viewers see neither (empty lists, `visibility` is `public`).",
        access: Access::Roles(EVERYONE),
        reads: AUDIT,
        path_params: &[ITEM_ID],
        query_params: &[AT, AXIS],
        finds: true,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<as_of::Visible<time_travel::ItemView>>()),
        handler: || get(as_of::item),
    },
    Route {
        path: "/v1/as-of/units/{unit_id}",
        operation_id: "as_of_unit",
        tag: "time travel",
        summary: "One unit as of an instant: succession, groups, the items it answered for, its tasks, reports and compliance",
        description: "404 when the unit was not registered (yet) at T on that axis. Unit staff may read the units they act for now only.",
        access: Access::Roles(STAFF_AND_OVERSIGHT),
        reads: AUDIT,
        path_params: &[UNIT_ID],
        query_params: &[AT, AXIS],
        finds: true,
        scoped: true,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<time_travel::UnitView>()),
        handler: || get(as_of::unit),
    },
    Route {
        path: "/v1/as-of/diff",
        operation_id: "as_of_diff",
        tag: "time travel",
        summary: "What changed between two instants on one clock, when, and by whom",
        description: "`changes`: every row of the plan view added, removed or changed (field by field) between the state at `from` and at `to`; `events`: the events whose time on the axis lies in (from, to], in the axis's order, with actor and both times (at most `limit`; `events_total` counts them all). It lists who did what, so it is recorded as an `access.audit_read` event before it is answered (`read_sequence`).",
        access: Access::Roles(AUDIT_READERS),
        reads: AUDIT,
        path_params: &[],
        query_params: &[
            Param::instant("from", "The earlier instant").required(),
            Param::instant("to", "The later instant (default: now)"),
            AXIS,
            Param::integer(
                "limit",
                1,
                as_of::MAX_EVENT_LIMIT,
                "Events listed (default 100)",
            ),
        ],
        finds: false,
        scoped: false,
        records_read: true,
        body: Body::Json(|g| g.subschema_for::<as_of::RecordedDiff>()),
        handler: || get(as_of::diff),
    },
    Route {
        path: "/v1/me",
        operation_id: "me",
        tag: "identity",
        summary: "Who the bearer token says the caller is: user, unit, every role held (the primary first), expiry",
        description: "A caller holding several roles (an officer of the Department of Finance is also staff of its unit) may read whatever any of its roles may: route access and the visibility of units' internal work are the union of the roles'.",
        access: Access::Roles(EVERYONE),
        reads: &[],
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<service_kit::auth::Me>()),
        handler: || get(me::handler),
    },
    Route {
        path: "/healthz",
        operation_id: "healthz",
        tag: "operations",
        summary: "Liveness",
        description: "The process answers.",
        access: Access::Public,
        reads: &[],
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<health::Health>()),
        handler: || get(health::healthz),
    },
    Route {
        path: "/readyz",
        operation_id: "readyz",
        tag: "operations",
        summary: "Readiness: the read model answers, no projection has stopped, none lags the stream beyond the bounds",
        description: "Each projection's checkpoint, the age of its newest applied event, its recorded stop (the projector records a stop next to the checkpoint), and its lag: commits in the stream not applied yet, and how long the oldest of them has waited. 503 not-ready when a projection stopped on a commit it must not skip or lags beyond READY_MAX_LAG_EVENTS commits or READY_MAX_LAG_SECS seconds (the problem carries the same members as this answer, each projection with `ready` and `reason`); 503 database-unavailable when the database or a projection schema is unreachable. The stream's head is asked of NATS for at most 500 ms; without an answer the last head seen judges the lag (`stream.current` is false; the lags are lower bounds), and before NATS has answered once the lag is unknown (null) and only stops count: dashboards do not depend on NATS.",
        access: Access::Public,
        reads: &[],
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Json(|g| g.subschema_for::<health::Readiness>()),
        handler: || get(health::readyz),
    },
    Route {
        path: "/metrics",
        operation_id: "metrics",
        tag: "operations",
        summary: "Prometheus metrics (OpenMetrics text)",
        description: "kh63_query_requests_total{endpoint,status}, kh63_query_query_duration_seconds{endpoint}, kh63_query_consistency_wait_seconds, kh63_query_projection_behind_total{projection}.",
        access: Access::Public,
        reads: &[],
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Other("application/openmetrics-text"),
        handler: || get(health::metrics),
    },
    Route {
        path: "/openapi.json",
        operation_id: "openapi",
        tag: "operations",
        summary: "This document (OpenAPI 3.1)",
        description: "Generated from the route table the router is built from.",
        access: Access::Public,
        reads: &[],
        path_params: &[],
        query_params: &[],
        finds: false,
        scoped: false,
        records_read: false,
        body: Body::Other("application/json"),
        handler: || get(|| async { Json(openapi::document()) }),
    },
];

/// Authenticates and authorises, checks the query string, waits for `min_sequence`, then runs
/// the handler; counts every answer and times the handler.
async fn guard(
    State((state, route)): State<(AppState, &'static Route)>,
    request: Request,
    next: Next,
) -> Response {
    let response = match admit(&state, route, request).await {
        Ok(request) => {
            let started = Instant::now();
            let response = next.run(request).await;
            if !route.reads.is_empty() {
                state
                    .metrics
                    .query_took(route.operation_id, started.elapsed());
            }
            response
        }
        Err(error) => error.into_response(),
    };
    state
        .metrics
        .request(route.operation_id, response.status().as_u16());
    response
}

async fn admit(
    state: &AppState,
    route: &'static Route,
    request: Request,
) -> Result<Request, QueryError> {
    let Access::Roles(_) = route.access else {
        return Ok(request);
    };
    let (mut parts, body) = request.into_parts();
    let authenticated = Authenticated::from_request_parts(&mut parts, state).await?;
    if !route.access.allows(&authenticated.principal) {
        let roles: Vec<&str> = (authenticated.principal.roles().iter())
            .map(|r| r.as_str())
            .collect();
        return Err(QueryError::Forbidden(format!(
            "role {} may not read {}",
            roles.join(", "),
            route.operation_id
        )));
    }
    // Only a route that reads the read model can wait for it (and documents that it does).
    let consistency_params = if route.reads.is_empty() {
        &[][..]
    } else {
        consistency::PARAMS
    };
    let params = Params::parse(&parts.uri, &[route.query_params, consistency_params])?;
    if let Some(wanted) = Consistency::from_params(&params)? {
        consistency::wait_for(state, route.reads, wanted).await?;
    }
    parts.extensions.insert(Caller(authenticated));
    parts.extensions.insert(params);
    Ok(Request::from_parts(parts, body))
}

/// Answers (and counts) requests that matched no route.
async fn unmatched(State(state): State<AppState>) -> Response {
    state
        .metrics
        .request("unmatched", StatusCode::NOT_FOUND.as_u16());
    QueryError::NotFound("no such endpoint".to_owned()).into_response()
}

/// The full router: the API of the route table and the dashboard that reads it.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        router = router.route(
            route.path,
            (route.handler)().route_layer(from_fn_with_state((state.clone(), route), guard)),
        );
    }
    router
        .merge(crate::dashboard::router())
        .fallback(unmatched)
        .method_not_allowed_fallback(|| async {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({
                    "type": "urn:kh63:problem:method-not-allowed",
                    "title": "Method not allowed",
                    "status": 405,
                    "detail": "every endpoint of the query service is GET",
                }),
            )
        })
        .with_state(state)
}
