//! Identifiers that end up inside storage keys. Each is validated once, at the
//! edge, so that no key can be forged by embedding a separator.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::slug::Slug;
use super::validation::FieldError;

/// An id that is a [`Slug`], typed by what it names.
macro_rules! slug_id {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Slug);

        impl $name {
            pub const MAX_LEN: usize = Slug::MAX_LEN;

            pub fn parse(s: &str) -> Result<Self, FieldError> {
                Slug::parse(s).map(Self).map_err(|e| FieldError::new($what, format!("{} {e}", $what)))
            }

            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Slug::try_from(s).map(Self).map_err(|e| format!("{} {e}", $what))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.into()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

slug_id!(TenantId, "tenant");
slug_id!(ServiceName, "service");

impl ServiceName {
    /// The name under which the changes that name resources are indexed
    /// (the plannable and implementation indexes), so the drift consumer
    /// finds them for any resource, mapped or not. No catalog service and no
    /// change's service can take it: it is no slug (it starts with `_`).
    pub const NAMED_RESOURCES: &'static str = "_named-resources";

    /// [`ServiceName::NAMED_RESOURCES`] as a name.
    pub fn named_resources() -> Self {
        Self(Slug::reserved(Self::NAMED_RESOURCES))
    }
}

/// A change id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeId(uuid::Uuid);

impl ChangeId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id derived from `parts` (a UUIDv8 of their SHA-256): the same
    /// parts always name the same change, so concurrent copies of one
    /// event make one change, not several. Deployments' changes have such ids.
    pub fn derived(parts: &[&str]) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| FieldError::new("id", format!("change id must be a UUID; got {s:?}")))
    }
}

impl ChangeId {
    /// The id a tenant's governance trail (catalog imports, freezes, major
    /// incidents) is chained under: the nil UUID, which no change has (change
    /// ids are UUIDv7s the hub makes, or UUIDv8s it derives).
    pub const GOVERNANCE_TRAIL: ChangeId = ChangeId(uuid::Uuid::nil());

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_id_is_the_same_for_the_same_parts_and_only_for_them() {
        let id = ChangeId::derived(&["acme", "github", "acme/payments", "42"]);
        assert_eq!(id, ChangeId::derived(&["acme", "github", "acme/payments", "42"]));
        assert_ne!(id, ChangeId::derived(&["acme", "github", "acme/payments", "43"]));
        assert_ne!(ChangeId::derived(&["ab", "c"]), ChangeId::derived(&["a", "bc"]), "parts are kept apart");
        assert_eq!(id.0.get_version_num(), 8);
        assert_eq!(ChangeId::parse(&id.to_string()), Ok(id), "a change id like any other");
    }
}
