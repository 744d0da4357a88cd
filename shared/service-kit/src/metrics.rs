//! The Prometheus exposition every service's `/metrics` answers with.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// The OpenMetrics text exposition of `registry`. A registry left poisoned by a panicking writer
/// still holds valid metrics, so it is rendered all the same.
pub fn render(registry: &Mutex<Registry>) -> String {
    let mut out = String::new();
    let registry = registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(e) = encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}
