//! What each projection is doing, shared by the workers, `/readyz` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use readmodel::Projection;
use serde_json::{Value, json};

use crate::decode::Decoder;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: &'static str,
}

/// A projection stopped on something it must not skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub sequence: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Default, Clone)]
struct State {
    /// Holds the projection's leader lock (see `leader`): applies it, rather than standing by.
    active: bool,
    applied: u64,
    lag_events: u64,
    lag_seconds: f64,
    stall: Option<Stall>,
}

/// Progress, lag and stalls of every projection, with their Prometheus metrics.
#[derive(Debug)]
pub struct Status {
    states: Mutex<BTreeMap<&'static str, State>>,
    events_applied: Family<ProjectionLabel, Counter>,
    batch_sizes: Family<ProjectionLabel, Histogram>,
    lag_events: Family<ProjectionLabel, Gauge>,
    lag_milliseconds: Family<ProjectionLabel, Gauge>,
    stalled: Family<ProjectionLabel, Gauge>,
    stalled_sequence: Family<ProjectionLabel, Gauge>,
    checkpoint: Family<ProjectionLabel, Gauge>,
    quarantined: Family<ProjectionLabel, Counter>,
    consumers_remade: Family<ProjectionLabel, Counter>,
    active: Family<ProjectionLabel, Gauge>,
    registry: Mutex<Registry>,
}

fn label(projection: Projection) -> ProjectionLabel {
    ProjectionLabel {
        projection: projection.name(),
    }
}

impl Default for Status {
    fn default() -> Self {
        let events_applied = Family::<ProjectionLabel, Counter>::default();
        let batch_sizes = Family::<ProjectionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 12))
        });
        let (lag_events, lag_milliseconds, stalled, stalled_sequence, checkpoint) =
            Default::default();
        let quarantined = Family::<ProjectionLabel, Counter>::default();
        let consumers_remade = Family::<ProjectionLabel, Counter>::default();
        let active = Family::<ProjectionLabel, Gauge>::default();
        let mut registry = Registry::with_prefix("kh63_projector");
        registry.register(
            "events_applied",
            "Events applied to the read model",
            events_applied.clone(),
        );
        registry.register(
            "batch_size",
            "Commits applied per transaction",
            batch_sizes.clone(),
        );
        registry.register(
            "lag_events",
            "Stream commits not yet applied",
            Family::clone(&lag_events),
        );
        registry.register(
            "lag_milliseconds",
            "Age of the newest applied commit while behind the stream, 0 when caught up",
            Family::clone(&lag_milliseconds),
        );
        registry.register(
            "stalled",
            "1 when the projection stopped on an event it must not skip",
            Family::clone(&stalled),
        );
        registry.register(
            "stalled_sequence",
            "Stream sequence the projection stopped at",
            Family::clone(&stalled_sequence),
        );
        registry.register(
            "checkpoint",
            "Last stream sequence applied",
            Family::clone(&checkpoint),
        );
        registry.register(
            "quarantined",
            "Messages passed as quarantined, set aside by an auditor's decision",
            quarantined.clone(),
        );
        registry.register(
            "consumers_remade",
            "Durable consumers made anew at the checkpoint: stuck, deliveries lost, or a pull request left unanswered",
            consumers_remade.clone(),
        );
        registry.register(
            "active",
            "1 while this instance holds the projection's lock and applies it, 0 while it stands by",
            Family::clone(&active),
        );
        Self {
            states: Mutex::default(),
            events_applied,
            batch_sizes,
            lag_events,
            lag_milliseconds,
            stalled,
            stalled_sequence,
            checkpoint,
            quarantined,
            consumers_remade,
            active,
            registry: Mutex::new(registry),
        }
    }
}

impl Status {
    fn with_state<R>(&self, projection: Projection, f: impl FnOnce(&mut State) -> R) -> R {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(states.entry(projection.name()).or_default())
    }

    /// This instance took the projection's lock (`true`) or stands by (`false`). A stop belongs
    /// to the instance that applies the projection: one standing by reports none.
    pub fn activate(&self, projection: Projection, active: bool) {
        self.active
            .get_or_create(&label(projection))
            .set(i64::from(active));
        if !active {
            self.stalled.get_or_create(&label(projection)).set(0);
            self.stalled_sequence
                .get_or_create(&label(projection))
                .set(0);
        }
        self.with_state(projection, |s| {
            s.active = active;
            if !active {
                s.stall = None;
            }
        });
    }

