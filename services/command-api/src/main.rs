//! `command-api`: the command service binary.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
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
