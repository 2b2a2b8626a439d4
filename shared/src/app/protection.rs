//! GitHub deployment protection rules answered by the hub, without polling
//! ([`crate::domain::gate::protection`] says what is kept and why).
//!
//! - `Deployment Gate Requested` (ingest's `deployment_protection_rule`):
//!   the deployment gate decides ([`Changes::gate`], the same checks and
//!   activity record as `POST /gates/deployments`: approval, window,
//!   freezes, open major incidents, checklist, bake; a non-production
//!   environment is approved and recorded). Settled: GitHub is called back
//!   at once. Pending: the request is kept, on its change's waiting set and
//!   in the due index, and GitHub gets a status report saying what it waits for.
//! - A change event that may turn the gate ([`merge::TURNING_EVENTS`] and
//!   [`ALSO_TURNING`]): the requests waiting on the change (one read) are
//!   decided again.
//! - `Deployment Gate Due` (the escalation tick's [`ProtectionTicker`], from
//!   the due index): a kept request whose recheck time or time-out came is
//!   decided again; an answer GitHub did not take is sent again, until
//!   GitHub's limit, then alarmed to the CAB.
//!
//! Idempotent: a request is keyed by its hub event's id, and every move is a
//! write conditional on its version, made before GitHub is called: of two
//! copies of an event, one answers, the other does nothing.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::changes::{ChangeError, ChangeStore, Changes};
use crate::domain::access::Caller;
use crate::domain::catalog::Role;
use crate::domain::gate::merge;
use crate::domain::gate::protection::{
    self, CallbackAnswer, CallbackState, DELIVERY_LEASE, Listing, Next, ProtectionRequest, ProtectionStatus,
    ProtectionWaits,
};
use crate::domain::gate::{GateCode, GateRequest};
use crate::domain::{ChangeId, HubEvent, ServiceName, TenantId};
use crate::ingest::Origin;
use crate::ingest::canonical::{DeploymentGate, Detail};
use crate::ports::{
    ActivityLog, BusError, CallbackPost, CatalogReader, Clock, DUE_SHARDS, EventBus, MAX_PAGE, Message, Notification,
    Notifier, NotifyError, ProtectionCallbacks, ProtectionStore, StoreError,
};

/// The canonical event GitHub's request becomes.
pub const GATE_REQUESTED: &str = "Deployment Gate Requested";
/// The event the escalation tick puts for a kept request whose time came.
pub const GATE_DUE: &str = "Deployment Gate Due";
/// The due event's source.
pub const DUE_SOURCE: &str = "changehub.gate";
/// The alarm's notification `kind` (and `type`, as routing names events).
pub const ALARM_KIND: &str = "Deployment Gate Alarm";
pub const ALARM_TYPE: &str = "deployment_gate_alarm";
/// Who the gate's decisions are recorded as asked by.
pub const ASKED_BY: &str = "github:deployment_protection_rule";
/// Times a write of a waiting set is tried against concurrent writers.
const WAITS_ATTEMPTS: u32 = 3;
/// Change events that may turn a deployment gate besides those that turn a
/// merge gate ([`merge::TURNING_EVENTS`]): a checklist item done, a suspect
/// change cleared, a change rescheduled into now.
pub const ALSO_TURNING: [&str; 3] = ["Checklist Item Done", "Change Suspect Cleared", "Change Rescheduled"];

/// Whether a change event may turn a kept request's answer.
pub fn turns_gate(detail_type: &str) -> bool {
    merge::turns_status(detail_type) || ALSO_TURNING.contains(&detail_type)
}

/// The bus rule's pattern: requests, due requests, and the change events that may turn a gate.
pub fn rule_pattern() -> Result<crate::domain::EventPattern, crate::domain::event::PatternError> {
    let detail_types: Vec<&str> =
        [GATE_REQUESTED, GATE_DUE].into_iter().chain(merge::TURNING_EVENTS).chain(ALSO_TURNING).collect();
    crate::domain::EventPattern::parse(serde_json::json!({ "detail-type": detail_types }))
}

