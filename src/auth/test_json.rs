//! Arbitrary JSON for property tests of the request bodies that sign-in takes, biased towards
//! the field names those bodies use so that near-misses (a field of the wrong type, one too
//! many, a string with a NUL) are common.

use proptest::prelude::*;
use serde_json::Value;

const NAMES: &[&str] = &["email", "password", "challenge", "code", "backup_code"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        4 => ".{0,48}".prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
pub fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object over the sign-in field names with string values (mostly well-formed bodies).
pub fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), ".{0,48}".prop_map(Value::from), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The fields a body gives a struct with `fields` (in declaration order): an object's own, or,
/// since serde also reads a struct from an array of its fields in order, an array's elements
/// named by position (`None` for an array longer than the struct).
pub fn as_fields(v: &Value, fields: &[&str]) -> Option<serde_json::Map<String, Value>> {
    match v {
        Value::Object(o) => Some(o.clone()),
        Value::Array(items) if items.len() <= fields.len() => Some(
            fields
                .iter()
                .zip(items)
                .map(|(f, v)| (f.to_string(), v.clone()))
                .collect(),
        ),
        _ => None,
    }
}
