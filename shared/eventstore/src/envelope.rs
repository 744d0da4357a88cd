//! The CloudEvents 1.0 envelope every stored event wears.
//!
//! One NATS message holds one *commit*: all events one command produced, as a CloudEvents JSON
//! batch (`application/cloudevents-batch+json`). nats-server 2.9 has no atomic multi-message
//! publish, and a single message is stored whole or not at all, so the batch is what makes a
//! command's events land all or nothing.

use chrono::{DateTime, Utc};
use remediation_domain::{Actor, AggregateRef, CURRENT_VERSION, DecodeError, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Reverse-DNS prefix of every event `type`.
pub const TYPE_PREFIX: &str = "vn.gov.thanhhoa.remediation";
/// `source` of events written by this product's command side.
pub const SOURCE: &str = "urn:vn:thanhhoa:remediation:command-api";
/// Content type of a commit message.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// One event: CloudEvents 1.0 structured JSON with this product's extension attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// UUIDv7: unique, and ordered by creation time.
    pub id: Uuid,
    pub source: String,
    /// `vn.gov.thanhhoa.remediation.<aggregate>.<event>.v<version>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `<aggregate>/<id>`.
    pub subject: String,
    /// When the system recorded the event.
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: Value,
    pub aggregatetype: String,
    pub aggregateid: String,
    /// When it happened in the world (may precede `time` for facts keyed in late).
    pub effectivetime: DateTime<Utc>,
    pub actoruser: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actorunit: Option<String>,
    pub actorrole: String,
    pub correlationid: String,
    pub causationid: String,
    pub commandid: Uuid,
    /// The command's HTTP name, e.g. `assign-lead`.
    pub commandname: String,
    /// Hash of the previous event of this aggregate; empty for its first event.
    #[serde(default)]
    pub prevhash: String,
    /// SHA-256 of this envelope's canonical JSON without `hash` (see [`crate::chain`]).
    #[serde(default)]
    pub hash: String,
}

/// What one command contributes to every envelope it writes.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub command_id: Uuid,
    pub command_name: &'static str,
    pub actor: Actor,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
    pub effective_at: DateTime<Utc>,
}

/// The `type` of an event.
pub fn event_type(kind: &str, name: &str, version: u32) -> String {
    format!("{TYPE_PREFIX}.{kind}.{name}.v{version}")
}

/// Splits a `type` into aggregate kind, event name and version.
pub fn parse_event_type(event_type: &str) -> Option<(&str, &str, u32)> {
    let rest = event_type.strip_prefix(TYPE_PREFIX)?.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let (kind, name, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((kind, name, version.strip_prefix('v')?.parse().ok()?))
}

impl CloudEvent {
    /// Wraps a domain event for `target`, not yet linked into its chain (see [`crate::seal`]).
    pub fn new(target: &AggregateRef, event: &Event, meta: &CommandMeta) -> Self {
        let (name, data) = event.name_and_data();
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: Uuid::now_v7(),
            source: SOURCE.to_owned(),
            event_type: event_type(event.kind(), &name, CURRENT_VERSION),
            subject: format!("{}/{}", target.kind(), target.id()),
            time: meta.recorded_at,
            datacontenttype: "application/json".to_owned(),
            data,
            aggregatetype: target.kind().to_owned(),
            aggregateid: target.id().to_owned(),
            effectivetime: meta.effective_at,
            actoruser: meta.actor.user.clone(),
            actorunit: meta.actor.unit.as_ref().map(|u| u.to_string()),
            actorrole: meta.actor.role.as_str().to_owned(),
            correlationid: meta.correlation_id.clone(),
            causationid: meta.causation_id.clone(),
            commandid: meta.command_id,
            commandname: meta.command_name.to_owned(),
            prevhash: String::new(),
            hash: String::new(),
        }
    }

    /// The domain event inside, upcast from older versions where needed.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        let (kind, name, version) = parse_event_type(&self.event_type)
            .ok_or_else(|| DecodeError::UnknownAggregate(self.event_type.clone()))?;
        Event::decode(kind, name, version, self.data.clone())
    }
}

/// A stored commit: the stream sequence of its message and its events.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sequence: u64,
    pub events: Vec<CloudEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        let t = event_type("item", "status_changed", 1);
        assert_eq!(t, "vn.gov.thanhhoa.remediation.item.status_changed.v1");
        assert_eq!(parse_event_type(&t), Some(("item", "status_changed", 1)));
        assert_eq!(parse_event_type("org.other.item.x.v1"), None);
        assert_eq!(parse_event_type("vn.gov.thanhhoa.remediation.item.x"), None);
        assert_eq!(
            parse_event_type("vn.gov.thanhhoa.remediation.item.x.v1.extra"),
            None
        );
    }
}
