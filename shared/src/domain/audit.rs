//! The append-only, hash-chained audit trails: one per change, and one per
//! tenant for its governance (catalog imports, freeze windows, major
//! incidents), in the same format, sealed and verified the same way.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::change::{Change, ChangeState};
use super::ids::{ChangeId, TenantId};

/// The `prev_hash` of the first entry of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Created,
    Transitioned,
    /// An approval or rejection was recorded on the approval plan.
    Decided,
    /// A checklist item was marked done.
    ChecklistItemDone,
    /// An emergency change's post-implementation review was recorded.
    Reviewed,
    /// An approved or scheduled change's planned window was moved.
    Rescheduled,
    /// A peer review was recorded on the approval plan.
    PeerReviewed,
    /// A draft's fields were edited.
    Edited,
    /// A rejected change was reworked into a new draft (`reworked_as`).
    Reworked,
    /// A deployment of the change was recorded (`deployments`) without moving it.
    DeploymentRecorded,
    /// An incident was related to the change (`related_incidents`).
    IncidentRelated,
    /// A wrong tag was removed: the incident is no longer related to the change.
    IncidentUnrelated,
    /// The approvers of a waiting level were reminded (the level's cadence).
    ApprovalReminded,
    /// A level waiting past its deadline was escalated to its `escalate_to`.
    ApprovalEscalated,
    /// A level's escalations were exhausted: the CAB was told, the plan is SLA-breached.
    ApprovalSlaBreached,
    /// A scheduled change's "starting soon" reminder went out (`starting_soon.sent`).
    ChangeStartingSoon,
    /// A person cleared a suspect bake (`bake.cleared`): the next stage may go.
    SuspectCleared,
    /// The change's automated rollback was dispatched, or could not be
    /// (`postmortem.automated_rollback` says which, and why).
    RollbackDispatched,
    /// Governance trail: a catalog version was imported.
    CatalogImported,
    /// Governance trail: a freeze window was declared (or replaced).
    FreezeDeclared,
    /// Governance trail: a freeze window was lifted.
    FreezeLifted,
    /// Governance trail: the escalation tick told of freeze windows about to
    /// start (`freezes.<id>.starting`, each occurrence told or skipped late).
    FreezeStarting,
    /// Governance trail: a major incident was declared.
    IncidentDeclared,
    /// Governance trail: a major incident was resolved.
    IncidentResolved,
    /// Governance trail: an approver delegated approval levels for a period.
    DelegationCreated,
    /// Governance trail: a delegation was revoked before it ended.
    DelegationRevoked,
    /// Governance trail: a bulk-change suppression window of unauthorized-change alerts was declared (or replaced).
    SuppressionDeclared,
    /// Governance trail: a suppression window was lifted.
    SuppressionLifted,
}

/// One changed field, before and after (`null` when it did not exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub tenant: TenantId,
    /// The change the trail belongs to; [`ChangeId::GOVERNANCE_TRAIL`] in a
    /// tenant's governance trail.
    pub change_id: ChangeId,
    /// Equal to the change's version after the mutation: 1, 2, 3...
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub changes: Vec<FieldChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// HMAC-SHA256 of `hash` under the hub's audit key ([`AuditKey::seal`]),
    /// set by the store as it writes the entry. Not part of the hash: it
    /// anchors the chain to a key that table access alone does not give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// The hashed content of an entry: everything but the hash itself, in a fixed
/// field order (serde_json objects keep their keys sorted).
#[derive(Serialize)]
struct Hashed<'a> {
    tenant: &'a TenantId,
    change_id: &'a ChangeId,
    seq: u64,
    at: String,
    actor: &'a str,
    action: AuditAction,
    changes: &'a [FieldChange],
    reason: &'a Option<String>,
    prev_hash: &'a str,
}

impl AuditEntry {
    /// The state this entry moved the change to, if it moved it.
    pub fn moved_to(&self) -> Option<ChangeState> {
        let state = self.changes.iter().find(|c| c.field == "state")?;
        serde_json::from_value(state.after.clone()).ok()
    }

