//! Load generator for the command side, each mode next to a raw JetStream limit measured in the
//! same run — in alternating slices (`--rounds`), so that load that comes and goes on a shared
//! machine weighs on both sides alike:
//!
//! - throughput (default): `clients` closed loops through HTTP, each on its own item and its own
//!   keep-alive connection ([`crate::keepalive`]), waiting for its answer before sending the next
//!   command; then the same shape of raw publishes of the same commit payload, so the ratio shows
//!   what the service adds to the bare append;
//! - `--rate N`: commands sent at a fixed rate whatever the answers before them (open loop), with
//!   latency counted from the moment each was due, so a slow answer cannot hide the ones queued
//!   behind it; a sample of them is then read back through the query service with
//!   `min_sequence` = the answer's `stream_sequence` (read-your-writes), which gives how stale the
//!   read side is; the raw side publishes at the same rate;
//! - `--hot-item`: every client on one item, so commands conflict; the accepted answers are
//!   checked against the item's commits in the stream (each accepted command's events stored
//!   exactly once, nothing else), next to raw publishers racing on one subject;
//! - `--hot-share P`: throughput, with P % of all commands (spread evenly) on one item shared by
//!   every client: the service's conflicts and retries are read from its metrics, and the shared
//!   item's commits are checked as with `--hot-item`, so that none is lost or stored twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use chrono::{Days, NaiveDate};
use clap::Args;
use clap::builder::RangedU64ValueParser;
use event_store::{EventStore, StoreError};
use futures::future::join_all;
use remediation_domain::text::ItemId;
use remediation_domain::{Actor, AggregateRef, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::NatsError;
use service_kit::auth::{TokenError, TokenKeys, WeakSecret};
use service_kit::config::{ConfigError, stream_settings, token_secret};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::keepalive::{Connections, KeepAliveError};
use crate::nats::NatsArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the command API (`http://host:port`: the closed loops speak plain HTTP/1.1).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients, each on its own item (with --hot-item, all on the same one).
    #[arg(long, default_value_t = 32, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    clients: usize,
    /// Seconds each side (HTTP, raw) runs in all.
    #[arg(long, default_value_t = 10, value_parser = RangedU64ValueParser::<u64>::new().range(1..=3_600))]
    seconds: u64,
    /// Each side's time in this many slices, HTTP and raw alternating, so that a change of load
    /// on the machine hits both alike.
    #[arg(long, default_value_t = 5, value_parser = RangedU64ValueParser::<u32>::new().range(1..=100))]
    rounds: u32,
    /// Send this many commands per second, each when it is due (open loop), and measure latency
    /// and read-your-writes staleness instead of throughput.
    #[arg(long, conflicts_with_all = ["hot_item", "hot_share"], value_parser = RangedU64ValueParser::<u64>::new().range(1..=100_000))]
    rate: Option<u64>,
    /// With --rate: how many items the commands go round.
    #[arg(long, default_value_t = 256, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    items: usize,
    /// With --rate: every how many commands one is read back through the query API (the reads
    /// load the machine too, so not too many).
    #[arg(long, default_value_t = 50, value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    sample_every: u64,
    /// With --rate: base URL of the query API.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    query_url: String,
    /// Every client on one item: conflicts (409), and a check that the stream holds exactly the
    /// accepted commits.
    #[arg(long, conflicts_with = "hot_share")]
    hot_item: bool,
    /// Throughput with this percentage of the commands on one item all clients share (the rest
    /// on their own items): conflicts and retries counted, and the shared item's commits checked.
    #[arg(long, value_parser = RangedU64ValueParser::<u64>::new().range(1..=100))]
    hot_share: Option<u64>,
    /// Print the results as one JSON object (read by deploy/bench.sh) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    WeakSecret(#[from] WeakSecret),
    #[error("cannot sign the bench token: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {reason}")]
    JetStream { what: &'static str, reason: String },
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("{what}: {source}")]
    KeepAlive {
        what: &'static str,
        source: KeepAliveError,
    },
    #[error("{what}: the answer is not JSON: {source}")]
    Answer {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{what}: {status} {body}")]
    Refused {
        what: &'static str,
        status: StatusCode,
        body: Value,
    },
    #[error("reading the command service's metrics: {0}")]
    Metrics(String),
    #[error("generated item id {0:?} is invalid")]
    ItemId(String),
    #[error(
        "exactly-once check failed on {item}: {accepted} accepted commands, {stored} commits stored after the run started; {detail}"
    )]
    NotExactlyOnce {
        item: String,
        accepted: usize,
        stored: usize,
        detail: String,
    },
}

fn jetstream_error(what: &'static str) -> impl FnOnce(Box<dyn std::error::Error>) -> BenchError {
    move |e| BenchError::JetStream {
        what,
        reason: e.to_string(),
    }
}

