//! `query-api`: the query service binary.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
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
