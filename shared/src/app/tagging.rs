//! Tagging incidents change-related, both ways: the correlate consumer's use
//! case (the Lambda's and `changehub serve`'s).
//!
//! An incident, alert or alarm event updates its record
//! ([`crate::app::incidents`]); a record with a service is then correlated
//! ([`Correlator`]) and the result stored on it (`related_changes`,
//! `change_related`), and each related change gets an audited update
//! (`incident_related`) that lists the incident in `related_incidents`,
//! counts it as the change's failure (once per change: not when its outcome
//! or another incident already did) and requires a post-implementation review.
//!
//! A change event that arrives after the incident (delivery is unordered)
//! tags the incidents its implementation may explain the same way
//! ([`crate::app::recheck`]). A correlation that no longer relates a change
//! the record listed (its implementation moved, or the catalog) takes the
//! incident off that change first, with an audited `incident_unrelated`
//! that takes its count back (`changes::unlist`, as a cab's
//! removal does); the record is written after, so a retry finds the change
//! still listed and finishes.
//!
//! **Idempotent by content.** A result the record already holds, or an
//! incident the change already lists, writes nothing; every write is
//! conditional on the version read and retried on conflict, so duplicates
//! and concurrent consumers never add a second link or a second count.

use crate::app::changes::{SYSTEM_ACTOR, counter_keys, month_of, unlist};
use crate::app::correlate::Correlator;
use crate::app::incidents::{self, Applied, IncidentEventError, Incidents, NOT_AN_INCIDENT, update_of};
use crate::app::recheck::{self, Exposure};
use crate::app::tell::{TellError, Teller};
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::CatalogView;
use crate::domain::change::{PostReview, RelatedIncident};
use crate::domain::incident::{Incident, RelatedChangeRef};
use crate::domain::notice::{NoticeChange, NoticeIncident, NoticeOrigin, Suspicion, TagNotice};
use crate::domain::problem::IncidentSeen;
use crate::domain::{Change, ChangeId, ChangeState};
use crate::ports::{
    Bump, CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, Dedupe, ImplementationReader, IncidentStore,
    Notifier, StoreError, TenantDocs, WriteBack,
};

