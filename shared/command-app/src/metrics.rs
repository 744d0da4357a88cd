//! Prometheus metrics of the command side.

use std::sync::Mutex;
use std::time::Duration;

use event_store::EventStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: &'static str,
    pub outcome: &'static str,
}

/// Counters and histograms, plus the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    commands: Family<CommandLabels, Counter>,
    append_seconds: Histogram,
    conflicts: Counter,
    retries: Counter,
    idempotency_waits: Counter,
    idempotency_takeovers: Counter,
    registry: Mutex<Registry>,
}

/// The event store's count of the bursts its appends went to NATS in, read at each scrape: with
/// `append_duration_seconds_count` (one per append), how many appends went out together.
#[derive(Debug)]
struct AppendBursts(EventStore);

impl Collector for AppendBursts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let bursts = ConstCounter::new(self.0.publish_bursts());
        let metric = encoder.encode_descriptor(
            "append_bursts",
            "Bursts the appends were put on the NATS connection in (fewer than the appends when they went out together)",
            None,
            bursts.metric_type(),
        )?;
        bursts.encode(metric)
    }
}

impl Metrics {
    /// The command side's metrics, with the bursts of `store`'s appends.
    pub fn new(store: &EventStore) -> Self {
        let commands = Family::<CommandLabels, Counter>::default();
        // 100 µs … ~3 s: a local R1 append takes well under a millisecond, an R3 one a few.
        let append_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let conflicts = Counter::default();
        let retries = Counter::default();
        let idempotency_waits = Counter::default();
        let idempotency_takeovers = Counter::default();
        let mut registry = Registry::with_prefix("kh63_command");
        registry.register(
            "commands",
            "Commands handled, by command and outcome",
            commands.clone(),
        );
        registry.register(
            "append_duration_seconds",
            "Latency of one JetStream append (publish to ack)",
            append_seconds.clone(),
        );
        registry.register(
            "append_conflicts",
            "Appends refused because the aggregate changed since it was loaded",
            conflicts.clone(),
        );
        registry.register(
            "command_retries",
            "Decisions made again after a conflict",
            retries.clone(),
        );
        registry.register(
            "idempotency_waits",
            "Sends that found their Idempotency-Key held by another send and waited for its answer",
            idempotency_waits.clone(),
        );
        registry.register(
            "idempotency_takeovers",
            "Idempotency-Key claims taken over because their holder released them or outlived its lease",
            idempotency_takeovers.clone(),
        );
        registry.register_collector(Box::new(AppendBursts(store.clone())));
        Self {
            commands,
            append_seconds,
            conflicts,
            retries,
            idempotency_waits,
            idempotency_takeovers,
            registry: Mutex::new(registry),
        }
    }

    pub fn command(&self, command: &'static str, outcome: &'static str) {
        self.commands
            .get_or_create(&CommandLabels { command, outcome })
            .inc();
    }

    pub fn append_took(&self, elapsed: Duration) {
        self.append_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn idempotency_wait(&self) {
        self.idempotency_waits.inc();
    }

    pub fn idempotency_takeover(&self) {
        self.idempotency_takeovers.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        service_kit::metrics::render(&self.registry)
    }
}
