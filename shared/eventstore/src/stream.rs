//! Stream and bucket provisioning: idempotent, and safe to run on every start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::StoreError;

/// Where and how the log lives.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Stream name, e.g. `PLAN_EVENTS`.
    pub name: String,
    /// Subject prefix; aggregates live at `<prefix>.<type>.<id>`.
    pub subject_prefix: String,
    /// 1 locally, 3 in production.
    pub replicas: usize,
    /// How long JetStream itself drops a re-sent `Nats-Msg-Id`. Idempotency keys outlive it
    /// through the idempotency bucket.
    pub duplicate_window: Duration,
    /// Bucket holding `Idempotency-Key` answers.
    pub idempotency_bucket: String,
    /// How long an idempotency answer is kept.
    pub idempotency_ttl: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "PLAN_EVENTS".to_owned(),
            subject_prefix: "events".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            idempotency_bucket: "PLAN_IDEMPOTENCY".to_owned(),
            idempotency_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl StreamSettings {
    /// The stream configuration these settings ask for.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            description: Some("Kế hoạch 63/KH-UBND: every domain event, append-only".to_owned()),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            // The log is the system of record: nothing may be removed from it.
            deny_delete: true,
            deny_purge: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        }
    }

    /// The idempotency bucket's backing stream, laid out as JetStream's key-value convention
    /// expects. Created as a plain stream because async-nats's `create_key_value` first reads
    /// account limits in a shape nats-server 2.9 does not send.
    fn bucket_stream_config(&self) -> stream::Config {
        stream::Config {
            name: format!("KV_{}", self.idempotency_bucket),
            description: Some("Idempotency-Key → first answer".to_owned()),
            subjects: vec![format!("$KV.{}.>", self.idempotency_bucket)],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_messages_per_subject: 1,
            max_age: self.idempotency_ttl,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120).min(self.idempotency_ttl),
            ..Default::default()
        }
    }
}

/// The first nats-server release (major, minor) trusted with replicated streams. Under 2.9.10, a
/// stream leader cut off mid-load (SIGSTOP for 6 s in `tests/stack/cluster.rs`) could come back
/// a message or two short, its copy of every later message sitting that many sequences lower
/// than on the other replicas, so a consumer served by it skipped or repeated commits (the test
/// failed 4 runs in 13). 2.10.26 kept identical replicas in each run compared. The container
/// images run 2.10.
pub const REPLICATION_SINCE: (u64, u64) = (2, 10);

/// Whether a nats-server reporting `version` (`2.10.26`, `2.11.0-RC.1`) is trusted with
/// replicated streams. A version that does not parse is a build this rule knows nothing against.
pub fn replicates_safely(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= REPLICATION_SINCE,
        _ => true,
    }
}

/// What provisioning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    Updated,
    Unchanged,
}

/// Creates the stream and the idempotency bucket, or brings an existing stream's mutable
/// settings (replicas, duplicate window) in line. Running it again changes nothing. Replicas on
/// a server older than [`REPLICATION_SINCE`] are refused before anything is written.
pub async fn provision(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Provisioned, StoreError> {
    let server = js.client().server_info().version;
    if settings.replicas > 1 && !replicates_safely(&server) {
        let (major, minor) = REPLICATION_SINCE;
        return Err(StoreError::Misconfigured(format!(
            "{} replicas asked of nats-server {server}: replicated streams need nats-server \
             {major}.{minor} or later (older servers were seen to let a replica drift by a \
             sequence or two after its leader was cut off)",
            settings.replicas
        )));
    }
    let outcome = ensure_stream(js, settings.stream_config(), |current, wanted| {
        if !current.deny_delete || !current.deny_purge {
            return Err(StoreError::Misconfigured(format!(
                "stream {} allows deletes or purges; the log must be append-only",
                current.name
            )));
        }
        let aligned = stream::Config {
            num_replicas: wanted.num_replicas,
            duplicate_window: wanted.duplicate_window,
            subjects: wanted.subjects.clone(),
            ..current.clone()
        };
        Ok((&aligned != current).then_some(aligned))
    })
    .await?;
    // The bucket follows the stream's replica count and the configured retention.
    ensure_stream(js, settings.bucket_stream_config(), |current, wanted| {
        let aligned = stream::Config {
            num_replicas: wanted.num_replicas,
            max_age: wanted.max_age,
            ..current.clone()
        };
        Ok((&aligned != current).then_some(aligned))
    })
    .await?;
    Ok(outcome)
}

/// Creates `wanted` if no stream has its name; otherwise updates the existing one to what
/// `align(current, wanted)` returns (`None`: nothing to change).
async fn ensure_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
    align: impl Fn(&stream::Config, &stream::Config) -> Result<Option<stream::Config>, StoreError>,
) -> Result<Provisioned, StoreError> {
    match js.get_stream(&wanted.name).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .map_err(StoreError::unavailable)?
                .config
                .clone();
            match align(&current, &wanted)? {
                None => Ok(Provisioned::Unchanged),
                Some(updated) => {
                    js.update_stream(&updated)
                        .await
                        .map_err(StoreError::unavailable)?;
                    Ok(Provisioned::Updated)
                }
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js_error)
                    if js_error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            js.create_stream(wanted)
                .await
                .map_err(StoreError::unavailable)?;
            Ok(Provisioned::Created)
        }
        Err(e) => Err(StoreError::unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::replicates_safely;

    #[test]
    fn replicated_streams_need_nats_server_2_10_or_later() {
        for old in ["2.9.10", "v2.9.25", "2.2.0", "1.4.1"] {
            assert!(!replicates_safely(old), "{old}");
        }
        for trusted in [
            "2.10.0",
            "2.10.26",
            "v2.11.0-RC.1",
            "2.14.6",
            "3.0.0",
            "unknown",
        ] {
            assert!(replicates_safely(trusted), "{trusted}");
        }
    }
}
