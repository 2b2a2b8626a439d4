//! The single-table key layout, shared by the DynamoDB and embedded stores so
//! both lay out (and range-query) their items the same way.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | change | `T#{tenant}#CHG#{id}` | `META` |
//! | tenant's change list | `T#{tenant}#CHANGES` | `CHG#{id}` |
//! | audit entry | `T#{tenant}#CHG#{id}` | `AUD#{seq:020}` |
//! | service index | `T#{tenant}#SVC#{service}` | `CHG#{planned_start}#{id}` |
//! | listing index | `T#{tenant}#PLAN` | `CHG#{planned_start}#{id}` |
//! | implementation index | `T#{tenant}#IMPL#{service}` | `{class}#{started_at}#{id}` |
//! | waiting index | `T#{tenant}#WAIT#G#{group}`, `…#WAIT#U#{user}`, `…#WAIT#PEER` | `{due_at}#{id}` |
//! | governance trail | `T#{tenant}#GOV` | `AUD#{seq:020}`, and `HEAD` |
//! | security event | `T#{tenant}#SEC` | `{minute}#{action}#{user}` |
//! | dedupe claim | `IDEM#{key}` | `IDEM` |
//! | outcome counter | `T#{tenant}#STAT#{service}` | `M#{month}#{category}#{type}` |
//! | volume counter | `T#{tenant}#VOL#{month}` | `{type}#REQ#{user}`, `{type}#TEAM#{group}` |
//! | approval-wait counter | `T#{tenant}#MTTA#{month}` | `W#{dimension}#{name}` |
//! | tenant document | `T#{tenant}#DOC#{kind}` | `CURRENT`, and `V#{version:020}` per kept version |
//! | activity row | `T#{tenant}#ACTIVITY` | `{occurred_at}#{event_id}` |
//! | incident record | `T#{tenant}#INC#{id}` | `META` |
//! | tenant's incidents | `T#{tenant}#INCIDENTS` | `{started_at}#{id}` |
//! | service's incidents | `T#{tenant}#INCSVC#{service}` | `{started_at}#{id}` |
//! | incident counters | `T#{tenant}#STAT#{service}` | `INCIDENTS` (attributes `incidents#{month}`, `change_related#{month}`, `problems#{month}`) |
//! | incident counted | `T#{tenant}#INCSEEN#{incident_id}` | `SEEN` |
//! | recent incidents ring | `T#{tenant}#RECUR#{service}` | `RECENT` |
//! | problem | `T#{tenant}#PROBLEMS` | `PRB#{id}` |
//! | finding | `T#{tenant}#FINDINGS` | `FND#{id}` (the id begins with its window's start) |
//! | change evidence | `T#{tenant}#EVD#{change_id}` | `E#{at}#{event_id}`, and `COUNT` |
//! | requests linked to a change (merge gate) | `T#{tenant}#PULLS#{change}` | `LINKS` |
//! | deployment protection rule request | `T#{tenant}#GATEREQ#{id}` | `REQ` |
//! | protection rule requests waiting on a change | `T#{tenant}#GATEWAIT#{change}` | `WAITS` |
//!
//! The sparse due index, GSI1 (GSI1PK, GSI1SK), holds each change's one next
//! deadline ([`due_keys`], from `Change::due`), so a tick reads only what is due:
//!
//! | due entry | GSI1PK | GSI1SK |
//! |---|---|---|
//! | approval step (submitted) | `DUE#APPROVAL#{shard}` | `{next_at}#{tenant}#{id}` |
//! | post-implementation review | `T#{tenant}#DUE#REVIEW` | `{due_at}#{id}` |
//! | "starting soon" reminder (scheduled) | `DUE#SOON#{shard}` | `{due_at}#{tenant}#{id}` |
//! | "freeze starting" notice (a tenant's freezes document, its `CURRENT` item) | `DUE#FREEZE#{shard}` | `{due_at}#{tenant}` |
//! | protection rule request (a recheck, its time-out, a redelivery) | `DUE#GATE#{shard}` | `{due_at}#{tenant}#{id}` |
//!
//! The shard is [`crate::domain::ChangeId::shard`] of [`DUE_SHARDS`]; each
//! change item carries at most one of these (`Change::due` says which). A
//! freezes document is due for its next notice ([`doc_due_keys`], from
//! `StoredDoc::due_at`): its own partition, not the changes' `DUE#SOON`, so
//! that a page of due items is all of one kind (changes, or documents) and
//! the document's current item carries the keys itself, written and removed
//! in the document's own write; its shard is the tenant's ([`tenant_shard`]).

use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;

use crate::domain::change::MAX_PLANNED_WINDOW;
use crate::domain::correlation::Implementation;
use crate::domain::incident::{Incident, IncidentId};
use crate::domain::waiting::{Awaiting, awaiting};
use crate::domain::{Change, ChangeId, ServiceName, TenantId};
use crate::ports::{
    ActivityQuery, ChangeUpdate, Cursor, DuePartition, ImplementationQuery, IncidentQuery, InvalidCursor, Listing,
    Page, ServiceWindowQuery,
};

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

/// A service window's range of its service index ([`window_range`]).
pub fn service_range(q: &ServiceWindowQuery) -> Result<SkRange, InvalidCursor> {
    window_range(q.from, q.to, q.after.as_ref())
}

