//! "Freeze starting": a freeze window's occurrence is about to start. The
//! escalation tick (the escalate function, `serve`'s ticker, `changehub
//! escalate --now`) takes it through the due index, once per occurrence:
//!
//! - **Armed with the document.** Every write of a tenant's freezes document
//!   arms each window's next notice, the catalog's `changes.starting_soon`
//!   before it starts ([`FreezeNotices::arm`]); the document's earliest
//!   notice is its due entry (`DUE#FREEZE#{shard}`), written in the same
//!   write as the document, so no save leaves it unarmed or stale.
//! - **Sent once.** The tick reads the due documents only, sends each due
//!   notice under a claim per window occurrence
//!   (`freeze-starting:{tenant}:{window}:{start}`): the bus event `Freeze
//!   Starting` and the notifications routed like any event
//!   ([`routed::for_services`], each recipient once). Only then it records
//!   the notices taken and re-arms the next occurrence, in one write of the
//!   document conditional on its version, with the governance trail's
//!   `freeze_starting` entry. A crash between the two sends nothing twice
//!   (the claims say it went) and the next tick records it; of concurrent
//!   ticks, one sends each notice and one writes.
//! - **Never stale.** A tick that comes after an occurrence started skips it
//!   (recorded as `late` on the trail and in the tick's summary): the
//!   freeze is in force and "a freeze starts" would mislead.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::instrument;

use super::changes::SYSTEM_ACTOR;
use super::governance::Freezes;
use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use super::routed::{self, Routed, RoutedError, send_each};
use crate::domain::audit::{self, AuditAction, FieldChange};
use crate::domain::catalog::Catalog;
use crate::domain::freeze::FreezeWindow;
use crate::domain::routing::render::Occurrence;
use crate::domain::soon::FreezeStart;
use crate::domain::{HubEvent, ServiceName, TenantId};
use crate::ports::{
    BusError, CatalogReader, Clock, DUE_SHARDS, Dedupe, DocKind, EventBus, Fact, FreezesDue, MAX_PAGE, Notifier,
    StoreError, StoredDoc, TenantDocs,
};

/// The bus detail-type, and the notifications' `kind` attribute.
pub const KIND: &str = "Freeze Starting";
/// The event type routing knows it by (the notifications' `type` attribute).
pub const TYPE: &str = "freeze_starting";
/// The bus event's source.
pub const SOURCE: &str = "changehub.freeze";
/// Every notice's `severity` attribute: a freeze is planned, not an alarm.
pub const SEVERITY: &str = "info";

/// Writes of one document tried in a tick before it is left to the next.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FreezeTickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Notify(#[from] RoutedError),
}

/// The "freeze starting" part of the escalation tick.
pub struct FreezeTicker<S, K, C, B, N> {
    pub store: S,
    pub catalog: K,
    pub clock: C,
    pub bus: B,
    pub notifier: N,
    pub claims: ClaimTimes,
}

/// A notice a tick took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FreezeTold {
    pub tenant: TenantId,
    pub window: String,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// The tick came after the occurrence started: skipped, not sent.
    pub late: bool,
}

/// What the freeze part of one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FreezeTick {
    /// Freezes documents the due index returned.
    pub read: usize,
    /// Notices taken: sent, or skipped as late.
    pub told: Vec<FreezeTold>,
    /// Documents with nothing due when read again: another tick took them.
    pub already_taken: usize,
    /// Documents left to the next tick (busy: a concurrent tick is sending, or writers kept conflicting).
    pub deferred: usize,
}

impl FreezeTick {
    /// The notices sent (not late).
    pub fn sent(&self) -> usize {
        self.told.iter().filter(|t| !t.late).count()
    }

    /// The notices skipped because their freeze had started.
    pub fn late(&self) -> usize {
        self.told.iter().filter(|t| t.late).count()
    }
}

