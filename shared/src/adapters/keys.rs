//! The single-table key layout, shared by the DynamoDB and embedded stores so
//! both lay out (and range-query) their items the same way.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | change | `T#{tenant}#CHG#{id}` | `META` |
//! | tenant's change list | `T#{tenant}#CHANGES` | `CHG#{id}` |
//! | audit entry | `T#{tenant}#CHG#{id}` | `AUD#{seq:020}` |
//! | service index | `T#{tenant}#SVC#{service}` | `CHG#{planned_start}#{id}` |
//! | dedupe claim | `IDEM#{key}` | `IDEM` |
//! | outcome counter | `T#{tenant}#STAT#{service}` | `M#{month}#{category}#{type}` |
//! | volume counter | `T#{tenant}#VOL#{month}` | `{type}#REQ#{user}`, `{type}#TEAM#{group}` |
//! | tenant document | `T#{tenant}#DOC#{kind}` | `CURRENT`, and `V#{version:020}` per kept version |

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::change::MAX_PLANNED_WINDOW;
use crate::domain::{Change, ChangeId, ServiceName, TenantId};
use crate::ports::{ChangeUpdate, Cursor, DuePartition, InvalidCursor, ServiceWindowQuery};

pub const META: &str = "META";
pub const AUDIT_PREFIX: &str = "AUD#";
pub const INDEX_PREFIX: &str = "CHG#";
pub const IDEM_SK: &str = "IDEM";

pub fn change_pk(tenant: &TenantId, id: &ChangeId) -> String {
    format!("T#{tenant}#CHG#{id}")
}

/// The partition listing every change of a tenant (one item per change,
/// written with it), so an audit can enumerate a tenant's changes with Query.
pub fn tenant_changes_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#CHANGES")
}

