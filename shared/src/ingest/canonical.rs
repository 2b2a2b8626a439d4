//! Canonical hub events: what every source is normalized into.
//!
//! A normalizer turns one vendor payload into [`Canonical`] values: the fact
//! ([`Fact`], one variant per `detail-type`), when it happened, who did it,
//! the source's own id and a link back, and a [`ServiceKey`] naming what the
//! source says about the service. Ingest then resolves the service through
//! the catalog and wraps everything into a [`Detail`], the `detail` of a hub
//! event with `source = changehub.<origin>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(feature = "schema")]
use schemars::JsonSchema;

/// Where an event came from; the hub event's `source` is `changehub.<origin>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Github,
    Gitlab,
    Pagerduty,
    Alertmanager,
    Incidentio,
    Aws,
    Argocd,
}

impl Origin {
    /// Every source, in declaration order.
    pub const ALL: [Origin; 7] = [
        Origin::Github,
        Origin::Gitlab,
        Origin::Pagerduty,
        Origin::Alertmanager,
        Origin::Incidentio,
        Origin::Aws,
        Origin::Argocd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Github => "github",
            Origin::Gitlab => "gitlab",
            Origin::Pagerduty => "pagerduty",
            Origin::Alertmanager => "alertmanager",
            Origin::Incidentio => "incidentio",
            Origin::Aws => "aws",
            Origin::Argocd => "argocd",
        }
    }

    pub fn parse(s: &str) -> Option<Origin> {
        Origin::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The hub event `source` for this origin.
    pub fn source(self) -> String {
        format!("{}{}", crate::domain::event::SOURCE_PREFIX, self.as_str())
    }
}

/// What the source says about the service, before the catalog resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "by", content = "key", rename_all = "snake_case")]
pub enum ServiceKey {
    /// `owner/name` (GitHub) or `group/project` (GitLab); Argo CD: its
    /// application's `repoURL`, read the same way.
    Repository(String),
    /// A PagerDuty service id, e.g. `PWIXJZS`.
    PagerdutyService(String),
    /// An incident.io service or affected-component name.
    IncidentioService(String),
    /// The value of an alert's `service` label: already a service name.
    AlertLabel(String),
    /// An AWS resource: its ARN (when known), its id and its tags. A
    /// `changehub:service` tag names the service directly.
    AwsResource { arn: Option<String>, resource_id: Option<String>, tags: BTreeMap<String, String> },
}

/// The tag on an AWS resource that names its service.
pub const SERVICE_TAG: &str = "changehub:service";

// ----------------------------------------------------------------------------
// Facts: one struct per kind of event, one `detail-type` each.

/// A deployment, as GitHub (deployment, deployment_status), GitLab
/// (Deployment Hook) or Argo CD (a sync operation's notification) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Deployment {
    pub repository: String,
    pub deployment_id: String,
    pub environment: String,
    /// created, queued, pending, in_progress, running, success, failure, error, canceled, inactive
    pub state: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    pub description: Option<String>,
    /// Change ids mentioned by the deployment (description, payload, ref).
    pub change_ids: Vec<String>,
    /// The job that ran it (GitHub: the status's check run; GitLab: the
    /// deployable job), for a failed deployment's post-mortem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The job's log (GitHub: the status's `log_url`, else its `target_url`;
    /// GitLab: the deployable job's page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The pull request deployed, when the source names it (GitHub: the
    /// workflow run's pull request or its merge title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// The person behind it when the sender is a bot (GitHub: the workflow
    /// run's triggering actor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
    /// The source marks it as a rollback (GitHub: `rollback: true` or a
    /// `rollback` label in the payload, or a task naming a rollback; Argo
    /// CD: a person's sync of a revision other than the tracked head).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// A CI workflow run or pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct WorkflowRun {
    pub repository: String,
    pub run_id: String,
    pub name: Option<String>,
    pub branch: Option<String>,
    pub sha: Option<String>,
    /// requested, in_progress, completed (GitHub) or the GitLab pipeline status
    pub status: String,
    /// success, failure, cancelled, ... when completed
    pub conclusion: Option<String>,
    pub trigger: Option<String>,
    /// The first failed job (GitLab: a pipeline's failed build, its stage
    /// and failure reason), for a failed deployment's post-mortem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_job: Option<String>,
}

