//! The merge gate against a fake GitHub and GitLab API: the commit status
//! `changehub/change` a pull (merge) request gets, set again through the
//! reverse index when its change is decided; the GitHub App's installation
//! tokens; retries after 502 and 429. The reverse index's contract runs on
//! both stores.

use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::{StaticSecrets, parse_document};
use changehub::adapters::scm::{Endpoints, ForgeClient, Retries, Timeouts, base_url};
use changehub::app::Changes;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::DecisionRequest;
use changehub::app::merge_gate::{Applied, MergeGate};
use changehub::domain::approval::Verdict;
use changehub::domain::gate::merge::{CommitState, GitlabMergeGate, MergeGatePolicy};
use changehub::domain::gate::pulls::{Forge, PullRequestRef};
use changehub::domain::{ChangeId, ServiceName, TenantId};
use changehub::ingest::Origin;
use changehub::ingest::canonical::{Detail, PullRequest, ServiceResolution};
use changehub::ports::{CommitStatus, Forges, PullLinkStore, ScmError, SystemClock};
use changehub_tests::fixtures::{self, alice, carol, root, submit_and_approve, to};
use changehub_tests::forge::{
    APP_ID, APP_KEY, Answer, FakeForge, GITLAB_ALREADY_PENDING, LOOKED_UP_INSTALLATION, answer,
};
use changehub_tests::pull_links_contract as contract;
use changehub_tests::{aws, new_change};
use chrono::Utc;
use serde_json::{Value, json};
use std::time::Duration;

use crate::store_contract::{contract_cases, embedded};

contract_cases!(pull_links_are_kept_per_change_and_written_conditionally);

const HEAD: &str = "7a24b6fb90f485ed5fb44ac8fe19513ba69a3d5a";
const REPOSITORY: &str = "acme-corp/checkout-service";
const PUBLIC_URL: &str = "https://changes.example.com";

type Gate = MergeGate<EmbeddedStore, CachedCatalog<EmbeddedStore>, ForgeClient<StaticSecrets>, SystemClock>;

struct World {
    changes: Changes<EmbeddedStore, SystemClock>,
    gate: Gate,
    forge: FakeForge,
    tenant: String,
    _dir: tempfile::TempDir,
}

