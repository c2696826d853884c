//! A single problem with one input field, in the shape both the HTTP error body
//! and `google.rpc.BadRequest.FieldViolation` need.

use std::fmt;

use serde::Serialize;

/// One violated rule: which field (named as the contract names it, e.g.
/// `occurred_at` or `attributes.region`) and a human-readable description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.description)
        } else {
            write!(f, "{}: {}", self.field, self.description)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_field_and_description() {
        let v = FieldViolation::new("nps", "must be between 0 and 10");
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"field": "nps", "description": "must be between 0 and 10"})
        );
        assert_eq!(v.to_string(), "nps: must be between 0 and 10");
        assert_eq!(FieldViolation::new("", "x").to_string(), "x");
    }
}
