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
//! **Multi-source apps** (`spec.sources`) have no `spec.source`: the
//! template sends `sources`, `revisions` and `head_revisions` (one per
//! source) instead of `repo_url`, `target_revision`, `revision` and
//! `head_revision`. The app is taken as a deployment of one of them: the
//! source the [`SOURCE_KEY`] annotation (or label) names (by its `repoURL`,
//! its repository, its `ref` or its `name`), else the first Git source (one
//! without `chart`: a chart from a Helm repository is somebody else's
//! code), else the first. A sync that puts any source at a revision other
//! than its head is a rollback.
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
/// The annotation (or label) of a multi-source app naming the source that
/// is its service's: its `repoURL`, its repository (`owner/name`), its
/// `ref` or its `name`.
pub const SOURCE_KEY: &str = "changehub.io/source";

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
    /// A multi-source app's `spec.sources`; `null` for one source.
    #[serde(default, deserialize_with = "nullable")]
    sources: Vec<Source>,
    /// The sync's revision of each source (`operation.sync.revisions`).
    #[serde(default, deserialize_with = "nullable")]
    revisions: Vec<Option<String>>,
    /// What each source's `targetRevision` resolves to now (`status.sync.revisions`).
    #[serde(default, deserialize_with = "nullable")]
    head_revisions: Vec<Option<String>>,
    commit_message: Option<String>,
    health: Option<String>,
    operation: Operation,
    url: Option<String>,
}

impl Notification {
    /// The app annotation `key`, else its label.
    fn keyed(&self, key: &str) -> Option<String> {
        given(self.annotations.get(key).cloned()).or_else(|| given(self.labels.get(key).cloned()))
    }
}

/// One of a multi-source app's sources, as Argo CD's `toJson` renders it.
#[derive(Deserialize)]
struct Source {
    #[serde(rename = "repoURL")]
    repo_url: Option<String>,
    #[serde(rename = "targetRevision")]
    target_revision: Option<String>,
    chart: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    name: Option<String>,
}