/// Retries fast enough for a test.
pub(crate) fn quick() -> Retries {
    Retries {
        attempts: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

pub(crate) fn client(forge: &FakeForge, tenant: &str, credentials: Value) -> ForgeClient<StaticSecrets> {
    let document = parse_document(&json!({ tenant: credentials }).to_string()).expect("secrets");
    assert!(document.skipped.is_empty(), "{:?}", document.skipped);
    let url = base_url(&forge.url).expect("url");
    let endpoints = Endpoints { github_api: url.clone(), gitlab: url };
    ForgeClient::new(StaticSecrets::new(document.document), endpoints, Timeouts::default(), quick())
}

pub(crate) fn token_credentials() -> Value {
    json!({"github_api": ["ghp_test"], "gitlab_api": ["glpat_test"]})
}

impl World {
    /// A tenant whose payments service gates merges into main and release/*,
    /// exempting docs, with a token for GitHub and GitLab.
    async fn new(policy: MergeGatePolicy) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let changes = Changes::new(store.clone(), SystemClock);
        let tenant = changehub_tests::unique("acme");
        let mut catalog = fixtures::catalog();
        let payments = ServiceName::parse("payments").expect("service");
        let service = catalog.services.iter_mut().find(|s| s.name == payments).expect("payments in the sample");
        service.merge_gate = Some(policy);
        changes.catalog.replace(&root(&tenant), catalog, None, &changes.clock).await.expect("import the catalog");
        let forge = FakeForge::start().await;
        let gate = MergeGate {
            store,
            catalog: changes.catalog.clone(),
            forges: client(&forge, &tenant, token_credentials()),
            clock: SystemClock,
            public_url: Some(PUBLIC_URL.into()),
        };
        World { changes, gate, forge, tenant, _dir: dir }
    }

    async fn gated() -> World {
        World::new(MergeGatePolicy {
            branches: vec!["main".into(), "release/*".into()],
            exempt_paths: vec![],
            exempt_labels: vec!["docs".into()],
            standard_changes: true,
            gitlab: None,
        })
        .await
    }

    fn tenant_id(&self) -> TenantId {
        TenantId::parse(&self.tenant).expect("tenant")
    }

    /// A payments change drafted by Alice.
    async fn drafted(&self) -> ChangeId {
        let start = Utc::now() + chrono::Duration::days(1);
        let change = new_change("Raise the pool", &["payments"], start, 2);
        self.changes.create(&alice(&self.tenant), change).await.expect("create").id
    }

    /// A submitted payments change.
    async fn submitted(&self) -> ChangeId {
        let id = self.drafted().await;
        let submit = to(changehub::domain::ChangeState::Submitted, 1);
        self.changes.transition(&alice(&self.tenant), &id, submit).await.expect("submit");
        id
    }

    async fn approved(&self) -> ChangeId {
        let id = self.drafted().await;
        submit_and_approve(&self.changes, &self.tenant, &id).await;
        id
    }

    async fn reject(&self, id: &ChangeId) {
        let no = DecisionRequest { decision: Verdict::Reject, version: None, comment: Some("not now".into()) };
        self.changes.decide(&changehub_tests::fixtures::pat(&self.tenant), id, no).await.expect("reject");
    }

    async fn pull_request(&self, pr: PullRequest, origin: Origin) -> Applied {
        let detail = Detail {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant: self.tenant.clone(),
            origin,
            service: Some("payments".into()),
            service_resolution: ServiceResolution { key: None, reason: None },
            environment: None,
            occurred_at: Utc::now(),
            actor: Some("ana-acme".into()),
            external_id: format!("{}#{}", pr.repository, pr.number),
            url: None,
            delivery_id: "d-1".into(),
            data: pr,
        };
        let detail = serde_json::to_value(detail).expect("detail");
        self.gate.handle("Pull Request Changed", &detail).await.expect("handled")
    }

    async fn change_event(&self, detail_type: &str, id: &ChangeId) -> Applied {
        let detail = json!({"tenant": self.tenant, "change_id": id, "event_id": format!("{id}-9")});
        self.gate.handle(detail_type, &detail).await.expect("handled")
    }

    /// The (state, description) of the statuses set, in order.
    fn states(&self) -> Vec<(String, String)> {
        self.forge.statuses().into_iter().map(|(_, state, description)| (state, description)).collect()
    }
}

fn pr(number: u64, action: &str, changes: &[&ChangeId]) -> PullRequest {
    PullRequest {
        repository: REPOSITORY.into(),
        number,
        action: action.into(),
        title: "Raise checkout-service DB connection pool".into(),
        merged: action == "merged",
        head_branch: Some("raise-db-pool".into()),
        base_branch: Some("main".into()),
        head_sha: Some(HEAD.into()),
        merge_sha: None,
        author: Some("ana-acme".into()),
        labels: vec![],
        change_ids: changes.iter().map(|c| c.to_string()).collect(),
        installation: None,
    }
}

#[tokio::test]
async fn a_request_without_a_change_is_pending_with_a_link_to_open_one() {
    let w = World::gated().await;
    let applied = w.pull_request(pr(418, "opened", &[]), Origin::Github).await;
    assert!(matches!(applied, Applied::Set(ref set) if set.len() == 1), "{applied:?}");
    let calls = w.forge.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", &*format!("/repos/{REPOSITORY}/statuses/{HEAD}")));
    assert_eq!(call.auth.as_deref(), Some("Bearer ghp_test"));
    assert_eq!(call.body["context"], "changehub/change");
    assert_eq!(call.body["state"], "pending");
    assert_eq!(call.body["target_url"], format!("{PUBLIC_URL}/changes"));
    assert!(call.body["description"].as_str().is_some_and(|d| d.starts_with("No change referenced")), "{call:?}");
}

#[tokio::test]
async fn a_request_linked_to_an_approved_change_passes_and_links_to_it() {
    let w = World::gated().await;
    let id = w.approved().await;
    w.pull_request(pr(418, "opened", &[&id]), Origin::Github).await;
    let calls = w.forge.calls_to("/statuses/");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["state"], "success");
    assert_eq!(calls[0].body["target_url"], format!("{PUBLIC_URL}/changes/{id}"));
}

