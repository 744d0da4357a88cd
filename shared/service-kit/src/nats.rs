//! Logging in to NATS as one service and opening the event store.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use event_store::access::Service;
use event_store::{EventStore, StoreError, StreamSettings, credentials, provision};

/// Why a service could not reach its stream.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot log in to NATS as {service}: {reason}")]
    Login {
        service: &'static str,
        reason: String,
    },
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("event store never became ready: {0}")]
    NeverReady(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reconnects quickly at first and then every two seconds: a NATS restart should cost a client
/// seconds, not the default's growing back-off.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5))).min(Duration::from_secs(2))
}

/// Logs what the connection reports only asynchronously. A refused publish or subscription
/// would otherwise show as nothing but a timeout; a disconnection or a slow-consumer drop loses
/// replies in flight (a pull request's answer among them), and the stall that follows is only
/// explained by the event logged here.
fn log_event(event: &async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::ServerError(error) => tracing::error!(%error, "NATS server error"),
        Event::ClientError(error) => tracing::error!(%error, "NATS client error"),
        Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        Event::SlowConsumer(subscription) => tracing::warn!(
            subscription,
            "NATS messages dropped: a subscription's buffer was full"
        ),
        Event::LameDuckMode => tracing::warn!("the NATS server is going away (lame duck mode)"),
        Event::Connected => tracing::info!("connected to NATS"),
        Event::Draining | Event::Closed => tracing::debug!(%event, "NATS connection"),
    }
}

/// Connects to NATS (`url`: one server or a comma-separated list) as `service` and returns the client and its JetStream context. With
/// `nkey_file` (the service's seed) it logs in with that key and takes replies under the
/// service's own inbox prefix, as the generated server configuration requires; without it the
/// connection is anonymous, for a development server that runs without authentication.
pub async fn connect_nats(
    url: &str,
    service: Service,
    nkey_file: Option<&Path>,
    name: &str,
    timeout: Duration,
) -> Result<(async_nats::Client, jetstream::Context), NatsError> {
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(timeout))
        .connection_timeout(timeout)
        .reconnect_delay_callback(reconnect_delay)
        .retry_on_initial_connect()
        .event_callback(|event| async move { log_event(&event) });
    let client = credentials::login(options, service, nkey_file)
        .map_err(|e| NatsError::Login {
            service: service.name(),
            reason: e.to_string(),
        })?
        .connect(urls(url).as_slice())
        .await
        .map_err(|source| NatsError::Connect {
            url: url.to_owned(),
            source,
        })?;
    let js = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client.clone());
    Ok((client, js))
}

/// The servers of `NATS_URL`: one URL, or several separated by commas (the nodes of a cluster,
/// so that a service starting while one of them is down still connects; once connected, the
/// client also learns the others from the server).
fn urls(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// Provisions (idempotently) and opens the event store, waiting up to a minute for NATS to come
/// up: services and NATS are often started together. A misconfiguration (a stream that allows
/// deletes, replicas on a server too old for them) does not heal by waiting and stops at once.
pub async fn open_store(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<EventStore, NatsError> {
    let mut last_error = String::new();
    for attempt in 1..=60 {
        match provision(js, settings).await {
            Ok(outcome) => {
                tracing::info!(stream = %settings.name, ?outcome, "stream provisioned");
                return Ok(EventStore::open(js.clone(), settings.clone()).await?);
            }
            Err(e @ StoreError::Misconfigured(_)) => return Err(e.into()),
            Err(e) => {
                last_error = e.to_string();
                tracing::warn!(attempt, error = %e, "event store not ready yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(NatsError::NeverReady(last_error))
}

#[cfg(test)]
mod tests {
    use super::urls;

    #[test]
    fn a_url_list_names_every_node_and_a_single_url_stays_one() {
        assert_eq!(urls("nats://a:4222"), ["nats://a:4222"]);
        assert_eq!(
            urls("nats://a:4222, nats://b:4222,nats://c:4222,"),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }
}
