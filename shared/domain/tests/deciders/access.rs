//! The access log (nhật ký truy cập): reads of the audit trail.

use super::*;

/// The local date of `NOW`.
pub(crate) const TODAY: &str = "2025-07-15";
pub(crate) const AUDIT_QUERY: &str = "GET /v1/audit?aggregate_id=kh-63-2025-01&limit=50";

fn access_ref(day: &str) -> AggregateRef {
    AggregateRef::Access(AccessDay::parse(day).expect("a day"))
}

fn record_read(day: &str, query: &str, results: u32) -> Command {
    Command::RecordAuditRead(RecordAuditRead {
        day: AccessDay::parse(day).expect("a day"),
        query: ReadQuery::new(query).expect("a query"),
        results,
    })
}

fn audit_read(query: &str, results: u32, at: &str) -> Event {
    Event::Access(AccessEvent::AuditRead {
        query: ReadQuery::new(query).expect("a query"),
        results,
        at: instant(at),
    })
}

#[test]
fn a_read_of_the_audit_trail_is_recorded_with_what_was_asked_and_when() {
    Spec::given(access_ref(TODAY), &[])
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then(&[audit_read(AUDIT_QUERY, 12, NOW)]);
    // The province office reads the audit trail too.
    Spec::given(access_ref(TODAY), &[])
        .when(record_read(TODAY, AUDIT_QUERY, 0))
        .then(&[audit_read(AUDIT_QUERY, 0, NOW)]);
}

#[test]
fn the_same_read_again_is_recorded_again_because_every_read_is_a_fact() {
    let history = Spec::given(access_ref(TODAY), &[])
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .history();
    let history = Spec::given(access_ref(TODAY), &history)
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then(&[audit_read(AUDIT_QUERY, 12, NOW)]);
    assert_eq!(history.len(), 2);
    match fold(&access_ref(TODAY), &history) {
        AggregateState::Access(Some(log)) => {
            assert_eq!(log.reads, 2);
            assert_eq!(log.last_read_at, instant(NOW));
        }
        other => panic!("expected the day's log, got {other:?}"),
    }
}

#[test]
fn only_those_who_may_read_the_audit_trail_record_reads_of_it() {
    for actor in [finance(), staff(XAY_DUNG), viewer()] {
        Spec::given(access_ref(TODAY), &[])
            .as_actor(actor)
            .when(record_read(TODAY, AUDIT_QUERY, 12))
            .then_forbidden();
    }
}

#[test]
fn a_read_goes_into_the_log_of_the_local_day_it_is_recorded_on() {
    // 23:59:59 local time still belongs to the 14th; midnight local time is the 15th, while UTC
    // is still on the 14th.
    Spec::given(access_ref("2025-07-14"), &[])
        .as_actor(auditor())
        .at("2025-07-14T23:59:59+07:00")
        .when(record_read("2025-07-14", AUDIT_QUERY, 1))
        .then(&[audit_read(AUDIT_QUERY, 1, "2025-07-14T23:59:59+07:00")]);
    Spec::given(access_ref("2025-07-14"), &[])
        .as_actor(auditor())
        .at("2025-07-15T00:00:00+07:00")
        .when(record_read("2025-07-14", AUDIT_QUERY, 1))
        .then_rejected(Rule::WrongAccessDay);
    Spec::given(access_ref("2025-07-16"), &[])
        .as_actor(auditor())
        .when(record_read("2025-07-16", AUDIT_QUERY, 1))
        .then_rejected(Rule::WrongAccessDay);
}

#[test]
fn a_read_cannot_be_backdated_even_by_the_province_office() {
    Spec::given(access_ref(TODAY), &[])
        .effective_at("2025-07-15T08:00:00+07:00")
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then_forbidden();
}

#[test]
fn a_read_names_its_day_as_yyyy_mm_dd_and_what_was_read() {
    let spec = spec_named("record-audit-read");
    for (body, path) in [
        (
            json!({ "day": "2025-7-15", "query": AUDIT_QUERY, "results": 1 }),
            "day",
        ),
        (
            json!({ "day": "2025-02-30", "query": AUDIT_QUERY, "results": 1 }),
            "day",
        ),
        (
            json!({ "day": TODAY, "query": "  ", "results": 1 }),
            "query",
        ),
        (
            json!({ "day": TODAY, "query": "x".repeat(2001), "results": 1 }),
            "query",
        ),
        (
            json!({ "day": TODAY, "query": AUDIT_QUERY, "results": -1 }),
            "results",
        ),
    ] {
        let error = parse(spec.name, &body).expect_err("refused");
        assert_eq!(error.path, path, "{body}: {error}");
    }
    let command = parse(
        spec.name,
        &json!({ "day": TODAY, "query": AUDIT_QUERY, "results": 3 }),
    )
    .expect("parses");
    assert_eq!(command.target(), access_ref(TODAY));
    assert_eq!(command.target().id(), TODAY);
}
