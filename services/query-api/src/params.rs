//! Query-string parameters, declared per route in the route table and checked there.
//!
//! The route guard parses the query string against the route's declaration before anything else
//! runs: unknown or repeated names and values of the wrong shape answer 400 with the parameter
//! named, and the OpenAPI document describes exactly the same declaration.

use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::QueryError;

/// A page cursor as the service hands it out: a stream sequence (16 hex digits) and a position
/// in its commit (8), both non-negative.
const CURSOR_PATTERN: &str = "^[0-7][0-9a-fA-F]{15}[0-7][0-9a-fA-F]{7}$";

fn is_cursor(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.len() == 24
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && bytes[0] <= b'7'
        && bytes[16] <= b'7'
}

/// The shape of a parameter's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Integer {
        min: i64,
        max: i64,
    },
    /// Non-empty text up to this many characters.
    Text {
        max_len: usize,
    },
    /// An RFC 3339 instant, e.g. `2025-06-15T00:00:00+07:00` (send `+` as `%2B`).
    Instant,
    /// A page cursor the service handed out (opaque to clients).
    Opaque,
    /// One of these words.
    Choice(&'static [&'static str]),
}

/// One declared parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    /// A request without it is malformed (and the OpenAPI document says so).
    pub required: bool,
}

impl Param {
    pub const fn integer(
        name: &'static str,
        min: i64,
        max: i64,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind: Kind::Integer { min, max },
            description,
            required: false,
        }
    }

    pub const fn text(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Text { max_len: 200 },
            description,
            required: false,
        }
    }

    pub const fn instant(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Instant,
            description,
            required: false,
        }
    }

    pub const fn opaque(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Opaque,
            description,
            required: false,
        }
    }

    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind: Kind::Choice(choices),
            description,
            required: false,
        }
    }

    /// The same parameter, which every request must carry.
    pub const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    /// JSON Schema of the value, for the OpenAPI document.
    pub fn schema(&self) -> Value {
        match self.kind {
            Kind::Integer { min, max } => {
                json!({ "type": "integer", "minimum": min, "maximum": max })
            }
            Kind::Text { max_len } => {
                json!({ "type": "string", "minLength": 1, "maxLength": max_len })
            }
            Kind::Instant => json!({ "type": "string", "format": "date-time" }),
            Kind::Opaque => json!({ "type": "string", "pattern": CURSOR_PATTERN }),
            Kind::Choice(choices) => json!({ "type": "string", "enum": choices }),
        }
    }

    fn check(&self, raw: &str) -> Result<(), QueryError> {
        match self.kind {
            Kind::Integer { min, max } => parse_integer(self.name, raw, min, max).map(|_| ()),
            Kind::Text { max_len } => {
                if raw.is_empty() || raw.chars().count() > max_len {
                    Err(QueryError::Malformed(format!(
                        "query parameter {} must be 1–{max_len} characters",
                        self.name
                    )))
                } else {
                    Ok(())
                }
            }
            Kind::Instant => parse_instant(self.name, raw).map(|_| ()),
            Kind::Opaque => {
                if !is_cursor(raw) {
                    Err(QueryError::Malformed(format!(
                        "query parameter {} is not one this service handed out",
                        self.name
                    )))
                } else {
                    Ok(())
                }
            }
            Kind::Choice(choices) => {
                if choices.contains(&raw) {
                    Ok(())
                } else {
                    Err(QueryError::Malformed(format!(
                        "query parameter {} must be one of {}",
                        self.name,
                        choices.join(", ")
                    )))
                }
            }
        }
    }
}

fn parse_integer(name: &str, raw: &str, min: i64, max: i64) -> Result<i64, QueryError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            QueryError::Malformed(format!(
                "query parameter {name} must be an integer from {min} to {max}"
            ))
        })
}

/// RFC 3339. A `+` in an offset arrives as a space when the client forgot to percent-encode it;
/// no valid instant contains a space, so it is read back as the `+` it was.
fn parse_instant(name: &str, raw: &str) -> Result<DateTime<Utc>, QueryError> {
    let repaired = raw.replace(' ', "+");
    DateTime::parse_from_rfc3339(&repaired)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            QueryError::Malformed(format!(
                "query parameter {name} must be an RFC 3339 instant such as 2025-06-15T00:00:00%2B07:00: {e}"
            ))
        })
}

/// A half-open time range [from, to), either end optional.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The checked parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `uri`'s query string against `declared`: every name declared, none repeated, every
    /// value well-formed.
    pub fn parse(uri: &Uri, declared: &[&[Param]]) -> Result<Self, QueryError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| QueryError::Malformed(format!("invalid query string: {e}")))?;
        let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
        for (name, value) in &pairs {
            let param = declared
                .iter()
                .flat_map(|group| group.iter())
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = declared
                        .iter()
                        .flat_map(|group| group.iter().map(|p| p.name))
                        .collect();
                    QueryError::Malformed(format!(
                        "unknown query parameter {name:?}; this endpoint takes {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
            if seen.contains(&name.as_str()) {
                return Err(QueryError::Malformed(format!(
                    "query parameter {name} is given more than once"
                )));
            }
            seen.push(name);
            param.check(value)?;
        }
        if let Some(missing) = declared
            .iter()
            .flat_map(|group| group.iter())
            .find(|p| p.required && !seen.contains(&p.name))
        {
            return Err(QueryError::Malformed(format!(
                "query parameter {} is required",
                missing.name
            )));
        }
        Ok(Self(pairs))
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, QueryError> {
        self.text(name)
            .map(|raw| parse_integer(name, raw, min, max))
            .transpose()
    }

    pub fn instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, QueryError> {
        self.text(name)
            .map(|raw| parse_instant(name, raw))
            .transpose()
    }

    /// The instants `from` and `to`, either optional; 422 invalid-range when both are given and
    /// `from` comes after `to`.
    pub fn range(&self, from: &str, to: &str) -> Result<TimeRange, QueryError> {
        let (start, end) = (self.instant(from)?, self.instant(to)?);
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            return Err(QueryError::InvalidRange(format!("{from} is after {to}")));
        }
        Ok((start, end))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, QueryError> {
        parts
            .extensions
            .get::<Params>()
            .cloned()
            .ok_or_else(|| QueryError::Internal("query parameters were not checked".to_owned()))
    }
}
