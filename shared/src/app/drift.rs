//! The drift consumer's use case (the `drift` Lambda's and `changehub
//! serve`'s): configuration-change evidence becomes an observation, the
//! observation is judged against the changes of its service, and one that
//! no change authorizes is recorded as an unauthorized-change finding and
//! told to people.
//!
//! - **Once per event.** Each event is claimed (`drift:{tenant}:{event_id}`,
//!   [`once`]): a duplicate does nothing, a concurrent copy is retried.
//!   A finding also lists the evidence it counted, so a redelivery after a
//!   lost claim counts nothing twice.
//! - **Storm control.** One actor's session on one service within the
//!   tenant's storm window is one finding (its id is derived from the group
//!   and the window), counted; concurrent copies of a burst write one record
//!   (conditional on the version, retried on conflict).
//! - **Config ↔ CloudTrail, in either order.** A Config item (no actor) that
//!   arrives after the API call on its resource joins that call's finding;
//!   an API call that arrives after joins the Config item's finding and
//!   names its actor. The finding is read back by time from the tenant's
//!   findings (one bounded query), while the consumer holds the resources
//!   ([`resource_keys`]), so two pieces of one change judged at the same
//!   instant by two consumers still make one finding.
//! - **Evidence on the change.** An observation a change authorizes is
//!   recorded on that change (once per event, bounded per change): what
//!   actually changed during it.
//! - **Suppression.** An unauthorized observation inside a bulk-change
//!   suppression window (`/suppressions`, by its own time) opens a
//!   `suppressed` finding: recorded and counted, nobody told.
//! - **Telling.** The finding is routed as `unauthorized_change` (by
//!   default to its service's owners and the CAB, and the feed; the
//!   catalog's `routing:` rules, templates and time zones apply) when it is
//!   opened, and again when a later piece names its actor: each recipient
//!   once per telling ([`send_each`]), so retries and storms never repeat one.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use super::routed::{self, Routed, RoutedError, send_each};
use super::suppressions;
use crate::domain::catalog::{Catalog, CatalogView, MappingKind};
use crate::domain::finding::authorize::{self, AuthorizedBy, Verdict};
use crate::domain::finding::change_evidence::{ChangeEvidence, Recorded};
use crate::domain::finding::observation::{DETAIL_TYPES, Evidence, NotObserved, Observation};
use crate::domain::finding::settings::JOIN_WINDOW;
use crate::domain::finding::suppression::Suppression;
use crate::domain::finding::{Finding, FindingId, FindingStatus, Severity, group_of, window_start};
use crate::domain::{Change, ChangeId, ServiceName, TenantId};
use crate::ports::{
    CatalogReader, ChangeReader, Claim, Clock, Dedupe, Fact, FindingQuery, FindingStore, ImplementationQuery,
    ImplementationReader, MAX_PAGE, Notifier, ServiceWindowQuery, StoreError, TenantDocs,
};

/// Reads and writes of one finding before giving up to concurrent writers (and being retried).
const ATTEMPTS: usize = 8;
/// How long a consumer may hold the resources it records a finding on
/// (a few store calls; a consumer that dies frees them when it runs out).
const RESOURCE_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
/// Tries to take those resources while another consumer holds them, before
/// giving up (and being retried): waits of 10, 20, 40… 200 ms, about 2 s in all.
const RESOURCE_ATTEMPTS: u32 = 14;

