//! The one rule for ids written by people and kept in storage keys: tenant
//! and service names, category, template and checklist item ids, freeze
//! window ids (which also refuse `.`).

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// A lowercase slug: 1 to [`Slug::MAX_LEN`] bytes of `a-z`, `0-9`, `.`, `_`,
/// `-`, starting with a letter or digit. It cannot hold a key separator
/// (`#`), so no storage key can be forged through one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

/// A string that is not a [`Slug`]; callers word the message for their field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {max} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit; got {0:?}", max = Slug::MAX_LEN)]
pub struct NotASlug(pub String);

impl Slug {
    /// Longest slug, in bytes (all of its characters are ASCII).
    pub const MAX_LEN: usize = 64;

    /// Whether `s` is a slug.
    pub fn is_valid(s: &str) -> bool {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        s.len() <= Self::MAX_LEN
            && s.bytes().next().is_some_and(allowed)
            && s.bytes().all(|b| allowed(b) || matches!(b, b'.' | b'_' | b'-'))
    }

    pub fn parse(s: &str) -> Result<Self, NotASlug> {
        if Self::is_valid(s) { Ok(Self(s.to_owned())) } else { Err(NotASlug(s.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name the hub keeps for itself: not a slug (it starts with `_`), so
    /// nothing people write can take it; only ever a storage key's part.
    pub(crate) fn reserved(s: &'static str) -> Self {
        Self(s.to_owned())
    }
}

impl TryFrom<String> for Slug {
    type Error = NotASlug;
    fn try_from(s: String) -> Result<Self, NotASlug> {
        if Self::is_valid(&s) { Ok(Self(s)) } else { Err(NotASlug(s)) }
    }
}

impl From<Slug> for String {
    fn from(v: Slug) -> String {
        v.0
    }
}

impl Deref for Slug {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Slug {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Slug {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Slug {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Written as the string it is, so that messages quoting a slug with `{:?}` read as they would for a `String`.
impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_letters_digits_dots_underscores_and_dashes() {
        for ok in ["a", "9", "payments", "db.primary", "a_b-c.d", "0lead", &"a".repeat(Slug::MAX_LEN)] {
            assert!(Slug::is_valid(ok), "{ok:?}");
            assert_eq!(Slug::parse(ok).map(String::from), Ok(ok.to_owned()));
        }
        for bad in
            ["", "Upper", "A", "-lead", "_lead", ".lead", "has space", "a#b", "ünï", &"a".repeat(Slug::MAX_LEN + 1)]
        {
            assert!(!Slug::is_valid(bad), "{bad:?}");
            assert_eq!(Slug::parse(bad), Err(NotASlug(bad.to_owned())));
        }
    }

    #[test]
    fn serde_reads_only_slugs_and_writes_the_string() {
        let s: Slug = serde_json::from_str("\"db.primary\"").expect("a slug");
        assert_eq!(s, "db.primary");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"db.primary\"");
        let err = serde_json::from_str::<Slug>("\"Not#Ok\"").expect_err("not a slug").to_string();
        assert!(err.contains("must be 1 to 64 characters of a-z"), "{err}");
        assert_eq!(format!("{s:?} {s}"), "\"db.primary\" db.primary");
    }
}
