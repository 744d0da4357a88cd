//! The committed event schemas (docs/events/schemas) against the Rust types they come from.

use std::path::PathBuf;

use event_store::parse_event_type;
use event_store::schemas::{catalog, incompatibilities};
use remediation_domain::CURRENT_VERSION;
use remediation_domain::event::UPCASTERS;
use serde_json::{Value, json};

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events/schemas")
}

fn committed(file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(schema_dir().join(file)).ok()?;
    Some(serde_json::from_str(&text).expect("committed schemas are JSON"))
}

#[test]
fn committed_schemas_match_the_rust_types() {
    for schema in catalog() {
        let Some(on_disk) = committed(&schema.file_name()) else {
            panic!(
                "{} has no committed schema: run `remediation-admin schemas` and commit docs/events",
                schema.event_type
            );
        };
        if on_disk == schema.schema {
            continue;
        }
        let problems = incompatibilities(&on_disk, &schema.schema);
        assert!(
            problems.is_empty(),
            "{} changed incompatibly without a new version ({problems:?}): bump its version, add an \
             upcaster from the old one in remediation_domain::event::UPCASTERS, keep the old schema, \
             and run `remediation-admin schemas`",
            schema.event_type
        );
        panic!(
            "{} changed compatibly but docs/events is stale: run `remediation-admin schemas`",
            schema.event_type
        );
    }
}

#[test]
fn every_older_committed_version_has_an_upcaster() {
    for entry in std::fs::read_dir(schema_dir()).expect("docs/events/schemas exists") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let event_type = name.strip_suffix(".json").expect("schema files are .json");
        let (kind, event, version) = parse_event_type(event_type)
            .unwrap_or_else(|| panic!("{name} is not named after an event type"));
        assert!(
            version <= CURRENT_VERSION,
            "{name} is newer than this build"
        );
        if version < CURRENT_VERSION {
            assert!(
                UPCASTERS
                    .iter()
                    .any(|u| u.kind == kind && u.name == event && u.from_version == version),
                "{name}: stored events of this version need an upcaster"
            );
        }
    }
}

fn envelope(data: Value) -> Value {
    json!({ "properties": { "data": data }, "$defs": {} })
}

#[test]
fn compatibility_rules() {
    let old = envelope(json!({
        "type": "object",
        "required": ["due_on"],
        "properties": { "due_on": { "type": "string" }, "note": { "type": "string" } }
    }));
    let added_optional = envelope(json!({
        "type": "object",
        "required": ["due_on"],
        "properties": { "due_on": { "type": "string" }, "note": { "type": "string" }, "extra": { "type": "string" } }
    }));
    assert!(incompatibilities(&old, &added_optional).is_empty());

    let removed = envelope(json!({
        "type": "object", "required": [], "properties": { "note": { "type": "string" } }
    }));
    assert_eq!(incompatibilities(&old, &removed), ["data.due_on: removed"]);

    let retyped = envelope(json!({
        "type": "object", "required": ["due_on"],
        "properties": { "due_on": { "type": "integer" }, "note": { "type": "string" } }
    }));
    assert_eq!(incompatibilities(&old, &retyped).len(), 1);

    let newly_required = envelope(json!({
        "type": "object", "required": ["due_on", "note"],
        "properties": { "due_on": { "type": "string" }, "note": { "type": "string" } }
    }));
    assert_eq!(
        incompatibilities(&old, &newly_required),
        ["data.note: newly required"]
    );
}