/// A pull request (GitHub) or merge request (GitLab).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct PullRequest {
    pub repository: String,
    pub number: u64,
    /// opened, synchronized, reopened, edited, labeled, unlabeled, ready_for_review, closed, merged
    pub action: String,
    pub title: String,
    pub merged: bool,
    pub head_branch: Option<String>,
    pub base_branch: Option<String>,
    pub head_sha: Option<String>,
    pub merge_sha: Option<String>,
    pub author: Option<String>,
    pub labels: Vec<String>,
    /// Change ids found in the title, body, head branch or labels.
    pub change_ids: Vec<String>,
    /// The GitHub App installation the webhook came through (`installation.id`):
    /// the merge gate's calls for this repository use its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
}

/// Commits pushed to a repository's default branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Push {
    pub repository: String,
    pub branch: String,
    pub before: String,
    pub after: String,
    pub commit_count: u64,
    pub forced: bool,
    /// Change ids found in the commit messages.
    pub change_ids: Vec<String>,
}

/// GitHub asks whether a deployment may proceed (deployment protection rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DeploymentGate {
    pub repository: String,
    pub environment: String,
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    /// Where the decision is to be posted.
    pub callback_url: String,
    pub change_ids: Vec<String>,
    /// The GitHub App installation the webhook came through (`installation.id`):
    /// the callback is posted with its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
}

/// An incident (PagerDuty, incident.io).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Incident {
    pub incident_id: String,
    pub number: Option<u64>,
    pub title: String,
    /// triggered, acknowledged, resolved (or the vendor's own status name)
    pub status: String,
    pub priority: Option<String>,
    pub urgency: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A Prometheus Alertmanager alert (one per alert in a notification group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Alert {
    pub alertname: String,
    /// firing or resolved
    pub status: String,
    pub fingerprint: String,
    pub group_key: String,
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// A CloudWatch alarm changed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Alarm {
    pub alarm_name: String,
    pub alarm_arn: Option<String>,
    /// ALARM, OK, INSUFFICIENT_DATA
    pub state: String,
    pub previous_state: Option<String>,
    pub reason: Option<String>,
    pub account: String,
    pub region: String,
}

/// AWS Config recorded a configuration item change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ConfigurationChange {
    pub resource_type: String,
    pub resource_id: String,
    pub resource_arn: Option<String>,
    /// CREATE, UPDATE, DELETE
    pub change_type: String,
    /// The changed properties (paths from the configuration item diff).
    pub changed_properties: Vec<String>,
    /// CloudTrail event ids AWS Config relates to the change.
    pub related_events: Vec<String>,
    pub account: String,
    pub region: String,
}

/// An AWS Config rule's evaluation of a resource changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ComplianceChange {
    pub rule_name: String,
    pub resource_type: String,
    pub resource_id: String,
    /// COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE, INSUFFICIENT_DATA
    pub compliance: String,
    pub previous_compliance: Option<String>,
    pub account: String,
    pub region: String,
}

/// CloudFormation drift detection finished on a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DriftStatus {
    pub stack_id: String,
    /// DRIFTED, IN_SYNC, UNKNOWN, NOT_CHECKED
    pub drift_status: String,
    /// DETECTION_COMPLETE, DETECTION_FAILED, ...
    pub detection_status: Option<String>,
    pub account: String,
    pub region: String,
}

/// A CloudFormation stack (or one of its resources) changed status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct StackStatus {
    pub stack_id: String,
    /// The logical id, when a resource (not the stack) changed.
    pub logical_resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub account: String,
    pub region: String,
}

