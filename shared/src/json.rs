//! Decoding a JSON object from outside the process, with errors that say
//! which field is at fault. The HTTP API and the webhook normalizers both use
//! it, each phrasing the error in its own terms.

use serde::de::DeserializeOwned;

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
