//! Read-your-writes: a command answer carries the stream sequence of its commit; a query that
//! passes it as `min_sequence` is answered only from a read model that has applied it.
//!
//! The projector commits each batch together with its checkpoint, so "checkpoint ≥ N" means
//! every commit up to N is visible to any snapshot taken afterwards. The guard reads the
//! checkpoints of the projections the route reads (cheap primary-key reads) until they reach N or
//! the wait runs out, and only then does the handler take its snapshot. It reads them again as
//! soon as a projection announces a commit (`NOTIFY` on [`readmodel::CHECKPOINT_CHANNEL`], heard
//! by one listening session per service), and otherwise every 5 ms backing off to every 50 ms:
//! polling alone made a reader see a commit up to a whole back-off step after it was visible, and
//! the poll stays for when the listener is not connected.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use readmodel::Projection;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::error::QueryError;
use crate::params::{Param, Params};
use crate::state::AppState;

/// Default and longest wait, in milliseconds.
pub const DEFAULT_WAIT_MS: i64 = 2_000;
pub const MAX_WAIT_MS: i64 = 10_000;
/// The least time given to asking NATS how far the stream has got.
const HEAD_CHECK: Duration = Duration::from_millis(100);

/// The parameters every data route takes.
pub const PARAMS: &[Param] = &[
    Param::integer(
        "min_sequence",
        0,
        i64::MAX,
        "Answer only once the read model has applied the stream up to this sequence (the `stream_sequence` of a command answer); 503 projection-behind if it has not within `wait_ms`; 422 sequence-not-reached if the stream itself has not.",
    ),
    Param::integer(
        "wait_ms",
        0,
        MAX_WAIT_MS,
        "How long to wait for `min_sequence`, in milliseconds (default 2000, at most 10000).",
    ),
];

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consistency {
    pub min_sequence: u64,
    pub wait: Duration,
}

impl Consistency {
    pub fn from_params(params: &Params) -> Result<Option<Self>, QueryError> {
        let Some(min_sequence) = params.integer("min_sequence", 0, i64::MAX)? else {
            return Ok(None);
        };
        let wait_ms = params
            .integer("wait_ms", 0, MAX_WAIT_MS)?
            .unwrap_or(DEFAULT_WAIT_MS);
        Ok(Some(Self {
            min_sequence: u64::try_from(min_sequence).unwrap_or(0),
            wait: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
        }))
    }
}

/// Waits until every projection in `reads` has reached `wanted.min_sequence`, or answers
/// projection-behind with the checkpoint that fell short.
pub async fn wait_for(
    state: &AppState,
    reads: &[Projection],
    wanted: Consistency,
) -> Result<(), QueryError> {
    if reads.is_empty() || wanted.min_sequence == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let deadline = started + wanted.wait;
    let mut delay = Duration::from_millis(5);
    let mut announced = state.checkpoint_signal.clone();
    // A sequence the stream has not reached was not handed out by any command answer: no wait
    // can satisfy it. NATS is asked once, alongside the wait rather than before it (a slow answer
    // must not hold back a read whose checkpoint arrives meanwhile), within the wait the caller
    // allowed but at least HEAD_CHECK (a local round trip takes about a millisecond); without an
    // answer from NATS the wait decides, so dashboards do not depend on NATS.
    let mut head = std::pin::pin!(state.audit_reads.stream_head(wanted.wait.max(HEAD_CHECK)));
    let mut head_pending = true;
    loop {
        // Seen before reading: an announcement from here on wakes the wait below.
        announced.borrow_and_update();
        // A connection per poll, returned before sleeping: waiting readers must not starve the
        // pool.
        let checkpoints = {
            let mut conn = state.read_model.pool.acquire().await?;
            state.read_model.checkpoints(&mut conn).await?
        };
        let behind = reads.iter().find_map(|projection| {
            let checkpoint = checkpoints
                .iter()
                .find(|c| c.projection == projection.name())
                .map_or(0, |c| c.sequence());
            (checkpoint < wanted.min_sequence).then_some((*projection, checkpoint))
        });
        let Some((projection, checkpoint)) = behind else {
            state.metrics.waited(started.elapsed());
            return Ok(());
        };
        let now = Instant::now();
        let until = if head_pending {
            deadline.max(started + HEAD_CHECK)
        } else {
            deadline
        };
        if now >= until {
            state.metrics.waited(started.elapsed());
            state.metrics.projection_behind(projection.name());
            return Err(QueryError::ProjectionBehind {
                projection: projection.name(),
                checkpoint,
                min_sequence: wanted.min_sequence,
            });
        }
        tokio::select! {
            () = tokio::time::sleep(delay.min(until - now)) => {}
            // A closed signal (the listener gone) leaves the poll to it.
            Ok(()) = announced.changed() => {}
            stream_head = &mut head, if head_pending => {
                head_pending = false;
                if let Some(stream_head) = stream_head
                    && wanted.min_sequence > stream_head
                {
                    return Err(QueryError::SequenceNotReached {
                        min_sequence: wanted.min_sequence,
                        stream_head,
                    });
                }
            }
        }
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// A listening session that lasted this long counts as having worked.
const LISTENED_LONG: Duration = Duration::from_secs(30);

/// Listens for the checkpoints of `schemas` on `pool`'s one session and marks the returned signal
/// changed at each, and once on every (re)connection since announcements may have been missed
/// meanwhile.
/// Ends when the last receiver is dropped or the pool is closed. Where LISTEN cannot work (a hot
/// standby refuses it) the waits keep polling; the failure is logged once, then retried quietly.
pub fn listen_for_checkpoints(pool: PgPool, schemas: [String; 2]) -> watch::Receiver<()> {
    let (signal, receiver) = watch::channel(());
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        let mut quiet = false;
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                outcome = listen(&pool, &schemas, &signal) => outcome,
                () = signal.closed() => return,
            };
            if started.elapsed() > LISTENED_LONG {
                // It worked for a while: a new failure is news, and worth a quick retry.
                backoff = Duration::from_millis(200);
                quiet = false;
            }
            let Err(error) = outcome;
            match error {
                sqlx::Error::PoolClosed => return,
                error if !quiet => {
                    tracing::warn!(%error, "cannot listen for checkpoints; read-your-writes waits poll until it can");
                    quiet = true;
                }
                error => tracing::debug!(%error, "still cannot listen for checkpoints"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = signal.closed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
    receiver
}

/// One listening session, until it fails.
async fn listen(
    pool: &PgPool,
    schemas: &[String; 2],
    signal: &watch::Sender<()>,
) -> Result<Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(readmodel::CHECKPOINT_CHANNEL).await?;
    signal.send_replace(());
    loop {
        let notification = listener.recv().await?;
        if schemas.iter().any(|s| s == notification.payload()) {
            signal.send_replace(());
        }
    }
}