    /// The hash this entry should carry, computed from its content.
    pub fn compute_hash(&self) -> String {
        let hashed = Hashed {
            tenant: &self.tenant,
            change_id: &self.change_id,
            seq: self.seq,
            at: self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: &self.actor,
            action: self.action,
            changes: &self.changes,
            reason: &self.reason,
            prev_hash: &self.prev_hash,
        };
        // Serializing plain data to a Vec cannot fail.
        let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Builds the audit entry for a mutation from `before` (None on creation) to
/// `after`, and chains `after` onto it. Returns the record to store and its entry.
pub fn record(
    before: Option<&Change>,
    mut after: Change,
    actor: &str,
    action: AuditAction,
    reason: Option<String>,
) -> (Change, AuditEntry) {
    let prev_hash = before.map_or_else(|| GENESIS_HASH.to_owned(), |b| b.audit_head.clone());
    let mut entry = AuditEntry {
        tenant: after.tenant.clone(),
        change_id: after.id,
        seq: after.version,
        at: after.updated_at,
        actor: actor.to_owned(),
        action,
        changes: diff(before, &after),
        reason,
        prev_hash,
        hash: String::new(),
        seal: None,
    };
    entry.hash = entry.compute_hash();
    after.audit_head = entry.hash.clone();
    (after, entry)
}

/// Where a trail ends: its last entry's sequence number and hash. A change
/// record carries its own (`version`, `audit_head`); a tenant's governance
/// trail keeps one beside its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailHead {
    pub seq: u64,
    pub hash: String,
}

/// The next entry of `tenant`'s governance trail, chained onto `head` (none
/// for the first): `actor` did `action` at `at`, changing `changes`, for `reason`.
pub fn governance_entry(
    tenant: &TenantId,
    head: Option<&TrailHead>,
    at: DateTime<Utc>,
    actor: &str,
    action: AuditAction,
    changes: Vec<FieldChange>,
    reason: Option<String>,
) -> AuditEntry {
    let mut entry = AuditEntry {
        tenant: tenant.clone(),
        change_id: ChangeId::GOVERNANCE_TRAIL,
        seq: head.map_or(1, |h| h.seq + 1),
        at,
        actor: actor.to_owned(),
        action,
        changes,
        reason,
        prev_hash: head.map_or_else(|| GENESIS_HASH.to_owned(), |h| h.hash.clone()),
        hash: String::new(),
        seal: None,
    };
    entry.hash = entry.compute_hash();
    entry
}

impl AuditEntry {
    /// The head of a trail whose last entry this is.
    pub fn head(&self) -> TrailHead {
        TrailHead { seq: self.seq, hash: self.hash.clone() }
    }
}

/// Fields that differ between two versions of a change; bookkeeping fields
/// (version, updated_at, audit_head) are left out: the entry itself carries them.
fn diff(before: Option<&Change>, after: &Change) -> Vec<FieldChange> {
    const BOOKKEEPING: [&str; 3] = ["version", "updated_at", "audit_head"];
    let to_map = |c: &Change| match serde_json::to_value(c) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let before = before.map(to_map).unwrap_or_default();
    let after = to_map(after);
    after
        .into_iter()
        .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()))
        .filter_map(|(field, a)| {
            let b = before.get(&field).cloned().unwrap_or(Value::Null);
            (b != a).then_some(FieldChange { field, before: b, after: a })
        })
        .collect()
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// The hub's audit key: every stored audit entry carries an HMAC of its hash
/// under it. Whoever can rewrite the table but not read this key can still
/// rewrite a trail and recompute its hashes, but not its seals, so
/// [`verify_seals`] finds the rewrite.
#[derive(Clone)]
pub struct AuditKey(HmacSha256);

/// Keys shorter than this are refused.
pub const AUDIT_KEY_MIN_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit key is {len} bytes; it needs at least {AUDIT_KEY_MIN_BYTES}")]
pub struct AuditKeyError {
    pub len: usize,
}

/// Domain separation: a seal is never a valid MAC of anything else under the same key.
const SEAL_CONTEXT: &[u8] = b"changehub audit seal v1\n";

impl AuditKey {
    pub fn new(secret: &[u8]) -> Result<Self, AuditKeyError> {
        use hmac::KeyInit;
        if secret.len() < AUDIT_KEY_MIN_BYTES {
            return Err(AuditKeyError { len: secret.len() });
        }
        HmacSha256::new_from_slice(secret).map(Self).map_err(|_| AuditKeyError { len: secret.len() })
    }

    /// A key for `purpose` derived from `secret` (HMAC-SHA256 of the
    /// purpose), for a secret that also serves another purpose.
    pub fn derive(secret: &[u8], purpose: &str) -> Result<Self, AuditKeyError> {
        use hmac::Mac;
        let parent = Self::new(secret)?;
        let mut mac = parent.0;
        mac.update(purpose.as_bytes());
        Self::new(&mac.finalize().into_bytes())
    }

    fn mac_of(&self, entry: &AuditEntry) -> HmacSha256 {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(SEAL_CONTEXT);
        mac.update(entry.hash.as_bytes());
        mac
    }

    /// The entry, sealed: its `seal` is the HMAC of its hash.
    pub fn seal(&self, entry: &AuditEntry) -> AuditEntry {
        use hmac::Mac;
        AuditEntry { seal: Some(hex::encode(self.mac_of(entry).finalize().into_bytes())), ..entry.clone() }
    }