/// Every change that starts late enough to still overlap `from` (no window
/// is longer than [`MAX_PLANNED_WINDOW`]) and no later than `to`, in a
/// start-sorted index (service or listing); items in it whose planned end is
/// before `from` are dropped by [`SkRange::keeps`]. Resumes at the cursor
/// when one is given, if it is an index key ([`cursor_is_valid`]).
pub fn window_range(from: DateTime<Utc>, to: DateTime<Utc>, after: Option<&Cursor>) -> Result<SkRange, InvalidCursor> {
    let lo = format!("{INDEX_PREFIX}{}", time_key(from - MAX_PLANNED_WINDOW));
    // '~' sorts after every character of an id, so `hi` includes starts equal to `to`.
    let hi = format!("{INDEX_PREFIX}{}#~", time_key(to));
    match after.map(Cursor::as_str) {
        Some(cursor) if !cursor_is_valid(cursor) => Err(InvalidCursor),
        Some(cursor) if cursor > lo.as_str() => {
            Ok(SkRange { lo: cursor.to_owned(), hi, after: Some(cursor.to_owned()) })
        }
        _ => Ok(SkRange { lo, hi, after: None }),
    }
}

/// A tenant's listing index: every change by planned start, with what
/// filters read ([`Listing`]).
pub fn plan_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#PLAN")
}

/// The partition of the changes waiting for `who`'s decision. Groups and
/// users come last (and bounded), so no name can stand for another kind.
pub fn waiting_pk(tenant: &TenantId, who: &Awaiting) -> String {
    match who {
        Awaiting::Group(group) => format!("T#{tenant}#WAIT#G#{}", bounded_key(group)),
        Awaiting::User(user) => format!("T#{tenant}#WAIT#U#{}", bounded_key(user)),
        Awaiting::Peer => format!("T#{tenant}#WAIT#PEER"),
    }
}

/// Most waiting entries one change has at once (distinct principals of its
/// current level, first by name): a level's move deletes and puts them in one
/// transaction, within DynamoDB's 100 items.
pub const MAX_WAITING_ENTRIES: usize = 40;

/// An index item: the change it names, its planned end (service and listing
/// indexes, for the window's overlap test), in the listing index what
/// filters read, and in the implementation index the implementation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexItem {
    pub change_id: ChangeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<Listing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<Implementation>,
}

/// A service's implementation index: its changes by when their
/// implementation started, filed by how long it took
/// ([`implementation_classes`]), so that a window's read is bounded by the
/// window and the class, never by the history.
pub fn implementation_pk(tenant: &TenantId, service: &ServiceName) -> String {
    format!("T#{tenant}#IMPL#{service}")
}

/// The classes of the implementation index, shortest first: (sort-key
/// prefix, longest implementation filed there). The last has no bound: it
/// holds the implementations still running (their length is not known yet)
/// and the few that took longer than a year.
pub fn implementation_classes() -> [(&'static str, Option<chrono::Duration>); 5] {
    use chrono::Duration;
    [
        ("H1", Some(Duration::hours(1))),
        ("D1", Some(Duration::days(1))),
        ("D31", Some(Duration::days(31))),
        ("D366", Some(Duration::days(366))),
        ("LONG", None),
    ]
}

/// An implementation's entry in a service's implementation index: its
/// class, then its start.
pub fn implementation_sk(implementation: &Implementation, id: &ChangeId) -> String {
    let length = implementation.ended_at().map(|end| end - implementation.started_at());
    let (class, _) = implementation_classes()
        .into_iter()
        .find(|(_, longest)| matches!((length, longest), (Some(l), Some(max)) if l <= *max))
        .unwrap_or(("LONG", None));
    format!("{class}#{}#{id}", time_key(implementation.started_at()))
}

/// The ranges an implementation query reads, one per service and class: the
/// starts from `since` less the class's longest length (an implementation
/// that started earlier ended before `since`) up to `at`; the unbounded
/// class from its first entry. What they hold still goes through
/// [`ImplementationQuery::wants`].
pub fn implementation_ranges(q: &ImplementationQuery) -> Vec<(String, SkRange)> {
    use chrono::Datelike;
    // Time keys are fixed width for years 1 to 9999; beyond, the class's whole range.
    let key = |t: Option<DateTime<Utc>>| t.filter(|t| (1..=9999).contains(&t.year())).map(time_key);
    let mut ranges = Vec::new();
    for service in &q.services {
        let pk = implementation_pk(&q.tenant, service);
        for (class, longest) in implementation_classes() {
            let from = longest.and_then(|l| key(q.since.checked_sub_signed(l)));
            let lo = format!("{class}#{}", from.unwrap_or_default());
            let hi = key(Some(q.at)).map_or_else(|| format!("{class}#~"), |at| format!("{class}#{at}#~"));
            ranges.push((pk.clone(), SkRange { lo, hi, after: None }));
        }
    }
    ranges
}

/// A service's plannable index: its changes a plan alone may still
/// authorize (approved, scheduled, or implementing with no implementation
/// recorded), by planned start, as in the service index. A change leaves it
/// when it starts implementing (the implementation index holds it from then
/// on) or ends any other way, so a read around t is bounded by the changes
/// waiting to start, never by the service's history.
pub fn plannable_pk(tenant: &TenantId, service: &ServiceName) -> String {
    format!("T#{tenant}#PLANNABLE#{service}")
}

/// Whether a change belongs in its services' plannable indexes.
fn plannable(change: &Change) -> bool {
    use crate::domain::{ChangeState, ChangeType};
    change.implementation.is_none()
        && change.change_type != ChangeType::Recorded
        && matches!(change.state, ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing)
}

/// The index entries a change has, by (PK, SK): one per service, one in the
/// listing index, one per service while it is plannable (and one under the
/// reserved name when it names resources), likewise once it is implemented,
/// one per principal it waits for.
pub fn index_entries(change: &Change) -> BTreeMap<(String, String), IndexItem> {
    let (tenant, id) = (&change.tenant, change.id);
    let windowed =
        |listing| IndexItem { change_id: id, planned_end: Some(change.planned_end), listing, implementation: None };
    let start = service_sk(change.planned_start, &id);
    let mut entries: BTreeMap<(String, String), IndexItem> =
        change.services.iter().map(|service| ((service_pk(tenant, service), start.clone()), windowed(None))).collect();
    // A change naming resources is also indexed under the reserved name
    // (`ServiceName::named_resources`), so drift finds it for any resource.
    let named = (!change.resources.is_empty()).then(ServiceName::named_resources);
    let indexed: Vec<&ServiceName> = change.services.iter().chain(named.as_ref()).collect();
    if plannable(change) {
        entries.extend(indexed.iter().map(|service| ((plannable_pk(tenant, service), start.clone()), windowed(None))));
    }
    entries.insert((plan_pk(tenant), start), windowed(Some(Listing::of(change))));
    if let Some(implementation) = change.implementation {
        let sk = implementation_sk(&implementation, &id);
        let item = IndexItem { change_id: id, planned_end: None, listing: None, implementation: Some(implementation) };
        entries.extend(indexed.iter().map(|service| ((implementation_pk(tenant, service), sk.clone()), item.clone())));
    }
    let due = change.approval.as_ref().and_then(|p| p.due_at()).unwrap_or(change.updated_at);
    let waiting_sk = format!("{}#{id}", time_key(due));
    for who in awaiting(change).iter().take(MAX_WAITING_ENTRIES) {
        let item = IndexItem { change_id: id, planned_end: None, listing: None, implementation: None };
        entries.insert((waiting_pk(tenant, who), waiting_sk.clone()), item);
    }
    entries
}

/// What one write of a change does to its index entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexWrites {
    /// Entries the change no longer has.
    pub deletes: Vec<(String, String)>,
    /// Entries it has that are new or hold something new.
    pub puts: Vec<((String, String), IndexItem)>,
}

