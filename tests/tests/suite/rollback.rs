//! Rollback automation (`app::rollback`), on both stores, against the fake
//! forge: a failed production deployment of a change that plans an
//! automated rollback dispatches its service's rollback once (the exact
//! GitHub `workflow_dispatch` and GitLab pipeline requests), returning to
//! what ran in production before; the change's post-mortem draft says it
//! was dispatched, or why not.

use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::scm::ForgeClient;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::{ChangeError, ChangeStore};
use changehub::app::rollback::{Applied, Rollbacks};
use changehub::domain::catalog::Catalog;
use changehub::domain::deployment::rollback::{GithubRollback, GitlabRollback, RollbackAutomation, RollbackPlan};
use changehub::domain::{AuditAction, ChangeId, ChangeState, NewChange};
use changehub::ports::{Dedupe, FixedClock};
use changehub_tests::fixtures::{alice, submit_and_approve, to};
use changehub_tests::forge::{FakeForge, answer};
use changehub_tests::t0;
use serde_json::{Value, json};

use super::deployments::{Setup, at, github};
use super::merge_gate::{client, token_credentials};
use super::store_contract::{contract_cases, embedded};
use changehub_tests::aws;

const LAST_GOOD: &str = "1111111111111111111111111111111111111111";
const FAILED: &str = "2222222222222222222222222222222222222222";

type Automation<S> = Rollbacks<S, CachedCatalog<S>, ForgeClient<StaticSecrets>, FixedClock>;

