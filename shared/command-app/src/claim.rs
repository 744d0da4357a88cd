//! One decision per `Idempotency-Key`, however many sends of it race.
//!
//! A client that times out and retries while its first send is still in flight sends the same
//! command twice at once. The send that claims the key (written only if absent) decides; the others
//! wait for the answer it stores and replay it, or are told to retry (409) if it takes too long.
//! Every later change to the key's record is a compare-and-set on its revision, so the answer
//! stored first is the only one ever stored.
//!
//! A holder that dies leaves its claim pending. Once the holder's lease has run out, or the holder
//! released the claim after a transient failure, the next send takes it over. That holder may have
//! appended before it stopped, so the taker keeps the claim's command id and looks for a commit
//! carrying it before deciding (see `CommandHandler::execute`).

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use event_store::{Claim, ClaimState, IdempotencyRecord, IdempotencyStore, Versioned};
use tokio::time::Instant;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::outcome::{CommandError, Settled, StoredOutcome};

type Record = IdempotencyRecord<StoredOutcome>;

/// Pauses between looks at a key another send holds start here and double up to
/// [`LONGEST_PAUSE`]: a decision usually takes milliseconds, a slow one seconds.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// What a send with a key does next.
#[derive(Debug)]
pub(crate) enum Turn {
    /// The key's command has settled.
    Replay(Settled),
    /// This send holds the key and decides.
    Decide(Held),
}

/// A claim this send holds, at the revision its next compare-and-set names.
#[derive(Debug)]
pub(crate) struct Held {
    revision: u64,
    claim: Claim,
    /// Taken over from an earlier holder, which may have appended.
    pub(crate) resumed: bool,
}

impl Held {
    pub(crate) fn command_id(&self) -> Uuid {
        self.claim.command_id
    }
}

/// One send's view of its key's record.
#[derive(Debug)]
pub(crate) struct KeyClaim<'a> {
    pub(crate) store: &'a IdempotencyStore,
    pub(crate) key: &'a str,
    pub(crate) fingerprint: &'a str,
    /// How long a holder may decide before another send may take its claim over.
    pub(crate) lease: Duration,
    /// How long a send waits for another's answer before answering 409.
    pub(crate) wait: Duration,
    pub(crate) metrics: &'a Metrics,
}

/// What a key's record says to a send whose fingerprint matched it.
enum Found {
    Nothing,
    Answer(StoredOutcome),
    Claimed(Claim, u64),
}

/// Pauses of one send waiting for another's answer, up to its deadline.
struct Waiting<'a> {
    deadline: Instant,
    pause: Duration,
    counted: bool,
    metrics: &'a Metrics,
}

impl Waiting<'_> {
    /// Sleeps before the next look, or gives up: 409, the client retries later.
    async fn pause(&mut self) -> Result<(), CommandError> {
        if !self.counted {
            self.metrics.idempotency_wait();
            self.counted = true;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(CommandError::KeyInFlight);
        }
        tokio::time::sleep(self.pause.min(self.deadline - now)).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        Ok(())
    }
}

impl KeyClaim<'_> {
    /// The key's answer, or the key claimed for this send: when absent, released, or past its
    /// holder's lease. While another send holds it, waits up to `wait` for its answer.
    pub(crate) async fn take_turn(&self) -> Result<Turn, CommandError> {
        let mut waiting = self.waiting();
        loop {
            match self.look().await? {
                Found::Answer(stored) => return Ok(Turn::Replay(stored.settled()?)),
                Found::Nothing => {
                    let claim = Claim {
                        state: ClaimState::Pending,
                        fingerprint: self.fingerprint.to_owned(),
                        command_id: Uuid::now_v7(),
                        claimed_at: Utc::now(),
                    };
                    if let Some(revision) = self.store.create(self.key, &claim).await? {
                        return Ok(Turn::Decide(Held {
                            revision,
                            claim,
                            resumed: false,
                        }));
                    }
                }
                Found::Claimed(claim, revision) if self.open_to_takeover(&claim) => {
                    let taken = Claim {
                        state: ClaimState::Pending,
                        claimed_at: Utc::now(),
                        ..claim
                    };
                    let record = Record::Claimed(taken.clone());
                    if let Some(revision) = self.store.replace(self.key, &record, revision).await? {
                        self.metrics.idempotency_takeover();
                        return Ok(Turn::Decide(Held {
                            revision,
                            claim: taken,
                            resumed: true,
                        }));
                    }
                }
                Found::Claimed(..) => {}
            }
            // Another send holds the key, or won the race to claim it just now.
            waiting.pause().await?;
        }
    }

    /// Stores the holder's outcome. `None` when stored; otherwise the claim was taken over and
    /// the outcome stored instead is the one every send gets, this one too.
    pub(crate) async fn settle(
        &self,
        held: Held,
        outcome: StoredOutcome,
    ) -> Result<Option<Settled>, CommandError> {
        let stored = self
            .store
            .replace(self.key, &Record::Answered(outcome), held.revision)
            .await;
        match stored {
            Ok(Some(_)) => Ok(None),
            Ok(None) => self.answer_of_another().await.map(Some),
            Err(e) => {
                // The claim stays pending; once its lease runs out a retry takes it over and
                // finds this send's commit, so it still gets this answer.
                tracing::warn!(error = %e, "could not record the idempotent answer");
                Ok(None)
            }
        }
    }

    /// Gives the claim up after a transient failure, so that a retry decides at once. Losing the
    /// compare-and-set means another send took the claim over already.
    pub(crate) async fn release(&self, held: Held) {
        let released = Record::Claimed(Claim {
            state: ClaimState::Released,
            ..held.claim
        });
        if let Err(e) = self.store.replace(self.key, &released, held.revision).await {
            tracing::warn!(error = %e, "could not release an Idempotency-Key; its lease will");
        }
    }

    /// Waits for the answer of the send that took this send's claim over.
    async fn answer_of_another(&self) -> Result<Settled, CommandError> {
        let mut waiting = self.waiting();
        loop {
            if let Found::Answer(stored) = self.look().await? {
                return stored.settled();
            }
            waiting.pause().await?;
        }
    }

    fn waiting(&self) -> Waiting<'_> {
        Waiting {
            deadline: Instant::now() + self.wait,
            pause: FIRST_PAUSE,
            counted: false,
            metrics: self.metrics,
        }
    }

    /// The key's record; a record of another request is refused.
    async fn look(&self) -> Result<Found, CommandError> {
        let found = match self.store.read(self.key).await? {
            None => Found::Nothing,
            Some(Versioned {
                record: IdempotencyRecord::Answered(answer),
                ..
            }) => Found::Answer(answer),
            Some(Versioned {
                record: IdempotencyRecord::Claimed(claim),
                revision,
            }) => Found::Claimed(claim, revision),
        };
        let foreign = match &found {
            Found::Nothing => false,
            Found::Answer(stored) => stored.fingerprint() != self.fingerprint,
            Found::Claimed(claim, _) => claim.fingerprint != self.fingerprint,
        };
        if foreign {
            Err(CommandError::KeyReused)
        } else {
            Ok(found)
        }
    }

    fn open_to_takeover(&self, claim: &Claim) -> bool {
        claim.state == ClaimState::Released
            || TimeDelta::from_std(self.lease)
                .is_ok_and(|lease| Utc::now().signed_duration_since(claim.claimed_at) >= lease)
    }
}
