//! A failed or rolled-back production change's post-mortem draft: what was
//! deployed, by whom, when, the failing job and its log, the error the CI
//! sent, the incidents related to the change, and a timeline. Derived from
//! the change's merged deployments and its related incidents only, so every
//! order and repetition of the same statuses gives the same draft; the
//! post-implementation review starts from it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Deployed, Report};
use crate::domain::change::RelatedIncident;
use crate::domain::correlation::Outcome;
use crate::domain::incident::Source;

/// The deployment a post-mortem is about, as its source named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostMortemDeployment {
    pub source: String,
    pub repository: String,
    pub deployment_id: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
}

/// An incident related to the change, as the post-mortem lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostMortemIncident {
    pub incident_id: String,
    pub source: Source,
    pub external_id: String,
    pub started_at: DateTime<Utc>,
}

/// One moment of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// The draft: see the module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostMortem {
    /// `failed` or `rolled_back`.
    pub outcome: Outcome,
    /// What was deployed: the latest deployment that is not itself a rollback.
    pub deployed: PostMortemDeployment,
    /// Who deployed it, as the source names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When it started (the source's time), if a start was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it went wrong: the failure's (or the rollback's) time.
    pub at: DateTime<Utc>,
    /// The rollback deployment, when one rolled it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<PostMortemDeployment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The error text the CI sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The incidents related to the change, by their start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<PostMortemIncident>,
    /// The deployments' statuses and the incidents' starts, in time order.
    pub timeline: Vec<TimelineEntry>,
    /// The automated rollback: dispatched (what was asked of the forge), or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_rollback: Option<super::rollback::AutomatedRollback>,
}

impl PostMortemDeployment {
    fn of(d: &Deployed) -> Self {
        let o = &d.origin;
        Self {
            source: o.source.clone(),
            repository: o.repository.clone(),
            deployment_id: o.deployment_id.clone(),
            environment: o.environment.clone(),
            sha: o.sha.clone(),
            git_ref: o.git_ref.clone(),
            pull_request: d.report.as_ref().and_then(|r| r.detail.pull_request),
        }
    }
}

/// The order deployments are compared in: by their latest end (then their
/// report), else when first seen; the same whatever order they were recorded in.
fn key(d: &Deployed) -> (DateTime<Utc>, Option<&Report>, &str, &str) {
    let at = d.ended.map_or(d.first_seen_at, |e| e.at);
    (at, d.report.as_ref(), &d.origin.source, &d.origin.deployment_id)
}

fn outcome_of(d: &Deployed) -> Option<Outcome> {
    d.ended.map(|e| e.outcome)
}

impl PostMortem {
    /// The draft for a change whose deployments went wrong; `None` when none
    /// of them failed or was rolled back.
    pub fn draft(deployments: &[Deployed], incidents: &[RelatedIncident]) -> Option<PostMortem> {
        let wrong = deployments
            .iter()
            .filter(|d| matches!(outcome_of(d), Some(Outcome::Failed | Outcome::RolledBack)))
            .max_by(|a, b| key(a).cmp(&key(b)))?;
        let outcome = if deployments.iter().any(|d| outcome_of(d) == Some(Outcome::RolledBack)) {
            Outcome::RolledBack
        } else {
            Outcome::Failed
        };
        let rollback = deployments
            .iter()
            .filter(|d| outcome_of(d) == Some(Outcome::RolledBack))
            .max_by(|a, b| key(a).cmp(&key(b)));
        let deployed = deployments
            .iter()
            .filter(|d| outcome_of(d) != Some(Outcome::RolledBack))
            .max_by(|a, b| key(a).cmp(&key(b)))
            .unwrap_or(wrong);
        // The failure's own words; a rollback's when nothing failed.
        let failed = if outcome_of(deployed) == Some(Outcome::Failed) { deployed } else { wrong };
        let mut said = failed.report.as_ref().map(|r| r.detail.clone()).unwrap_or_default();
        if outcome_of(failed) != Some(Outcome::Failed) {
            // A rollback that succeeded sent no error.
            said.error = None;
        }
        let by = deployed.report.as_ref().and_then(|r| r.detail.by.clone());
        let mut listed: Vec<PostMortemIncident> = incidents
            .iter()
            .map(|r| PostMortemIncident {
                incident_id: r.incident_id.clone(),
                source: r.source,
                external_id: r.external_id.clone(),
                started_at: r.started_at,
            })
            .collect();
        listed.sort_by(|a, b| (a.started_at, &a.incident_id).cmp(&(b.started_at, &b.incident_id)));
        Some(PostMortem {
            outcome,
            deployed: PostMortemDeployment::of(deployed),
            by,
            started_at: deployed.started_at,
            at: wrong.ended.map_or(wrong.first_seen_at, |e| e.at),
            rollback: rollback.map(PostMortemDeployment::of),
            failing_job: said.job,
            log_url: said.log_url,
            error: said.error,
            timeline: timeline(deployments, &listed),
            incidents: listed,
            automated_rollback: None,
        })
    }