/// Sorted durations.
#[derive(Debug, Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
        self.0.sort_unstable();
    }

    /// Nearest-rank percentile, `p` in 0..=1; zero without samples.
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.0.len() as f64 - 1.0) * p).round().max(0.0) as usize;
        self.0.get(index).copied().unwrap_or_default()
    }

    fn json(&self) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        json!({
            "samples": self.len(),
            "p50_ms": ms(self.percentile(0.5)),
            "p99_ms": ms(self.percentile(0.99)),
            "max_ms": ms(self.percentile(1.0)),
        })
    }

    fn text(&self) -> String {
        format!(
            "p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(1.0)
        )
    }
}

/// How one operation of a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    /// Refused because the target changed underneath (409, or a wrong expected sequence).
    Conflict,
    Failed,
}

#[derive(Debug, Default)]
struct Phase {
    accepted: usize,
    conflicts: usize,
    failed: usize,
    elapsed: Duration,
    /// Of the accepted operations.
    latencies: Latencies,
}

impl Phase {
    /// Adds a later slice of the same side.
    fn merge(&mut self, slice: Phase) {
        self.accepted += slice.accepted;
        self.conflicts += slice.conflicts;
        self.failed += slice.failed;
        self.elapsed += slice.elapsed;
        self.latencies.merge(slice.latencies);
    }

    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "per_second": self.rate().round(),
            "accepted": self.accepted,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "seconds": self.elapsed.as_secs_f64(),
            "latency": self.latencies.json(),
        })
    }

    fn text(&self) -> String {
        format!(
            "{:>9.0} /s  ({} accepted, {} conflicts, {} failed; {})",
            self.rate(),
            self.accepted,
            self.conflicts,
            self.failed,
            self.latencies.text()
        )
    }
}

/// Runs `clients` loops of `op` for `duration` and gathers outcomes and latencies.
async fn drive<F, Fut>(clients: usize, duration: Duration, op: Arc<F>) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let loops = (0..clients).map(|client| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut counts = [0usize; 3];
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = op(client).await;
                if outcome == Outcome::Accepted {
                    latencies.push(sent.elapsed());
                }
                counts[outcome as usize] += 1;
            }
            (counts, latencies)
        })
    });
    let mut counts = [0usize; 3];
    let mut all = Vec::new();
    for (phase_counts, latencies) in join_all(loops).await.into_iter().flatten() {
        for (total, n) in counts.iter_mut().zip(phase_counts) {
            *total += n;
        }
        all.extend(latencies);
    }
    Phase {
        accepted: counts[Outcome::Accepted as usize],
        conflicts: counts[Outcome::Conflict as usize],
        failed: counts[Outcome::Failed as usize],
        elapsed: started.elapsed(),
        latencies: Latencies::new(all),
    }
}

/// Sends `count` operations at `rate` per second, each at its due time whatever the ones before
/// it are doing. An operation yields its outcome and when it was answered (it may go on, as the
/// read-back does): its latency runs from its due time to then. Returns the phase and how far
/// behind its schedule the sender fell at worst.
async fn at_fixed_rate<F, Fut>(rate: u64, count: u64, op: F) -> (Phase, Duration)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = (Outcome, Instant)> + Send + 'static,
{
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    // A late tick is sent at once and still counts from when it was due.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut behind = Duration::ZERO;
    for n in 0..count {
        let due = ticker.tick().await;
        behind = behind.max(due.elapsed());
        let operation = op(n);
        tasks.spawn(async move {
            let (outcome, answered) = operation.await;
            (outcome, answered.saturating_duration_since(due))
        });
    }
    let mut counts = [0usize; 3];
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((outcome, latency)) => {
                if outcome == Outcome::Accepted {
                    latencies.push(latency);
                }
                counts[outcome as usize] += 1;
            }
            Err(_) => counts[Outcome::Failed as usize] += 1,
        }
    }
    let phase = Phase {
        accepted: counts[Outcome::Accepted as usize],
        conflicts: counts[Outcome::Conflict as usize],
        failed: counts[Outcome::Failed as usize],
        elapsed: started.elapsed(),
        latencies: Latencies::new(latencies),
    };
    (phase, behind)
}

/// The command API, as the province office.
#[derive(Debug, Clone)]
struct Commands {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// What the command API answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn outcome(&self) -> Outcome {
        match self.status {
            StatusCode::CREATED => Outcome::Accepted,
            StatusCode::CONFLICT => Outcome::Conflict,
            _ => Outcome::Failed,
        }
    }

    fn stream_sequence(&self) -> Option<u64> {
        self.body.get("stream_sequence").and_then(Value::as_u64)
    }

    fn command_id(&self) -> Option<&str> {
        self.body.get("command_id").and_then(Value::as_str)
    }
}

impl Commands {
    async fn send(&self, command: &'static str, body: &Value) -> Result<Answer, BenchError> {
        let http = |source| BenchError::Http {
            what: command,
            source,
        };
        let response = self
            .http
            .post(format!("{}{}", self.url, command_path(command)))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        let body = response.json().await.map_err(http)?;
        Ok(Answer { status, body })
    }