/// A mutating AWS API call recorded by CloudTrail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ApiCall {
    pub event_id: String,
    /// `service:Action`, e.g. `ec2:AuthorizeSecurityGroupIngress`
    pub action: String,
    /// Who made the call: the caller's ARN, or the session issuer for assumed roles.
    pub actor_arn: Option<String>,
    /// IAMUser, AssumedRole, Root, AWSService, ...
    pub actor_type: Option<String>,
    pub principal_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// ARNs (or ids) of the resources the call touched.
    pub resources: Vec<String>,
    pub error_code: Option<String>,
    pub account: String,
    pub region: String,
    /// Everything CloudTrail's `userIdentity` says of the caller: what
    /// `actor_arn` and the event's `actor` summarize.
    /// (Boxed: it is the largest part of any fact.)
    #[serde(default)]
    pub identity: Box<CallerIdentity>,
    /// The request's key parameters: ids, names and ARNs of what the call
    /// changed (`groupId`, `roleName`, `bucketName`...), and for security
    /// group rules a summary (`tcp 22 from 0.0.0.0/0`). Never documents
    /// (policies are named, not copied).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// The caller of an API call, as CloudTrail's `userIdentity` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct CallerIdentity {
    /// IAMUser, AssumedRole, Root, AWSService, FederatedUser, IdentityCenterUser, ...
    pub kind: Option<String>,
    /// The caller's ARN (an assumed role's session ARN).
    pub arn: Option<String>,
    pub principal_id: Option<String>,
    pub account_id: Option<String>,
    /// An IAM user's name, or the name CloudTrail gives an Identity Center user.
    pub user_name: Option<String>,
    /// The role (or user) an assumed-role session was issued from.
    pub issuer_arn: Option<String>,
    /// The assumed-role session's name (often the person or the CI run).
    pub session_name: Option<String>,
    /// The identity set when the role was first assumed, kept across role chaining.
    pub source_identity: Option<String>,
    /// The IAM Identity Center user the call was made on behalf of (its user id).
    pub on_behalf_of: Option<String>,
    /// The identity store of `on_behalf_of`.
    pub identity_store: Option<String>,
    /// The AWS service that made the call for the caller (`cloudformation.amazonaws.com`).
    pub invoked_by: Option<String>,
    /// Whether the session was signed in with MFA, when CloudTrail says.
    pub mfa: Option<bool>,
}

/// Every kind of canonical event, tagged with its `detail-type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detail_type", content = "data")]
pub enum Fact {
    #[serde(rename = "Deployment Created")]
    DeploymentCreated(Deployment),
    #[serde(rename = "Deployment Status Changed")]
    DeploymentStatusChanged(Deployment),
    #[serde(rename = "Workflow Run Changed")]
    WorkflowRunChanged(WorkflowRun),
    #[serde(rename = "Pull Request Changed")]
    PullRequestChanged(PullRequest),
    #[serde(rename = "Default Branch Pushed")]
    DefaultBranchPushed(Push),
    #[serde(rename = "Deployment Gate Requested")]
    DeploymentGateRequested(DeploymentGate),
    #[serde(rename = "Incident Triggered")]
    IncidentTriggered(Incident),
    #[serde(rename = "Incident Acknowledged")]
    IncidentAcknowledged(Incident),
    #[serde(rename = "Incident Resolved")]
    IncidentResolved(Incident),
    #[serde(rename = "Incident Reopened")]
    IncidentReopened(Incident),
    #[serde(rename = "Incident Priority Changed")]
    IncidentPriorityChanged(Incident),
    #[serde(rename = "Alert Firing")]
    AlertFiring(Alert),
    #[serde(rename = "Alert Resolved")]
    AlertResolved(Alert),
    #[serde(rename = "Alarm State Changed")]
    AlarmStateChanged(Alarm),
    #[serde(rename = "Configuration Changed")]
    ConfigurationChanged(ConfigurationChange),
    #[serde(rename = "Compliance Changed")]
    ComplianceChanged(ComplianceChange),
    #[serde(rename = "Drift Detected")]
    DriftDetected(DriftStatus),
    #[serde(rename = "Drift Status Changed")]
    DriftStatusChanged(DriftStatus),
    #[serde(rename = "Stack Status Changed")]
    StackStatusChanged(StackStatus),
    #[serde(rename = "API Call Recorded")]
    ApiCallRecorded(ApiCall),
}

/// Every canonical `detail-type`, in the order of [`Fact`]'s variants.
pub const DETAIL_TYPES: [&str; 20] = [
    "Deployment Created",
    "Deployment Status Changed",
    "Workflow Run Changed",
    "Pull Request Changed",
    "Default Branch Pushed",
    "Deployment Gate Requested",
    "Incident Triggered",
    "Incident Acknowledged",
    "Incident Resolved",
    "Incident Reopened",
    "Incident Priority Changed",
    "Alert Firing",
    "Alert Resolved",
    "Alarm State Changed",
    "Configuration Changed",
    "Compliance Changed",
    "Drift Detected",
    "Drift Status Changed",
    "Stack Status Changed",
    "API Call Recorded",
];

/// The canonical `detail-type` a person means: its exact name, in any case,
/// or its schema file's stem (`deployment-status-changed`).
pub fn detail_type(name: &str) -> Option<&'static str> {
    let spaced = name.trim().replace('-', " ");
    DETAIL_TYPES.into_iter().find(|t| t.eq_ignore_ascii_case(&spaced))
}

