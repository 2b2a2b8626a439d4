//! Argo CD Notifications → canonical `Deployment Status Changed`.
//!
//! Argo CD's `webhook` notification service posts whatever body the
//! operator's template renders; the hub reads the body of the templates in
//! README ("Wiring sources", Argo CD), one per trigger (`on-sync-running`,
//! `on-deployed`, `on-sync-failed`, `on-health-degraded`). Every one renders
//! the same fields, so the state comes from Argo CD's own fields, not from
//! the trigger's name:
//!
//! | `operation.phase` | `health` | state |
//! | --- | --- | --- |
//! | `Running`, `Terminating` | any | `in_progress` |
//! | `Failed`, `Error` | any | `failure` |
//! | `Succeeded` | `Healthy` (or not sent) | `success` |
//! | `Succeeded` | `Degraded`, `Missing` | `failure` |
//! | `Succeeded` | `Progressing`, `Suspended`, `Unknown` | `in_progress` |
//!
//! One sync operation is one deployment: its id is `<app>@<startedAt>`, so
//! the running, deployed and degraded notifications of one sync land on one
//! record. Argo CD sends no delivery id: [`delivery_id`] hashes what makes a
//! notification a new state (app, operation start and end, phase, health,
//! revision), so a notification resent unchanged is a duplicate.
//!
//! **Rollback.** `argocd app rollback` (and the UI's) syncs a history
//! entry's revision while the app still tracks its `targetRevision`; Argo CD
//! refuses it while auto-sync is on. So a sync started by a person
//! (`initiatedBy.username`, not `automated`) whose revision
//! (`operation.sync.revision`, sent as `revision`) is not the one
//! `targetRevision` resolves to now (`status.sync.revision`, sent as
//! `head_revision`) is a rollback; so is `argocd app sync --revision
//! <older sha>`, which is one. Automated syncs always deploy the head and
//! are never taken as rollbacks. A rollback made by reverting Git is an
//! ordinary sync: the hub still sees it when it puts back a sha deployed
//! earlier to the same environment.
//!
//! Go templates render a missing field as `<no value>` inside quotes; such
//! a value counts as absent.

use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::canonical::{Canonical, Deployment, Fact, NormalizeError, Normalized, Origin, ServiceKey, change_ids};
use super::parse_body;
use super::support::{Timestamp, missing, nullable};

/// The app annotation (or label) naming the environment it deploys to.
pub const ENVIRONMENT_KEY: &str = "changehub.io/environment";
/// The app annotation (or label) naming the change(s) a sync implements.
pub const CHANGE_KEY: &str = "changehub.io/change";

/// What Go's template engine renders for a missing field.
const NO_VALUE: &str = "<no value>";

#[derive(Deserialize)]
struct Notification {
    app: String,
    #[serde(default, deserialize_with = "nullable")]
    annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
    repo_url: Option<String>,
    target_revision: Option<String>,
    #[serde(default)]
    destination: Destination,
    revision: Option<String>,
    head_revision: Option<String>,
    commit_message: Option<String>,
    health: Option<String>,
    operation: Operation,
    url: Option<String>,
}

#[derive(Deserialize, Default)]
struct Destination {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Operation {
    phase: String,
    message: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    #[serde(default)]
    initiated_by: Option<InitiatedBy>,
}

#[derive(Deserialize)]
struct InitiatedBy {
    username: Option<String>,
    #[serde(default)]
    automated: bool,
}

/// A template field as sent: blank and `<no value>` are absent.
fn given(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && s != NO_VALUE)
}

/// A template timestamp, naming `field` when it is there but unreadable.
fn time(field: &str, s: Option<String>) -> Result<Option<Timestamp>, NormalizeError> {
    match given(s) {
        None => Ok(None),
        Some(s) => Timestamp::parse(&s)
            .map(Some)
            .ok_or_else(|| NormalizeError::field(field, format!("{field} is not an RFC 3339 time: {s:?}"))),
    }
}

/// A SHA-256 (hex) of the app, the operation's start, end and phase, the
/// health and the revision: what makes a notification a new state.
pub fn delivery_id(_headers: &HeaderMap, body: &[u8]) -> Result<String, NormalizeError> {
    let n: Notification = parse_body(body)?;
    let mut hash = Sha256::new();
    // Every part is length-prefixed, so no two different inputs concatenate alike.
    let op = &n.operation;
    let parts =
        [Some(n.app), Some(op.phase.clone()), op.started_at.clone(), op.finished_at.clone(), n.health, n.revision];
    hash.update(b"argocd-v1");
    for part in parts.into_iter().map(given) {
        let part = part.unwrap_or_default();
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    Ok(hex::encode(hash.finalize()))
}

/// `owner/name` of a Git URL (`https://host/owner/name.git`,
/// `git@host:owner/name.git`, `ssh://git@host/owner/name`), as the catalog
/// maps repositories; `None` for anything without a path.
pub fn repository(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (!path.is_empty()).then(|| path.to_owned())
}

/// The canonical state of an operation phase and the app's health.
fn state(phase: &str, health: Option<&str>) -> Result<&'static str, NormalizeError> {
    Ok(match (phase, health) {
        ("Running" | "Terminating", _) => "in_progress",
        ("Failed" | "Error", _) => "failure",
        ("Succeeded", None | Some("Healthy")) => "success",
        ("Succeeded", Some("Degraded" | "Missing")) => "failure",
        ("Succeeded", Some(_)) => "in_progress",
        (other, _) => {
            return Err(NormalizeError::field(
                "operation.phase",
                format!("operation.phase {other:?} is not Running, Terminating, Succeeded, Failed or Error"),
            ));
        }
    })
}

