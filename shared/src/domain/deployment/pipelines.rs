//! The catalog's `pipelines:` section: what a pipeline's deployment means as
//! a change. Production is what `correlation.production_environments` names
//! (one definition for the tenant).
//!
//! ```yaml
//! pipelines:
//!   production:                  # production deployments by the tier of their service; first match wins
//!     - {tiers: [1], type: normal}
//!     - {tiers: [2, 3, 4], type: standard}
//!   emergency_words: [hotfix, emergency]   # in a production deployment's ref or description: emergency
//!   rollback_words: [rollback, revert]     # in its ref or description: a successful one rolled back
//!   deploy_workflows: [deploy]             # workflow runs (GitHub Actions, GitLab pipelines) that deploy
//!   workflow_environment: production       # where they deploy to
//! ```
//!
//! A non-production deployment is always `recorded`: never approval-gated.

use serde::{Deserialize, Serialize};

use crate::domain::change::ChangeType;
use crate::domain::validation::Problems;

/// Where a deploy workflow deploys to unless the catalog says otherwise.
pub const DEFAULT_DEPLOY_WORKFLOW_ENVIRONMENT: &str = "production";
/// Most rules, words or workflow names in each list.
pub const MAX_LIST: usize = 20;

/// A production deployment's change type by the tier of its service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// The tiers (1 to 4) this rule is for; empty: every tier.
    #[serde(default)]
    pub tiers: Vec<u8>,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
}

/// The tenant's `pipelines:` settings; every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinePolicy {
    /// Production deployments' types by tier, first match wins; `normal` when none matches.
    #[serde(default)]
    pub production: Vec<TierRule>,
    /// Words (whole, ignoring case) in a production deployment's ref or
    /// description that make it an emergency.
    #[serde(default = "default_emergency_words")]
    pub emergency_words: Vec<String>,
    /// Words in a deployment's ref or description that make it a rollback.
    #[serde(default = "default_rollback_words")]
    pub rollback_words: Vec<String>,
    /// Names (ignoring case) of the workflow runs that deploy; none by default.
    #[serde(default)]
    pub deploy_workflows: Vec<String>,
    /// The environment a deploy workflow deploys to.
    #[serde(default = "default_workflow_environment")]
    pub workflow_environment: String,
}

fn default_emergency_words() -> Vec<String> {
    vec!["hotfix".into(), "emergency".into()]
}

fn default_rollback_words() -> Vec<String> {
    vec!["rollback".into(), "revert".into()]
}

fn default_workflow_environment() -> String {
    DEFAULT_DEPLOY_WORKFLOW_ENVIRONMENT.to_owned()
}

impl Default for PipelinePolicy {
    fn default() -> Self {
        Self {
            production: vec![],
            emergency_words: default_emergency_words(),
            rollback_words: default_rollback_words(),
            deploy_workflows: vec![],
            workflow_environment: default_workflow_environment(),
        }
    }
}

/// Whether any of `words` is a whole word of any of `texts`, ignoring case
/// (`hotfix/payments-timeout` and `[hotfix] timeouts` both name `hotfix`).
fn mentions<'a>(words: &[String], texts: impl IntoIterator<Item = &'a str>) -> bool {
    texts.into_iter().any(|text| {
        text.split(|c: char| !c.is_alphanumeric())
            .any(|w| !w.is_empty() && words.iter().any(|word| word.eq_ignore_ascii_case(w)))
    })
}

impl PipelinePolicy {
    /// The type of a change a deployment makes: `recorded` outside
    /// production; in production an emergency when its ref or description
    /// names one, else the first rule for the service's tier, else `normal`.
    pub fn change_type<'a>(
        &self,
        production: bool,
        tier: Option<u8>,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> ChangeType {
        if !production {
            return ChangeType::Recorded;
        }
        if mentions(&self.emergency_words, texts) {
            return ChangeType::Emergency;
        }
        self.production
            .iter()
            .find(|r| r.tiers.is_empty() || tier.is_some_and(|t| r.tiers.contains(&t)))
            .map_or(ChangeType::Normal, |r| r.change_type)
    }

    /// Whether a deployment with this ref and description rolls something back.
    pub fn is_rollback<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> bool {
        mentions(&self.rollback_words, texts)
    }

