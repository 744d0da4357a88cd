//! The time-travel snapshot maintenance beside the projections: a thread of its own, at a lower
//! scheduling priority, with a runtime and a pool of its own.
//!
//! A refresh folds and encodes snapshots for seconds at a time (the first one after a long
//! catch-up folds the whole log). On the projections' runtime it would hold back their batches
//! and checkpoints; on an ordinary thread it still takes its share of the two cores from the live
//! workers, and a reader waiting for a command to become visible waits that much longer. At a
//! nice value of [`NICE`] the kernel gives it about a tenth of a contended core, and all of an
//! idle one.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::oneshot;

/// Connections of the maintenance's own pool, so that the projections' batches never wait for
/// one it holds: a refresh holds three at once (its lock, the events it reads, the snapshots it
/// writes).
const SNAPSHOT_CONNECTIONS: u32 = 3;

/// The thread's nice value: weight 110 against 1024 for a thread at 0 (the kernel's table).
const NICE: i32 = 10;

/// Starts the maintenance on its own thread until `stop` resolves; the returned task ends when
/// the thread has (its last refresh finished and its pool closed).
pub(crate) fn spawn(
    options: PgConnectOptions,
    audit_schema: String,
    every: u64,
    interval: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (ended, end) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("snapshots".to_owned())
        .spawn(move || {
            // Held, never sent: dropped when the thread ends, which ends the wait below.
            let _ended = ended;
            lower_priority();
            maintain(options, audit_schema, every, interval, stop);
        });
    if let Err(error) = thread {
        tracing::error!(%error, "time-travel snapshots are not maintained: no thread");
    }
    // A thread that never started dropped the sender at once.
    tokio::spawn(async move {
        let _ = end.await;
    })
}

/// Lowers the calling thread's priority (on Linux the nice value is a thread's, and the threads
/// this one starts, its runtime's blocking pool among them, inherit it). A failure only costs
/// the live workers some CPU, so it is logged, not fatal.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), NICE) {
            tracing::warn!(%error, nice = NICE, "the snapshot thread keeps its priority");
        }
    }
}

/// Keeps the snapshots fresh until `stop` resolves, on the calling thread.
fn maintain(
    options: PgConnectOptions,
    audit_schema: String,
    every: u64,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "time-travel snapshots are not maintained: no runtime");
            return;
        }
    };
    runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(SNAPSHOT_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        time_travel::snapshot::maintain(pool.clone(), audit_schema, every, interval, stop).await;
        pool.close().await;
    });
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The maintenance's thread runs at the lower priority, and only that thread: the caller's
    /// priority is what it was.
    #[test]
    fn the_thread_runs_at_a_lower_priority_and_only_it() {
        let before = rustix::process::getpriority_process(None).expect("own priority");
        let inside = std::thread::spawn(|| {
            lower_priority();
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("the thread's priority")
        })
        .join()
        .expect("the thread ran");
        assert_eq!(inside, before.max(NICE));
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("own priority"),
            before
        );
    }
}
