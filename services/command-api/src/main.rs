//! `command-api`: the command service binary.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, not glibc's malloc: a command allocates and frees many small buffers (the request,
/// the decision, the event's JSON, the answer), and glibc's `malloc`, `free` and
/// `malloc_consolidate` took about a fifth of the service's time under load (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The command service: decides commands sent over HTTP and appends their events to NATS JetStream.
///
/// It takes its settings from the environment, as a service manager or a container passes them;
/// the command line only answers `--help` and `--version`, and refuses anything else rather than
/// start with an argument it would ignore.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Settings (environment variables; defaults and meaning in the README's Configuration table):\n  NATS_URL, NATS_NKEY_FILE, COMMAND_API_ADDR, TOKEN_SECRET[_FILE], TOKEN_SECRET_PREVIOUS[_FILE],\n  STREAM_NAME, STREAM_REPLICAS, DUPLICATE_WINDOW_SECS, SUBJECT_PREFIX, IDEMPOTENCY_BUCKET,\n  MAX_ATTEMPTS, MAX_IN_FLIGHT, HTTP_MAX_CONNECTIONS, CACHE_CAPACITY, NATS_TIMEOUT_MS,\n  IDEMPOTENCY_LEASE_SECS, IDEMPOTENCY_WAIT_MS, RUST_LOG, LOG_FORMAT"
)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    Args::parse();
    service_kit::init_tracing();
    let config = match command_api::config::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    match command_api::serve(config, service_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "command API failed");
            ExitCode::FAILURE
        }
    }
}