/// Moves a change's index entries from those of `before` (none for a new
/// change) to those of `after`: both stores apply it in the write that
/// stores `after`, so no index can disagree with the record.
pub fn index_writes(before: Option<&Change>, after: &Change) -> IndexWrites {
    let old = before.map(index_entries).unwrap_or_default();
    let new = index_entries(after);
    IndexWrites {
        deletes: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
        puts: new.into_iter().filter(|(k, item)| old.get(k) != Some(item)).collect(),
    }
}

/// A page of a waiting partition resumes after one of its sort keys
/// (`{due_at}#{id}`, as [`review_cursor_is_valid`] checks).
pub fn waiting_cursor_is_valid(cursor: &str) -> bool {
    review_cursor_is_valid(cursor)
}

/// A tenant's governance trail: its entries (`AUD#{seq}`) and its head.
pub fn governance_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#GOV")
}

pub const TRAIL_HEAD: &str = "HEAD";

/// Whether a cursor is a governance trail entry's sort key.
pub fn trail_cursor_is_valid(cursor: &str) -> bool {
    cursor.strip_prefix(AUDIT_PREFIX).is_some_and(|seq| seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()))
}

/// The governance trail's entries, from the cursor when one is given (an
/// entry's sort key, skipped itself) to the last.
pub fn trail_range(after: Option<&Cursor>) -> Result<SkRange, InvalidCursor> {
    let after = after.map(Cursor::as_str);
    if after.is_some_and(|c| !trail_cursor_is_valid(c)) {
        return Err(InvalidCursor);
    }
    Ok(SkRange {
        lo: after.unwrap_or(AUDIT_PREFIX).to_owned(),
        hi: format!("{AUDIT_PREFIX}~"),
        after: after.map(str::to_owned),
    })
}

/// A tenant's security events.
pub fn security_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#SEC")
}

/// The minute a time falls in, fixed width (`2026-12-01T22:05Z`), so that
/// lexical order is time order.
pub fn minute_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// The event that collects one caller's refusals on one action in one
/// minute. The user comes last (and bounded): actions are route templates.
pub fn security_sk(at: DateTime<Utc>, action: &str, user: &str) -> String {
    format!("{}#{action}#{}", minute_key(at), bounded_key(user))
}

/// The range of security events whose minute lies in `[since, until]`,
/// read newest first: resuming below the cursor when one is given, if it
/// is a security event's sort key.
pub fn security_range(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<&Cursor>,
) -> Result<SkRange, InvalidCursor> {
    let lo = minute_key(since);
    let hi = format!("{}#~", minute_key(until));
    match after.map(Cursor::as_str) {
        Some(cursor) if !security_cursor_is_valid(cursor) => Err(InvalidCursor),
        Some(cursor) if cursor < hi.as_str() => {
            Ok(SkRange { lo, hi: cursor.to_owned(), after: Some(cursor.to_owned()) })
        }
        _ => Ok(SkRange { lo, hi, after: None }),
    }
}

fn security_cursor_is_valid(cursor: &str) -> bool {
    let minute = cursor.get(..17).unwrap_or_default();
    chrono::NaiveDateTime::parse_from_str(minute, "%Y-%m-%dT%H:%MZ").is_ok() && cursor.get(17..18) == Some("#")
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

/// A service's incident counters: one item beside its outcome counters,
/// one attribute per month and figure ([`incident_attributes`]), so that
/// risk scoring reads a service's incident history as one key.
pub fn incident_counter_key(tenant: &TenantId, service: &ServiceName) -> (String, String) {
    (format!("T#{tenant}#STAT#{service}"), INCIDENT_COUNTERS_SK.to_owned())
}

pub const INCIDENT_COUNTERS_SK: &str = "INCIDENTS";

/// The incident counters' attribute names of `month`: incidents, change-related ones, problems opened.
pub fn incident_attributes(month: &str) -> [String; 3] {
    [format!("incidents#{month}"), format!("change_related#{month}"), format!("problems#{month}")]
}

/// The record that an incident was counted (keyed by its id, bounded).
pub fn counted_key(tenant: &TenantId, incident_id: &str) -> (String, String) {
    (format!("T#{tenant}#INCSEEN#{}", bounded_key(incident_id)), "SEEN".to_owned())
}

/// A service's ring of recent incidents and the problems last opened on it.
pub fn recent_key(tenant: &TenantId, service: &ServiceName) -> (String, String) {
    (format!("T#{tenant}#RECUR#{service}"), "RECENT".to_owned())
}

/// A tenant's problems: one partition, by id (time ordered), read newest first.
pub fn problems_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#PROBLEMS")
}

