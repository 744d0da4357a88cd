//! Prometheus metrics of the query side.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's operation id (`plan_overview`, …), or `unmatched`.
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    pub projection: &'static str,
}

/// Counters and histograms, plus the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    query_seconds: Family<EndpointLabels, Histogram>,
    wait_seconds: Histogram,
    behind: Family<ProjectionLabels, Counter>,
    registry: Mutex<Registry>,
}

fn latency_histogram() -> Histogram {
    // 250 µs … ~8 s: an indexed lookup takes a millisecond, the compliance matrix tens.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let query_seconds = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let wait_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let behind = Family::<ProjectionLabels, Counter>::default();
        let mut registry = Registry::with_prefix("kh63_query");
        registry.register(
            "requests",
            "HTTP requests answered, by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time to answer a request once authorised and caught up (the database queries and their encoding), by endpoint",
            query_seconds.clone(),
        );
        registry.register(
            "consistency_wait_seconds",
            "Time spent waiting for projections to reach a requested min_sequence",
            wait_seconds.clone(),
        );
        registry.register(
            "projection_behind",
            "Requests answered 503 projection-behind, by projection",
            behind.clone(),
        );
        Self {
            requests,
            query_seconds,
            wait_seconds,
            behind,
            registry: Mutex::new(registry),
        }
    }
}

impl Metrics {
    pub fn request(&self, endpoint: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
    }

    pub fn query_took(&self, endpoint: &'static str, elapsed: Duration) {
        self.query_seconds
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    pub fn waited(&self, elapsed: Duration) {
        self.wait_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn projection_behind(&self, projection: &'static str) {
        self.behind
            .get_or_create(&ProjectionLabels { projection })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        service_kit::metrics::render(&self.registry)
    }
}
