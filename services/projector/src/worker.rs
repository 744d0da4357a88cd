//! One projection's worker: a durable pull consumer, batches applied with their checkpoint, acks
//! only after the commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, stream};
use event_store::{NotSignedOff, signed_off_at};
use futures::StreamExt;
use readmodel::{HeadCache, Projection, clear_stall, read_checkpoint, record_stall};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::batch::{BatchError, Delivered, apply_batch, apply_quarantined};
use crate::decode::Decoder;
use crate::status::{Stall, Status};

/// How often a stopped projection looks for a quarantine decision for the message it stopped at:
/// an auditor's decision releases it within seconds, without a restart.
pub const QUARANTINE_POLL: Duration = Duration::from_secs(2);

/// How long the checkpoint may stand still while the stream holds commits beyond it before the
/// consumer is taken for stuck and made anew at the checkpoint. nats-server 2.9 left replicated
/// consumers so after a stream leader was cut off and came back (seen in
/// `tests/stack/cluster.rs`: `num_pending` 0 four commits short of the stream's head, or
/// deliveries that never move past the checkpoint), on a replica that had drifted (see
/// `event_store::REPLICATION_SINCE`).
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

/// How long a fetch lets the server wait for messages; it answers at once when it has some.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);

/// How long past [`FETCH_EXPIRES`] (and past the last message received) a fetch waits for the
/// server's answer before taking its pull request for lost. nats-server 2.9 now and then leaves
/// one unanswered — no message, no timeout status, and the consumer stays silent for the next
/// (seen in `projector bench`) — and async-nats only gives up 5 s past the expiry: the
/// projection stood still for those 5 s (read-your-writes staleness p99 4 959 ms at 5 000
/// commands/s in one benchmark run).
const FETCH_ANSWER_GRACE: Duration = Duration::from_secs(1);

/// Until its first message, a fetch asks the stream this often whether it holds commits past the
/// checkpoint. If it does, the server had them to deliver at once, and a fetch that still gets
/// nothing [`LOST_AFTER_AHEAD`] later takes its pull request for lost. A lost pull then costs the
/// read side about a third of a second from the first commit it should have delivered, rather
/// than the 1.5 s of the expiry and its grace, which were the staleness tail at 1 000 commands/s
/// (p99 969 ms, max 1 150 ms) in a benchmark run where one was lost right after the catch-up.
/// The stream is asked again and again, not once: the pulls nats-server 2.9.10 loses come in a
/// quiet stretch (captured on the wire: a request sent right after its predecessor's expiry
/// status gets nothing at all, not even the commits stored 0.5 s later), so one look at 100 ms
/// found nothing yet and the commits that followed waited out the whole 1.5 s.
const QUIET_PROBE: Duration = Duration::from_millis(100);

/// How long a fetch waits, once the stream was seen ahead, for what the server holds: room for a
/// server and client short of CPU (a commit stored just before the probe is on its way), far
/// below the fetch's own expiry.
const LOST_AFTER_AHEAD: Duration = Duration::from_millis(200);

/// Watches one consumer for [`STUCK_AFTER`] without progress while the stream is ahead.
struct Watchdog {
    checkpoint: u64,
    progress_at: Instant,
    behind_seen: bool,
}

impl Watchdog {
    fn new(checkpoint: u64) -> Self {
        Self {
            checkpoint,
            progress_at: Instant::now(),
            behind_seen: false,
        }
    }

    /// The checkpoint after a fetch and what it applied.
    fn passed(&mut self, checkpoint: u64) {
        if checkpoint > self.checkpoint {
            *self = Self::new(checkpoint);
        }
    }

