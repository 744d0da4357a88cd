//! The application service: load, decide, append, retry on conflict, remember idempotent answers.
//!
//! Used by the HTTP edge and by the admin CLI's seed loader, so the seed goes through exactly the
//! rules a user's command does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use event_store::{
    CloudEvent, CommandMeta, Commit, Loaded, Repository, StoreError, StoredAnswer, seal,
};
use futures::future::try_join_all;
use remediation_domain::{AggregateRef, Command, Decision, Facts, Principal};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::claim::{KeyClaim, Turn};
use crate::metrics::Metrics;
use service_kit::config::{ConfigError, parsed};
use service_kit::problem::ApiError;

/// A decision reads a handful of other aggregates; this bound stops a corrupt web of references
/// from turning one command into a crawl of the whole store.
const MAX_FACTS: usize = 2_000;

/// One command as the edge received it.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub command: Command,
    /// Who sends it, with every role they hold; the decision picks the role that acts.
    pub principal: Principal,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// When the fact happened, if earlier than now (keyed in late).
    pub effective_at: Option<DateTime<Utc>>,
    /// `(bucket key, request fingerprint)` when the client sent an Idempotency-Key.
    pub idempotency: Option<(String, String)>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// 201 when events were appended, 200 when the command changed nothing.
    #[serde(skip)]
    pub status: u16,
    pub body: Value,
    /// The answer is the stored first answer to this Idempotency-Key.
    #[serde(skip)]
    pub replayed: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct HandlerSettings {
    /// Decisions per command before a conflict is given up as 409.
    pub max_attempts: u32,
    /// How long the send holding an Idempotency-Key may decide; past it the holder is taken for
    /// dead and another send of the key takes over. Far above any healthy decision.
    pub idempotency_lease: Duration,
    /// How long a send waits for the answer of another send holding its key before it answers
    /// 409 in flight.
    pub idempotency_wait: Duration,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            idempotency_lease: Duration::from_secs(30),
            idempotency_wait: Duration::from_secs(5),
        }
    }
}

impl HandlerSettings {
    /// The settings from `MAX_ATTEMPTS`, `IDEMPOTENCY_LEASE_SECS`, `IDEMPOTENCY_WAIT_MS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_attempts: parsed("MAX_ATTEMPTS", defaults.max_attempts)?,
            idempotency_lease: Duration::from_secs(parsed(
                "IDEMPOTENCY_LEASE_SECS",
                defaults.idempotency_lease.as_secs(),
            )?),
            idempotency_wait: Duration::from_millis(parsed(
                "IDEMPOTENCY_WAIT_MS",
                u64::try_from(defaults.idempotency_wait.as_millis()).unwrap_or(u64::MAX),
            )?),
        })
    }
}

#[derive(Debug)]
pub struct CommandHandler {
    repository: Repository,
    metrics: Metrics,
    settings: HandlerSettings,
}

fn answer_body(
    command: &str,
    target: &AggregateRef,
    commit: Option<&Commit>,
    version: u64,
    correlation_id: &str,
    command_id: Uuid,
) -> Value {
    let events: Vec<Value> = commit
        .map(|c| {
            c.events
                .iter()
                .map(|e| json!({ "id": e.id, "type": e.event_type }))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "command": command,
        "command_id": commit.and_then(|c| c.events.first()).map_or(command_id, |e| e.commandid),
        "correlation_id": commit.and_then(|c| c.events.first()).map_or(correlation_id, |e| e.correlationid.as_str()),
        "aggregate": { "type": target.kind(), "id": target.id() },
        "changed": commit.is_some(),
        "stream_sequence": version,
        "events": events,
    })
}

/// The answer to a command whose commit the stream already held: the first send's, to the byte,
/// as [`answer_body`] takes the ids from the commit's events.
fn replayed_commit(
    command: &str,
    target: &AggregateRef,
    commit: &Commit,
    correlation_id: &str,
    command_id: Uuid,
) -> Answer {
    Answer {
        status: 201,
        body: answer_body(
            command,
            target,
            Some(commit),
            commit.sequence,
            correlation_id,
            command_id,
        ),
        replayed: true,
    }
}

fn replay(stored: StoredAnswer) -> Answer {
    Answer {
        status: stored.status,
        body: stored.body,
        replayed: true,
    }
}

