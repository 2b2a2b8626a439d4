//! GitHub webhooks → canonical events.
//!
//! The event type is the `X-GitHub-Event` header (the sub-type is the body's
//! `action`); the dedupe key is `X-GitHub-Delivery`, which GitHub keeps on
//! redelivery. Both headers are required. Only the fields the hub uses are
//! read; everything else in the body is ignored.
//!
//! | `X-GitHub-Event` | fact |
//! | --- | --- |
//! | `deployment` (`created`) | Deployment Created |
//! | `deployment_status` | Deployment Status Changed |
//! | `workflow_run` | Workflow Run Changed |
//! | `pull_request` (`opened`, `synchronize`, `reopened`, `edited`, `labeled`, `unlabeled`, `ready_for_review`, `closed`) | Pull Request Changed |
//! | `push` to `refs/heads/<repository.default_branch>` | Default Branch Pushed |
//! | `deployment_protection_rule` (`requested`) | Deployment Gate Requested |
//! | anything else (`ping`, `star`, other actions, other branches, deletions) | ignored |
//!
//! `occurred_at` always comes from the payload, never from a clock (normalizing
//! is pure and replayable): each fact lists the timestamps it accepts, in order
//! of preference, and a payload that carries none of them is rejected with an
//! error naming the first. Real GitHub payloads always carry them.
//!
//! Webhooks must send `application/json`: a form-encoded body (`payload=…`)
//! is rejected with a message saying so.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;
use std::borrow::Cow;

use super::canonical::change_ids;
use super::canonical::{Canonical, Deployment, DeploymentGate, Fact, NormalizeError, Normalized, Origin, ServiceKey};
use super::canonical::{PullRequest, Push, WorkflowRun};
use super::parse_body as parse;
use super::required_header;
use super::support::{Timestamp, first_time, missing, non_empty, nullable};

/// The event type header.
pub const EVENT_HEADER: &str = "X-GitHub-Event";
/// The delivery id header: the same on redelivery, so the dedupe key.
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// The sender's delivery id (the dedupe key).
pub fn delivery_id(headers: &HeaderMap, _body: &[u8]) -> Result<String, NormalizeError> {
    required_header(headers, DELIVERY_HEADER).map(str::to_owned)
}

/// One delivery → canonical events, or Ignored(kind), or a 400-worthy error.
pub fn normalize(headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let event = required_header(headers, EVENT_HEADER)?;
    required_header(headers, DELIVERY_HEADER)?;
    if body.starts_with(b"payload=") {
        return Err(NormalizeError::new(
            "the body is form-encoded (payload=…): set the webhook's content type to application/json",
        ));
    }
    match event {
        "deployment" => deployment(parse(body)?),
        "deployment_status" => deployment_status(parse(body)?),
        "workflow_run" => workflow_run(parse(body)?),
        "pull_request" => pull_request(parse(body)?),
        "push" => push(parse(body)?),
        "deployment_protection_rule" => protection_rule(parse(body)?),
        other => {
            // A valid delivery of a kind the hub does not use (`ping`, `star`...).
            parse::<serde::de::IgnoredAny>(body)?;
            Ok(Normalized::Ignored(other.to_owned()))
        }
    }
}

// ----------------------------------------------------------------------------
// The parts of the payloads the hub reads.

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Account {
    login: Option<String>,
}

