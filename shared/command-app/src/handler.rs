//! The application service: load, decide, append, retry on conflict, remember idempotent answers.
//!
//! Used by the HTTP edge and by the admin CLI's seed loader, so the seed goes through exactly the
//! rules a user's command does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use event_store::{CloudEvent, CommandMeta, Commit, Loaded, Repository, StoreError, seal};
use futures::future::try_join_all;
use remediation_domain::{AggregateRef, Command, Decision, Facts, Principal};
use uuid::Uuid;

use crate::claim::{KeyClaim, Turn};
use crate::metrics::Metrics;
use crate::outcome::{Answer, CommandError, Receipt, Settled, StoredOutcome};
use crate::writers::Writers;
use service_kit::config::{ConfigError, parsed};

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
    writers: Writers,
}

/// The receipt of a commit the stream already held: the first send's, as [`Receipt::new`] takes
/// the ids from the commit's events.
fn found_again(
    command: &str,
    target: &AggregateRef,
    commit: &Commit,
    correlation_id: &str,
    command_id: Uuid,
) -> Receipt {
    Receipt::new(
        command,
        target,
        Some(commit),
        commit.sequence,
        correlation_id,
        command_id,
    )
}

fn fresh(settled: Settled) -> Answer {
    Answer {
        settled,
        replayed: false,
    }
}

fn replayed(settled: Settled) -> Answer {
    Answer {
        settled,
        replayed: true,
    }
}

