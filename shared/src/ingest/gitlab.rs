//! GitLab webhooks → canonical events.
//!
//! The event type is the `X-Gitlab-Event` header. The dedupe key is the
//! `Idempotency-Key` header (GitLab 17.4+, kept across retries and manual
//! resends), else `X-Gitlab-Event-UUID` (14.8+); one of them is required.
//! Only the fields the hub uses are read.
//!
//! | `X-Gitlab-Event` | fact |
//! | --- | --- |
//! | `Deployment Hook` | Deployment Status Changed |
//! | `Merge Request Hook` (`open`, `update`, `reopen`, `close`, `merge`) | Pull Request Changed |
//! | `Push Hook` to `refs/heads/<project.default_branch>` | Default Branch Pushed |
//! | `Pipeline Hook` | Workflow Run Changed |
//! | anything else (other hooks, approvals, other branches, deletions) | ignored |
//!
//! Vocabulary is mapped onto the canonical one where GitLab's differs:
//! deployment status `failed` → `failure`; a finished pipeline's conclusion
//! `success`, `failure` (`failed`), `cancelled` (`canceled`) or `skipped`.
//!
//! `occurred_at` comes from the payload, never from a clock: a deployment's
//! `status_changed_at`, a merge request's `updated_at` (else `created_at`), a
//! pipeline's `finished_at` (else `created_at`), a push's head commit. A push
//! with no commit at all (the branch reset to an older commit) carries no
//! timestamp: it is ignored as `push without commits` rather than refused,
//! since GitLab disables hooks that keep failing. Any other payload without
//! its timestamps is refused with an error naming the field.

use http::HeaderMap;
use serde::Deserialize;

use super::canonical::WorkflowRun;
use super::canonical::change_ids;
use super::canonical::{
    Canonical, Deployment, Fact, NormalizeError, Normalized, Origin, PullRequest, Push, ServiceKey,
};
use super::parse_body as parse;
use super::support::{Timestamp, first_time, missing, non_empty, nullable};
use super::{header, required_header};

/// The event type header (`Push Hook`, `Merge Request Hook`...).
pub const EVENT_HEADER: &str = "X-Gitlab-Event";
/// The delivery id header, the same across retries (GitLab 17.4+).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The older per-event id, used when `Idempotency-Key` is absent.
pub const EVENT_UUID: &str = "X-Gitlab-Event-UUID";

/// The `after` of a push that deletes a branch.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The sender's delivery id (the dedupe key).
pub fn delivery_id(headers: &HeaderMap, _body: &[u8]) -> Result<String, NormalizeError> {
    header(headers, IDEMPOTENCY_KEY).or_else(|| header(headers, EVENT_UUID)).map(str::to_owned).ok_or_else(|| {
        NormalizeError::field(
            IDEMPOTENCY_KEY,
            format!("the {IDEMPOTENCY_KEY} header is missing (and so is {EVENT_UUID}, its fallback)"),
        )
    })
}

/// One delivery → canonical events, or Ignored(kind), or a 400-worthy error.
pub fn normalize(headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let event = required_header(headers, EVENT_HEADER)?;
    delivery_id(headers, body)?;
    match event {
        "Deployment Hook" => deployment(parse(body)?),
        "Merge Request Hook" => merge_request(parse(body)?),
        "Push Hook" => push(parse(body)?),
        "Pipeline Hook" => pipeline(parse(body)?),
        other => {
            // A valid delivery of a kind the hub does not use.
            parse::<serde::de::IgnoredAny>(body)?;
            Ok(Normalized::Ignored(other.to_owned()))
        }
    }
}