    /// After a fetch that moved nothing: stuck when the stream was ahead of the checkpoint at two
    /// checks in a row after [`STUCK_AFTER`] without progress (a commit stored just after a fetch
    /// ended looks ahead once).
    async fn check(&mut self, stream: &stream::Stream) -> Result<(), RunError> {
        if self.progress_at.elapsed() < STUCK_AFTER {
            return Ok(());
        }
        match head_beyond(stream, self.checkpoint).await {
            Some(head) => {
                if self.behind_seen {
                    return Err(RunError::Remake(Remake::Stuck {
                        checkpoint: self.checkpoint,
                        head,
                    }));
                }
                self.behind_seen = true;
            }
            None => *self = Self::new(self.checkpoint),
        }
        Ok(())
    }
}

/// The stream's last sequence when it lies beyond `checkpoint`; `None` when it does not, or when
/// the stream does not answer (then the caller goes on as if it were not ahead: whether a
/// consumer is stuck or a pull lost is only decided on an answer).
async fn head_beyond(stream: &stream::Stream, checkpoint: u64) -> Option<u64> {
    let head = stream.get_info().await.ok()?.state.last_sequence;
    (head > checkpoint).then_some(head)
}

/// Everything a worker needs.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    pub pool: PgPool,
    pub stream: stream::Stream,
    pub schema_prefix: String,
    pub batch_size: usize,
    /// The least time between the starts of two batches' fetches while batches come in below
    /// `batch_size`. Each batch costs the same handful of round trips and statements whether it
    /// holds one commit or a hundred, and at 1 000 commands/s a worker that fetched again the
    /// moment it could applied batches of about three commits: the projector and PostgreSQL
    /// then spent about 1 ms of CPU per commit, and on two cores that crowded out the command
    /// path (its latency p99 three times what it was with the projector stopped). A first
    /// commit after a quiet stretch is not held (the waiting fetch gets it at once); the ones
    /// close behind it wait at most this long. Full batches (a catch-up) are not held either.
    pub batch_interval: Duration,
    pub status: Arc<Status>,
    /// Shared by the projections' workers: each message is decoded and hashed once.
    pub decoder: Arc<Decoder>,
}

impl WorkerContext {
    pub fn schema(&self, projection: Projection) -> String {
        projection.schema(&self.schema_prefix)
    }

    fn durable_name(&self, projection: Projection) -> String {
        event_store::access::projector_consumer(&self.schema(projection))
    }

    async fn checkpoint(
        &self,
        projection: Projection,
    ) -> Result<(u64, Option<chrono::DateTime<chrono::Utc>>), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET search_path TO {}",
            readmodel::quoted(&self.schema(projection))
        )))
        .execute(&mut *conn)
        .await?;
        let checkpoint = read_checkpoint(&mut conn, projection).await;
        sqlx::query("RESET search_path").execute(&mut *conn).await?;
        checkpoint
    }

    /// The durable consumer, positioned right after the checkpoint. One left over with pending
    /// deliveries or an ack floor other than the checkpoint (a crash between commit and ack, a
    /// restored database, a rebuild) is recreated there, so deliveries start in order.
    /// With `anew`, an existing consumer is replaced even when it agrees with the checkpoint
    /// (it was found stuck).
    async fn consumer(
        &self,
        projection: Projection,
        checkpoint: u64,
        anew: bool,
    ) -> Result<PullConsumer, PositionError> {
        let name = self.durable_name(projection);
        if let Ok(mut existing) = self.stream.get_consumer::<pull::Config>(&name).await {
            let info = existing.info().await?;
            if !anew && info.ack_floor.stream_sequence == checkpoint && info.num_ack_pending == 0 {
                return Ok(existing);
            }
            tracing::info!(
                projection = projection.name(),
                checkpoint,
                ack_floor = info.ack_floor.stream_sequence,
                stuck = anew,
                "repositioning the durable consumer at the checkpoint"
            );
            self.stream.delete_consumer(&name).await?;
        }
        self.stream
            .create_consumer(pull::Config {
                durable_name: Some(name),
                description: Some(format!("read model projection {}", projection.name())),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: checkpoint + 1,
                },
                ack_policy: AckPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await
            .map_err(PositionError::from)
    }
}

