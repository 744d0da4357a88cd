//! JSON Schemas of the event feed, generated from the Rust event types.
//!
//! One schema per event type and version: the CloudEvents envelope with this product's extension
//! attributes, `type` fixed to the event's type, and `data` the payload's schema as derived from
//! the domain's event enums. `remediation-admin schemas` writes them to `docs/events/`; a test
//! fails when the committed files and the code disagree, and when a payload changed
//! incompatibly without a new version and an upcaster.

use remediation_domain::CURRENT_VERSION;
use remediation_domain::group::GroupEvent;
use remediation_domain::item::ItemEvent;
use remediation_domain::ledger::LedgerEvent;
use remediation_domain::plan::PlanEvent;
use remediation_domain::report::ReportEvent;
use remediation_domain::task::TaskEvent;
use remediation_domain::unit::UnitEvent;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::envelope::event_type;

/// One event type's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    pub aggregate: &'static str,
    pub name: String,
    pub version: u32,
    pub event_type: String,
    /// Doc comment of the variant, when it has one.
    pub description: Option<String>,
    pub schema: Value,
}

impl EventSchema {
    /// `<type>.json`, the file name under `docs/events/schemas/`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.event_type)
    }
}

fn variants<E: JsonSchema>(aggregate: &'static str, out: &mut Vec<EventSchema>) {
    let mut settings = SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    let root = settings
        .into_generator()
        .into_root_schema_for::<E>()
        .to_value();
    let defs = root.get("$defs").cloned().unwrap_or_else(|| json!({}));
    let alternatives = root["oneOf"].as_array().cloned().unwrap_or_default();
    for alternative in alternatives {
        let properties = &alternative["properties"];
        let Some(name) = properties["event"]["const"]
            .as_str()
            .or_else(|| properties["event"]["enum"][0].as_str())
        else {
            continue;
        };
        let event_type = event_type(aggregate, name, CURRENT_VERSION);
        let data = properties
            .get("data")
            .cloned()
            .unwrap_or(json!({ "type": "null" }));
        out.push(EventSchema {
            aggregate,
            name: name.to_owned(),
            version: CURRENT_VERSION,
            description: alternative["description"].as_str().map(str::to_owned),
            schema: envelope_schema(&event_type, data, defs.clone()),
            event_type,
        });
    }
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn envelope_schema(event_type: &str, data: Value, defs: Value) -> Value {
    let mut properties = Map::new();
    properties.insert("specversion".into(), json!({ "const": "1.0" }));
    properties.insert(
        "id".into(),
        json!({ "type": "string", "format": "uuid", "description": "UUIDv7" }),
    );
    properties.insert("source".into(), string("URI-reference of the writer"));
    properties.insert("type".into(), json!({ "const": event_type }));
    properties.insert("subject".into(), string("<aggregate type>/<aggregate id>"));
    properties.insert("time".into(), json!({ "type": "string", "format": "date-time", "description": "When the system recorded the event" }));
    properties.insert(
        "datacontenttype".into(),
        json!({ "const": "application/json" }),
    );
    properties.insert("data".into(), data);
    properties.insert("aggregatetype".into(), string("Aggregate type"));
    properties.insert("aggregateid".into(), string("Aggregate identifier"));
    properties.insert("effectivetime".into(), json!({ "type": "string", "format": "date-time", "description": "When it happened in the world" }));
    properties.insert("actoruser".into(), string("User who issued the command"));
    properties.insert(
        "actorunit".into(),
        string("The user's unit, when they have one"),
    );
    properties.insert("actorrole".into(), json!({ "enum": ["province_office", "department_of_finance", "unit_staff", "auditor", "viewer"] }));
    properties.insert(
        "correlationid".into(),
        string("Correlation id of the request"),
    );
    properties.insert(
        "causationid".into(),
        string("What caused the command (defaults to the command id)"),
    );
    properties.insert(
        "commandid".into(),
        json!({ "type": "string", "format": "uuid" }),
    );
    properties.insert("commandname".into(), string("The command's HTTP name"));
    properties.insert("prevhash".into(), json!({ "type": "string", "pattern": "^([0-9a-f]{64})?$", "description": "Hash of the aggregate's previous event; empty for its first" }));
    properties.insert("hash".into(), json!({ "type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the canonical envelope without this attribute" }));
    let required: Vec<&str> = properties
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "actorunit")
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:kh63:schema:{event_type}"),
        "title": event_type,
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
        "$defs": defs,
    })
}