#[derive(Deserialize)]
struct HtmlLink {
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentObject {
    id: u64,
    environment: Option<String>,
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    description: Option<String>,
    /// An object, or a string when the deployment was created with one.
    #[serde(default)]
    payload: serde_json::Value,
    /// `deploy` by default; `deploy:rollback` and the like name a rollback.
    task: Option<String>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct DeploymentEvent {
    action: Option<String>,
    deployment: DeploymentObject,
    /// Present when GitHub Actions created the deployment.
    workflow_run: Option<HtmlLink>,
    repository: Repository,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct DeploymentStatusObject {
    state: String,
    environment: Option<String>,
    description: Option<String>,
    target_url: Option<String>,
    log_url: Option<String>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

/// The check run (the job) behind a status GitHub Actions set.
#[derive(Deserialize)]
struct StatusCheckRun {
    name: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct PullNumber {
    number: u64,
}

/// The workflow run behind a status GitHub Actions set.
#[derive(Deserialize)]
struct StatusWorkflowRun {
    #[serde(default, deserialize_with = "nullable")]
    pull_requests: Vec<PullNumber>,
    display_title: Option<String>,
    triggering_actor: Option<Account>,
    actor: Option<Account>,
}

#[derive(Deserialize)]
struct DeploymentStatusEvent {
    deployment_status: DeploymentStatusObject,
    deployment: DeploymentObject,
    /// Present when GitHub Actions set the status.
    check_run: Option<StatusCheckRun>,
    workflow_run: Option<StatusWorkflowRun>,
    repository: Repository,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct WorkflowRunObject {
    id: u64,
    name: Option<String>,
    head_branch: Option<String>,
    head_sha: Option<String>,
    status: String,
    conclusion: Option<String>,
    event: Option<String>,
    html_url: Option<String>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    run_started_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct WorkflowRunEvent {
    workflow_run: WorkflowRunObject,
    repository: Repository,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct PullRequestObject {
    number: u64,
    title: String,
    body: Option<String>,
    html_url: Option<String>,
    merged: Option<bool>,
    merged_at: Option<Timestamp>,
    merge_commit_sha: Option<String>,
    user: Option<Account>,
    head: Option<Branch>,
    base: Option<Branch>,
    #[serde(default, deserialize_with = "nullable")]
    labels: Vec<Label>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: PullRequestObject,
    repository: Repository,
    sender: Option<Account>,
    installation: Option<Installation>,
}

/// The GitHub App installation a webhook came through.
#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct PushRepository {
    full_name: String,
    default_branch: Option<String>,
    /// The legacy name of `default_branch`, still sent in push payloads.
    master_branch: Option<String>,
    /// Epoch seconds in push payloads (an RFC 3339 string elsewhere).
    pushed_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct Commit {
    message: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    deleted: Option<bool>,
    forced: Option<bool>,
    compare: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    commits: Vec<Commit>,
    head_commit: Option<Commit>,
    repository: PushRepository,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct ProtectionRuleEvent {
    action: Option<String>,
    environment: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: Option<String>,
    deployment_callback_url: Option<String>,
    deployment: Option<DeploymentObject>,
    repository: Repository,
    sender: Option<Account>,
    installation: Option<Installation>,
}

fn login(sender: Option<Account>) -> Option<String> {
    non_empty(sender.and_then(|s| s.login))
}

impl DeploymentObject {
    /// The deployment's payload as text, for change ids.
    fn payload_text(&self) -> Option<Cow<'_, str>> {
        match &self.payload {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
            other => Some(Cow::Owned(other.to_string())),
        }
    }

    /// Change ids in `first`, then in the deployment's description, ref and payload.
    fn change_ids_after(&self, first: Option<&str>) -> Vec<String> {
        let payload = self.payload_text();
        change_ids(
            [first, self.description.as_deref(), self.git_ref.as_deref(), payload.as_deref()].into_iter().flatten(),
        )
    }

    /// Whether the deployment says it is a rollback: `rollback: true`, or a
    /// `rollback` label, in its payload, or a task that names a rollback.
    fn marked_rollback(&self) -> bool {
        let flag =
            self.payload.get("rollback").is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
        let labelled = self.payload.get("labels").and_then(|l| l.as_array()).is_some_and(|labels| {
            labels.iter().any(|l| l.as_str().is_some_and(|l| l.eq_ignore_ascii_case("rollback")))
        });
        let task = self.task.as_deref().is_some_and(|t| t.to_ascii_lowercase().contains("rollback"));
        flag || labelled || task
    }

    /// The fact, with the status's description (when there is one) preferred
    /// to the deployment's; change ids come from both descriptions, the ref
    /// and the payload.
    fn fact(&self, repository: &str, environment: &str, state: String, status_description: Option<&str>) -> Deployment {
        Deployment {
            repository: repository.to_owned(),
            deployment_id: self.id.to_string(),
            environment: environment.to_owned(),
            state,
            git_ref: non_empty(self.git_ref.clone()),
            sha: non_empty(self.sha.clone()),
            description: non_empty(status_description.map(str::to_owned))
                .or_else(|| non_empty(self.description.clone())),
            change_ids: self.change_ids_after(status_description),
            job: None,
            log_url: None,
            pull_request: None,
            deployed_by: None,
            rollback: self.marked_rollback(),
        }
    }
}

fn canonical(repository: String, fact: Fact, external_id: String, occurred_at: DateTime<Utc>) -> Canonical {
    Canonical {
        origin: Origin::Github,
        fact,
        external_id,
        occurred_at,
        actor: None,
        environment: None,
        url: None,
        service_key: Some(ServiceKey::Repository(repository)),
    }
}

// ----------------------------------------------------------------------------
// One function per event type.

/// `deployment` (`created`). The link is the workflow run that created the
/// deployment, when Actions did (the deployment itself has no page).
fn deployment(e: DeploymentEvent) -> Result<Normalized, NormalizeError> {
    match e.action.as_deref() {
        Some("created") => {}
        Some(other) => return Ok(Normalized::Ignored(format!("deployment.{other}"))),
        None => return Err(missing("action")),
    }
    let d = &e.deployment;
    let environment = non_empty(d.environment.clone()).ok_or_else(|| missing("deployment.environment"))?;
    let occurred_at = first_time(&[("deployment.created_at", d.created_at), ("deployment.updated_at", d.updated_at)])?;
    let fact = Fact::DeploymentCreated(d.fact(&e.repository.full_name, &environment, "created".into(), None));
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        environment: Some(environment),
        url: non_empty(e.workflow_run.and_then(|r| r.html_url)),
        ..canonical(e.repository.full_name, fact, d.id.to_string(), occurred_at)
    }]))
}

/// `deployment_status`: the state and environment of the status (the
/// environment falls back to the deployment's); linked to the status's
/// target (or log) URL.
fn deployment_status(e: DeploymentStatusEvent) -> Result<Normalized, NormalizeError> {
    let (s, d) = (&e.deployment_status, &e.deployment);
    let environment = non_empty(s.environment.clone())
        .or_else(|| non_empty(d.environment.clone()))
        .ok_or_else(|| missing("deployment_status.environment"))?;
    let occurred_at =
        first_time(&[("deployment_status.updated_at", s.updated_at), ("deployment_status.created_at", s.created_at)])?;
    let mut fact = d.fact(&e.repository.full_name, &environment, s.state.clone(), s.description.as_deref());
    let check_run = e.check_run.as_ref();
    fact.job = check_run.and_then(|c| non_empty(c.name.clone()));
    fact.log_url = non_empty(s.log_url.clone())
        .or_else(|| non_empty(s.target_url.clone()))
        .or_else(|| check_run.and_then(|c| non_empty(c.html_url.clone())));
    if let Some(run) = &e.workflow_run {
        fact.pull_request =
            run.pull_requests.first().map(|p| p.number).or_else(|| merged_pull(run.display_title.as_deref()));
        fact.deployed_by =
            [&run.triggering_actor, &run.actor].into_iter().find_map(|a| non_empty(a.as_ref()?.login.clone()));
    }
    let fact = Fact::DeploymentStatusChanged(fact);
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        environment: Some(environment),
        url: non_empty(s.target_url.clone()).or_else(|| non_empty(s.log_url.clone())),
        ..canonical(e.repository.full_name, fact, d.id.to_string(), occurred_at)
    }]))
}

