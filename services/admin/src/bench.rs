//! Load generator: commands/s through HTTP with concurrent clients on distinct items, next to the
//! raw JetStream publish rate of the same commit payloads measured in the same run.
//!
//! Both sides use the same shape — `clients` concurrent loops, each waiting for its answer
//! before sending the next — so the ratio shows what the service adds to the bare append.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use clap::Args;
use futures::future::join_all;
use remediation_domain::{Actor, Role};
use serde_json::{Value, json};
use service_kit::auth::TokenKeys;
use service_kit::config::{stream_settings, token_secret};

use crate::nats::NatsArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the command API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients, each on its own item.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Phase {
    completed: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&self) -> String {
        format!(
            "{:>9.0} /s  ({} ok, {} failed; p50 {:?}, p99 {:?})",
            self.rate(),
            self.completed,
            self.failed,
            self.percentile(0.5),
            self.percentile(0.99)
        )
    }

    /// `latencies` are sorted when the phase ends.
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Runs `clients` loops of `op` for `duration` and gathers counts and latencies.
async fn drive<F, Fut>(clients: usize, duration: Duration, op: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let loops = (0..clients).map(|client| {
        let op = op.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
            let mut round = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if op(client, round).await {
                    ok += 1;
                    latencies.push(sent.elapsed());
                } else {
                    failed += 1;
                }
                round += 1;
            }
            (ok, failed, latencies)
        })
    });
    let mut phase = Phase {
        completed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for (ok, failed, latencies) in join_all(loops).await.into_iter().flatten() {
        phase.completed += ok;
        phase.failed += failed;
        phase.latencies.extend(latencies);
    }
    phase.elapsed = started.elapsed();
    phase.latencies.sort_unstable();
    phase
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    command: &str,
    body: Value,
) -> Result<Value, String> {
    let response = http
        .post(format!("{url}/v1/commands/{command}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(answer)
    } else {
        Err(format!("{command}: {status} {answer}"))
    }
}

/// The deadline a client's `round` sets: alternating dates, so every command changes the item.
fn deadline_body(item: &str, round: u64) -> Value {
    let due = if round.is_multiple_of(2) {
        "2026-12-31"
    } else {
        "2026-12-30"
    };
    json!({ "item_id": item, "due_on": due, "reason": "Đo hiệu năng — điều chỉnh thời hạn" })
}

pub async fn run(nats: &NatsArgs, args: BenchArgs) -> Result<(), String> {
    let keys =
        TokenKeys::new(&token_secret().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let token = keys
        .issue(
            &Actor {
                user: "bench".to_owned(),
                unit: None,
                role: Role::ProvinceOffice,
            },
            chrono::Duration::hours(1),
        )
        .map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let plan = format!("bench-{run_id}");
    post(
        &http,
        &args.url,
        &token,
        "issue-plan",
        json!({
            "plan_id": plan, "code": format!("BENCH/{run_id}"), "title": "Kế hoạch đo hiệu năng",
            "issuer": "Nhóm phát triển", "issued_on": "2025-04-08", "legal_basis": [],
            "reporting_rule": "Không áp dụng."
        }),
    )
    .await?;
    let items: Vec<String> = (0..args.clients)
        .map(|k| format!("{plan}-{k:03}"))
        .collect();
    for (k, item) in items.iter().enumerate() {
        post(&http, &args.url, &token, "record-item", json!({
            "item_id": item, "plan_id": plan, "ordinal": k + 1, "title": format!("Nội dung đo hiệu năng số {}", k + 1)
        }))
        .await?;
    }
    let duration = Duration::from_secs(args.seconds);

    let (url, items_http, token_http) = (args.url.clone(), Arc::new(items.clone()), token.clone());
    let commands = drive(args.clients, duration, move |client, round| {
        let (http, url, items, token) = (
            http.clone(),
            url.clone(),
            items_http.clone(),
            token_http.clone(),
        );
        async move {
            post(
                &http,
                &url,
                &token,
                "set-item-deadline",
                deadline_body(&items[client], round),
            )
            .await
            .is_ok()
        }
    })
    .await;

    // The raw side publishes a real commit payload written by the run above.
    let (client, js) = nats
        .connect("remediation-bench", Duration::from_secs(5))
        .await?;
    let events_stream = js
        .get_stream_no_info(stream_settings().map_err(|e| e.to_string())?.name)
        .await
        .map_err(|e| e.to_string())?;
    let sample = events_stream
        .get_last_raw_message_by_subject(&format!("events.item.{}", items[0]))
        .await
        .map_err(|e| e.to_string())?;
    let payload = sample.payload.clone();
    let raw_stream = format!("BENCH_RAW_{run_id}");
    js.create_stream(stream::Config {
        name: raw_stream.clone(),
        subjects: vec![format!("bench-raw-{run_id}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let raw_js = js.clone();
    let raw_prefix = format!("bench-raw-{run_id}");
    let last_sequences = Arc::new(
        (0..args.clients)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let raw = drive(args.clients, duration, move |client, _| {
        let (js, payload, subject, last) = (
            raw_js.clone(),
            payload.clone(),
            format!("{raw_prefix}.{client}"),
            last_sequences.clone(),
        );
        async move {
            let expected = last[client].load(std::sync::atomic::Ordering::Relaxed);
            let publish = PublishMessage::build()
                .payload(payload)
                .message_id(uuid::Uuid::now_v7().to_string())
                .expected_last_subject_sequence(expected);
            match publish_and_wait(&js, subject, publish).await {
                Some(sequence) => {
                    last[client].store(sequence, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                None => false,
            }
        }
    })
    .await;
    js.delete_stream(&raw_stream)
        .await
        .map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;

    println!(
        "payload: {} bytes per commit; {} clients; {} s per phase",
        sample.payload.len(),
        args.clients,
        args.seconds
    );
    println!("HTTP commands:        {}", commands.summary());
    println!("raw JetStream append: {}", raw.summary());
    println!(
        "ratio: {:.2} of the raw limit",
        commands.rate() / raw.rate()
    );
    Ok(())
}

async fn publish_and_wait(
    js: &jetstream::Context,
    subject: String,
    publish: PublishMessage,
) -> Option<u64> {
    let ack = js.send_publish(subject, publish).await.ok()?.await.ok()?;
    Some(ack.sequence)
}