pub const PROBLEM_PREFIX: &str = "PRB#";

pub fn problem_sk(id: &crate::domain::problem::ProblemId) -> String {
    format!("{PROBLEM_PREFIX}{id}")
}

/// The problems below the cursor (a problem's sort key), newest first; all of them without one.
pub fn problem_range(after: Option<&Cursor>) -> Result<SkRange, InvalidCursor> {
    let after = after.map(Cursor::as_str);
    let valid =
        |c: &str| c.strip_prefix(PROBLEM_PREFIX).is_some_and(|id| crate::domain::problem::ProblemId::parse(id).is_ok());
    match after {
        Some(c) if !valid(c) => Err(InvalidCursor),
        Some(c) => Ok(SkRange { lo: PROBLEM_PREFIX.to_owned(), hi: c.to_owned(), after: Some(c.to_owned()) }),
        None => Ok(SkRange { lo: PROBLEM_PREFIX.to_owned(), hi: format!("{PROBLEM_PREFIX}~"), after: None }),
    }
}

/// A page of problems from `rows` (newest first, at most
/// [`crate::ports::PROBLEMS_EVALUATED`] after the cursor's own, which is
/// skipped), `more` telling whether rows remain past them: the matches up
/// to the limit, resuming after the last match taken, or after the last
/// row read when the rows ran out first and more remain.
pub fn problem_page(
    rows: Vec<(String, crate::domain::problem::Problem)>,
    more: bool,
    q: &crate::ports::ProblemQuery,
) -> Page<crate::domain::problem::Problem> {
    filtered_page(rows, more, q.limit, |p| q.admits(p))
}

/// A page of the `rows` that `admits` keeps, at most `limit`, as [`problem_page`] describes.
fn filtered_page<T>(rows: Vec<(String, T)>, more: bool, limit: usize, admits: impl Fn(&T) -> bool) -> Page<T> {
    let mut items = Vec::new();
    let mut last = None;
    let total = rows.len();
    for (i, (sk, item)) in rows.into_iter().enumerate() {
        if admits(&item) {
            if items.len() == limit {
                return Page { items, next: last.map(Cursor::issued) };
            }
            items.push(item);
        }
        last = Some(sk);
        if i + 1 == total && more {
            return Page { items, next: last.map(Cursor::issued) };
        }
    }
    Page { items, next: None }
}

/// The merge gate's requests linked to a change: one item, read and written whole.
pub fn pull_links_pk(tenant: &TenantId, change: &ChangeId) -> String {
    format!("T#{tenant}#PULLS#{change}")
}

pub const PULL_LINKS_SK: &str = "LINKS";

/// What runs in a service's environments: one item per environment
/// (lowercased), read and written whole.
pub fn in_production_pk(tenant: &TenantId, service: &ServiceName) -> String {
    format!("T#{tenant}#DEPLOYED#{service}")
}

pub fn in_production_sk(environment: &str) -> String {
    format!("ENV#{}", bounded_key(&environment.to_ascii_lowercase()))
}

/// A deployment protection rule request: one item, read and written whole.
pub fn protection_pk(tenant: &TenantId, id: &str) -> String {
    format!("T#{tenant}#GATEREQ#{id}")
}

pub const PROTECTION_SK: &str = "REQ";

/// The protection rule requests waiting on a change: one item.
pub fn protection_waits_pk(tenant: &TenantId, change: &ChangeId) -> String {
    format!("T#{tenant}#GATEWAIT#{change}")
}

pub const PROTECTION_WAITS_SK: &str = "WAITS";

/// The due-index key (GSI1PK, GSI1SK) of a protection rule request while
/// something is due on it; its shard is a hash of its tenant and id.
pub fn protection_due_keys(request: &crate::domain::gate::protection::ProtectionRequest) -> Option<(String, String)> {
    use sha2::Digest;
    let at = request.due_at?;
    let digest = sha2::Sha256::digest(format!("{}#{}", request.tenant, request.id).as_bytes());
    let shard = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % crate::ports::DUE_SHARDS;
    Some((protection_due_pk(shard), format!("{}#{}#{}", time_key(at), request.tenant, request.id)))
}

/// The protection rule partition of one due shard (all tenants).
pub fn protection_due_pk(shard: u32) -> String {
    format!("DUE#GATE#{shard}")
}

/// The range of protection rule due shard `shard` due by `until`, resuming after the cursor when one is given.
pub fn protection_due_range(shard: u32, until: DateTime<Utc>, after: Option<&Cursor>) -> DueRange {
    DueRange { pk: protection_due_pk(shard), hi: due_until(until), after: after.map(|c| c.as_str().to_owned()) }
}

/// A tenant's findings: one partition, by id (ordered by window start), read newest first.
pub fn findings_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#FINDINGS")
}

pub const FINDING_PREFIX: &str = "FND#";

pub fn finding_sk(id: &crate::domain::finding::FindingId) -> String {
    format!("{FINDING_PREFIX}{id}")
}

/// The evidence recorded on a change (authorized observations), apart from
/// the change's own partition so that the drift function writes it without
/// any right to write a change.
pub fn change_evidence_pk(tenant: &TenantId, change: &ChangeId) -> String {
    format!("T#{tenant}#EVD#{change}")
}

