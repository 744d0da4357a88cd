//! What a command ends in, typed: a receipt of what was appended (or that nothing needed to be),
//! a refusal by the domain's rules, or an error that settled nothing. The edges turn these into
//! their own answers (HTTP statuses and problem documents, CLI output); the idempotency bucket
//! keeps the settled outcome itself, so that a retry gets the same outcome whichever edge it
//! comes through.

use event_store::{Commit, StoreError};
use remediation_domain::{AggregateRef, Rejection, Rule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A command that was decided: the events it appended, none if it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The command's name.
    pub command: String,
    /// The id the command's events carry: the first send's, for a replayed commit.
    pub command_id: Uuid,
    pub correlation_id: String,
    pub aggregate: AggregateKey,
    /// Whether events were appended.
    pub changed: bool,
    /// The commit's stream sequence, or the aggregate's version when nothing changed.
    pub stream_sequence: u64,
    pub events: Vec<EventKey>,
}

/// The aggregate a command changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// One appended event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventKey {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
}

impl Receipt {
    /// The receipt of `commit`, or of no change at `version`. Ids come from the commit's events
    /// where there are any, so a commit found again (a retry) is answered as its first send was.
    pub(crate) fn new(
        command: &str,
        target: &AggregateRef,
        commit: Option<&Commit>,
        version: u64,
        correlation_id: &str,
        command_id: Uuid,
    ) -> Self {
        let first = commit.and_then(|c| c.events.first());
        Self {
            command: command.to_owned(),
            command_id: first.map_or(command_id, |e| e.commandid),
            correlation_id: first
                .map_or(correlation_id, |e| &e.correlationid)
                .to_owned(),
            aggregate: AggregateKey {
                kind: target.kind().to_owned(),
                id: target.id().to_owned(),
            },
            changed: commit.is_some(),
            stream_sequence: version,
            events: commit
                .map(|c| {
                    c.events
                        .iter()
                        .map(|e| EventKey {
                            id: e.id,
                            event_type: e.event_type.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// How a command settled: decided, or refused by a rule. Either is final: a retry with the same
/// Idempotency-Key gets it again.
pub type Settled = Result<Receipt, Rejection>;

/// A settled command, and whether it is the stored outcome of an earlier send of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub settled: Settled,
    pub replayed: bool,
}

/// A command that settled nothing: a retry runs it anew (or, for a key reused with another
/// request, is refused the same way).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Every attempt met a concurrent change of the target.
    #[error("{kind}/{id} kept changing; gave up after {attempts} attempts")]
    KeptChanging {
        kind: &'static str,
        id: String,
        attempts: u32,
    },
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still being decided; retry to get its answer")]
    KeyInFlight,
    /// The send ran past its key's lease, after which another send may decide instead.
    #[error("the command took longer than its Idempotency-Key's {seconds} s lease")]
    LeaseRanOut { seconds: f64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A corrupt web of references, bounded so one command cannot crawl the whole store.
    #[error("{kind}/{id} refers to more than {limit} aggregates")]
    TooManyFacts {
        kind: &'static str,
        id: String,
        limit: usize,
    },
    /// A record in the idempotency bucket that no version of this service writes.
    #[error("the Idempotency-Key's record cannot be read: {0}")]
    UnreadableRecord(String),
}

/// What the idempotency bucket keeps for a key once its command settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum StoredOutcome {
    Typed {
        fingerprint: String,
        outcome: Outcome,
    },
    /// Written before outcomes were typed: the status and body of the first HTTP answer.
    Http {
        fingerprint: String,
        status: u16,
        body: Value,
    },
}

/// [`Settled`] as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Decided(Receipt),
    Refused(Refusal),
}

/// [`Rejection`] as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Refusal {
    NotFound { detail: String },
    Forbidden { detail: String },
    Rule { rule: Rule, detail: String },
}

impl StoredOutcome {
    pub(crate) fn new(fingerprint: &str, settled: &Settled) -> Self {
        StoredOutcome::Typed {
            fingerprint: fingerprint.to_owned(),
            outcome: match settled {
                Ok(receipt) => Outcome::Decided(receipt.clone()),
                Err(Rejection::NotFound(detail)) => Outcome::Refused(Refusal::NotFound {
                    detail: detail.clone(),
                }),
                Err(Rejection::Forbidden(detail)) => Outcome::Refused(Refusal::Forbidden {
                    detail: detail.clone(),
                }),
                Err(Rejection::Rule { rule, detail }) => Outcome::Refused(Refusal::Rule {
                    rule: *rule,
                    detail: detail.clone(),
                }),
            },
        }
    }

    pub(crate) fn fingerprint(&self) -> &str {
        match self {
            StoredOutcome::Typed { fingerprint, .. } | StoredOutcome::Http { fingerprint, .. } => {
                fingerprint
            }
        }
    }

    /// The settled outcome. An HTTP answer is read back into the outcome that produced it: a
    /// receipt for 200 and 201, the refusal its problem document names for 403, 404 and 422 —
    /// the only answers ever stored.
    pub(crate) fn settled(self) -> Result<Settled, CommandError> {
        match self {
            StoredOutcome::Typed { outcome, .. } => Ok(match outcome {
                Outcome::Decided(receipt) => Ok(receipt),
                Outcome::Refused(Refusal::NotFound { detail }) => Err(Rejection::NotFound(detail)),
                Outcome::Refused(Refusal::Forbidden { detail }) => {
                    Err(Rejection::Forbidden(detail))
                }
                Outcome::Refused(Refusal::Rule { rule, detail }) => {
                    Err(Rejection::Rule { rule, detail })
                }
            }),
            StoredOutcome::Http { status, body, .. } => legacy(status, body),
        }
    }
}

fn legacy(status: u16, body: Value) -> Result<Settled, CommandError> {
    let unreadable = |why: &str| CommandError::UnreadableRecord(format!("HTTP {status}: {why}"));
    if status == 200 || status == 201 {
        return serde_json::from_value(body)
            .map(Ok)
            .map_err(|e| unreadable(&e.to_string()));
    }
    let detail = body["detail"]
        .as_str()
        .ok_or_else(|| unreadable("no detail"))?
        .to_owned();
    match status {
        403 => Ok(Err(Rejection::Forbidden(detail))),
        404 => Ok(Err(Rejection::NotFound(detail))),
        422 => {
            let rule = serde_json::from_value(body["rule"].clone())
                .map_err(|e| unreadable(&format!("rule: {e}")))?;
            Ok(Err(Rejection::Rule { rule, detail }))
        }
        _ => Err(unreadable("not an answer that is ever stored")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            command: "plan-task".to_owned(),
            command_id: Uuid::now_v7(),
            correlation_id: "c-1".to_owned(),
            aggregate: AggregateKey {
                kind: "task".to_owned(),
                id: "t-1".to_owned(),
            },
            changed: true,
            stream_sequence: 42,
            events: vec![EventKey {
                id: Uuid::now_v7(),
                event_type: "vn.gov.kh63.task.planned.v1".to_owned(),
            }],
        }
    }

    fn round_trip(settled: &Settled) -> Settled {
        let json = serde_json::to_string(&StoredOutcome::new("f", settled)).expect("encode");
        let stored: StoredOutcome = serde_json::from_str(&json).expect("decode");
        assert_eq!(stored.fingerprint(), "f");
        stored.settled().expect("a typed record reads")
    }

    #[test]
    fn every_outcome_reads_back_as_stored() {
        for settled in [
            Ok(receipt()),
            Err(Rejection::not_found("no task t-9")),
            Err(Rejection::forbidden("only the lead unit")),
            Err(Rejection::rule(Rule::TaskClosed, "the task is closed")),
        ] {
            assert_eq!(round_trip(&settled), settled);
        }
    }

    #[test]
    fn http_answers_stored_by_earlier_versions_read_as_the_outcome_they_answered() {
        let receipt = receipt();
        let cases = [
            (
                201,
                serde_json::to_value(&receipt).expect("json"),
                Ok(receipt.clone()),
            ),
            (
                422,
                json!({
                    "type": "urn:kh63:problem:rule-violated", "title": "Business rule violated",
                    "status": 422, "detail": "the task is closed", "rule": "task-closed",
                }),
                Err(Rejection::rule(Rule::TaskClosed, "the task is closed")),
            ),
            (
                404,
                json!({ "type": "urn:kh63:problem:not-found", "status": 404, "detail": "no task t-9" }),
                Err(Rejection::not_found("no task t-9")),
            ),
            (
                403,
                json!({ "type": "urn:kh63:problem:forbidden", "status": 403, "detail": "only the lead unit" }),
                Err(Rejection::forbidden("only the lead unit")),
            ),
        ];
        for (status, body, settled) in cases {
            let old = json!({ "fingerprint": "f", "status": status, "body": body });
            let stored: StoredOutcome = serde_json::from_value(old).expect("an old record");
            assert!(matches!(stored, StoredOutcome::Http { .. }));
            assert_eq!(
                stored.settled().expect("readable"),
                settled,
                "HTTP {status}"
            );
        }
    }

    #[test]
    fn an_http_answer_that_was_never_stored_is_unreadable_not_guessed() {
        let stored = StoredOutcome::Http {
            fingerprint: "f".to_owned(),
            status: 409,
            body: json!({ "detail": "conflict" }),
        };
        assert!(matches!(
            stored.settled(),
            Err(CommandError::UnreadableRecord(_))
        ));
    }
}