    /// Whether the entry's seal is the HMAC of its hash (compared in constant time).
    pub fn is_sealed(&self, entry: &AuditEntry) -> bool {
        use hmac::Mac;
        let Some(seal) = entry.seal.as_deref().and_then(|s| hex::decode(s).ok()) else { return false };
        self.mac_of(entry).verify_slice(&seal).is_ok()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit entry {seq}: stored hash does not match its content (entry altered)")]
    HashMismatch { seq: u64 },
    #[error("audit entry {seq}: prev_hash does not match entry {prev}'s hash (chain broken)")]
    BrokenLink { seq: u64, prev: u64 },
    #[error("audit entry {seq} found where {expected} was expected (entry missing or out of order)")]
    Gap { seq: u64, expected: u64 },
    #[error(
        "the record (or trail head) is at version {version} but its audit trail ends at entry {last} (entries removed)"
    )]
    Truncated { last: u64, version: u64 },
    #[error("the record's audit head is not the hash of its last audit entry {last} (record or trail altered)")]
    HeadMismatch { last: u64 },
    #[error("the change is listed but its record is gone ({entries} audit entries remain)")]
    RecordMissing { entries: usize },
    #[error("audit entry {seq} has no seal (written without the audit key, or rewritten)")]
    Unsealed { seq: u64 },
    #[error("audit entry {seq}: its seal is not the audit key's (entry rewritten by someone without the key)")]
    BadSeal { seq: u64 },
}

/// Checks a change's whole trail against the record: the chain itself, that
/// it reaches the record's version, and that the record's head is its last hash.
pub fn verify_record(change: &Change, entries: &[AuditEntry]) -> Result<(), ChainError> {
    verify_trail(&TrailHead { seq: change.version, hash: change.audit_head.clone() }, entries)
}

/// Checks a whole trail against where its head says it ends: the chain
/// itself, that it reaches the head's sequence number, and that its last
/// hash is the head's.
pub fn verify_trail(head: &TrailHead, entries: &[AuditEntry]) -> Result<(), ChainError> {
    verify_chain(entries)?;
    let last = entries.last().map_or(0, |e| e.seq);
    if last != head.seq {
        return Err(ChainError::Truncated { last, version: head.seq });
    }
    if entries.last().is_none_or(|e| e.hash != head.hash) {
        return Err(ChainError::HeadMismatch { last });
    }
    Ok(())
}

/// Checks a whole chain, in order, from its first entry.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS_HASH;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.seq != expected {
            return Err(ChainError::Gap { seq: e.seq, expected });
        }
        if e.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink { seq: e.seq, prev: e.seq - 1 });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::HashMismatch { seq: e.seq });
        }
        prev_hash = &e.hash;
    }
    Ok(())
}