/// The pull request a merge commit's title names: `Merge pull request #418 from ...`.
fn merged_pull(title: Option<&str>) -> Option<u64> {
    let rest = title?.strip_prefix("Merge pull request #")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `workflow_run` (requested, in_progress, completed).
fn workflow_run(e: WorkflowRunEvent) -> Result<Normalized, NormalizeError> {
    let r = e.workflow_run;
    let occurred_at = first_time(&[
        ("workflow_run.updated_at", r.updated_at),
        ("workflow_run.run_started_at", r.run_started_at),
        ("workflow_run.created_at", r.created_at),
    ])?;
    let fact = Fact::WorkflowRunChanged(WorkflowRun {
        repository: e.repository.full_name.clone(),
        run_id: r.id.to_string(),
        name: non_empty(r.name),
        branch: non_empty(r.head_branch),
        sha: non_empty(r.head_sha),
        status: r.status,
        conclusion: non_empty(r.conclusion),
        trigger: non_empty(r.event),
        failed_job: None,
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        url: non_empty(r.html_url),
        ..canonical(e.repository.full_name, fact, r.id.to_string(), occurred_at)
    }]))
}

/// `pull_request`: opened, synchronize → synchronized, reopened, edited,
/// labeled, unlabeled, ready_for_review, closed → merged or closed; other
/// actions are ignored. `installation` is the GitHub App installation the
/// webhook came through, when one did. `merge_sha` is set
/// only once merged: before that GitHub's `merge_commit_sha` is a test merge.
fn pull_request(e: PullRequestEvent) -> Result<Normalized, NormalizeError> {
    let pr = e.pull_request;
    let merged = pr.merged.unwrap_or(pr.merged_at.is_some());
    let action = match e.action.as_str() {
        "opened" | "reopened" | "edited" | "labeled" | "unlabeled" | "ready_for_review" => e.action.clone(),
        "synchronize" => "synchronized".to_owned(),
        "closed" if merged => "merged".to_owned(),
        "closed" => "closed".to_owned(),
        other => return Ok(Normalized::Ignored(format!("pull_request.{other}"))),
    };
    let occurred_at =
        first_time(&[("pull_request.updated_at", pr.updated_at), ("pull_request.created_at", pr.created_at)])?;
    let (head_branch, head_sha) = pr.head.map_or((None, None), |b| (non_empty(b.git_ref), non_empty(b.sha)));
    let base_branch = pr.base.and_then(|b| non_empty(b.git_ref));
    let labels: Vec<String> = pr.labels.into_iter().map(|l| l.name).collect();
    let texts = [Some(pr.title.as_str()), pr.body.as_deref(), head_branch.as_deref()];
    let ids = change_ids(texts.into_iter().flatten().chain(labels.iter().map(String::as_str)));
    let repository = e.repository.full_name;
    let fact = Fact::PullRequestChanged(PullRequest {
        repository: repository.clone(),
        number: pr.number,
        action,
        title: pr.title,
        merged,
        head_branch,
        base_branch,
        head_sha,
        merge_sha: if merged { non_empty(pr.merge_commit_sha) } else { None },
        author: login(pr.user),
        labels,
        change_ids: ids,
        installation: e.installation.map(|i| i.id),
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        url: non_empty(pr.html_url),
        ..canonical(repository.clone(), fact, format!("{repository}#{}", pr.number), occurred_at)
    }]))
}

/// `push`: only to the default branch, and not a deletion. Dated by the head
/// commit, else the last commit, else the repository's `pushed_at`.
fn push(e: PushEvent) -> Result<Normalized, NormalizeError> {
    if e.deleted == Some(true) {
        return Ok(Normalized::Ignored("push deleting a branch".into()));
    }
    let default_branch = non_empty(e.repository.default_branch.clone())
        .or_else(|| non_empty(e.repository.master_branch.clone()))
        .ok_or_else(|| missing("repository.default_branch"))?;
    if e.git_ref.strip_prefix("refs/heads/") != Some(default_branch.as_str()) {
        return Ok(Normalized::Ignored("push to a non-default branch".into()));
    }
    let occurred_at = first_time(&[
        ("head_commit.timestamp", e.head_commit.as_ref().and_then(|c| c.timestamp)),
        ("commits[].timestamp", e.commits.last().and_then(|c| c.timestamp)),
        ("repository.pushed_at", e.repository.pushed_at),
    ])?;
    let messages = e.commits.iter().chain(e.head_commit.as_ref()).filter_map(|c| c.message.as_deref());
    let repository = e.repository.full_name;
    let fact = Fact::DefaultBranchPushed(Push {
        repository: repository.clone(),
        branch: default_branch,
        before: e.before,
        after: e.after.clone(),
        commit_count: e.commits.len() as u64,
        forced: e.forced.unwrap_or(false),
        change_ids: change_ids(messages),
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        url: non_empty(e.compare),
        ..canonical(repository, fact, e.after, occurred_at)
    }]))
}