impl CommandHandler {
    pub fn new(repository: Repository, settings: HandlerSettings) -> Self {
        Self {
            metrics: Metrics::new(repository.store()),
            repository,
            settings,
            writers: Writers::default(),
        }
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Handles one command end to end, including its idempotency record.
    pub async fn handle(&self, request: CommandRequest) -> Result<Answer, CommandError> {
        let outcome = match &request.idempotency {
            Some((key, fingerprint)) => self.handle_keyed(&request, key, fingerprint).await,
            None => self
                .execute(&request, Uuid::now_v7(), false)
                .await
                .map(fresh),
        };
        self.metrics.command(
            request.command.name(),
            match &outcome {
                Ok(answer) if answer.replayed => "replayed",
                Ok(Answer {
                    settled: Ok(receipt),
                    ..
                }) if receipt.changed => "accepted",
                Ok(Answer { settled: Ok(_), .. }) => "unchanged",
                Ok(Answer {
                    settled: Err(_), ..
                }) => "rejected",
                Err(
                    CommandError::KeptChanging { .. } | CommandError::Store(StoreError::Conflict),
                ) => "conflict",
                Err(CommandError::KeyInFlight) => "in_flight",
                Err(CommandError::KeyReused) => "invalid",
                Err(
                    CommandError::Store(StoreError::Unavailable(_))
                    | CommandError::LeaseRanOut { .. },
                ) => "unavailable",
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
    ) -> Result<Answer, CommandError> {
        let claim = KeyClaim {
            store: self.repository.store().idempotency(),
            key,
            fingerprint,
            lease: self.settings.idempotency_lease,
            wait: self.settings.idempotency_wait,
            metrics: &self.metrics,
        };
        let held = match claim.take_turn().await? {
            Turn::Replay(settled) => return Ok(replayed(settled)),
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
        .unwrap_or(Err(CommandError::LeaseRanOut {
            seconds: lease.as_secs_f64(),
        }));
        let settled = match outcome {
            Ok(settled) => settled,
            Err(error) => {
                claim.release(held).await;
                return Err(error);
            }
        };
        match claim
            .settle(held, StoredOutcome::new(fingerprint, &settled))
            .await?
        {
            Some(stored) => Ok(replayed(stored)),
            None => Ok(fresh(settled)),
        }
    }

    /// Loads, decides and appends, deciding again after a conflict. `resumed`: an earlier send of
    /// the same Idempotency-Key, whose events carry `command_id` too, may have appended already.
    async fn execute(
        &self,
        request: &CommandRequest,
        command_id: Uuid,
        mut resumed: bool,
    ) -> Result<Settled, CommandError> {
        let command = &request.command;
        let target = command.target();
        let correlation_id = request
            .correlation_id
            .clone()
            .unwrap_or_else(|| command_id.to_string());
        let first_message_id = request
            .idempotency
            .as_ref()
            .map_or_else(|| command_id.to_string(), |(key, _)| key.clone());
        let mut message_id = first_message_id.clone();
        // The target's subject has been searched for an earlier send's commit up to here.
        let mut searched = 0;
        // Held until the command is settled: the next command on this aggregate decides on the
        // state this one leaves in the cache, rather than racing it (see [`crate::writers`]).
        let _writer = self.writers.lock(&target).await;
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
                    return Ok(Ok(found_again(
                        command.name(),
                        &target,
                        earlier,
                        &correlation_id,
                        command_id,
                    )));
                }
                searched = commits.last().map_or(searched, |c| c.sequence);
            }
            let facts = self.load_facts(command, &target, &loaded).await?;
            let now = Utc::now();
            let effective_at = request.effective_at.unwrap_or(now);
            let Decision { actor, events } = match command.decide_as(
                &loaded.state,
                &request.principal,
                now,
                effective_at,
                &facts,
            ) {
                Ok(decision) => decision,
                Err(rejection) => return Ok(Err(rejection)),
            };
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
                return Ok(Ok(Receipt::new(
                    command.name(),
                    &target,
                    None,
                    loaded.version,
                    &correlation_id,
                    command_id,
                )));
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
                Ok(appended) if appended.duplicate && appended.sequence == 0 => {
                    // A clustered stream's leader stages a message id at sequence 0 until its
                    // publish is stored, and answers a re-send of it as a duplicate of sequence
                    // 0: an earlier send's publish is still in flight, or was dropped with a
                    // leader change (reading sequence 0 cost two minutes of 503s in
                    // tests/stack/cluster.rs). Whether it landed shows on the subject, searched
                    // on the next attempt; if not, that attempt publishes under an id of its own,
                    // and the expected sequence still lets only one of the two land.
                    self.metrics.conflict();
                    self.repository.mark_stale(&target);
                    resumed = true;
                    message_id = format!("{first_message_id}/{attempt}");
                    tracing::warn!(
                        command = command.name(),
                        attempt,
                        "an earlier publish of this command is in flight or lost; looking for it and deciding again"
                    );
                }
                Ok(appended) if appended.duplicate => {
                    // A retry of a command whose commit JetStream already holds: answer with
                    // that commit, not with the events decided just now.
                    self.repository.mark_stale(&target);
                    let first = self.repository.store().commit_at(appended.sequence).await?;
                    return Ok(Ok(found_again(
                        command.name(),
                        &target,
                        &first,
                        &correlation_id,
                        command_id,
                    )));
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
                    // Debug, not info: the commit itself is the record of an accepted command
                    // (its envelopes carry the command and correlation ids, and the audit table
                    // keeps them), kh63_command_commands_total counts it, and no alert or runbook
                    // reads this line — while at info it cost about 5 % of the service's CPU under
                    // load (formatting and a write to stderr per command). RUST_LOG=command_app=debug
                    // brings it back.
                    tracing::debug!(
                        command = command.name(),
                        %correlation_id,
                        %command_id,
                        sequence = appended.sequence,
                        events = commit.events.len(),
                        "command accepted"
                    );
                    return Ok(Ok(Receipt::new(
                        command.name(),
                        &target,
                        Some(&commit),
                        appended.sequence,
                        &correlation_id,
                        command_id,
                    )));
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
        Err(CommandError::KeptChanging {
            kind: target.kind(),
            id: target.id().to_owned(),
            attempts: self.settings.max_attempts,
        })
    }

    /// Loads the read-only facts the decision consults, following references breadth-first and
    /// loading each layer concurrently.
    async fn load_facts(
        &self,
        command: &Command,
        target: &AggregateRef,
        loaded: &Loaded,
    ) -> Result<Facts, CommandError> {
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
                return Err(CommandError::TooManyFacts {
                    kind: target.kind(),
                    id: target.id().to_owned(),
                    limit: MAX_FACTS,
                });
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