    /// Whether a workflow run of this name deploys.
    pub fn deploys(&self, workflow: &str) -> bool {
        let workflow = workflow.trim();
        self.deploy_workflows.iter().any(|w| w.eq_ignore_ascii_case(workflow))
    }

    /// Adds the problems of the settings, under `pipelines`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        if self.production.len() > MAX_LIST {
            p.add("pipelines.production", format!("at most {MAX_LIST} rules"));
        }
        for (i, rule) in self.production.iter().enumerate() {
            for (j, tier) in rule.tiers.iter().enumerate() {
                if !(1..=4).contains(tier) {
                    p.add(format!("pipelines.production[{i}].tiers[{j}]"), format!("tiers are 1 to 4; got {tier}"));
                }
            }
        }
        for (field, list) in [
            ("emergency_words", &self.emergency_words),
            ("rollback_words", &self.rollback_words),
            ("deploy_workflows", &self.deploy_workflows),
        ] {
            if list.len() > MAX_LIST {
                p.add(format!("pipelines.{field}"), format!("at most {MAX_LIST} names"));
            }
            for (i, name) in list.iter().enumerate() {
                check_name(p, format!("pipelines.{field}[{i}]"), name);
            }
        }
        check_name(p, "pipelines.workflow_environment".into(), &self.workflow_environment);
    }
}

fn check_name(p: &mut Problems, path: String, name: &str) {
    let clean = name.trim() == name && !name.chars().any(char::is_control);
    if !clean || name.is_empty() || name.chars().count() > 64 {
        p.add(
            path,
            format!("a name is 1 to 64 characters, without control characters or surrounding spaces; got {name:?}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> PipelinePolicy {
        serde_json::from_value(v).expect("pipelines")
    }

    #[test]
    fn without_settings_production_is_normal_and_everything_else_recorded() {
        let p = PipelinePolicy::default();
        assert_eq!(p.change_type(true, Some(1), ["main"]), ChangeType::Normal);
        assert_eq!(p.change_type(true, None, ["main"]), ChangeType::Normal);
        assert_eq!(p.change_type(false, Some(1), ["hotfix/x"]), ChangeType::Recorded, "never approval-gated");
        assert!(!p.deploys("deploy"), "no workflow deploys unless the catalog names it");
        assert_eq!(p.workflow_environment, "production");
    }

    #[test]
    fn production_types_follow_the_first_rule_for_the_tier_and_emergency_words_win() {
        let p = policy(json!({
            "production": [{"tiers": [1], "type": "normal"}, {"tiers": [2, 3], "type": "standard"}],
            "deploy_workflows": ["Deploy"]
        }));
        assert_eq!(p.change_type(true, Some(1), ["main"]), ChangeType::Normal);
        assert_eq!(p.change_type(true, Some(3), ["main"]), ChangeType::Standard);
        assert_eq!(p.change_type(true, Some(4), ["main"]), ChangeType::Normal, "no rule: normal");
        assert_eq!(p.change_type(true, Some(3), ["hotfix/payments-timeout"]), ChangeType::Emergency);
        assert_eq!(p.change_type(true, Some(3), ["main", "[EMERGENCY] stop the bleeding"]), ChangeType::Emergency);
        assert_eq!(p.change_type(true, Some(3), ["hotfixes"]), ChangeType::Standard, "whole words only");
        assert!(p.deploys("deploy") && !p.deploys("build"));
        assert!(p.is_rollback(["Revert payments to v1.2"]) && !p.is_rollback(["main"]));
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let p = policy(json!({
            "production": [{"tiers": [0, 2, 5], "type": "normal"}],
            "emergency_words": [" hotfix"],
            "deploy_workflows": [""],
            "workflow_environment": ""
        }));
        let mut problems = Problems::default();
        p.check(&mut problems);
        let errors = problems.finish().expect_err("invalid");
        let fields: Vec<&str> = errors.listed().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "pipelines.production[0].tiers[0]",
                "pipelines.production[0].tiers[2]",
                "pipelines.emergency_words[0]",
                "pipelines.deploy_workflows[0]",
                "pipelines.workflow_environment"
            ]
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = serde_json::from_value::<PipelinePolicy>(json!({"environments": ["prod"]})).expect_err("unknown");
        assert!(err.to_string().contains("unknown field `environments`"), "{err}");
    }
}