    /// The draft as a sentence: what a review's note says when the reviewer
    /// adds nothing.
    pub fn summary(&self) -> String {
        let d = &self.deployed;
        let sha = d.sha.as_deref().map(|s| format!(" ({})", super::short_sha(s))).unwrap_or_default();
        let pr = d.pull_request.map(|n| format!(", pull request #{n}")).unwrap_or_default();
        let by = self.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
        let what = match self.outcome {
            Outcome::RolledBack => "was rolled back",
            _ => "failed",
        };
        let mut out = format!(
            "{} deployment {} of {}{sha}{pr} to {}{by} {what} at {}",
            d.source,
            d.deployment_id,
            d.repository,
            d.environment,
            self.at.to_rfc3339()
        );
        if let Some(job) = &self.failing_job {
            out.push_str(&format!("; failing job {job}"));
        }
        if let Some(error) = &self.error {
            out.push_str(&format!("; error: {error}"));
        }
        if let Some(log) = &self.log_url {
            out.push_str(&format!("; log {log}"));
        }
        if !self.incidents.is_empty() {
            let ids: Vec<&str> = self.incidents.iter().map(|i| i.incident_id.as_str()).collect();
            out.push_str(&format!("; incidents {}", ids.join(", ")));
        }
        out
    }
}

/// Every deployment's first status, start and end, and every incident's start, in time order.
fn timeline(deployments: &[Deployed], incidents: &[PostMortemIncident]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for d in deployments {
        let o = &d.origin;
        let name = format!("{} deployment {} to {}", o.source, o.deployment_id, o.environment);
        let sha = o.sha.as_deref().map(|s| format!(" of {}", super::short_sha(s))).unwrap_or_default();
        out.push(TimelineEntry { at: d.first_seen_at, what: format!("{name}{sha} first reported") });
        if let Some(at) = d.started_at {
            out.push(TimelineEntry { at, what: format!("{name} started") });
        }
        if let Some(r) = &d.report {
            let word = match r.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::RolledBack => "rolled back (succeeded as a rollback)",
            };
            let error = r.detail.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            out.push(TimelineEntry { at: r.at, what: format!("{name} {word}{error}") });
        }
    }
    for i in incidents {
        let what = format!("incident {} ({} {}) started", i.incident_id, i.source.as_str(), i.external_id);
        out.push(TimelineEntry { at: i.started_at, what });
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::super::{DeploymentOrigin, Detail, Step};
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 14, 10, 0, 0).single().unwrap_or_default() + Duration::minutes(m)
    }

    fn origin(id: &str, sha: &str) -> DeploymentOrigin {
        DeploymentOrigin {
            source: "github".into(),
            repository: "acme-corp/checkout-service".into(),
            deployment_id: id.into(),
            sha: Some(sha.into()),
            git_ref: Some("main".into()),
            environment: "production".into(),
            url: None,
            actor: Some("github-actions[bot]".into()),
        }
    }

    fn failing() -> Detail {
        Detail {
            job: Some("deploy-production".into()),
            log_url: Some("https://github.com/acme-corp/checkout-service/actions/runs/1/job/2".into()),
            error: Some("helm upgrade timed out".into()),
            pull_request: Some(418),
            by: Some("raj-acme".into()),
        }
    }

    fn incident(id: &str, m: i64) -> RelatedIncident {
        RelatedIncident {
            incident_id: id.into(),
            source: Source::Pagerduty,
            external_id: format!("P{id}"),
            reasons: vec![],
            confidence: 0.9,
            started_at: t(m),
            counted: None,
        }
    }

    #[test]
    fn a_failed_deployment_drafts_what_was_deployed_by_whom_the_job_the_log_and_the_error() {
        let mut d = Deployed::new(origin("1", "64db262264ce70c5"), Step::Started, t(0));
        d.observe_with(Step::Finished(Outcome::Failed), t(7), &failing());
        let pm = PostMortem::draft(&[d], &[incident("inc-1", 9)]).expect("a draft");
        assert_eq!(pm.outcome, Outcome::Failed);
        assert_eq!(pm.deployed.sha.as_deref(), Some("64db262264ce70c5"));
        assert_eq!(pm.deployed.pull_request, Some(418));
        assert_eq!((pm.by.as_deref(), pm.started_at, pm.at), (Some("raj-acme"), Some(t(0)), t(7)));
        assert_eq!(pm.failing_job.as_deref(), Some("deploy-production"));
        assert_eq!(pm.error.as_deref(), Some("helm upgrade timed out"));
        assert_eq!(pm.incidents.len(), 1);
        let whats: Vec<&str> = pm.timeline.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "github deployment 1 to production of 64db262264ce first reported",
                "github deployment 1 to production started",
                "github deployment 1 to production failed: helm upgrade timed out",
                "incident inc-1 (pagerduty Pinc-1) started"
            ]
        );
        assert!(
            pm.summary().contains("failing job deploy-production; error: helm upgrade timed out"),
            "{}",
            pm.summary()
        );
    }

    #[test]
    fn a_rollback_names_what_it_rolled_back_and_the_rollback() {
        let mut first = Deployed::new(origin("1", "aaaaaaaa"), Step::Finished(Outcome::Succeeded), t(0));
        first.observe_with(Step::Finished(Outcome::Succeeded), t(0), &failing());
        let back = Deployed::new(origin("2", "bbbbbbbb"), Step::Finished(Outcome::RolledBack), t(20));
        let pm = PostMortem::draft(&[back.clone(), first.clone()], &[]).expect("a draft");
        assert_eq!(pm.outcome, Outcome::RolledBack);
        assert_eq!(pm.deployed.deployment_id, "1");
        assert_eq!(pm.rollback.map(|r| r.deployment_id), Some("2".to_owned()));
        assert_eq!(pm.at, t(20));
        assert_eq!(PostMortem::draft(&[first], &[]), None, "nothing went wrong");
    }

    #[test]
    fn statuses_in_any_order_and_repeated_give_the_same_draft() {
        let statuses = [
            (Step::Waiting, t(0), Detail::default()),
            (Step::Started, t(1), Detail::default()),
            (Step::Finished(Outcome::Failed), t(7), failing()),
            (
                Step::Finished(Outcome::Failed),
                t(7),
                Detail { error: Some("another copy's words".into()), ..Detail::default() },
            ),
        ];
        let fold = |order: &[usize]| {
            let (s, at, detail) = &statuses[order[0]];
            let mut d = Deployed::new(origin("1", "aaaaaaaa"), *s, *at);
            d.observe_with(*s, *at, detail);
            for i in &order[1..] {
                let (s, at, detail) = &statuses[*i];
                d.observe_with(*s, *at, detail);
            }
            PostMortem::draft(&[d], &[incident("b", 9), incident("a", 8)])
        };
        let first = fold(&[0, 1, 2, 3]);
        assert!(first.is_some());
        for order in [[3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
            assert_eq!(fold(&order), first, "{order:?}");
        }
        assert_eq!(fold(&[2, 2, 0, 1, 3, 3]), first, "duplicates");
    }
}
