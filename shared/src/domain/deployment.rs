//! Deployments as changes: what a pipeline's deployment is as a change
//! record (the pure part of `app::deployments`).
//!
//! A deployment is seen as a series of statuses (queued, in progress,
//! success...), each with the source's own time, in any order and any
//! number of times. [`Deployed`] merges them so that every order and every
//! repetition of the same statuses gives the same record: starts keep the
//! earliest time, outcomes the latest. The change the deployment belongs to
//! follows it ([`route`]) only along the lifecycle, never around approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::change::ChangeState;
use super::correlation::{Implementation, Outcome};

mod pipelines;
mod postmortem;
pub mod production;
pub mod rollback;

pub use pipelines::{DEFAULT_DEPLOY_WORKFLOW_ENVIRONMENT, PipelinePolicy, TierRule};
pub use postmortem::{PostMortem, PostMortemDeployment, PostMortemIncident, TimelineEntry};

/// Most deployments one change keeps on its record; more are audited only.
pub const MAX_DEPLOYMENTS: usize = 50;

/// Where a change made from a deployment came from: the same shape for
/// every source (a GitLab deployment's id and a workflow run's id alike in
/// `deployment_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentOrigin {
    /// `github` or `gitlab`.
    pub source: String,
    pub repository: String,
    /// The source's id of the deployment (or of the workflow run that deploys).
    pub deployment_id: String,
    pub sha: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub environment: String,
    /// A link to the deployment, for people.
    pub url: Option<String>,
    /// Who deployed, as the source names them.
    pub actor: Option<String>,
}

impl DeploymentOrigin {
    /// Whether `other` names the same deployment.
    pub fn same_deployment(&self, other: &DeploymentOrigin) -> bool {
        self.source == other.source
            && self.repository.eq_ignore_ascii_case(&other.repository)
            && self.deployment_id == other.deployment_id
    }
}

/// Where a deployment is, as one status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Created, queued, pending, waiting: nothing deployed yet.
    Waiting,
    /// In progress (GitHub) or running (GitLab).
    Started,
    /// Ended this way.
    Finished(Outcome),
}

impl Step {
    /// The step a source's status names; `None` for a status that says
    /// nothing about this deployment (`inactive`: a later one replaced it).
    /// A successful deployment that is a rollback (`rollback`) ended as
    /// rolled back.
    pub fn of(status: &str, rollback: bool) -> Option<Step> {
        let status = status.trim().to_ascii_lowercase();
        Some(match status.as_str() {
            "created"
            | "queued"
            | "pending"
            | "waiting"
            | "requested"
            | "blocked"
            | "manual"
            | "scheduled"
            | "preparing"
            | "waiting_for_resource" => Step::Waiting,
            "in_progress" | "running" => Step::Started,
            "success" | "succeeded" if rollback => Step::Finished(Outcome::RolledBack),
            "success" | "succeeded" => Step::Finished(Outcome::Succeeded),
            "failure" | "failed" | "error" | "timed_out" | "canceled" | "cancelled" | "startup_failure" => {
                Step::Finished(Outcome::Failed)
            }
            _ => return None,
        })
    }
}

/// How a deployment ended, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ended {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
}

/// What a status says beyond its step, for a post-mortem: the source's own
/// words, as ingest found them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Detail {
    /// The job that ran it (`deploy-production`, `job 1556230`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The error text the CI sent (the status's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pull request deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// Who deployed (the person behind a bot, when the source says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The outcome a deployment's latest end came with, and what its source
/// said then. Merged like [`Ended`]: the latest wins (at equal times the
/// worse outcome, then the larger detail), so any order gives the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Report {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub detail: Detail,
}

/// One deployment as a change records it: every status seen, merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub origin: DeploymentOrigin,
    /// The earliest status time seen.
    pub first_seen_at: DateTime<Utc>,
    /// The earliest start seen (in progress, running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The latest outcome seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
    /// What the source said with its latest outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