pub const CHANGE_EVIDENCE_PREFIX: &str = "E#";
/// The item counting a change's evidence (attribute `n`).
pub const CHANGE_EVIDENCE_COUNT: &str = "COUNT";

/// By the event's own time, then its id: a redelivery has the same key.
pub fn change_evidence_sk(at: DateTime<Utc>, event_id: &str) -> String {
    format!("{CHANGE_EVIDENCE_PREFIX}{}#{event_id}", time_key(at))
}

/// A change's evidence, oldest first, after the cursor (one of its keys).
pub fn change_evidence_range(after: Option<&Cursor>) -> Result<SkRange, InvalidCursor> {
    let after = after.map(Cursor::as_str);
    if after.is_some_and(|c| !c.starts_with(CHANGE_EVIDENCE_PREFIX) || c.len() > 1200) {
        return Err(InvalidCursor);
    }
    Ok(SkRange {
        lo: after.unwrap_or(CHANGE_EVIDENCE_PREFIX).to_owned(),
        hi: format!("{CHANGE_EVIDENCE_PREFIX}~"),
        after: after.map(str::to_owned),
    })
}

/// The findings of the query's time range below its cursor (a finding's sort key), newest first.
pub fn finding_range(q: &crate::ports::FindingQuery) -> Result<SkRange, InvalidCursor> {
    use crate::domain::finding::FindingId;
    let lo = format!("{FINDING_PREFIX}{}", q.from.map_or(String::new(), FindingId::floor));
    let hi = format!("{FINDING_PREFIX}{}~", q.to.map_or(String::new(), FindingId::floor));
    match q.after.as_ref().map(Cursor::as_str) {
        Some(c) if c.strip_prefix(FINDING_PREFIX).is_none_or(|id| FindingId::parse(id).is_err()) => Err(InvalidCursor),
        Some(c) => Ok(SkRange { lo, hi: c.to_owned(), after: Some(c.to_owned()) }),
        None => Ok(SkRange { lo, hi, after: None }),
    }
}

/// A page of findings from `rows`, as [`problem_page`] makes one of problems.
pub fn finding_page(
    rows: Vec<(String, crate::domain::finding::Finding)>,
    more: bool,
    q: &crate::ports::FindingQuery,
) -> Page<crate::domain::finding::Finding> {
    filtered_page(rows, more, q.limit, |f| q.admits(f))
}

/// Every counter item an update adds to, as (PK, SK, changes, failures):
/// outcome counters what their [`crate::ports::Bump`] says, volume counters one change.
pub fn counter_increments(update: &ChangeUpdate<'_>) -> Vec<(String, String, i64, i64)> {
    let outcomes = update.bumps.iter().map(|b| (counter_pk(&b.key), counter_sk(&b.key), b.changes, b.failures));
    let volumes = update.volumes.iter().map(|v| {
        let (pk, sk) = volume_key(v);
        (pk, sk, 1, 0)
    });
    outcomes.chain(volumes).collect()
}

/// A tenant's month of approval-wait counters: one partition, so a month's
/// report is one Query.
pub fn waits_pk(tenant: &TenantId, month: &str) -> String {
    format!("T#{tenant}#MTTA#{month}")
}

/// One approval-wait counter of a month: its dimension, then its name (bounded).
pub fn wait_sk(dimension: crate::ports::WaitDimension, name: &str) -> String {
    format!("W#{}#{}", dimension.as_str(), bounded_key(name))
}

/// The (PK, SK) of the counter `bump` adds to.
pub fn wait_key(key: &crate::ports::WaitKey) -> (String, String) {
    (waits_pk(&key.tenant, &key.month), wait_sk(key.dimension, &key.name))
}

