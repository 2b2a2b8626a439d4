//! Deployments become changes (`app::deployments`), on both stores: the
//! events are the samples in events/ as ingest normalizes them, with their
//! status and time edited to play a deployment's life in any order.

use std::path::Path;

use changehub::app::Changes;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::ChangeStore;
use changehub::app::deployments::{Applied, Deployments};
use changehub::domain::correlation::{Implementation, Outcome};
use changehub::domain::deployment::production::{InProduction, Ran};
use changehub::domain::{AuditAction, Change, ChangeId, ChangeState, ChangeType, NewChange, ServiceName, TenantId};
use changehub::ingest::{Normalized, Origin, event_header, normalize};
use changehub::ports::{FixedClock, StoreError};
use changehub_tests::fixtures::{self, alice, submit_and_approve, to};
use changehub_tests::samples::ROOT;
use changehub_tests::{t0, unique};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::store_contract::{contract_cases, embedded};
use changehub_tests::aws;

/// A hub event's detail-type and detail made from a sample, as ingest
/// publishes it (the service resolved to `service`), then edited.
pub(crate) fn sample(
    tenant: &str,
    origin: Origin,
    kind: &str,
    file: &str,
    edit: impl FnOnce(&mut Value),
) -> (String, Value) {
    let body = std::fs::read(Path::new(ROOT).join("events").join(origin.as_str()).join(file)).expect("sample");
    let mut headers = axum::http::HeaderMap::new();
    // Argo CD names no event in a header: its body says it all.
    if let Some(name) = event_header(origin) {
        headers
            .insert(axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"), kind.parse().expect("value"));
    }
    for delivery in ["x-github-delivery", "idempotency-key"] {
        headers.insert(delivery, "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().expect("value"));
    }
    let events = match normalize(origin, &headers, &body) {
        Ok(Normalized::Events(events)) => events,
        other => panic!("{file} normalizes: {other:?}"),
    };
    let c = &events[0];
    let (detail_type, data) = c.fact.split();
    let mut detail = json!({
        "event_id": unique("ev"), "tenant": tenant, "origin": origin, "service": "payments",
        "service_resolution": {"key": null, "reason": null}, "environment": c.environment,
        "occurred_at": c.occurred_at, "actor": c.actor, "external_id": c.external_id, "url": c.url,
        "delivery_id": "delivery-1", "data": data
    });
    edit(&mut detail);
    (detail_type, detail)
}

pub(crate) fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 14, h, m, 0).single().expect("time")
}

/// A GitHub deployment status of deployment `id`: `state` at `time`.
pub(crate) fn github(tenant: &str, id: &str, state: &str, time: DateTime<Utc>) -> (String, Value) {
    sample(tenant, Origin::Github, "deployment_status", "deployment_status.success.json", |d| {
        d["data"]["state"] = json!(state);
        d["data"]["deployment_id"] = json!(id);
        d["occurred_at"] = json!(time);
    })
}

pub(crate) struct Setup<S: ChangeStore> {
    pub(crate) app: Changes<S, FixedClock>,
    pub(crate) deployments: Deployments<S, CachedCatalog<S>, FixedClock>,
    pub(crate) tenant: String,
}

impl<S: ChangeStore> Setup<S> {
    pub(crate) async fn new(store: S) -> Self {
        Self::with_catalog(store, |_| {}).await
    }

    pub(crate) async fn with_catalog(store: S, edit: impl FnOnce(&mut changehub::domain::catalog::Catalog)) -> Self {
        let app = Changes::new(store.clone(), FixedClock::new(t0()));
        let tenant = unique("deploy");
        let mut catalog = fixtures::catalog();
        edit(&mut catalog);
        app.catalog.replace(&fixtures::root(&tenant), catalog, None, &app.clock).await.expect("catalog");
        let deployments = Deployments { store, catalog: app.catalog.clone(), clock: FixedClock::new(t0()) };
        Self { app, deployments, tenant }
    }