/// `deployment_protection_rule` (`requested`): GitHub waits for a decision
/// posted to `deployment_callback_url`. Change ids come from the rule's ref
/// and the deployment's description, ref and payload; dated by the
/// deployment (the request itself carries no timestamp).
fn protection_rule(e: ProtectionRuleEvent) -> Result<Normalized, NormalizeError> {
    match e.action.as_deref() {
        Some("requested") => {}
        Some(other) => return Ok(Normalized::Ignored(format!("deployment_protection_rule.{other}"))),
        None => return Err(missing("action")),
    }
    let d = e.deployment.as_ref();
    let environment = non_empty(e.environment.clone())
        .or_else(|| d.and_then(|d| non_empty(d.environment.clone())))
        .ok_or_else(|| missing("environment"))?;
    let callback_url = non_empty(e.deployment_callback_url).ok_or_else(|| missing("deployment_callback_url"))?;
    let occurred_at = first_time(&[
        ("deployment.updated_at", d.and_then(|d| d.updated_at)),
        ("deployment.created_at", d.and_then(|d| d.created_at)),
    ])?;
    let git_ref = non_empty(e.git_ref).or_else(|| d.and_then(|d| non_empty(d.git_ref.clone())));
    let ids = d.map_or_else(|| change_ids(git_ref.as_deref()), |d| d.change_ids_after(git_ref.as_deref()));
    // The deployment id when there is one; the callback URL is unique per request otherwise.
    let external_id = d.map_or_else(|| callback_url.clone(), |d| d.id.to_string());
    let repository = e.repository.full_name;
    let fact = Fact::DeploymentGateRequested(DeploymentGate {
        repository: repository.clone(),
        environment: environment.clone(),
        git_ref,
        sha: non_empty(e.sha).or_else(|| d.and_then(|d| non_empty(d.sha.clone()))),
        callback_url,
        change_ids: ids,
        installation: e.installation.map(|i| i.id),
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: login(e.sender),
        environment: Some(environment),
        ..canonical(repository, fact, external_id, occurred_at)
    }]))
}