/// The protection rule on its ports: the deployment gate (and through it the
/// store and clock), GitHub's callback, and the CAB's notifications.
pub struct Protection<S, C, F, N> {
    pub changes: Arc<Changes<S, C>>,
    pub callbacks: F,
    pub notifier: N,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// GitHub took the answer.
    Answered(CallbackState),
    /// Kept, waiting on the change, handed back at `until` at the latest.
    Waiting { change: ChangeId, until: chrono::DateTime<chrono::Utc> },
    /// GitHub did not take the answer: sent again from the due index.
    Retrying { attempts: u32, next_at: chrono::DateTime<chrono::Utc> },
    /// GitHub did not take the answer before its limit, or refused it: alarmed.
    Undelivered,
    /// Each request waiting on a change, and what it did.
    Each(Vec<(String, Applied)>),
    /// Nothing to do, and why.
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error("the {detail_type} event cannot be read")]
    Unreadable {
        detail_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the {detail_type} event names no valid tenant")]
    Tenant { detail_type: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alarming the CAB")]
    Notify(#[from] NotifyError),
}

impl ProtectionError {
    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        match self {
            ProtectionError::Unreadable { .. } | ProtectionError::Tenant { .. } => false,
            ProtectionError::Store(e) => e.is_retryable(),
            ProtectionError::Notify(_) => true,
        }
    }
}

/// The part of a change event read here.
#[derive(Deserialize)]
struct ChangeEvent {
    tenant: String,
    change_id: ChangeId,
}

/// A `Deployment Gate Due` event's detail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct DueDetail {
    pub event_id: String,
    pub tenant: String,
    pub request_id: String,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

impl<S, C, F, N> Protection<S, C, F, N>
where
    S: ChangeStore + ActivityLog + ProtectionStore,
    C: Clock,
    F: ProtectionCallbacks,
    N: Notifier,
{
    fn store(&self) -> &S {
        &self.changes.store
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.changes.clock.now()
    }

    /// Handles one hub event (its `detail-type` and `detail`).
    #[tracing::instrument(skip(self, detail), fields(event_id = ?detail.get("event_id")))]
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Applied, ProtectionError> {
        let unreadable = |source| ProtectionError::Unreadable { detail_type: detail_type.to_owned(), source };
        let tenant_of = |tenant: &str| {
            TenantId::parse(tenant).map_err(|_| ProtectionError::Tenant { detail_type: detail_type.to_owned() })
        };
        if detail_type == GATE_REQUESTED {
            let detail = Detail::<DeploymentGate>::deserialize(detail).map_err(unreadable)?;
            let tenant = tenant_of(&detail.tenant)?;
            self.requested(tenant, detail).await
        } else if detail_type == GATE_DUE {
            let due = DueDetail::deserialize(detail).map_err(unreadable)?;
            self.due(&tenant_of(&due.tenant)?, &due.request_id).await
        } else if turns_gate(detail_type) {
            let event = ChangeEvent::deserialize(detail).map_err(unreadable)?;
            self.change_decided(&tenant_of(&event.tenant)?, event.change_id).await
        } else {
            Ok(Applied::Skipped(format!("{detail_type} does not concern a deployment protection rule")))
        }
    }

    async fn requested(&self, tenant: TenantId, d: Detail<DeploymentGate>) -> Result<Applied, ProtectionError> {
        if d.origin != Origin::Github {
            return Ok(Applied::Skipped(format!("a protection rule request from {}", d.origin.as_str())));
        }
        if self.store().get_protection(&tenant, &d.event_id).await?.is_some() {
            return Ok(Applied::Skipped(format!("request {} was taken already", d.event_id)));
        }
        let gate = d.data;
        let request = ProtectionRequest {
            tenant,
            id: d.event_id,
            repository: gate.repository,
            installation: gate.installation,
            environment: gate.environment,
            service: d.service.as_deref().and_then(|s| ServiceName::parse(s).ok()),
            git_ref: gate.git_ref,
            sha: gate.sha,
            change_ids: gate.change_ids.iter().filter_map(|id| ChangeId::parse(id).ok()).collect(),
            callback_url: gate.callback_url,
            requested_at: d.occurred_at,
            // Not stored yet: its first write is version 1.
            version: 0,
            status: ProtectionStatus::Waiting { change: None, code: GateCode::NoChange, reason: String::new() },
            due_at: None,
        };
        let next = self.decide(&request).await?;
        self.settle(&request, next, false).await
    }

    /// Decides `request` again now: the gate's answer, or a wait.
    async fn decide(&self, request: &ProtectionRequest) -> Result<Next, ProtectionError> {
        let now = self.now();
        let reject = |code: &str, text: String| {
            Next::Answer(CallbackAnswer {
                state: CallbackState::Rejected,
                comment: protection::comment(text),
                code: code.to_owned(),
                decided_at: now,
            })
        };
        let Some(service) = &request.service else {
            return Ok(reject(
                "unknown_service",
                format!(
                    "changehub rejected: repository {} is no catalog service's; add it to a service's repositories in the catalog",
                    request.repository
                ),
            ));
        };
        let ask = GateRequest {
            service: service.to_string(),
            environment: request.environment.clone(),
            version: match request.sha {
                Some(_) => None,
                None => Some(request.git_ref.clone().unwrap_or_else(|| "an unnamed version".into())),
            },
            sha: request.sha.clone(),
            change: request.change_ids.first().map(ChangeId::to_string),
        };
        let caller = Caller {
            tenant: request.tenant.clone(),
            user: ASKED_BY.to_owned(),
            groups: Vec::new(),
            granted: [Role::Ingest].into(),
        };
        match self.changes.gate(&caller, ask, std::time::Duration::ZERO, None).await {
            Ok(decision) => Ok(protection::next(request, &decision, now)),
            Err(ChangeError::Store(e)) => Err(e.into()),
            Err(e) => Ok(reject("invalid", format!("changehub rejected: {e}"))),
        }
    }

    /// Moves `current` on as `next` says: kept (and told GitHub why, the
    /// first time), or answered. `listed`: read from its change's waiting
    /// list, so it need not be looked for there.
    async fn settle(&self, current: &ProtectionRequest, next: Next, listed: bool) -> Result<Applied, ProtectionError> {
        match next {
            Next::Wait { change, code, reason, until } => {
                let before = current.waiting_on();
                let kept = current.next(
                    ProtectionStatus::Waiting { change: Some(change), code, reason: reason.clone() },
                    Some(until),
                );
                if !self.write(&kept).await? {
                    return Ok(Applied::Skipped(format!("request {} was taken by another copy", kept.id)));
                }
                let listing = if listed && before == Some(change) {
                    Listing::Listed
                } else {
                    self.update_waits(&kept.tenant, change, |w| {
                        let listing = w.add(&kept.id, kept.requested_at);
                        (listing == Listing::Added, listing)
                    })
                    .await?
                };
                if let Some(old) = before.filter(|old| *old != change) {
                    self.update_waits(&kept.tenant, old, |w| (w.remove(&kept.id), ())).await?;
                }
                // Off the full list, no change event reaches it: decided again soon instead.
                let until = match listing {
                    Listing::Full => until.min(self.now() + protection::UNLISTED_RECHECK),
                    Listing::Added | Listing::Listed => until,
                };
                if Some(until) != kept.due_at && !self.write(&kept.next(kept.status.clone(), Some(until))).await? {
                    return Ok(Applied::Skipped(format!("request {} was taken by another copy", kept.id)));
                }
                if current.version == 0 {
                    self.report(&kept, &reason).await;
                }
                tracing::info!(request = %kept.id, change = %change, code = code.as_str(), until = %until, listed = listing != Listing::Full, "protection rule request kept");
                Ok(Applied::Waiting { change, until })
            }
            Next::Answer(answer) => {
                if answer.code == "timed_out" {
                    self.alarm(
                        current,
                        &answer,
                        "timed out: GitHub's limit is near and the change still may not implement",
                    )
                    .await?;
                }
                self.deliver(current, answer, 0, None).await
            }
        }
    }

    /// Claims `current` for `answer` (a conditional write), posts it, and
    /// records what GitHub said: answered, to be sent again, or undelivered.
    async fn deliver(
        &self,
        current: &ProtectionRequest,
        answer: CallbackAnswer,
        attempts: u32,
        last_error: Option<String>,
    ) -> Result<Applied, ProtectionError> {
        let now = self.now();
        let delivering = ProtectionStatus::Delivering { answer: answer.clone(), attempts, last_error };
        let claimed = current.next(delivering, Some(now + DELIVERY_LEASE));
        if !self.write(&claimed).await? {
            return Ok(Applied::Skipped(format!("request {} was taken by another copy", claimed.id)));
        }
        let post =
            CallbackPost { environment: &claimed.environment, state: Some(answer.state), comment: &answer.comment };
        let sent = self.callbacks.post_callback(&claimed, &post).await;
        let attempts = attempts + 1;
        let applied = match sent {
            Ok(()) => {
                let done = claimed.next(ProtectionStatus::Answered { answer: answer.clone(), answered_at: now }, None);
                self.write(&done).await?;
                tracing::info!(request = %claimed.id, state = answer.state.as_str(), code = %answer.code, attempts, "protection rule answered");
                Applied::Answered(answer.state)
            }
            Err(e) => {
                let error = crate::error_chain(&e);
                let next_at = now + protection::retry_wait(attempts - 1);
                if e.is_retryable() && next_at < claimed.deadline() {
                    tracing::warn!(request = %claimed.id, attempts, error = %error, next_at = %next_at, "protection rule answer not delivered; kept to send again");
                    let status = ProtectionStatus::Delivering { answer, attempts, last_error: Some(error) };
                    self.write(&claimed.next(status, Some(next_at))).await?;
                    Applied::Retrying { attempts, next_at }
                } else {
                    self.undelivered(&claimed, answer, attempts, error).await?;
                    Applied::Undelivered
                }
            }
        };
        if let Some(change) = current.waiting_on()
            && let Err(e) = self.update_waits(&claimed.tenant, change, |w| (w.remove(&claimed.id), ())).await
        {
            // Harmless: the next read of the set drops a request that no longer waits.
            tracing::warn!(request = %claimed.id, error = %e, "answered request left in its change's waiting set");
        }
        Ok(applied)
    }

    /// Alarms the CAB, then records `claimed` as undelivered.
    async fn undelivered(
        &self,
        claimed: &ProtectionRequest,
        answer: CallbackAnswer,
        attempts: u32,
        error: String,
    ) -> Result<(), ProtectionError> {
        let why = format!("GitHub did not take the answer ({attempts} attempts): {error}");
        self.alarm(claimed, &answer, &why).await?;
        let status = ProtectionStatus::Undelivered { answer, attempts, last_error: error };
        self.write(&claimed.next(status, None)).await?;
        Ok(())
    }

    /// A kept request whose time came: decided again, or its answer sent again.
    async fn due(&self, tenant: &TenantId, id: &str) -> Result<Applied, ProtectionError> {
        let Some(current) = self.store().get_protection(tenant, id).await? else {
            return Ok(Applied::Skipped(format!("no request {id}")));
        };
        let now = self.now();
        if current.due_at.is_none_or(|at| at > now) {
            return Ok(Applied::Skipped(format!("request {id} is not due")));
        }
        match &current.status {
            ProtectionStatus::Waiting { .. } => {
                let next = self.decide(&current).await?;
                self.settle(&current, next, false).await
            }
            ProtectionStatus::Delivering { answer, attempts, last_error } if now >= current.deadline() => {
                let error = last_error.clone().unwrap_or_else(|| "no answer was sent".into());
                let claimed = current.next(current.status.clone(), None);
                if !self.write(&claimed).await? {
                    return Ok(Applied::Skipped(format!("request {id} was taken by another copy")));
                }
                self.undelivered(&claimed, answer.clone(), *attempts, error).await?;
                Ok(Applied::Undelivered)
            }
            ProtectionStatus::Delivering { answer, attempts, last_error } => {
                self.deliver(&current, answer.clone(), *attempts, last_error.clone()).await
            }
            ProtectionStatus::Answered { .. } | ProtectionStatus::Undelivered { .. } => {
                Ok(Applied::Skipped(format!("request {id} is settled")))
            }
        }
    }

    /// Decides again every request waiting on `change`. Every request is
    /// tried; the first failure is returned after.
    async fn change_decided(&self, tenant: &TenantId, change: ChangeId) -> Result<Applied, ProtectionError> {
        let Some(waits) = self.store().get_protection_waits(tenant, &change).await? else {
            return Ok(Applied::Skipped(format!("no request waits on change {change}")));
        };
        let (mut done, mut stale, mut failed) = (Vec::new(), Vec::new(), None);
        for waiting in waits.requests {
            let current = self.store().get_protection(tenant, &waiting.id).await?;
            let Some(current) = current.filter(|r| r.waiting_on() == Some(change)) else {
                stale.push(waiting.id);
                continue;
            };
            let applied = match self.decide(&current).await {
                Ok(next) => self.settle(&current, next, true).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(applied) => done.push((waiting.id, applied)),
                Err(e) => {
                    tracing::error!(request = %waiting.id, error = %crate::error_chain(&e), "protection rule request not decided again");
                    failed.get_or_insert(e);
                }
            }
        }
        if !stale.is_empty() {
            self.update_waits(tenant, change, |w| {
                let before = w.requests.len();
                w.requests.retain(|r| !stale.contains(&r.id));
                (w.requests.len() != before, ())
            })
            .await?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Applied::Each(done)),
        }
    }

    /// Writes `request`; `false` when another writer moved it first.
    async fn write(&self, request: &ProtectionRequest) -> Result<bool, StoreError> {
        match self.store().put_protection(request).await {
            Ok(()) => Ok(true),
            Err(StoreError::VersionConflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Tells GitHub what a kept request waits for (a status report, no
    /// state); best effort: the answer is what matters.
    async fn report(&self, request: &ProtectionRequest, reason: &str) {
        let comment = protection::comment(format!(
            "changehub is waiting: {reason}. The deployment goes ahead as soon as the change may implement (answered by {})",
            request.timeout_at().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        let post = CallbackPost { environment: &request.environment, state: None, comment: &comment };
        if let Err(e) = self.callbacks.post_callback(request, &post).await {
            tracing::warn!(request = %request.id, error = %crate::error_chain(&e), "status report not posted");
        }
    }

    /// One notification per CAB group (the admins when the catalog names no
    /// CAB; the feed alone when it names neither), and an error log line.
    async fn alarm(
        &self,
        request: &ProtectionRequest,
        answer: &CallbackAnswer,
        why: &str,
    ) -> Result<(), ProtectionError> {
        tracing::error!(alarm = ALARM_TYPE, tenant = %request.tenant, request = %request.id, repository = %request.repository, environment = %request.environment, why, "deployment protection rule alarm");
        let view = self.changes.catalog.catalog(&request.tenant).await?;
        let headline =
            format!("Deployment of {} to {} needs attention: {why}", request.repository, request.environment);
        let mut facts = vec![
            crate::ports::Fact { name: "Repository".into(), value: request.repository.clone() },
            crate::ports::Fact { name: "Environment".into(), value: request.environment.clone() },
            crate::ports::Fact { name: "Answer".into(), value: answer.state.as_str().into() },
        ];
        if let Some(change) = request.waiting_on().or(request.change_ids.first().copied()) {
            facts.push(crate::ports::Fact { name: "Change".into(), value: change.to_string() });
        }
        let message =
            Message { headline: headline.clone(), lines: vec![answer.comment.clone()], facts, links: Vec::new() };
        let body = serde_json::json!({
            "kind": ALARM_KIND,
            "tenant": request.tenant,
            "request": request.id,
            "repository": request.repository,
            "environment": request.environment,
            "service": request.service,
            "answer": answer,
            "why": why,
            "requested_at": request.requested_at,
        });
        let groups = view.catalog.cab_groups();
        let to: Vec<Option<&String>> = if groups.is_empty() { vec![None] } else { groups.iter().map(Some).collect() };
        for group in to {
            let mut attributes = BTreeMap::from([
                ("kind".to_owned(), ALARM_KIND.to_owned()),
                (super::routed::TYPE.to_owned(), ALARM_TYPE.to_owned()),
                ("tenant".to_owned(), request.tenant.to_string()),
                (super::routed::SEVERITY.to_owned(), "high".to_owned()),
                (super::routed::AUDIENCE.to_owned(), group.map_or("feed", |_| "cab").to_owned()),
            ]);
            if let Some(group) = group {
                attributes.insert(super::routed::NOTIFY.to_owned(), group.clone());
            }
            if let Some(service) = &request.service {
                attributes.insert(super::routed::SERVICE.to_owned(), service.to_string());
            }
            let n =
                Notification { subject: headline.clone(), body: body.clone(), attributes, message: message.clone() };
            self.notifier.notify(&n).await?;
        }
        Ok(())
    }

    /// Applies `edit` to `change`'s waiting set and writes it if it changed
    /// anything, again on a concurrent write.
    /// `edit` says whether it changed anything, and what to return.
    async fn update_waits<R>(
        &self,
        tenant: &TenantId,
        change: ChangeId,
        edit: impl Fn(&mut ProtectionWaits) -> (bool, R),
    ) -> Result<R, StoreError> {
        let mut attempt = 1;
        loop {
            let mut waits = self
                .store()
                .get_protection_waits(tenant, &change)
                .await?
                .unwrap_or_else(|| ProtectionWaits::new(tenant.clone(), change));
            let (changed, out) = edit(&mut waits);
            if !changed {
                return Ok(out);
            }
            waits.version += 1;
            match self.store().put_protection_waits(&waits).await {
                Err(StoreError::VersionConflict { .. }) if attempt < WAITS_ATTEMPTS => attempt += 1,
                done => return done.map(|()| out),
            }
        }
    }
}

/// The protection rule part of the escalation tick: each request due puts
/// one `Deployment Gate Due` event, which [`Protection`] consumes (so only
/// the function facing GitHub holds its credentials). Reads only what is due.
pub struct ProtectionTicker<S, B, C> {
    pub store: S,
    pub bus: B,
    pub clock: C,
}

/// What one tick handed on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProtectionTick {
    /// The requests handed back, by id.
    pub due: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectionTickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Events per publish (EventBridge takes at most 10 entries per PutEvents).
const EVENTS_PER_PUT: usize = 10;

impl<S: ProtectionStore, B: EventBus, C: Clock> ProtectionTicker<S, B, C> {
    pub async fn tick(&self) -> Result<ProtectionTick, ProtectionTickError> {
        let now = self.clock.now();
        let mut tick = ProtectionTick::default();
        for shard in 0..DUE_SHARDS {
            let page = self.store.due_protections(shard, now, MAX_PAGE, None).await?;
            let events: Vec<HubEvent> = page.items.iter().filter_map(|r| due_event(r, now)).collect();
            for chunk in events.chunks(EVENTS_PER_PUT) {
                self.bus.publish(chunk).await?;
            }
            tick.due.extend(page.items.into_iter().map(|r| r.id));
        }
        Ok(tick)
    }
}

/// The `Deployment Gate Due` event of `request` (due at `due_at`), its id the same for the same due time.
fn due_event(request: &ProtectionRequest, now: chrono::DateTime<chrono::Utc>) -> Option<HubEvent> {
    let due_at = request.due_at?;
    let id = format!("gate-due-{}-{}-{}", request.tenant, request.id, due_at.timestamp());
    let detail =
        DueDetail { event_id: id.clone(), tenant: request.tenant.to_string(), request_id: request.id.clone(), due_at };
    Some(HubEvent {
        id,
        source: DUE_SOURCE.to_owned(),
        detail_type: GATE_DUE.to_owned(),
        time: now,
        resources: Vec::new(),
        detail: serde_json::to_value(detail).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_retried_by_the_one_store_rule() {
        assert!(!ProtectionError::Store(StoreError::backend(false, "validation")).retryable(), "the backend's flag");
        assert!(ProtectionError::Store(StoreError::backend(true, "throttled")).retryable());
        assert!(!ProtectionError::Store(StoreError::InvalidCursor(crate::ports::InvalidCursor)).retryable());
    }

    #[test]
    fn the_rule_takes_requests_due_events_and_every_change_event_that_may_turn_a_gate() {
        let pattern = rule_pattern().expect("pattern");
        let event = |detail_type: &str| serde_json::json!({"detail-type": detail_type, "source": "changehub.changes"});
        for taken in [GATE_REQUESTED, GATE_DUE, "Change Approved", "Change Rejected", "Checklist Item Done"] {
            assert!(pattern.matches(&event(taken)), "{taken}");
        }
        for left in ["Pull Request Changed", "Freeze Starting", "Change Created"] {
            assert!(!pattern.matches(&event(left)), "{left}");
        }
    }
}
