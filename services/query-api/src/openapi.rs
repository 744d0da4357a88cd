//! The OpenAPI 3.1 document, generated from the route table the router is built from and from
//! the response types the handlers return, so it cannot drift from what is served.

use remediation_domain::Role;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::access::Access;
use crate::consistency;
use crate::freshness::{CHECKPOINT, LAST_RECORDED_AT, STALLED};
use crate::routes::{Body, ROUTES, Route};

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// The headers every data answer carries (see [`crate::freshness`]).
fn freshness_headers() -> Value {
    let header = |description: &str, required: bool| json!({ "description": description, "required": required, "schema": { "type": "string" } });
    json!({
        CHECKPOINT.as_str(): header("`<projection>=<sequence>` for each projection the answer reads, e.g. `core=412`: the last stream sequence it had applied in the snapshot the answer was read from", true),
        STALLED.as_str(): header("`<projection>=true|false`: whether that projection had stopped on a commit it must not skip, so that the answer stays frozen at the checkpoint (see /readyz)", true),
        LAST_RECORDED_AT.as_str(): header("`<projection>=<RFC 3339 instant>`: when the newest event it had applied was recorded (absent before the first)", false),
    })
}

fn roles(route: &Route) -> Vec<&'static str> {
    route
        .access
        .roles()
        .iter()
        .map(|r| Role::as_str(*r))
        .collect()
}

fn operation(route: &Route, generator: &mut schemars::SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = route
        .path_params
        .iter()
        .map(|p| json!({ "name": p.name, "in": "path", "required": true, "description": p.description, "schema": p.schema() }))
        .collect();
    let consistency_params = if route.reads.is_empty() {
        &[][..]
    } else {
        consistency::PARAMS
    };
    parameters.extend(
        route
            .query_params
            .iter()
            .chain(consistency_params)
            .map(|p| json!({ "name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": p.schema() })),
    );
    let content = match route.body {
        Body::Json(schema) => json!({ "application/json": { "schema": schema(generator) } }),
        Body::Other(media_type) => json!({ media_type: {} }),
        Body::Files(media_types) => Value::Object(
            media_types
                .iter()
                .map(|m| {
                    (
                        (*m).to_owned(),
                        json!({ "schema": { "type": "string", "contentEncoding": "binary" } }),
                    )
                })
                .collect(),
        ),
    };
    let mut responses = Map::new();
    let mut ok = match route.body {
        Body::Files(_) => json!({
            "description": "OK: a file (Content-Disposition: attachment)",
            "content": content,
        }),
        _ => json!({ "description": "OK", "content": content }),
    };
    if !route.reads.is_empty() {
        ok["headers"] = freshness_headers();
    }
    responses.insert("200".into(), ok);
    let mut operation = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "tags": [route.tag],
        "parameters": parameters,
    });
    // Which projection's checkpoint the answer reflects and `min_sequence` waits for: a client
    // (and the end-to-end tests, which see only this document) need not know the route table.
    if !route.reads.is_empty() {
        operation["x-reads"] = json!(route.reads.iter().map(|p| p.name()).collect::<Vec<_>>());
    }
    match route.access {
        Access::Public => {
            operation["security"] = json!([]);
            if route.operation_id == "readyz" {
                responses.insert(
                    "503".into(),
                    problem("not-ready: a projection stopped on a commit it must not skip, or lags the stream beyond the bounds (extension members as in the 200 answer: as_of, stream, max_lag_events, max_lag_seconds, projections, each with ready and reason); or database-unavailable: the database or a projection schema is unreachable"),
                );
            }
        }
        Access::Roles(_) => {
            operation["security"] = json!([{ "bearer": [] }]);
            operation["x-roles"] = json!(roles(route));
            responses.insert(
                "400".into(),
                problem("Unknown, repeated or malformed query parameter"),
            );
            responses.insert(
                "401".into(),
                problem("Missing, invalid or expired bearer token"),
            );
            responses.insert(
                "403".into(),
                problem(if route.scoped {
                    "The role may not read this, or unit staff asked about another unit"
                } else {
                    "The role may not read this"
                }),
            );
            if route.finds {
                responses.insert("404".into(), problem("No such plan, item or unit"));
            }
            if !route.reads.is_empty() {
                responses.insert(
                    "422".into(),
                    problem("sequence-not-reached: min_sequence lies beyond the stream's last sequence, so no command answer carried it (extension members min_sequence, stream_head); or invalid-range: a time range starts after it ends"),
                );
            }
            if route.records_read {
                operation["x-records-read"] = json!(true);
            }
            // A route that reads nothing (who am I) cannot be unavailable.
            if !route.reads.is_empty() {
                let mut unavailable = "projection-behind: the read model has not reached min_sequence within wait_ms (extension members projection, checkpoint, min_sequence; Retry-After); or database-unavailable".to_owned();
                if route.records_read {
                    unavailable.push_str("; or read-not-recorded: this read of the audit trail could not be recorded as an event, so it is not answered");
                }
                if route.operation_id == "audit_verify" {
                    unavailable
                        .push_str("; or store-unavailable: the event stream does not answer");
                }
                responses.insert("503".into(), problem(&unavailable));
            }
        }
    }
    operation["responses"] = Value::Object(responses);
    operation
}

pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        paths.insert(
            route.path.to_owned(),
            json!({ "get": operation(route, &mut generator) }),
        );
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status"],
            "properties": {
                "type": { "type": "string", "description": "Stable problem type, e.g. urn:kh63:problem:projection-behind" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "projection": { "type": "string", "description": "projection-behind: the projection that fell short" },
                "checkpoint": { "type": "integer", "description": "projection-behind: the sequence it had applied" },
                "min_sequence": { "type": "integer", "description": "projection-behind: the sequence asked for" },
                "projections": { "type": "array", "description": "not-ready: every projection's state, as /readyz describes it when ready, with why it is not" },
                "stream": { "description": "not-ready: the stream's head the lags were judged from (null: unknown)" }
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kế hoạch 63/KH-UBND — query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Dashboards, reporting compliance and the audit trail of Thanh Hóa's Plan 63/KH-UBND, read from the PostgreSQL read model the projector keeps. Every data endpoint takes min_sequence (and wait_ms) to read its own writes, and every data answer says what it reflects in X-Read-Model-Checkpoint, X-Read-Model-Stalled and X-Read-Model-Last-Recorded-At."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::document;
    use crate::routes::ROUTES;

    #[test]
    fn the_document_lists_every_route_once_with_the_projections_it_reads() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), ROUTES.len());
        for route in ROUTES {
            let reads: Vec<&str> = route.reads.iter().map(|p| p.name()).collect();
            let operation = &paths[route.path]["get"];
            assert_eq!(operation["operationId"], route.operation_id);
            if reads.is_empty() {
                assert!(operation.get("x-reads").is_none(), "{}", route.path);
            } else {
                assert_eq!(
                    operation["x-reads"],
                    serde_json::json!(reads),
                    "{}",
                    route.path
                );
            }
        }
    }
}
