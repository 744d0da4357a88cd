//! Shared state of the HTTP edge.

use std::sync::Arc;

use axum::extract::FromRef;
use command_api::auth::TokenKeys;

use crate::config::Config;
use crate::db::ReadModel;
use crate::metrics::Metrics;
use crate::reads::AuditReads;

#[derive(Debug, Clone)]
pub struct AppState {
    pub read_model: ReadModel,
    pub keys: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
    /// Where reads of the audit trail are recorded; also the way to the event stream.
    pub audit_reads: Arc<AuditReads>,
    /// Audit verifications walk everything: one at a time.
    pub verification: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// Builds the state without waiting for the database (the pools connect lazily) or NATS (the
    /// event store is opened in the background). Needs a Tokio runtime.
    pub async fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            read_model: ReadModel::connect(config)?,
            keys: Arc::new(TokenKeys::new(&config.token_secret)?),
            metrics: Arc::new(Metrics::default()),
            audit_reads: Arc::new(AuditReads::connect(config).await?),
            verification: Arc::new(tokio::sync::Mutex::new(())),
        })
    }
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}
