//! Commands as clients send them: one JSON body per command, read strictly and explained
//! precisely. A refused body names the JSON path of the offending field; an integral float reads
//! as the integer it equals; control characters are refused in every text. The table is built
//! over the domain's own list ([`remediation_domain::for_each_command!`]), so the edge offers
//! exactly the commands the domain decides.

use schemars::{Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use remediation_domain::{COMMANDS, Command, CommandSpec};

/// A command body that could not be read, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ParseError {
    pub path: String,
    pub message: String,
}

/// How the edge reads and documents one command.
#[derive(Debug, Clone, Copy)]
pub struct WireCommand {
    pub name: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    pub parse: fn(&[u8]) -> Result<Command, ParseError>,
}

macro_rules! wire_table {
    ($($variant:ident($body:ty) => $name:literal, $aggregate:literal, $summary:literal;)*) => {
        /// Every command's wire form, in the domain's order.
        const WIRE: &[WireCommand] = &[
            $(WireCommand {
                name: $name,
                schema: |generator| generator.subschema_for::<$body>(),
                parse: |body| parse::<$body>(body).map(Command::$variant),
            },)*
        ];
    };
}

remediation_domain::for_each_command!(wire_table);

/// Every command clients may send, with the domain's spec and its wire form. Zipping is exact:
/// both tables are expansions of the one `for_each_command!` list, in its order.
pub fn client_commands() -> impl Iterator<Item = (&'static CommandSpec, &'static WireCommand)> {
    COMMANDS
        .iter()
        .zip(WIRE)
        .filter(|(spec, _)| spec.sent_by_clients())
}

/// Reads command `name` from `body`, as the command service does.
pub fn parse_command(name: &str, body: &[u8]) -> Option<Result<Command, ParseError>> {
    WIRE.iter()
        .find(|wire| wire.name == name)
        .map(|wire| (wire.parse)(body))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let command = parse_typed(body)?;
    refuse_control_characters(body)?;
    Ok(command)
}

/// A command's text may carry no control character but tab and line breaks: a NUL cannot be
/// stored by PostgreSQL (it would stall every projection) and the others do not belong in prose.
/// Checked on the body as a whole, here where commands come in, and not in `Text`'s
/// deserialisation, which also reads back events stored before the rule.
fn refuse_control_characters(body: &[u8]) -> Result<(), ParseError> {
    // The body is valid JSON by now, where a raw C0 character cannot stand inside a string: a
    // forbidden character comes as an escape or as a raw DEL. A body with neither (nearly every
    // body) holds none, and is not read a second time.
    if !body.iter().any(|&b| b == b'\\' || b == 0x7f) {
        return Ok(());
    }
    /// The path in `serde_path_to_error`'s notation (`lines[0].progress`) and the error.
    fn find(value: &Value, path: &str) -> Option<(String, String)> {
        match value {
            Value::String(text) => remediation_domain::text::forbidden_control(text)
                .map(|e| (path.to_owned(), e.to_string())),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| find(item, &format!("{path}[{i}]"))),
            Value::Object(fields) => fields.iter().find_map(|(name, field)| {
                let path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                find(field, &path)
            }),
            _ => None,
        }
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError {
        path: ".".to_owned(),
        message: e.to_string(),
    })?;
    match find(&value, "") {
        Some((path, message)) => Err(ParseError { path, message }),
        None => Ok(()),
    }
}

fn parse_typed<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| ParseError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    });
    match parsed {
        Ok(value) => {
            deserializer.end().map_err(|e| ParseError {
                path: ".".to_owned(),
                message: e.to_string(),
            })?;
            Ok(value)
        }
        Err(error) => parse_integral_floats(body).ok_or(error),
    }
}

/// JSON does not tell `3` from `3.0`, and JSON Schema calls both integers, but serde refuses a
/// float for an integer field. A body refused for that is read once more with every integral
/// float that fits an `i64`/`u64` as the integer it equals; a body refused for anything else
/// stays refused with its first error.
fn parse_integral_floats<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    fn integral(value: &mut Value) -> bool {
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Every integer up to 2^53 is a float exactly, so the cast loses nothing.
                let exact = f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0;
                if exact {
                    *value = Value::from(f as i64);
                }
                exact
            }
            // Every number is visited (no short circuit): each may need rewriting.
            Value::Array(items) => items.iter_mut().map(integral).fold(false, |a, b| a | b),
            Value::Object(fields) => fields.values_mut().map(integral).fold(false, |a, b| a | b),
            _ => false,
        }
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    integral(&mut value).then(|| serde_json::from_value(value).ok())?
}

#[cfg(test)]
mod tests {
    use remediation_domain::text::Name;
    use serde_json::json;

    use super::*;

    fn parse(name: &str, body: &Value) -> Result<Command, ParseError> {
        parse_command(name, body.to_string().as_bytes()).expect("a command of the domain")
    }

    #[test]
    fn an_integral_float_reads_as_the_integer_it_equals_and_nothing_else_does() {
        let body = |quarter: Value| json!({ "plan_id": "kh-63-2025", "unit_id": "so-xay-dung", "quarter": { "year": 2025.0, "quarter": quarter } });
        let whole = parse("accept-report", &body(json!(3.0))).expect("3.0 is the integer 3");
        assert_eq!(
            whole,
            parse("accept-report", &body(json!(3))).expect("3 parses")
        );
        let fraction = parse("accept-report", &body(json!(3.5))).expect_err("3.5 is no quarter");
        assert_eq!(fraction.path, "quarter.quarter");
        // Integral, yet not a quarter: refused with the first error.
        let out_of_range = parse("accept-report", &body(json!(5.0))).expect_err("no fifth quarter");
        assert_eq!(out_of_range.path, "quarter.quarter");
    }

    #[test]
    fn commands_refuse_control_characters_with_their_path_but_events_still_read_them() {
        let body = |progress: &str| {
            json!({
                "plan_id": "kh-63-2025", "unit_id": "so-xay-dung", "quarter": { "year": 2025, "quarter": 3 },
                "lines": [{ "item_id": "kh-63-2025-01", "progress": progress }]
            })
        };
        let refused = parse("submit-report", &body("Đã cấp\u{0}")).expect_err("a NUL");
        assert_eq!(refused.path, "lines[0].progress");
        assert!(refused.message.contains("U+0000"), "{refused}");
        assert!(parse("submit-report", &body("Đã cấp\r\n\t50 hồ sơ")).is_ok());
        // JSON writes DEL as it is, not as an escape, and it is refused all the same.
        let raw = body("Đã cấp\u{7f}").to_string();
        assert!(raw.contains('\u{7f}') && !raw.contains("\\u"), "{raw}");
        let refused = parse("submit-report", &body("Đã cấp\u{7f}")).expect_err("a DEL");
        assert_eq!(refused.path, "lines[0].progress");
        assert!(refused.message.contains("U+007F"), "{refused}");
        // An event stored before the rule decodes as it was.
        let stored: Name = serde_json::from_value(json!("Sở\u{1b}Y tế")).expect("decodes");
        assert_eq!(stored.as_str(), "Sở\u{1b}Y tế");
    }

    #[test]
    fn a_body_with_trailing_input_does_not_parse() {
        let error = parse_command("define-group", br#"{"group_id":"g","name":"G"} {}"#)
            .expect("a command of the domain")
            .expect_err("trailing input is refused");
        assert_eq!(error.path, ".");
    }

    #[test]
    fn a_name_the_domain_does_not_know_is_no_command() {
        assert!(parse_command("delete-plan", b"{}").is_none());
    }
}