#[tokio::test]
async fn a_change_approved_later_flips_every_linked_request_through_the_reverse_index() {
    let w = World::gated().await;
    let id = w.submitted().await;
    w.pull_request(pr(418, "opened", &[&id]), Origin::Github).await;
    w.pull_request(pr(419, "opened", &[&id]), Origin::Github).await;
    assert_eq!(w.states().iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["pending", "pending"]);
    let links = w.gate.store.get_pull_links(&w.tenant_id(), &id).await.expect("read").expect("linked");
    assert_eq!(links.pulls.iter().map(|p| p.pull.number).collect::<Vec<_>>(), [418, 419]);

    w.forge.forget();
    let pat = changehub_tests::fixtures::pat(&w.tenant);
    w.changes.decide(&pat, &id, fixtures::approve()).await.expect("level 1");
    w.changes.decide(&carol(&w.tenant), &id, fixtures::approve()).await.expect("level 2");
    let applied = w.change_event("Change Approved", &id).await;
    assert!(matches!(applied, Applied::Set(ref set) if set.len() == 2), "{applied:?}");
    let statuses = w.forge.statuses();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.iter().all(|(path, state, _)| state == "success" && path.ends_with(HEAD)), "{statuses:?}");

    // A merged request leaves the index; the other stays.
    assert_eq!(w.pull_request(pr(418, "merged", &[&id]), Origin::Github).await, Applied::Unlinked);
    let links = w.gate.store.get_pull_links(&w.tenant_id(), &id).await.expect("read").expect("linked");
    assert_eq!(links.pulls.iter().map(|p| p.pull.number).collect::<Vec<_>>(), [419]);
}

#[tokio::test]
async fn a_rejected_change_fails_its_requests() {
    let w = World::gated().await;
    let id = w.submitted().await;
    w.pull_request(pr(418, "opened", &[&id]), Origin::Github).await;
    w.reject(&id).await;
    w.change_event("Change Rejected", &id).await;
    let states = w.states();
    assert_eq!(states.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["pending", "failure"]);
    assert!(states[1].1.contains("rejected"), "{states:?}");
}

#[tokio::test]
async fn exempt_labels_and_paths_pass_without_a_change_and_ungated_branches_get_no_status() {
    let w = World::new(MergeGatePolicy {
        branches: vec!["main".into()],
        exempt_paths: vec!["docs/**".into(), "*.md".into()],
        exempt_labels: vec!["docs".into()],
        standard_changes: true,
        gitlab: None,
    })
    .await;
    let labelled = PullRequest { labels: vec!["docs".into()], ..pr(1, "labeled", &[]) };
    w.pull_request(labelled, Origin::Github).await;
    assert!(w.forge.calls_to("/files").is_empty(), "a label decides without reading the files");
    w.forge.files(&["docs/runbook.md", "README.md"]);
    w.pull_request(pr(2, "opened", &[]), Origin::Github).await;
    let files = w.forge.calls_to("/files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, format!("/repos/{REPOSITORY}/pulls/2/files?per_page=100"));
    w.forge.files(&["docs/runbook.md", "src/pool.rs"]);
    w.pull_request(pr(3, "synchronized", &[]), Origin::Github).await;
    let states: Vec<String> = w.states().into_iter().map(|(s, _)| s).collect();
    assert_eq!(states, ["success", "success", "pending"]);

    w.forge.forget();
    let elsewhere = PullRequest { base_branch: Some("develop".into()), ..pr(4, "opened", &[]) };
    assert!(matches!(w.pull_request(elsewhere, Origin::Github).await, Applied::Skipped(_)));
    assert!(w.forge.calls().is_empty(), "an ungated base branch gets no status");
}

#[tokio::test]
async fn a_service_without_a_policy_is_not_gated() {
    let w = World::gated().await;
    let mut ledger = pr(1, "opened", &[]);
    ledger.repository = "acme-corp/ledger".into();
    let applied = w
        .gate
        .handle(
            "Pull Request Changed",
            &serde_json::to_value(Detail {
                event_id: "e".into(),
                tenant: w.tenant.clone(),
                origin: Origin::Github,
                service: Some("ledger".into()),
                service_resolution: ServiceResolution { key: None, reason: None },
                environment: None,
                occurred_at: Utc::now(),
                actor: None,
                external_id: "x".into(),
                url: None,
                delivery_id: "d".into(),
                data: ledger,
            })
            .expect("detail"),
        )
        .await
        .expect("handled");
    assert!(matches!(applied, Applied::Skipped(ref why) if why.contains("no merge_gate policy")), "{applied:?}");
    assert!(w.forge.calls().is_empty());
}

#[tokio::test]
async fn a_gitlab_merge_request_gets_a_commit_status_with_the_private_token() {
    let w = World::gated().await;
    let id = w.submitted().await;
    let mut mr = pr(233, "opened", &[&id]);
    mr.repository = "platform/checkout-service".into();
    w.pull_request(mr, Origin::Gitlab).await;
    w.reject(&id).await;
    w.change_event("Change Rejected", &id).await;
    let calls = w.forge.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call.path, format!("/api/v4/projects/platform%2Fcheckout-service/statuses/{HEAD}"));
        assert_eq!(call.auth.as_deref(), Some("glpat_test"));
        assert_eq!(call.body["name"], "changehub/change");
    }
    assert_eq!((calls[0].body["state"].as_str(), calls[1].body["state"].as_str()), (Some("pending"), Some("failed")));
}

