//! Helpers shared by the vendor normalizers: optional and nullable fields,
//! the vendors' timestamp formats, and "first timestamp present" rules.

use super::canonical::NormalizeError;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use std::fmt;

/// An error naming a field that is missing (or empty).
pub fn missing(field: &str) -> NormalizeError {
    NormalizeError::field(field, format!("{field} is missing"))
}

/// Vendors send `""` for unset text fields as often as `null`.
pub fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// `null` read as the default (an empty list), for `deserialize_with`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The first timestamp present among `candidates` (JSON path, value), or
/// an error naming the first candidate: nothing is invented.
pub fn first_time(candidates: &[(&str, Option<Timestamp>)]) -> Result<DateTime<Utc>, NormalizeError> {
    if let Some(t) = candidates.iter().find_map(|(_, t)| *t) {
        return Ok(t.0);
    }
    let names: Vec<&str> = candidates.iter().map(|(name, _)| *name).collect();
    Err(NormalizeError::field(
        names.first().copied().unwrap_or_default(),
        format!("the payload carries no timestamp: none of {} is present", names.join(", ")),
    ))
}

/// A vendor timestamp: RFC 3339 (`2026-09-14T10:21:46Z`), GitLab's
/// `2026-09-14 10:21:46 UTC` and `2026-09-14 10:34:09 +0000`, or integer
/// epoch seconds (GitHub's `repository.pushed_at` in push payloads).
/// Anything else is an error naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z"))
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                let naive = s.strip_suffix(" UTC")?;
                NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc())
            })
            .map(Timestamp)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn epoch<E: de::Error>(self, secs: Option<i64>, unexpected: Unexpected<'_>) -> Result<Timestamp, E> {
                secs.and_then(|s| DateTime::from_timestamp(s, 0))
                    .map(Timestamp)
                    .ok_or_else(|| E::invalid_value(unexpected, &self))
            }
        }
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS UTC`, `YYYY-MM-DD HH:MM:SS +hhmm` or epoch seconds)",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse(s).ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Timestamp, E> {
                self.epoch(Some(n), Unexpected::Signed(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Timestamp, E> {
                self.epoch(i64::try_from(n).ok(), Unexpected::Unsigned(n))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
pub mod testing {
    //! Property-test generators shared by every normalizer's tests.

    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use serde_json::Value;

    /// An RFC 3339 time literal.
    pub fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    /// A UTC time from its parts.
    pub fn ymd_hms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("valid time")
    }

    /// `sample` with `edit` applied to its JSON.
    pub fn edited(sample: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(sample).expect("sample is JSON");
        edit(&mut v);
        serde_json::to_vec(&v).expect("serializable")
    }

    /// Keys the normalizers read, so arbitrary objects sometimes look like payloads.
    const KEYS: &[&str] = &[
        "action",
        "deployment",
        "deployment_status",
        "workflow_run",
        "pull_request",
        "repository",
        "sender",
        "full_name",
        "login",
        "id",
        "number",
        "title",
        "body",
        "state",
        "environment",
        "ref",
        "sha",
        "head",
        "base",
        "labels",
        "name",
        "merged",
        "commits",
        "head_commit",
        "message",
        "timestamp",
        "created_at",
        "updated_at",
        "default_branch",
        "after",
        "before",
        "deleted",
        "payload",
        "deployment_callback_url",
        "project",
        "path_with_namespace",
        "object_attributes",
        "iid",
        "status",
        "user",
        "username",
        "user_username",
        "deployment_id",
        "status_changed_at",
        "finished_at",
        "oldrev",
        "description",
        "source_branch",
    ];

    /// The default number of cases, without writing failures to a
    /// `proptest-regressions/` file next to the sources.
    pub fn config() -> Config {
        Config { failure_persistence: None, ..Config::default() }
    }

    /// Text biased towards change ids, timestamps and multi-byte characters.
    pub fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            Just("3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90".to_owned()),
            Just("2026-09-14 10:21:46 UTC".to_owned()),
            Just("2026-09-14T10:21:46Z".to_owned()),
            Just("0001-01-01T00:00:00Z".to_owned()),
            Just("refs/heads/main".to_owned()),
            "[a-z0-9 ✓é-]{30,40}",
        ]
    }

    /// Arbitrary JSON, with keys and strings biased towards what the GitHub
    /// and GitLab normalizers read.
    pub fn json() -> impl Strategy<Value = Value> {
        json_with(KEYS)
    }

    /// Arbitrary JSON whose keys and strings are often taken from `words`, so
    /// that it gets past the first fields a normalizer looks at.
    pub fn json_with(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
        let word = proptest::sample::select(words).prop_map(str::to_owned);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
            word.clone().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(prop_oneof![word.clone(), "[a-zA-Z_-]{1,12}"], inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every node of `v`, as a JSON pointer (the root is `""`).
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    fn remove_at(value: &mut Value, pointer: &str) {
        let Some((parent, last)) = pointer.rsplit_once('/') else { return };
        let key = last.replace("~1", "/").replace("~0", "~");
        match value.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.remove(&key);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < a.len()
                {
                    a.remove(i);
                }
            }
            _ => {}
        }
    }

    /// `sample` with one node (any depth, the root included) replaced by `with`.
    pub fn mutate(sample: &[u8], which: prop::sample::Index, with: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(sample).unwrap_or(Value::Null);
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let at = which.get(&all).clone();
        if at.is_empty() {
            v = with;
        } else if let Some(node) = v.pointer_mut(&at) {
            *node = with;
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// One of `samples` with one node replaced by arbitrary JSON or removed.
    pub fn mutated(
        samples: &'static [&'static [u8]],
        words: &'static [&'static str],
    ) -> impl Strategy<Value = Vec<u8>> {
        proptest::sample::select(samples)
            .prop_flat_map(move |sample| {
                let base: Value = serde_json::from_slice(sample).unwrap_or(Value::Null);
                let mut all = Vec::new();
                pointers(&base, String::new(), &mut all);
                (Just(base), proptest::sample::select(all), json_with(words), any::<bool>())
            })
            .prop_map(|(mut value, pointer, replacement, remove)| {
                if remove {
                    remove_at(&mut value, &pointer);
                } else if pointer.is_empty() {
                    value = replacement;
                } else if let Some(slot) = value.pointer_mut(&pointer) {
                    *slot = replacement;
                }
                serde_json::to_vec(&value).unwrap_or_default()
            })
    }
}
