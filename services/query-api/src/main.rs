//! `query-api`: the query service binary.

use std::process::ExitCode;

use clap::Parser;

/// The query service: dashboards, audit trail, time travel and the web dashboard over the PostgreSQL read model.
///
/// It takes its settings from the environment, as a service manager or a container passes them;
/// the command line only answers `--help` and `--version`, and refuses anything else rather than
/// start with an argument it would ignore.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Settings (environment variables; defaults and meaning in the README's Configuration table):\n  DATABASE_URL, DATABASE_READ_URL, SCHEMA_PREFIX, QUERY_API_ADDR, NATS_URL, NATS_NKEY_FILE,\n  TOKEN_SECRET[_FILE], TOKEN_SECRET_PREVIOUS[_FILE], STREAM_NAME, SUBJECT_PREFIX,\n  IDEMPOTENCY_BUCKET, MAX_ATTEMPTS, NATS_TIMEOUT_MS, EXPORT_TIMEOUT_SECS, READY_MAX_LAG_EVENTS,\n  READY_MAX_LAG_SECS, HTTP_MAX_CONNECTIONS, RUST_LOG, LOG_FORMAT"
)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    Args::parse();
    service_kit::init_tracing();
    let config = match query_api::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    match query_api::serve(config, service_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "query API failed");
            ExitCode::FAILURE
        }
    }
}
