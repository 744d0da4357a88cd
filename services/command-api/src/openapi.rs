//! The OpenAPI 3.1 document, generated from the command registry and the domain types, so the
//! document cannot drift from what the router serves and what the bodies accept.

use crate::http::{MAX_CORRELATION_ID, MAX_EFFECTIVE_TIME, MAX_IDEMPOTENCY_KEY};
use crate::wire::client_commands;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use service_kit::auth::Me;

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// An optional header: 1–`max_len` visible ASCII characters, as `http::optional_header` checks.
fn header_parameter(name: &str, max_len: usize, description: &str) -> Value {
    json!({ "name": name, "in": "header", "required": false, "description": description,
            "schema": { "type": "string", "minLength": 1, "maxLength": max_len, "pattern": "^[!-~]+$" } })
}

/// `X-Effective-Time`: an RFC 3339 instant.
fn effective_time_parameter(description: &str) -> Value {
    json!({ "name": "X-Effective-Time", "in": "header", "required": false, "description": description,
            "schema": { "type": "string", "format": "date-time", "maxLength": MAX_EFFECTIVE_TIME } })
}

pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for (spec, wire) in client_commands() {
        let schema = (wire.schema)(&mut generator);
        paths.insert(
            format!("/v1/commands/{}", spec.name),
            json!({ "post": {
                "operationId": spec.name,
                "summary": spec.summary,
                "tags": [spec.aggregate],
                "security": [{ "bearer": [] }],
                "parameters": [
                    header_parameter("Idempotency-Key", MAX_IDEMPOTENCY_KEY, "Retrying with the same key returns the first answer and appends nothing, for as long as the idempotency bucket keeps it (30 days by default). Sends of one key at the same moment all get that one answer; one still being decided after a few seconds answers 409 (urn:kh63:problem:idempotency-key-in-flight) with Retry-After."),
                    header_parameter("X-Correlation-Id", MAX_CORRELATION_ID, "Carried into every event's correlationid; generated when absent."),
                    header_parameter("X-Causation-Id", MAX_CORRELATION_ID, "What caused this command (e.g. an event id); defaults to the command id."),
                    effective_time_parameter("RFC 3339 instant the fact happened, when keyed in late; province office and Department of Finance only."),
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema } } },
                "responses": {
                    "201": { "description": "Events appended", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CommandAnswer" } } } },
                    "200": { "description": "Nothing to change: the command repeats the current state", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CommandAnswer" } } } },
                    "400": problem("Malformed body, unknown field, text too long, bad header"),
                    "401": problem("Missing, invalid or expired bearer token"),
                    "403": problem("The role or unit may not issue this command"),
                    "404": problem("The aggregate or one it names does not exist"),
                    "409": problem("The aggregate kept changing concurrently, or a send with the same Idempotency-Key is still being decided (retry after Retry-After)"),
                    "413": problem("Body larger than 256 KiB"),
                    "422": problem("A business rule forbids the command, or the Idempotency-Key was used for another request"),
                    "503": problem("The event store is unavailable (store-unavailable) or full (store-full), or the service is deciding as many commands as it takes at once (overloaded); nothing was appended"),
                }
            }}),
        );
    }
    paths.insert(
        "/v1/me".into(),
        json!({ "get": {
            "operationId": "me",
            "summary": "Who the bearer token says the caller is: user, unit, every role held (the primary first), expiry",
            "tags": ["identity"],
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "OK", "content": { "application/json": { "schema": generator.subschema_for::<Me>() } } },
                "401": problem("Missing, invalid or expired bearer token"),
            }
        }}),
    );
    let plain = |summary: &str, content_type: &str| json!({ "get": { "summary": summary, "responses": { "200": { "description": "OK", "content": { content_type: {} } } } } });
    paths.insert("/healthz".into(), plain("Liveness", "application/json"));
    paths.insert(
        "/readyz".into(),
        plain(
            "Readiness: NATS connected and the stream present",
            "application/json",
        ),
    );
    paths.insert(
        "/metrics".into(),
        plain("Prometheus metrics", "application/openmetrics-text"),
    );
    paths.insert(
        "/openapi.json".into(),
        plain("This document", "application/json"),
    );

    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status"],
            "properties": {
                "type": { "type": "string", "description": "Stable problem type, e.g. urn:kh63:problem:rule-violated" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "rule": { "type": "string", "description": "For rule-violated: the rule's stable code" }
            }
        }),
    );
    schemas.insert(
        "CommandAnswer".into(),
        json!({
            "type": "object",
            "required": ["command", "command_id", "correlation_id", "aggregate", "changed", "stream_sequence", "events"],
            "properties": {
                "command": { "type": "string" },
                "command_id": { "type": "string", "format": "uuid" },
                "correlation_id": { "type": "string" },
                "aggregate": { "type": "object", "properties": { "type": { "type": "string" }, "id": { "type": "string" } } },
                "changed": { "type": "boolean" },
                "stream_sequence": { "type": "integer", "description": "Stream sequence of the commit (or of the aggregate's last commit when nothing changed): pass it to the query side to read your writes." },
                "events": { "type": "array", "items": { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "type": { "type": "string" } } } }
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kế hoạch 63/KH-UBND — command API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Records assignments, tasks, quarterly reports and status changes of Thanh Hóa's Plan 63/KH-UBND as immutable events in NATS JetStream."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}