fn pull(installation: Option<u64>) -> PullRequestRef {
    PullRequestRef {
        forge: Forge::Github,
        repository: REPOSITORY.into(),
        number: 7,
        head_sha: HEAD.into(),
        installation,
    }
}

fn status() -> CommitStatus {
    CommitStatus {
        state: CommitState::Pending,
        description: "waits".into(),
        target_url: None,
        gitlab_status_check: None,
    }
}

#[tokio::test]
async fn a_github_app_exchanges_its_jwt_for_an_installation_token_kept_until_near_expiry() {
    let forge = FakeForge::start().await;
    let tenant = changehub_tests::unique("acme");
    let client = client(&forge, &tenant, json!({"github_app_id": [APP_ID], "github_app_key": [APP_KEY]}));
    let tenant = TenantId::parse(&tenant).expect("tenant");
    // Five calls at once: one exchange, the others wait for its token.
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (client, tenant) = (client.clone(), tenant.clone());
            tokio::spawn(async move { client.set_status(&tenant, &pull(Some(51234567)), &status()).await })
        })
        .collect();
    for call in calls {
        call.await.expect("joined").expect("status set");
    }
    assert_eq!(forge.issued(), 1);
    let exchanges = forge.calls_to("/access_tokens");
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].path, "/app/installations/51234567/access_tokens");
    assert!(exchanges[0].by_jwt(), "the exchange is authorized by the App's JWT: {:?}", exchanges[0]);
    let statuses = forge.calls_to("/statuses/");
    assert_eq!(statuses.len(), 5);
    assert!(statuses.iter().all(|c| c.auth.as_deref() == Some("Bearer ghs_51234567_1")), "{statuses:?}");

    // A token within minutes of its expiry is exchanged again.
    forge.token_ttl(chrono::Duration::minutes(4));
    client.set_status(&tenant, &pull(Some(7)), &status()).await.expect("another installation");
    client.set_status(&tenant, &pull(Some(7)), &status()).await.expect("near expiry");
    assert_eq!(forge.issued(), 3, "the near-expiry token was not kept");
    let last = forge.calls_to("/statuses/").pop().expect("a status");
    assert_eq!(last.auth.as_deref(), Some("Bearer ghs_7_3"));
}

#[tokio::test]
async fn a_webhook_without_an_installation_has_it_looked_up_with_the_jwt() {
    let forge = FakeForge::start().await;
    let tenant = changehub_tests::unique("acme");
    let client = client(&forge, &tenant, json!({"github_app_id": [APP_ID], "github_app_key": [APP_KEY]}));
    let tenant = TenantId::parse(&tenant).expect("tenant");
    client.set_status(&tenant, &pull(None), &status()).await.expect("status set");
    let paths: Vec<String> = forge.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            format!("/repos/{REPOSITORY}/installation"),
            format!("/app/installations/{LOOKED_UP_INSTALLATION}/access_tokens"),
            format!("/repos/{REPOSITORY}/statuses/{HEAD}"),
        ]
    );
}

#[tokio::test]
async fn statuses_are_retried_after_502_and_after_429_as_retry_after_asks() {
    let forge = FakeForge::start().await;
    let tenant = changehub_tests::unique("acme");
    let client = client(&forge, &tenant, token_credentials());
    let tenant = TenantId::parse(&tenant).expect("tenant");
    let limited = Answer { retry_after: Some("1"), ..answer(429) };
    forge.fail_next([answer(502), limited]);
    let started = std::time::Instant::now();
    client.set_status(&tenant, &pull(None), &status()).await.expect("set on the third attempt");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as Retry-After asked");
    let calls = forge.calls_to("/statuses/");
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c == &calls[0]), "the same request each time: {calls:?}");

    forge.fail_next([answer(502), answer(502), answer(502)]);
    let e = client.set_status(&tenant, &pull(None), &status()).await.expect_err("502 every time");
    assert!(matches!(e, ScmError::Unavailable { status: 502, attempts: 3, .. }) && e.is_retryable(), "{e:?}");
    forge.fail_next([answer(403)]);
    let e = client.set_status(&tenant, &pull(None), &status()).await.expect_err("refused");
    assert!(matches!(e, ScmError::Refused { status: 403, .. }) && !e.is_retryable(), "{e:?}");
    let none = client.set_status(&TenantId::parse("other").expect("tenant"), &pull(None), &status()).await;
    assert!(matches!(none, Err(ScmError::NoCredentials { .. })), "{none:?}");
}