impl<S, K, C, B, N> FreezeTicker<S, K, C, B, N>
where
    S: FreezesDue + TenantDocs + Dedupe,
    K: CatalogReader,
    C: Clock,
    B: EventBus,
    N: Notifier,
{
    pub fn new(store: S, catalog: K, clock: C, bus: B, notifier: N) -> Self {
        Self { store, catalog, clock, bus, notifier, claims: ClaimTimes::default() }
    }

    /// Takes every notice due by now, each once.
    #[instrument(skip(self))]
    pub async fn tick(&self) -> Result<FreezeTick, FreezeTickError> {
        let now = self.clock.now();
        let mut tick = FreezeTick::default();
        for shard in 0..DUE_SHARDS {
            let mut after = None;
            loop {
                let page = self.store.due_freezes(shard, now, MAX_PAGE, after.take()).await?;
                tick.read += page.items.len();
                for due in page.items {
                    self.take(&due.tenant, due.doc, now, &mut tick).await?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        if !tick.told.is_empty() {
            tracing::info!(read = tick.read, sent = tick.sent(), late = tick.late(), "freeze starting tick");
        }
        Ok(tick)
    }

    /// Sends `doc`'s due notices, then records them and re-arms, conditional
    /// on its version; on a conflict, reads it again and takes what is still due.
    async fn take(
        &self,
        tenant: &TenantId,
        mut doc: StoredDoc,
        now: DateTime<Utc>,
        tick: &mut FreezeTick,
    ) -> Result<(), FreezeTickError> {
        let view = self.catalog.catalog(tenant).await?;
        let lead = &view.catalog.changes.starting_soon;
        for _ in 0..ATTEMPTS {
            let mut freezes: Freezes = serde_json::from_value(doc.body.clone()).map_err(|e| StoreError::Corrupt {
                key: format!("freezes of tenant {tenant}"),
                message: e.to_string(),
            })?;
            let windows = freezes.windows.clone();
            let Some(taken) = freezes.notices.take(&windows, lead, now) else {
                tick.already_taken += 1;
                return Ok(());
            };
            for start in &taken.send {
                let Some(window) = windows.iter().find(|w| w.id == start.window) else { continue };
                if !self.announce(tenant, window, start, &view.catalog).await? {
                    tracing::info!(%tenant, window = %start.window, "a freeze notice is being sent by another tick");
                    tick.deferred += 1;
                    return Ok(());
                }
            }
            let told: Vec<FreezeTold> = taken
                .send
                .iter()
                .map(|s| (s, false))
                .chain(taken.late.iter().map(|s| (s, true)))
                .map(|(s, late)| told(tenant, &windows, s, late))
                .collect();
            match self.record(tenant, &doc, &freezes, &told, now).await {
                Ok(()) => {
                    tick.told.extend(told);
                    return Ok(());
                }
                Err(StoreError::VersionConflict { .. }) => match self.store.get_doc(tenant, DocKind::Freezes).await? {
                    Some(current) => doc = current,
                    None => return Ok(()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(%tenant, "the freezes document kept conflicting; the next tick takes it");
        tick.deferred += 1;
        Ok(())
    }

    /// Publishes the notice of `start` and sends its routed notifications,
    /// once per window occurrence: whether it went out (now or before), or
    /// another attempt holds it.
    async fn announce(
        &self,
        tenant: &TenantId,
        window: &FreezeWindow,
        start: &FreezeStart,
        catalog: &Catalog,
    ) -> Result<bool, FreezeTickError> {
        let at = start.occurrence.start.to_rfc3339_opts(SecondsFormat::Secs, true);
        let key = format!("freeze-starting:{tenant}:{}:{at}", window.id);
        let event = event_of(tenant, window, start, &key);
        let routed = notifications_for(tenant, window, start, catalog);
        let work = async {
            self.bus.publish(std::slice::from_ref(&event)).await?;
            Box::pin(send_each(&self.store, &self.clock, self.claims, &self.notifier, &key, &routed)).await?;
            Ok::<_, FreezeTickError>(())
        };
        match once(&self.store, &self.clock, self.claims, std::slice::from_ref(&key), work).await {
            Ok(Once::Done(())) | Ok(Once::Duplicate) => Ok(true),
            Ok(Once::InProgress) => Ok(false),
            Err(OnceError::Store(e)) => Err(e.into()),
            Err(OnceError::Work(e)) => Err(e),
        }
    }

    /// The document with the notices taken and the next ones armed, and its
    /// governance trail entry, conditional on the version read.
    async fn record(
        &self,
        tenant: &TenantId,
        doc: &StoredDoc,
        freezes: &Freezes,
        told: &[FreezeTold],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let next = StoredDoc {
            version: doc.version + 1,
            updated_at: now,
            updated_by: SYSTEM_ACTOR.to_owned(),
            body: serde_json::to_value(freezes).map_err(|e| StoreError::backend(false, e))?,
            due_at: freezes.notices.due_at(),
        };
        let changes = told
            .iter()
            .map(|t| FieldChange {
                field: format!("freezes.{}.starting", t.window),
                before: serde_json::Value::Null,
                after: serde_json::json!({"start": t.start, "end": t.end, "due_at": t.due_at, "late": t.late}),
            })
            .collect();
        let head = self.store.trail_head(tenant).await?;
        let entry = audit::governance_entry(
            tenant,
            head.as_ref(),
            now,
            SYSTEM_ACTOR,
            AuditAction::FreezeStarting,
            changes,
            None,
        );
        self.store.put_doc(tenant, DocKind::Freezes, &next, &entry).await
    }
}

fn told(tenant: &TenantId, windows: &[FreezeWindow], s: &FreezeStart, late: bool) -> FreezeTold {
    let name = windows.iter().find(|w| w.id == s.window).map_or_else(|| s.window.clone(), |w| w.name.trim().to_owned());
    FreezeTold {
        tenant: tenant.clone(),
        window: s.window.clone(),
        name,
        start: s.occurrence.start,
        end: s.occurrence.end,
        due_at: s.due_at,
        late,
    }
}

/// What the frozen services are called: their names, or "every service".
fn scope_of(window: &FreezeWindow) -> String {
    if window.services.is_empty() {
        "every service".to_owned()
    } else {
        window.services.iter().map(ServiceName::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// The bus event `Freeze Starting`; its id is the notice's claim key, so a
/// re-publish is recognisably the same event.
fn event_of(tenant: &TenantId, window: &FreezeWindow, start: &FreezeStart, id: &str) -> HubEvent {
    HubEvent {
        id: id.to_owned(),
        source: SOURCE.to_owned(),
        detail_type: KIND.to_owned(),
        time: start.due_at,
        resources: vec![],
        detail: serde_json::json!({
            "event_id": id,
            "tenant": tenant,
            "window": window.id,
            "name": window.name.trim(),
            "services": window.services,
            "start": start.occurrence.start,
            "end": start.occurrence.end,
            "reason": window.reason.trim(),
        }),
    }
}

/// The notifications of `window`'s occurrence `start` about to start,
/// routed by the catalog as `freeze_starting` (by default to the frozen
/// services' owners and stakeholders, and the feed; a tenant-wide window
/// freezes every service of the catalog), each with attributes `kind`,
/// `tenant`, `window`, `services`, and routing's `type`, `audience`,
/// `notify`, `service` and `severity` (`info`).
pub fn notifications_for(
    tenant: &TenantId,
    window: &FreezeWindow,
    start: &FreezeStart,
    catalog: &Catalog,
) -> Vec<Routed> {
    let occurrence = occurrence_of(window, start);
    let frozen = if window.services.is_empty() {
        catalog.services.iter().map(|s| s.name.clone()).collect()
    } else {
        window.services.clone()
    };
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_owned(), KIND.to_owned());
    attributes.insert("tenant".to_owned(), tenant.to_string());
    attributes.insert("window".to_owned(), window.id.clone());
    attributes.insert("services".to_owned(), window.services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    let body = serde_json::json!({
        "event": KIND,
        "tenant": tenant,
        "window": window,
        "occurrence": start.occurrence,
        "due_at": start.due_at,
    });
    routed::for_services(catalog, &occurrence, frozen, &attributes, SEVERITY, &body)
}

/// What people read of a freeze about to start.
fn occurrence_of(window: &FreezeWindow, start: &FreezeStart) -> Occurrence {
    let scope = scope_of(window);
    let (from, to) = (
        start.occurrence.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        start.occurrence.end.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let name = window.name.trim();
    let mut facts = vec![Fact { name: "Frozen".into(), value: scope.clone() }];
    let mut details = vec![format!(
        "No change to {scope} may be submitted, scheduled or started from {from} to {to} without an override."
    )];
    let reason = window.reason.trim();
    if !reason.is_empty() {
        facts.push(Fact { name: "Reason".into(), value: reason.to_owned() });
        details.push(format!("Reason: {reason}"));
    }
    let impact = if reason.is_empty() {
        format!("No change to {scope} is made during the freeze.")
    } else {
        format!("No change to {scope} is made during the freeze ({reason}).")
    };
    Occurrence {
        event: TYPE.to_owned(),
        headline: format!("[{KIND}] {name}: {from} ({scope})"),
        reference: window.id.clone(),
        title: name.to_owned(),
        services: window.services.clone(),
        at: start.due_at,
        window: Some((start.occurrence.start, start.occurrence.end)),
        facts,
        details,
        impact: Some(impact),
        links: vec![],
        commands: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::soon::FreezeNotices;

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "roles": {"cab": ["cab"]},
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1,
                 "stakeholders": [{"notify": "finance", "time_zone": "Europe/Paris"}]},
                {"name": "ledger", "owner_group": "payments-team", "tier": 2},
                {"name": "search", "owner_group": "search-team", "tier": 3},
            ],
        }))
        .expect("catalog")
    }

    fn window(services: &[&str]) -> (FreezeWindow, FreezeStart) {
        let window: FreezeWindow = serde_json::from_value(serde_json::json!({
            "id": "dec-close", "name": "December close", "services": services, "reason": "Year-end books",
            "schedule": {"kind": "one_off", "start": "2030-12-01T00:00:00Z", "end": "2030-12-03T00:00:00Z"},
        }))
        .expect("window");
        let lead = crate::domain::catalog::Span::parse("1h").expect("lead");
        let mut notices = FreezeNotices::default();
        notices.arm(std::slice::from_ref(&window), &lead, chrono::DateTime::UNIX_EPOCH);
        (window, notices.next.remove(0))
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn who(routed: &[Routed]) -> Vec<(String, String, String)> {
        routed
            .iter()
            .map(|r| {
                let a = &r.notification.attributes;
                let get = |k: &str| a.get(k).cloned().unwrap_or_default();
                (get("audience"), get("notify"), get("service"))
            })
            .collect()
    }

    #[test]
    fn the_frozen_services_owners_and_stakeholders_hear_through_the_router() {
        let (w, start) = window(&["payments", "ledger"]);
        let sent = notifications_for(&tenant(), &w, &start, &catalog());
        let row = |a: &str, n: &str, s: &str| (a.to_owned(), n.to_owned(), s.to_owned());
        assert_eq!(
            who(&sent),
            [
                row("feed", "", "payments"),
                row("owners", "payments-team", "payments"),
                row("stakeholders", "finance", "payments")
            ],
            "one copy per group: payments-team owns both"
        );
        let a = &sent[1].notification.attributes;
        assert_eq!(
            (a["type"].as_str(), a["kind"].as_str(), a["severity"].as_str(), a["window"].as_str()),
            ("freeze_starting", "Freeze Starting", "info", "dec-close")
        );
        assert_eq!(
            sent[1].notification.subject,
            "[Freeze Starting] December close: 2030-12-01T00:00:00Z (payments, ledger) (to payments-team)"
        );
        let business = &sent[2].notification.message;
        assert!(business.headline.contains("A change freeze starts for payments, ledger"), "{business:?}");
        assert!(business.facts[0].value.ends_with("CET"), "the stakeholder's own zone: {business:?}");
        assert!(sent.iter().all(|r| r.notification.attributes.len() <= 10), "SNS takes 10 attributes");
    }

    #[test]
    fn a_tenant_wide_freeze_reaches_every_services_owners() {
        let (w, start) = window(&[]);
        let sent = notifications_for(&tenant(), &w, &start, &catalog());
        let to: Vec<String> = who(&sent).into_iter().map(|(_, n, _)| n).collect();
        assert_eq!(to, ["", "payments-team", "search-team", "finance"]);
        assert!(sent[1].notification.subject.contains("(every service)"), "{}", sent[1].notification.subject);
    }
}