impl Fact {
    /// The change ids the event names (deployments, pull requests, pushes, gates).
    pub fn change_ids(&self) -> &[String] {
        match self {
            Fact::DeploymentCreated(d) | Fact::DeploymentStatusChanged(d) => &d.change_ids,
            Fact::PullRequestChanged(p) => &p.change_ids,
            Fact::DefaultBranchPushed(p) => &p.change_ids,
            Fact::DeploymentGateRequested(g) => &g.change_ids,
            _ => &[],
        }
    }

    /// The hub event's `detail-type`, and the fact's own fields.
    pub fn split(&self) -> (String, serde_json::Value) {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => {
                let detail_type =
                    m.remove("detail_type").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                (detail_type, m.remove("data").unwrap_or(serde_json::Value::Null))
            }
            _ => (String::new(), serde_json::Value::Null),
        }
    }
}

/// One normalized event, before the service is resolved and the tenant and
/// delivery are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    pub origin: Origin,
    pub fact: Fact,
    /// The source's own id of the thing (deployment id, incident id, alert
    /// fingerprint, AWS event id...).
    pub external_id: String,
    pub occurred_at: DateTime<Utc>,
    /// Who acted: a login, an email or an ARN.
    pub actor: Option<String>,
    pub environment: Option<String>,
    /// A link back to the original, for people.
    pub url: Option<String>,
    pub service_key: Option<ServiceKey>,
}

/// How the service of an event was found, or why it was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ServiceResolution {
    /// What the source said (absent when it said nothing usable).
    pub key: Option<ServiceKey>,
    /// `null` when the service is unknown; `reason` then says why.
    pub reason: Option<String>,
}

/// The `detail` of a canonical hub event. `F` is the fact's struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Detail<F> {
    /// The hub event's id (the envelope's `id` is EventBridge's own, new on
    /// every PutEvents): a consumer drops a second event with the same
    /// `event_id`, such as the copies a retried partial batch produces.
    pub event_id: String,
    pub tenant: String,
    pub origin: Origin,
    /// The catalog service, or `null` (see `service_resolution.reason`).
    pub service: Option<String>,
    pub service_resolution: ServiceResolution,
    pub environment: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub actor: Option<String>,
    pub external_id: String,
    pub url: Option<String>,
    /// The sender's delivery id (or AWS event id) this event came in with.
    pub delivery_id: String,
    pub data: F,
}

/// What a normalizer makes of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    Events(Vec<Canonical>),
    /// A valid delivery of a kind the hub does not use (`star`, `fork`,
    /// `ping`, a push to another branch...): answered 200 `{"ignored": kind}`.
    Ignored(String),
}

/// A delivery that cannot be normalized: answered 400, naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NormalizeError {
    /// A JSON path (`pull_request.number`) or header name, when one is at fault.
    pub field: Option<String>,
    pub message: String,
    /// The body is not JSON at all.
    pub malformed: bool,
}

impl NormalizeError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { field: None, message: message.into(), malformed: false }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), message: message.into(), malformed: false }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self { field: None, message: message.into(), malformed: true }
    }
}

/// Change ids mentioned in free text: hyphenated UUIDs (the hub's change ids),
/// lowercased, each once, in order of first mention.
pub fn change_ids<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for text in texts {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i + 36 <= bytes.len() {
            // Bytes, not str slices: a UUID is ASCII, and a window may cut through
            // a multi-byte character of the surrounding text.
            let window = &bytes[i..i + 36];
            let boundary_before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            let boundary_after = i + 36 == bytes.len() || !bytes[i + 36].is_ascii_alphanumeric();
            if boundary_before && boundary_after && is_uuid(window) {
                let id = String::from_utf8_lossy(window).to_ascii_lowercase();
                if !found.contains(&id) {
                    found.push(id);
                }
                i += 36;
            } else {
                i += 1;
            }
        }
    }
    found
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The file name of a detail-type's schema in `events/schemas/`.
pub fn schema_file(detail_type: &str) -> String {
    format!("{}.json", detail_type.to_ascii_lowercase().replace(' ', "-"))
}

