//! Shared state of the HTTP edge.

use std::sync::Arc;

use axum::extract::FromRef;
use service_kit::auth::TokenKeys;

use crate::StartError;
use crate::config::Config;
use crate::db::ReadModel;
use crate::metrics::Metrics;
use crate::readiness::{Bounds, StreamWatch};
use crate::reads::AuditReads;

/// Decoded time-travel snapshots kept in memory: a few recent instants on each axis.
const SNAPSHOT_CACHE: usize = 8;

#[derive(Debug, Clone)]
pub struct AppState {
    pub read_model: ReadModel,
    pub keys: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
    /// Where reads of the audit trail are recorded; also the way to the event stream.
    pub audit_reads: Arc<AuditReads>,
    /// As-of folds over the audit projection, with decoded snapshots cached between answers.
    pub time_travel: time_travel::TimeTravel,
    /// Audit verifications walk everything: one at a time.
    pub verification: Arc<tokio::sync::Mutex<()>>,
    /// How far behind the stream the read model may be and still be ready.
    pub readiness: Bounds,
    /// The stream's head as last seen, for judging the lag when NATS does not answer.
    pub stream_watch: Arc<StreamWatch>,
    /// Changes whenever one of the projections commits a checkpoint: wakes read-your-writes waits.
    pub checkpoint_signal: tokio::sync::watch::Receiver<()>,
}

impl AppState {
    /// Builds the state without waiting for the database (the pools connect lazily) or NATS (the
    /// event store is opened in the background). Needs a Tokio runtime.
    pub async fn new(config: &Config) -> Result<Self, StartError> {
        let read_model = ReadModel::connect(config)?;
        let checkpoint_signal = crate::consistency::listen_for_checkpoints(
            read_model.listen.clone(),
            read_model.schemas.clone(),
        );
        let time_travel =
            time_travel::TimeTravel::new(&read_model.audit_schema)?.with_cache(SNAPSHOT_CACHE);
        Ok(Self {
            read_model,
            keys: Arc::new(TokenKeys::rotating(
                &config.token_secret,
                config.previous_token_secret.as_deref(),
            )?),
            metrics: Arc::new(Metrics::default()),
            audit_reads: Arc::new(AuditReads::connect(config).await?),
            time_travel,
            verification: Arc::new(tokio::sync::Mutex::new(())),
            readiness: config.readiness,
            stream_watch: Arc::new(StreamWatch::default()),
            checkpoint_signal,
        })
    }
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}