    /// How many projections this instance applies (the others it stands by for).
    pub fn active(&self) -> usize {
        let states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        states.values().filter(|s| s.active).count()
    }

    pub fn applied(&self, projection: Projection, checkpoint: u64, commits: usize, events: usize) {
        self.events_applied
            .get_or_create(&label(projection))
            .inc_by(events as u64);
        self.batch_sizes
            .get_or_create(&label(projection))
            .observe(commits as f64);
        self.checkpoint
            .get_or_create(&label(projection))
            .set(checkpoint as i64);
        self.with_state(projection, |s| s.applied = checkpoint);
    }

    /// The worker found its consumer gone wrong and makes it anew at the checkpoint.
    pub fn consumer_remade(&self, projection: Projection) {
        self.consumers_remade
            .get_or_create(&label(projection))
            .inc();
    }

    /// The checkpoint a worker found on start, before it applies anything.
    pub fn resumed_at(&self, projection: Projection, checkpoint: u64) {
        self.checkpoint
            .get_or_create(&label(projection))
            .set(checkpoint as i64);
        self.with_state(projection, |s| s.applied = checkpoint);
    }

    /// The checkpoint in the database, as the lag watcher read it: what an instance standing by
    /// reports (the active one reports what it applied).
    pub fn observed(&self, projection: Projection, checkpoint: u64) {
        self.with_state(projection, |s| {
            if !s.active {
                s.applied = checkpoint;
            }
        });
    }

    pub fn lag(&self, projection: Projection, events: u64, seconds: f64) {
        self.lag_events
            .get_or_create(&label(projection))
            .set(events as i64);
        self.lag_milliseconds
            .get_or_create(&label(projection))
            .set((seconds * 1000.0) as i64);
        self.with_state(projection, |s| {
            s.lag_events = events;
            s.lag_seconds = seconds;
        });
    }

    pub fn stall(&self, projection: Projection, stall: Stall) {
        self.stalled.get_or_create(&label(projection)).set(1);
        self.stalled_sequence
            .get_or_create(&label(projection))
            .set(stall.sequence.unwrap_or_default() as i64);
        self.with_state(projection, |s| s.stall = Some(stall));
    }

    /// The projection passed the message it had stopped at as quarantined, and runs again.
    pub fn released(&self, projection: Projection, checkpoint: u64) {
        self.quarantined.get_or_create(&label(projection)).inc();
        self.stalled.get_or_create(&label(projection)).set(0);
        self.stalled_sequence
            .get_or_create(&label(projection))
            .set(0);
        self.checkpoint
            .get_or_create(&label(projection))
            .set(checkpoint as i64);
        self.with_state(projection, |s| {
            s.applied = checkpoint;
            s.stall = None;
        });
    }

    pub fn stalled(&self, projection: Projection) -> Option<Stall> {
        self.with_state(projection, |s| s.stall.clone())
    }

    /// Per-projection state for `/readyz`, and whether all are healthy.
    pub fn report(&self) -> (bool, Value) {
        let states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let healthy = states.values().all(|s| s.stall.is_none());
        let projections: serde_json::Map<String, Value> = states
            .iter()
            .map(|(name, s)| {
                (
                    (*name).to_owned(),
                    json!({
                        "role": if s.active { "active" } else { "standby" },
                        "checkpoint": s.applied,
                        "lag_events": s.lag_events,
                        "lag_seconds": s.lag_seconds,
                        "stalled": s.stall.as_ref().map(|stall| json!({ "sequence": stall.sequence, "reason": stall.reason })),
                    }),
                )
            })
            .collect();
        (healthy, Value::Object(projections))
    }

    /// Adds `decoder`'s counters to the metrics.
    pub fn count_decoding(&self, decoder: &Decoder) {
        let (decoded, taken) = decoder.counters();
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        registry.register(
            "commits_decoded",
            "Delivered messages decoded, and their events hashed, for the projections",
            decoded,
        );
        registry.register(
            "commits_decoded_shared",
            "Commits a projection took as another had decoded and hashed them, instead of again",
            taken,
        );
    }

    pub fn render(&self) -> String {
        service_kit::metrics::render(&self.registry)
    }
}