    pub(crate) async fn apply(&self, (detail_type, detail): &(String, Value)) -> Applied {
        self.deployments.handle(detail_type, detail).await.expect("applied")
    }

    pub(crate) fn tenant(&self) -> TenantId {
        TenantId::parse(&self.tenant).expect("tenant")
    }

    pub(crate) async fn change(&self, id: &ChangeId) -> Change {
        self.app.store.get_change(&self.tenant(), id).await.expect("read").expect("the change")
    }

    async fn actions(&self, id: &ChangeId) -> Vec<AuditAction> {
        let trail = self.app.store.audit_trail(&self.tenant(), id).await.expect("trail");
        trail.iter().map(|e| e.action).collect()
    }

    /// A draft on payments that Alice opened.
    async fn draft(&self) -> Change {
        let start = t0() + chrono::Duration::hours(1);
        let end = start + chrono::Duration::hours(2);
        let draft = NewChange::basic("Roll out checkout v2", &["payments"], "production", start, end);
        self.app.create(&alice(&self.tenant), draft).await.expect("draft")
    }

    /// [`Self::draft`], approved and scheduled (as it was drafted: its id).
    async fn scheduled(&self) -> Change {
        let draft = self.draft().await;
        self.approve_and_schedule(&draft).await;
        draft
    }

    /// Submits `draft`, approves it at every level and schedules it.
    pub(crate) async fn approve_and_schedule(&self, draft: &Change) {
        let approved = submit_and_approve(&self.app, &self.tenant, &draft.id).await;
        self.app
            .transition(&alice(&self.tenant), &draft.id, to(ChangeState::Scheduled, approved.version))
            .await
            .expect("scheduled");
    }

    /// The one change of the tenant (its id; fails if there are others).
    async fn only_change(&self) -> ChangeId {
        let ids = self.app.store.change_ids(&self.tenant()).await.expect("ids");
        assert_eq!(ids.len(), 1, "one deployment, one change: {ids:?}");
        ids[0]
    }
}

pub(crate) fn changed(applied: &Applied) -> ChangeId {
    match applied {
        Applied::Created { change, .. }
        | Applied::Recorded { change, .. }
        | Applied::Observed { change, .. }
        | Applied::Unchanged { change } => *change,
        Applied::Skipped(why) => panic!("skipped: {why}"),
    }
}

/// What a deployment's statuses leave on its change, whatever their order.
fn outcome(c: &Change) -> Value {
    json!({
        "state": c.state, "type": c.change_type, "implementation": c.implementation, "origin": c.origin,
        "deployments": c.deployments, "planned": [c.planned_start, c.planned_end], "review": c.review,
        "description": c.description, "services": c.services,
    })
}

mod contract {
    use super::*;