/// Every event type this build writes, with its schema.
pub fn catalog() -> Vec<EventSchema> {
    let mut out = Vec::new();
    variants::<UnitEvent>("unit", &mut out);
    variants::<GroupEvent>("group", &mut out);
    variants::<PlanEvent>("plan", &mut out);
    variants::<ItemEvent>("item", &mut out);
    variants::<TaskEvent>("task", &mut out);
    variants::<ReportEvent>("report", &mut out);
    variants::<LedgerEvent>("ledger", &mut out);
    variants::<remediation_domain::access::AccessEvent>("access", &mut out);
    variants::<remediation_domain::quarantine::QuarantineEvent>("quarantine", &mut out);
    out
}

/// Why a payload schema cannot replace an older one under the same version.
pub fn incompatibilities(old: &Value, new: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    compare(
        &old["properties"]["data"],
        &new["properties"]["data"],
        old,
        new,
        "data",
        &mut problems,
    );
    problems
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => &root["$defs"][name],
        None => schema,
    }
}

/// A new schema is compatible when everything a reader of the old one relied on is still there
/// with the same type, and nothing new is required.
fn compare(
    old: &Value,
    new: &Value,
    old_root: &Value,
    new_root: &Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    let (old, new) = (resolve(old, old_root), resolve(new, new_root));
    if old["type"] != new["type"] {
        problems.push(format!(
            "{path}: type {} became {}",
            old["type"], new["type"]
        ));
        return;
    }
    let required = |s: &Value| -> Vec<String> {
        s["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_required, new_required) = (required(old), required(new));
    for field in &new_required {
        if !old_required.contains(field) {
            problems.push(format!("{path}.{field}: newly required"));
        }
    }
    if let (Some(old_props), Some(new_props)) =
        (old["properties"].as_object(), new["properties"].as_object())
    {
        for (field, old_field) in old_props {
            match new_props.get(field) {
                None => problems.push(format!("{path}.{field}: removed")),
                Some(new_field) => compare(
                    old_field,
                    new_field,
                    old_root,
                    new_root,
                    &format!("{path}.{field}"),
                    problems,
                ),
            }
        }
    }
    if old["enum"].is_array() && old["enum"] != new["enum"] {
        let kept = |v: &Value| new["enum"].as_array().is_some_and(|e| e.contains(v));
        if let Some(dropped) = old["enum"]
            .as_array()
            .and_then(|e| e.iter().find(|v| !kept(v)))
        {
            problems.push(format!("{path}: value {dropped} no longer allowed"));
        }
    }
    if old["oneOf"].is_array() && old["oneOf"] != new["oneOf"] {
        problems.push(format!("{path}: alternatives changed"));
    }
}

/// The catalog page: subjects, envelope and every event type.
pub fn catalog_markdown(schemas: &[EventSchema]) -> String {
    let mut out = String::from(
        "# Event feed\n\n\
         Generated by `remediation-admin schemas` from the Rust event types; do not edit by hand.\n\n\
         - Stream `PLAN_EVENTS`, subjects `events.<aggregate>.<id>` (e.g. `events.item.kh-63-2025-01`).\n\
         - One message per command: a CloudEvents 1.0 JSON batch (`Content-Type: application/cloudevents-batch+json`),\n  \
           i.e. a JSON array of structured events, all of one aggregate, stored atomically.\n\
         - Envelope: `specversion`, `id` (UUIDv7), `source`, `type` (`vn.gov.thanhhoa.remediation.<aggregate>.<event>.v<version>`),\n  \
           `subject` (`<aggregate>/<id>`), `time` (recorded), `datacontenttype`, `data`, and the extensions `aggregatetype`,\n  \
           `aggregateid`, `effectivetime`, `actoruser`, `actorunit`, `actorrole`, `correlationid`, `causationid`, `commandid`,\n  \
           `commandname`, `prevhash`, `hash` (SHA-256 over the canonical envelope without `hash`; one chain per aggregate).\n\
         - Each schema below validates a whole envelope of that type: `schemas/<type>.json`.\n\n\
         | Type | Aggregate | Event | Version | Schema |\n|---|---|---|---|---|\n",
    );
    for s in schemas {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | [schema](schemas/{}) |\n",
            s.event_type,
            s.aggregate,
            s.name,
            s.version,
            s.file_name()
        ));
    }
    out
}
