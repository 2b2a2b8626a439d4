//! Identifiers that end up inside storage keys. Each is validated once, at the
//! edge, so that no key can be forged by embedding a separator.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::validation::FieldError;

/// Lowercase slug: letters, digits, `.`, `_`, `-`; starts with a letter or digit.
fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! slug_id {
    ($name:ident, $what:literal, $max:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Result<Self, FieldError> {
                if is_slug(s, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(FieldError::new(
                        $what,
                        format!(
                            "{} must be 1 to {} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit; got {:?}",
                            $what, $max, s
                        ),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).map_err(|e| e.message)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(TenantId, "tenant", 64);
slug_id!(ServiceName, "service", 64);

/// A change id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeId(uuid::Uuid);

impl ChangeId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| FieldError::new("id", format!("change id must be a UUID; got {s:?}")))
    }
}

impl ChangeId {
    /// A stable shard number in `0..n` (from the id's random bits).
    pub fn shard(&self, n: u32) -> u32 {
        (self.0.as_u128() % u128::from(n.max(1))) as u32
    }
}

impl Default for ChangeId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}