    pub async fn a_production_deployment_without_a_change_becomes_a_flagged_change<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let created = s.apply(&github(&s.tenant, "1834567890", "queued", at(10, 20))).await;
        let id = changed(&created);
        assert_eq!(created, Applied::Created { change: id, state: ChangeState::Scheduled });
        s.apply(&github(&s.tenant, "1834567890", "in_progress", at(10, 21))).await;
        let done = s.apply(&github(&s.tenant, "1834567890", "success", at(10, 34))).await;
        assert_eq!(done, Applied::Recorded { change: id, state: ChangeState::Completed });
        let c = s.change(&id).await;
        assert_eq!(c.change_type, ChangeType::Normal, "production, tier 1");
        assert_eq!(c.environment, "production");
        let origin = c.origin.as_ref().expect("origin");
        assert_eq!(
            serde_json::to_value(origin).expect("json"),
            json!({
                "source": "github", "repository": "acme-corp/checkout-service", "deployment_id": "1834567890",
                "sha": origin.sha, "ref": origin.git_ref, "environment": "production",
                "url": "https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210",
                "actor": "github-actions[bot]"
            })
        );
        let ran =
            Implementation::Finished { started_at: at(10, 21), ended_at: at(10, 34), outcome: Outcome::Succeeded };
        assert_eq!(c.implementation, Some(ran), "the deployment's own times, not the receive time");
        assert_eq!((c.planned_start, c.planned_end), (at(10, 21), at(10, 34)));
        let review = c.review.as_ref().expect("flagged: no approved change");
        assert_eq!(review.due_at, at(10, 34) + chrono::Duration::hours(72), "after the deployment ended");
        assert_eq!(s.actions(&id).await, [AuditAction::Created, AuditAction::Transitioned, AuditAction::Transitioned]);
        let trail = s.app.store.audit_trail(&s.tenant(), &id).await.expect("trail");
        assert!(trail[0].reason.as_deref().unwrap_or_default().contains("names no approved change"), "{trail:?}");
        assert!(trail[2].reason.as_deref().unwrap_or_default().contains("succeeded at"), "{trail:?}");
    }

    pub async fn statuses_out_of_order_and_repeated_converge_on_one_record<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let play = |id: &str, order: &[(&str, DateTime<Utc>)]| -> Vec<(String, Value)> {
            order.iter().map(|(state, time)| github(&s.tenant, id, state, *time)).collect()
        };
        let life = [("queued", at(10, 20)), ("in_progress", at(10, 21)), ("success", at(10, 34))];
        let reversed =
            [("success", at(10, 34)), ("success", at(10, 34)), ("in_progress", at(10, 21)), ("queued", at(10, 20))];
        let mut records = vec![];
        for (id, order) in [("1", &life[..]), ("2", &reversed[..])] {
            for event in play(id, order) {
                s.apply(&event).await;
            }
            let again = s.apply(&play(id, &[("in_progress", at(10, 21))])[0]).await;
            assert!(matches!(again, Applied::Unchanged { .. }), "a repeated status changes nothing: {again:?}");
            let c = s.change(&changed(&again)).await;
            let mut seen = outcome(&c);
            seen["origin"]["deployment_id"] = json!("*");
            seen["deployments"][0]["origin"]["deployment_id"] = json!("*");
            seen["description"] = json!(c.description.replace(&format!("deployment {id} "), "deployment * "));
            records.push(seen);
        }
        assert_eq!(records[0], records[1]);
        assert_eq!(records[0]["state"], "completed");
    }

    pub async fn concurrent_copies_of_a_status_make_one_change<S: ChangeStore>(store: S) {
        let s = std::sync::Arc::new(Setup::new(store).await);
        let event = github(&s.tenant, "77", "success", at(10, 34));
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (s, event) = (s.clone(), event.clone());
                tokio::spawn(async move { s.apply(&event).await })
            })
            .collect();
        for copy in copies {
            copy.await.expect("joined");
        }
        let id = s.only_change().await;
        assert_eq!(s.change(&id).await.state, ChangeState::Completed);
        assert_eq!(
            s.actions(&id).await,
            [AuditAction::Created, AuditAction::Transitioned, AuditAction::Transitioned],
            "made once, moved once"
        );
    }

    pub async fn a_deployment_naming_an_approved_change_moves_it_and_a_failure_asks_for_a_review<S: ChangeStore>(
        store: S,
    ) {
        let s = Setup::new(store).await;
        let draft = s.scheduled().await;
        let names = |state: &str, time| {
            let (t, mut d) = github(&s.tenant, "900", state, time);
            d["data"]["change_ids"] = json!([draft.id.to_string()]);
            (t, d)
        };
        let started = s.apply(&names("in_progress", at(23, 5))).await;
        assert_eq!(started, Applied::Recorded { change: draft.id, state: ChangeState::Implementing });
        let failed = s.apply(&names("failure", at(23, 40))).await;
        assert_eq!(failed, Applied::Recorded { change: draft.id, state: ChangeState::Failed });
        let c = s.change(&draft.id).await;
        assert_eq!(c.origin, None, "a person opened it");
        assert_eq!(c.deployments.len(), 1);
        let ran = Implementation::Finished { started_at: at(23, 5), ended_at: at(23, 40), outcome: Outcome::Failed };
        assert_eq!(c.implementation, Some(ran));
        assert_eq!(c.review.as_ref().map(|r| r.due_at), Some(at(23, 40) + chrono::Duration::hours(72)));
        assert_eq!(s.app.store.change_ids(&s.tenant()).await.expect("ids").len(), 1, "attached, nothing made");
    }

    pub async fn a_deployment_naming_an_unapproved_change_is_recorded_without_moving_it<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let draft = s.draft().await;
        let (t, mut d) = github(&s.tenant, "901", "success", at(23, 40));
        d["data"]["change_ids"] = json!([draft.id.to_string()]);
        let observed = s.apply(&(t, d)).await;
        assert_eq!(observed, Applied::Observed { change: draft.id, state: ChangeState::Draft });
        let c = s.change(&draft.id).await;
        assert_eq!((c.state, c.implementation, c.deployments.len()), (ChangeState::Draft, None, 1));
        let trail = s.app.store.audit_trail(&s.tenant(), &draft.id).await.expect("trail");
        let last = trail.last().expect("entries");
        assert_eq!(last.action, AuditAction::DeploymentRecorded);
        assert!(last.reason.as_deref().unwrap_or_default().contains("change control is not bypassed"), "{last:?}");
    }

    pub async fn a_gitlab_deployment_outside_production_is_a_recorded_change<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let event = sample(&s.tenant, Origin::Gitlab, "Deployment Hook", "deployment.success.json", |d| {
            d["data"]["environment"] = json!("staging");
        });
        let made = s.apply(&event).await;
        let c = s.change(&changed(&made)).await;
        assert_eq!((c.change_type, c.state, c.review.clone()), (ChangeType::Recorded, ChangeState::Completed, None));
        let origin = c.origin.expect("origin");
        assert_eq!((origin.source.as_str(), origin.repository.as_str()), ("gitlab", "platform/checkout-service"));
        assert_eq!((origin.deployment_id.as_str(), origin.environment.as_str()), ("48213", "staging"));
    }

    pub async fn a_rollback_deployment_rolls_back_the_failed_change_it_names<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let failed = s.apply(&github(&s.tenant, "500", "failure", at(11, 0))).await;
        let id = changed(&failed);
        assert_eq!(s.change(&id).await.state, ChangeState::Failed);
        let (t, mut d) = github(&s.tenant, "501", "success", at(11, 10));
        d["data"]["description"] = json!("Rollback to v1.4.2");
        d["data"]["change_ids"] = json!([id.to_string()]);
        let rolled = s.apply(&(t, d)).await;
        assert_eq!(rolled, Applied::Recorded { change: id, state: ChangeState::RolledBack });
        let c = s.change(&id).await;
        assert_eq!(c.deployments.len(), 2);
        assert!(c.review.is_some(), "a failed production change is reviewed");
        // Its post-mortem names what was deployed and the rollback.
        let pm = c.postmortem.as_ref().expect("a post-mortem draft");
        assert_eq!((pm.outcome, pm.deployed.deployment_id.as_str()), (Outcome::RolledBack, "500"));
        assert_eq!(pm.rollback.as_ref().map(|r| r.deployment_id.as_str()), Some("501"));
        assert_eq!(pm.at, at(11, 10));
    }

    pub async fn a_rollback_flag_in_the_deployment_rolls_back_without_rollback_words<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let id = changed(&s.apply(&github(&s.tenant, "600", "failure", at(11, 0))).await);
        let (t, mut d) = github(&s.tenant, "601", "success", at(11, 10));
        d["data"]["description"] = json!("Deployed v1.4.2");
        d["data"]["rollback"] = json!(true);
        d["data"]["change_ids"] = json!([id.to_string()]);
        assert_eq!(s.apply(&(t, d)).await, Applied::Recorded { change: id, state: ChangeState::RolledBack });
    }

    pub async fn a_redeploy_of_an_earlier_sha_to_the_same_environment_rolls_back<S: ChangeStore>(store: S) {
        let thirty = changehub::domain::catalog::Span::parse("30m").expect("span");
        let s = Setup::with_catalog(store, |c| {
            c.services.iter_mut().filter(|s| s.name.as_str() == "payments").for_each(|s| s.bake_time = thirty.clone())
        })
        .await;
        let draft = s.scheduled().await;
        let deploy = |id: &str, sha: &str, time| {
            let (t, mut d) = github(&s.tenant, id, "success", time);
            d["data"]["sha"] = json!(sha);
            d["data"]["change_ids"] = json!([draft.id.to_string()]);
            (t, d)
        };
        let a = "1111111111111111111111111111111111111111";
        let b = "2222222222222222222222222222222222222222";
        let first = s.apply(&deploy("701", a, at(23, 0))).await;
        assert_eq!(first, Applied::Recorded { change: draft.id, state: ChangeState::Verifying }, "baking");
        let second = s.apply(&deploy("702", b, at(23, 10))).await;
        assert_eq!(second, Applied::Recorded { change: draft.id, state: ChangeState::Verifying }, "a newer sha");
        assert_eq!(s.change(&draft.id).await.bake.map(|b| b.until), Some(at(23, 40)), "the latest deployment's");
        let back = s.apply(&deploy("703", a, at(23, 20))).await;
        assert_eq!(
            back,
            Applied::Recorded { change: draft.id, state: ChangeState::RolledBack },
            "the earlier sha again"
        );
        let c = s.change(&draft.id).await;
        let pm = c.postmortem.expect("a post-mortem draft");
        assert_eq!((pm.deployed.deployment_id.as_str(), pm.deployed.sha.as_deref()), ("702", Some(b)));
        assert_eq!(pm.rollback.map(|r| r.deployment_id), Some("703".to_owned()));
    }

    pub async fn what_runs_in_production_is_kept_per_service_and_environment_and_written_conditionally<
        S: ChangeStore,
    >(
        store: S,
    ) {
        let tenant = TenantId::parse(&unique("acme")).expect("tenant");
        let payments = ServiceName::parse("payments").expect("service");
        let ran = |sha: &str, m: u32| Ran {
            sha: sha.into(),
            at: at(10, m),
            deployment: format!("deploy {sha}"),
            change: None,
        };
        assert_eq!(store.in_production(&tenant, &payments, "production").await.expect("read"), None);
        let first = InProduction::first(tenant.clone(), payments.clone(), "Production", ran("aaaaaaa1", 0));
        store.put_in_production(&first).await.expect("first write");
        let again = store.put_in_production(&first).await;
        assert!(matches!(again, Err(StoreError::VersionConflict { expected: 0 })), "a second first write: {again:?}");
        assert_eq!(store.in_production(&tenant, &payments, "PRODUCTION").await.expect("read"), Some(first.clone()));
        assert_eq!(store.in_production(&tenant, &payments, "staging").await.expect("read"), None, "per environment");
        let checkout = ServiceName::parse("checkout").expect("service");
        assert_eq!(store.in_production(&tenant, &checkout, "production").await.expect("read"), None, "per service");

        let second = first.after(ran("bbbbbbb2", 10)).expect("later");
        store.put_in_production(&second).await.expect("second write");
        let stale = first.after(ran("ccccccc3", 20)).expect("later than the first");
        let lost = store.put_in_production(&stale).await;
        assert!(matches!(lost, Err(StoreError::VersionConflict { expected: 1 })), "a stale write: {lost:?}");
        assert_eq!(store.in_production(&tenant, &payments, "production").await.expect("read"), Some(second));
    }

    /// A deployment that puts back the sha the running one replaced rolls
    /// back the change of the one it replaces (it names none; that change
    /// still baking); a late
    /// status of an older deployment does not move what runs.
    pub async fn a_deployment_of_the_replaced_sha_rolls_back_the_change_it_replaces<S: ChangeStore>(store: S) {
        // Baking (verifying) until 30 minutes after each deployment: a completed change is not rolled back.
        let thirty = changehub::domain::catalog::Span::parse("30m").expect("span");
        let s = Setup::with_catalog(store, |c| {
            c.services.iter_mut().filter(|s| s.name.as_str() == "payments").for_each(|s| s.bake_time = thirty.clone())
        })
        .await;
        let deploy = |id: &str, sha: &str, state: &str, time| {
            let (t, mut d) = github(&s.tenant, id, state, time);
            d["data"]["sha"] = json!(sha);
            d["data"]["description"] = json!("Deployed");
            (t, d)
        };
        let a = "1111111111111111111111111111111111111111";
        let b = "2222222222222222222222222222222222222222";
        let first = changed(&s.apply(&deploy("801", a, "success", at(10, 0))).await);
        let second = changed(&s.apply(&deploy("802", b, "success", at(10, 30))).await);
        assert_ne!(first, second, "each deployment its own change");
        // A late status of the first deployment moves nothing.
        s.apply(&deploy("801", a, "success", at(10, 1))).await;
        let payments = ServiceName::parse("payments").expect("service");
        let running = s.app.store.in_production(&s.tenant(), &payments, "production").await.expect("read");
        let running = running.expect("recorded");
        assert_eq!((running.current.sha.as_str(), running.current.change), (b, Some(second)));
        assert_eq!(running.previous.map(|p| p.sha), Some(a.to_owned()));

        let back = s.apply(&deploy("803", a, "success", at(10, 50))).await;
        assert_eq!(back, Applied::Recorded { change: second, state: ChangeState::RolledBack });
        let c = s.change(&second).await;
        let pm = c.postmortem.expect("a post-mortem draft");
        assert_eq!((pm.deployed.deployment_id.as_str(), pm.deployed.sha.as_deref()), ("802", Some(b)));
        assert_eq!(pm.rollback.map(|r| r.deployment_id), Some("803".to_owned()));
        let running = s.app.store.in_production(&s.tenant(), &payments, "production").await.expect("read");
        assert_eq!(running.map(|r| r.current.sha), Some(a.to_owned()), "what runs is the earlier sha again");
    }

    pub async fn a_failed_gitlab_deployment_drafts_its_job_and_log<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let event = sample(&s.tenant, Origin::Gitlab, "Deployment Hook", "deployment.failed.json", |_| {});
        let c = s.change(&changed(&s.apply(&event).await)).await;
        assert_eq!(c.state, ChangeState::Failed);
        let pm = c.postmortem.expect("a post-mortem draft");
        assert_eq!((pm.outcome, pm.by.as_deref()), (Outcome::Failed, Some("raj.acme")));
        assert_eq!(pm.failing_job.as_deref(), Some("job 1556230"));
        let log = "https://gitlab.acme.example/platform/checkout-service/-/jobs/1556230";
        assert_eq!((pm.log_url.as_deref(), pm.error.as_deref()), (Some(log), None), "GitLab sends no error text");
    }

    /// Argo CD: a failed sync fails the approved change it names, with a
    /// post-mortem draft of Argo CD's message; `argocd app rollback` (a sync
    /// carrying a history entry's source) then rolls it back.
    pub async fn an_argocd_sync_failure_fails_its_change_and_a_rollback_rolls_it_back<S: ChangeStore>(store: S) {
        let s = Setup::new(store).await;
        let draft = s.scheduled().await;
        let names = |file: &str| {
            sample(&s.tenant, Origin::Argocd, "", file, |d| d["data"]["change_ids"] = json!([draft.id.to_string()]))
        };
        let failed = s.apply(&names("app.sync_failed.json")).await;
        assert_eq!(failed, Applied::Recorded { change: draft.id, state: ChangeState::Failed });
        let c = s.change(&draft.id).await;
        let pm = c.postmortem.expect("a post-mortem draft");
        assert_eq!((pm.outcome, pm.by.as_deref()), (Outcome::Failed, Some("raj.acme")));
        assert_eq!(pm.failing_job.as_deref(), Some("Argo CD sync of checkout"));
        assert!(pm.error.as_deref().unwrap_or_default().contains("failed to apply"), "{:?}", pm.error);
        assert_eq!(pm.log_url.as_deref(), Some("https://argocd.acme.example/applications/checkout"));

        let rolled = s.apply(&names("app.rollback.json")).await;
        assert_eq!(rolled, Applied::Recorded { change: draft.id, state: ChangeState::RolledBack });
        let c = s.change(&draft.id).await;
        let origin = &c.deployments[0].origin;
        assert_eq!((origin.source.as_str(), origin.repository.as_str()), ("argocd", "acme-corp/checkout-service"));
        let pm = c.postmortem.expect("a post-mortem draft");
        assert_eq!(pm.deployed.deployment_id, "checkout@2026-09-14T11:02:10Z");
        assert_eq!(pm.rollback.map(|r| r.deployment_id), Some("checkout@2026-09-14T11:10:02Z".to_owned()));
    }

    pub async fn a_deploy_workflow_run_is_a_deployment_and_other_runs_are_not<S: ChangeStore>(store: S) {
        let s = Setup::with_catalog(store, |c| c.pipelines.deploy_workflows = vec!["deploy".into()]).await;
        let run = sample(&s.tenant, Origin::Github, "workflow_run", "workflow_run.completed.json", |_| {});
        let made = s.apply(&run).await;
        let c = s.change(&changed(&made)).await;
        assert_eq!((c.state, c.environment.as_str()), (ChangeState::Completed, "production"));
        let build = sample(&s.tenant, Origin::Github, "workflow_run", "workflow_run.completed.json", |d| {
            d["data"]["name"] = json!("Build");
        });
        assert!(matches!(s.apply(&build).await, Applied::Skipped(_)));
    }
}