    /// The service's conflict counters now.
    async fn counters(&self) -> Result<ServiceCounters, BenchError> {
        let text = async {
            self.http
                .get(format!("{}/metrics", self.url))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        }
        .await
        .map_err(|e| BenchError::Metrics(e.to_string()))?;
        ServiceCounters::parse(&text)
    }

    /// Sends a setup command that must succeed.
    async fn must(&self, command: &'static str, body: Value) -> Result<Answer, BenchError> {
        let answer = self.send(command, &body).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(BenchError::Refused {
                what: command,
                status: answer.status,
                body: answer.body,
            })
        }
    }

    /// A fresh plan with `items` items; returns their ids.
    async fn plan_with_items(&self, run_id: &str, items: usize) -> Result<Vec<String>, BenchError> {
        let plan = format!("bench-{run_id}");
        self.must(
            "issue-plan",
            json!({
                "plan_id": plan, "code": format!("BENCH/{run_id}"), "title": "Kế hoạch đo hiệu năng",
                "issuer": "Nhóm phát triển", "issued_on": "2025-04-08", "legal_basis": [],
                "reporting_rule": "Không áp dụng."
            }),
        )
        .await?;
        let ids: Vec<String> = (0..items).map(|k| format!("{plan}-{k:05}")).collect();
        for (k, item) in ids.iter().enumerate() {
            self.must(
                "record-item",
                json!({
                    "item_id": item, "plan_id": plan, "ordinal": k + 1,
                    "title": format!("Nội dung đo hiệu năng số {}", k + 1)
                }),
            )
            .await?;
        }
        Ok(ids)
    }
}

/// Where the command API takes `command`.
fn command_path(command: &str) -> String {
    format!("/v1/commands/{command}")
}

/// The command API as the closed loops reach it: each on a connection of its own
/// ([`crate::keepalive`] says why), as the province office.
#[derive(Debug, Clone)]
struct LoopCommands(Arc<Connections>);

impl LoopCommands {
    /// [`Commands::send`] on closed loop `client`'s connection.
    async fn send(
        &self,
        client: usize,
        command: &'static str,
        body: &Value,
    ) -> Result<Answer, BenchError> {
        let (status, body) = self
            .0
            .post(
                client,
                &command_path(command),
                Bytes::from(body.to_string()),
            )
            .await
            .map_err(|source| BenchError::KeepAlive {
                what: command,
                source,
            })?;
        let body = serde_json::from_slice(&body).map_err(|source| BenchError::Answer {
            what: command,
            source,
        })?;
        Ok(Answer { status, body })
    }
}

/// Whether the `n`-th command of a run goes to the shared item: `share` of every 100, spread
/// evenly rather than in runs, so that the shared item is hot all the time, not in bursts.
fn is_hot(n: u64, share: u64) -> bool {
    (n * share) % 100 < share
}

/// The command service's conflict counters, from its metrics.
#[derive(Debug, Clone, Copy, Default)]
struct ServiceCounters {
    conflicts: u64,
    retries: u64,
}

impl ServiceCounters {
    /// Both counters from the service's OpenMetrics text; one missing is an error, not a zero, so
    /// that a renamed metric cannot pass for "no conflicts".
    fn parse(metrics: &str) -> Result<Self, BenchError> {
        let value = |name: &str| {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|v| v as u64)
                .ok_or_else(|| BenchError::Metrics(format!("no counter {name} in /metrics")))
        };
        Ok(Self {
            conflicts: value("kh63_command_append_conflicts_total")?,
            retries: value("kh63_command_command_retries_total")?,
        })
    }

    fn json(&self) -> Value {
        json!({ "append_conflicts": self.conflicts, "retries": self.retries })
    }

    fn since(self, before: &Self) -> Self {
        Self {
            conflicts: self.conflicts.saturating_sub(before.conflicts),
            retries: self.retries.saturating_sub(before.retries),
        }
    }
}