impl CommandHandler {
    pub fn new(repository: Repository, settings: HandlerSettings) -> Self {
        Self {
            repository,
            metrics: Metrics::default(),
            settings,
        }
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Handles one command end to end, including its idempotency record.
    pub async fn handle(&self, request: CommandRequest) -> Result<Answer, ApiError> {
        let outcome = match &request.idempotency {
            Some((key, fingerprint)) => self.handle_keyed(&request, key, fingerprint).await,
            None => self.execute(&request, Uuid::now_v7(), false).await,
        };
        self.metrics.command(
            request.command.name(),
            match &outcome {
                Ok(answer) if answer.replayed => "replayed",
                Ok(answer) if answer.status == 201 => "accepted",
                Ok(_) => "unchanged",
                Err(ApiError::Conflict(_)) => "conflict",
                Err(ApiError::IdempotencyKeyInFlight) => "in_flight",
                Err(ApiError::IdempotencyKeyReused) => "invalid",
                Err(ApiError::Unavailable(_)) => "unavailable",
                Err(e) if e.is_final() => "rejected",
                Err(_) => "failed",
            },
        );
        outcome
    }

    /// One answer per key: the send that claims it decides, the others get what it stored.
    async fn handle_keyed(
        &self,
        request: &CommandRequest,
        key: &str,
        fingerprint: &str,
    ) -> Result<Answer, ApiError> {
        let claim = KeyClaim {
            store: self.repository.store().idempotency(),
            key,
            fingerprint,
            lease: self.settings.idempotency_lease,
            wait: self.settings.idempotency_wait,
            metrics: &self.metrics,
        };
        let held = match claim.take_turn().await? {
            Turn::Replay(stored) => return Ok(replay(stored)),
            Turn::Decide(held) => held,
        };
        // Past its lease another send may take the claim over and decide as well, so the holder
        // stops deciding there.
        let lease = self.settings.idempotency_lease;
        let outcome = tokio::time::timeout(
            lease,
            self.execute(request, held.command_id(), held.resumed),
        )
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Unavailable(format!(
                "the command took longer than its Idempotency-Key's {} s lease",
                lease.as_secs_f64()
            )))
        });
        let answer = match &outcome {
            Ok(answer) => StoredAnswer {
                fingerprint: fingerprint.to_owned(),
                status: answer.status,
                body: answer.body.clone(),
            },
            Err(e) if e.is_final() => StoredAnswer {
                fingerprint: fingerprint.to_owned(),
                status: e.status().as_u16(),
                body: e.body(),
            },
            Err(_) => {
                claim.release(held).await;
                return outcome;
            }
        };
        match claim.settle(held, answer).await? {
            Some(stored) => Ok(replay(stored)),
            None => outcome,
        }
    }

    /// Loads, decides and appends, deciding again after a conflict. `resumed`: an earlier send of
    /// the same Idempotency-Key, whose events carry `command_id` too, may have appended already.
    async fn execute(
        &self,
        request: &CommandRequest,
        command_id: Uuid,
        resumed: bool,
    ) -> Result<Answer, ApiError> {
        let command = &request.command;
        let target = command.target();
        let correlation_id = request
            .correlation_id
            .clone()
            .unwrap_or_else(|| command_id.to_string());
        let message_id = request
            .idempotency
            .as_ref()
            .map_or_else(|| command_id.to_string(), |(key, _)| key.clone());
        // The target's subject has been searched for an earlier send's commit up to here.
        let mut searched = 0;
        for attempt in 1..=self.settings.max_attempts {
            if attempt > 1 {
                self.metrics.retry();
            }
            let loaded = self.repository.load_for_decision(&target).await?;
            if resumed {
                // Searched after loading, so that no commit the loaded state holds is missed: a
                // decision on a state holding the earlier send's own events would answer
                // "nothing to change", though its events are in the stream.
                let commits = self
                    .repository
                    .store()
                    .commits_after(&target, searched)
                    .await?;
                if let Some(earlier) = commits
                    .iter()
                    .find(|c| c.events.iter().any(|e| e.commandid == command_id))
                {
                    return Ok(replayed_commit(
                        command.name(),
                        &target,
                        earlier,
                        &correlation_id,
                        command_id,
                    ));
                }
                searched = commits.last().map_or(searched, |c| c.sequence);
            }
            let facts = self.load_facts(command, &target, &loaded).await?;
            let now = Utc::now();
            let effective_at = request.effective_at.unwrap_or(now);
            let Decision { actor, events } =
                command.decide_as(&loaded.state, &request.principal, now, effective_at, &facts)?;
            let meta = CommandMeta {
                command_id,
                command_name: command.name(),
                actor,
                correlation_id: correlation_id.clone(),
                causation_id: request
                    .causation_id
                    .clone()
                    .unwrap_or_else(|| command_id.to_string()),
                recorded_at: now,
                effective_at,
            };
            if events.is_empty() {
                return Ok(Answer {
                    status: 200,
                    body: answer_body(
                        command.name(),
                        &target,
                        None,
                        loaded.version,
                        &correlation_id,
                        command_id,
                    ),
                    replayed: false,
                });
            }
            let mut envelopes: Vec<CloudEvent> = events
                .iter()
                .map(|e| CloudEvent::new(&target, e, &meta))
                .collect();
            let head = seal(&loaded.head, &mut envelopes);
            let started = Instant::now();
            let appended = self
                .repository
                .store()
                .append(&target, loaded.version, &message_id, &envelopes)
                .await;
            self.metrics.append_took(started.elapsed());
            match appended {
                Ok(appended) if appended.duplicate => {
                    // A retry of a command whose commit JetStream already holds: answer with
                    // that commit, not with the events decided just now.
                    self.repository.mark_stale(&target);
                    let first = self.repository.store().commit_at(appended.sequence).await?;
                    return Ok(replayed_commit(
                        command.name(),
                        &target,
                        &first,
                        &correlation_id,
                        command_id,
                    ));
                }
                Ok(appended) => {
                    let state = events
                        .iter()
                        .fold(loaded.state, |state, event| state.evolve(event));
                    self.repository.remember(
                        &target,
                        Loaded {
                            state,
                            version: appended.sequence,
                            head,
                        },
                    );
                    let commit = Commit {
                        sequence: appended.sequence,
                        events: envelopes,
                    };
                    tracing::info!(
                        command = command.name(),
                        %correlation_id,
                        %command_id,
                        sequence = appended.sequence,
                        events = commit.events.len(),
                        "command accepted"
                    );
                    return Ok(Answer {
                        status: 201,
                        body: answer_body(
                            command.name(),
                            &target,
                            Some(&commit),
                            appended.sequence,
                            &correlation_id,
                            command_id,
                        ),
                        replayed: false,
                    });
                }
                Err(StoreError::Conflict) => {
                    self.metrics.conflict();
                    self.repository.mark_stale(&target);
                    tracing::debug!(
                        command = command.name(),
                        attempt,
                        "conflict; deciding again"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict(format!(
            "{}/{} kept changing; gave up after {} attempts",
            target.kind(),
            target.id(),
            self.settings.max_attempts
        )))
    }

    /// Loads the read-only facts the decision consults, following references breadth-first and
    /// loading each layer concurrently.
    async fn load_facts(
        &self,
        command: &Command,
        target: &AggregateRef,
        loaded: &Loaded,
    ) -> Result<Facts, ApiError> {
        let mut facts = Facts::default();
        let mut seen = BTreeSet::from([target.clone()]);
        let mut layer: Vec<AggregateRef> = command
            .references()
            .into_iter()
            .chain(if command.consults_target_references() {
                loaded.state.references()
            } else {
                vec![]
            })
            .filter(|r| seen.insert(r.clone()))
            .collect();
        while !layer.is_empty() {
            if seen.len() > MAX_FACTS {
                return Err(ApiError::Internal(format!(
                    "{}/{} refers to more than {MAX_FACTS} aggregates",
                    target.kind(),
                    target.id()
                )));
            }
            let states = try_join_all(layer.iter().map(|r| self.repository.load_latest(r))).await?;
            let mut next = Vec::new();
            for (reference, state) in layer.iter().zip(states) {
                state.state.add_to(reference, &mut facts);
                next.extend(
                    state
                        .state
                        .references()
                        .into_iter()
                        .filter(|r| seen.insert(r.clone())),
                );
            }
            layer = next;
        }
        Ok(facts)
    }
}