/// One notification → one `Deployment Status Changed`.
pub fn normalize(_headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let n: Notification = parse_body(body)?;
    let app = given(Some(n.app)).ok_or_else(|| missing("app"))?;
    let op = n.operation;
    let health = given(n.health);
    let state = state(op.phase.trim(), health.as_deref())?;
    let started = time("operation.started_at", op.started_at)?.ok_or_else(|| missing("operation.started_at"))?;
    let finished = time("operation.finished_at", op.finished_at)?;
    let repo_url = given(n.repo_url).ok_or_else(|| missing("repo_url"))?;
    let repo = repository(&repo_url)
        .ok_or_else(|| NormalizeError::field("repo_url", format!("repo_url {repo_url:?} names no repository path")))?;
    let keyed = |key: &str| given(n.annotations.get(key).cloned()).or_else(|| given(n.labels.get(key).cloned()));
    let environment = keyed(ENVIRONMENT_KEY)
        .or_else(|| given(n.destination.namespace.clone()))
        .or_else(|| given(n.destination.name.clone()))
        .ok_or_else(|| missing("annotations.changehub.io/environment"))?;
    let target_revision = given(n.target_revision);
    let commit_message = given(n.commit_message);
    let message = given(op.message);
    let named = keyed(CHANGE_KEY);
    let texts = [named.as_deref(), commit_message.as_deref(), target_revision.as_deref()];
    let deployment_id = format!("{app}@{}", started.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (actor, automated) = op.initiated_by.map_or((None, false), |i| (given(i.username), i.automated));
    let revision = given(n.revision);
    let head = given(n.head_revision);
    let rollback =
        !automated && actor.is_some() && matches!((&revision, &head), (Some(r), Some(h)) if !r.eq_ignore_ascii_case(h));
    let url = given(n.url);
    let failed = state == "failure";
    let fact = Fact::DeploymentStatusChanged(Deployment {
        repository: repo.clone(),
        deployment_id: deployment_id.clone(),
        environment: environment.clone(),
        state: state.to_owned(),
        change_ids: change_ids(texts.into_iter().flatten()),
        git_ref: target_revision,
        sha: revision,
        description: message.or_else(|| failed.then(|| format!("health {}", health.unwrap_or_default()))),
        job: Some(format!("Argo CD sync of {app}")),
        log_url: url.clone(),
        pull_request: None,
        deployed_by: None,
        rollback,
    });
    Ok(Normalized::Events(vec![Canonical {
        origin: Origin::Argocd,
        fact,
        external_id: deployment_id,
        occurred_at: finished.unwrap_or(started).0,
        actor,
        environment: Some(environment),
        url,
        service_key: Some(ServiceKey::Repository(repo)),
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::support::testing::{at, edited};
    use serde_json::json;

    const DEPLOYED: &[u8] = include_bytes!("../../../events/argocd/app.deployed.json");
    const FAILED: &[u8] = include_bytes!("../../../events/argocd/app.sync_failed.json");
    const ROLLBACK: &[u8] = include_bytes!("../../../events/argocd/app.rollback.json");

    fn one(body: &[u8]) -> (Canonical, Deployment) {
        match normalize(&HeaderMap::new(), body).expect("normalizes") {
            Normalized::Events(mut events) if events.len() == 1 => {
                let c = events.remove(0);
                match c.fact.clone() {
                    Fact::DeploymentStatusChanged(d) => (c, d),
                    other => panic!("not a deployment status: {other:?}"),
                }
            }
            other => panic!("one event: {other:?}"),
        }
    }

    #[test]
    fn a_deployed_app_is_a_successful_deployment_of_its_repository() {
        let (c, d) = one(DEPLOYED);
        assert_eq!((c.origin, c.actor.as_deref()), (Origin::Argocd, Some("raj.acme")));
        assert_eq!(c.service_key, Some(ServiceKey::Repository("acme-corp/checkout-service".into())));
        assert_eq!(c.occurred_at, at("2026-09-14T10:14:05Z"));
        assert_eq!((d.state.as_str(), d.environment.as_str(), d.rollback), ("success", "production", false));
        assert_eq!(d.deployment_id, "checkout@2026-09-14T10:12:31Z");
        assert_eq!(d.sha.as_deref(), Some("81d973398311d4c31cc7fc1ce8ad4a41d4e7cdf3"));
        assert_eq!(d.change_ids, vec!["3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90".to_owned()], "from the annotation");
    }

    #[test]
    fn a_failed_sync_is_a_failed_deployment_with_argo_cds_message() {
        let (_, d) = one(FAILED);
        assert_eq!(d.state, "failure");
        assert!(d.description.as_deref().unwrap_or_default().contains("one or more objects failed"), "{d:?}");
        assert_eq!(d.job.as_deref(), Some("Argo CD sync of checkout"));
        let errored = edited(FAILED, |v| v["operation"]["phase"] = json!("Error"));
        assert_eq!(one(&errored).1.state, "failure");
    }

    #[test]
    fn a_persons_sync_of_a_revision_other_than_the_head_is_a_rollback() {
        let (_, d) = one(ROLLBACK);
        assert!(d.rollback);
        assert_eq!((d.state.as_str(), d.sha.as_deref()), ("success", Some("81d973398311d4c31cc7fc1ce8ad4a41d4e7cdf3")));
        let automated = edited(ROLLBACK, |v| v["operation"]["initiated_by"] = json!({"automated": true}));
        assert!(!one(&automated).1.rollback, "an automated sync deploys the head");
        let head = edited(ROLLBACK, |v| v["head_revision"] = v["revision"].clone());
        assert!(!one(&head).1.rollback, "the head itself");
        let unknown = edited(ROLLBACK, |v| v["head_revision"] = json!(NO_VALUE));
        assert!(!one(&unknown).1.rollback, "nothing to compare with");
        assert!(!one(DEPLOYED).1.rollback && !one(FAILED).1.rollback);
    }

    #[test]
    fn phase_and_health_give_the_state() {
        let with = |phase: &str, health: &str| {
            one(&edited(DEPLOYED, |v| {
                v["operation"]["phase"] = json!(phase);
                v["health"] = json!(health);
            }))
            .1
            .state
        };
        assert_eq!(with("Running", "Healthy"), "in_progress");
        assert_eq!(with("Succeeded", "Progressing"), "in_progress");
        assert_eq!(with("Succeeded", "Degraded"), "failure");
        assert_eq!(with("Succeeded", NO_VALUE), "success");
        let err = normalize(&HeaderMap::new(), &edited(DEPLOYED, |v| v["operation"]["phase"] = json!("Paused")));
        assert_eq!(err.expect_err("unknown phase").field.as_deref(), Some("operation.phase"));
    }

    #[test]
    fn missing_template_values_are_absent_and_required_ones_are_named() {
        let running = edited(DEPLOYED, |v| {
            v["operation"]["phase"] = json!("Running");
            v["operation"]["finished_at"] = json!(NO_VALUE);
            v["annotations"] = json!(null);
        });
        let (c, d) = one(&running);
        assert_eq!(c.occurred_at, at("2026-09-14T10:12:31Z"), "the start, while it runs");
        assert_eq!(d.environment, "checkout-prod", "the destination namespace without the annotation");
        assert!(d.change_ids.is_empty());
        let no_start = edited(DEPLOYED, |v| v["operation"]["started_at"] = json!(NO_VALUE));
        let err = normalize(&HeaderMap::new(), &no_start).expect_err("no start");
        assert_eq!(err.field.as_deref(), Some("operation.started_at"));
        let bad = edited(DEPLOYED, |v| v["operation"]["finished_at"] = json!("soon"));
        let err = normalize(&HeaderMap::new(), &bad).expect_err("bad time");
        assert_eq!(err.field.as_deref(), Some("operation.finished_at"));
        let no_repo = edited(DEPLOYED, |v| v["repo_url"] = json!(""));
        assert_eq!(normalize(&HeaderMap::new(), &no_repo).expect_err("no repo").field.as_deref(), Some("repo_url"));
    }

    #[test]
    fn git_urls_name_their_repository() {
        for url in [
            "https://github.com/acme/checkout.git",
            "https://github.com/acme/checkout/",
            "git@github.com:acme/checkout.git",
            "ssh://git@github.com/acme/checkout",
        ] {
            assert_eq!(repository(url).as_deref(), Some("acme/checkout"), "{url}");
        }
        assert_eq!(repository("https://gitlab.example/group/sub/app.git").as_deref(), Some("group/sub/app"));
        assert_eq!(repository("https://charts.example"), None);
    }

    #[test]
    fn a_resent_notification_is_the_same_delivery_and_a_new_state_is_not() {
        let id = delivery_id(&HeaderMap::new(), DEPLOYED).expect("id");
        let reformatted = edited(DEPLOYED, |v| v["url"] = json!("https://argocd.acme.example/applications/other"));
        assert_eq!(id, delivery_id(&HeaderMap::new(), &reformatted).expect("id"));
        let degraded = edited(DEPLOYED, |v| v["health"] = json!("Degraded"));
        assert_ne!(id, delivery_id(&HeaderMap::new(), &degraded).expect("id"));
        assert_ne!(id, delivery_id(&HeaderMap::new(), FAILED).expect("id"));
    }
}
