//! Shared state of the HTTP edge.

use std::sync::Arc;

use axum::extract::FromRef;
use command_api::auth::TokenKeys;

use crate::config::Config;
use crate::db::ReadModel;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct AppState {
    pub read_model: ReadModel,
    pub keys: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Builds the state without touching the database (the pool connects lazily).
    pub fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            read_model: ReadModel::connect(config)?,
            keys: Arc::new(TokenKeys::new(&config.token_secret)?),
            metrics: Arc::new(Metrics::default()),
        })
    }
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}