/// Why the durable consumer could not be positioned at the checkpoint.
#[derive(Debug, thiserror::Error)]
enum PositionError {
    #[error(transparent)]
    Info(#[from] jetstream::context::ConsumerInfoError),
    #[error(transparent)]
    Consumer(#[from] stream::ConsumerError),
}

/// Runs `projection` until `shutdown` turns true, or until it stalls on something no quarantine
/// decision can release. A stall at a message stays until an auditor's quarantine decision for
/// that message is on the stream (looked for at once, then every [`QUARANTINE_POLL`]); the
/// message is then passed as quarantined and the projection goes on.
pub async fn run(
    context: WorkerContext,
    projection: Projection,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    // Stays set until a consumer has been made anew: a failure on the way must not fall back on
    // the stuck one.
    let mut anew = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match run_once(&context, projection, &mut shutdown, &mut anew).await {
            Ok(()) => return,
            Err(RunError::Remake(why)) => {
                context.status.consumer_remade(projection);
                tracing::warn!(
                    projection = projection.name(),
                    reason = %why,
                    "making the consumer anew at the checkpoint"
                );
                anew = true;
            }
            Err(RunError::Stalled(stall)) => {
                // A decision already on the stream (a replay into a fresh database) releases the
                // message before any stop is recorded.
                let released = match stall.sequence {
                    Some(sequence) => release(&context, projection, sequence).await.is_ok(),
                    None => false,
                };
                if !released {
                    tracing::error!(
                        projection = projection.name(),
                        sequence = ?stall.sequence,
                        reason = %stall.reason,
                        "projection stopped: it will not skip this event"
                    );
                    context.status.stall(projection, stall.clone());
                    persist_stall(&context, projection, &stall, shutdown.clone()).await;
                    let Some(sequence) = stall.sequence else {
                        return;
                    };
                    if !wait_for_release(&context, projection, sequence, &mut shutdown).await {
                        return;
                    }
                }
                backoff = Duration::from_millis(200);
            }
            Err(RunError::Transient(reason)) => {
                tracing::warn!(projection = projection.name(), %reason, ?backoff, "projection interrupted; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Records `stall` next to the projection's checkpoint, where the query service reads it, trying
/// again until it is stored or the projector stops: a database that does not answer when the
/// projection stops must still learn of the stop once it is back, or the query service would
/// serve the frozen read model as if it were current.
pub async fn persist_stall(
    context: &WorkerContext,
    projection: Projection,
    stall: &Stall,
    mut shutdown: watch::Receiver<bool>,
) {
    let schema = context.schema(projection);
    let mut backoff = Duration::from_millis(200);
    while !*shutdown.borrow() {
        match record_stall(
            &context.pool,
            &schema,
            projection,
            stall.sequence,
            &stall.reason,
        )
        .await
        {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(projection = projection.name(), %error, ?backoff, "cannot record the stop in the database yet; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum RunError {
    Stalled(Stall),
    Transient(String),
    /// The consumer went wrong; a new one at the checkpoint puts it right.
    Remake(Remake),
}

/// Why a worker makes its durable consumer anew at the checkpoint, each counted in
/// `kh63_projector_consumers_remade_total`.
#[derive(Debug, thiserror::Error)]
enum Remake {
    /// The consumer delivered nothing for [`STUCK_AFTER`] while the stream's head stood beyond
    /// the checkpoint.
    #[error(
        "the consumer delivers nothing although the stream holds commits beyond the checkpoint {checkpoint} (head {head})"
    )]
    Stuck { checkpoint: u64, head: u64 },
    /// The consumer delivered `got` while the checkpoint asked for `expected`, and the stream
    /// holds `expected`: deliveries were lost on the way, as when the node a pull's answer
    /// passed through is cut off. The consumer counts them as delivered and would only send
    /// them again after its ack wait (AckPolicy::All: acknowledging `got` would even cover
    /// them), so it is made anew at the checkpoint. A gap the stream itself has still stops.
    #[error(
        "the consumer skipped commits the stream holds (deliveries lost in a failover): expected {expected}, got {got}"
    )]
    LostDeliveries { expected: u64, got: u64 },
    /// A fetch got neither messages nor the server's closing status within
    /// [`FETCH_ANSWER_GRACE`] past its expiry: its pull request was lost. What it received is
    /// neither applied nor acknowledged; the consumer is made anew at the checkpoint, which
    /// also drops whatever the lost request might still deliver.
    #[error("NATS left a pull request unanswered for {waited:?}")]
    UnansweredPull { waited: Duration },
}

/// One fetch of at most `max` messages after the stream sequence `after` (the last one
/// delivered), ended by the server's answer, or by [`FETCH_ANSWER_GRACE`] without one, or
/// [`LOST_AFTER_AHEAD`] without one once `stream` (asked every [`QUIET_PROBE`] until the first
/// message) was seen to hold commits past `after`
/// ([`Remake::UnansweredPull`]).
async fn fetch(
    consumer: &PullConsumer,
    stream: &stream::Stream,
    after: u64,
    max: usize,
) -> Result<Vec<jetstream::Message>, RunError> {
    let started = tokio::time::Instant::now();
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .expires(FETCH_EXPIRES)
        .messages()
        .await
        .map_err(|e| RunError::Transient(e.to_string()))?;
    let mut deadline = started + FETCH_EXPIRES + FETCH_ANSWER_GRACE;
    // Only before the first message: one that came shows the request alive.
    let mut probe_at = Some(started + QUIET_PROBE);
    let mut messages = Vec::new();
    loop {
        let wake = probe_at.map_or(deadline, |probe| probe.min(deadline));
        match tokio::time::timeout_at(wake, batch.next()).await {
            Ok(Some(Ok(message))) => {
                messages.push(message);
                probe_at = None;
                deadline = deadline.max(tokio::time::Instant::now() + FETCH_ANSWER_GRACE);
            }
            Err(_) if wake < deadline => {
                let now = tokio::time::Instant::now();
                if head_beyond(stream, after).await.is_some() {
                    probe_at = None;
                    deadline = deadline.min(now + LOST_AFTER_AHEAD);
                } else {
                    probe_at = Some(now + QUIET_PROBE);
                }
            }
            // An error status ends the fetch; what came before it is applied as usual.
            Ok(Some(Err(error))) => tracing::warn!(%error, "a fetch ended on an error status"),
            Ok(None) => return Ok(messages),
            Err(_) => {
                return Err(RunError::Remake(Remake::UnansweredPull {
                    waited: started.elapsed(),
                }));
            }
        }
    }
}

/// Whether the stream holds a message at `sequence`; a stream that does not answer is a
/// transient failure.
async fn stream_holds(stream: &stream::Stream, sequence: u64) -> Result<bool, RunError> {
    match stream.get_raw_message(sequence).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(false),
        Err(e) => Err(RunError::Transient(e.to_string())),
    }
}

/// Why a stopped projection is not released (yet).
#[derive(Debug, thiserror::Error)]
enum NotReleased {
    #[error(transparent)]
    Decision(#[from] NotSignedOff),
    #[error("the quarantined message could not be applied: {0}")]
    Apply(#[from] BatchError),
}

/// Passes the message at `sequence` as quarantined if a decision that holds sets it aside.
async fn release(
    context: &WorkerContext,
    projection: Projection,
    sequence: u64,
) -> Result<(), NotReleased> {
    let (message, decision) = signed_off_at(&context.stream, sequence).await?;
    let schema = context.schema(projection);
    let applied =
        apply_quarantined(&context.pool, &schema, projection, &message, &decision).await?;
    tracing::warn!(
        projection = projection.name(),
        sequence,
        subject = %message.subject,
        digest = %decision.digest,
        decided_by = %decision.decided_by,
        decision_sequence = decision.decision_sequence,
        reason = %decision.reason,
        "passed a quarantined message: it was set aside by an auditor's decision"
    );
    context.status.released(projection, applied.checkpoint);
    Ok(())
}

/// Looks for a decision releasing the message at `sequence` every [`QUARANTINE_POLL`] until one
/// does (true) or the projector stops (false). A decision that does not hold is logged once.
async fn wait_for_release(
    context: &WorkerContext,
    projection: Projection,
    sequence: u64,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut reported = String::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(QUARANTINE_POLL) => {}
            _ = shutdown.changed() => return false,
        }
        match release(context, projection, sequence).await {
            Ok(()) => return true,
            Err(NotReleased::Decision(NotSignedOff::NoDecision(_))) => {}
            Err(e) => {
                let why = e.to_string();
                if why != reported {
                    tracing::warn!(projection = projection.name(), sequence, reason = %why, "the projection stays stopped");
                    reported = why;
                }
            }
        }
    }
}

async fn run_once(
    context: &WorkerContext,
    projection: Projection,
    shutdown: &mut watch::Receiver<bool>,
    anew: &mut bool,
) -> Result<(), RunError> {
    let transient = |e: &dyn std::fmt::Display| RunError::Transient(e.to_string());
    let (checkpoint, _) = context
        .checkpoint(projection)
        .await
        .map_err(|e| transient(&e))?;
    context.status.resumed_at(projection, checkpoint);
    let consumer = context
        .consumer(projection, checkpoint, *anew)
        .await
        .map_err(|e| transient(&e))?;
    *anew = false;
    let mut watchdog = Watchdog::new(checkpoint);
    let schema = context.schema(projection);
    // A stop recorded before this start is cleared once the projection shows that it runs:
    // by applying a batch (which clears it in the batch's transaction) or by finding nothing
    // left to apply.
    let mut stop_cleared = false;
    let mut heads = HeadCache::default();
    // What the next round applies: fetched while the batch before it was applied.
    let mut next = fetch_until(
        shutdown,
        &consumer,
        &context.stream,
        checkpoint,
        context.batch_size,
        tokio::time::Instant::now(),
    )
    .await;
    loop {
        let Some((asked_at, fetched)) = next else {
            return Ok(());
        };
        let messages = fetched?;
        let delivered = messages
            .iter()
            .map(|m| {
                let sequence = m.info().map_err(|e| transient(&e))?.stream_sequence;
                Ok(Delivered {
                    sequence,
                    payload: m.payload.clone(),
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let (Some(last), Some(after)) = (messages.last(), delivered.last().map(|d| d.sequence))
        else {
            watchdog.check(&context.stream).await?;
            if !stop_cleared {
                clear_stall(&context.pool, &schema, projection)
                    .await
                    .map_err(|e| transient(&e))?;
                stop_cleared = true;
            }
            next = fetch_until(
                shutdown,
                &consumer,
                &context.stream,
                watchdog.checkpoint,
                context.batch_size,
                tokio::time::Instant::now(),
            )
            .await;
            continue;
        };
        // The next batch is asked for while this one is applied, so that neither the database
        // nor NATS waits on the other: the server delivers after what it delivered, whatever is
        // acknowledged, and nothing of it is applied before this batch commits. A stop leaves it
        // unacknowledged, and the next start makes the consumer anew at the checkpoint.
        // A small batch's successor is held (see `WorkerContext::batch_interval`).
        let not_before = if messages.len() < context.batch_size {
            asked_at + context.batch_interval
        } else {
            tokio::time::Instant::now()
        };
        let (applied, fetched) = tokio::join!(
            apply_retrying(context, &schema, projection, &delivered, &mut heads),
            fetch_until(
                shutdown,
                &consumer,
                &context.stream,
                after,
                context.batch_size,
                not_before,
            )
        );
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                // Find the culprit one commit at a time, so that everything before it is applied
                // and acknowledged and the stall names its exact sequence.
                let mut stall = None;
                for (index, message) in delivered.iter().enumerate() {
                    match apply_retrying(
                        context,
                        &schema,
                        projection,
                        std::slice::from_ref(message),
                        &mut heads,
                    )
                    .await
                    {
                        Ok(applied) => {
                            messages[index].ack().await.map_err(|e| transient(&e))?;
                            context.status.applied(
                                projection,
                                applied.checkpoint,
                                applied.commits,
                                applied.events,
                            );
                        }
                        Err(BatchError::Gap { expected, got })
                            if stream_holds(&context.stream, expected).await? =>
                        {
                            return Err(RunError::Remake(Remake::LostDeliveries { expected, got }));
                        }
                        Err(e) => {
                            stall = Some(Stall {
                                sequence: e.stall_sequence().or(Some(message.sequence)),
                                reason: e.to_string(),
                            });
                            break;
                        }
                    }
                }
                return Err(RunError::Stalled(stall.unwrap_or(Stall {
                    sequence: error.stall_sequence(),
                    reason: error.to_string(),
                })));
            }
        };
        stop_cleared |= applied.commits > 0;
        watchdog.passed(applied.checkpoint);
        if applied.commits == 0 {
            // Only redeliveries of what is applied: no progress either.
            watchdog.check(&context.stream).await?;
        }
        // Acknowledged only once committed; with AckPolicy::All the last ack covers the batch.
        last.ack().await.map_err(|e| transient(&e))?;
        context.status.applied(
            projection,
            applied.checkpoint,
            applied.commits,
            applied.events,
        );
        next = fetched;
    }
}

/// [`fetch`] asked for at `not_before` or later, with the instant it was asked for; or `None`
/// once `shutdown` turns true, also while it waits to ask (nothing fetched is lost: what is not
/// acknowledged is delivered again).
async fn fetch_until(
    shutdown: &mut watch::Receiver<bool>,
    consumer: &PullConsumer,
    stream: &stream::Stream,
    after: u64,
    max: usize,
    not_before: tokio::time::Instant,
) -> Option<(
    tokio::time::Instant,
    Result<Vec<jetstream::Message>, RunError>,
)> {
    let asked = async {
        tokio::time::sleep_until(not_before).await;
        let asked_at = tokio::time::Instant::now();
        (asked_at, fetch(consumer, stream, after, max).await)
    };
    tokio::select! {
        fetched = asked => Some(fetched),
        _ = shutdown.changed() => None,
    }
}

/// Applies a batch, trying again on transient failures until it commits; returns the first
/// failure that is not transient.
async fn apply_retrying(
    context: &WorkerContext,
    schema: &str,
    projection: Projection,
    delivered: &[Delivered],
    heads: &mut HeadCache,
) -> Result<crate::batch::Applied, BatchError> {
    let mut delay = Duration::from_millis(100);
    loop {
        match apply_batch(
            &context.pool,
            &context.decoder,
            schema,
            projection,
            delivered,
            heads,
        )
        .await
        {
            Err(e) if e.is_transient() => {
                tracing::warn!(projection = projection.name(), error = %e, "batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            outcome => return outcome,
        }
    }
}

/// Every second, publishes each projection's lag in events and seconds.
pub async fn watch_lag(context: WorkerContext, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Ok(info) = context.stream.get_info().await else {
            continue;
        };
        let head = info.state.last_sequence;
        let head_stored_at = chrono::DateTime::from_timestamp_nanos(
            info.state.last_timestamp.unix_timestamp_nanos() as i64,
        );
        for projection in Projection::ALL {
            if let Ok((checkpoint, recorded)) = context.checkpoint(projection).await {
                let behind = head.saturating_sub(checkpoint);
                let seconds = match (behind, recorded) {
                    (0, _) | (_, None) => 0.0,
                    // How much older the newest applied commit is than the stream's newest.
                    (_, Some(at)) => {
                        (head_stored_at - at).num_milliseconds().max(0) as f64 / 1000.0
                    }
                };
                context.status.lag(projection, behind, seconds);
                context.status.observed(projection, checkpoint);
            }
        }
    }
}