#[tokio::test]
async fn gitlab_refusing_a_pending_status_that_is_already_pending_counts_as_set_and_is_not_retried() {
    let w = World::gated().await;
    let id = w.submitted().await;
    let mut mr = pr(233, "open", &[&id]);
    mr.repository = "platform/checkout-service".into();
    w.pull_request(mr.clone(), Origin::Gitlab).await;
    // The title edited: pending again on the same sha, which GitLab refuses with its own 400.
    let again = w.pull_request(PullRequest { action: "update".into(), ..mr }, Origin::Gitlab).await;
    assert!(matches!(again, Applied::Set(ref set) if set.len() == 1), "{again:?}");
    let calls = w.forge.calls_to("/statuses/");
    assert_eq!(calls.len(), 2, "the 400 is not retried: {calls:?}");
    assert_eq!(calls[0], calls[1], "the same request twice");
    // Another refusal stays one.
    let pull = PullRequestRef { forge: Forge::Gitlab, ..pull(None) };
    w.forge.fail_next([answer(400)]);
    let e = w.gate.forges.set_status(&w.tenant_id(), &pull, &status()).await.expect_err("refused");
    assert!(matches!(e, ScmError::Refused { status: 400, .. }), "{e:?}");
    assert!(GITLAB_ALREADY_PENDING.contains("Cannot transition status via :enqueue from :pending"));
}

#[tokio::test]
async fn a_gitlab_project_with_an_external_status_check_gets_its_responses_not_a_commit_status() {
    let w = World::new(MergeGatePolicy {
        gitlab: Some(GitlabMergeGate { status_check_id: 42 }),
        ..MergeGatePolicy::default()
    })
    .await;
    let id = w.submitted().await;
    let mut mr = pr(233, "open", &[&id]);
    mr.repository = "platform/checkout-service".into();
    w.pull_request(mr, Origin::Gitlab).await;
    let pat = changehub_tests::fixtures::pat(&w.tenant);
    w.changes.decide(&pat, &id, fixtures::approve()).await.expect("level 1");
    w.changes.decide(&carol(&w.tenant), &id, fixtures::approve()).await.expect("level 2");
    w.change_event("Change Approved", &id).await;
    let calls = w.forge.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (call, answer) in calls.iter().zip(["pending", "passed"]) {
        assert_eq!(call.method, axum::http::Method::POST);
        assert_eq!(call.path, "/api/v4/projects/platform%2Fcheckout-service/merge_requests/233/status_check_responses");
        assert_eq!(call.auth.as_deref(), Some("glpat_test"));
        assert_eq!(call.body, json!({"sha": HEAD, "external_status_check_id": 42, "status": answer}));
    }
    // A GitHub request of the same service still gets its commit status.
    w.forge.forget();
    w.pull_request(pr(418, "opened", &[&id]), Origin::Github).await;
    assert_eq!(w.forge.statuses().len(), 1);
}

#[tokio::test]
async fn gitlab_statuses_are_the_exact_request_and_are_retried_after_429_as_retry_after_asks() {
    let forge = FakeForge::start().await;
    let tenant = changehub_tests::unique("acme");
    let client = client(&forge, &tenant, token_credentials());
    let tenant = TenantId::parse(&tenant).expect("tenant");
    let pull = PullRequestRef { forge: Forge::Gitlab, repository: "platform/checkout-service".into(), ..pull(None) };
    let failing = CommitStatus {
        state: CommitState::Failure,
        description: "Change 1 was rejected; open a new change".into(),
        target_url: Some(format!("{PUBLIC_URL}/changes/1")),
        gitlab_status_check: None,
    };
    forge.fail_next([Answer { retry_after: Some("1"), ..answer(429) }]);
    let started = std::time::Instant::now();
    client.set_status(&tenant, &pull, &failing).await.expect("set on the second attempt");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as Retry-After asked");
    let calls = forge.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], calls[1], "the same request each time");
    assert_eq!(calls[0].method, axum::http::Method::POST);
    assert_eq!(calls[0].path, format!("/api/v4/projects/platform%2Fcheckout-service/statuses/{HEAD}"));
    assert_eq!(calls[0].auth.as_deref(), Some("glpat_test"));
    assert_eq!(
        calls[0].body,
        json!({
            "state": "failed",
            "description": "Change 1 was rejected; open a new change",
            "name": "changehub/change",
            "target_url": format!("{PUBLIC_URL}/changes/1"),
        })
    );
}