/// The approval-wait counts `update` adds, one per counter item (a write
/// may add to one item only once: DynamoDB refuses a transaction that
/// names an item twice), in a stable order.
pub fn wait_increments(update: &ChangeUpdate<'_>) -> Vec<(crate::ports::WaitKey, crate::ports::WaitCounts)> {
    let mut merged: Vec<(crate::ports::WaitKey, crate::ports::WaitCounts)> = Vec::new();
    for bump in update.waits {
        let counts = crate::ports::WaitCounts::of(bump);
        match merged.iter_mut().find(|(k, _)| *k == bump.key) {
            Some((_, c)) => c.add(&counts),
            None => merged.push((bump.key.clone(), counts)),
        }
    }
    merged
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

/// The starting-soon partition of one shard (all tenants).
pub fn starting_soon_due_pk(shard: u32) -> String {
    format!("DUE#SOON#{shard}")
}

/// The freeze-starting partition of one shard (all tenants' freezes documents).
pub fn freezes_due_pk(shard: u32) -> String {
    format!("DUE#FREEZE#{shard}")
}

/// A stable shard of `tenant` in `0..DUE_SHARDS` (from a hash of its id).
pub fn tenant_shard(tenant: &TenantId) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(tenant.as_str().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % DUE_SHARDS
}

/// The due-index key (GSI1PK, GSI1SK) a tenant document's current item
/// carries while it is due: only a freezes document, at its `due_at`.
pub fn doc_due_keys(
    tenant: &TenantId,
    kind: crate::ports::DocKind,
    doc: &crate::ports::StoredDoc,
) -> Option<(String, String)> {
    let at = doc.due_at.filter(|_| kind == crate::ports::DocKind::Freezes)?;
    Some((freezes_due_pk(tenant_shard(tenant)), format!("{}#{tenant}", time_key(at))))
}

/// The range of freeze-starting shard `shard` due by `until`, resuming after the cursor when one is given.
pub fn freezes_due_range(shard: u32, until: DateTime<Utc>, after: Option<&Cursor>) -> DueRange {
    DueRange { pk: freezes_due_pk(shard), hi: due_until(until), after: after.map(|c| c.as_str().to_owned()) }
}

/// The tenant a freeze-starting due entry's sort key (`{due_at}#{tenant}`) names.
pub fn tenant_of_due_doc(pk: &str, sk: &str) -> Result<TenantId, crate::ports::StoreError> {
    let tenant = sk.split_once('#').and_then(|(_, t)| TenantId::parse(t).ok());
    tenant.ok_or_else(|| crate::ports::StoreError::Corrupt {
        key: format!("{pk}/{sk}"),
        message: "no tenant in the due entry".into(),
    })
}

/// The bake partition of one shard (all tenants).
pub fn bake_due_pk(shard: u32) -> String {
    format!("DUE#BAKE#{shard}")
}

/// The due-index partition key (GSI1PK) of `partition`.
pub fn due_pk(partition: &DuePartition) -> String {
    match partition {
        DuePartition::Approvals { shard } => approvals_due_pk(*shard),
        DuePartition::Reviews { tenant } => reviews_due_pk(tenant),
        DuePartition::StartingSoon { shard } => starting_soon_due_pk(*shard),
        DuePartition::Bake { shard } => bake_due_pk(*shard),
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
        Due::StartingSoon(at) => Some((
            due_pk(&DuePartition::starting_soon_of(&change.id)),
            format!("{}#{}#{}", time_key(at), change.tenant, change.id),
        )),
        Due::Bake(at) => Some((
            due_pk(&DuePartition::bake_of(&change.id)),
            format!("{}#{}#{}", time_key(at), change.tenant, change.id),
        )),
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

/// A tenant's activity log: one partition, one row per accepted hub event.
pub fn activity_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#ACTIVITY")
}

/// The longest event id kept as is in an activity sort key; longer ones
/// (an AWS event id is the sender's) are hashed, so a cursor stays short.
const ACTIVITY_ID_MAX: usize = 80;

/// An activity row's sort key: the event's time, then its id, so the log
/// reads in time order and the same event always lands on the same row.
pub fn activity_sk(occurred_at: DateTime<Utc>, event_id: &str) -> String {
    let id = if event_id.len() <= ACTIVITY_ID_MAX && !event_id.contains(['\n', '\0']) {
        event_id.to_owned()
    } else {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(event_id.as_bytes())))
    };
    format!("{}#{id}", time_key(occurred_at))
}

/// Whether a cursor is an activity sort key (`{time}#{event id}`) this layout produced.
pub fn activity_cursor_is_valid(cursor: &str) -> bool {
    match cursor.split_once('#') {
        Some((at, id)) => at.len() == 27 && DateTime::parse_from_rfc3339(at).is_ok() && !id.is_empty(),
        None => false,
    }
}

/// The sort-key range a page of activity reads, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRange {
    pub pk: String,
    /// Inclusive lower bound: `since`.
    pub lo: String,
    /// Inclusive upper bound: the end of `until`.
    pub hi: String,
    /// The cursor: the page reads the rows below it (exclusive).
    pub below: Option<String>,
}

/// The rows of `q`'s tenant that happened in `[since, until]`, below the
/// cursor when one is given; `None` when nothing is left to read (the
/// cursor is below the range, or the range is empty).
pub fn activity_range(q: &ActivityQuery) -> Result<Option<ActivityRange>, InvalidCursor> {
    newest_first(activity_pk(&q.tenant), q.since, q.until, q.after.as_ref())
}

/// The `{time}#{id}` rows of partition `pk` in `[since, until]`, below the
/// cursor when one is given (activity rows and incident listings).
fn newest_first(
    pk: String,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: Option<&Cursor>,
) -> Result<Option<ActivityRange>, InvalidCursor> {
    // Every time key starts with a digit: "0" sorts before them all, '~' after.
    let lo = since.map_or_else(|| "0".to_owned(), time_key);
    let hi = until.map_or_else(|| "~".to_owned(), |t| format!("{}#~", time_key(t)));
    let below = match after.map(Cursor::as_str) {
        Some(c) if !activity_cursor_is_valid(c) => return Err(InvalidCursor),
        Some(c) if c <= lo.as_str() => return Ok(None),
        Some(c) if c <= hi.as_str() => Some(c.to_owned()),
        _ => None,
    };
    if lo > hi {
        return Ok(None);
    }
    Ok(Some(ActivityRange { pk, lo, hi, below }))
}

/// An incident record's partition.
pub fn incident_pk(tenant: &TenantId, id: &IncidentId) -> String {
    format!("T#{tenant}#INC#{id}")
}

/// A tenant's incidents, by start.
pub fn incidents_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#INCIDENTS")
}

/// A service's incidents, by start.
pub fn service_incidents_pk(tenant: &TenantId, service: &ServiceName) -> String {
    format!("T#{tenant}#INCSVC#{service}")
}

/// The listing entries of an incident, by (PK, SK): the tenant's, and its service's.
pub fn incident_entries(incident: &Incident) -> Vec<(String, String)> {
    let sk = format!("{}#{}", time_key(incident.started_at), incident.id);
    let mut entries = vec![(incidents_pk(&incident.tenant), sk.clone())];
    if let Some(service) = &incident.service {
        entries.push((service_incidents_pk(&incident.tenant, service), sk));
    }
    entries
}

/// The listing entries `before` had and `after` has not.
pub fn incident_stale_entries(before: Option<&Incident>, after: &Incident) -> Vec<(String, String)> {
    let now = incident_entries(after);
    before.map(incident_entries).unwrap_or_default().into_iter().filter(|e| !now.contains(e)).collect()
}