fn github_rollback() -> RollbackAutomation {
    RollbackAutomation::Github(GithubRollback {
        repository: "acme/payments-api".into(),
        workflow: "rollback.yml".into(),
        git_ref: "main".into(),
        inputs: [("sha", "{sha}"), ("change", "{change}"), ("environment", "{environment}")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
    })
}

fn gitlab_rollback() -> RollbackAutomation {
    RollbackAutomation::Gitlab(GitlabRollback {
        project: "42".into(),
        git_ref: "main".into(),
        variables: [("ROLLBACK_SHA".to_owned(), "{sha}".to_owned())].into(),
    })
}

fn with(rollback: RollbackAutomation) -> impl FnOnce(&mut Catalog) {
    move |c| {
        c.services
            .iter_mut()
            .filter(|s| s.name.as_str() == "payments")
            .for_each(|s| s.rollback = Some(rollback.clone()))
    }
}

struct World<S: ChangeStore + Dedupe> {
    s: Setup<S>,
    forge: FakeForge,
    rollbacks: Automation<S>,
}

impl<S: ChangeStore + Dedupe> World<S> {
    async fn new(store: S, rollback: RollbackAutomation) -> Self {
        let s = Setup::with_catalog(store.clone(), with(rollback)).await;
        let forge = FakeForge::start().await;
        let rollbacks = Rollbacks {
            store,
            catalog: s.app.catalog.clone(),
            forges: client(&forge, &s.tenant, token_credentials()),
            clock: FixedClock::new(t0()),
        };
        World { s, forge, rollbacks }
    }

    /// `sha` deployed to production (its own change) at 9:00: what runs there.
    async fn running(&self, sha: &str) {
        let (t, mut d) = github(&self.s.tenant, "900", "success", at(9, 0));
        d["data"]["sha"] = json!(sha);
        d["data"]["description"] = json!("Deployed");
        self.s.apply(&(t, d)).await;
    }

    /// A scheduled payments change with `plan`, whose production deployment of FAILED failed at 10:00.
    async fn failed(&self, plan: Option<RollbackPlan>) -> ChangeId {
        let start = t0() + chrono::Duration::hours(1);
        let new = NewChange {
            rollback_plan: plan,
            ..NewChange::basic(
                "Roll out checkout v2",
                &["payments"],
                "production",
                start,
                start + chrono::Duration::hours(2),
            )
        };
        let draft = self.s.app.create(&alice(&self.s.tenant), new).await.expect("draft");
        let approved = submit_and_approve(&self.s.app, &self.s.tenant, &draft.id).await;
        let scheduled = to(ChangeState::Scheduled, approved.version);
        self.s.app.transition(&alice(&self.s.tenant), &draft.id, scheduled).await.expect("scheduled");
        let (t, mut d) = github(&self.s.tenant, "901", "failure", at(10, 0));
        d["data"]["sha"] = json!(FAILED);
        d["data"]["change_ids"] = json!([draft.id.to_string()]);
        self.s.apply(&(t, d)).await;
        assert_eq!(self.s.change(&draft.id).await.state, ChangeState::Failed);
        draft.id
    }

    async fn handle(&self, id: ChangeId) -> Result<Applied, changehub::app::rollback::RollbackError> {
        let event = json!({"tenant": self.s.tenant, "change_id": id, "state": "failed"});
        self.rollbacks.handle("Change Failed", &event).await
    }

    fn dispatches(&self) -> Vec<(String, Option<String>, Value)> {
        let calls =
            self.forge.calls().into_iter().filter(|c| c.path.contains("/dispatches") || c.path.ends_with("/pipeline"));
        calls.map(|c| (c.path, c.auth, c.body)).collect()
    }
}

mod contract {
    use super::*;

    pub async fn a_failed_production_deployment_dispatches_the_workflow_once_back_to_the_last_good_sha<
        S: ChangeStore + Dedupe,
    >(
        store: S,
    ) {
        let w = World::new(store, github_rollback()).await;
        w.running(LAST_GOOD).await;
        let id = w.failed(Some(RollbackPlan { automated: true })).await;
        let applied = w.handle(id).await.expect("dispatched");
        assert!(matches!(applied, Applied::Dispatched(_)), "{applied:?}");
        let inputs = json!({"sha": LAST_GOOD, "change": id.to_string(), "environment": "production"});
        assert_eq!(
            w.dispatches(),
            vec![(
                "/repos/acme/payments-api/actions/workflows/rollback.yml/dispatches".to_owned(),
                Some("Bearer ghp_test".to_owned()),
                json!({"ref": "main", "inputs": inputs}),
            )]
        );
        // A duplicate event (and a second copy at once) dispatches nothing more.
        let (again, copy) = tokio::join!(w.handle(id), w.handle(id));
        for applied in [again.expect("again"), copy.expect("copy")] {
            assert!(matches!(applied, Applied::Skipped(_)), "{applied:?}");
        }
        assert_eq!(w.dispatches().len(), 1, "dispatched once");
        // Recorded on the change: its post-mortem draft and its audit trail.
        let c = w.s.change(&id).await;
        let automated = c.postmortem.as_ref().and_then(|p| p.automated_rollback.clone()).expect("recorded");
        assert!(automated.dispatched && automated.reason.is_none(), "{automated:?}");
        assert_eq!(automated.failed_deployment, "github deployment 901 of acme-corp/checkout-service");
        assert_eq!(automated.request.map(|r| r.values["sha"].clone()), Some(LAST_GOOD.to_owned()));
        let trail = w.s.app.store.audit_trail(&w.s.tenant(), &id).await.expect("trail");
        let entry = trail.iter().find(|e| e.action == AuditAction::RollbackDispatched).expect("audited");
        assert_eq!(
            entry.reason.as_deref(),
            Some("automated rollback dispatched to github acme/payments-api (rollback.yml) on main")
        );
    }

    pub async fn a_gitlab_rollback_triggers_a_pipeline_with_its_variables<S: ChangeStore + Dedupe>(store: S) {
        let w = World::new(store, gitlab_rollback()).await;
        w.running(LAST_GOOD).await;
        let id = w.failed(Some(RollbackPlan { automated: true })).await;
        w.forge.fail_next([answer(502)]);
        assert!(matches!(w.handle(id).await, Ok(Applied::Dispatched(_))), "retried past a 502");
        let body = json!({"ref": "main", "variables": [{"key": "ROLLBACK_SHA", "value": LAST_GOOD, "variable_type": "env_var"}]});
        let sent = ("/api/v4/projects/42/pipeline".to_owned(), Some("glpat_test".to_owned()), body);
        assert_eq!(w.dispatches(), vec![sent.clone(), sent], "the 502, then the pipeline");
    }

    pub async fn without_a_plan_or_a_known_sha_nothing_is_dispatched_and_the_change_says_why<
        S: ChangeStore + Dedupe,
    >(
        store: S,
    ) {
        let w = World::new(store, github_rollback()).await;
        let manual = w.failed(None).await;
        assert!(matches!(w.handle(manual).await, Ok(Applied::Skipped(_))), "no automated plan");
        // Nothing ran in production before: no sha to return to.
        let id = w.failed(Some(RollbackPlan { automated: true })).await;
        let applied = w.handle(id).await.expect("recorded");
        assert!(
            matches!(&applied, Applied::NotDispatched(why) if why.contains("no earlier production sha")),
            "{applied:?}"
        );
        assert!(w.dispatches().is_empty());
        let c = w.s.change(&id).await;
        let automated = c.postmortem.and_then(|p| p.automated_rollback).expect("recorded");
        assert!(!automated.dispatched && automated.reason.is_some_and(|r| r.contains("no earlier production sha")));
    }

    pub async fn a_refused_dispatch_is_recorded_and_fails_the_event<S: ChangeStore + Dedupe>(store: S) {
        let w = World::new(store, github_rollback()).await;
        w.running(LAST_GOOD).await;
        let id = w.failed(Some(RollbackPlan { automated: true })).await;
        w.forge.fail_next([answer(403)]);
        let err = w.handle(id).await.expect_err("refused");
        assert!(!err.retryable(), "{err}");
        let automated = w.s.change(&id).await.postmortem.and_then(|p| p.automated_rollback).expect("recorded");
        assert!(!automated.dispatched && automated.reason.is_some_and(|r| r.contains("refused")), "says why");
        w.forge.fail_next([answer(503), answer(503), answer(503)]);
        let other = w.failed(Some(RollbackPlan { automated: true })).await;
        let err = w.handle(other).await.expect_err("unavailable");
        assert!(err.retryable(), "retried by the consumer, then dead-lettered: {err}");
        assert!(matches!(w.handle(other).await, Ok(Applied::Dispatched(_))), "the retry dispatches it");
    }

    pub async fn an_automated_plan_needs_a_service_that_configures_a_rollback<S: ChangeStore + Dedupe>(store: S) {
        let s = Setup::new(store).await;
        let start = t0() + chrono::Duration::hours(1);
        let new = NewChange {
            rollback_plan: Some(RollbackPlan { automated: true }),
            ..NewChange::basic("Roll out", &["payments"], "production", start, start + chrono::Duration::hours(1))
        };
        match s.app.create(&alice(&s.tenant), new).await {
            Err(ChangeError::Invalid(e)) => assert_eq!(e.field, "rollback_plan.automated", "{e:?}"),
            other => panic!("refused: {other:?}"),
        }
    }
}

contract_cases!(
    a_failed_production_deployment_dispatches_the_workflow_once_back_to_the_last_good_sha,
    a_gitlab_rollback_triggers_a_pipeline_with_its_variables,
    without_a_plan_or_a_known_sha_nothing_is_dispatched_and_the_change_says_why,
    a_refused_dispatch_is_recorded_and_fails_the_event,
    an_automated_plan_needs_a_service_that_configures_a_rollback,
);