pub fn tenant_changes_sk(id: &ChangeId) -> String {
    format!("{INDEX_PREFIX}{id}")
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

/// The service index entries (PK, SK) of `change`, one per service.
pub fn service_index_keys(change: &Change) -> Vec<(String, String)> {
    change
        .services
        .iter()
        .map(|s| (service_pk(&change.tenant, s), service_sk(change.planned_start, &change.id)))
        .collect()
}

/// The service index entries an update leaves behind: those of the services
/// and planned start the change had before it that it no longer has. Empty
/// unless the update moves the index ([`ChangeUpdate::moves_index`]).
pub fn stale_index_keys(update: &ChangeUpdate<'_>) -> Vec<(String, String)> {
    if !update.moves_index() {
        return vec![];
    }
    let change = update.change;
    let start = update.moved_from.unwrap_or(change.planned_start);
    let current = service_index_keys(change);
    update
        .services_before
        .unwrap_or(&change.services)
        .iter()
        .map(|s| (service_pk(&change.tenant, s), service_sk(start, &change.id)))
        .filter(|k| !current.contains(k))
        .collect()
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
/// Resumes at the cursor when one is given, if it is a service index key
/// ([`cursor_is_valid`]).
pub fn service_range(q: &ServiceWindowQuery) -> Result<SkRange, InvalidCursor> {
    let lo = format!("{INDEX_PREFIX}{}", time_key(q.from - MAX_PLANNED_WINDOW));
    // '~' sorts after every character of an id, so `hi` includes starts equal to `to`.
    let hi = format!("{INDEX_PREFIX}{}#~", time_key(q.to));
    match q.after.as_deref() {
        Some(cursor) if !cursor_is_valid(cursor) => Err(InvalidCursor),
        Some(cursor) if cursor > lo.as_str() => {
            Ok(SkRange { lo: cursor.to_owned(), hi, after: Some(cursor.to_owned()) })
        }
        _ => Ok(SkRange { lo, hi, after: None }),
    }
}

/// Whether a cursor is one this layout could have produced for the query.
pub fn cursor_is_valid(cursor: &str) -> bool {
    cursor.starts_with(INDEX_PREFIX) && cursor.len() <= 128 && !cursor.contains(['\n', '\0'])
}

/// A tenant document's partition: the current version and its history.
pub fn doc_pk(tenant: &TenantId, kind: crate::ports::DocKind) -> String {
    format!("T#{tenant}#DOC#{}", kind.as_str())
}

pub const DOC_CURRENT: &str = "CURRENT";

pub fn doc_version_sk(version: u64) -> String {
    format!("V#{version:020}")
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

pub fn counter_pk(key: &crate::ports::CounterKey) -> String {
    format!("T#{}#STAT#{}", key.tenant, key.service)
}

pub fn counter_sk(key: &crate::ports::CounterKey) -> String {
    format!("M#{}#{}#{}", key.month, key.category, key.change_type.as_str())
}

/// A volume counter's key: one partition per tenant and month, so a
/// month's report is one Query. Users and groups come last (and bounded),
/// so no name can stand for another kind or type.
pub fn volume_key(key: &crate::ports::VolumeKey) -> (String, String) {
    use crate::ports::VolumeOf;
    let (kind, name) = match &key.of {
        VolumeOf::Requester(user) => ("REQ", user),
        VolumeOf::Team(group) => ("TEAM", group),
    };
    (
        format!("T#{}#VOL#{}", key.tenant, key.month),
        format!("{}#{kind}#{}", key.change_type.as_str(), bounded_key(name)),
    )
}

/// Every counter item an update adds to, as (PK, SK, failed): outcome
/// counters add one change (and one failure if it failed), volume counters one change.
pub fn counter_increments(update: &ChangeUpdate<'_>) -> Vec<(String, String, bool)> {
    let outcomes = update.bumps.iter().map(|b| (counter_pk(&b.key), counter_sk(&b.key), b.failed));
    let volumes = update.volumes.iter().map(|v| {
        let (pk, sk) = volume_key(v);
        (pk, sk, false)
    });
    outcomes.chain(volumes).collect()
}

pub use crate::ports::DUE_SHARDS;

/// The approvals-due partition of one shard (all tenants).
pub fn approvals_due_pk(shard: u32) -> String {
    format!("DUE#APPROVAL#{shard}")
}

/// A tenant's emergency changes awaiting their post-implementation review.
pub fn reviews_due_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#DUE#REVIEW")
}

/// The due-index partition key (GSI1PK) of `partition`.
pub fn due_pk(partition: &DuePartition) -> String {
    match partition {
        DuePartition::Approvals { shard } => approvals_due_pk(*shard),
        DuePartition::Reviews { tenant } => reviews_due_pk(tenant),
    }
}

/// The due-index key (GSI1PK, GSI1SK) a change carries while it waits, if it does.
pub fn due_keys(change: &crate::domain::Change) -> Option<(String, String)> {
    use crate::domain::change::Due;
    match change.due()? {
        Due::Approval(at) => Some((
            due_pk(&DuePartition::approvals_of(&change.id)),
            format!("{}#{}#{}", time_key(at), change.tenant, change.id),
        )),
        Due::Review(at) => Some((reviews_due_pk(&change.tenant), format!("{}#{}", time_key(at), change.id))),
    }
}

/// Whether a cursor is a reviews-due sort key (`{due_at}#{id}`) this layout produced.
pub fn review_cursor_is_valid(cursor: &str) -> bool {
    match cursor.split_once('#') {
        Some((at, id)) => DateTime::parse_from_rfc3339(at).is_ok() && ChangeId::parse(id).is_ok() && at.len() == 27,
        None => false,
    }
}

/// The upper bound of a due query: everything due at or before `until`.
pub fn due_until(until: DateTime<Utc>) -> String {
    format!("{}#~", time_key(until))
}

/// The due-index range a due query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRange {
    /// The partition (GSI1PK).
    pub pk: String,
    /// Inclusive upper bound of the sort key ([`due_until`]).
    pub hi: String,
    /// The cursor the page continues after: the range starts at it, and an
    /// item with exactly this sort key is skipped.
    pub after: Option<String>,
}

/// The range of `partition` due by `until`, resuming after the cursor when
/// one is given. A reviews partition's cursor must be one of its sort keys
/// ([`review_cursor_is_valid`]); the approvals partitions are not paged by the API.
pub fn due_range(
    partition: &DuePartition,
    until: DateTime<Utc>,
    after: Option<&Cursor>,
) -> Result<DueRange, InvalidCursor> {
    if let (DuePartition::Reviews { .. }, Some(cursor)) = (partition, after)
        && !review_cursor_is_valid(cursor)
    {
        return Err(InvalidCursor);
    }
    Ok(DueRange { pk: due_pk(partition), hi: due_until(until), after: after.map(|c| c.as_str().to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn window(after: Option<&str>) -> ServiceWindowQuery {
        ServiceWindowQuery {
            tenant: TenantId::parse("acme").expect("tenant"),
            service: ServiceName::parse("payments").expect("service"),
            from: t("2026-11-30T00:00:00Z"),
            to: t("2026-12-01T00:00:00Z"),
            limit: 10,
            after: after.map(|a| Cursor::parse(a).expect("well formed")),
        }
    }

    #[test]
    fn a_service_window_resumes_at_an_index_key_and_refuses_any_other_cursor() {
        let id = ChangeId::new();
        let sk = service_sk(t("2026-11-30T06:00:00Z"), &id);
        let range = service_range(&window(Some(&sk))).expect("an index key");
        assert_eq!((range.lo.as_str(), range.after.as_deref()), (sk.as_str(), Some(sk.as_str())));
        assert_eq!(service_range(&window(Some("bogus"))), Err(InvalidCursor));
    }

    #[test]
    fn a_reviews_partition_resumes_at_one_of_its_sort_keys_and_refuses_any_other_cursor() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let reviews = DuePartition::Reviews { tenant: tenant.clone() };
        let until = t("2026-12-01T00:00:00Z");
        let sk = format!("{}#{}", time_key(t("2026-11-30T06:00:00Z")), ChangeId::new());
        let cursor = Cursor::parse(&sk).expect("well formed");
        let range = due_range(&reviews, until, Some(&cursor)).expect("a review sort key");
        assert_eq!(range, DueRange { pk: reviews_due_pk(&tenant), hi: due_until(until), after: Some(sk) });
        let bogus = Cursor::parse("bogus").expect("well formed");
        assert_eq!(due_range(&reviews, until, Some(&bogus)), Err(InvalidCursor));
    }
}