/// Checks that every entry carries the audit key's seal of its hash. With
/// [`verify_chain`] (every hash links to the one before) this anchors the
/// whole trail: a consistent rewrite needs the key.
pub fn verify_seals(entries: &[AuditEntry], key: &AuditKey) -> Result<(), ChainError> {
    for e in entries {
        match e.seal {
            None => return Err(ChainError::Unsealed { seq: e.seq }),
            Some(_) if !key.is_sealed(e) => return Err(ChainError::BadSeal { seq: e.seq }),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::ChangeState;
    use crate::domain::new_change::NewChange;
    use crate::domain::{ChangeType, TenantId};
    use chrono::TimeZone;

    fn draft(id: ChangeId, at: DateTime<Utc>) -> Change {
        NewChange {
            change_type: ChangeType::Emergency,
            ..NewChange::basic("x", &["payments"], "production", at, at + chrono::Duration::hours(1))
        }
        .validate()
        .expect("valid")
        .into_draft(id, TenantId::parse("acme").expect("tenant"), "alice".into(), at)
    }

    fn chain() -> Vec<AuditEntry> {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default();
        let draft = draft(ChangeId::new(), at);
        let (mut current, first) = record(None, draft, "alice", AuditAction::Created, None);
        let mut entries = vec![first];
        for to in [ChangeState::Submitted, ChangeState::Approved] {
            let next = current.transition(to, at + chrono::Duration::minutes(5)).expect("legal");
            let (next, e) = record(Some(&current), next, "bob", AuditAction::Transitioned, Some("ok".into()));
            entries.push(e);
            current = next;
        }
        entries
    }

    #[test]
    fn entries_chain_from_genesis_and_verify() {
        let entries = chain();
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        assert_eq!(
            entries[1].changes,
            vec![FieldChange { field: "state".into(), before: "draft".into(), after: "submitted".into() }]
        );
        verify_chain(&entries).expect("valid chain");
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain();
        entries[1].actor = "mallory".into();
        assert_eq!(verify_chain(&entries), Err(ChainError::HashMismatch { seq: 2 }));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut entries = chain();
        entries[1].actor = "mallory".into();
        entries[1].hash = entries[1].compute_hash();
        assert_eq!(verify_chain(&entries), Err(ChainError::BrokenLink { seq: 3, prev: 2 }));
    }

    #[test]
    fn a_removed_entry_is_a_gap() {
        let mut entries = chain();
        entries.remove(1);
        assert_eq!(verify_chain(&entries), Err(ChainError::Gap { seq: 3, expected: 2 }));
    }

    #[test]
    fn a_removed_last_entry_is_caught_by_the_record() {
        let entries = chain();
        let at = entries[2].at;
        let mut record = draft(entries[0].change_id, at);
        record.version = 3;
        record.audit_head = entries[2].hash.clone();
        verify_record(&record, &entries).expect("intact");
        assert_eq!(verify_record(&record, &entries[..2]), Err(ChainError::Truncated { last: 2, version: 3 }));
        record.audit_head = "0".repeat(64);
        assert_eq!(verify_record(&record, &entries), Err(ChainError::HeadMismatch { last: 3 }));
    }

    fn key(byte: u8) -> AuditKey {
        AuditKey::new(&[byte; 32]).expect("key")
    }

    #[test]
    fn sealed_entries_verify_under_their_key_only() {
        let sealed: Vec<AuditEntry> = chain().iter().map(|e| key(1).seal(e)).collect();
        verify_chain(&sealed).expect("a seal is not part of the hash");
        verify_seals(&sealed, &key(1)).expect("sealed");
        assert_eq!(verify_seals(&sealed, &key(2)), Err(ChainError::BadSeal { seq: 1 }));
        assert_eq!(verify_seals(&chain(), &key(1)), Err(ChainError::Unsealed { seq: 1 }));
    }

    /// The attack the seal exists for: someone with table access rewrites an
    /// entry and recomputes every later hash and link, so the chain verifies.
    #[test]
    fn a_consistent_rewrite_without_the_key_is_found_by_its_seals() {
        let mut entries: Vec<AuditEntry> = chain().iter().map(|e| key(1).seal(e)).collect();
        entries[1].actor = "mallory".into();
        for i in 1..entries.len() {
            entries[i].prev_hash = entries[i - 1].hash.clone();
            entries[i].hash = entries[i].compute_hash();
        }
        verify_chain(&entries).expect("the rewrite is consistent");
        assert_eq!(verify_seals(&entries, &key(1)), Err(ChainError::BadSeal { seq: 2 }));
        // Re-sealing needs the key; a guessed one does not do.
        let forged: Vec<AuditEntry> = entries.iter().map(|e| key(9).seal(e)).collect();
        assert_eq!(verify_seals(&forged, &key(1)), Err(ChainError::BadSeal { seq: 1 }));
    }

    #[test]
    fn a_governance_trail_chains_from_genesis_under_its_own_id_and_verifies_against_its_head() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default();
        let version = |n: u64| FieldChange { field: "catalog.version".into(), before: (n - 1).into(), after: n.into() };
        let first = governance_entry(&tenant, None, at, "root", AuditAction::CatalogImported, vec![version(1)], None);
        let lifted = governance_entry(
            &tenant,
            Some(&first.head()),
            at,
            "ada",
            AuditAction::FreezeLifted,
            vec![],
            Some("close done".into()),
        );
        assert_eq!(
            (first.seq, first.prev_hash.as_str(), first.change_id),
            (1, GENESIS_HASH, ChangeId::GOVERNANCE_TRAIL)
        );
        assert_eq!((lifted.seq, &lifted.prev_hash), (2, &first.hash));
        let trail = vec![first.clone(), lifted.clone()];
        verify_trail(&lifted.head(), &trail).expect("intact");
        assert_eq!(verify_trail(&lifted.head(), &trail[..1]), Err(ChainError::Truncated { last: 1, version: 2 }));
        assert_eq!(verify_trail(&first.head(), &trail), Err(ChainError::Truncated { last: 2, version: 1 }));
        let mut forged = trail;
        forged[1].reason = Some("nothing to see".into());
        assert_eq!(verify_trail(&lifted.head(), &forged), Err(ChainError::HashMismatch { seq: 2 }));
    }

    #[test]
    fn short_audit_keys_are_refused() {
        assert_eq!(AuditKey::new(&[0; 16]).map(|_| ()), Err(AuditKeyError { len: 16 }));
        assert_eq!(format!("{:?}", key(1)), "AuditKey(..)");
    }

    #[test]
    fn hashes_survive_a_json_round_trip() {
        for e in chain() {
            let back: AuditEntry = serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("parse");
            assert_eq!(back.compute_hash(), e.hash);
        }
    }
}
