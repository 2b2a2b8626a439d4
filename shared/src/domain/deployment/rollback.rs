//! Rollback automation: what a service's catalog entry says to run when a
//! production deployment of one of its changes fails, and the request that
//! runs it.
//!
//! ```yaml
//! services:
//!   - name: payments
//!     rollback:
//!       github:
//!         repository: acme/payments-api
//!         workflow: rollback.yml
//!         ref: main
//!         inputs: {sha: "{sha}", change: "{change}", environment: "{environment}"}
//! ```
//!
//! or `gitlab: {project: "42", ref: main, variables: {ROLLBACK_SHA: "{sha}"}}`.
//! Input and variable values may name what the failure knows: `{change}`,
//! `{service}`, `{environment}`, `{failed_sha}` (what failed) and `{sha}`
//! (what ran in production before it: the sha to return to).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::gate::pulls::Forge;
use crate::domain::validation::Problems;

/// Most inputs (GitHub's `workflow_dispatch` takes at most 10) or variables.
pub const MAX_VALUES: usize = 10;
/// Longest name, ref, workflow or value accepted.
const MAX_CHARS: usize = 256;
/// The placeholders a value may name.
pub const PLACEHOLDERS: [&str; 5] = ["change", "service", "environment", "failed_sha", "sha"];

/// A service's `rollback:` section: one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RollbackAutomation {
    /// A GitHub Actions workflow run by `workflow_dispatch`.
    Github(GithubRollback),
    /// A GitLab pipeline on a ref, with variables.
    Gitlab(GitlabRollback),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRollback {
    /// `owner/name`.
    pub repository: String,
    /// The workflow's file name (`rollback.yml`) or id.
    pub workflow: String,
    /// The branch or tag the workflow runs on.
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabRollback {
    /// The project's id (`42`) or path (`group/project`).
    pub project: String,
    /// The branch or tag the pipeline runs on.
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// What a failure knows, for the placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub change: &'a str,
    pub service: &'a str,
    pub environment: &'a str,
    pub failed_sha: Option<&'a str>,
    /// What ran in production before the failed deployment.
    pub last_good_sha: Option<&'a str>,
}

/// The request that runs a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    pub forge: Forge,
    /// The repository (GitHub) or project (GitLab).
    pub target: String,
    /// The workflow (GitHub only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The inputs (GitHub) or variables (GitLab), placeholders filled.
    pub values: BTreeMap<String, String>,
}

impl RollbackAutomation {
    /// Adds the problems of the section, under `at` (`services[0].rollback`).
    pub(in crate::domain) fn check(&self, p: &mut Problems, at: &str) {
        let (values, field) = match self {
            RollbackAutomation::Github(g) => {
                let at = format!("{at}.github");
                let parts: Vec<&str> = g.repository.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|s| !plain(s)) {
                    p.add(format!("{at}.repository"), format!("owner/name; got {:?}", g.repository));
                }
                let file = g.workflow.ends_with(".yml") || g.workflow.ends_with(".yaml");
                let id = !g.workflow.is_empty() && g.workflow.chars().all(|c| c.is_ascii_digit());
                if !(plain(&g.workflow) && !g.workflow.contains('/') && (file || id)) {
                    p.add(
                        format!("{at}.workflow"),
                        format!("a workflow file name (rollback.yml) or id; got {:?}", g.workflow),
                    );
                }
                check_ref(p, &at, &g.git_ref);
                (&g.inputs, format!("{at}.inputs"))
            }
            RollbackAutomation::Gitlab(g) => {
                let at = format!("{at}.gitlab");
                if !plain(&g.project) || g.project.starts_with('/') || g.project.ends_with('/') {
                    p.add(
                        format!("{at}.project"),
                        format!("a project id (42) or path (group/project); got {:?}", g.project),
                    );
                }
                check_ref(p, &at, &g.git_ref);
                (&g.variables, format!("{at}.variables"))
            }
        };
        if values.len() > MAX_VALUES {
            p.add(&field, format!("at most {MAX_VALUES} entries; got {}", values.len()));
        }
        for (name, value) in values {
            let word = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !word || name.len() > MAX_CHARS {
                p.add(format!("{field}.{name}"), "a name of letters, digits, _ and -, starting with a letter or _");
            }
            if value.chars().count() > MAX_CHARS || value.chars().any(char::is_control) {
                p.add(format!("{field}.{name}"), format!("at most {MAX_CHARS} characters, no control characters"));
            }
            if let Err(unknown) = fill(value, &|_| Some(String::new())) {
                p.add(
                    format!("{field}.{name}"),
                    format!(
                        "{{{unknown}}} is not a placeholder; use {}",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                    ),
                );
            }
        }
    }

    /// The request for `failure`, or why none can be made (a value names
    /// `{sha}` or `{failed_sha}` and it is not known).
    pub fn dispatch(&self, failure: &Failure<'_>) -> Result<Dispatch, String> {
        let lookup = |name: &str| match name {
            "change" => Some(failure.change.to_owned()),
            "service" => Some(failure.service.to_owned()),
            "environment" => Some(failure.environment.to_owned()),
            "failed_sha" => failure.failed_sha.map(str::to_owned),
            "sha" => failure.last_good_sha.map(str::to_owned),
            _ => None,
        };
        let (forge, target, workflow, git_ref, values) = match self {
            RollbackAutomation::Github(g) => {
                (Forge::Github, &g.repository, Some(g.workflow.clone()), &g.git_ref, &g.inputs)
            }
            RollbackAutomation::Gitlab(g) => (Forge::Gitlab, &g.project, None, &g.git_ref, &g.variables),
        };
        let values = values
            .iter()
            .map(|(name, value)| {
                let filled = fill(value, &lookup).map_err(|missing| match missing.as_str() {
                    "sha" => "no earlier production sha of the service and environment is known".to_owned(),
                    other => format!("{{{other}}} is not known for this deployment"),
                })?;
                Ok((name.clone(), filled))
            })
            .collect::<Result<_, String>>()?;
        Ok(Dispatch { forge, target: target.clone(), workflow, git_ref: git_ref.clone(), values })
    }
}

fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CHARS && s.trim() == s && !s.chars().any(|c| c.is_control() || c == ' ')
}

fn check_ref(p: &mut Problems, at: &str, git_ref: &str) {
    if !plain(git_ref) {
        p.add(format!("{at}.ref"), format!("a branch or tag name; got {git_ref:?}"));
    }
}

/// `value` with every `{name}` replaced by `lookup(name)`; the first name
/// it has no value for is the error.
fn fill(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(name.to_owned());
        }
        out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What became of a change's automated rollback, on its post-mortem draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomatedRollback {
    /// When the hub dispatched it (or gave up).
    pub at: chrono::DateTime<chrono::Utc>,
    /// The failed deployment it answers (`github deployment 1234 of acme/payments-api`).
    pub failed_deployment: String,
    pub dispatched: bool,
    /// What was asked of the forge, when a request could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Dispatch>,
    /// Why it was not dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A change's `rollback_plan`: whether a failed production deployment of it
/// runs its services' configured rollback by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackPlan {
    pub automated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(inputs: &[(&str, &str)]) -> RollbackAutomation {
        RollbackAutomation::Github(GithubRollback {
            repository: "acme/payments-api".into(),
            workflow: "rollback.yml".into(),
            git_ref: "main".into(),
            inputs: inputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        })
    }

    fn failure(last_good: Option<&'static str>) -> Failure<'static> {
        Failure {
            change: "chg-1",
            service: "payments",
            environment: "production",
            failed_sha: Some("bbbbbbb"),
            last_good_sha: last_good,
        }
    }

    fn problems(r: &RollbackAutomation) -> Vec<String> {
        let mut p = Problems::default();
        r.check(&mut p, "services[0].rollback");
        p.finish()
            .err()
            .map(|e| e.listed().iter().map(|f| format!("{}: {}", f.field, f.message)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn reads_the_catalog_section_of_either_forge() {
        let read = |v: serde_json::Value| serde_json::from_value::<RollbackAutomation>(v);
        let github_section = serde_json::json!({"github": {"repository": "acme/payments-api",
            "workflow": "rollback.yml", "ref": "main", "inputs": {"sha": "{sha}"}}});
        assert_eq!(read(github_section).ok(), Some(github(&[("sha", "{sha}")])));
        let gitlab = read(serde_json::json!({"gitlab": {"project": "42", "ref": "main",
            "variables": {"ROLLBACK_SHA": "{sha}"}}}));
        assert!(matches!(gitlab, Ok(RollbackAutomation::Gitlab(ref g)) if g.project == "42"));
        let unknown =
            serde_json::json!({"github": {"repository": "a/b", "workflow": "r.yml", "ref": "main", "branch": "x"}});
        assert!(read(unknown).is_err(), "an unknown field");
    }

    #[test]
    fn fills_the_placeholders_with_what_the_failure_knows() {
        let r = github(&[("sha", "{sha}"), ("note", "roll back {change} in {environment} (was {failed_sha})")]);
        let d = r.dispatch(&failure(Some("aaaaaaa"))).expect("dispatch");
        assert_eq!(
            (d.forge, d.target.as_str(), d.workflow.as_deref(), d.git_ref.as_str()),
            (Forge::Github, "acme/payments-api", Some("rollback.yml"), "main")
        );
        assert_eq!(d.values["sha"], "aaaaaaa");
        assert_eq!(d.values["note"], "roll back chg-1 in production (was bbbbbbb)");
        let none = r.dispatch(&failure(None)).expect_err("no sha to return to");
        assert!(none.contains("no earlier production sha"), "{none}");
        assert!(github(&[("change", "{change}")]).dispatch(&failure(None)).is_ok(), "{{sha}} unused");
    }

    #[test]
    fn names_every_field_at_fault() {
        assert_eq!(problems(&github(&[("sha", "{sha}")])), Vec::<String>::new());
        let bad = RollbackAutomation::Github(GithubRollback {
            repository: "payments-api".into(),
            workflow: ".github/workflows/rollback.yml".into(),
            git_ref: " main".into(),
            inputs: [("9lives".to_owned(), "x".to_owned()), ("sha".to_owned(), "{commit}".to_owned())].into(),
        });
        let found = problems(&bad);
        for field in ["github.repository", "github.workflow", "github.ref", "github.inputs.9lives", "github.inputs.sha"]
        {
            assert!(
                found.iter().any(|p| p.starts_with(&format!("services[0].rollback.{field}:"))),
                "{field}: {found:?}"
            );
        }
        let too_many = github(
            &(0..11).map(|i| (["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"][i], "x")).collect::<Vec<_>>(),
        );
        assert!(problems(&too_many).iter().any(|p| p.contains("at most 10")));
    }
}
