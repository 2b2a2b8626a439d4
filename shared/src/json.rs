//! Decoding a JSON object from outside the process, with errors that say
//! which field is at fault. The HTTP API and the webhook normalizers both use
//! it, each phrasing the error in its own terms.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all; serde's message.
    Malformed(String),
    /// Valid JSON, but not an object (serde would read an array positionally).
    NotObject,
    /// An object that does not fit the type. `field` is the full JSON path of
    /// the field at fault, a missing field included (`pull_request.title`),
    /// or `None` for the object as a whole; `message` is serde's.
    Invalid { field: Option<String>, message: String },
}

/// Decodes `bytes` as `T`, which must be a JSON object.
pub fn decode_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(JsonError::NotObject),
            Err(e) => Err(JsonError::Malformed(e.to_string())),
        };
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return JsonError::Malformed(message);
        }
        // serde names a missing field in its message, with the path of its parent.
        let path = path.trim_start_matches('.');
        let missing = message.split_once("missing field `").and_then(|(_, rest)| rest.split_once('`')).map(|(f, _)| f);
        let field = match (path.is_empty(), missing) {
            (true, None) => None,
            (true, Some(name)) => Some(name.to_owned()),
            (false, Some(name)) => Some(format!("{path}.{name}")),
            (false, None) => Some(path.to_owned()),
        };
        JsonError::Invalid { field, message }
    })
}

/// Decodes `bytes` as `T` like [`decode_object`], and also refuses a nested
/// struct sent as an array: serde reads a struct from an array of its fields
/// in order, which a client only sends by mistake. The check compares the
/// input with `T` serialized back: wherever `T` has an object, the input
/// must not have an array.
pub fn decode_strict<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, JsonError> {
    let decoded: T = decode_object(bytes)?;
    let input: Value = serde_json::from_slice(bytes).map_err(|e| JsonError::Malformed(e.to_string()))?;
    let output = serde_json::to_value(&decoded).unwrap_or(Value::Null);
    match positional(&input, &output) {
        Some(field) => Err(JsonError::Invalid { field: Some(field), message: POSITIONAL.to_owned() }),
        None => Ok(decoded),
    }
}

/// What a struct given as an array is told.
pub const POSITIONAL: &str = "expected an object with named fields, got an array";

/// The path of the first place where `input` holds an array and `output` (the
/// decoded value, serialized) an object; `""` for the root.
pub fn positional(input: &Value, output: &Value) -> Option<String> {
    fn walk(input: &Value, output: &Value, path: &str) -> Option<String> {
        match (input, output) {
            (Value::Array(_), Value::Object(_)) => Some(path.to_owned()),
            (Value::Array(xs), Value::Array(ys)) => {
                xs.iter().zip(ys).enumerate().find_map(|(i, (x, y))| walk(x, y, &format!("{path}[{i}]")))
            }
            (Value::Object(xs), Value::Object(ys)) => xs.iter().find_map(|(k, x)| {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                ys.get(k).and_then(|y| walk(x, y, &child))
            }),
            _ => None,
        }
    }
    walk(input, output, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Inner {
        a: u8,
        b: bool,
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Outer {
        name: String,
        inner: Inner,
        list: Vec<Inner>,
        numbers: [u8; 2],
    }

    #[test]
    fn nested_structs_must_be_objects_but_lists_stay_lists() {
        let ok = br#"{"name": "x", "inner": {"a": 1, "b": true}, "list": [{"a": 2, "b": false}], "numbers": [1, 2]}"#;
        assert!(decode_strict::<Outer>(ok).is_ok());
        let nested = br#"{"name": "x", "inner": [1, true], "list": [], "numbers": [1, 2]}"#;
        assert!(decode_object::<Outer>(nested).is_ok(), "serde alone reads it positionally");
        let err = decode_strict::<Outer>(nested).expect_err("positional");
        assert_eq!(err, JsonError::Invalid { field: Some("inner".into()), message: POSITIONAL.into() });
        let in_list = br#"{"name": "x", "inner": {"a": 1, "b": true}, "list": [{"a": 2, "b": false}, [3, true]], "numbers": [1, 2]}"#;
        let err = decode_strict::<Outer>(in_list).expect_err("positional in a list");
        assert!(matches!(err, JsonError::Invalid { field: Some(f), .. } if f == "list[1]"));
    }
}