/// The README's table of what a developer sees on a pull request holds every
/// description the gate writes, exactly as it writes it (`<id>`, `<service>`,
/// `<title>`, `<label>` standing for the values), on the row of its status.
#[test]
fn the_readme_shows_the_status_lines_exactly_as_the_gate_writes_them() {
    use changehub::domain::approval::{ApprovalPlan, Decision};
    use changehub::domain::gate::merge::decide;
    use changehub::domain::{Change, ChangeState, ChangeType, NewChange};
    const TITLE: &str = "Raise the pool";
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("**What a developer sees on a pull request.**")
        .nth(1)
        .and_then(|rest| rest.split("####").next())
        .expect("README: the merge gate's 'What a developer sees on a pull request.'");
    let payments = ServiceName::parse("payments").expect("service");
    let at = Utc::now();
    let change = |state: ChangeState, service: &str, change_type: ChangeType| -> Change {
        let mut c = NewChange::basic(TITLE, &[service], "production", at, at + chrono::Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), at);
        c.state = state;
        c.change_type = change_type;
        c
    };
    let open = MergeGatePolicy::default();
    let strict = MergeGatePolicy { standard_changes: false, ..MergeGatePolicy::default() };
    let one = |policy: &MergeGatePolicy, c: Change| {
        let d = decide(&payments, policy, &[c.id], std::slice::from_ref(&c));
        (d.state, d.description.replace(&c.id.to_string(), "<id>"))
    };
    let mut rejected = change(ChangeState::Rejected, "payments", ChangeType::Normal);
    let rejection = Decision {
        by: "<rejecter>".into(),
        group: None,
        at,
        comment: Some("<their comment>".into()),
        on_behalf_of: None,
    };
    rejected.approval = Some(ApprovalPlan { rejected: Some(rejection), ..ApprovalPlan::default() });
    let missing = ChangeId::new();
    let mut shown = vec![
        one(&open, change(ChangeState::Approved, "payments", ChangeType::Normal)),
        one(&open, change(ChangeState::Draft, "payments", ChangeType::Normal)),
        one(&open, change(ChangeState::Submitted, "payments", ChangeType::Normal)),
        one(&open, change(ChangeState::Approved, "ledger", ChangeType::Normal)),
        one(&strict, change(ChangeState::Approved, "payments", ChangeType::Standard)),
        one(&open, change(ChangeState::Completed, "payments", ChangeType::Normal)),
        one(&open, rejected),
        one(&open, change(ChangeState::Cancelled, "payments", ChangeType::Normal)),
    ];
    let none = decide(&payments, &open, &[], &[]);
    let not_found = decide(&payments, &open, &[missing], &[]);
    shown.push((none.state, none.description));
    shown.push((not_found.state, not_found.description.replace(&missing.to_string(), "<id>")));
    let exempt = MergeGatePolicy {
        exempt_labels: vec!["docs".into()],
        exempt_paths: vec!["docs/**".into(), "*.md".into()],
        ..MergeGatePolicy::default()
    };
    let labelled = exempt.exemption(&["docs".into()], None).expect("labelled");
    let only = exempt.exemption(&[], Some(&["docs/a.md".to_owned()])).expect("exempt paths");
    shown.push((CommitState::Success, labelled.replace("docs", "<label>")));
    shown.push((CommitState::Success, only.replace("docs/**, *.md", "<exempt_paths, comma separated>")));
    for (state, description) in shown {
        let description = description.replace(TITLE, "<title>").replace("payments", "<service>");
        let row = section
            .lines()
            .find(|l| l.contains(&format!("`{description}`")))
            .unwrap_or_else(|| panic!("README does not show `{description}` ({})", state.as_str()));
        let badge = match state {
            CommitState::Success => "| ✅ success |",
            CommitState::Pending => "| ⏳ pending |",
            CommitState::Failure => "| ❌ failure |",
        };
        assert!(row.starts_with(badge), "README shows `{description}` on another status's row: {row}");
    }
}