/// The JSON Schema of every canonical event's `detail`, by detail-type.
#[cfg(feature = "schema")]
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn of<F: JsonSchema>(detail_type: &'static str) -> (&'static str, serde_json::Value) {
        let mut schema = schemars::schema_for!(Detail<F>).to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert("title".into(), detail_type.into());
            obj.insert("$id".into(), format!("https://changehub.dev/schemas/{}", schema_file(detail_type)).into());
            obj.insert(
                "description".into(),
                format!("The `detail` of a `{detail_type}` event on the changehub bus.").into(),
            );
        }
        (detail_type, schema)
    }
    vec![
        of::<Deployment>("Deployment Created"),
        of::<Deployment>("Deployment Status Changed"),
        of::<WorkflowRun>("Workflow Run Changed"),
        of::<PullRequest>("Pull Request Changed"),
        of::<Push>("Default Branch Pushed"),
        of::<DeploymentGate>("Deployment Gate Requested"),
        of::<Incident>("Incident Triggered"),
        of::<Incident>("Incident Acknowledged"),
        of::<Incident>("Incident Resolved"),
        of::<Incident>("Incident Reopened"),
        of::<Incident>("Incident Priority Changed"),
        of::<Alert>("Alert Firing"),
        of::<Alert>("Alert Resolved"),
        of::<Alarm>("Alarm State Changed"),
        of::<ConfigurationChange>("Configuration Changed"),
        of::<ComplianceChange>("Compliance Changed"),
        of::<DriftStatus>("Drift Detected"),
        of::<DriftStatus>("Drift Status Changed"),
        of::<StackStatus>("Stack Status Changed"),
        of::<ApiCall>("API Call Recorded"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_are_found_in_free_text_once_each() {
        let a = "3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90";
        let b = "01A1FCA3-2807-77B8-8313-5A6AAFCA8D3A";
        let ids = change_ids([
            format!("Deploy payments ({a})").as_str(),
            format!("feature/{b}-db-upgrade").as_str(),
            format!("refs {a} again; x{a}y is not one").as_str(),
            "no id here, nor 3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c9",
            "ünïcode ✓ text",
            // A multi-byte character straddling the 36th byte of a window.
            &format!("{}✓", "x".repeat(35)),
        ]);
        assert_eq!(ids, vec![a.to_owned(), b.to_ascii_lowercase()]);
    }

    proptest::proptest! {
        #[test]
        fn change_ids_never_panic_and_only_return_uuids(text in "\\PC{0,120}") {
            for id in change_ids([text.as_str()]) {
                proptest::prop_assert!(is_uuid(id.as_bytes()));
            }
        }
    }

    #[test]
    fn detail_types_are_named_as_written_or_as_their_schema_files() {
        assert_eq!(detail_type("Deployment Status Changed"), Some("Deployment Status Changed"));
        assert_eq!(detail_type("deployment-status-changed"), Some("Deployment Status Changed"));
        assert_eq!(detail_type(" api call recorded "), Some("API Call Recorded"));
        assert_eq!(detail_type("Deployment"), None);
        for t in DETAIL_TYPES {
            // Each is a variant's tag: only its missing data is refused.
            let err = serde_json::from_value::<Fact>(serde_json::json!({"detail_type": t})).expect_err("no data");
            assert!(!err.to_string().contains("unknown variant"), "{t}: {err}");
        }
    }

    #[cfg(feature = "schema")]
    #[test]
    fn every_schema_is_of_a_listed_detail_type() {
        let names: Vec<&str> = schemas().into_iter().map(|(t, _)| t).collect();
        assert_eq!(names, DETAIL_TYPES);
    }

    #[test]
    fn a_fact_names_the_change_ids_it_carries() {
        let push = Fact::DefaultBranchPushed(Push {
            repository: "acme/payments".into(),
            branch: "main".into(),
            before: "a".into(),
            after: "b".into(),
            commit_count: 1,
            forced: false,
            change_ids: vec!["3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90".into()],
        });
        assert_eq!(push.change_ids(), ["3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90"]);
        let alert = Fact::AlertFiring(Alert {
            alertname: "x".into(),
            status: "firing".into(),
            fingerprint: "f".into(),
            group_key: "g".into(),
            labels: BTreeMap::new(),
            summary: None,
            starts_at: DateTime::<Utc>::UNIX_EPOCH,
            ends_at: None,
        });
        assert!(alert.change_ids().is_empty());
    }

    #[test]
    fn facts_serialize_with_their_detail_type() {
        let fact = Fact::IncidentResolved(Incident {
            incident_id: "Q1".into(),
            number: Some(7),
            title: "x".into(),
            status: "resolved".into(),
            priority: None,
            urgency: None,
            created_at: None,
        });
        let v = serde_json::to_value(&fact).expect("json");
        assert_eq!(v["detail_type"], "Incident Resolved");
        assert_eq!(v["data"]["incident_id"], "Q1");
    }
}