/// An item clients race on: the commands accepted for it, and the check, after the run, that its
/// commits since the run started are exactly theirs (see [`exactly_once`]).
#[derive(Debug, Clone)]
struct SharedItem {
    item: Arc<String>,
    target: AggregateRef,
    /// The item's last sequence before the run.
    before: u64,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl SharedItem {
    async fn open(store: &EventStore, item: String) -> Result<Self, BenchError> {
        let target = item_ref(&item)?;
        let before = store
            .messages_after(&target, 0)
            .await?
            .last()
            .map_or(0, |m| m.sequence);
        Ok(Self {
            item: Arc::new(item),
            target,
            before,
            accepted: Arc::default(),
        })
    }

    /// Notes `answer`'s command if it was accepted; returns its outcome.
    fn record(&self, answer: &Answer) -> Outcome {
        let outcome = answer.outcome();
        if outcome == Outcome::Accepted {
            let id = answer.command_id().unwrap_or_default().to_owned();
            self.accepted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
        }
        outcome
    }

    /// Checks the item's commits against the accepted commands.
    async fn check(self, store: &EventStore) -> Result<SharedChecked, BenchError> {
        let accepted =
            std::mem::take(&mut *self.accepted.lock().unwrap_or_else(PoisonError::into_inner));
        let commits = store.commits_after(&self.target, self.before).await?;
        let stored: Vec<Vec<String>> = commits
            .iter()
            .map(|c| c.events.iter().map(|e| e.commandid.to_string()).collect())
            .collect();
        exactly_once(&self.item, &accepted, &stored)?;
        Ok(SharedChecked {
            item: self.item.to_string(),
            accepted: accepted.len(),
            stored: commits.len(),
        })
    }
}

/// A shared item whose commits were exactly its accepted commands'.
#[derive(Debug)]
struct SharedChecked {
    item: String,
    accepted: usize,
    /// Equal to `accepted`, as the check held.
    stored: usize,
}

/// The deadline a client's `round` sets on its own item: alternating dates, so every command
/// changes the item.
fn alternating_deadline(item: &str, round: u64) -> Value {
    let due = if round.is_multiple_of(2) {
        "2026-12-31"
    } else {
        "2026-12-30"
    };
    deadline_body(item, due)
}

/// The `n`-th date of a run's sequence: distinct for a century of commands, so commands racing on
/// one item each still change it, whichever order they land in.
fn distinct_deadline(item: &str, n: u64) -> Value {
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let due = first
        .checked_add_days(Days::new(n % 36_500))
        .unwrap_or(first);
    deadline_body(item, &due.to_string())
}

fn deadline_body(item: &str, due: &str) -> Value {
    json!({ "item_id": item, "due_on": due, "reason": "Đo hiệu năng — điều chỉnh thời hạn" })
}

/// A scratch stream for the raw side, deleted afterwards.
struct RawStream {
    js: jetstream::Context,
    name: String,
    prefix: String,
}

impl RawStream {
    async fn create(js: &jetstream::Context, run_id: &str) -> Result<Self, BenchError> {
        let (name, prefix) = (format!("BENCH_RAW_{run_id}"), format!("bench-raw-{run_id}"));
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| jetstream_error("creating the raw stream")(e.into()))?;
        Ok(Self {
            js: js.clone(),
            name,
            prefix,
        })
    }

    fn subject(&self, key: impl std::fmt::Display) -> String {
        format!("{}.{key}", self.prefix)
    }

    /// Publishes as the event store appends: a message id, and the subject's expected last
    /// sequence.
    async fn append(&self, subject: String, payload: Bytes, expected: u64) -> Result<u64, Outcome> {
        let publish = PublishMessage::build()
            .payload(payload)
            .message_id(uuid::Uuid::now_v7().to_string())
            .expected_last_subject_sequence(expected);
        let failed = |e: jetstream::context::PublishError| {
            if e.kind() == PublishErrorKind::WrongLastSequence {
                Outcome::Conflict
            } else {
                Outcome::Failed
            }
        };
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        Ok(ack.sequence)
    }

    async fn delete(&self) -> Result<(), BenchError> {
        self.js
            .delete_stream(&self.name)
            .await
            .map_err(|e| jetstream_error("deleting the raw stream")(e.into()))?;
        Ok(())
    }
}

/// What every mode needs.
struct Bench {
    args: BenchArgs,
    commands: Commands,
    loops: LoopCommands,
    client: async_nats::Client,
    js: jetstream::Context,
    store: EventStore,
    run_id: String,
}

impl Bench {
    /// A commit payload the service wrote for `item`, for the raw side to publish.
    async fn sample_payload(&self, item: &str) -> Result<Bytes, BenchError> {
        let commits = self.store.messages_after(&item_ref(item)?, 0).await?;
        commits
            .last()
            .map(|m| m.payload.clone())
            .ok_or_else(|| BenchError::JetStream {
                what: "reading a sample commit",
                reason: format!("no commit on item {item}"),
            })
    }

    /// Each phase in `rounds` slices, the HTTP and raw sides alternating, HTTP first (the raw
    /// side publishes a payload the HTTP side wrote): a change of load on a shared machine then
    /// hits both sides alike.
    fn slice(&self) -> Duration {
        Duration::from_secs(self.args.seconds) / self.args.rounds
    }

    /// The rest of the slices after the HTTP side's first one: raw, HTTP, raw, … (see
    /// [`Self::slice`]); adds the HTTP slices to `http` and returns the raw side's.
    async fn take_turns<H, HF, R, RF>(
        &self,
        clients: usize,
        http: &mut Phase,
        http_op: &Arc<H>,
        raw_op: &Arc<R>,
    ) -> Phase
    where
        H: Fn(usize) -> HF + Send + Sync + 'static,
        HF: Future<Output = Outcome> + Send,
        R: Fn(usize) -> RF + Send + Sync + 'static,
        RF: Future<Output = Outcome> + Send,
    {
        let mut raw = Phase::default();
        for round in 0..self.args.rounds {
            if round > 0 {
                http.merge(drive(clients, self.slice(), http_op.clone()).await);
            }
            raw.merge(drive(clients, self.slice(), raw_op.clone()).await);
        }
        raw
    }