/// Reads and writes of one record before giving up to concurrent writers (and being retried).
const ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Event(#[from] IncidentEventError),
    /// A change event this consumer cannot read.
    #[error("detail of a {detail_type:?} event: {message}")]
    Unreadable { detail_type: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept moving the record: the event is to be retried.
    #[error("{0} kept moving under the tag's writes; retry")]
    Contended(String),
}

impl TagError {
    /// Whether trying the event again may succeed (a bad event never does).
    pub fn retryable(&self) -> bool {
        match self {
            TagError::Event(IncidentEventError::Malformed { .. } | IncidentEventError::Tenant(_))
            | TagError::Unreadable { .. } => false,
            TagError::Event(IncidentEventError::Store(e)) | TagError::Store(e) => e.is_retryable(),
            TagError::Contended(_) => true,
        }
    }
}

/// What one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Tagged {
    /// Not an incident, and why.
    Ignored(&'static str),
    /// The record as it stands after the event; every change it relates, as
    /// stored (each listing the incident); the ones this call newly linked
    /// (none for a duplicate).
    Recorded { incident: Box<Incident>, related: Vec<Change>, newly_related: Vec<ChangeId> },
}

/// What tagging reads and writes: incident records, the implementation
/// index, and changes.
pub trait TagStore: IncidentStore + TenantDocs + ImplementationReader + ChangeReader + ChangeWriter + Clone {}
impl<T: IncidentStore + TenantDocs + ImplementationReader + ChangeReader + ChangeWriter + Clone> TagStore for T {}

/// The use case.
pub struct Tagging<S, K, C> {
    pub store: S,
    pub catalog: K,
    pub clock: C,
}

impl<S: TagStore, K: CatalogReader, C: Clock> Tagging<S, K, C> {
    pub fn new(store: S, catalog: K, clock: C) -> Self {
        Self { store, catalog, clock }
    }

    /// Applies a hub event to its incident record (major by the tenant's
    /// catalog, `incidents.major`), then tags the record.
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Tagged, TagError> {
        let Some(update) = update_of(detail_type, detail)? else { return Ok(Tagged::Ignored(NOT_AN_INCIDENT)) };
        let rule = self.catalog.catalog(&update.tenant).await?.catalog.incidents.major.clone();
        let incidents = Incidents { store: &self.store, clock: &self.clock, rule };
        let record = match incidents.apply(&update).await? {
            Applied::Ignored(why) => return Ok(Tagged::Ignored(why)),
            Applied::Unchanged(i) | Applied::Written(i) => *i,
        };
        self.tag(record).await
    }

    /// Correlates `record` and writes the links both ways.
    pub async fn tag(&self, record: Incident) -> Result<Tagged, TagError> {
        let incident = self.relate_incident(record).await?;
        let (mut related, mut newly_related) = (Vec::new(), Vec::new());
        if let Some(view) = self.view_of(&incident).await? {
            for link in &incident.related_changes {
                if let Some((change, newly)) = self.relate_change(&view, &incident, link).await? {
                    if newly {
                        newly_related.push(change.id);
                    }
                    related.push(change);
                }
            }
        }
        Ok(Tagged::Recorded { incident: Box::new(incident), related, newly_related })
    }

    async fn view_of(&self, incident: &Incident) -> Result<Option<std::sync::Arc<CatalogView>>, StoreError> {
        if incident.related_changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.catalog.catalog(&incident.tenant).await?))
    }

    /// Stores the correlation of the record's facts on it, unless it holds
    /// that result already; again on a version conflict, from a fresh read.
    async fn relate_incident(&self, mut record: Incident) -> Result<Incident, TagError> {
        let correlator = Correlator::new(self.store.clone());
        for _ in 0..ATTEMPTS {
            let Some(facts) = record.facts() else { return Ok(record) };
            let view = self.catalog.catalog(&record.tenant).await?;
            let (correlation, cost) = correlator.correlate(&record.tenant, &view.catalog, &facts).await?;
            let related = correlation.related.iter().map(reference).collect();
            let before = record.clone();
            if !record.relate(related) {
                return Ok(record);
            }
            for dropped in dropped(&before, &record) {
                unlist(&self.store, &self.clock, &record.tenant, &record.id, dropped, SYSTEM_ACTOR, NO_LONGER).await?;
            }
            record.version += 1;
            match self.store.put_incident(Some(&before), &record).await {
                Ok(()) => {
                    tracing::info!(
                        tenant = %record.tenant, incident = %record.id, change_related = record.change_related,
                        related = record.related_changes.len(), items_read = cost.items, "incident correlated"
                    );
                    return Ok(record);
                }
                Err(StoreError::VersionConflict { .. }) => {
                    match self.store.get_incident(&before.tenant, &before.id).await? {
                        Some(fresh) => record = fresh,
                        None => return Err(TagError::Contended(format!("incident {}", before.id))),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TagError::Contended(format!("incident {}", record.id)))
    }

    /// Lists the incident on the change, counts it and requires a review:
    /// the change as stored and whether this call listed it, `None` when the
    /// change is gone.
    async fn relate_change(
        &self,
        view: &CatalogView,
        incident: &Incident,
        related: &RelatedChangeRef,
    ) -> Result<Option<(Change, bool)>, TagError> {
        for _ in 0..ATTEMPTS {
            let Some(change) = self.store.get_change(&incident.tenant, &related.change_id).await? else {
                tracing::warn!(change_id = %related.change_id, "a related change is gone");
                return Ok(None);
            };
            if change.related_incidents.iter().any(|r| r.incident_id == incident.id.as_str()) {
                return Ok(Some((change, false)));
            }
            let (next, entry, bumps) = self.listed(view, &change, incident, related);
            let update = ChangeUpdate {
                before: &change,
                change: &next,
                entries: &[entry],
                bumps: &bumps,
                volumes: &[],
                waits: &[],
            };
            match self.store.update_change(update).await {
                Ok(()) => {
                    tracing::info!(change_id = %next.id, incident = %incident.id, counted = !bumps.is_empty(), "incident related to change");
                    return Ok(Some((next, true)));
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TagError::Contended(format!("change {}", related.change_id)))
    }

    /// The change with the incident listed, its audit entry and what it counts.
    fn listed(
        &self,
        view: &CatalogView,
        change: &Change,
        incident: &Incident,
        related: &RelatedChangeRef,
    ) -> (Change, crate::domain::AuditEntry, Vec<Bump>) {
        let already_failed = matches!(change.state, ChangeState::Failed | ChangeState::RolledBack)
            || change.failure_counted_by_incident();
        let counted_at = change.implementation.as_ref().and_then(|i| i.ended_at()).unwrap_or(incident.started_at);
        let counted = (!already_failed).then(|| month_of(counted_at));
        let mut next = change.revised(self.clock.now());
        next.related_incidents.push(RelatedIncident {
            incident_id: incident.id.as_str().to_owned(),
            source: incident.source,
            external_id: incident.external_id.clone(),
            reasons: related.reasons.clone(),
            confidence: related.confidence,
            started_at: incident.started_at,
            counted: counted.clone(),
        });
        if next.review.is_none() {
            let due_at = incident.started_at + view.catalog.emergency.review_within.chrono();
            next.review = Some(PostReview { due_at, done: None });
        }
        // An incident during the bake holds the change's next stage.
        let what = format!("incident {} ({} {})", incident.id, incident.source.as_str(), incident.external_id);
        let suspect = next.mark_suspect(incident.id.as_str(), incident.started_at, format!("{what} on its services"));
        next.refresh_postmortem();
        let bumps = counted.map(|month| failure_bumps(change, &month, 1)).unwrap_or_default();
        let held = if suspect {
            "; it started during the change's bake, so the change is suspect: its next stage waits until a person clears it"
        } else {
            ""
        };
        let reason = format!("{what} is related to the change: {}{held}", related.explanation);
        let (next, entry) = audit::record(Some(change), next, SYSTEM_ACTOR, AuditAction::IncidentRelated, Some(reason));
        (next, entry, bumps)
    }
}

/// Why a change no longer lists an incident the correlation dropped.
const NO_LONGER: &str = "re-correlation no longer relates it (the incident's facts, the change's implementation \
                         or the catalog moved)";

/// The changes `before` related that `after` does not, other than those a
/// cab or admin removed (their removal takes them off the change).
fn dropped(before: &Incident, after: &Incident) -> Vec<ChangeId> {
    let kept = |id: &ChangeId| after.related_changes.iter().any(|r| &r.change_id == id);
    let removed = |id: &ChangeId| after.removed_changes.iter().any(|r| &r.change_id == id);
    before.related_changes.iter().map(|r| r.change_id).filter(|id| !kept(id) && !removed(id)).collect()
}

/// The correlation's finding as the incident record keeps it.
fn reference(r: &crate::domain::correlation::RelatedChange) -> RelatedChangeRef {
    RelatedChangeRef {
        change_id: r.change_id,
        reasons: r.reasons.clone(),
        confidence: r.confidence,
        explanation: r.explanation.clone(),
    }
}

/// One failure added (`delta` 1) or taken back (-1) on each of the change's
/// services' counters of `month`.
pub(crate) fn failure_bumps(change: &Change, month: &str, delta: i64) -> Vec<Bump> {
    counter_keys(change, month).map(|key| Bump::failure(key, delta)).collect()
}

/// The notice people get for `incident` tagged because of `change`; `None`
/// when the record does not relate the change (or names no service).
pub fn notice_of(incident: &Incident, change: &Change) -> Option<TagNotice> {
    let related = incident.related_changes.iter().find(|r| r.change_id == change.id)?;
    let mut notice_change = NoticeChange::of(change);
    notice_change.origin = change.origin.as_ref().map(|o| NoticeOrigin {
        repository: Some(o.repository.clone()),
        pull_request: None,
        deployment_id: Some(o.deployment_id.clone()),
        sha: o.sha.clone(),
        url: o.url.clone(),
        actor: o.actor.clone(),
    });
    Some(TagNotice {
        tenant: incident.tenant.clone(),
        incident: NoticeIncident {
            source: incident.source.as_str().to_owned(),
            external_id: incident.external_id.clone(),
            id: incident.id.as_str().to_owned(),
            title: incident.title.clone(),
            service: incident.service.clone()?,
            severity: incident.severity.clone().or_else(|| incident.priority.clone()),
            major: incident.major,
            started_at: incident.started_at,
            link: incident.links.first().cloned(),
        },
        change: notice_change,
        suspicion: Suspicion {
            reasons: related.reasons.clone(),
            confidence: related.confidence,
            explanation: related.explanation.clone(),
        },
    })
}

/// What problem management learns of a record: `None` without a service.
pub fn seen_of(incident: &Incident) -> Option<IncidentSeen> {
    Some(IncidentSeen {
        tenant: incident.tenant.clone(),
        incident_id: incident.id.as_str().to_owned(),
        service: incident.service.clone()?,
        fingerprint: incident.fingerprint.clone(),
        change_related: incident.change_related,
        related_changes: incident.related_changes.iter().map(|r| r.change_id).collect(),
        started_at: incident.started_at,
    })
}

/// Tells people about each change `incident` is related to (each channel
/// once, whatever the number of deliveries: see [`Teller`]). Every change is
/// tried; the first failure to retry is returned.
pub async fn tell_all<D, C, N, W>(
    teller: &Teller<D, C, N, W>,
    catalog: &crate::domain::catalog::Catalog,
    incident: &Incident,
    related: &[Change],
) -> Result<(), TellError>
where
    D: Dedupe,
    C: Clock,
    N: Notifier,
    W: WriteBack,
{
    let mut first = None;
    for notice in related.iter().filter_map(|c| notice_of(incident, c)) {
        if let Err(e) = teller.tell(catalog, &notice).await {
            tracing::warn!(incident = %incident.id, change_id = %notice.change.id, error = %e, "telling of a tag failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Why one correlate event is to be retried, or rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Tell(#[from] TellError),
    #[error(transparent)]
    Problems(#[from] crate::app::ChangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsumeError {
    /// Whether trying the event again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            ConsumeError::Tag(e) => e.retryable(),
            ConsumeError::Tell(_) => true,
            ConsumeError::Store(e) | ConsumeError::Problems(crate::app::ChangeError::Store(e)) => e.is_retryable(),
            ConsumeError::Problems(_) => false,
        }
    }
}

/// The hub bus rule that feeds the consumer (the correlate function's in
/// `template.yaml`, and `changehub serve`'s local rule): the sources'
/// incident, alert and alarm events ([`incidents::DETAIL_TYPES`]) and the
/// change events that set or move an implementation ([`recheck::DETAIL_TYPES`]).
pub fn rule_pattern() -> Result<crate::domain::EventPattern, crate::domain::event::PatternError> {
    let detail_types: Vec<&str> = incidents::DETAIL_TYPES.iter().chain(&recheck::DETAIL_TYPES).copied().collect();
    crate::domain::EventPattern::parse(serde_json::json!({
        "source": [{"prefix": crate::domain::event::SOURCE_PREFIX}],
        "detail-type": detail_types,
    }))
}

/// What the consumer did with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Consumed {
    /// An incident, alert or alarm event: its record, tagged.
    Incident(Tagged),
    /// A change event that explains no incident, and why.
    Skipped(&'static str),
    /// A change event: each incident the change may explain, tagged again.
    Rechecked { change: ChangeId, incidents: Vec<Tagged> },
}

/// The whole correlate consumer (the Lambda's and `changehub serve`'s): the
/// record and its tags both ways ([`Tagging`]), then telling people of each
/// tag ([`tell_all`], once per channel) and problem management
/// (`record_incident`, once per incident). A change event re-checks the
/// incidents its implementation may explain ([`crate::app::recheck`]), each
/// through the same steps. A retried event redoes only what was not done.
pub struct Consumer<S: crate::app::changes::ChangeStore, C, N, W> {
    pub tagging: Tagging<S, crate::app::catalog::CachedCatalog<S>, C>,
    pub teller: Teller<S, C, N, W>,
    pub changes: std::sync::Arc<crate::app::Changes<S, C>>,
}

impl<S, C, N, W> Consumer<S, C, N, W>
where
    S: crate::app::changes::ChangeStore + crate::ports::ProblemStore + ImplementationReader + Dedupe,
    C: Clock + Clone,
    N: Notifier,
    W: WriteBack,
{
    pub fn new(changes: std::sync::Arc<crate::app::Changes<S, C>>, notifier: N, writeback: W) -> Self {
        let (store, clock) = (changes.store.clone(), changes.clock.clone());
        Self {
            tagging: Tagging::new(store.clone(), changes.catalog.clone(), clock.clone()),
            teller: Teller::new(store, clock, notifier, writeback),
            changes,
        }
    }

    /// Links notifications to the hub's pages under `public_url`.
    pub fn with_public_url(self, public_url: Option<String>) -> Self {
        Self { teller: self.teller.with_public_url(public_url), ..self }
    }

    /// Handles one hub event (its `detail-type` and `detail`).
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Consumed, ConsumeError> {
        if !recheck::DETAIL_TYPES.contains(&detail_type) {
            let tagged = self.tagging.handle(detail_type, detail).await?;
            self.after_tag(&tagged).await?;
            return Ok(Consumed::Incident(tagged));
        }
        let (change, incidents) = match self.tagging.exposed_by(detail_type, detail).await? {
            Exposure::Skipped(why) => return Ok(Consumed::Skipped(why)),
            Exposure::Incidents { change, incidents, .. } => (change, incidents),
        };
        let mut tagged = Vec::with_capacity(incidents.len());
        for incident in incidents {
            let one = self.tagging.tag(incident).await?;
            self.after_tag(&one).await?;
            tagged.push(one);
        }
        Ok(Consumed::Rechecked { change, incidents: tagged })
    }

    /// What follows a tag: telling people of each related change, and
    /// recording the incident for problem management.
    async fn after_tag(&self, tagged: &Tagged) -> Result<(), ConsumeError> {
        let Tagged::Recorded { incident, related, .. } = tagged else { return Ok(()) };
        if !related.is_empty() {
            let view = self.changes.catalog.catalog(&incident.tenant).await?;
            tell_all(&self.teller, &view.catalog, incident, related).await?;
        }
        if let Some(seen) = seen_of(incident) {
            self.changes.record_incident(&seen).await?;
        }
        Ok(())
    }
}