contract_cases!(
    a_production_deployment_without_a_change_becomes_a_flagged_change,
    statuses_out_of_order_and_repeated_converge_on_one_record,
    concurrent_copies_of_a_status_make_one_change,
    a_deployment_naming_an_approved_change_moves_it_and_a_failure_asks_for_a_review,
    a_deployment_naming_an_unapproved_change_is_recorded_without_moving_it,
    a_gitlab_deployment_outside_production_is_a_recorded_change,
    a_rollback_deployment_rolls_back_the_failed_change_it_names,
    a_rollback_flag_in_the_deployment_rolls_back_without_rollback_words,
    a_redeploy_of_an_earlier_sha_to_the_same_environment_rolls_back,
    what_runs_in_production_is_kept_per_service_and_environment_and_written_conditionally,
    a_deployment_of_the_replaced_sha_rolls_back_the_change_it_replaces,
    a_failed_gitlab_deployment_drafts_its_job_and_log,
    an_argocd_sync_failure_fails_its_change_and_a_rollback_rolls_it_back,
    a_deploy_workflow_run_is_a_deployment_and_other_runs_are_not,
);

#[tokio::test]
async fn an_unreadable_event_is_refused_without_retry_and_other_events_are_skipped() {
    let (store, _dir) = embedded().await;
    let s = Setup::new(store).await;
    let err = s.deployments.handle("Deployment Status Changed", &json!({"tenant": "x"})).await.expect_err("unreadable");
    assert!(!err.retryable(), "{err}");
    let skipped = s.deployments.handle("Incident Triggered", &json!({})).await.expect("skipped");
    assert!(matches!(skipped, Applied::Skipped(_)));
    let inactive = s.apply(&github(&s.tenant, "3", "inactive", at(10, 0))).await;
    assert!(matches!(inactive, Applied::Skipped(_)), "{inactive:?}");
}