// ----------------------------------------------------------------------------
// The parts of the payloads the hub reads.

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct User {
    username: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentHook {
    status: String,
    status_changed_at: Option<Timestamp>,
    deployment_id: u64,
    /// The job that deploys.
    deployable_id: Option<u64>,
    deployable_url: Option<String>,
    environment: String,
    /// Sent by recent GitLab versions only.
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    short_sha: Option<String>,
    commit_url: Option<String>,
    commit_title: Option<String>,
    project: Project,
    user: Option<User>,
}

#[derive(Deserialize)]
struct Label {
    title: String,
}

#[derive(Deserialize)]
struct LastCommit {
    id: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequestAttributes {
    iid: u64,
    action: Option<String>,
    title: String,
    description: Option<String>,
    source_branch: Option<String>,
    target_branch: Option<String>,
    state: Option<String>,
    merge_commit_sha: Option<String>,
    last_commit: Option<LastCommit>,
    /// Present on `update` when the update pushed commits.
    oldrev: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: Vec<Label>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct MergeRequestHook {
    object_attributes: MergeRequestAttributes,
    /// The same labels; older GitLab versions send them only here.
    #[serde(default, deserialize_with = "nullable")]
    labels: Vec<Label>,
    project: Project,
    user: Option<User>,
}

#[derive(Deserialize)]
struct Commit {
    id: Option<String>,
    message: Option<String>,
    timestamp: Option<Timestamp>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct PushHook {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    user_username: Option<String>,
    project: Project,
    /// At most 20 commits; `total_commits_count` has the real number.
    #[serde(default, deserialize_with = "nullable")]
    commits: Vec<Commit>,
    total_commits_count: Option<u64>,
}

#[derive(Deserialize)]
struct PipelineAttributes {
    id: u64,
    name: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    tag: Option<bool>,
    sha: Option<String>,
    source: Option<String>,
    status: String,
    url: Option<String>,
    created_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

/// One job of a pipeline.
#[derive(Deserialize)]
struct Build {
    name: Option<String>,
    stage: Option<String>,
    status: Option<String>,
    failure_reason: Option<String>,
    #[serde(default)]
    allow_failure: bool,
}

impl Build {
    /// `deploy-production (stage deploy): script_failure`, for a failed job.
    fn failed(&self) -> Option<String> {
        if self.allow_failure || self.status.as_deref() != Some("failed") {
            return None;
        }
        let name = non_empty(self.name.clone())?;
        let stage = non_empty(self.stage.clone()).map(|s| format!(" (stage {s})")).unwrap_or_default();
        let reason = non_empty(self.failure_reason.clone()).map(|r| format!(": {r}")).unwrap_or_default();
        Some(format!("{name}{stage}{reason}"))
    }
}

#[derive(Deserialize)]
struct PipelineHook {
    object_attributes: PipelineAttributes,
    #[serde(default, deserialize_with = "nullable")]
    builds: Vec<Build>,
    project: Project,
    user: Option<User>,
}

fn username(user: Option<User>) -> Option<String> {
    non_empty(user.and_then(|u| u.username))
}

fn canonical(
    project: Project,
    fact: Fact,
    external_id: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
) -> Canonical {
    Canonical {
        origin: Origin::Gitlab,
        fact,
        external_id,
        occurred_at,
        actor: None,
        environment: None,
        url: None,
        service_key: Some(ServiceKey::Repository(project.path_with_namespace)),
    }
}

// ----------------------------------------------------------------------------
// One function per hook.

/// The full commit sha: the last segment of `commit_url`, when it is hex
/// and agrees with `short_sha`; else `short_sha` (the hook has no full sha).
fn deployed_sha(commit_url: Option<&str>, short_sha: Option<String>) -> Option<String> {
    let short_sha = non_empty(short_sha);
    let tail = commit_url.and_then(|u| u.trim_end_matches('/').rsplit('/').next()).unwrap_or_default();
    let full = tail.len() >= 7
        && tail.bytes().all(|b| b.is_ascii_hexdigit())
        && short_sha.as_deref().is_none_or(|s| tail.starts_with(s));
    if full { Some(tail.to_owned()) } else { short_sha }
}

/// `Deployment Hook`: GitLab's status (`running`, `success`, `failed` →
/// `failure`, `canceled`), linked to the deploying job. Change ids come from
/// the ref and the deployed commit's title.
fn deployment(h: DeploymentHook) -> Result<Normalized, NormalizeError> {
    let occurred_at = first_time(&[("status_changed_at", h.status_changed_at)])?;
    let environment = non_empty(Some(h.environment)).ok_or_else(|| missing("environment"))?;
    let state = match h.status.as_str() {
        "failed" => "failure".to_owned(),
        _ => h.status,
    };
    let git_ref = non_empty(h.git_ref);
    let fact = Fact::DeploymentStatusChanged(Deployment {
        repository: h.project.path_with_namespace.clone(),
        deployment_id: h.deployment_id.to_string(),
        environment: environment.clone(),
        state,
        change_ids: change_ids([git_ref.as_deref(), h.commit_title.as_deref()].into_iter().flatten()),
        git_ref,
        sha: deployed_sha(h.commit_url.as_deref(), h.short_sha),
        description: None,
        job: h.deployable_id.map(|id| format!("job {id}")),
        log_url: non_empty(h.deployable_url.clone()),
        pull_request: None,
        deployed_by: None,
        rollback: false,
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: username(h.user),
        environment: Some(environment),
        url: non_empty(h.deployable_url),
        ..canonical(h.project, fact, h.deployment_id.to_string(), occurred_at)
    }]))
}

/// `Merge Request Hook`: open → opened, update → synchronized (new commits,
/// `oldrev` present) or edited, reopen → reopened, close → closed, merge →
/// merged; approvals and other actions are ignored. The external id is
/// GitLab's own reference, `group/project!iid`. The hook names the author
/// only by id, so `author` is known only when the actor opened it.
fn merge_request(h: MergeRequestHook) -> Result<Normalized, NormalizeError> {
    let mr = h.object_attributes;
    let action = match mr.action.as_deref() {
        Some("open") => "opened",
        Some("update") if non_empty(mr.oldrev.clone()).is_some() => "synchronized",
        Some("update") => "edited",
        Some("reopen") => "reopened",
        Some("close") => "closed",
        Some("merge") => "merged",
        Some(other) => return Ok(Normalized::Ignored(format!("merge_request.{other}"))),
        None => return Err(missing("object_attributes.action")),
    };
    let occurred_at = first_time(&[
        ("object_attributes.updated_at", mr.updated_at),
        ("object_attributes.created_at", mr.created_at),
    ])?;
    let merged = action == "merged" || mr.state.as_deref() == Some("merged");
    let labels: Vec<String> =
        if mr.labels.is_empty() { h.labels } else { mr.labels }.into_iter().map(|l| l.title).collect();
    let head_branch = non_empty(mr.source_branch);
    let texts = [Some(mr.title.as_str()), mr.description.as_deref(), head_branch.as_deref()];
    let ids = change_ids(texts.into_iter().flatten().chain(labels.iter().map(String::as_str)));
    let actor = username(h.user);
    let repository = h.project.path_with_namespace.clone();
    let external_id = format!("{repository}!{}", mr.iid);
    let fact = Fact::PullRequestChanged(PullRequest {
        repository,
        number: mr.iid,
        action: action.to_owned(),
        title: mr.title,
        merged,
        head_branch,
        base_branch: non_empty(mr.target_branch),
        head_sha: non_empty(mr.last_commit.and_then(|c| c.id)),
        merge_sha: if merged { non_empty(mr.merge_commit_sha) } else { None },
        author: if action == "opened" { actor.clone() } else { None },
        labels,
        change_ids: ids,
        installation: None,
    });
    Ok(Normalized::Events(vec![Canonical {
        actor,
        url: non_empty(mr.url),
        ..canonical(h.project, fact, external_id, occurred_at)
    }]))
}

/// `Push Hook`: only to the default branch, and not a deletion. Dated and
/// linked by the pushed head commit (the one whose id is `after`, else the
/// last listed). GitLab does not say whether a push was forced: `forced` is
/// false.
fn push(h: PushHook) -> Result<Normalized, NormalizeError> {
    if h.after.is_empty() || h.after == ZERO_SHA {
        return Ok(Normalized::Ignored("push deleting a branch".into()));
    }
    let default_branch =
        non_empty(h.project.default_branch.clone()).ok_or_else(|| missing("project.default_branch"))?;
    if h.git_ref.strip_prefix("refs/heads/") != Some(default_branch.as_str()) {
        return Ok(Normalized::Ignored("push to a non-default branch".into()));
    }
    let head = h.commits.iter().find(|c| c.id.as_deref() == Some(h.after.as_str())).or(h.commits.last());
    let Some(head) = head else {
        return Ok(Normalized::Ignored("push without commits".into()));
    };
    let occurred_at = first_time(&[("commits[].timestamp", head.timestamp)])?;
    let url = non_empty(head.url.clone());
    let fact = Fact::DefaultBranchPushed(Push {
        repository: h.project.path_with_namespace.clone(),
        branch: default_branch,
        before: h.before,
        after: h.after.clone(),
        commit_count: h.total_commits_count.unwrap_or(h.commits.len() as u64),
        forced: false,
        change_ids: change_ids(h.commits.iter().filter_map(|c| c.message.as_deref())),
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: non_empty(h.user_username),
        url,
        ..canonical(h.project, fact, h.after, occurred_at)
    }]))
}

/// A finished pipeline's conclusion, in the canonical (GitHub) vocabulary.
fn conclusion(status: &str) -> Option<String> {
    match status {
        "success" => Some("success"),
        "failed" => Some("failure"),
        "canceled" => Some("cancelled"),
        "skipped" => Some("skipped"),
        _ => None,
    }
    .map(str::to_owned)
}

/// `Pipeline Hook`: the status as GitLab names it, plus the canonical
/// conclusion once finished. `branch` is the ref unless it is a tag.
fn pipeline(h: PipelineHook) -> Result<Normalized, NormalizeError> {
    let p = h.object_attributes;
    let occurred_at = first_time(&[
        ("object_attributes.finished_at", p.finished_at),
        ("object_attributes.created_at", p.created_at),
    ])?;
    let fact = Fact::WorkflowRunChanged(WorkflowRun {
        repository: h.project.path_with_namespace.clone(),
        run_id: p.id.to_string(),
        name: non_empty(p.name),
        branch: if p.tag == Some(true) { None } else { non_empty(p.git_ref) },
        sha: non_empty(p.sha),
        conclusion: conclusion(&p.status),
        status: p.status,
        trigger: non_empty(p.source),
        failed_job: h.builds.iter().find_map(Build::failed),
    });
    Ok(Normalized::Events(vec![Canonical {
        actor: username(h.user),
        url: non_empty(p.url),
        ..canonical(h.project, fact, p.id.to_string(), occurred_at)
    }]))
}

#[cfg(test)]
mod tests {
    use super::super::support::testing;
    use super::*;
    use crate::ingest::support::testing::{edited, ymd_hms as at};
    use http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const DEPLOYMENT: &[u8] = include_bytes!("../../../events/gitlab/deployment.success.json");
    const DEPLOYMENT_FAILED: &[u8] = include_bytes!("../../../events/gitlab/deployment.failed.json");
    const MR_MERGE: &[u8] = include_bytes!("../../../events/gitlab/merge_request.merge.json");
    const MR_OPEN: &[u8] = include_bytes!("../../../events/gitlab/merge_request.open.json");
    const PIPELINE: &[u8] = include_bytes!("../../../events/gitlab/pipeline.success.json");
    const PUSH: &[u8] = include_bytes!("../../../events/gitlab/push.default_branch.json");

    /// Every sample file with the `X-Gitlab-Event` it is sent with.
    const SAMPLES: &[(&str, &[u8])] = &[
        ("Deployment Hook", DEPLOYMENT),
        ("Deployment Hook", DEPLOYMENT_FAILED),
        ("Merge Request Hook", MR_MERGE),
        ("Merge Request Hook", MR_OPEN),
        ("Pipeline Hook", PIPELINE),
        ("Push Hook", PUSH),
    ];

    const SUPPORTED: &[&str] = &["Deployment Hook", "Merge Request Hook", "Push Hook", "Pipeline Hook"];

    const CHANGE_ID: &str = "3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90";
    const PROJECT: &str = "platform/checkout-service";
    const MERGE_SHA: &str = "81d973398311d4c31cc7fc1ce8ad4a41d4e7cdf3";
    const IDEMPOTENCY: &str = "9c1e5a7b-3d2f-4e8a-b6c0-1f2e3d4c5b6a";
    const UUID: &str = "f2b1c3d4-0000-4000-8000-000000000001";

    fn headers(event: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(EVENT_HEADER, HeaderValue::from_str(event).expect("header value"));
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(IDEMPOTENCY));
        h.insert(EVENT_UUID, HeaderValue::from_static(UUID));
        h
    }

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
    fn deployment_hook_becomes_deployment_status_changed() {
        let c = one("Deployment Hook", DEPLOYMENT);
        let Fact::DeploymentStatusChanged(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(d.repository, PROJECT);
        assert_eq!(d.deployment_id, "48213");
        assert_eq!(d.environment, "production");
        assert_eq!(d.state, "success");
        assert_eq!(d.sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(d.git_ref, None);
        assert!(d.change_ids.is_empty());
        assert_eq!(c.origin, Origin::Gitlab);
        assert_eq!(c.external_id, "48213");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 34, 9));
        assert_eq!(c.actor.as_deref(), Some("raj.acme"));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.url.as_deref(), Some("https://gitlab.acme.example/platform/checkout-service/-/jobs/1556231"));
        assert_eq!(c.service_key, Some(ServiceKey::Repository(PROJECT.into())));
    }

    #[test]
    fn a_failed_deployment_names_its_job_and_log() {
        let c = one("Deployment Hook", DEPLOYMENT_FAILED);
        let Fact::DeploymentStatusChanged(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!((d.state.as_str(), d.deployment_id.as_str()), ("failure", "48212"));
        assert_eq!(d.job.as_deref(), Some("job 1556230"));
        let log = "https://gitlab.acme.example/platform/checkout-service/-/jobs/1556230";
        assert_eq!(d.log_url.as_deref(), Some(log));
    }

    #[test]
    fn a_failed_pipeline_names_its_first_failed_job_that_may_not_fail() {
        let body = edited(PIPELINE, |v| {
            v["object_attributes"]["status"] = json!("failed");
            v["builds"][0]["status"] = json!("failed");
            v["builds"][0]["allow_failure"] = json!(true);
            v["builds"][1]["status"] = json!("failed");
            v["builds"][1]["failure_reason"] = json!("script_failure");
        });
        let Fact::WorkflowRunChanged(r) = one("Pipeline Hook", &body).fact else { panic!() };
        let second = |k: &str| {
            let v: Value = serde_json::from_slice(PIPELINE).expect("json");
            v["builds"][1][k].as_str().unwrap_or_default().to_owned()
        };
        let expected = format!("{} (stage {}): script_failure", second("name"), second("stage"));
        assert_eq!(r.failed_job, Some(expected));
        let Fact::WorkflowRunChanged(ok) = one("Pipeline Hook", PIPELINE).fact else { panic!() };
        assert_eq!(ok.failed_job, None);
    }

    #[test]
    fn failed_deployment_becomes_failure_and_others_pass_through() {
        for (status, state) in [("failed", "failure"), ("running", "running"), ("canceled", "canceled")] {
            let body = edited(DEPLOYMENT, |v| v["status"] = json!(status));
            let Fact::DeploymentStatusChanged(d) = one("Deployment Hook", &body).fact else { panic!() };
            assert_eq!(d.state, state);
        }
    }

    #[test]
    fn deployment_sha_falls_back_to_short_sha_and_ref_is_read() {
        let body = edited(DEPLOYMENT, |v| {
            v["commit_url"] = Value::Null;
            v["ref"] = json!(format!("release/{CHANGE_ID}"));
        });
        let Fact::DeploymentStatusChanged(d) = one("Deployment Hook", &body).fact else { panic!() };
        assert_eq!(d.sha.as_deref(), Some("81d97339"));
        assert_eq!(d.git_ref, Some(format!("release/{CHANGE_ID}")));
        assert_eq!(d.change_ids, vec![CHANGE_ID.to_owned()]);

        let body = edited(DEPLOYMENT, |v| v["short_sha"] = json!("deadbeef"));
        let Fact::DeploymentStatusChanged(d) = one("Deployment Hook", &body).fact else { panic!() };
        assert_eq!(d.sha.as_deref(), Some("deadbeef"), "a commit_url that disagrees is not trusted");
    }

    #[test]
    fn opened_merge_request_carries_its_change_id() {
        let c = one("Merge Request Hook", MR_OPEN);
        let Fact::PullRequestChanged(pr) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(pr.repository, PROJECT);
        assert_eq!(pr.number, 233);
        assert_eq!(pr.action, "opened");
        assert!(!pr.merged);
        assert_eq!(pr.change_ids, vec![CHANGE_ID.to_owned()]);
        assert_eq!(pr.head_branch.as_deref(), Some("chg-1042/raise-db-pool"));
        assert_eq!(pr.base_branch.as_deref(), Some("main"));
        assert_eq!(pr.head_sha.as_deref(), Some("4062431ea18e301f5b519c91eb1a8458b026c8fa"));
        assert_eq!(pr.merge_sha, None);
        assert_eq!(pr.author.as_deref(), Some("ana.acme"));
        assert_eq!(pr.labels, vec!["change-managed".to_owned()]);
        assert_eq!(c.external_id, "platform/checkout-service!233");
        assert_eq!(
            c.url.as_deref(),
            Some("https://gitlab.acme.example/platform/checkout-service/-/merge_requests/233")
        );
        assert_eq!(c.occurred_at, at(2026, 9, 14, 8, 2, 11));
        assert_eq!(c.actor.as_deref(), Some("ana.acme"));
    }

    #[test]
    fn merged_merge_request_becomes_merged() {
        let c = one("Merge Request Hook", MR_MERGE);
        let Fact::PullRequestChanged(pr) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(pr.action, "merged");
        assert!(pr.merged);
        assert_eq!(pr.merge_sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(pr.author, None);
        assert_eq!(pr.change_ids, vec![CHANGE_ID.to_owned()]);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 46));
        assert_eq!(c.actor.as_deref(), Some("raj.acme"));
    }

    #[test]
    fn update_is_synchronized_only_with_new_commits() {
        let body = edited(MR_OPEN, |v| {
            v["object_attributes"]["action"] = json!("update");
            v["object_attributes"]["oldrev"] = json!("7a24b6fb90f485ed5fb44ac8fe19513ba69a3d5a");
        });
        let Fact::PullRequestChanged(pr) = one("Merge Request Hook", &body).fact else { panic!() };
        assert_eq!(pr.action, "synchronized");

        let body = edited(MR_OPEN, |v| v["object_attributes"]["action"] = json!("update"));
        let Fact::PullRequestChanged(pr) = one("Merge Request Hook", &body).fact else { panic!() };
        assert_eq!(pr.action, "edited");
    }

    #[test]
    fn reopen_and_close_are_mapped() {
        for (action, expected) in [("reopen", "reopened"), ("close", "closed")] {
            let body = edited(MR_OPEN, |v| v["object_attributes"]["action"] = json!(action));
            let Fact::PullRequestChanged(pr) = one("Merge Request Hook", &body).fact else { panic!() };
            assert_eq!(pr.action, expected);
            assert!(!pr.merged);
        }
    }

    #[test]
    fn approvals_and_other_actions_are_ignored() {
        for action in ["approved", "unapproved", "approval", "unapproval"] {
            let body = edited(MR_OPEN, |v| v["object_attributes"]["action"] = json!(action));
            assert_eq!(
                normalize(&headers("Merge Request Hook"), &body),
                Ok(Normalized::Ignored(format!("merge_request.{action}")))
            );
        }
    }

    #[test]
    fn merge_request_without_action_is_an_error_naming_it() {
        let body = edited(MR_OPEN, |v| v["object_attributes"]["action"] = Value::Null);
        assert_eq!(error("Merge Request Hook", &body).field.as_deref(), Some("object_attributes.action"));
    }

    #[test]
    fn push_to_the_default_branch_becomes_default_branch_pushed() {
        let c = one("Push Hook", PUSH);
        let Fact::DefaultBranchPushed(p) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(p.repository, PROJECT);
        assert_eq!(p.branch, "main");
        assert_eq!(p.before, "b0451fbb31b6eaa78eb30f4ca5222887b387af7b");
        assert_eq!(p.after, MERGE_SHA);
        assert_eq!(p.commit_count, 2);
        assert!(!p.forced);
        assert!(p.change_ids.is_empty());
        assert_eq!(c.external_id, MERGE_SHA);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 46));
        assert_eq!(c.url, Some(format!("https://gitlab.acme.example/platform/checkout-service/-/commit/{MERGE_SHA}")));
        assert_eq!(c.actor.as_deref(), Some("raj.acme"));
    }

    #[test]
    fn push_commit_count_is_the_total_not_the_listed() {
        let body = edited(PUSH, |v| {
            v["total_commits_count"] = json!(57);
            v["commits"][0]["message"] = json!(format!("Change-Id: {CHANGE_ID}"));
        });
        let Fact::DefaultBranchPushed(p) = one("Push Hook", &body).fact else { panic!() };
        assert_eq!(p.commit_count, 57);
        assert_eq!(p.change_ids, vec![CHANGE_ID.to_owned()]);
    }

    #[test]
    fn push_to_another_branch_is_ignored() {
        let body = edited(PUSH, |v| v["ref"] = json!("refs/heads/chg-1042/raise-db-pool"));
        assert_eq!(
            normalize(&headers("Push Hook"), &body),
            Ok(Normalized::Ignored("push to a non-default branch".into()))
        );
    }

    #[test]
    fn branch_deletion_is_ignored() {
        let body = edited(PUSH, |v| {
            v["after"] = json!(ZERO_SHA);
            v["commits"] = json!([]);
        });
        assert_eq!(normalize(&headers("Push Hook"), &body), Ok(Normalized::Ignored("push deleting a branch".into())));
    }

    #[test]
    fn push_without_commits_is_ignored_not_dated_by_a_clock() {
        let body = edited(PUSH, |v| v["commits"] = json!([]));
        assert_eq!(normalize(&headers("Push Hook"), &body), Ok(Normalized::Ignored("push without commits".into())));
    }

    #[test]
    fn pipeline_hook_becomes_workflow_run_changed() {
        let c = one("Pipeline Hook", PIPELINE);
        let Fact::WorkflowRunChanged(r) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(r.repository, PROJECT);
        assert_eq!(r.run_id, "99840");
        assert_eq!(r.name, None);
        assert_eq!(r.branch.as_deref(), Some("main"));
        assert_eq!(r.sha.as_deref(), Some(MERGE_SHA));
        assert_eq!(r.status, "success");
        assert_eq!(r.conclusion.as_deref(), Some("success"));
        assert_eq!(r.trigger.as_deref(), Some("push"));
        assert_eq!(c.external_id, "99840");
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 34, 10));
        assert_eq!(c.url.as_deref(), Some("https://gitlab.acme.example/platform/checkout-service/-/pipelines/99840"));
        assert_eq!(c.actor.as_deref(), Some("raj.acme"));
    }

    #[test]
    fn running_pipeline_has_no_conclusion_and_is_dated_by_creation() {
        let body = edited(PIPELINE, |v| {
            v["object_attributes"]["status"] = json!("running");
            v["object_attributes"]["finished_at"] = Value::Null;
        });
        let c = one("Pipeline Hook", &body);
        let Fact::WorkflowRunChanged(r) = &c.fact else { panic!() };
        assert_eq!(r.status, "running");
        assert_eq!(r.conclusion, None);
        assert_eq!(c.occurred_at, at(2026, 9, 14, 10, 21, 51));

        let body = edited(PIPELINE, |v| v["object_attributes"]["status"] = json!("failed"));
        let Fact::WorkflowRunChanged(r) = one("Pipeline Hook", &body).fact else { panic!() };
        assert_eq!(r.conclusion.as_deref(), Some("failure"));
    }

    #[test]
    fn other_hooks_are_ignored() {
        for event in ["Tag Push Hook", "Note Hook", "Issue Hook", "Job Hook"] {
            assert_eq!(normalize(&headers(event), b"{}"), Ok(Normalized::Ignored(event.to_owned())));
        }
    }

    #[test]
    fn delivery_id_prefers_idempotency_key_then_event_uuid() {
        let mut h = headers("Push Hook");
        assert_eq!(delivery_id(&h, PUSH), Ok(IDEMPOTENCY.to_owned()));
        h.remove(IDEMPOTENCY_KEY);
        assert_eq!(delivery_id(&h, PUSH), Ok(UUID.to_owned()));
    }

    #[test]
    fn missing_delivery_headers_are_an_error() {
        let mut h = headers("Push Hook");
        h.remove(IDEMPOTENCY_KEY);
        h.remove(EVENT_UUID);
        assert_eq!(delivery_id(&h, PUSH).expect_err("an error").field.as_deref(), Some(IDEMPOTENCY_KEY));
        assert_eq!(normalize(&h, PUSH).expect_err("an error").field.as_deref(), Some(IDEMPOTENCY_KEY));
    }

    #[test]
    fn missing_event_header_is_an_error_naming_it() {
        let mut h = headers("Push Hook");
        h.remove(EVENT_HEADER);
        assert_eq!(normalize(&h, PUSH).expect_err("an error").field.as_deref(), Some(EVENT_HEADER));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let e = error("Push Hook", b"{\"ref\": \"refs/heads/main\",");
        assert_eq!(e.field, None);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn field_of_the_wrong_type_is_an_error_naming_its_path() {
        let body = edited(MR_OPEN, |v| v["object_attributes"]["iid"] = json!("233"));
        assert_eq!(error("Merge Request Hook", &body).field.as_deref(), Some("object_attributes.iid"));

        let body = edited(PUSH, |v| v["commits"][1]["timestamp"] = json!("last tuesday"));
        assert_eq!(error("Push Hook", &body).field.as_deref(), Some("commits[1].timestamp"));

        let body = edited(DEPLOYMENT, |v| v["project"]["path_with_namespace"] = json!(["platform"]));
        assert_eq!(error("Deployment Hook", &body).field.as_deref(), Some("project.path_with_namespace"));
    }

    #[test]
    fn missing_required_field_is_an_error_naming_its_path() {
        let body = edited(PIPELINE, |v| {
            v["object_attributes"].as_object_mut().map(|o| o.remove("status"));
        });
        assert_eq!(error("Pipeline Hook", &body).field.as_deref(), Some("object_attributes.status"));
    }

    #[test]
    fn deployment_without_status_changed_at_is_an_error_naming_it() {
        let body = edited(DEPLOYMENT, |v| v["status_changed_at"] = Value::Null);
        assert_eq!(error("Deployment Hook", &body).field.as_deref(), Some("status_changed_at"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            event in prop::sample::select(SUPPORTED),
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = normalize(&headers(event), &body);
        }

        #[test]
        fn arbitrary_json_never_panics(event in prop::sample::select(SUPPORTED), body in testing::json()) {
            let _ = normalize(&headers(event), &serde_json::to_vec(&body).unwrap_or_default());
        }

        #[test]
        fn arbitrary_text_in_merge_request_fields_normalizes(
            title in testing::text(),
            description in testing::text(),
            branch in testing::text(),
            label in testing::text(),
        ) {
            let payload = edited(MR_OPEN, |v| {
                v["object_attributes"]["title"] = json!(title);
                v["object_attributes"]["description"] = json!(description);
                v["object_attributes"]["source_branch"] = json!(branch);
                v["object_attributes"]["labels"][0]["title"] = json!(label);
            });
            let c = one("Merge Request Hook", &payload);
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
