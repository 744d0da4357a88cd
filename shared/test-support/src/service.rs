//! The product's services as their own processes, for end-to-end tests that run the stack as an
//! operator does: the binary Cargo built, settings from the environment, an address the OS picks,
//! SIGTERM to stop. The tests therefore depend on no service's crate, and a service that starts
//! only in-process (a setting its binary ignores, a shutdown only a test could trigger) fails
//! them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{signal, workspace_binary};

/// The product's services, with the variable each takes its HTTP address from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceBinary {
    CommandApi,
    Projector,
    QueryApi,
}

impl ServiceBinary {
    fn name(self) -> &'static str {
        match self {
            ServiceBinary::CommandApi => "command-api",
            ServiceBinary::Projector => "projector",
            ServiceBinary::QueryApi => "query-api",
        }
    }

    fn address_variable(self) -> &'static str {
        match self {
            ServiceBinary::CommandApi => "COMMAND_API_ADDR",
            ServiceBinary::Projector => "PROJECTOR_ADDR",
            ServiceBinary::QueryApi => "QUERY_API_ADDR",
        }
    }

    /// The binary, built once per test process.
    fn path(self) -> PathBuf {
        static BUILT: LazyLock<Mutex<HashMap<ServiceBinary, PathBuf>>> =
            LazyLock::new(Mutex::default);
        let mut built = BUILT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        built
            .entry(self)
            .or_insert_with(|| workspace_binary(self.name(), self.name()))
            .clone()
    }
}

/// How long a service may take to listen: the projector waits up to a minute for its stream.
const START_PATIENCE: Duration = Duration::from_secs(90);
/// How long a service may take to finish in-flight work after SIGTERM before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// A service that ended before it listened, with what it logged.
#[derive(Debug, thiserror::Error)]
#[error("{service} did not start ({status}); its log:\n{log}")]
pub struct NotStarted {
    pub service: &'static str,
    pub status: String,
    pub log: String,
}

/// A running service process; killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    service: &'static str,
    child: Option<Child>,
    address: String,
}

impl ServiceProcess {
    /// Starts `service` with `settings` (environment variables; nothing else of the test's
    /// environment reaches it but `PATH` and `RUST_LOG`) on a loopback port the OS picks, and
    /// waits until it logs that it listens. Its log goes to the test's stderr, line by line,
    /// prefixed with its name.
    pub async fn start(
        service: ServiceBinary,
        settings: Vec<(&'static str, String)>,
    ) -> Result<Self, NotStarted> {
        tokio::task::spawn_blocking(move || Self::start_blocking(service, &settings))
            .await
            .expect("the start joins")
    }

    fn start_blocking(
        service: ServiceBinary,
        settings: &[(&'static str, String)],
    ) -> Result<Self, NotStarted> {
        let name = service.name();
        let mut command = Command::new(service.path());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env("LOG_FORMAT", "json")
            .env(service.address_variable(), "127.0.0.1:0")
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (listening, address) = mpsc::channel();
        let log = std::sync::Arc::new(Mutex::new(String::new()));
        let kept = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                if let Some(addr) = listening_address(&line) {
                    let _ = listening.send(addr);
                }
                if let Ok(mut log) = kept.lock()
                    && log.len() < 64 * 1024
                {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            match address.recv_timeout(Duration::from_millis(50)) {
                Ok(address) => {
                    return Ok(Self {
                        service: name,
                        child: Some(child),
                        address,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Give the reader the last lines the service wrote.
                        thread::sleep(Duration::from_millis(100));
                        return Err(NotStarted {
                            service: name,
                            status: status.to_string(),
                            log: log.lock().map(|l| l.clone()).unwrap_or_default(),
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NotStarted {
                        service: name,
                        status: format!("not listening after {START_PATIENCE:?}"),
                        log: log.lock().map(|l| l.clone()).unwrap_or_default(),
                    });
                }
            }
        }
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// SIGTERM, as a service manager stops it, and its exit status once it has finished; killed
    /// if it does not end within half a minute.
    pub async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let service = self.service;
        tokio::task::spawn_blocking(move || {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_PATIENCE;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => return status,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        eprintln!("{service} did not stop within {STOP_PATIENCE:?}: killed");
                        let _ = child.kill();
                        return child.wait().expect("the killed service is reaped");
                    }
                }
            }
        })
        .await
        .expect("the stop joins")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in a JSON log line `"<service> listening"` (service_kit::serve_http).
fn listening_address(line: &str) -> Option<String> {
    let record: Value = serde_json::from_str(line).ok()?;
    let fields = &record["fields"];
    fields["message"]
        .as_str()?
        .ends_with(" listening")
        .then(|| fields["addr"].as_str().map(str::to_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::listening_address;

    #[test]
    fn the_address_is_read_from_the_listening_line_only() {
        let line = r#"{"timestamp":"2026-12-03T00:00:00Z","level":"INFO","fields":{"message":"query API listening","addr":"127.0.0.1:41234"},"target":"service_kit::runtime"}"#;
        assert_eq!(listening_address(line).as_deref(), Some("127.0.0.1:41234"));
        let other = r#"{"fields":{"message":"stream not available yet","addr":"127.0.0.1:1"}}"#;
        assert_eq!(listening_address(other), None);
        assert_eq!(listening_address("not json"), None);
    }
}
