//! Validated text and identifiers.
//!
//! Every string that enters the domain passes through one of these types, so the rules (Unicode
//! NFC, trimmed, bounded length, subject-safe identifiers) are enforced once, at deserialisation,
//! and nothing downstream has to re-check them.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Free text normalised to NFC and trimmed; never empty, at most `MAX` characters.
///
/// Vietnamese can be typed precomposed or with combining marks; normalising at the edge makes
/// equal words compare equal (a repeated command then really is a repeat) and makes search work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Text<const MAX: usize>(String);

/// Why a string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {max} characters ({len})")]
    TooLong { max: usize, len: usize },
    /// NUL cannot be stored in PostgreSQL text or jsonb (it would stall every projection), and no
    /// other control character but tab and line breaks belongs in prose.
    #[error("contains the control character U+{0:04X}")]
    ControlCharacter(u32),
    #[error(
        "identifier must be short and made of lowercase ASCII letters, digits, '-' or '_' (got {0:?})"
    )]
    BadIdentifier(String),
}

/// The first C0 control character of `text` other than tab, line feed and carriage return, or
/// DEL. (C1 controls such as U+0085, a line break in some encodings, are left to the text.)
pub fn forbidden_control(text: &str) -> Option<TextError> {
    text.chars()
        .find(
            |c| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'),
        )
        .map(|c| TextError::ControlCharacter(u32::from(c)))
}

impl<const MAX: usize> Text<MAX> {
    /// New text, from code or a client: control characters are refused. (What clients send in a
    /// command body is checked as a whole by the command parser.)
    pub fn new(raw: &str) -> Result<Self, TextError> {
        if let Some(error) = forbidden_control(raw) {
            return Err(error);
        }
        Self::from_string(raw.to_owned())
    }

    /// Takes `raw` as it is when it is trimmed and NFC already — everything read back from the
    /// log is, and folding history decodes every text of every event — and normalises a copy
    /// otherwise. Control characters are not refused here: events stored before they were must
    /// still decode.
    fn from_string(raw: String) -> Result<Self, TextError> {
        let trimmed = raw.trim();
        let normalised = if is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
            if trimmed.len() == raw.len() {
                raw
            } else {
                trimmed.to_owned()
            }
        } else {
            trimmed.nfc().collect()
        };
        let len = normalised.chars().count();
        if len == 0 {
            return Err(TextError::Empty);
        }
        if len > MAX {
            return Err(TextError::TooLong { max: MAX, len });
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_string(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl<const MAX: usize> JsonSchema for Text<MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Text{MAX}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX,
            // No control character but tab and line breaks, and not blank: trimmed, it must keep
            // a character.
            "pattern": "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]*[^\\s\\x00-\\x1F\\x7F][^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]*$",
            "description": "Unicode text without control characters (tab and line breaks allowed), stored NFC-normalised and trimmed (not blank)."
        })
    }
}

/// A short name: units, groups, people.
pub type Name = Text<200>;
/// A title of a plan, item or task.
pub type Title = Text<500>;
/// Why something changed; required on every status change, revocation and correction.
pub type Reason = Text<1000>;
/// Longer prose: causes, remedies, progress, evidence.
pub type Prose = Text<4000>;

/// Checks the identifier alphabet. Identifiers become NATS subject tokens
/// (`events.<aggregate>.<id>`), so '.', '*', '>' and whitespace must never reach them.
fn check_identifier(raw: &str, max: usize) -> Result<(), TextError> {
    let ok = (1..=max).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TextError::BadIdentifier(raw.to_owned()))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(raw: impl Into<String>) -> Result<Self, TextError> {
                let raw = raw.into();
                check_identifier(&raw, $max)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": concat!("^[a-z0-9_-]{1,", $max, "}$")
                })
            }
        }
    };
}

identifier!(
    /// Identifier of a unit (đơn vị), e.g. `so-tai-chinh`.
    UnitId,
    64
);
identifier!(
    /// Identifier of a unit group (nhóm đơn vị), e.g. `ubnd-cac-huyen-thi-xa-thanh-pho`.
    GroupId,
    64
);
identifier!(
    /// Identifier of a plan (kế hoạch), e.g. `kh-63-2025`.
    PlanId,
    64
);
identifier!(
    /// Identifier of an item (nội dung hạn chế), e.g. `kh-63-2025-01`.
    ItemId,
    64
);
identifier!(
    /// Identifier of a task (nhiệm vụ) in a unit's detailed plan.
    TaskId,
    64
);
identifier!(
    /// Identifier of a quarterly report (báo cáo quý); derived from plan, unit and quarter.
    ReportId,
    160
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_nfc_normalised_and_trimmed() {
        // "Hóa" typed with a combining acute accent.
        let decomposed = "  Thanh Ho\u{0301}a ";
        let text = Name::new(decomposed).unwrap();
        assert_eq!(text.as_str(), "Thanh Hóa");
        assert_eq!(text, Name::new("Thanh Hóa").unwrap());
        // Deserialised, the same: decomposed or not, padded or not.
        for raw in [decomposed, "Thanh Hóa", " Thanh Hóa", "Thanh Ho\u{0301}a"] {
            let read: Name = serde_json::from_value(serde_json::json!(raw)).unwrap();
            assert_eq!(read.as_str(), "Thanh Hóa", "{raw:?}");
        }
    }

    proptest::proptest! {
        /// The quick path for text that is NFC already changes no answer.
        #[test]
        fn any_text_reads_as_its_trimmed_nfc_form(raw in "\\PC{0,40}") {
            let expected: String = raw.trim().nfc().collect();
            let read: Result<Text<4_000>, _> = serde_json::from_value(serde_json::json!(raw));
            match read {
                Ok(text) => proptest::prop_assert_eq!(text.as_str(), expected.as_str()),
                Err(_) => proptest::prop_assert!(expected.is_empty()),
            }
        }
    }

    #[test]
    fn control_characters_are_refused_but_tabs_and_line_breaks_kept() {
        assert_eq!(
            Name::new("Sở\u{0}Y tế").unwrap_err(),
            TextError::ControlCharacter(0)
        );
        assert_eq!(
            Name::new("Sở\u{1b}Y tế").unwrap_err(),
            TextError::ControlCharacter(0x1b)
        );
        assert_eq!(
            Name::new("Dòng 1\r\n\tDòng 2").unwrap().as_str(),
            "Dòng 1\r\n\tDòng 2"
        );
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        assert!(Text::<3>::new("Sở").is_ok());
        assert_eq!(
            Text::<3>::new("Sở Y").unwrap_err(),
            TextError::TooLong { max: 3, len: 4 }
        );
        assert_eq!(Text::<3>::new("   ").unwrap_err(), TextError::Empty);
    }

    #[test]
    fn identifiers_are_subject_safe() {
        assert!(UnitId::new("so-tai-chinh").is_ok());
        for bad in ["", "a.b", "a*", "a>", "A", "sở", "a b", &"x".repeat(65)] {
            assert!(UnitId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
