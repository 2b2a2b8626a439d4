//! The single-table key layout, shared by the DynamoDB and embedded stores so
//! both lay out (and range-query) their items the same way.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | change | `T#{tenant}#CHG#{id}` | `META` |
//! | audit entry | `T#{tenant}#CHG#{id}` | `AUD#{seq:020}` |
//! | service index | `T#{tenant}#SVC#{service}` | `CHG#{planned_start}#{id}` |
//! | dedupe claim | `IDEM#{key}` | `IDEM` |
//! | catalog mapping | `T#{tenant}#MAP#{kind}` | `{key}` (see `bounded_key`) |

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::change::MAX_PLANNED_WINDOW;
use crate::domain::{ChangeId, ServiceName, TenantId};
use crate::ports::ServiceWindowQuery;

pub const META: &str = "META";
pub const AUDIT_PREFIX: &str = "AUD#";
pub const INDEX_PREFIX: &str = "CHG#";
pub const IDEM_SK: &str = "IDEM";

pub fn change_pk(tenant: &TenantId, id: &ChangeId) -> String {
    format!("T#{tenant}#CHG#{id}")
}

pub fn audit_sk(seq: u64) -> String {
    format!("{AUDIT_PREFIX}{seq:020}")
}

pub fn service_pk(tenant: &TenantId, service: &ServiceName) -> String {
    format!("T#{tenant}#SVC#{service}")
}

/// Fixed-width UTC time, so that lexical order is time order.
pub fn time_key(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn service_sk(planned_start: DateTime<Utc>, id: &ChangeId) -> String {
    format!("{INDEX_PREFIX}{}#{id}", time_key(planned_start))
}

pub fn idem_pk(key: &str) -> String {
    format!("IDEM#{}", bounded_key(key))
}

/// The SK range a service-window query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkRange {
    /// Inclusive lower bound.
    pub lo: String,
    /// Inclusive upper bound.
    pub hi: String,
    /// The cursor the page continues after: an item with exactly this SK is skipped.
    pub after: Option<String>,
}

impl SkRange {
    /// Whether an index item in the range belongs in the result: not the
    /// cursor itself, and still running at `from`.
    pub fn keeps(&self, sk: &str, planned_end: DateTime<Utc>, from: DateTime<Utc>) -> bool {
        self.after.as_deref() != Some(sk) && planned_end >= from
    }
}

/// Every change that starts late enough to still overlap `from` (no window
/// is longer than [`MAX_PLANNED_WINDOW`]) and no later than `to`; items in it
/// whose planned end is before `from` are dropped by [`SkRange::keeps`].
/// Resumes at the cursor when one is given.
pub fn service_range(q: &ServiceWindowQuery) -> SkRange {
    let lo = format!("{INDEX_PREFIX}{}", time_key(q.from - MAX_PLANNED_WINDOW));
    // '~' sorts after every character of an id, so `hi` includes starts equal to `to`.
    let hi = format!("{INDEX_PREFIX}{}#~", time_key(q.to));
    match &q.after {
        Some(cursor) if cursor.as_str() > lo.as_str() => {
            SkRange { lo: cursor.clone(), hi, after: Some(cursor.clone()) }
        }
        _ => SkRange { lo, hi, after: None },
    }
}

/// Whether a cursor is one this layout could have produced for the query.
pub fn cursor_is_valid(cursor: &str) -> bool {
    cursor.starts_with(INDEX_PREFIX) && cursor.len() <= 128 && !cursor.contains(['\n', '\0'])
}

/// Mappings of one kind share a partition; the key is the sort key, so a
/// lookup is one GetItem and a tenant's mappings of a kind are one Query.
pub fn mapping_pk(tenant: &TenantId, kind: crate::ports::MappingKind) -> String {
    format!("T#{tenant}#MAP#{}", kind.as_str())
}

/// A caller-supplied key (an ARN, a delivery id) as a key attribute: kept
/// as is up to 512 bytes, hashed above, so every key stays within limits.
pub fn bounded_key(key: &str) -> String {
    if key.len() <= 512 {
        key.to_owned()
    } else {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
    }
}
