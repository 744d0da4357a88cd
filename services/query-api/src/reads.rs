//! Reads of the audit trail are themselves recorded: who looked at what, when.
//!
//! Every answer that hands out entries of the audit trail (a page of `GET /v1/audit`, an export
//! of the events, a verification walk) is recorded as an `access.audit_read` event — in the
//! day's access log (`access/<yyyy-mm-dd>`), with the reader as the actor — through the same
//! command handler, hash chain and stream as every other command, *before* the answer leaves the
//! service. The recorded reads show up in the audit trail itself, so auditors see them like any
//! other event.
//!
//! **Fail closed.** If the read cannot be recorded (NATS down, the stream not answering, the day's
//! log contended beyond the retries), the read is not answered: 503 `read-not-recorded`. An
//! unrecorded read of the audit trail must not happen.
//!
//! The service connects to NATS at start without waiting for it: dashboards do not need it.
//! Opening the event store runs in the background until it succeeds; until then reads of the
//! audit trail answer 503. The query service only opens the stream the command service
//! provisions, never provisions it itself: provisioning brings the stream's replicas and
//! duplicate window in line with the caller's settings, and a reader must not reconfigure the
//! log with settings it does not own.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::http::Uri;
use chrono::Utc;
use command_app::handler::{CommandHandler, CommandRequest, HandlerSettings};
use event_store::access::Service;
use event_store::{EventStore, Repository, StreamSettings};
use remediation_domain::access::{AccessDay, ReadQuery, RecordAuditRead};
use remediation_domain::{Command, Rejection, Rule};
use tokio::sync::SetOnce;
use tokio::task::AbortHandle;

use crate::access::Caller;
use crate::config::Config;
use crate::error::QueryError;

/// The day's log is one aggregate; a handful of entries is all the cache ever holds.
const CACHE_CAPACITY: usize = 16;
/// Longest recorded query text, in characters ([`ReadQuery`]'s limit).
const MAX_QUERY_CHARS: usize = 2_000;

/// Records reads of the audit trail as events.
#[derive(Debug)]
pub struct AuditReads {
    nats: async_nats::Client,
    js: jetstream::Context,
    stream_name: String,
    handler: Arc<SetOnce<CommandHandler>>,
    /// How long a read waits for the store to open (just after start) before it is refused.
    open_wait: Duration,
    opening: AbortHandle,
    /// Reads are recorded one at a time per process: they all append to the same day's log, and
    /// taking turns here is cheaper than losing optimistic-concurrency races to ourselves.
    turn: tokio::sync::Mutex<()>,
}

/// What a recorded read left in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Stream sequence of the `access.audit_read` commit.
    pub sequence: u64,
}

/// `path?query` as the client sent it, cut to what an event may hold (an ellipsis marks a cut).
fn describe(path: &str, query: Option<&str>) -> String {
    let full = match query {
        Some(query) if !query.is_empty() => format!("GET {path}?{query}"),
        _ => format!("GET {path}"),
    };
    if full.chars().count() <= MAX_QUERY_CHARS {
        full
    } else {
        // A margin: normalising to NFC may, rarely, not shorten the text.
        let mut cut: String = full.chars().take(MAX_QUERY_CHARS - 16).collect();
        cut.push('…');
        cut
    }
}