    /// `clients` closed loops, `share` % of all their commands on one item they all share (100:
    /// every command, the hot-item mode; 0: none) and the rest on each client's own item; the raw
    /// side in the same shape. The shared item's commits are checked afterwards.
    async fn closed_loop(&self, share: u64) -> Result<ClosedLoop, BenchError> {
        let clients = self.args.clients;
        // Each client's own item, unless every command goes to the shared one, which comes last.
        let own = if share == 100 { 0 } else { clients };
        let items = self
            .commands
            .plan_with_items(&self.run_id, own + usize::from(share > 0))
            .await?;
        let shared = match items.get(own) {
            Some(item) if share > 0 => Some(SharedItem::open(&self.store, item.clone()).await?),
            _ => None,
        };
        let items = Arc::new(items);
        let counters_before = self.commands.counters().await?;
        let (loops, loop_items, loop_shared) = (self.loops.clone(), items.clone(), shared.clone());
        let sent: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
        let http_next = Arc::new(AtomicU64::new(0));
        let http_op = Arc::new(move |client: usize| {
            let (loops, items, sent, shared, next) = (
                loops.clone(),
                loop_items.clone(),
                sent.clone(),
                loop_shared.clone(),
                http_next.clone(),
            );
            async move {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let hot = shared.filter(|_| is_hot(n, share));
                let body = match &hot {
                    Some(shared) => distinct_deadline(&shared.item, n),
                    None => {
                        let round = sent[client].fetch_add(1, Ordering::Relaxed);
                        alternating_deadline(&items[client], round)
                    }
                };
                match (loops.send(client, "set-item-deadline", &body).await, hot) {
                    (Ok(answer), Some(shared)) => shared.record(&answer),
                    (Ok(answer), None) => answer.outcome(),
                    (Err(_), _) => Outcome::Failed,
                }
            }
        });
        let mut http = drive(clients, self.slice(), http_op.clone()).await;

        let payload = self.sample_payload(&items[0]).await?;
        let raw_stream = Arc::new(RawStream::create(&self.js, &self.run_id).await?);
        // Per client, then the shared subject's.
        let last: Arc<Vec<AtomicU64>> =
            Arc::new((0..=clients).map(|_| AtomicU64::new(0)).collect());
        let (raw_side, raw_payload) = (raw_stream.clone(), payload.clone());
        let raw_next = Arc::new(AtomicU64::new(0));
        let raw_op = Arc::new(move |client: usize| {
            let (raw, payload, last, next) = (
                raw_side.clone(),
                raw_payload.clone(),
                last.clone(),
                raw_next.clone(),
            );
            async move {
                let key = if is_hot(next.fetch_add(1, Ordering::Relaxed), share) {
                    clients
                } else {
                    client
                };
                let expected = last[key].load(Ordering::Relaxed);
                match raw.append(raw.subject(key), payload, expected).await {
                    Ok(sequence) => {
                        last[key].fetch_max(sequence, Ordering::Relaxed);
                        Outcome::Accepted
                    }
                    Err(outcome) => outcome,
                }
            }
        });
        let raw = self.take_turns(clients, &mut http, &http_op, &raw_op).await;
        raw_stream.delete().await?;
        let service = self.commands.counters().await?.since(&counters_before);
        let shared = match shared {
            Some(shared) => Some(shared.check(&self.store).await?),
            None => None,
        };
        Ok(ClosedLoop {
            payload_bytes: payload.len(),
            http,
            raw,
            service,
            shared,
        })
    }

    async fn throughput(&self) -> Result<Value, BenchError> {
        let clients = self.args.clients;
        let share = self.args.hot_share.unwrap_or(0);
        let run = self.closed_loop(share).await?;
        let ratio = run.ratio();
        if !self.args.json {
            println!(
                "payload: {} bytes per commit; {clients} clients, each on its own item; {} s per side in {} alternating slices",
                run.payload_bytes, self.args.seconds, self.args.rounds
            );
            if let Some(shared) = &run.shared {
                println!(
                    "{share} % of the commands on {}, shared by every client: {} accepted, {} commits stored for it, each accepted command's events once",
                    shared.item, shared.accepted, shared.stored
                );
            }
            run.print();
        }
        let hot = run.shared.as_ref().map_or(Value::Null, |shared| {
            json!({ "share_percent": share, "item": shared.item, "accepted": shared.accepted,
                    "stored_commits": shared.stored, "exactly_once": true })
        });
        Ok(json!({
            "mode": "throughput",
            "clients": clients,
            "seconds": self.args.seconds,
            "rounds": self.args.rounds,
            "payload_bytes": run.payload_bytes,
            "http": run.http.json(),
            "service": run.service.json(),
            "hot": hot,
            "raw": run.raw.json(),
            "ratio": round2(ratio),
        }))
    }

