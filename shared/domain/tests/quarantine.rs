//! The quarantine decider (cách ly), given / when / then: **given** the decision's history,
//! **when** a `quarantine-message` command is decided by someone, **then** these events, this
//! rejection, or nothing.

use std::num::NonZeroU64;

use chrono::{DateTime, Utc};
use remediation_domain::quarantine::{QuarantineEvent, QuarantineId, QuarantineMessage};
use remediation_domain::text::{Reason, Text, UnitId};
use remediation_domain::{
    Actor, AggregateRef, AggregateState, COMMANDS, Command, CommandSpec, Context, Event, Facts,
    Rejection, Role, Rule,
};
use serde_json::{Value, json};

const NOW: &str = "2025-07-15T09:00:00+07:00";
const SEQUENCE: u64 = 187;
const SUBJECT: &str = "events.unit.so-y-te";
const DIGEST: &str = "9f2c4e1a7b3d5f60817293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
const OTHER_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const REASON: &str = "Sự kiện đổi tên đơn vị công bố thẳng vào luồng, không thuộc chuỗi băm";

fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn actor(role: Role) -> Actor {
    Actor {
        user: format!("{}@thanhhoa.gov.vn", role.as_str()),
        unit: (role == Role::UnitStaff).then(|| UnitId::new("so-y-te").expect("unit id")),
        role,
    }
}

fn decision(digest: &str, reason: &str) -> QuarantineMessage {
    QuarantineMessage {
        sequence: NonZeroU64::new(SEQUENCE).expect("non-zero"),
        subject: Text::new(SUBJECT).expect("subject"),
        digest: digest.to_owned(),
        size: 412,
        reason: Reason::new(reason).expect("reason"),
    }
}

fn quarantined(decision: QuarantineMessage) -> Event {
    Event::Quarantine(QuarantineEvent::MessageQuarantined(decision))
}

fn target() -> AggregateRef {
    AggregateRef::Quarantine(QuarantineId::of(
        NonZeroU64::new(SEQUENCE).expect("non-zero"),
    ))
}

fn spec() -> &'static CommandSpec {
    COMMANDS
        .iter()
        .find(|spec| spec.name == "quarantine-message")
        .expect("the command is listed")
}

/// Given `history`, `who` decides `command` now (or backdated to `effective`).
fn decide(
    history: &[Event],
    who: Role,
    command: QuarantineMessage,
    effective: Option<&str>,
) -> Result<Vec<Event>, Rejection> {
    let command = Command::QuarantineMessage(command);
    assert_eq!(command.target(), target());
    let state = history
        .iter()
        .fold(AggregateState::initial(&target()), |state, event| {
            state.evolve(event)
        });
    let actor = actor(who);
    let now = instant(NOW);
    let context = Context {
        actor: &actor,
        now,
        effective_at: effective.map_or(now, instant),
        facts: &Facts::default(),
    };
    command.decide(&state, &context)
}

/// The decision read from its JSON form, naming the path of a field that breaks a rule.
fn parse(body: &[u8]) -> Result<Command, serde_path_to_error::Error<serde_json::Error>> {
    let value: Value = serde_json::from_slice(body).expect("JSON");
    serde_path_to_error::deserialize::<_, QuarantineMessage>(value).map(Command::QuarantineMessage)
}

fn body(reason: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "sequence": SEQUENCE, "subject": SUBJECT, "digest": DIGEST, "size": 412, "reason": reason
    }))
    .expect("JSON")
}

#[test]
fn an_auditor_quarantines_a_message_naming_its_subject_digest_size_and_why() {
    assert_eq!(
        decide(&[], Role::Auditor, decision(DIGEST, REASON), None),
        Ok(vec![quarantined(decision(DIGEST, REASON))])
    );
    let parsed = parse(&body(json!(REASON))).expect("the body parses");
    assert_eq!(parsed, Command::QuarantineMessage(decision(DIGEST, REASON)));
    assert_eq!(target().kind(), "quarantine");
    assert_eq!(target().id(), "187");
}

#[test]
fn nobody_but_an_auditor_may_quarantine() {
    for role in [
        Role::ProvinceOffice,
        Role::DepartmentOfFinance,
        Role::UnitStaff,
        Role::Viewer,
    ] {
        let outcome = decide(&[], role, decision(DIGEST, REASON), None);
        assert!(
            matches!(outcome, Err(Rejection::Forbidden(_))),
            "{role:?}: {outcome:?}"
        );
    }
}

#[test]
fn a_quarantine_needs_a_reason() {
    for blank in ["", "   ", "\t\n"] {
        let error = parse(&body(json!(blank))).expect_err("a blank reason");
        assert_eq!(error.path().to_string(), "reason", "{error}");
        assert!(
            error.inner().to_string().contains("must not be empty"),
            "{error}"
        );
    }
    let mut without: Value = serde_json::from_slice(&body(json!(REASON))).expect("JSON");
    without.as_object_mut().expect("an object").remove("reason");
    let error = parse(&serde_json::to_vec(&without).expect("JSON")).expect_err("no reason at all");
    assert!(
        error.inner().to_string().contains("missing field `reason`"),
        "{error}"
    );
}

#[test]
fn the_same_decision_again_changes_nothing() {
    let history = [quarantined(decision(DIGEST, REASON))];
    assert_eq!(
        decide(&history, Role::Auditor, decision(DIGEST, REASON), None),
        Ok(vec![])
    );
}

#[test]
fn another_decision_for_the_same_message_is_refused() {
    let history = [quarantined(decision(DIGEST, REASON))];
    for other in [
        decision(OTHER_DIGEST, REASON),
        decision(DIGEST, "Lý do khác"),
    ] {
        let outcome = decide(&history, Role::Auditor, other, None);
        assert!(
            matches!(
                &outcome,
                Err(Rejection::Rule { rule: Rule::QuarantineConflict, detail })
                    if detail.contains("187") && detail.contains(DIGEST)
            ),
            "{outcome:?}"
        );
    }
}

#[test]
fn a_digest_is_64_lowercase_hex_characters() {
    let upper = DIGEST.to_uppercase();
    for bad in [upper.as_str(), &DIGEST[1..], "not a digest"] {
        assert!(
            matches!(
                decide(&[], Role::Auditor, decision(bad, REASON), None),
                Err(Rejection::Rule {
                    rule: Rule::InvalidDigest,
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_quarantine_is_recorded_as_it_is_decided_never_backdated() {
    let outcome = decide(
        &[],
        Role::Auditor,
        decision(DIGEST, REASON),
        Some("2025-07-14T09:00:00+07:00"),
    );
    assert!(
        matches!(outcome, Err(Rejection::Forbidden(_))),
        "{outcome:?}"
    );
}

#[test]
fn sequence_zero_names_no_message() {
    let zero =
        json!({ "sequence": 0, "subject": SUBJECT, "digest": DIGEST, "size": 1, "reason": REASON });
    let error = parse(&serde_json::to_vec(&zero).expect("JSON")).expect_err("zero");
    assert_eq!(error.path().to_string(), "sequence", "{error}");
}

#[test]
fn clients_cannot_send_it_and_its_event_reads_back_from_the_wire() {
    assert!(!spec().sent_by_clients());
    let event = quarantined(decision(DIGEST, REASON));
    let (name, data) = event.name_and_data();
    assert_eq!(name, "message_quarantined");
    assert_eq!(
        data,
        json!({ "sequence": SEQUENCE, "subject": SUBJECT, "digest": DIGEST, "size": 412, "reason": REASON })
    );
    assert_eq!(
        Event::decode("quarantine", &name, 1, data).ok(),
        Some(event)
    );
}
