//! One active writer per projection, however many projector instances run: an instance applies a
//! projection only while it holds that projection's leader lock, a PostgreSQL session advisory
//! lock taken on a connection of its own. The others stand by, trying for the lock every
//! [`STANDBY_POLL`]; when the holder dies, PostgreSQL ends its session, frees the lock, and a
//! stand-by takes over from the checkpoint.
//!
//! The lock only keeps the stand-bys from pulling from the projection's durable consumer (two
//! pullers would split its messages between them). Exactly-once does not rest on it: every batch
//! still takes the projection's transaction lock and applies only what follows the checkpoint.

use std::time::Duration;

use readmodel::Projection;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::status::Stall;
use crate::worker::{self, WorkerContext};

/// How often a stand-by tries for the lock: the longest a take-over waits after the holder's
/// session ended.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

/// How often the holder checks that its lock connection is alive; a dead one means the lock may
/// already be someone else's, so the worker stops.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The session lock key for `schema`'s leader: the projection's batch lock key, turned, so that
/// holding leadership never blocks the holder's own batches (they lock the batch key on other
/// connections) nor a rebuild's switch.
pub fn leader_key(schema: &str) -> i64 {
    readmodel::lock_key(schema) ^ 0x6b68_3633_6c65_6164
}

/// Stands by for `projection`'s lock, runs its worker while holding it, and stands by again if
/// the lock is lost, until `shutdown` turns true.
pub async fn lead(
    context: WorkerContext,
    projection: Projection,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = leader_key(&context.schema(projection));
    context.status.activate(projection, false);
    let mut standby: Option<PgConnection> = None;
    let mut reported = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match try_lock(&context, &mut standby, key).await {
            Ok(Some(lock)) => {
                reported = false;
                tracing::info!(
                    projection = projection.name(),
                    "active: this instance applies the projection"
                );
                context.status.activate(projection, true);
                let stopped = hold(&context, projection, lock, &mut shutdown).await;
                context.status.activate(projection, false);
                if stopped {
                    return;
                }
                continue;
            }
            Ok(None) if !reported => {
                tracing::info!(
                    projection = projection.name(),
                    "standing by: another instance applies the projection"
                );
                reported = true;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(projection = projection.name(), %error, "cannot try for the projection's lock; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Tries for the lock on the stand-by connection (opening one first if there is none): the
/// connection holding it, or `None` with the connection kept for the next try.
async fn try_lock(
    context: &WorkerContext,
    standby: &mut Option<PgConnection>,
    key: i64,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = match standby.take() {
        Some(conn) => conn,
        // Out of the pool for good: the lock lives as long as this session, not a pooled one.
        None => context.pool.acquire().await?.detach(),
    };
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await?;
    if locked {
        return Ok(Some(conn));
    }
    *standby = Some(conn);
    Ok(None)
}

/// Runs the worker while `lock` lives. True when the projector stops (the lock is given back),
/// false when the lock connection died and the worker was stopped.
async fn hold(
    context: &WorkerContext,
    projection: Projection,
    mut lock: PgConnection,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let (stop, stopped) = watch::channel(false);
    let mut worker = tokio::spawn(worker::run(context.clone(), projection, stopped));
    let mut running = true;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let stopping = loop {
        tokio::select! {
            _ = shutdown.changed() => break true,
            _ = heartbeat.tick() => {
                if let Err(error) = sqlx::query("SELECT 1").execute(&mut lock).await {
                    tracing::error!(projection = projection.name(), %error, "lost the projection's lock; stopping its worker and standing by");
                    break false;
                }
            }
            joined = &mut worker, if running => {
                running = false;
                // A worker that returns on its own stopped on something it must not skip: it
                // keeps the lock, so that no stand-by runs into the same stop.
                if let Err(e) = joined {
                    panicked(context, projection, &e, shutdown.clone()).await;
                }
            }
        }
    };
    let _ = stop.send(true);
    if running && let Err(e) = worker.await {
        tracing::error!(projection = projection.name(), error = %e, "projection worker panicked while stopping");
    }
    if stopping {
        // Closing the session frees the lock at once, rather than when PostgreSQL notices.
        let _ = lock.close().await;
    }
    stopping
}

/// A panic must not leave a projection silently stopped behind a ready `/readyz`, here or in the
/// query service.
async fn panicked(
    context: &WorkerContext,
    projection: Projection,
    error: &tokio::task::JoinError,
    shutdown: watch::Receiver<bool>,
) {
    tracing::error!(projection = projection.name(), error = %error, "projection worker panicked");
    let stall = Stall {
        sequence: None,
        reason: format!("worker panicked: {error}"),
    };
    context.status.stall(projection, stall.clone());
    worker::persist_stall(context, projection, &stall, shutdown).await;
}