impl Deployed {
    pub fn new(origin: DeploymentOrigin, step: Step, at: DateTime<Utc>) -> Self {
        let mut first = Self { origin, first_seen_at: at, started_at: None, ended: None, report: None };
        first.observe(step, at);
        first
    }

    /// [`Deployed::observe`], keeping what the status said when it ends the deployment.
    pub fn observe_with(&mut self, step: Step, at: DateTime<Utc>, detail: &Detail) {
        self.observe(step, at);
        if let Step::Finished(outcome) = step {
            let report = Report { at, outcome, detail: detail.clone() };
            self.report = self.report.take().max(Some(report));
        }
    }

    /// Merges one status seen at `at`: the earliest start and the latest
    /// outcome (at equal times the worse one) win, so the order statuses
    /// arrive in and their repetitions change nothing.
    pub fn observe(&mut self, step: Step, at: DateTime<Utc>) {
        self.first_seen_at = self.first_seen_at.min(at);
        match step {
            Step::Waiting => {}
            Step::Started => self.started_at = Some(self.started_at.map_or(at, |s| s.min(at))),
            Step::Finished(outcome) => {
                self.ended = self.ended.max(Some(Ended { at, outcome }));
                let report = Report { at, outcome, detail: Detail::default() };
                self.report = self.report.take().max(Some(report));
            }
        }
    }

    /// When it ran, by the source's times: from its earliest start (or its
    /// end, when no start was seen) to its latest outcome.
    pub fn implementation(&self) -> Option<Implementation> {
        match (self.started_at, self.ended) {
            (started, Some(Ended { at, outcome })) => {
                Some(Implementation::Finished { started_at: started.unwrap_or(at).min(at), ended_at: at, outcome })
            }
            (Some(started_at), None) => Some(Implementation::Ongoing { started_at }),
            (None, None) => None,
        }
    }

    /// The state the deployment says its change is in: implementing once
    /// started, then the outcome's; `None` while it only waits.
    pub fn state(&self) -> Option<ChangeState> {
        match (self.started_at, self.ended) {
            (_, Some(ended)) => Some(state_of(ended.outcome)),
            (Some(_), None) => Some(ChangeState::Implementing),
            (None, None) => None,
        }
    }

    /// A sentence for the audit trail and for people.
    pub fn describe(&self) -> String {
        let o = &self.origin;
        let status = match (self.started_at, self.ended) {
            (_, Some(e)) => format!("{} at {}", outcome_word(e.outcome), e.at.to_rfc3339()),
            (Some(s), None) => format!("started at {}", s.to_rfc3339()),
            (None, None) => format!("waiting since {}", self.first_seen_at.to_rfc3339()),
        };
        let by = o.actor.as_deref().map(|a| format!(" by {a}")).unwrap_or_default();
        let sha = o.sha.as_deref().map(|s| format!(" ({})", short_sha(s))).unwrap_or_default();
        format!(
            "{} deployment {} of {}{sha} to {}{by}: {status}",
            o.source, o.deployment_id, o.repository, o.environment
        )
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::RolledBack => "rolled back",
    }
}

/// A sha as people read it: its first 12 characters (a sha is whatever
/// its source sent, so characters, not bytes).
pub fn short_sha(sha: &str) -> &str {
    sha.char_indices().nth(12).map_or(sha, |(at, _)| &sha[..at])
}

/// The state an implementation that ended this way leaves its change in.
pub fn state_of(outcome: Outcome) -> ChangeState {
    match outcome {
        Outcome::Succeeded => ChangeState::Completed,
        Outcome::Failed => ChangeState::Failed,
        Outcome::RolledBack => ChangeState::RolledBack,
    }
}

