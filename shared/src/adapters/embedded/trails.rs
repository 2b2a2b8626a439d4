//! The embedded store's tenant documents with their governance trail, and
//! its security events: the same keys and conditions as DynamoDB's.

use chrono::{DateTime, Utc};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{EmbeddedStore, GSI1, ITEMS, backend, decode, encode, get_item, move_due, paged};
use crate::adapters::{expiry, keys};
use crate::domain::TenantId;
use crate::domain::audit::{AuditEntry, TrailHead};
use crate::ports::{
    Cursor, DocKind, DueDoc, FreezesDue, Page, Refusal, SecurityEvent, SecurityLog, SecurityQuery, StoreError,
    StoredDoc, TenantDocs, seal_entry,
};

impl TenantDocs for EmbeddedStore {
    async fn get_doc(&self, tenant: &TenantId, kind: DocKind) -> Result<Option<StoredDoc>, StoreError> {
        self.read_item(keys::doc_pk(tenant, kind), keys::DOC_CURRENT).await
    }

    async fn put_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        doc: &StoredDoc,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let (pk, gpk) = (keys::doc_pk(tenant, kind), keys::governance_pk(tenant));
        let bytes = encode(doc)?;
        let due = keys::doc_due_keys(tenant, kind, doc);
        let tenant = tenant.clone();
        let entry = seal_entry(self.sealer.as_deref(), entry).await?;
        let (expected, version) = (doc.version.saturating_sub(1), doc.version);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let stored = get_item::<StoredDoc>(&table, &pk, keys::DOC_CURRENT)?;
                let current = stored.as_ref().map_or(0, |d| d.version);
                let head = get_item::<TrailHead>(&table, &gpk, keys::TRAIL_HEAD)?.map_or(0, |h| h.seq);
                if current != expected || head + 1 != entry.seq {
                    // Dropping the transaction aborts it: nothing was written.
                    return Err(StoreError::VersionConflict { expected });
                }
                let history = keys::doc_version_sk(version);
                table.insert((pk.as_str(), keys::DOC_CURRENT), bytes.as_slice()).map_err(backend)?;
                table.insert((pk.as_str(), history.as_str()), bytes.as_slice()).map_err(backend)?;
                let aud = keys::audit_sk(entry.seq);
                table.insert((gpk.as_str(), aud.as_str()), encode(&entry)?.as_slice()).map_err(backend)?;
                table.insert((gpk.as_str(), keys::TRAIL_HEAD), encode(&entry.head())?.as_slice()).map_err(backend)?;
                // The due entry moves with the current version, as a change's does.
                let before = stored.as_ref().and_then(|d| keys::doc_due_keys(&tenant, kind, d));
                move_due(&mut txn.open_table(GSI1).map_err(backend)?, before, due, &pk)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn trail_head(&self, tenant: &TenantId) -> Result<Option<TrailHead>, StoreError> {
        self.read_item(keys::governance_pk(tenant), keys::TRAIL_HEAD).await
    }

    async fn trail(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let range = keys::trail_range(after.as_ref())?;
        self.page_in(keys::governance_pk(tenant), range, limit).await
    }
}

impl EmbeddedStore {
    /// Every tenant with a governance trail in the file. An admin scan for
    /// `changehub audit verify`, like [`EmbeddedStore::all_changes`].
    pub async fn governance_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.scan(|pk, sk, _| {
            let tenant = pk.strip_prefix("T#").and_then(|rest| rest.strip_suffix("#GOV"));
            match (tenant, sk) {
                (Some(tenant), keys::TRAIL_HEAD) => TenantId::parse(tenant)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt { key: format!("{pk}/{sk}"), message: e.message }),
                _ => Ok(None),
            }
        })
        .await
    }
}

/// A security event as stored: the event and when the table may drop it.
#[derive(Debug, Serialize, Deserialize)]
struct EventItem {
    #[serde(flatten)]
    event: SecurityEvent,
    expires_at: DateTime<Utc>,
}

impl FreezesDue for EmbeddedStore {
    async fn due_freezes(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<DueDoc>, StoreError> {
        let range = keys::freezes_due_range(shard, until, after.as_ref());
        self.due_page(range, limit, keys::DOC_CURRENT, "document", |pk, sk, doc: StoredDoc| {
            Ok(DueDoc { tenant: keys::tenant_of_due_doc(pk, sk)?, doc })
        })
        .await
    }
}

impl SecurityLog for EmbeddedStore {
    async fn record_refusal(&self, r: &Refusal, ttl: Duration) -> Result<(), StoreError> {
        let (pk, sk) = (keys::security_pk(&r.tenant), keys::security_sk(r.at, &r.action, &r.user));
        let r = r.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let stored: Option<EventItem> = get_item(&table, &pk, &sk)?;
                let (count, first_at) = stored.map_or((0, r.at), |s| (s.event.count, s.event.first_at));
                let event = SecurityEvent {
                    user: r.user,
                    action: r.action,
                    target: r.target,
                    reason: r.reason,
                    count: count + 1,
                    first_at,
                    last_at: r.at,
                };
                let item = EventItem { event, expires_at: expiry(r.at, ttl) };
                table.insert((pk.as_str(), sk.as_str()), encode(&item)?.as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn security_events(&self, q: &SecurityQuery) -> Result<Page<SecurityEvent>, StoreError> {
        let range = keys::security_range(q.since, q.until, q.after.as_ref())?;
        let (pk, limit) = (keys::security_pk(&q.tenant), q.limit);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let rows = table.range((pk.as_str(), range.lo.as_str())..=(pk.as_str(), range.hi.as_str()));
            let rows = rows.map_err(backend)?.rev().map(|row| {
                let (k, v) = row.map_err(backend)?;
                let sk = k.value().1;
                Ok((sk.to_owned(), decode::<EventItem>(&pk, sk, v.value())?.event))
            });
            paged(rows, range.after.as_deref(), limit)
        })
        .await
    }
}