/// The notification's `type` attribute.
pub const TYPE: &str = "unauthorized_change";
/// The notification's `kind` attribute, and the bus detail-type of the event.
pub const KIND: &str = "Unauthorized Change";

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Unreadable(#[from] NotObserved),
    #[error("detail of a {detail_type:?} event: tenant {tenant:?} is not a tenant id")]
    Tenant { detail_type: String, tenant: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the notifications of a finding")]
    Notify(#[from] RoutedError),
    /// Another consumer holds the event, or other writers kept moving the finding.
    #[error("{0}; retry")]
    Busy(String),
}

impl DriftError {
    /// Whether trying the event again may succeed (a bad event never does).
    pub fn retryable(&self) -> bool {
        match self {
            DriftError::Unreadable(_) | DriftError::Tenant { .. } => false,
            DriftError::Store(e) => e.is_retryable(),
            DriftError::Notify(_) | DriftError::Busy(_) => true,
        }
    }
}

impl From<OnceError<DriftError>> for DriftError {
    fn from(e: OnceError<DriftError>) -> Self {
        match e {
            OnceError::Store(e) => DriftError::Store(e),
            OnceError::Work(e) => e,
        }
    }
}

/// What one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// Not evidence the consumer judges, and why.
    Ignored(String),
    /// The event was judged before.
    Duplicate,
    /// A change authorizes it.
    Authorized { change_id: ChangeId, by: AuthorizedBy, changes_read: usize },
    /// No change does: the finding as stored (`opened` when this event opened it).
    Unauthorized { finding: Box<Finding>, opened: bool, changes_read: usize },
}

/// What the consumer reads and writes (the tenant documents: its suppression windows).
pub trait DriftStore: FindingStore + ChangeReader + ImplementationReader + Dedupe + TenantDocs {}
impl<T: FindingStore + ChangeReader + ImplementationReader + Dedupe + TenantDocs> DriftStore for T {}

/// The use case.
pub struct Drift<S, K, C, N> {
    pub store: S,
    pub catalog: K,
    pub clock: C,
    pub notifier: N,
    pub claims: ClaimTimes,
    /// The hub's public address, for the finding's link (`CHANGEHUB_PUBLIC_URL`).
    pub public_url: Option<String>,
}

/// The hub bus rule that feeds the consumer: the canonical
/// configuration-change evidence of every source.
pub fn rule_pattern() -> Result<crate::domain::EventPattern, crate::domain::event::PatternError> {
    crate::domain::EventPattern::parse(serde_json::json!({
        "source": [{"prefix": crate::domain::event::SOURCE_PREFIX}],
        "detail-type": DETAIL_TYPES,
    }))
}

impl<S: DriftStore, K: CatalogReader, C: Clock, N: Notifier> Drift<S, K, C, N> {
    pub fn new(store: S, catalog: K, clock: C, notifier: N) -> Self {
        Self { store, catalog, clock, notifier, claims: ClaimTimes::default(), public_url: None }
    }

    /// Links notifications to the finding under `public_url`.
    pub fn with_public_url(self, public_url: Option<String>) -> Self {
        Self { public_url, ..self }
    }

    /// Judges one hub event (its `detail-type` and `detail`).
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Judged, DriftError> {
        if !DETAIL_TYPES.contains(&detail_type) {
            return Ok(Judged::Ignored(format!("{detail_type} is not configuration-change evidence")));
        }
        let tenant_text = detail.get("tenant").and_then(|t| t.as_str()).unwrap_or_default();
        let tenant = TenantId::parse(tenant_text)
            .map_err(|_| DriftError::Tenant { detail_type: detail_type.to_owned(), tenant: tenant_text.to_owned() })?;
        let view = self.catalog.catalog(&tenant).await?;
        let policy = &view.catalog.drift;
        let mut observation = match Observation::of(detail_type, detail, policy) {
            Ok(o) => o,
            Err(NotObserved::Skipped(why)) => return Ok(Judged::Ignored(why.to_owned())),
            Err(e) => return Err(e.into()),
        };
        if !policy.watches(&observation.account) {
            return Ok(Judged::Ignored(format!("account {} is not watched", observation.account)));
        }
        if observation.service.is_none() {
            observation.service = service_of(&view, &observation);
        }
        let keys = [format!("drift:{tenant}:{}", observation.event_id)];
        match once(&self.store, &self.clock, self.claims, &keys, self.judge(&view, &observation)).await? {
            Once::Done(judged) => Ok(judged),
            Once::Duplicate => Ok(Judged::Duplicate),
            Once::InProgress => Err(DriftError::Busy(format!("event {} is being judged", observation.event_id))),
        }
    }

    /// The decision, then the finding and its notification when unauthorized.
    pub async fn judge(&self, view: &CatalogView, o: &Observation) -> Result<Judged, DriftError> {
        let grace = view.catalog.drift.grace.chrono();
        let changes = self.candidates(o, grace).await?;
        let changes_read = changes.len();
        match authorize::decide(o, &changes, grace) {
            Verdict::Authorized { change_id, by } => {
                let evidence = ChangeEvidence::of(o, change_id, by, self.clock.now());
                let recorded = self.store.record_evidence(&evidence).await?;
                if recorded == Recorded::Full {
                    tracing::warn!(tenant = %o.tenant, %change_id, "the change holds all the evidence it keeps");
                }
                tracing::info!(
                    tenant = %o.tenant, event_id = %o.event_id, %change_id, ?by, ?recorded, "observation authorized"
                );
                Ok(Judged::Authorized { change_id, by, changes_read })
            }
            Verdict::Unauthorized { reason } => {
                let tier = o.service.as_ref().and_then(|s| view.catalog.service(s)).map(|s| s.tier);
                let severity = Severity::of(tier, o.security_relevant());
                let suppression = suppressions::covering(&self.store, &o.tenant, o).await?;
                let (finding, opened) = self.record(view, o, severity, reason, suppression.as_ref()).await?;
                // Inside a bulk-change window: recorded and counted, nobody paged.
                if finding.status != FindingStatus::Suppressed {
                    self.tell(view, &finding).await?;
                }
                Ok(Judged::Unauthorized { finding: Box::new(finding), opened, changes_read })
            }
        }
    }

    /// The changes that may authorize `o`: those implemented near its time
    /// and those still to start planned around it, on its service and among
    /// the changes that name resources (`ServiceName::named_resources`);
    /// neither read grows with the history.
    async fn candidates(&self, o: &Observation, grace: Duration) -> Result<Vec<Change>, StoreError> {
        let services: Vec<ServiceName> =
            o.service.iter().cloned().chain(std::iter::once(ServiceName::named_resources())).collect();
        let query = ImplementationQuery {
            tenant: o.tenant.clone(),
            services: services.clone(),
            since: o.at - grace,
            at: o.at + grace,
        };
        let mut found: BTreeMap<ChangeId, Change> =
            self.store.implemented(&query).await?.changes.into_iter().map(|c| (c.id, c)).collect();
        for service in services {
            let mut window = ServiceWindowQuery {
                tenant: o.tenant.clone(),
                service,
                from: o.at - grace,
                to: o.at + grace,
                limit: MAX_PAGE,
                after: None,
            };
            loop {
                let page = self.store.plannable(&window).await?;
                found.extend(page.items.into_iter().map(|c| (c.id, c)));
                match page.next {
                    Some(next) => window.after = Some(next),
                    None => break,
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Adds `o` to the finding it joins or belongs to, or opens one, holding
    /// its resources against other consumers (see [`resource_keys`]): the
    /// finding as stored, and whether `o` opened it.
    async fn record(
        &self,
        view: &CatalogView,
        o: &Observation,
        severity: Severity,
        reason: String,
        suppression: Option<&Suppression>,
    ) -> Result<(Finding, bool), DriftError> {
        let keys = resource_keys(o);
        if keys.is_empty() {
            return self.record_held(view, o, severity, reason, suppression).await;
        }
        // This attempt's hold: only it may give the resources back.
        let owner = uuid::Uuid::now_v7().to_string();
        let mut wait = std::time::Duration::from_millis(10);
        for _ in 0..RESOURCE_ATTEMPTS {
            match self.store.claim(&keys, &owner, self.clock.now(), RESOURCE_LEASE).await? {
                Claim::New => {
                    let recorded = self.record_held(view, o, severity, reason, suppression).await;
                    if let Err(e) = self.store.release(&keys, &owner).await {
                        tracing::warn!(?keys, error = %e, "could not give resources back; they are free when the hold runs out");
                    }
                    return recorded;
                }
                Claim::InProgress | Claim::Duplicate => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_millis(200));
                }
            }
        }
        Err(DriftError::Busy(format!("another consumer kept recording a finding on the resources of {}", o.event_id)))
    }

    /// [`Self::record`], its resources held.
    async fn record_held(
        &self,
        view: &CatalogView,
        o: &Observation,
        severity: Severity,
        reason: String,
        suppression: Option<&Suppression>,
    ) -> Result<(Finding, bool), DriftError> {
        let storm = view.catalog.drift.storm_window.chrono();
        let id = FindingId::of(&o.tenant, &group_of(o), window_start(o.at, storm));
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let held = match self.joinable(o, storm).await? {
                Some(joined) => Some(joined),
                None => self.store.get_finding(&o.tenant, &id).await?,
            };
            let written = match held {
                Some(f) if f.holds(&o.event_id) => return Ok((f, false)),
                Some(mut f) => {
                    f.absorb(o, severity, now);
                    f.version += 1;
                    (f, false)
                }
                None => {
                    let mut f = Finding::open(id.clone(), o, severity, reason.clone(), now);
                    if let Some(window) = suppression {
                        f.suppress(&window.id);
                    }
                    (f, true)
                }
            };
            match self.store.put_finding(&written.0).await {
                Ok(()) => {
                    let f = &written.0;
                    tracing::info!(
                        tenant = %f.tenant, finding = %f.id, opened = written.1, count = f.count,
                        severity = f.severity.as_str(), service = ?f.service, "unauthorized change recorded"
                    );
                    if written.1 {
                        metric(f);
                    }
                    return Ok(written);
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DriftError::Busy(format!("finding {id} kept moving under concurrent writers")))
    }

    /// The finding a Config item or an API call completes (see
    /// [`Finding::joins`]): one query of the tenant's findings whose window
    /// starts within the join and storm windows around `o`.
    async fn joinable(&self, o: &Observation, storm: Duration) -> Result<Option<Finding>, StoreError> {
        if !joins_by_resource(o) {
            return Ok(None);
        }
        let join = Duration::from_std(JOIN_WINDOW).unwrap_or(Duration::MAX);
        let mut q = FindingQuery::new(o.tenant.clone(), MAX_PAGE);
        q.from = Some(o.at - join - storm);
        q.to = Some(o.at + join);
        let page = self.store.list_findings(&q).await?;
        let distance = |f: &Finding| (f.first_seen - o.at).abs().min((f.last_seen - o.at).abs());
        Ok(page.items.into_iter().filter(|f| f.holds(&o.event_id) || f.joins(o, join)).min_by_key(distance))
    }

    /// Tells people of the finding: once when opened, once more when its actor becomes known.
    async fn tell(&self, view: &CatalogView, f: &Finding) -> Result<(), DriftError> {
        let named = if f.actor.is_some() { "named" } else { "unnamed" };
        let base = format!("drift-tell:{}:{}:{named}", f.tenant, f.id);
        let routed = notifications_for(&view.catalog, f, self.public_url.as_deref());
        send_each(&self.store, &self.clock, self.claims, &self.notifier, &base, &routed).await?;
        Ok(())
    }
}

/// Whether `o` is evidence that joins another's finding on its resource.
fn joins_by_resource(o: &Observation) -> bool {
    matches!(o.evidence, Evidence::ConfigurationItem | Evidence::ApiCall | Evidence::ComplianceChange)
}

/// What a consumer holds while it records a finding of `o`, so that two
/// pieces of one change judged at once (a Config item and its API call,
/// which group differently) find each other rather than open two findings:
/// for each resource (by its ARN's last part, else its id, what a Config
/// item and a call both name) the join window of `o`'s time and the next
/// one, `drift-hold:{tenant}:{account}:{resource}:{window}`. Two
/// observations of one resource at most a join window apart share one key.
/// None for evidence that joins nothing.
pub fn resource_keys(o: &Observation) -> Vec<String> {
    if !joins_by_resource(o) {
        return Vec::new();
    }
    let join = i64::try_from(JOIN_WINDOW.as_secs()).unwrap_or(i64::MAX).max(1);
    let window = o.at.timestamp().div_euclid(join);
    let names: std::collections::BTreeSet<&str> = o.resources.iter().map(|r| r.key()).collect();
    names
        .into_iter()
        .flat_map(|name| [window, window + 1].map(|w| format!("drift-hold:{}:{}:{name}:{w}", o.tenant, o.account)))
        .collect()
}

/// The service of an observation ingest could not resolve: each resource's
/// ARN, then its id, through the catalog's mappings (as ingest resolves them).
pub fn service_of(view: &CatalogView, o: &Observation) -> Option<crate::domain::ServiceName> {
    o.mapping_keys().into_iter().find_map(|k| view.resolve(MappingKind::AwsResource, k).cloned())
}

/// The notifications of a finding, routed by `catalog` as
/// `unauthorized_change` (by default to its service's owners and the CAB,
/// and the feed): attributes `kind`, `tenant`, `service` (`unknown` for an
/// unmapped resource), `vendor` when a vendor's principal made it, and
/// routing's `type`, `audience`, `notify` and `severity` (the finding's).
/// Every text names who changed which resource, and links the finding
/// under `hub`, the hub's public address, when known.
pub fn notifications_for(catalog: &Catalog, f: &Finding, hub: Option<&str>) -> Vec<Routed> {
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_owned(), KIND.to_owned());
    attributes.insert("tenant".to_owned(), f.tenant.to_string());
    attributes.insert("service".to_owned(), f.service.as_ref().map_or("unknown", |s| s.as_str()).to_owned());
    if f.actor.as_ref().is_some_and(|a| a.vendor) {
        attributes.insert("vendor".to_owned(), "true".to_owned());
    }
    let body = serde_json::json!({"event": KIND, "summary": f.summary(), "finding": f});
    let services: Vec<_> = f.service.iter().cloned().collect();
    routed::for_services(catalog, &occurrence_of(f, hub), services, &attributes, f.severity.as_str(), &body)
}

/// What people read of a finding: who changed which resource, where and
/// when, and the finding's address in the hub when `hub` is known.
fn occurrence_of(f: &Finding, hub: Option<&str>) -> crate::domain::routing::render::Occurrence {
    let service = f.service.as_ref().map_or("unknown", |s| s.as_str());
    let who = f.actor.as_ref().map_or("an unknown actor", |a| a.name.as_str());
    let resource = f.resources.first().map_or("a resource", |r| r.id.as_str());
    let fact = |name: &str, value: String| Fact { name: name.to_owned(), value };
    let mut facts = vec![
        fact("Severity", f.severity.as_str().to_owned()),
        fact("Account", format!("{} {}", f.account, f.region)),
        fact("When", f.first_seen.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
    ];
    if let Some(actor) = &f.actor {
        facts.insert(0, fact("Actor", actor.chain()));
    }
    let lines = f.changes.iter().map(|c| format!("{}: {}", at_text(c.at), c.what));
    crate::domain::routing::render::Occurrence {
        event: TYPE.to_owned(),
        headline: format!("[{KIND}] {who} changed {resource} on {service} ({})", f.severity.as_str()),
        reference: f.id.to_string(),
        title: format!("A change to {resource} by {who}"),
        services: f.service.iter().cloned().collect(),
        at: f.first_seen,
        window: None,
        facts,
        details: std::iter::once(f.summary()).chain(lines).collect(),
        impact: Some(format!("{who} changed {resource} without an approved change; the owners are looking into it.")),
        links: hub.map(|h| finding_link(h, &f.id)).into_iter().collect(),
        commands: vec![],
    }
}

/// The finding's address under the hub's public address `hub`.
pub fn finding_link(hub: &str, id: &FindingId) -> crate::ports::Link {
    crate::ports::Link { label: "Finding".to_owned(), url: format!("{}/findings/{id}", hub.trim_end_matches('/')) }
}

fn at_text(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// An Embedded Metric Format line: one unauthorized change on a service,
/// for the per-service monthly count (`SuppressedChanges` for one inside a
/// bulk-change suppression window).
fn metric(f: &Finding) {
    let name = if f.status == FindingStatus::Suppressed { "SuppressedChanges" } else { "UnauthorizedChanges" };
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": f.first_seen.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "changehub",
                "Dimensions": [["tenant", "service"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "tenant": f.tenant.to_string(),
        "service": f.service.as_ref().map_or("unknown", |s| s.as_str()),
    });
    line[name] = serde_json::json!(1);
    tracing::info!(target: "metrics", emf = %line, "unauthorized change counted");
}