/// Whether a successful deployment of `origin` puts back a sha the change
/// deployed to the same environment before another: a rollback. Knowable
/// from the change's own deployments only (those recorded before it).
pub fn redeploys_earlier(deployments: &[Deployed], origin: &DeploymentOrigin) -> bool {
    let Some(sha) = origin.sha.as_deref() else {
        return false;
    };
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let others: Vec<&Deployed> = deployments
        .iter()
        .filter(|d| !d.origin.same_deployment(origin) && same(&d.origin.environment, &origin.environment))
        .filter(|d| d.ended.is_some_and(|e| e.outcome == Outcome::Succeeded))
        .collect();
    let earlier =
        others.iter().filter(|d| d.origin.sha.as_deref().is_some_and(|s| same(s, sha))).map(|d| d.first_seen_at).min();
    earlier.is_some_and(|first| {
        others.iter().any(|d| d.first_seen_at > first && d.origin.sha.as_deref().is_some_and(|s| !same(s, sha)))
    })
}

/// The transitions that take a change from `from` to `to` along its
/// lifecycle as a deployment drives it: an approved change is scheduled,
/// then implementing, then has its outcome; a failed one may be rolled back.
/// Empty when it is there already; `None` when a deployment may not move it
/// there (not approved yet: change control is not bypassed; or already
/// ended another way).
pub fn route(from: ChangeState, to: ChangeState) -> Option<Vec<ChangeState>> {
    use ChangeState::*;
    if from == to {
        return Some(vec![]);
    }
    let ahead: &[ChangeState] = match from {
        Approved => &[Scheduled, Implementing],
        Scheduled => &[Implementing],
        Implementing => &[],
        Failed if to == RolledBack => return Some(vec![RolledBack]),
        // A verifying change ends only by going wrong; its bake completes it.
        Verifying if matches!(to, Failed | RolledBack) => return Some(vec![to]),
        _ => return None,
    };
    let mut path: Vec<ChangeState> = ahead.iter().copied().take_while(|s| *s != to).collect();
    path.push(to);
    // Each step must be one the lifecycle allows (an outcome only from implementing).
    let mut at = from;
    for s in &path {
        if !at.can_move_to(*s) {
            return None;
        }
        at = *s;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().unwrap_or_default() + Duration::minutes(m)
    }

    fn origin() -> DeploymentOrigin {
        DeploymentOrigin {
            source: "github".into(),
            repository: "acme/payments-api".into(),
            deployment_id: "1234".into(),
            sha: Some("a1b2c3d4e5f6a7b8".into()),
            git_ref: Some("main".into()),
            environment: "production".into(),
            url: None,
            actor: Some("octocat".into()),
        }
    }

    #[test]
    fn statuses_name_their_steps_and_a_successful_rollback_ends_rolled_back() {
        assert_eq!(Step::of("queued", false), Some(Step::Waiting));
        assert_eq!(Step::of("in_progress", false), Some(Step::Started));
        assert_eq!(Step::of("running", false), Some(Step::Started));
        assert_eq!(Step::of("success", false), Some(Step::Finished(Outcome::Succeeded)));
        assert_eq!(Step::of("success", true), Some(Step::Finished(Outcome::RolledBack)));
        assert_eq!(Step::of("failure", true), Some(Step::Finished(Outcome::Failed)));
        assert_eq!(Step::of("error", false), Some(Step::Finished(Outcome::Failed)));
        assert_eq!(Step::of("FAILED", false), Some(Step::Finished(Outcome::Failed)));
        assert_eq!(Step::of("inactive", false), None);
    }

    #[test]
    fn the_implementation_runs_from_the_earliest_start_to_the_latest_outcome() {
        let mut d = Deployed::new(origin(), Step::Waiting, t(0));
        assert_eq!((d.implementation(), d.state()), (None, None));
        d.observe(Step::Started, t(2));
        assert_eq!(d.implementation(), Some(Implementation::Ongoing { started_at: t(2) }));
        assert_eq!(d.state(), Some(ChangeState::Implementing));
        d.observe(Step::Finished(Outcome::Succeeded), t(9));
        let done = Implementation::Finished { started_at: t(2), ended_at: t(9), outcome: Outcome::Succeeded };
        assert_eq!(d.implementation(), Some(done));
        assert_eq!(d.state(), Some(ChangeState::Completed));
        let only_the_end = Deployed::new(origin(), Step::Finished(Outcome::Failed), t(5));
        assert_eq!(only_the_end.implementation(), Some(Implementation::deployed(t(5), Outcome::Failed)));
    }

    #[test]
    fn a_deployment_moves_a_change_only_along_its_lifecycle() {
        use ChangeState::*;
        assert_eq!(route(Approved, Completed), Some(vec![Scheduled, Implementing, Completed]));
        assert_eq!(route(Scheduled, Implementing), Some(vec![Implementing]));
        assert_eq!(route(Implementing, Failed), Some(vec![Failed]));
        assert_eq!(route(Failed, RolledBack), Some(vec![RolledBack]));
        assert_eq!(route(Completed, Completed), Some(vec![]));
        for not_approved in [Draft, Submitted, Rejected, Cancelled] {
            assert_eq!(route(not_approved, Implementing), None, "{not_approved}");
            assert_eq!(route(not_approved, Completed), None, "{not_approved}");
        }
        assert_eq!(route(Completed, Failed), None, "ended another way");
        assert_eq!(route(Implementing, Scheduled), None, "never backwards");
    }

    #[test]
    fn describes_the_deployment_for_people() {
        let mut d = Deployed::new(origin(), Step::Started, t(0));
        d.observe(Step::Finished(Outcome::Failed), t(3));
        assert_eq!(
            d.describe(),
            "github deployment 1234 of acme/payments-api (a1b2c3d4e5f6) to production by octocat: failed at 2026-12-01T10:03:00+00:00"
        );
    }

    #[test]
    fn a_sha_of_any_characters_is_shortened_at_a_character() {
        let sha = "0123456789aé-and-more";
        assert_eq!(short_sha(sha), "0123456789aé");
        let mut d = Deployed::new(DeploymentOrigin { sha: Some(sha.into()), ..origin() }, Step::Started, t(0));
        d.observe(Step::Finished(Outcome::Failed), t(3));
        assert!(d.describe().contains("(0123456789aé)"), "{}", d.describe());
        assert!(production::same_sha("0123456789aé", "0123456789aébc") && !production::same_sha("éééééé1", "éééééé2"));
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Waiting),
            Just(Step::Started),
            Just(Step::Finished(Outcome::Succeeded)),
            Just(Step::Finished(Outcome::Failed)),
            Just(Step::Finished(Outcome::RolledBack)),
        ]
    }

    proptest! {
        /// Whatever its source sent as a sha, it is shortened to at most 12
        /// characters of it, and compared, without a panic.
        #[test]
        fn any_sha_is_shortened_and_compared(sha in "\\PC{0,20}", other in "\\PC{0,20}") {
            let short = short_sha(&sha);
            prop_assert!(sha.starts_with(short) && short.chars().count() == sha.chars().count().min(12));
            prop_assert_eq!(production::same_sha(&sha, &other), production::same_sha(&other, &sha));
        }

        /// Any order and any repetition of the same statuses give the same record.
        #[test]
        fn statuses_merge_the_same_in_any_order(
            seen in proptest::collection::vec((any_step(), 0i64..60), 1..8),
            shuffle in proptest::collection::vec(any::<prop::sample::Index>(), 8),
        ) {
            let fold = |statuses: &[(Step, i64)]| {
                let (first, rest) = statuses.split_first().map(|(f, r)| (*f, r)).unwrap_or((seen[0], &[]));
                let mut d = Deployed::new(origin(), first.0, t(first.1));
                for (step, m) in rest {
                    d.observe(*step, t(*m));
                }
                d
            };
            let mut other = seen.clone();
            for (i, ix) in shuffle.iter().enumerate().take(other.len()) {
                let j = ix.index(other.len());
                other.swap(i, j);
            }
            other.extend(seen.iter().take(2).copied());
            prop_assert_eq!(fold(&seen), fold(&other));
        }
    }
}