// ----------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::support::testing;
    use super::*;
    use crate::ingest::support::testing::{edited, ymd_hms as at};
    use http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const DEPLOYMENT_CREATED: &[u8] = include_bytes!("../../../events/github/deployment.created.json");
    const PROTECTION_RULE: &[u8] = include_bytes!("../../../events/github/deployment_protection_rule.requested.json");
    const STATUS_FAILURE: &[u8] = include_bytes!("../../../events/github/deployment_status.failure.json");
    const STATUS_SUCCESS: &[u8] = include_bytes!("../../../events/github/deployment_status.success.json");
    const PING: &[u8] = include_bytes!("../../../events/github/ping.json");
    const PR_MERGED: &[u8] = include_bytes!("../../../events/github/pull_request.closed_merged.json");
    const PR_OPENED: &[u8] = include_bytes!("../../../events/github/pull_request.opened.json");
    const PR_SYNCHRONIZE: &[u8] = include_bytes!("../../../events/github/pull_request.synchronize.json");
    const PUSH: &[u8] = include_bytes!("../../../events/github/push.default_branch.json");
    const STAR: &[u8] = include_bytes!("../../../events/github/star.created.json");
    const WORKFLOW_RUN: &[u8] = include_bytes!("../../../events/github/workflow_run.completed.json");

    /// Every sample file with the `X-GitHub-Event` it is sent with.
    const SAMPLES: &[(&str, &[u8])] = &[
        ("deployment", DEPLOYMENT_CREATED),
        ("deployment_protection_rule", PROTECTION_RULE),
        ("deployment_status", STATUS_FAILURE),
        ("deployment_status", STATUS_SUCCESS),
        ("ping", PING),
        ("pull_request", PR_MERGED),
        ("pull_request", PR_OPENED),
        ("pull_request", PR_SYNCHRONIZE),
        ("push", PUSH),
        ("star", STAR),
        ("workflow_run", WORKFLOW_RUN),
    ];

    const SUPPORTED: &[&str] = &[
        "deployment",
        "deployment_status",
        "workflow_run",
        "pull_request",
        "push",
        "deployment_protection_rule",
        "ping",
    ];

    const CHANGE_ID: &str = "3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90";
    const REPO: &str = "acme-corp/checkout-service";
    const MERGE_SHA: &str = "64db262264ce70c5b2b5b871318525461ab8eb77";
    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    fn headers(event: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(EVENT_HEADER, HeaderValue::from_str(event).expect("header value"));
        h.insert(DELIVERY_HEADER, HeaderValue::from_static(DELIVERY));
        h
    }

    /// The one event `body` normalizes to.
    fn one(event: &str, body: &[u8]) -> Canonical {
        match normalize(&headers(event), body) {
            Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn error(event: &str, body: &[u8]) -> NormalizeError {
        normalize(&headers(event), body).expect_err("an error")
    }

    #[test]
    fn every_sample_normalizes() {
        for (event, body) in SAMPLES {
            assert!(normalize(&headers(event), body).is_ok(), "{event}");
        }
    }

    #[test]
    fn created_deployment_becomes_deployment_created() {
        let c = one("deployment", DEPLOYMENT_CREATED);
        let Fact::DeploymentCreated(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(d.repository, REPO);
        assert_eq!(d.deployment_id, "1834567890");
        assert_eq!(d.environment, "production");
        assert_eq!(d.state, "created");
        assert_eq!(d.git_ref.as_deref(), Some("main"));
        assert_eq!(d.sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(d.description, None);
        assert!(d.change_ids.is_empty());
        assert_eq!(c.origin, Origin::Github);
        assert_eq!(c.external_id, "1834567890");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 27, 3));
        assert_eq!(c.actor.as_deref(), Some("github-actions[bot]"));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.url.as_deref(), Some("https://github.com/acme-corp/checkout-service/actions/runs/10987654321"));
        assert_eq!(c.service_key, Some(ServiceKey::Repository(REPO.into())));
    }

    #[test]
    fn deployment_change_ids_come_from_description_ref_and_payload() {
        let other = "01a1fca3-2807-77b8-8313-5a6aafca8d3a";
        let body = edited(DEPLOYMENT_CREATED, |v| {
            v["deployment"]["payload"] = json!({ "change": CHANGE_ID });
            v["deployment"]["description"] = json!(format!("rollout for {other}"));
        });
        let Fact::DeploymentCreated(d) = one("deployment", &body).fact else { panic!() };
        assert_eq!(d.change_ids, vec![other.to_owned(), CHANGE_ID.to_owned()]);

        let body = edited(DEPLOYMENT_CREATED, |v| {
            v["deployment"]["payload"] = json!(format!("change={CHANGE_ID}"));
            v["deployment"]["ref"] = json!(format!("release/{other}"));
        });
        let Fact::DeploymentCreated(d) = one("deployment", &body).fact else { panic!() };
        assert_eq!(d.change_ids, vec![other.to_owned(), CHANGE_ID.to_owned()]);
    }

    #[test]
    fn deployment_actions_other_than_created_are_ignored() {
        let body = edited(DEPLOYMENT_CREATED, |v| v["action"] = json!("deleted"));
        assert_eq!(normalize(&headers("deployment"), &body), Ok(Normalized::Ignored("deployment.deleted".into())));
    }

    #[test]
    fn successful_deployment_status_becomes_status_changed() {
        let c = one("deployment_status", STATUS_SUCCESS);
        let Fact::DeploymentStatusChanged(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(d.state, "success");
        assert_eq!(d.deployment_id, "1834567890");
        assert_eq!(d.environment, "production");
        assert_eq!(d.description.as_deref(), Some("Deployment finished successfully."));
        assert_eq!(c.external_id, "1834567890");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 34, 11));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(
            c.url.as_deref(),
            Some("https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210")
        );
        assert_eq!(c.actor.as_deref(), Some("github-actions[bot]"));
    }

    #[test]
    fn failed_deployment_status_keeps_the_failure_state() {
        let c = one("deployment_status", STATUS_FAILURE);
        let Fact::DeploymentStatusChanged(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(d.state, "failure");
        assert_eq!(d.description.as_deref(), Some("Deployment failed: helm upgrade timed out waiting for rollout"));
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 33, 58));
        // What a post-mortem is drafted from: the check run, the log, the pull request, the person.
        assert_eq!(d.job.as_deref(), Some("deploy-production"));
        let log = "https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210";
        assert_eq!(d.log_url.as_deref(), Some(log));
        assert_eq!(d.pull_request, Some(418), "from the run's merge title");
        assert_eq!(d.deployed_by.as_deref(), Some("raj-acme"), "the run's triggering actor, not the bot");
        assert!(!d.rollback);
    }

    #[test]
    fn a_rollback_flag_label_or_task_in_the_deployment_marks_it() {
        for mark in [
            json!({"payload": {"rollback": true}}),
            json!({"payload": {"labels": ["hotfix", "Rollback"]}}),
            json!({"task": "deploy:rollback"}),
        ] {
            let body = edited(STATUS_FAILURE, |v| {
                for (k, value) in mark.as_object().into_iter().flatten() {
                    v["deployment"][k] = value.clone();
                }
            });
            let Fact::DeploymentStatusChanged(d) = one("deployment_status", &body).fact else { panic!() };
            assert!(d.rollback, "{mark}");
        }
        let body = edited(STATUS_FAILURE, |v| {
            v["deployment"]["payload"] = json!({"rollback": false});
            v["workflow_run"]["pull_requests"] = json!([{"number": 7}]);
        });
        let Fact::DeploymentStatusChanged(d) = one("deployment_status", &body).fact else { panic!() };
        assert!(!d.rollback);
        assert_eq!(d.pull_request, Some(7), "the run's own pull request first");
    }

    #[test]
    fn deployment_status_environment_and_url_fall_back() {
        let body = edited(STATUS_SUCCESS, |v| {
            v["deployment_status"]["environment"] = Value::Null;
            v["deployment"]["environment"] = json!("staging");
            v["deployment_status"]["target_url"] = json!("");
            v["deployment_status"]["log_url"] = json!("https://example.test/log");
        });
        let c = one("deployment_status", &body);
        assert_eq!(c.environment.as_deref(), Some("staging"));
        assert_eq!(c.url.as_deref(), Some("https://example.test/log"));
    }

    #[test]
    fn completed_workflow_run_becomes_workflow_run_changed() {
        let c = one("workflow_run", WORKFLOW_RUN);
        let Fact::WorkflowRunChanged(r) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(r.repository, REPO);
        assert_eq!(r.run_id, "10987654321");
        assert_eq!(r.name.as_deref(), Some("Deploy"));
        assert_eq!(r.branch.as_deref(), Some("main"));
        assert_eq!(r.sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(r.status, "completed");
        assert_eq!(r.conclusion.as_deref(), Some("success"));
        assert_eq!(r.trigger.as_deref(), Some("push"));
        assert_eq!(c.external_id, "10987654321");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 34, 18));
        assert_eq!(c.url.as_deref(), Some("https://github.com/acme-corp/checkout-service/actions/runs/10987654321"));
        assert_eq!(c.actor.as_deref(), Some("raj-acme"));
        assert_eq!(c.environment, None);
    }

    #[test]
    fn opened_pull_request_carries_its_change_id() {
        let c = one("pull_request", PR_OPENED);
        let Fact::PullRequestChanged(pr) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(pr.action, "opened");
        assert_eq!(pr.number, 418);
        assert_eq!(pr.change_ids, vec![CHANGE_ID.to_owned()]);
        assert!(!pr.merged);
        assert_eq!(pr.title, "CHG-1042: Raise checkout-service DB connection pool from 20 to 50");
        assert_eq!(pr.head_branch.as_deref(), Some("chg-1042/raise-db-pool"));
        assert_eq!(pr.base_branch.as_deref(), Some("main"));
        assert_eq!(pr.head_sha.as_deref(), Some("7a24b6fb90f485ed5fb44ac8fe19513ba69a3d5a"));
        assert_eq!(pr.merge_sha, None);
        assert_eq!(pr.author.as_deref(), Some("ana-acme"));
        assert_eq!(pr.labels, vec!["change-managed".to_owned()]);
        assert_eq!(pr.installation, Some(51234567));
        assert_eq!(c.external_id, "acme-corp/checkout-service#418");
        assert_eq!(c.url.as_deref(), Some("https://github.com/acme-corp/checkout-service/pull/418"));
        assert_eq!(c.occurred_at, at(2026, 9, 14, 8, 2, 11));
        assert_eq!(c.actor.as_deref(), Some("ana-acme"));
    }

    #[test]
    fn synchronize_becomes_synchronized() {
        let c = one("pull_request", PR_SYNCHRONIZE);
        let Fact::PullRequestChanged(pr) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(pr.action, "synchronized");
        assert_eq!(pr.head_sha.as_deref(), Some("6da2b0b5fba227b22679d03c77112e6299dd4f67"));
        assert_eq!(c.occurred_at, at(2026, 9, 14, 9, 31, 40));
    }

    #[test]
    fn merged_pull_request_becomes_merged() {
        let c = one("pull_request", PR_MERGED);
        let Fact::PullRequestChanged(pr) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(pr.action, "merged");
        assert!(pr.merged);
        assert_eq!(pr.merge_sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(pr.change_ids, vec![CHANGE_ID.to_owned()]);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 46));
        assert_eq!(c.actor.as_deref(), Some("raj-acme"));
    }

    #[test]
    fn closed_unmerged_pull_request_becomes_closed_without_merge_sha() {
        let body = edited(PR_MERGED, |v| {
            v["pull_request"]["merged"] = json!(false);
            v["pull_request"]["merged_at"] = Value::Null;
        });
        let Fact::PullRequestChanged(pr) = one("pull_request", &body).fact else { panic!() };
        assert_eq!(pr.action, "closed");
        assert!(!pr.merged);
        assert_eq!(pr.merge_sha, None);
    }

    #[test]
    fn reopened_edited_labeled_and_ready_pull_requests_keep_their_action() {
        for action in ["reopened", "edited", "labeled", "unlabeled", "ready_for_review"] {
            let body = edited(PR_OPENED, |v| v["action"] = json!(action));
            let Fact::PullRequestChanged(pr) = one("pull_request", &body).fact else { panic!() };
            assert_eq!(pr.action, action);
        }
    }

    #[test]
    fn other_pull_request_actions_are_ignored() {
        for action in ["assigned", "review_requested", "converted_to_draft"] {
            let body = edited(PR_OPENED, |v| v["action"] = json!(action));
            assert_eq!(
                normalize(&headers("pull_request"), &body),
                Ok(Normalized::Ignored(format!("pull_request.{action}")))
            );
        }
    }

    #[test]
    fn change_ids_are_found_in_head_branch_and_labels() {
        let (a, b) = ("01a1fca3-2807-77b8-8313-5a6aafca8d3a", "9b2e0c4d-1f3a-4b5c-8d6e-7f8091a2b3c4");
        let body = edited(PR_OPENED, |v| {
            v["pull_request"]["title"] = json!("no id");
            v["pull_request"]["body"] = Value::Null;
            v["pull_request"]["head"]["ref"] = json!(format!("feature/{a}"));
            v["pull_request"]["labels"] = json!([{ "name": format!("change:{b}") }]);
        });
        let Fact::PullRequestChanged(pr) = one("pull_request", &body).fact else { panic!() };
        assert_eq!(pr.change_ids, vec![a.to_owned(), b.to_owned()]);
    }

    #[test]
    fn non_ascii_text_next_to_a_change_id_window_does_not_panic() {
        // canonical::change_ids alone panics here: a multi-byte char straddles byte 36.
        let title = format!("{}✓ {CHANGE_ID} ünïcode", "a".repeat(35));
        let body = edited(PR_OPENED, |v| {
            v["pull_request"]["title"] = json!(title);
            v["pull_request"]["body"] = json!("é".repeat(40));
        });
        let Fact::PullRequestChanged(pr) = one("pull_request", &body).fact else { panic!() };
        assert_eq!(pr.change_ids, vec![CHANGE_ID.to_owned()]);
    }

    #[test]
    fn push_to_the_default_branch_becomes_default_branch_pushed() {
        let c = one("push", PUSH);
        let Fact::DefaultBranchPushed(p) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(p.repository, REPO);
        assert_eq!(p.branch, "main");
        assert_eq!(p.before, "bf51095108da09af1f89201cdc1215f331f0f8d2");
        assert_eq!(p.after, MERGE_SHA);
        assert_eq!(p.commit_count, 1);
        assert!(!p.forced);
        assert!(p.change_ids.is_empty());
        assert_eq!(c.external_id, MERGE_SHA);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 46));
        assert_eq!(
            c.url.as_deref(),
            Some("https://github.com/acme-corp/checkout-service/compare/bf51095108da...64db262264ce")
        );
        assert_eq!(c.actor.as_deref(), Some("raj-acme"));
    }

    #[test]
    fn push_change_ids_come_from_commit_messages() {
        let body = edited(PUSH, |v| v["commits"][0]["message"] = json!(format!("fix\n\nChange-Id: {CHANGE_ID}")));
        let Fact::DefaultBranchPushed(p) = one("push", &body).fact else { panic!() };
        assert_eq!(p.change_ids, vec![CHANGE_ID.to_owned()]);
    }

    #[test]
    fn push_without_head_commit_is_dated_by_epoch_pushed_at() {
        let body = edited(PUSH, |v| {
            v["head_commit"] = Value::Null;
            v["commits"] = json!([]);
        });
        let c = one("push", &body);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 47));
        let Fact::DefaultBranchPushed(p) = c.fact else { panic!() };
        assert_eq!(p.commit_count, 0);
    }

    #[test]
    fn push_to_another_branch_is_ignored() {
        for git_ref in ["refs/heads/chg-1042/raise-db-pool", "refs/tags/main", "refs/heads/main-old"] {
            let body = edited(PUSH, |v| v["ref"] = json!(git_ref));
            assert_eq!(
                normalize(&headers("push"), &body),
                Ok(Normalized::Ignored("push to a non-default branch".into())),
                "{git_ref}"
            );
        }
    }

    #[test]
    fn branch_deletion_is_ignored() {
        let body = edited(PUSH, |v| {
            v["deleted"] = json!(true);
            v["after"] = json!("0000000000000000000000000000000000000000");
            v["head_commit"] = Value::Null;
        });
        assert_eq!(normalize(&headers("push"), &body), Ok(Normalized::Ignored("push deleting a branch".into())));
    }

    #[test]
    fn protection_rule_becomes_gate_with_callback_url() {
        let c = one("deployment_protection_rule", PROTECTION_RULE);
        let Fact::DeploymentGateRequested(g) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(g.repository, REPO);
        assert_eq!(g.environment, "production");
        assert_eq!(g.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(g.sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(
            g.callback_url,
            "https://api.github.com/repos/acme-corp/checkout-service/actions/runs/10987654321/deployment_protection_rule"
        );
        assert!(g.change_ids.is_empty());
        assert_eq!(g.installation, Some(51234567), "the callback is posted with this installation's token");
        assert_eq!(c.external_id, "1834567890");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 27, 3));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.actor.as_deref(), Some("raj-acme"));
    }

    #[test]
    fn protection_rule_change_ids_come_from_its_ref() {
        let body = edited(PROTECTION_RULE, |v| v["ref"] = json!(format!("refs/heads/chg/{CHANGE_ID}")));
        let Fact::DeploymentGateRequested(g) = one("deployment_protection_rule", &body).fact else { panic!() };
        assert_eq!(g.change_ids, vec![CHANGE_ID.to_owned()]);
    }

    #[test]
    fn protection_rule_without_callback_url_is_an_error() {
        let body = edited(PROTECTION_RULE, |v| v["deployment_callback_url"] = Value::Null);
        assert_eq!(error("deployment_protection_rule", &body).field.as_deref(), Some("deployment_callback_url"));
    }

    #[test]
    fn ping_and_star_are_ignored() {
        assert_eq!(normalize(&headers("ping"), PING), Ok(Normalized::Ignored("ping".into())));
        assert_eq!(normalize(&headers("star"), STAR), Ok(Normalized::Ignored("star".into())));
        assert_eq!(normalize(&headers("fork"), b"{}"), Ok(Normalized::Ignored("fork".into())));
    }

    #[test]
    fn missing_event_header_is_an_error_naming_it() {
        let mut h = headers("push");
        h.remove(EVENT_HEADER);
        let e = normalize(&h, PUSH).expect_err("an error");
        assert_eq!(e.field.as_deref(), Some(EVENT_HEADER));
    }

    #[test]
    fn missing_delivery_header_is_an_error_naming_it() {
        let mut h = headers("push");
        h.remove(DELIVERY_HEADER);
        assert_eq!(delivery_id(&h, PUSH).expect_err("an error").field.as_deref(), Some(DELIVERY_HEADER));
        assert_eq!(normalize(&h, PUSH).expect_err("an error").field.as_deref(), Some(DELIVERY_HEADER));
    }

    #[test]
    fn delivery_id_is_the_delivery_header() {
        assert_eq!(delivery_id(&headers("push"), PUSH), Ok(DELIVERY.to_owned()));
    }

    #[test]
    fn malformed_json_is_an_error() {
        for event in ["push", "star"] {
            let e = error(event, b"{\"ref\": ");
            assert_eq!(e.field, None);
            assert!(e.message.contains("not valid JSON"), "{}", e.message);
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_an_error() {
        for body in [&b"[]"[..], b"null", b"42", b"\"push\""] {
            let e = error("push", body);
            assert_eq!(e.field, None);
            assert!(e.message.contains("not a JSON object"), "{}", e.message);
        }
    }

    #[test]
    fn form_encoded_body_is_an_error_saying_so() {
        let e = error("push", b"payload=%7B%7D");
        assert!(e.message.contains("application/json"), "{}", e.message);
    }

    #[test]
    fn field_of_the_wrong_type_is_an_error_naming_its_path() {
        let body = edited(PR_OPENED, |v| v["pull_request"]["number"] = json!("418"));
        let e = error("pull_request", &body);
        assert_eq!(e.field.as_deref(), Some("pull_request.number"));
        assert!(e.message.contains("expected u64"), "{}", e.message);

        let body = edited(PR_OPENED, |v| v["pull_request"]["labels"][0]["name"] = json!(7));
        assert_eq!(error("pull_request", &body).field.as_deref(), Some("pull_request.labels[0].name"));

        let body = edited(STATUS_SUCCESS, |v| v["deployment_status"]["updated_at"] = json!("yesterday"));
        assert_eq!(error("deployment_status", &body).field.as_deref(), Some("deployment_status.updated_at"));
    }

    #[test]
    fn missing_required_field_is_an_error_naming_its_path() {
        let body = edited(PR_OPENED, |v| {
            v["pull_request"].as_object_mut().map(|o| o.remove("title"));
        });
        assert_eq!(error("pull_request", &body).field.as_deref(), Some("pull_request.title"));

        let body = edited(WORKFLOW_RUN, |v| {
            v.as_object_mut().map(|o| o.remove("repository"));
        });
        assert_eq!(error("workflow_run", &body).field.as_deref(), Some("repository"));
    }

    #[test]
    fn payload_without_any_timestamp_is_an_error_naming_one() {
        let body = edited(PR_OPENED, |v| {
            v["pull_request"]["updated_at"] = Value::Null;
            v["pull_request"]["created_at"] = Value::Null;
        });
        let e = error("pull_request", &body);
        assert_eq!(e.field.as_deref(), Some("pull_request.updated_at"));
        assert!(e.message.contains("no timestamp"), "{}", e.message);
    }

    #[test]
    fn timestamps_are_read_in_every_vendor_format() {
        let t = at(2026, 9, 14, 10, 21, 46);
        for s in [
            "2026-09-14T10:21:46Z",
            "2026-09-14T10:21:46.000Z",
            "2026-09-14T12:21:46+02:00",
            "2026-09-14 10:21:46 UTC",
            "2026-09-14 10:21:46 +0000",
            "2026-09-14 11:21:46 +0100",
        ] {
            assert_eq!(super::super::support::Timestamp::parse(s).map(|t| t.0), Some(t), "{s}");
        }
        let epoch: super::super::support::Timestamp = serde_json::from_str("1789381306").expect("epoch");
        assert_eq!(epoch.0, t);
        assert!(super::super::support::Timestamp::parse("14/09/2026").is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            event in prop::sample::select(SUPPORTED),
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = normalize(&headers(event), &body);
            let _ = delivery_id(&headers(event), &body);
        }

        #[test]
        fn arbitrary_json_never_panics(event in prop::sample::select(SUPPORTED), body in testing::json()) {
            let _ = normalize(&headers(event), &serde_json::to_vec(&body).unwrap_or_default());
        }

        #[test]
        fn arbitrary_text_in_pull_request_fields_normalizes(
            title in testing::text(),
            body in testing::text(),
            branch in testing::text(),
            label in testing::text(),
        ) {
            let payload = edited(PR_OPENED, |v| {
                v["pull_request"]["title"] = json!(title);
                v["pull_request"]["body"] = json!(body);
                v["pull_request"]["head"]["ref"] = json!(branch);
                v["pull_request"]["labels"][0]["name"] = json!(label);
            });
            let c = one("pull_request", &payload);
            prop_assert!(matches!(c.fact, Fact::PullRequestChanged(_)));
        }

        #[test]
        fn samples_with_one_node_replaced_never_panic(
            sample in prop::sample::select(SAMPLES),
            which in any::<prop::sample::Index>(),
            with in testing::json(),
        ) {
            let (event, body) = sample;
            let _ = normalize(&headers(event), &testing::mutate(body, which, with));
        }
    }
}