    async fn fixed_rate(&self, rate: u64) -> Result<Value, BenchError> {
        let items = Arc::new(
            self.commands
                .plan_with_items(&self.run_id, self.args.items)
                .await?,
        );
        let count = rate * self.args.seconds;
        let rounds = u64::from(self.args.rounds);
        let reads = Arc::new(Mutex::new(ReadSamples::default()));
        let query_url = Arc::new(self.args.query_url.clone());
        let sample_every = self.args.sample_every;
        let http_op = |n: u64| {
            let (commands, items, reads, query_url) = (
                self.commands.clone(),
                items.clone(),
                reads.clone(),
                query_url.clone(),
            );
            async move {
                let item = &items[(n % items.len() as u64) as usize];
                let sent = commands
                    .send("set-item-deadline", &distinct_deadline(item, n))
                    .await;
                let answered = Instant::now();
                let Ok(answer) = sent else {
                    return (Outcome::Failed, answered);
                };
                let outcome = answer.outcome();
                if outcome == Outcome::Accepted
                    && n.is_multiple_of(sample_every)
                    && let Some(sequence) = answer.stream_sequence()
                {
                    let sample = read_back(&commands, &query_url, item, sequence, answered).await;
                    reads
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .add(sample);
                }
                (outcome, answered)
            }
        };
        // Commands [from, to) of a round.
        let span = |round: u64| (count * round / rounds, count * (round + 1) / rounds);
        let (from, to) = span(0);
        let (mut http, mut http_behind) =
            at_fixed_rate(rate, to - from, |k| http_op(from + k)).await;

        let payload = self.sample_payload(&items[0]).await?;
        let raw_stream = Arc::new(RawStream::create(&self.js, &self.run_id).await?);
        let last: Arc<Vec<AtomicU64>> =
            Arc::new((0..items.len()).map(|_| AtomicU64::new(0)).collect());
        let subjects = items.len() as u64;
        let raw_op = |n: u64| {
            let (raw, payload, last) = (raw_stream.clone(), payload.clone(), last.clone());
            async move {
                let key = (n % subjects) as usize;
                let expected = last[key].load(Ordering::Relaxed);
                let appended = raw.append(raw.subject(key), payload, expected).await;
                let answered = Instant::now();
                match appended {
                    Ok(sequence) => {
                        last[key].fetch_max(sequence, Ordering::Relaxed);
                        (Outcome::Accepted, answered)
                    }
                    Err(outcome) => (outcome, answered),
                }
            }
        };
        let (mut raw, mut raw_behind) = (Phase::default(), Duration::ZERO);
        for round in 0..rounds {
            let (from, to) = span(round);
            if round > 0 {
                let (phase, behind) = at_fixed_rate(rate, to - from, |k| http_op(from + k)).await;
                http.merge(phase);
                http_behind = http_behind.max(behind);
            }
            let (phase, behind) = at_fixed_rate(rate, to - from, |k| raw_op(from + k)).await;
            raw.merge(phase);
            raw_behind = raw_behind.max(behind);
        }
        raw_stream.delete().await?;
        let reads = std::mem::take(&mut *reads.lock().unwrap_or_else(PoisonError::into_inner));
        let staleness = Latencies::new(reads.staleness);
        let plain_reads = Latencies::new(reads.plain);

        if !self.args.json {
            println!(
                "{rate} commands/s for {} s over {} items, in {rounds} slices alternating with raw (sender at worst {:.1?} behind schedule; raw {:.1?})",
                self.args.seconds,
                items.len(),
                http_behind,
                raw_behind
            );
            println!("HTTP command latency:  {}", http.text());
            println!("raw JetStream append:  {}", raw.text());
            println!(
                "read-your-writes (1 in {sample_every}; {} answered, {} not within 10 s): staleness {}",
                staleness.len(),
                reads.failed,
                staleness.text()
            );
            println!("the same read without waiting: {}", plain_reads.text());
        }
        Ok(json!({
            "mode": "rate",
            "rate": rate,
            "seconds": self.args.seconds,
            "rounds": rounds,
            "items": items.len(),
            "sample_every": sample_every,
            "http": http.json(),
            "http_sender_behind_ms": http_behind.as_secs_f64() * 1e3,
            "raw": raw.json(),
            "raw_sender_behind_ms": raw_behind.as_secs_f64() * 1e3,
            "staleness": staleness.json(),
            "staleness_failed": reads.failed,
            "plain_read": plain_reads.json(),
            "latency_ratio_p50": round2(ratio(http.latencies.percentile(0.5), raw.latencies.percentile(0.5))),
            "latency_ratio_p99": round2(ratio(http.latencies.percentile(0.99), raw.latencies.percentile(0.99))),
        }))
    }