/// The range a page of incidents reads: the service's index when the query
/// names one, else the tenant's listing.
pub fn incident_range(q: &IncidentQuery) -> Result<Option<ActivityRange>, InvalidCursor> {
    let pk = match &q.service {
        Some(service) => service_incidents_pk(&q.tenant, service),
        None => incidents_pk(&q.tenant),
    };
    newest_first(pk, q.since, q.until, q.after.as_ref())
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

    fn change_on(services: &[&str], start: DateTime<Utc>) -> Change {
        crate::domain::NewChange::basic("x", services, "production", start, start + chrono::Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), start)
    }

    #[test]
    fn a_new_change_puts_its_service_and_listing_entries_and_a_move_deletes_the_old_ones() {
        let draft = change_on(&["payments", "ledger"], t("2026-12-01T10:00:00Z"));
        let created = index_writes(None, &draft);
        assert!(created.deletes.is_empty());
        let pks: Vec<&str> = created.puts.iter().map(|((pk, _), _)| pk.as_str()).collect();
        assert_eq!(pks, ["T#acme#PLAN", "T#acme#SVC#ledger", "T#acme#SVC#payments"]);

        let mut moved = draft.clone();
        moved.planned_start = t("2026-12-02T10:00:00Z");
        moved.planned_end = t("2026-12-02T11:00:00Z");
        let writes = index_writes(Some(&draft), &moved);
        assert_eq!(writes.deletes.len(), 3, "every window entry moves: {writes:?}");
        assert!(writes.deletes.iter().all(|(_, sk)| sk == &service_sk(draft.planned_start, &draft.id)));
        assert_eq!(writes.puts.len(), 3);

        let mut submitted = draft.clone();
        submitted.state = crate::domain::ChangeState::Submitted;
        let writes = index_writes(Some(&draft), &submitted);
        assert!(writes.deletes.is_empty(), "the window did not move");
        assert_eq!(writes.puts.len(), 1, "only the listing entry holds something new: {writes:?}");
        assert_eq!(writes.puts[0].0.0, "T#acme#PLAN");
        assert!(index_writes(Some(&submitted), &submitted).puts.is_empty(), "nothing changed, nothing written");
    }

    #[test]
    fn an_implementation_is_filed_by_how_long_it_took_and_still_running_ones_are_long() {
        use crate::domain::correlation::{Implementation, Outcome};
        let (start, id) = (t("2026-12-01T10:00:00Z"), ChangeId::new());
        let took = |d: chrono::Duration| {
            let i = Implementation::Finished { started_at: start, ended_at: start + d, outcome: Outcome::Succeeded };
            implementation_sk(&i, &id).split('#').next().map(str::to_owned).unwrap_or_default()
        };
        let (h, d) = (chrono::Duration::hours, chrono::Duration::days);
        assert_eq!(took(h(0)), "H1", "a deployment known by its time");
        assert_eq!((took(h(1)), took(h(1) + chrono::Duration::seconds(1))), ("H1".into(), "D1".into()));
        assert_eq!(
            (took(d(31)), took(d(32)), took(d(366)), took(d(367))),
            ("D31".into(), "D366".into(), "D366".into(), "LONG".into())
        );
        assert_eq!(took(-h(2)), "H1", "an end recorded before the start counts as the start");
        let running = Implementation::Ongoing { started_at: start };
        assert_eq!(implementation_sk(&running, &id), format!("LONG#2026-12-01T10:00:00.000000Z#{id}"));

        let mut change = change_on(&["payments", "ledger"], start);
        assert!(index_entries(&change).keys().all(|(pk, _)| !pk.contains("#IMPL#")), "not implemented, not filed");
        change.implementation = Some(running);
        let filed: Vec<String> =
            index_entries(&change).into_keys().map(|(pk, _)| pk).filter(|pk| pk.contains("#IMPL#")).collect();
        assert_eq!(filed, ["T#acme#IMPL#ledger", "T#acme#IMPL#payments"], "one entry per service");
    }

    #[test]
    fn an_implementation_query_reads_each_class_from_the_window_less_its_longest_length() {
        let q = ImplementationQuery {
            tenant: TenantId::parse("acme").expect("tenant"),
            services: vec![ServiceName::parse("payments").expect("service")],
            since: t("2026-12-01T06:00:00Z"),
            at: t("2026-12-01T10:00:00Z"),
        };
        let ranges: Vec<(String, String)> = implementation_ranges(&q).into_iter().map(|(_, r)| (r.lo, r.hi)).collect();
        let hi = |class: &str| format!("{class}#2026-12-01T10:00:00.000000Z#~");
        assert_eq!(
            ranges,
            [
                ("H1#2026-12-01T05:00:00.000000Z".to_owned(), hi("H1")),
                ("D1#2026-11-30T06:00:00.000000Z".to_owned(), hi("D1")),
                ("D31#2026-10-31T06:00:00.000000Z".to_owned(), hi("D31")),
                ("D366#2025-11-30T06:00:00.000000Z".to_owned(), hi("D366")),
                ("LONG#".to_owned(), hi("LONG")),
            ]
        );
        assert!(implementation_ranges(&q).iter().all(|(pk, _)| pk == "T#acme#IMPL#payments"));
        let unbounded = ImplementationQuery { since: DateTime::<Utc>::MIN_UTC, ..q };
        assert_eq!(implementation_ranges(&unbounded)[0].1.lo, "H1#", "an unvalidated window reads the whole class");
    }

    #[test]
    fn waiting_partitions_keep_kinds_apart() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let keys = [
            waiting_pk(&tenant, &Awaiting::Group("cab".into())),
            waiting_pk(&tenant, &Awaiting::User("cab".into())),
            waiting_pk(&tenant, &Awaiting::Peer),
            waiting_pk(&tenant, &Awaiting::Group("PEER".into())),
        ];
        assert_eq!(keys, ["T#acme#WAIT#G#cab", "T#acme#WAIT#U#cab", "T#acme#WAIT#PEER", "T#acme#WAIT#G#PEER"]);
    }

    #[test]
    fn security_events_are_read_newest_first_below_a_cursor_of_their_own() {
        let (since, until) = (t("2026-12-01T00:00:00Z"), t("2026-12-01T23:59:00Z"));
        let range = security_range(since, until, None).expect("no cursor");
        assert_eq!((range.lo.as_str(), range.hi.as_str()), ("2026-12-01T00:00Z", "2026-12-01T23:59Z#~"));
        let sk = security_sk(t("2026-12-01T10:05:30Z"), "POST /catalog", "mallory");
        assert_eq!(sk, "2026-12-01T10:05Z#POST /catalog#mallory");
        let cursor = Cursor::parse(&sk).expect("well formed");
        let range = security_range(since, until, Some(&cursor)).expect("an event's key");
        assert_eq!((range.hi.as_str(), range.after.as_deref()), (sk.as_str(), Some(sk.as_str())));
        let bogus = Cursor::parse("CHG#2026").expect("well formed");
        assert_eq!(security_range(since, until, Some(&bogus)), Err(InvalidCursor));
        let entry = Cursor::parse(&audit_sk(7)).expect("well formed");
        let range = trail_range(Some(&entry)).expect("an entry's key");
        assert_eq!((range.lo.as_str(), range.hi.as_str()), (audit_sk(7).as_str(), "AUD#~"));
        let short = Cursor::parse("AUD#7").expect("well formed");
        assert_eq!(trail_range(Some(&short)), Err(InvalidCursor));
    }

    #[test]
    fn a_scheduled_change_waits_for_its_reminder_in_its_own_starting_soon_shard() {
        use crate::domain::catalog::Span;
        use crate::domain::{ChangeState, NewChange};
        let tenant = TenantId::parse("acme").expect("tenant");
        let start = t("2026-12-01T22:00:00Z");
        let mut c = NewChange::basic("x", &["payments"], "production", start, start + chrono::Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), tenant, "alice".into(), t("2026-11-30T00:00:00Z"));
        for to in [ChangeState::Submitted, ChangeState::Approved, ChangeState::Scheduled] {
            c = c.transition(to, t("2026-11-30T01:00:00Z")).expect("legal");
        }
        assert_eq!(due_keys(&c), None, "no reminder armed");
        c.arm_starting_soon(&Span::parse("1h").expect("span"));
        let shard = c.id.shard(DUE_SHARDS);
        let pk = due_pk(&DuePartition::StartingSoon { shard });
        assert_eq!(pk, format!("DUE#SOON#{shard}"));
        assert_eq!(due_keys(&c), Some((pk, format!("2026-12-01T21:00:00.000000Z#acme#{}", c.id))));
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

    fn activity(since: Option<&str>, until: Option<&str>, after: Option<&str>) -> ActivityQuery {
        ActivityQuery {
            tenant: TenantId::parse("acme").expect("tenant"),
            since: since.map(t),
            until: until.map(t),
            service: None,
            source: None,
            detail_type: None,
            now: t("2026-12-01T00:00:00Z"),
            limit: 10,
            after: after.map(|a| Cursor::parse(a).expect("well formed")),
        }
    }

    #[test]
    fn an_activity_row_sorts_by_event_time_and_a_long_event_id_is_hashed() {
        let sk = activity_sk(t("2026-11-30T06:00:00Z"), "github-0123-0");
        assert_eq!(sk, "2026-11-30T06:00:00.000000Z#github-0123-0");
        assert!(activity_sk(t("2026-11-30T05:59:59Z"), "zzz") < sk);
        let long = activity_sk(t("2026-11-30T06:00:00Z"), &"a".repeat(200));
        assert!(long.len() < Cursor::MAX_LEN && long.contains("#sha256:"), "{long}");
        assert!(activity_cursor_is_valid(&long));
    }

    #[test]
    fn an_activity_range_is_since_to_until_below_the_cursor() {
        let range = activity_range(&activity(Some("2026-11-30T00:00:00Z"), Some("2026-11-30T23:00:00Z"), None))
            .expect("no cursor")
            .expect("a range");
        assert_eq!(
            (range.pk.as_str(), range.lo.as_str(), range.hi.as_str(), range.below),
            ("T#acme#ACTIVITY", "2026-11-30T00:00:00.000000Z", "2026-11-30T23:00:00.000000Z#~", None)
        );
        let open = activity_range(&activity(None, None, None)).expect("valid").expect("a range");
        assert_eq!((open.lo.as_str(), open.hi.as_str()), ("0", "~"));

        let inside = activity_sk(t("2026-11-30T06:00:00Z"), "github-x-0");
        let range = activity_range(&activity(Some("2026-11-30T00:00:00Z"), None, Some(&inside)))
            .expect("an activity key")
            .expect("a range");
        assert_eq!(range.below.as_deref(), Some(inside.as_str()));
        // A cursor above the range starts at its top; one below it leaves nothing to read.
        let above = activity_sk(t("2026-12-31T00:00:00Z"), "github-x-0");
        let range = activity_range(&activity(None, Some("2026-11-30T23:00:00Z"), Some(&above))).expect("valid");
        assert_eq!(range.and_then(|r| r.below), None);
        let below = activity_sk(t("2026-01-01T00:00:00Z"), "github-x-0");
        assert_eq!(activity_range(&activity(Some("2026-11-30T00:00:00Z"), None, Some(&below))), Ok(None));
        assert_eq!(
            activity_range(&activity(Some("2026-11-30T00:00:00Z"), Some("2026-11-29T00:00:00Z"), None)),
            Ok(None)
        );
        for bogus in ["CHG#2026-11-30T00:00:00.000000Z#x", "2026-11-30#x", "2026-11-30T06:00:00.000000Z#"] {
            assert_eq!(activity_range(&activity(None, None, Some(bogus))), Err(InvalidCursor), "{bogus}");
        }
    }
}
