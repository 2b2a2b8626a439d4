//! The deployment gate any CI asks (`POST /gates/deployments`, `changehub
//! gate`): may this deployment go ahead now, and on which change?
//! [`crate::domain::gate`] decides; this reads what it weighs and records
//! every answer in the activity log.
//!
//! A decision costs a bounded number of store calls whatever the history:
//! the catalog (cached), the change (one read by id; or, with no id, one
//! page of the service's plannable index from now to [`gate::LOOKAHEAD`]
//! ahead and its implementation index around now: see
//! [`Changes::gate_candidates`]; neither holds the service's ended
//! history, so the read does not grow with it), and, only
//! for a gated environment with a live change, the freezes and incidents
//! documents (two reads, side by side); then one activity write.
//!
//! A caller may wait for an answer that is still pending (a long poll):
//! the decision is taken again whenever [`Wakeups`] says something changed
//! (`changehub serve` wakes it on every committed change mutation, every
//! applied bus event and every API write), and when the time the decision
//! named comes (the window opens, a freeze ends); never in a polling loop.
//! Where nothing wakes it (the api Lambda, which cannot hold a request for
//! long), the answer is given at once and the caller asks again.

use std::time::Duration;
use tokio::sync::watch;

use super::changes::{ChangeError, ChangeStore, Changes, unknown_service};
use super::governance::{Freezes, Incidents, read_doc};
use crate::domain::access::Caller;
use crate::domain::catalog::CatalogView;
use crate::domain::catalog::Role;
use crate::domain::gate::{self, Ask, Decision, GateRecord, GateRequest, OpenIncident, Rules};
use crate::domain::{Change, ChangeId, ChangeState};
use crate::ports::{
    Activity, ActivityLog, CatalogReader, Clock, DocKind, GATE_DETAIL_TYPE, GATE_SOURCE, ImplementationQuery, MAX_PAGE,
    ServiceWindowQuery,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The longest a caller may have an answer held.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The soonest a held answer is decided again for the passing of time alone.
const RECHECK_FLOOR: Duration = Duration::from_millis(100);

/// Tells the gate's waiters that something they may depend on changed.
/// Cheap to clone; waking with no waiter costs nothing.
#[derive(Clone)]
pub struct Wakeups(std::sync::Arc<watch::Sender<u64>>);

impl Default for Wakeups {
    fn default() -> Self {
        Self(std::sync::Arc::new(watch::channel(0).0))
    }
}

impl Wakeups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every waiter: each decides again (a bounded number of reads).
    pub fn wake(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl<S: ChangeStore + ActivityLog, C: Clock> Changes<S, C> {
    /// Answers whether `req`'s deployment may go ahead, held up to `wait`
    /// while the answer is pending and `wakeups` can tell when to decide
    /// again. Any role may ask, the `ingest` machine role included (a
    /// pipeline's token); the answer is recorded in the activity log.
    #[tracing::instrument(skip(self, req, wakeups), fields(tenant = %caller.tenant, service = %req.service, environment = %req.environment))]
    pub async fn gate(
        &self,
        caller: &Caller,
        req: GateRequest,
        wait: Duration,
        wakeups: Option<&Wakeups>,
    ) -> Result<Decision, ChangeError> {
        let ask = req.validate()?;
        let (access, view) = self.access(caller).await?;
        access.require(&Role::ALL, "asking the deployment gate")?;
        if view.version > 0 && view.catalog.service(&ask.service).is_none() {
            return Err(unknown_service(&view, "service".into(), &ask.service).into());
        }
        let asked = tokio::time::Instant::now();
        let deadline = asked + wait.min(MAX_WAIT);
        let mut woken = wakeups.map(Wakeups::subscribe);
        let decision = loop {
            if let Some(rx) = woken.as_mut() {
                rx.mark_unchanged();
            }
            let decision = self.decide_gate(caller, &ask).await?;
            let Some(rx) = woken.as_mut().filter(|_| !decision.settled() && tokio::time::Instant::now() < deadline)
            else {
                break decision;
            };
            // At the time the decision named (not sooner than RECHECK_FLOOR: a clock that does not move is no busy loop).
            let recheck = decision
                .recheck_at
                .map(|at| (at - self.clock.now()).to_std().unwrap_or_default().max(RECHECK_FLOOR))
                .map_or(deadline, |d| (tokio::time::Instant::now() + d).min(deadline));
            let closed = tokio::select! {
                changed = rx.changed() => changed.is_err(),
                () = tokio::time::sleep_until(recheck) => false,
            };
            if closed {
                woken = None;
            }
        };
        let waited = u64::try_from(asked.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.record_gate(caller, &ask, &decision, waited).await?;
        tracing::info!(allowed = decision.allowed, code = decision.code.as_str(), waited_ms = waited, "gate answered");
        Ok(decision)
    }

    /// One decision, as of now.
    async fn decide_gate(&self, caller: &Caller, ask: &Ask) -> Result<Decision, ChangeError> {
        let view = self.catalog.catalog(&caller.tenant).await?;
        let now = self.clock.now();
        let mut rules = Rules {
            now,
            production: &view.catalog.correlation.production_environments,
            start_grace: view.catalog.implementation.start_grace.chrono(),
            freezes: &[],
            incidents: &[],
        };
        let found: Option<Change> = match ask.change {
            Some(id) => self.store.get_change(&caller.tenant, &id).await?,
            None => {
                let candidates = self.gate_candidates(&view, caller, ask, now).await?;
                gate::pick(ask, &candidates, &rules).cloned()
            }
        };
        let live = found.as_ref().is_some_and(|c| {
            matches!(
                c.state,
                ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing | ChangeState::Verifying
            )
        });
        if !(live && rules.gated(&ask.environment)) {
            return Ok(gate::decide(ask, found.as_ref(), &rules));
        }
        let (freezes, incidents) = tokio::try_join!(
            read_doc::<_, Freezes>(&self.store, &caller.tenant, DocKind::Freezes),
            read_doc::<_, Incidents>(&self.store, &caller.tenant, DocKind::Incidents),
        )?;
        let open: Vec<OpenIncident<'_>> = incidents
            .0
            .open
            .iter()
            .map(|i| OpenIncident {
                id: &i.id,
                title: &i.title,
                commander: &i.commander,
                services: &i.services,
                declared_at: i.declared_at,
            })
            .collect();
        rules.freezes = &freezes.0.windows;
        rules.incidents = &open;
        Ok(gate::decide(ask, found.as_ref(), &rules))
    }

    /// The service's changes a deployment now may rest on, read from its
    /// plannable index (approved and scheduled changes not started, planned
    /// around now to [`gate::LOOKAHEAD`] ahead: one query and one batch
    /// read) and its implementation index (implementations running now or
    /// ended within the service's bake time: one query per length class and
    /// one batch read): neither read grows with the service's history.
    async fn gate_candidates(
        &self,
        view: &CatalogView,
        caller: &Caller,
        ask: &Ask,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, ChangeError> {
        let window = ServiceWindowQuery {
            tenant: caller.tenant.clone(),
            service: ask.service.clone(),
            from: now,
            to: now + gate::LOOKAHEAD,
            limit: MAX_PAGE,
            after: None,
        };
        let bake = view.catalog.service(&ask.service).map_or(chrono::Duration::zero(), |s| s.bake_time.chrono());
        let running = ImplementationQuery {
            tenant: caller.tenant.clone(),
            services: vec![ask.service.clone()],
            since: now - bake,
            at: now,
        };
        let (plannable, implemented) =
            tokio::try_join!(self.store.plannable(&window), self.store.implemented(&running))?;
        let mut found: BTreeMap<ChangeId, Change> = plannable.items.into_iter().map(|c| (c.id, c)).collect();
        found.extend(implemented.changes.into_iter().map(|c| (c.id, c)));
        Ok(found.into_values().collect())
    }

    /// Keeps the answer in the tenant's activity log: one write.
    async fn record_gate(
        &self,
        caller: &Caller,
        ask: &Ask,
        decision: &Decision,
        waited_ms: u64,
    ) -> Result<(), ChangeError> {
        let now = self.clock.now();
        let id = format!("gate-{}", uuid::Uuid::now_v7());
        let row = Activity {
            event_id: id.clone(),
            detail_type: GATE_DETAIL_TYPE.to_owned(),
            source: GATE_SOURCE.to_owned(),
            external_id: format!("{} {} to {}", ask.service, ask.deployed(), ask.environment),
            service: Some(ask.service.as_str().to_owned()),
            service_reason: None,
            change_ids: decision.change.iter().map(|c| c.id.to_string()).collect(),
            occurred_at: now,
            received_at: now,
            delivery_id: id,
            expires_at: self.gate_retention.expiry(now),
            decision: Some(GateRecord::of(&caller.user, ask, decision, waited_ms)),
        };
        self.store.record(&caller.tenant, &[row]).await?;
        Ok(())
    }
}
