//! Keeping snapshots fresh from a long-running process, apart from the builder itself so that a
//! one-off refresh (`projector replay --snapshot`) does not carry a loop and a timer.

use sqlx::PgPool;

use crate::TimeTravel;

/// Keeps the snapshots fresh: refreshes every `interval` until `stop` resolves. For a
/// long-running process (the projector service may spawn it beside its workers).
pub async fn maintain(
    pool: PgPool,
    audit_schema: String,
    every: u64,
    interval: std::time::Duration,
    stop: impl Future<Output = ()>,
) {
    let tt = match TimeTravel::new(&audit_schema) {
        Ok(tt) => tt,
        Err(e) => {
            tracing::error!(error = %e, "time-travel snapshots are not maintained");
            return;
        }
    };
    let work = async {
        loop {
            match tt.refresh_snapshots(&pool, every).await {
                Ok(report) => tracing::debug!(?report, "time-travel snapshots refreshed"),
                Err(e) => tracing::warn!(error = %e, "refreshing time-travel snapshots failed"),
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = stop => {}
    }
}