    async fn hot_item(&self) -> Result<Value, BenchError> {
        let clients = self.args.clients;
        let run = self.closed_loop(100).await?;
        let ratio = run.ratio();
        if !self.args.json {
            println!(
                "{clients} clients on one item; {} s per side in {} alternating slices",
                self.args.seconds, self.args.rounds
            );
            run.print();
            if let Some(shared) = &run.shared {
                println!(
                    "exactly once on {}: {} accepted answers, {} commits stored for the item, each accepted command's events once",
                    shared.item, shared.accepted, shared.stored
                );
            }
        }
        let mut report = json!({
            "mode": "hot-item",
            "clients": clients,
            "seconds": self.args.seconds,
            "rounds": self.args.rounds,
            "http": run.http.json(),
            "service": run.service.json(),
            "raw": run.raw.json(),
            "ratio": round2(ratio),
        });
        if let Some(shared) = run.shared {
            report["item"] = json!(shared.item);
            report["stored_commits"] = json!(shared.stored);
            report["exactly_once"] = json!(true);
        }
        Ok(report)
    }
}

/// What [`Bench::closed_loop`] measured.
#[derive(Debug)]
struct ClosedLoop {
    payload_bytes: usize,
    http: Phase,
    raw: Phase,
    /// The service's conflict counters over the HTTP side.
    service: ServiceCounters,
    /// With a share on one shared item: its check, which held.
    shared: Option<SharedChecked>,
}

impl ClosedLoop {
    fn ratio(&self) -> f64 {
        self.http.rate() / self.raw.rate()
    }

    fn print(&self) {
        println!("HTTP commands:        {}", self.http.text());
        println!(
            "the service:          {} append conflicts, {} decisions made again",
            self.service.conflicts, self.service.retries
        );
        println!("raw JetStream append: {}", self.raw.text());
        println!("ratio: {:.2} of the raw limit", self.ratio());
    }
}

/// Staleness samples of the fixed-rate mode.
#[derive(Debug, Default)]
struct ReadSamples {
    /// From the command's answer to the query service's answer showing it.
    staleness: Vec<Duration>,
    /// The same read again, without waiting: what a read costs by itself.
    plain: Vec<Duration>,
    /// Reads that did not answer 200 (e.g. 503 projection-behind after the wait).
    failed: usize,
}

impl ReadSamples {
    fn add(&mut self, sample: Option<(Duration, Duration)>) {
        match sample {
            Some((staleness, plain)) => {
                self.staleness.push(staleness);
                self.plain.push(plain);
            }
            None => self.failed += 1,
        }
    }
}

/// Reads `item` through the query service once it has applied `sequence`; returns how long that
/// took after the command was `answered`, and how long the same read takes when nothing is waited
/// for.
async fn read_back(
    commands: &Commands,
    query_url: &str,
    item: &str,
    sequence: u64,
    answered: Instant,
) -> Option<(Duration, Duration)> {
    let url = format!("{query_url}/v1/items/{item}");
    let waited = commands
        .http
        .get(format!("{url}?min_sequence={sequence}&wait_ms=10000"))
        .bearer_auth(&commands.token)
        .send()
        .await
        .ok()?;
    let staleness = answered.elapsed();
    if waited.status() != StatusCode::OK {
        return None;
    }
    let started = Instant::now();
    let plain = commands
        .http
        .get(&url)
        .bearer_auth(&commands.token)
        .send()
        .await
        .ok()?;
    let plain_took = started.elapsed();
    (plain.status() == StatusCode::OK).then_some((staleness, plain_took))
}

/// Checks that the commits stored after the run started are exactly the accepted commands', one
/// commit each. `stored` holds each commit's events' command ids.
fn exactly_once(item: &str, accepted: &[String], stored: &[Vec<String>]) -> Result<(), BenchError> {
    let fail = |detail: String| BenchError::NotExactlyOnce {
        item: item.to_owned(),
        accepted: accepted.len(),
        stored: stored.len(),
        detail,
    };
    let mut by_command: HashMap<&str, usize> = HashMap::new();
    for (index, events) in stored.iter().enumerate() {
        let first = events
            .first()
            .ok_or_else(|| fail(format!("commit {index} holds no event")))?;
        if events.iter().any(|id| id != first) {
            return Err(fail(format!("commit {index} mixes commands")));
        }
        *by_command.entry(first).or_default() += 1;
    }
    for id in accepted {
        match by_command.remove(id.as_str()) {
            Some(1) => {}
            Some(n) => return Err(fail(format!("command {id} stored in {n} commits"))),
            None => return Err(fail(format!("accepted command {id:?} is not stored"))),
        }
    }
    match by_command.keys().next() {
        Some(id) => Err(fail(format!("command {id} stored but never accepted"))),
        None => Ok(()),
    }
}

