//! `remediation-admin bench` against a command service on a private nats-server: the hot-item
//! mode's exactly-once check holds with clients racing on one item, the throughput mode's JSON
//! report carries both sides (and, with a hot share, the shared item's check and the service's
//! conflict counters), and the fixed-rate mode sends every command it was due to. No
//! timing is asserted: the numbers come from release runs of deploy/bench.sh.

use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;

use event_store::access::Service;
use serde_json::Value;
use test_support::{NatsServer, ServiceProcess, workspace_binary};

use super::{SECRET, command_settings, start_commands, stop_commands};

/// The operator's CLI, run as its own process.
static ADMIN: LazyLock<PathBuf> =
    LazyLock::new(|| workspace_binary("remediation-admin", "remediation-admin"));

/// A command service on `nats`, as its own process.
async fn start_command_api(nats: &NatsServer) -> ServiceProcess {
    start_commands(command_settings(
        &nats.url(),
        nats.nkey_file(Service::CommandApi),
    ))
    .await
}

/// Runs `remediation-admin bench ARGS --json` (off the runtime's threads) and returns its report.
async fn bench(nats: &NatsServer, url: &str, args: &[&str]) -> Value {
    let mut command = Command::new(&*ADMIN);
    command
        .args(["bench", "--url", url, "--json"])
        .args(args)
        .env("NATS_URL", nats.url())
        .env("NATS_NKEY_FILE", nats.nkey_file(Service::Admin))
        .env("TOKEN_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("remediation-admin runs");
    assert!(out.status.success(), "bench {args:?}: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in {stdout}"));
    serde_json::from_str(line).expect("the report is JSON")
}

/// Runs `remediation-admin bench ARGS` against a command service of its own on a private
/// nats-server (`{url}` in ARGS stands for the service's URL) and returns the report.
async fn bench_alone(args: &[&str]) -> Value {
    let nats = NatsServer::start();
    let service = start_command_api(&nats).await;
    let url = service.url();
    let args: Vec<String> = args.iter().map(|a| a.replace("{url}", &url)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = bench(&nats, &url, &args).await;
    stop_commands(service).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_clients_on_one_item_store_each_accepted_command_exactly_once() {
    let report = bench_alone(&["--hot-item", "--clients", "8", "--seconds", "1"]).await;
    assert_eq!(report["mode"], "hot-item");
    assert_eq!(report["exactly_once"], true);
    let accepted = report["http"]["accepted"].as_u64().expect("accepted");
    assert!(accepted > 0, "{report}");
    assert_eq!(
        report["stored_commits"].as_u64(),
        Some(accepted),
        "{report}"
    );
    assert_eq!(report["http"]["failed"], 0, "{report}");
    assert!(report["raw"]["accepted"].as_u64() > Some(0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_report_holds_both_sides_and_their_ratio() {
    let report = bench_alone(&["--clients", "2", "--seconds", "1"]).await;
    assert_eq!(report["mode"], "throughput");
    assert_eq!(report["clients"], 2);
    assert_eq!(report["rounds"], 5);
    for side in ["http", "raw"] {
        assert!(report[side]["accepted"].as_u64() > Some(0), "{report}");
        assert_eq!(report[side]["failed"], 0, "{report}");
        assert_eq!(report[side]["conflicts"], 0, "{report}");
    }
    assert!(report["ratio"].as_f64() > Some(0.0), "{report}");
    assert!(report["payload_bytes"].as_u64() > Some(0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_share_stores_each_accepted_command_on_the_shared_item_exactly_once_and_counts_retries()
 {
    let report = bench_alone(&["--clients", "8", "--seconds", "1", "--hot-share", "50"]).await;
    assert_eq!(report["mode"], "throughput");
    let hot = &report["hot"];
    assert_eq!(hot["share_percent"], 50, "{report}");
    assert_eq!(hot["exactly_once"], true, "{report}");
    let accepted = hot["accepted"]
        .as_u64()
        .expect("accepted on the shared item");
    assert!(accepted > 0, "{report}");
    assert_eq!(hot["stored_commits"].as_u64(), Some(accepted), "{report}");
    assert!(
        report["http"]["accepted"].as_u64() > Some(accepted),
        "own items too: {report}"
    );
    assert_eq!(report["http"]["failed"], 0, "{report}");
    // One instance: its commands on the shared item take turns, so none conflicts with another.
    assert_eq!(report["service"]["append_conflicts"], 0, "{report}");
    assert_eq!(report["service"]["retries"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_sends_every_command_due_and_accounts_for_every_sampled_read() {
    // No query service here: the sampled reads go to the command service, which has no such
    // route, and must be counted as not answered rather than lost.
    let report = bench_alone(&[
        "--rate",
        "50",
        "--seconds",
        "1",
        "--items",
        "4",
        "--sample-every",
        "10",
        "--query-url",
        "{url}",
    ])
    .await;
    assert_eq!(report["mode"], "rate");
    assert_eq!(report["http"]["accepted"], 50, "{report}");
    assert_eq!(report["raw"]["accepted"], 50, "{report}");
    let samples = report["staleness"]["samples"].as_u64().expect("samples");
    let unanswered = report["staleness_failed"].as_u64().expect("failed reads");
    assert_eq!(samples + unanswered, 5, "{report}");
}

/// A URL the closed loops cannot use (they speak plain HTTP/1.1 to `http://host:port`) stops the
/// run before it reaches anything: here NATS is not even there, and the error is still the URL's.
#[tokio::test]
async fn a_url_the_closed_loops_cannot_use_stops_the_run_before_anything_is_reached() {
    for url in ["https://127.0.0.1:8080", "http://127.0.0.1:8080/v1"] {
        let mut command = Command::new(&*ADMIN);
        command
            .args(["bench", "--url", url, "--seconds", "1"])
            .env("NATS_URL", "nats://127.0.0.1:1")
            .env("TOKEN_SECRET", SECRET)
            .env("NO_COLOR", "1");
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("remediation-admin runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {out:?}");
        assert!(
            stderr.contains("--url") && stderr.contains("http://host:port"),
            "{url}: {stderr}"
        );
    }
}