impl AuditReads {
    /// Connects to NATS (without waiting for it) and starts opening the event store in the
    /// background. Needs a Tokio runtime.
    pub async fn connect(config: &Config) -> Result<Self, crate::StartError> {
        let (nats, js) = service_kit::connect_nats(
            &config.nats_url,
            Service::QueryApi,
            config.nats_nkey_file.as_deref(),
            "query-api",
            config.nats_timeout,
        )
        .await?;
        let handler = Arc::new(SetOnce::new());
        let opening = tokio::spawn(open(
            js.clone(),
            config.stream.clone(),
            config.handler,
            handler.clone(),
        ))
        .abort_handle();
        Ok(Self {
            nats,
            js,
            stream_name: config.stream.name.clone(),
            handler,
            open_wait: config.nats_timeout,
            opening,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The event stream, for walking it (audit verification).
    pub async fn stream(&self) -> Result<jetstream::stream::Stream, QueryError> {
        self.js.get_stream(&self.stream_name).await.map_err(|e| {
            QueryError::StoreUnavailable(format!(
                "the event stream {} does not answer: {e}",
                self.stream_name
            ))
        })
    }

    /// The stream's last sequence, or `None` when NATS does not answer within `within`.
    pub async fn stream_head(&self, within: Duration) -> Option<u64> {
        match tokio::time::timeout(within, self.stream()).await {
            Ok(Ok(stream)) => Some(stream.cached_info().state.last_sequence),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the stream's last sequence");
                None
            }
            Err(_) => None,
        }
    }

    /// Records that `caller` read what `uri` asks for and received `results` entries. Returns only once the
    /// event is stored; any failure means the read must not be answered.
    pub async fn record(
        &self,
        caller: &Caller,
        uri: &Uri,
        results: u64,
    ) -> Result<Recorded, QueryError> {
        let query = describe(uri.path(), uri.query());
        // Just after start the store may be a round trip away from open; a read then waits for
        // it (bounded) rather than being refused for a race the caller cannot see.
        let handler = tokio::time::timeout(self.open_wait, self.handler.wait())
            .await
            .map_err(|_| {
                QueryError::ReadNotRecorded(
                    "the event store is not reachable yet, so this read of the audit trail cannot be recorded and is not answered".to_owned(),
                )
            })?;
        let query = ReadQuery::new(&query).map_err(|e| {
            QueryError::Internal(format!("cannot record the read query {query:?}: {e}"))
        })?;
        let results = u32::try_from(results).unwrap_or(u32::MAX);
        let _turn = self.turn.lock().await;
        // The day is named by the command and checked against the handler's clock: a read
        // straddling local midnight is told so and goes into the new day's log.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let request = CommandRequest {
                command: Command::RecordAuditRead(RecordAuditRead {
                    day: AccessDay::containing(Utc::now()),
                    query: query.clone(),
                    results,
                }),
                principal: caller.principal().clone(),
                correlation_id: None,
                causation_id: None,
                effective_at: None,
                idempotency: None,
            };
            let outcome = handler.handle(request).await.map(|answer| answer.settled);
            match outcome {
                Ok(Ok(receipt)) => {
                    return Ok(Recorded {
                        sequence: receipt.stream_sequence,
                    });
                }
                Ok(Err(Rejection::Rule {
                    rule: Rule::WrongAccessDay,
                    ..
                })) if attempts < 3 => {}
                Ok(Err(error)) => return Err(not_recorded(caller, &error)),
                Err(error) => return Err(not_recorded(caller, &error)),
            }
        }
    }

    /// Stops opening the store (if still trying) and flushes what was published.
    pub async fn close(&self) {
        self.opening.abort();
        match tokio::time::timeout(Duration::from_secs(5), self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush NATS on shutdown"),
            Err(_) => tracing::warn!("NATS flush timed out on shutdown"),
        }
    }
}

/// Opens the (provisioned) event store, for as long as it takes.
async fn open(
    js: jetstream::Context,
    settings: StreamSettings,
    handler_settings: HandlerSettings,
    into: Arc<SetOnce<CommandHandler>>,
) {
    loop {
        match EventStore::open(js.clone(), settings.clone()).await {
            Ok(store) => {
                let capacity = NonZeroUsize::new(CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
                let _ = into.set(CommandHandler::new(
                    Repository::new(store, capacity),
                    handler_settings,
                ));
                tracing::info!(stream = %settings.name, "recording reads of the audit trail");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "event store not open yet; reads of the audit trail answer 503 until it is");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A read of the audit trail is answered only once recorded: logged, and told to the caller.
fn not_recorded(caller: &Caller, error: &dyn std::fmt::Display) -> QueryError {
    tracing::error!(%error, user = %caller.principal().user(), "a read of the audit trail could not be recorded; not answering it");
    QueryError::ReadNotRecorded(format!(
        "this read of the audit trail could not be recorded, so it is not answered: {error}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_query_is_cut_to_what_an_event_holds() {
        assert_eq!(describe("/v1/audit", None), "GET /v1/audit");
        assert_eq!(describe("/v1/audit", Some("")), "GET /v1/audit");
        assert_eq!(
            describe("/v1/audit", Some("limit=5")),
            "GET /v1/audit?limit=5"
        );
        let long = describe("/v1/audit", Some(&"ệ".repeat(3_000)));
        assert_eq!(long.chars().count(), MAX_QUERY_CHARS - 15);
        assert!(long.ends_with('…'));
        assert!(ReadQuery::new(&long).is_ok());
    }
}