fn item_ref(item: &str) -> Result<AggregateRef, BenchError> {
    ItemId::new(item.to_owned())
        .map(AggregateRef::Item)
        .map_err(|_| BenchError::ItemId(item.to_owned()))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub async fn run(nats: &NatsArgs, args: BenchArgs) -> Result<(), BenchError> {
    let keys = TokenKeys::new(&token_secret()?)?;
    let token = keys.issue(
        &Actor {
            user: "bench".to_owned(),
            unit: None,
            role: Role::ProvinceOffice,
        },
        chrono::Duration::hours(1),
    )?;
    // Before NATS or the service is reached: a URL the closed loops cannot reach stops the run here.
    let connections = Connections::new(&args.url, &token, args.clients).map_err(|source| {
        BenchError::KeepAlive {
            what: "--url",
            source,
        }
    })?;
    let (client, js) = nats
        .connect("remediation-bench", Duration::from_secs(5))
        .await?;
    let store = EventStore::open(js.clone(), stream_settings()?).await?;
    let bench = Bench {
        commands: Commands {
            http: reqwest::Client::new(),
            url: args.url.trim_end_matches('/').to_owned(),
            token,
        },
        loops: LoopCommands(Arc::new(connections)),
        client,
        js,
        store,
        run_id: uuid::Uuid::now_v7().simple().to_string(),
        args,
    };
    let report = match (bench.args.rate, bench.args.hot_item) {
        (Some(rate), _) => bench.fixed_rate(rate).await?,
        (None, true) => bench.hot_item().await?,
        (None, false) => bench.throughput().await?,
    };
    if bench.args.json {
        println!("{report}");
    }
    bench
        .client
        .flush()
        .await
        .map_err(|e| jetstream_error("flushing")(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exactly_once_accepts_one_commit_per_accepted_command() {
        let stored = vec![ids(&["a", "a"]), ids(&["b"])];
        assert!(exactly_once("x", &ids(&["b", "a"]), &stored).is_ok());
    }

    #[test]
    fn exactly_once_rejects_missing_duplicated_and_unaccepted_commits() {
        let missing = exactly_once("x", &ids(&["a", "b"]), &[ids(&["a"])]);
        assert!(
            matches!(missing, Err(BenchError::NotExactlyOnce { detail, .. }) if detail.contains("\"b\" is not stored"))
        );
        let twice = exactly_once("x", &ids(&["a"]), &[ids(&["a"]), ids(&["a"])]);
        assert!(
            matches!(twice, Err(BenchError::NotExactlyOnce { detail, .. }) if detail.contains("2 commits"))
        );
        let extra = exactly_once("x", &ids(&["a"]), &[ids(&["a"]), ids(&["c"])]);
        assert!(
            matches!(extra, Err(BenchError::NotExactlyOnce { detail, .. }) if detail.contains("never accepted"))
        );
        let mixed = exactly_once("x", &ids(&["a"]), &[ids(&["a", "c"])]);
        assert!(
            matches!(mixed, Err(BenchError::NotExactlyOnce { detail, .. }) if detail.contains("mixes"))
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_over_sorted_samples() {
        let samples = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(samples.percentile(0.5), Duration::from_millis(51));
        assert_eq!(samples.percentile(0.99), Duration::from_millis(99));
        assert_eq!(samples.percentile(1.0), Duration::from_millis(100));
        assert_eq!(Latencies::default().percentile(0.99), Duration::ZERO);
    }

    #[test]
    fn a_hot_share_is_that_many_of_every_hundred_commands_spread_out() {
        for share in [1, 10, 37, 100] {
            let hot: Vec<u64> = (0..100).filter(|&n| is_hot(n, share)).collect();
            assert_eq!(hot.len() as u64, share, "{share} %");
        }
        let tenth: Vec<u64> = (0..40).filter(|&n| is_hot(n, 10)).collect();
        assert_eq!(tenth, [0, 10, 20, 30], "one in ten, not ten in a row");
    }

    #[test]
    fn the_service_counters_are_read_from_its_openmetrics_text() {
        let text = "# HELP kh63_command_append_conflicts Appends refused\n\
                    # TYPE kh63_command_append_conflicts counter\n\
                    kh63_command_append_conflicts_total 12\n\
                    kh63_command_command_retries_total 7\n\
                    kh63_command_command_retries_total_other 99\n";
        let counters = ServiceCounters::parse(text).expect("both counters");
        assert_eq!((counters.conflicts, counters.retries), (12, 7));
        assert!(
            ServiceCounters::parse("kh63_command_command_retries_total 7\n").is_err(),
            "a missing counter is no zero"
        );
        let later = ServiceCounters {
            conflicts: 20,
            retries: 9,
        };
        let since = later.since(&counters);
        assert_eq!((since.conflicts, since.retries), (8, 2));
    }

    #[test]
    fn distinct_deadlines_differ_for_a_century_of_commands() {
        let due = |n| {
            distinct_deadline("i", n)["due_on"]
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(due(0).as_deref(), Some("2026-01-01"));
        assert_eq!(due(31).as_deref(), Some("2026-02-01"));
        let all: std::collections::HashSet<_> = (0..36_500).map(due).collect();
        assert_eq!(all.len(), 36_500);
    }
}