/// What a sync deployed: the app's one source, or the one of its sources
/// [`pick`] chose.
struct Deployed {
    /// `owner/name` of its `repoURL`.
    repository: String,
    target_revision: Option<String>,
    revision: Option<String>,
    /// Any source synced to a revision other than its head.
    off_head: bool,
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
/// health and the revision (a multi-source app's revisions, joined): what
/// makes a notification a new state.
pub fn delivery_id(_headers: &HeaderMap, body: &[u8]) -> Result<String, NormalizeError> {
    let n: Notification = parse_body(body)?;
    let mut hash = Sha256::new();
    // Every part is length-prefixed, so no two different inputs concatenate alike.
    let op = &n.operation;
    let revision = given(n.revision).or_else(|| {
        let each: Vec<String> = n.revisions.into_iter().map(|r| given(r).unwrap_or_default()).collect();
        (!each.is_empty()).then(|| each.join(","))
    });
    let parts =
        [Some(n.app), Some(op.phase.clone()), op.started_at.clone(), op.finished_at.clone(), n.health, revision];
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

/// The source of a multi-source app that is its service's, by its index:
/// the one `named` names, else the first Git source, else the first.
fn pick(sources: &[Source], named: Option<&str>) -> Result<usize, NormalizeError> {
    let Some(named) = named else {
        return Ok(sources.iter().position(|s| given(s.chart.clone()).is_none()).unwrap_or(0));
    };
    let names = |s: &Source| {
        let url = given(s.repo_url.clone());
        let repo = url.as_deref().and_then(repository);
        [url, repo, given(s.reference.clone()), given(s.name.clone())]
    };
    sources.iter().position(|s| names(s).iter().flatten().any(|n| n.eq_ignore_ascii_case(named))).ok_or_else(|| {
        let urls: Vec<String> = sources.iter().filter_map(|s| given(s.repo_url.clone())).collect();
        NormalizeError::field(
            "annotations.changehub.io/source",
            format!("{SOURCE_KEY} {named:?} names none of the app's sources ({})", urls.join(", ")),
        )
    })
}

impl Deployed {
    /// The app's one source, or the one [`pick`] chooses of its several.
    fn of(n: &mut Notification, named: Option<&str>) -> Result<Deployed, NormalizeError> {
        let moved =
            |r: &Option<String>, h: &Option<String>| matches!((r, h), (Some(r), Some(h)) if !r.eq_ignore_ascii_case(h));
        let single = given(n.repo_url.take());
        if single.is_some() || n.sources.is_empty() {
            let (revision, head) = (given(n.revision.take()), given(n.head_revision.take()));
            return Ok(Deployed {
                repository: named_repository("repo_url", "repo_url", single)?,
                target_revision: given(n.target_revision.take()),
                off_head: moved(&revision, &head),
                revision,
            });
        }
        let i = pick(&n.sources, named)?;
        let at = |list: &[Option<String>], i: usize| given(list.get(i).cloned().flatten());
        let off_head = (0..n.revisions.len()).any(|j| moved(&at(&n.revisions, j), &at(&n.head_revisions, j)));
        let source = &mut n.sources[i];
        Ok(Deployed {
            repository: named_repository("sources", "the deployed source's repoURL", given(source.repo_url.take()))?,
            target_revision: given(source.target_revision.take()),
            revision: at(&n.revisions, i),
            off_head,
        })
    }
}

/// The repository `url` names, or an error naming `field` (`what` in words).
fn named_repository(field: &str, what: &str, url: Option<String>) -> Result<String, NormalizeError> {
    let url = url.ok_or_else(|| NormalizeError::field(field, format!("{what} is missing")))?;
    repository(&url).ok_or_else(|| NormalizeError::field(field, format!("{what} {url:?} names no repository path")))
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
    let mut n: Notification = parse_body(body)?;
    let (source, named) = (n.keyed(SOURCE_KEY), n.keyed(CHANGE_KEY));
    let environment = n
        .keyed(ENVIRONMENT_KEY)
        .or_else(|| given(n.destination.namespace.clone()))
        .or_else(|| given(n.destination.name.clone()))
        .ok_or_else(|| missing("annotations.changehub.io/environment"))?;
    let deployed = Deployed::of(&mut n, source.as_deref())?;
    let app = given(Some(n.app)).ok_or_else(|| missing("app"))?;
    let op = n.operation;
    let health = given(n.health);
    let state = state(op.phase.trim(), health.as_deref())?;
    let started = time("operation.started_at", op.started_at)?.ok_or_else(|| missing("operation.started_at"))?;
    let finished = time("operation.finished_at", op.finished_at)?;
    let repo = deployed.repository;
    let target_revision = deployed.target_revision;
    let commit_message = given(n.commit_message);
    let message = given(op.message);
    let texts = [named.as_deref(), commit_message.as_deref(), target_revision.as_deref()];
    let deployment_id = format!("{app}@{}", started.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (actor, automated) = op.initiated_by.map_or((None, false), |i| (given(i.username), i.automated));
    let revision = deployed.revision;
    let rollback = !automated && actor.is_some() && deployed.off_head;
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

    const MULTI: &[u8] = include_bytes!("../../../events/argocd/app.multi_source.deployed.json");

    #[test]
    fn a_multi_source_app_is_a_deployment_of_its_git_source_not_of_a_helm_chart() {
        let (c, d) = one(MULTI);
        assert_eq!(c.service_key, Some(ServiceKey::Repository("acme-corp/checkout-service".into())));
        assert_eq!(d.sha.as_deref(), Some("81d973398311d4c31cc7fc1ce8ad4a41d4e7cdf3"), "that source's revision");
        assert_eq!((d.git_ref.as_deref(), d.state.as_str(), d.rollback), (Some("main"), "success", false));
        assert_eq!(d.change_ids, vec!["3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90".to_owned()]);
        let git_only = edited(MULTI, |v| v["sources"][0]["chart"] = json!(null));
        let (c, d) = one(&git_only);
        assert_eq!(c.service_key, Some(ServiceKey::Repository("stable".into())), "no chart: the first source");
        assert_eq!(d.sha.as_deref(), Some("2.4.1"));
    }

    #[test]
    fn the_source_annotation_picks_a_multi_source_apps_source_by_url_repository_ref_or_name() {
        let named = |value: &str| {
            let body = edited(MULTI, |v| {
                v["sources"] = json!([
                    {"repoURL": "https://github.com/acme-corp/platform-config.git", "targetRevision": "main", "name": "config"},
                    {"repoURL": "git@github.com:acme-corp/checkout-service.git", "targetRevision": "v2", "ref": "app"},
                ]);
                v["annotations"][SOURCE_KEY] = json!(value);
            });
            normalize(&HeaderMap::new(), &body).map(|_| one(&body).0.service_key)
        };
        let checkout = Some(ServiceKey::Repository("acme-corp/checkout-service".into()));
        let config = Some(ServiceKey::Repository("acme-corp/platform-config".into()));
        assert_eq!(named("git@github.com:acme-corp/checkout-service.git").expect("by URL"), checkout);
        assert_eq!(named("acme-corp/checkout-service").expect("by repository"), checkout);
        assert_eq!(named("app").expect("by ref"), checkout);
        assert_eq!(named("config").expect("by name"), config);
        let err = named("payments").expect_err("names no source");
        assert_eq!(err.field.as_deref(), Some("annotations.changehub.io/source"));
        assert!(err.message.contains("platform-config.git") && err.message.contains("\"payments\""), "{err:?}");
    }

    #[test]
    fn a_persons_sync_of_any_source_off_its_head_is_a_rollback() {
        let by_person = |v: &mut serde_json::Value| v["operation"]["initiated_by"] = json!({"username": "maya.acme"});
        assert!(!one(&edited(MULTI, by_person)).1.rollback, "every source at its head");
        let older_chart = edited(MULTI, |v| {
            by_person(v);
            v["revisions"][0] = json!("2.3.0");
        });
        assert!(one(&older_chart).1.rollback, "the chart put back to an earlier version");
        let automated = edited(MULTI, |v| v["revisions"][0] = json!("2.3.0"));
        assert!(!one(&automated).1.rollback, "an automated sync deploys the head");
        let a = delivery_id(&HeaderMap::new(), MULTI).expect("id");
        assert_ne!(a, delivery_id(&HeaderMap::new(), &older_chart).expect("id"), "other revisions: a new state");
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
