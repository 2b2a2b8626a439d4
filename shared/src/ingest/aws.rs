//! AWS events as an EventBridge rule delivers them: the whole envelope
//! (`version, id, detail-type, source, account, time, region, resources,
//! detail`). The envelope `id` is the delivery id.
//!
//! | `source` / `detail-type` | fact | `external_id` |
//! | --- | --- | --- |
//! | `aws.cloudwatch` / CloudWatch Alarm State Change | Alarm State Changed | alarm ARN (else name) |
//! | `aws.config` / Config Configuration Item Change | Configuration Changed | resource ARN (else id) |
//! | `aws.config` / Config Rules Compliance Change | Compliance Changed | resource id |
//! | `aws.cloudformation` / CloudFormation Drift Detection Status Change | Drift Detected (`DRIFTED`) or Drift Status Changed | stack id |
//! | `aws.cloudformation` / CloudFormation Stack (or Resource) Status Change | Stack Status Changed | stack id |
//! | any / AWS API Call via CloudTrail, mutating calls only | API Call Recorded | CloudTrail `eventID` |
//! | a tool's own (not `aws.*`) / Configuration Changed ([`ToolChange`]) | Configuration Changed | resource ARN (else id) |
//! | anything else | ignored: `"<source> <detail-type>"` | |
//!
//! `occurred_at` is the fact's own time where the event has one (the alarm's
//! new state timestamp, the configuration item capture time, the compliance
//! result time, the CloudTrail `eventTime`), else the envelope `time`. No AWS
//! event names an environment.
//!
//! The body is read twice: first `source` and `detail-type`, then the whole
//! envelope with the `detail` shape of that type, so a type the hub ignores
//! is never rejected for its detail.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::canonical::{
    Alarm, ApiCall, CallerIdentity, Canonical, ComplianceChange, ConfigurationChange, DriftStatus, Fact,
    NormalizeError, Normalized, Origin, ServiceKey, StackStatus,
};
use super::parse_body;

/// The envelope `id`, which EventBridge keeps across its delivery retries.
pub fn delivery_id(body: &[u8]) -> Result<String, NormalizeError> {
    let envelope: EnvelopeId = parse_body(body)?;
    let id = envelope.id.trim();
    if id.is_empty() {
        return Err(NormalizeError::field("id", "the event id is empty"));
    }
    Ok(id.to_owned())
}

/// One fact, or `Ignored` for the sources, types and read-only calls the hub does not use.
pub fn normalize(body: &[u8]) -> Result<Normalized, NormalizeError> {
    let head: Head = parse_body(body)?;
    match (head.source.as_str(), head.detail_type.as_str()) {
        ("aws.cloudwatch", "CloudWatch Alarm State Change") => Ok(alarm(parse_body(body)?)),
        ("aws.config", "Config Configuration Item Change") => configuration_item(parse_body(body)?),
        ("aws.config", "Config Rules Compliance Change") => compliance(parse_body(body)?),
        ("aws.cloudformation", "CloudFormation Drift Detection Status Change") => Ok(drift(parse_body(body)?)),
        ("aws.cloudformation", "CloudFormation Stack Status Change" | "CloudFormation Resource Status Change") => {
            Ok(stack_status(parse_body(body)?))
        }
        (_, "AWS API Call via CloudTrail") => Ok(api_call(parse_body(body)?)),
        (source, TOOL_DETAIL_TYPE) if !source.starts_with("aws.") => tool_change(parse_body(body)?),
        (source, detail_type) => Ok(Normalized::Ignored(format!("{source} {detail_type}"))),
    }
}

/// The one event a normalized AWS envelope gives.
fn event(
    fact: Fact,
    external_id: String,
    occurred_at: DateTime<Utc>,
    actor: Option<String>,
    key: Option<ServiceKey>,
) -> Normalized {
    Normalized::Events(vec![Canonical {
        origin: Origin::Aws,
        fact,
        external_id,
        occurred_at,
        actor,
        environment: None,
        url: None,
        service_key: key,
    }])
}

fn resource_key(
    arn: Option<String>,
    resource_id: Option<String>,
    tags: BTreeMap<String, String>,
) -> Option<ServiceKey> {
    Some(ServiceKey::AwsResource { arn, resource_id, tags })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

// ----------------------------------------------------------------------------
// CloudWatch

fn alarm(e: Envelope<AlarmDetail>) -> Normalized {
    let d = e.detail;
    let alarm_arn = non_empty(e.resources.first().cloned());
    let occurred_at = d.state.timestamp.as_deref().and_then(cloudwatch_time).unwrap_or(e.time);
    let fact = Fact::AlarmStateChanged(Alarm {
        alarm_name: d.alarm_name.clone(),
        alarm_arn: alarm_arn.clone(),
        state: d.state.value,
        previous_state: d.previous_state.map(|s| s.value),
        reason: non_empty(d.state.reason),
        account: e.account,
        region: e.region,
    });
    let key = resource_key(alarm_arn.clone(), Some(d.alarm_name.clone()), d.alarm_tags.unwrap_or_default());
    event(fact, alarm_arn.unwrap_or(d.alarm_name), occurred_at, None, key)
}

/// CloudWatch writes `2026-09-14T10:40:31.421+0000` (no colon in the offset).
fn cloudwatch_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

// ----------------------------------------------------------------------------
// AWS Config

fn configuration_item(e: Envelope<ConfigItemDetail>) -> Result<Normalized, NormalizeError> {
    let d = e.detail;
    // A full notification carries the item; an oversized one only its
    // summary (the full item is in S3), without tags or related events.
    let item = match (d.configuration_item, d.configuration_item_summary) {
        (Some(item), _) => item,
        (None, Some(summary)) => summary,
        (None, None) => {
            return Err(NormalizeError::field(
                "detail.configurationItem",
                "the notification has neither a configurationItem nor a configurationItemSummary",
            ));
        }
    };
    let diff = d.configuration_item_diff;
    let change_type = diff
        .as_ref()
        .and_then(|diff| non_empty(diff.change_type.clone()))
        .or_else(|| non_empty(item.change_type.clone()))
        .unwrap_or_else(|| change_type_from_status(item.configuration_item_status.as_deref()).to_owned());
    let changed_properties =
        diff.and_then(|diff| diff.changed_properties).map(|p| p.into_keys().collect()).unwrap_or_default();
    let arn = non_empty(item.arn);
    let occurred_at = item.configuration_item_capture_time.unwrap_or(e.time);
    let fact = Fact::ConfigurationChanged(ConfigurationChange {
        resource_type: item.resource_type,
        resource_id: item.resource_id.clone(),
        resource_arn: arn.clone(),
        change_type,
        changed_properties,
        related_events: item.related_events,
        account: e.account,
        region: e.region,
    });
    let external_id = arn.clone().unwrap_or_else(|| item.resource_id.clone());
    let key = resource_key(arn, Some(item.resource_id), item.tags.unwrap_or_default());
    Ok(event(fact, external_id, occurred_at, None, key))
}

/// When the diff does not say: `ResourceDiscovered` is a creation,
/// `ResourceDeleted*` a deletion, anything else an update.
fn change_type_from_status(status: Option<&str>) -> &'static str {
    match status {
        Some("ResourceDiscovered") => "CREATE",
        Some(s) if s.starts_with("ResourceDeleted") => "DELETE",
        _ => "UPDATE",
    }
}

fn compliance(e: Envelope<ComplianceDetail>) -> Result<Normalized, NormalizeError> {
    let d = e.detail;
    let new = d.new_evaluation_result;
    let qualifier = new.evaluation_result_identifier.and_then(|i| i.evaluation_result_qualifier);
    let from_qualifier =
        |f: fn(&Qualifier) -> &Option<String>| qualifier.as_ref().and_then(|q| non_empty(f(q).clone()));
    let missing =
        |name: &str| NormalizeError::field(format!("detail.{name}"), format!("the compliance change names no {name}"));
    let rule_name = non_empty(d.config_rule_name)
        .or_else(|| from_qualifier(|q| &q.config_rule_name))
        .ok_or_else(|| missing("configRuleName"))?;
    let resource_id =
        non_empty(d.resource_id).or_else(|| from_qualifier(|q| &q.resource_id)).ok_or_else(|| missing("resourceId"))?;
    let resource_type = non_empty(d.resource_type)
        .or_else(|| from_qualifier(|q| &q.resource_type))
        .ok_or_else(|| missing("resourceType"))?;
    let occurred_at = new.result_recorded_time.unwrap_or(e.time);
    let fact = Fact::ComplianceChanged(ComplianceChange {
        rule_name,
        resource_type,
        resource_id: resource_id.clone(),
        compliance: new.compliance_type,
        previous_compliance: d.old_evaluation_result.map(|r| r.compliance_type),
        account: e.account,
        region: e.region,
    });
    // The event has no resource ARN; the catalog is asked by resource id.
    let key = resource_key(None, Some(resource_id.clone()), BTreeMap::new());
    Ok(event(fact, resource_id, occurred_at, None, key))
}

/// The `detail-type` any tool posts a configuration change under.
pub const TOOL_DETAIL_TYPE: &str = "Configuration Changed";

/// The `detail` of a tool's own `Configuration Changed` event (Terraform or
/// OpenTofu after an apply, a CMDB, a Kubernetes audit webhook): one changed
/// resource, in the account and region of the envelope, at `occurred_at`
/// (else the envelope `time`). The resource maps to its service as AWS
/// Config's do: by ARN prefix, id, or a `changehub:service` tag.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolChange {
    /// `AWS::EC2::SecurityGroup`, or the tool's own type (`Kubernetes::apps/v1::Deployment`).
    pub resource_type: String,
    pub resource_id: String,
    #[serde(default)]
    pub resource_arn: Option<String>,
    /// CREATE, UPDATE or DELETE.
    pub change_type: String,
    #[serde(default)]
    pub changed_properties: Vec<String>,
    /// Who made it: an email, a login or an ARN.
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A link back to the run or the record, for people.
    #[serde(default)]
    pub url: Option<String>,
}

fn tool_change(e: Envelope<ToolChange>) -> Result<Normalized, NormalizeError> {
    let d = e.detail;
    let resource_id = non_empty(Some(d.resource_id))
        .ok_or_else(|| NormalizeError::field("detail.resource_id", "the change names no resource_id"))?;
    let change_type = d.change_type.trim().to_ascii_uppercase();
    if !["CREATE", "UPDATE", "DELETE"].contains(&change_type.as_str()) {
        return Err(NormalizeError::field(
            "detail.change_type",
            format!("change_type is CREATE, UPDATE or DELETE; got {:?}", d.change_type),
        ));
    }
    let arn = non_empty(d.resource_arn);
    let fact = Fact::ConfigurationChanged(ConfigurationChange {
        resource_type: d.resource_type,
        resource_id: resource_id.clone(),
        resource_arn: arn.clone(),
        change_type,
        changed_properties: d.changed_properties,
        related_events: Vec::new(),
        account: e.account,
        region: e.region,
    });
    let external_id = arn.clone().unwrap_or_else(|| resource_id.clone());
    let key = resource_key(arn, Some(resource_id), d.tags);
    Ok(Normalized::Events(vec![Canonical {
        origin: Origin::Aws,
        fact,
        external_id,
        occurred_at: d.occurred_at.unwrap_or(e.time),
        actor: non_empty(d.actor),
        environment: None,
        url: non_empty(d.url),
        service_key: key,
    }]))
}

// ----------------------------------------------------------------------------
// CloudFormation

fn drift(e: Envelope<DriftDetail>) -> Normalized {
    let d = e.detail;
    let drifted = d.status_details.stack_drift_status == "DRIFTED";
    let status = DriftStatus {
        stack_id: d.stack_id.clone(),
        drift_status: d.status_details.stack_drift_status,
        detection_status: non_empty(d.status_details.detection_status),
        account: e.account,
        region: e.region,
    };
    let fact = if drifted { Fact::DriftDetected(status) } else { Fact::DriftStatusChanged(status) };
    event(fact, d.stack_id.clone(), e.time, None, stack_key(d.stack_id))
}

fn stack_status(e: Envelope<StackDetail>) -> Normalized {
    let d = e.detail;
    let fact = Fact::StackStatusChanged(StackStatus {
        stack_id: d.stack_id.clone(),
        logical_resource_id: non_empty(d.logical_resource_id),
        resource_type: non_empty(d.resource_type),
        status: d.status_details.status,
        status_reason: non_empty(d.status_details.status_reason),
        account: e.account,
        region: e.region,
    });
    event(fact, d.stack_id.clone(), e.time, None, stack_key(d.stack_id))
}

/// A stack's key: its ARN, and its name as the resource id.
fn stack_key(stack_id: String) -> Option<ServiceKey> {
    let name = stack_name(&stack_id).map(str::to_owned);
    resource_key(Some(stack_id), name, BTreeMap::new())
}

/// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>` → `<name>`.
fn stack_name(stack_id: &str) -> Option<&str> {
    let resource = stack_id.splitn(6, ':').nth(5)?;
    resource.strip_prefix("stack/")?.split('/').next().filter(|n| !n.is_empty())
}

// ----------------------------------------------------------------------------
// CloudTrail

/// Call names that only read, for events without `readOnly`.
const READ_ONLY_PREFIXES: [&str; 5] = ["Get", "List", "Describe", "Head", "Lookup"];

/// Whether CloudTrail says the call changed nothing: its `readOnly` flag, or,
/// when absent, a read-only name.
fn is_read_only(read_only: Option<bool>, event_name: &str) -> bool {
    read_only.unwrap_or_else(|| READ_ONLY_PREFIXES.iter().any(|p| event_name.starts_with(p)))
}

/// A mutating call. For an assumed role, `actor_arn` is the role the session
/// was issued from (`arn:aws:iam::…:role/github-actions-deployer`): stable,
/// and what IAM policies and a catalog refer to. The session ARN
/// (`arn:aws:sts::…:assumed-role/<role>/<session>`, whose session name is
/// often the person or CI run) is the event's `actor`, and `principal_id`
/// keeps `<role id>:<session>`. For other identities `actor_arn` and `actor`
/// are both the caller's ARN; AWS services (no ARN) are named by `invokedBy`.
fn api_call(e: Envelope<CloudTrailDetail>) -> Normalized {
    let d = e.detail;
    if is_read_only(d.read_only, &d.event_name) {
        return Normalized::Ignored("read-only API call".into());
    }
    let service = d.event_source.strip_suffix(".amazonaws.com").unwrap_or(&d.event_source);
    let action = format!("{service}:{}", d.event_name);

    let identity = caller_identity(d.user_identity.unwrap_or_default());
    let caller_arn = identity.arn.clone();
    let issuer_arn = identity.issuer_arn.clone();
    let actor_type = identity.kind.clone();
    let actor_arn = match (actor_type.as_deref(), &issuer_arn) {
        (Some("AssumedRole"), Some(issuer)) => Some(issuer.clone()),
        _ => caller_arn.clone(),
    };
    let principal_id = identity.principal_id.clone();
    let actor = caller_arn
        .or_else(|| identity.invoked_by.clone())
        .or_else(|| identity.user_name.clone())
        .or_else(|| identity.on_behalf_of.clone())
        .or_else(|| principal_id.clone());

    let mut resources: Vec<String> = Vec::new();
    let named = d.resources.into_iter().flatten().filter_map(|r| non_empty(r.arn).or_else(|| non_empty(r.arn_prefix)));
    for arn in named.chain(e.resources.into_iter().filter_map(|r| non_empty(Some(r)))) {
        if !resources.contains(&arn) {
            resources.push(arn);
        }
    }
    // A call on nothing named says nothing about a service.
    let key = resources.first().and_then(|arn| resource_key(Some(arn.clone()), None, BTreeMap::new()));

    let occurred_at = d.event_time.unwrap_or(e.time);
    let fact = Fact::ApiCallRecorded(ApiCall {
        event_id: d.event_id.clone(),
        action,
        actor_arn,
        actor_type,
        principal_id,
        source_ip: non_empty(d.source_ip_address),
        user_agent: non_empty(d.user_agent),
        resources,
        error_code: non_empty(d.error_code),
        account: e.account,
        region: non_empty(d.aws_region).unwrap_or(e.region),
        identity: Box::new(identity),
        parameters: d.request_parameters.as_ref().map(key_parameters).unwrap_or_default(),
    });
    event(fact, d.event_id, occurred_at, actor, key)
}

/// The caller, every field CloudTrail gives trimmed, empty ones absent. The
/// session name is the last part of an assumed role's session ARN.
fn caller_identity(u: UserIdentity) -> CallerIdentity {
    let kind = non_empty(u.kind);
    let arn = non_empty(u.arn);
    let context = u.session_context.unwrap_or_default();
    let session_name = match kind.as_deref() {
        Some("AssumedRole") => arn.as_deref().and_then(|a| a.rsplit_once('/')).map(|(_, name)| name.to_owned()),
        _ => None,
    };
    let on_behalf_of = u.on_behalf_of.unwrap_or_default();
    CallerIdentity {
        kind,
        arn,
        principal_id: non_empty(u.principal_id),
        account_id: non_empty(u.account_id),
        user_name: non_empty(u.user_name),
        issuer_arn: context.session_issuer.and_then(|i| non_empty(i.arn)),
        session_name: non_empty(session_name),
        source_identity: non_empty(context.source_identity),
        on_behalf_of: non_empty(on_behalf_of.user_id),
        identity_store: non_empty(on_behalf_of.identity_store_arn),
        invoked_by: non_empty(u.invoked_by),
        mfa: context.attributes.and_then(|a| a.mfa_authenticated).and_then(|m| match m.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }),
    }
}

/// Most parameters a call keeps, and the longest value.
const MAX_PARAMETERS: usize = 16;
const MAX_PARAMETER_CHARS: usize = 256;

/// The request's key parameters: its top-level scalars named like ids,
/// names or ARNs, and a summary of security group rules (`ipPermissions`).
fn key_parameters(request: &serde_json::Value) -> BTreeMap<String, String> {
    let Some(fields) = request.as_object() else { return BTreeMap::new() };
    let named = |k: &str| ["Id", "Name", "Arn", "ARN", "Identifier", "Ids"].iter().any(|s| k.ends_with(s));
    let mut kept: BTreeMap<String, String> = fields
        .iter()
        .filter(|(k, _)| named(k))
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .take(MAX_PARAMETERS)
        .collect();
    if let Some(rules) = fields.get("ipPermissions").map(ip_permissions).filter(|r| !r.is_empty()) {
        kept.insert("ipPermissions".into(), rules);
    }
    for v in kept.values_mut() {
        if v.chars().count() > MAX_PARAMETER_CHARS {
            *v = v.chars().take(MAX_PARAMETER_CHARS).collect();
        }
    }
    kept
}

/// `tcp 5432 from 10.20.0.0/16; tcp 22 from 0.0.0.0/0`: each rule's
/// protocol, ports and sources, as CloudTrail's EC2 request writes them
/// (`items` lists).
fn ip_permissions(v: &serde_json::Value) -> String {
    let items = |v: Option<&serde_json::Value>| -> Vec<serde_json::Value> {
        v.and_then(|v| v.get("items")).and_then(|i| i.as_array()).cloned().unwrap_or_default()
    };
    let text = |v: &serde_json::Value, k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let rules: Vec<String> = items(Some(v))
        .iter()
        .map(|rule| {
            let protocol = text(rule, "ipProtocol").map(|p| if p == "-1" { "all".to_owned() } else { p });
            let ports = match (text(rule, "fromPort"), text(rule, "toPort")) {
                (Some(from), Some(to)) if from == to => Some(from),
                (Some(from), Some(to)) => Some(format!("{from}-{to}")),
                _ => None,
            };
            let sources: Vec<String> = items(rule.get("ipRanges"))
                .iter()
                .filter_map(|r| text(r, "cidrIp"))
                .chain(items(rule.get("ipv6Ranges")).iter().filter_map(|r| text(r, "cidrIpv6")))
                .chain(items(rule.get("groups")).iter().filter_map(|g| text(g, "groupId")))
                .chain(items(rule.get("prefixListIds")).iter().filter_map(|p| text(p, "prefixListId")))
                .collect();
            let mut words: Vec<String> = protocol.into_iter().chain(ports).collect();
            if !sources.is_empty() {
                words.push(format!("from {}", sources.join(", ")));
            }
            words.join(" ")
        })
        .collect();
    rules.join("; ")
}

// ----------------------------------------------------------------------------
// Envelopes and details, as AWS sends them. Only the fields read are declared.

#[derive(Deserialize)]
struct EnvelopeId {
    id: String,
}

#[derive(Deserialize)]
struct Head {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
}

#[derive(Deserialize)]
struct Envelope<D> {
    account: String,
    time: DateTime<Utc>,
    region: String,
    #[serde(default)]
    resources: Vec<String>,
    detail: D,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmDetail {
    alarm_name: String,
    state: AlarmState,
    previous_state: Option<AlarmState>,
    /// Present when the alarm propagates its tags.
    alarm_tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct AlarmState {
    value: String,
    reason: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigItemDetail {
    configuration_item_diff: Option<ConfigItemDiff>,
    configuration_item: Option<ConfigItem>,
    /// OversizedConfigurationItemChangeNotification only.
    configuration_item_summary: Option<ConfigItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigItemDiff {
    change_type: Option<String>,
    /// Property path → `{previousValue, updatedValue, changeType}`; only the paths are kept.
    changed_properties: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

/// A configuration item, or the summary of an oversized one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigItem {
    resource_type: String,
    resource_id: String,
    #[serde(rename = "ARN")]
    arn: Option<String>,
    #[serde(default)]
    related_events: Vec<String>,
    tags: Option<BTreeMap<String, String>>,
    configuration_item_capture_time: Option<DateTime<Utc>>,
    configuration_item_status: Option<String>,
    /// Summaries only.
    change_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComplianceDetail {
    config_rule_name: Option<String>,
    resource_id: Option<String>,
    resource_type: Option<String>,
    new_evaluation_result: EvaluationResult,
    old_evaluation_result: Option<EvaluationResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationResult {
    compliance_type: String,
    result_recorded_time: Option<DateTime<Utc>>,
    evaluation_result_identifier: Option<EvaluationResultIdentifier>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationResultIdentifier {
    evaluation_result_qualifier: Option<Qualifier>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Qualifier {
    config_rule_name: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DriftDetail {
    stack_id: String,
    status_details: DriftStatusDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DriftStatusDetails {
    stack_drift_status: String,
    detection_status: Option<String>,
}

/// Stack Status Change, and Resource Status Change with the resource fields.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StackDetail {
    stack_id: String,
    logical_resource_id: Option<String>,
    resource_type: Option<String>,
    status_details: StackStatusDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StackStatusDetails {
    status: String,
    status_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloudTrailDetail {
    #[serde(rename = "eventID")]
    event_id: String,
    event_name: String,
    event_source: String,
    event_time: Option<DateTime<Utc>>,
    read_only: Option<bool>,
    user_identity: Option<UserIdentity>,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
    user_agent: Option<String>,
    error_code: Option<String>,
    aws_region: Option<String>,
    /// Present for some calls (S3, KMS, STS...).
    resources: Option<Vec<TrailResource>>,
    /// Read for its key parameters only ([`key_parameters`]).
    request_parameters: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    /// IAMUser, AssumedRole, Root, AWSService, FederatedUser, ...
    #[serde(rename = "type")]
    kind: Option<String>,
    principal_id: Option<String>,
    arn: Option<String>,
    user_name: Option<String>,
    invoked_by: Option<String>,
    account_id: Option<String>,
    session_context: Option<SessionContext>,
    /// IAM Identity Center users (and sessions made on their behalf).
    on_behalf_of: Option<OnBehalfOf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SessionContext {
    session_issuer: Option<SessionIssuer>,
    source_identity: Option<String>,
    attributes: Option<SessionAttributes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAttributes {
    /// `"true"` or `"false"`, as text.
    mfa_authenticated: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OnBehalfOf {
    user_id: Option<String>,
    identity_store_arn: Option<String>,
}

#[derive(Deserialize)]
struct SessionIssuer {
    arn: Option<String>,
}

#[derive(Deserialize)]
struct TrailResource {
    #[serde(rename = "ARN")]
    arn: Option<String>,
    #[serde(rename = "ARNPrefix")]
    arn_prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::support::testing as fuzz;
    use crate::ingest::support::testing::{at, edited as edit};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const ALARM: &[u8] = include_bytes!("../../../events/aws/cloudwatch.alarm_state_change.json");
    const CONFIG_ITEM: &[u8] = include_bytes!("../../../events/aws/config.configuration_item_change.json");
    const COMPLIANCE: &[u8] = include_bytes!("../../../events/aws/config.rules_compliance_change.json");
    const DRIFT: &[u8] = include_bytes!("../../../events/aws/cloudformation.drift_detection_status_change.json");
    const STACK: &[u8] = include_bytes!("../../../events/aws/cloudformation.stack_status_change.json");
    const RESOURCE: &[u8] = include_bytes!("../../../events/aws/cloudformation.resource_status_change.json");
    const TRAIL_EC2: &[u8] = include_bytes!("../../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.json");
    const TRAIL_IAM: &[u8] = include_bytes!("../../../events/aws/cloudtrail.iam_put_role_policy.json");
    const TRAIL_S3: &[u8] = include_bytes!("../../../events/aws/cloudtrail.s3_put_bucket_policy.json");
    const SAMPLES: &[&[u8]] = &[ALARM, CONFIG_ITEM, COMPLIANCE, DRIFT, STACK, RESOURCE, TRAIL_EC2, TRAIL_IAM, TRAIL_S3];

    const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/checkout-service-prod/8e4f6a20-5c1b-11ef-9a3d-0affd2c3e4b5";
    const SG_ARN: &str = "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0a1b2c3d4e5f67890";
    const DEPLOYER_ROLE: &str = "arn:aws:iam::123456789012:role/github-actions-deployer";

    const TERRAFORM: &[u8] = include_bytes!("../../../events/tools/terraform.configuration_changed.json");
    const KUBERNETES: &[u8] = include_bytes!("../../../events/tools/kubernetes.configuration_changed.json");

    #[test]
    fn a_tools_configuration_change_names_its_resource_and_actor() {
        let c = one(TERRAFORM);
        let Fact::ConfigurationChanged(ch) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!((ch.resource_id.as_str(), ch.change_type.as_str()), ("sg-0a1b2c3d4e5f67890", "UPDATE"));
        assert_eq!(ch.resource_arn.as_deref(), Some(SG_ARN));
        assert_eq!((ch.account.as_str(), ch.region.as_str()), ("123456789012", "us-east-1"));
        assert_eq!(c.actor.as_deref(), Some("dev.lee@acme.example"));
        assert_eq!(c.occurred_at, at("2026-09-14T16:05:09Z"), "its own time, not the envelope's");
        assert!(c.url.as_deref().is_some_and(|u| u.contains("run-7Qk2mZ9xWbLr3NpA")));
        let c = one(KUBERNETES);
        let Some(ServiceKey::AwsResource { tags, arn: None, .. }) = &c.service_key else { panic!("{c:?}") };
        assert_eq!(tags.get(crate::ingest::canonical::SERVICE_TAG).map(String::as_str), Some("payments"));
        for (edit, field) in [
            (json!({"change_type": "APPLY"}), "detail.change_type"),
            (json!({"resource_id": " "}), "detail.resource_id"),
        ] {
            let mut v: Value = serde_json::from_slice(TERRAFORM).expect("json");
            for (k, x) in edit.as_object().expect("edit") {
                v["detail"][k] = x.clone();
            }
            let err = normalize(&serde_json::to_vec(&v).expect("bytes")).expect_err(field);
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
        }
        let mut v: Value = serde_json::from_slice(TERRAFORM).expect("json");
        v["detail"]["colour"] = json!("red");
        assert!(normalize(&serde_json::to_vec(&v).expect("bytes")).is_err(), "unknown fields are refused");
        v["source"] = json!("aws.config");
        assert!(
            matches!(normalize(&serde_json::to_vec(&v).expect("bytes")), Ok(Normalized::Ignored(_))),
            "AWS's own sources are read by their own types"
        );
    }

    fn one(body: &[u8]) -> Canonical {
        match normalize(body) {
            Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn detail(v: &mut Value) -> &mut serde_json::Map<String, Value> {
        v["detail"].as_object_mut().expect("detail")
    }

    fn api_call(c: &Canonical) -> &ApiCall {
        match &c.fact {
            Fact::ApiCallRecorded(call) => call,
            other => panic!("not an API call: {other:?}"),
        }
    }

    #[test]
    fn every_sample_is_common_aws_shaped() {
        for sample in SAMPLES {
            let c = one(sample);
            assert_eq!(c.origin, Origin::Aws);
            assert_eq!(c.environment, None);
            assert!(!c.external_id.is_empty());
        }
    }

    #[test]
    fn alarm_sample_becomes_alarm_state_changed_keyed_by_its_arn() {
        let c = one(ALARM);
        let Fact::AlarmStateChanged(a) = &c.fact else { panic!("{:?}", c.fact) };
        let arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-service-alb-5xx-high";
        assert_eq!(a.alarm_name, "checkout-service-alb-5xx-high");
        assert_eq!(a.alarm_arn.as_deref(), Some(arn));
        assert_eq!(a.state, "ALARM");
        assert_eq!(a.previous_state.as_deref(), Some("OK"));
        assert!(a.reason.as_deref().is_some_and(|r| r.starts_with("Threshold Crossed")));
        assert_eq!((a.account.as_str(), a.region.as_str()), ("123456789012", "us-east-1"));
        assert_eq!(c.external_id, arn);
        assert_eq!(c.occurred_at, at("2026-09-14T10:40:31.421Z"), "the state's own timestamp");
        assert_eq!(c.actor, None);
        assert_eq!(
            c.service_key,
            Some(ServiceKey::AwsResource {
                arn: Some(arn.into()),
                resource_id: Some("checkout-service-alb-5xx-high".into()),
                tags: BTreeMap::new()
            })
        );
    }

    #[test]
    fn alarm_tags_reach_the_service_key() {
        let body = edit(ALARM, |v| {
            detail(v).insert("alarmTags".into(), json!({"changehub:service": "checkout-service"}));
            detail(v).insert("alarmTagsStatus".into(), json!("SUCCESS"));
        });
        let Some(ServiceKey::AwsResource { tags, .. }) = one(&body).service_key else { panic!("no resource key") };
        assert_eq!(tags.get(crate::ingest::canonical::SERVICE_TAG).map(String::as_str), Some("checkout-service"));
    }

    #[test]
    fn unparsable_alarm_timestamp_falls_back_to_the_envelope_time() {
        let body = edit(ALARM, |v| v["detail"]["state"]["timestamp"] = json!("yesterday"));
        assert_eq!(one(&body).occurred_at, at("2026-09-14T10:40:31Z"));
    }

    #[test]
    fn config_item_sample_becomes_configuration_changed_with_the_item_tags() {
        let c = one(CONFIG_ITEM);
        let Fact::ConfigurationChanged(ch) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(ch.resource_type, "AWS::EC2::SecurityGroup");
        assert_eq!(ch.resource_id, "sg-0a1b2c3d4e5f67890");
        assert_eq!(ch.resource_arn.as_deref(), Some(SG_ARN));
        assert_eq!(ch.change_type, "UPDATE");
        assert_eq!(ch.changed_properties, vec!["Configuration.IpPermissions.1".to_owned()]);
        assert_eq!(ch.related_events, vec!["879a6d75-f086-992e-5b49-3b57ea00929f".to_owned()]);
        assert_eq!(c.external_id, SG_ARN);
        assert_eq!(c.occurred_at, at("2026-09-14T10:28:17.406Z"));
        let tags = BTreeMap::from([
            ("service".to_owned(), "checkout-service".to_owned()),
            ("owner".to_owned(), "payments-platform".to_owned()),
        ]);
        assert_eq!(
            c.service_key,
            Some(ServiceKey::AwsResource {
                arn: Some(SG_ARN.into()),
                resource_id: Some("sg-0a1b2c3d4e5f67890".into()),
                tags
            })
        );
    }

    #[test]
    fn config_related_event_is_the_cloudtrail_event_id() {
        let Fact::ConfigurationChanged(ch) = one(CONFIG_ITEM).fact else { panic!("not a configuration change") };
        assert_eq!(ch.related_events, vec![api_call(&one(TRAIL_EC2)).event_id.clone()]);
    }

    #[test]
    fn oversized_config_item_notification_is_normalized_from_its_summary() {
        let body = edit(CONFIG_ITEM, |v| {
            let d = detail(v);
            d.insert("messageType".into(), json!("OversizedConfigurationItemChangeNotification"));
            d.remove("configurationItem");
            d.remove("configurationItemDiff");
            d.insert(
                "configurationItemSummary".into(),
                json!({
                    "changeType": "UPDATE",
                    "configurationItemVersion": "1.3",
                    "configurationItemCaptureTime": "2026-09-14T10:28:17.406Z",
                    "configurationStateId": 0,
                    "awsAccountId": "123456789012",
                    "configurationItemStatus": "OK",
                    "resourceType": "AWS::EC2::SecurityGroup",
                    "resourceId": "sg-0a1b2c3d4e5f67890",
                    "resourceName": null,
                    "ARN": SG_ARN,
                    "awsRegion": "us-east-1",
                    "availabilityZone": null,
                    "configurationStateMd5Hash": "8f1ee69b287895a0",
                }),
            );
            d.insert(
                "s3DeliverySummary".into(),
                json!({"s3BucketLocation": "config-bucket/AWSLogs/123456789012/Config/x.json.gz", "errorCode": null, "errorMessage": null}),
            );
        });
        let c = one(&body);
        let Fact::ConfigurationChanged(ch) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(ch.resource_id, "sg-0a1b2c3d4e5f67890");
        assert_eq!(ch.change_type, "UPDATE");
        assert!(ch.changed_properties.is_empty());
        assert!(ch.related_events.is_empty());
        assert_eq!(c.external_id, SG_ARN);
    }

    #[test]
    fn config_change_type_falls_back_to_the_item_status() {
        let body = edit(CONFIG_ITEM, |v| {
            detail(v).remove("configurationItemDiff");
            v["detail"]["configurationItem"]["configurationItemStatus"] = json!("ResourceDeleted");
        });
        let Fact::ConfigurationChanged(ch) = one(&body).fact else { panic!("not a configuration change") };
        assert_eq!(ch.change_type, "DELETE");
    }

    #[test]
    fn config_item_notification_without_item_or_summary_is_an_error() {
        let body = edit(CONFIG_ITEM, |v| {
            detail(v).remove("configurationItem");
        });
        let err = normalize(&body).expect_err("no item");
        assert_eq!(err.field.as_deref(), Some("detail.configurationItem"));
    }

    #[test]
    fn compliance_sample_becomes_compliance_changed() {
        let c = one(COMPLIANCE);
        let Fact::ComplianceChanged(ch) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(ch.rule_name, "restricted-common-ports");
        assert_eq!(ch.resource_type, "AWS::EC2::SecurityGroup");
        assert_eq!(ch.resource_id, "sg-0a1b2c3d4e5f67890");
        assert_eq!(ch.compliance, "NON_COMPLIANT");
        assert_eq!(ch.previous_compliance.as_deref(), Some("COMPLIANT"));
        assert_eq!(c.external_id, "sg-0a1b2c3d4e5f67890");
        assert_eq!(c.occurred_at, at("2026-09-14T10:29:04.918Z"));
        assert_eq!(
            c.service_key,
            Some(ServiceKey::AwsResource {
                arn: None,
                resource_id: Some("sg-0a1b2c3d4e5f67890".into()),
                tags: BTreeMap::new()
            })
        );
    }

    #[test]
    fn first_compliance_evaluation_has_no_previous_and_names_come_from_the_qualifier() {
        let body = edit(COMPLIANCE, |v| {
            let d = detail(v);
            d.remove("oldEvaluationResult");
            d.remove("configRuleName");
            d.remove("resourceType");
        });
        let Fact::ComplianceChanged(ch) = one(&body).fact else { panic!("not a compliance change") };
        assert_eq!(ch.previous_compliance, None);
        assert_eq!(ch.rule_name, "restricted-common-ports");
        assert_eq!(ch.resource_type, "AWS::EC2::SecurityGroup");
    }

    #[test]
    fn drift_sample_becomes_drift_detected() {
        let c = one(DRIFT);
        let Fact::DriftDetected(d) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(d.stack_id, STACK_ID);
        assert_eq!(d.drift_status, "DRIFTED");
        assert_eq!(d.detection_status.as_deref(), Some("DETECTION_COMPLETE"));
        assert_eq!(c.external_id, STACK_ID);
        assert_eq!(c.occurred_at, at("2026-09-14T12:05:12Z"));
        assert_eq!(
            c.service_key,
            Some(ServiceKey::AwsResource {
                arn: Some(STACK_ID.into()),
                resource_id: Some("checkout-service-prod".into()),
                tags: BTreeMap::new()
            })
        );
    }

    #[test]
    fn drift_status_other_than_drifted_becomes_drift_status_changed() {
        let body = edit(DRIFT, |v| v["detail"]["status-details"]["stack-drift-status"] = json!("IN_SYNC"));
        let Fact::DriftStatusChanged(d) = one(&body).fact else { panic!("not a drift status change") };
        assert_eq!(d.drift_status, "IN_SYNC");
    }

    #[test]
    fn stack_status_sample_becomes_stack_status_changed() {
        let c = one(STACK);
        let Fact::StackStatusChanged(s) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(s.stack_id, STACK_ID);
        assert_eq!(s.status, "UPDATE_COMPLETE");
        assert_eq!(s.status_reason, None, "an empty reason is no reason");
        assert_eq!(s.logical_resource_id, None);
        assert_eq!(s.resource_type, None);
        assert_eq!(c.occurred_at, at("2026-09-14T10:31:44Z"));
    }

    #[test]
    fn resource_status_sample_becomes_stack_status_changed_with_the_resource() {
        let c = one(RESOURCE);
        let Fact::StackStatusChanged(s) = &c.fact else { panic!("{:?}", c.fact) };
        assert_eq!(s.stack_id, STACK_ID);
        assert_eq!(s.logical_resource_id.as_deref(), Some("DbAccessSecurityGroup"));
        assert_eq!(s.resource_type.as_deref(), Some("AWS::EC2::SecurityGroup"));
        assert_eq!(s.status, "UPDATE_COMPLETE");
        assert_eq!(c.external_id, STACK_ID);
    }

    #[test]
    fn cloudtrail_ec2_sample_becomes_api_call_by_the_assumed_role() {
        let c = one(TRAIL_EC2);
        let call = api_call(&c);
        assert_eq!(call.event_id, "879a6d75-f086-992e-5b49-3b57ea00929f");
        assert_eq!(call.action, "ec2:AuthorizeSecurityGroupIngress");
        assert_eq!(call.actor_arn.as_deref(), Some(DEPLOYER_ROLE), "the session issuer");
        assert_eq!(call.actor_type.as_deref(), Some("AssumedRole"));
        assert_eq!(call.principal_id.as_deref(), Some("AROAQ3EXAMPLEDEPLOY01:gha-checkout-service-10987654321"));
        assert_eq!(call.source_ip.as_deref(), Some("4.227.151.18"));
        assert!(call.user_agent.as_deref().is_some_and(|u| u.starts_with("aws-cli/2.17.20")));
        assert!(call.resources.is_empty());
        assert_eq!(call.error_code, None);
        assert_eq!((call.account.as_str(), call.region.as_str()), ("123456789012", "us-east-1"));
        assert_eq!(c.external_id, "879a6d75-f086-992e-5b49-3b57ea00929f");
        assert_eq!(c.occurred_at, at("2026-09-14T10:28:02Z"));
        assert_eq!(
            c.actor.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/github-actions-deployer/gha-checkout-service-10987654321"),
            "the session"
        );
        assert_eq!(c.service_key, None, "the call names no resource");
    }

    #[test]
    fn cloudtrail_iam_sample_becomes_api_call_by_the_sso_user() {
        let c = one(TRAIL_IAM);
        let call = api_call(&c);
        assert_eq!(call.action, "iam:PutRolePolicy");
        assert_eq!(
            call.actor_arn.as_deref(),
            Some(
                "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PlatformAdmin_3f2a1b0c9d8e7f6a"
            )
        );
        assert!(c.actor.as_deref().is_some_and(|a| a.ends_with("/ana@acme.example")));
        assert_eq!(c.occurred_at, at("2026-09-14T10:26:41Z"));
    }

    #[test]
    fn cloudtrail_s3_sample_lists_the_detail_resources() {
        let c = one(TRAIL_S3);
        let call = api_call(&c);
        assert_eq!(call.action, "s3:PutBucketPolicy");
        assert_eq!(call.resources, vec!["arn:aws:s3:::acme-checkout-artifacts".to_owned()]);
        assert_eq!(
            c.service_key,
            Some(ServiceKey::AwsResource {
                arn: Some("arn:aws:s3:::acme-checkout-artifacts".into()),
                resource_id: None,
                tags: BTreeMap::new()
            })
        );
    }

    #[test]
    fn cloudtrail_resources_merge_detail_and_envelope_once_each() {
        let body = edit(TRAIL_S3, |v| {
            v["resources"] = json!(["arn:aws:s3:::acme-checkout-artifacts", "arn:aws:s3:::other"]);
        });
        let call = one(&body);
        assert_eq!(
            api_call(&call).resources,
            vec!["arn:aws:s3:::acme-checkout-artifacts".to_owned(), "arn:aws:s3:::other".to_owned()]
        );
    }

    #[test]
    fn cloudtrail_iam_user_is_its_own_actor_and_errors_are_kept() {
        let body = edit(TRAIL_EC2, |v| {
            v["detail"]["userIdentity"] = json!({
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": "arn:aws:iam::123456789012:user/ana",
                "userName": "ana"
            });
            v["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
        });
        let c = one(&body);
        assert_eq!(api_call(&c).actor_arn.as_deref(), Some("arn:aws:iam::123456789012:user/ana"));
        assert_eq!(c.actor.as_deref(), Some("arn:aws:iam::123456789012:user/ana"));
        assert_eq!(api_call(&c).error_code.as_deref(), Some("Client.UnauthorizedOperation"));
    }

    #[test]
    fn cloudtrail_aws_service_is_named_by_invoked_by() {
        let body = edit(TRAIL_EC2, |v| {
            v["detail"]["userIdentity"] = json!({"type": "AWSService", "invokedBy": "autoscaling.amazonaws.com"});
        });
        let c = one(&body);
        assert_eq!(api_call(&c).actor_arn, None);
        assert_eq!(c.actor.as_deref(), Some("autoscaling.amazonaws.com"));
    }

    #[test]
    fn cloudtrail_identity_keeps_the_whole_chain_and_the_key_parameters() {
        const BREAK_GLASS: &[u8] =
            include_bytes!("../../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.source_identity.json");
        const IDENTITY_CENTER: &[u8] =
            include_bytes!("../../../events/aws/cloudtrail.s3_delete_bucket_policy.identity_center.json");
        let c = one(BREAK_GLASS);
        let call = api_call(&c);
        let id = &call.identity;
        assert_eq!(id.kind.as_deref(), Some("AssumedRole"));
        assert_eq!(id.issuer_arn.as_deref(), Some("arn:aws:iam::123456789012:role/ops-break-glass"));
        assert_eq!(id.session_name.as_deref(), Some("maria.rossi"));
        assert_eq!(id.source_identity.as_deref(), Some("maria.rossi@acme.example"));
        assert_eq!((id.mfa, id.account_id.as_deref()), (Some(true), Some("123456789012")));
        assert_eq!(
            call.parameters,
            BTreeMap::from([
                ("groupId".to_owned(), "sg-0a1b2c3d4e5f67890".to_owned()),
                ("ipPermissions".to_owned(), "tcp 22 from 0.0.0.0/0".to_owned()),
            ])
        );
        let c = one(IDENTITY_CENTER);
        let call = api_call(&c);
        assert_eq!(call.identity.kind.as_deref(), Some("IdentityCenterUser"));
        assert_eq!(call.identity.on_behalf_of.as_deref(), Some("94c8d4a8-6081-70f1-3e2b-5c7d9e1f3a5b"));
        assert!(call.identity.identity_store.as_deref().is_some_and(|s| s.ends_with("identitystore/d-9067c1a2b3")));
        assert_eq!(c.actor.as_deref(), Some("94c8d4a8-6081-70f1-3e2b-5c7d9e1f3a5b"), "named on behalf of");
        assert_eq!(call.parameters.get("bucketName").map(String::as_str), Some("acme-checkout-artifacts"));
        assert!(!call.parameters.contains_key("policy"), "documents are not kept");
    }

    #[test]
    fn security_group_rules_are_summarized_by_protocol_ports_and_sources() {
        let rules = json!({"items": [
            {"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}},
            {"ipProtocol": "tcp", "fromPort": 8000, "toPort": 8080,
             "groups": {"items": [{"groupId": "sg-1"}]}, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}},
        ]});
        assert_eq!(ip_permissions(&rules), "all from 10.0.0.0/8; tcp 8000-8080 from ::/0, sg-1");
        assert_eq!(ip_permissions(&json!("x")), "");
    }

    #[test]
    fn cloudtrail_read_only_call_is_ignored() {
        let body = edit(TRAIL_EC2, |v| {
            v["detail"]["eventName"] = json!("DescribeSecurityGroups");
            v["detail"]["readOnly"] = json!(true);
        });
        assert_eq!(normalize(&body).expect("ignored"), Normalized::Ignored("read-only API call".into()));
    }

    #[test]
    fn cloudtrail_without_read_only_flag_is_judged_by_its_name() {
        for (name, read_only) in [
            ("GetBucketPolicy", true),
            ("ListRoles", true),
            ("HeadObject", true),
            ("LookupEvents", true),
            ("PutBucketPolicy", false),
        ] {
            let body = edit(TRAIL_S3, |v| {
                detail(v).remove("readOnly");
                v["detail"]["eventName"] = json!(name);
            });
            let got = normalize(&body).expect("normalized");
            assert_eq!(matches!(got, Normalized::Ignored(_)), read_only, "{name}");
        }
        // An explicit flag wins over the name.
        let body = edit(TRAIL_S3, |v| {
            v["detail"]["eventName"] = json!("GetSomethingThatWrites");
            v["detail"]["readOnly"] = json!(false);
        });
        assert!(matches!(normalize(&body).expect("normalized"), Normalized::Events(_)));
    }

    #[test]
    fn other_sources_and_detail_types_are_ignored() {
        let cases = [
            ("aws.ec2", "EC2 Instance State-change Notification"),
            ("aws.cloudwatch", "CloudWatch Alarm Configuration Change"),
            ("aws.signin", "AWS Console Sign In via CloudTrail"),
            ("acme.custom", "Config Configuration Item Change"),
        ];
        for (source, detail_type) in cases {
            let body = json!({"version": "0", "id": "x", "source": source, "detail-type": detail_type, "detail": {"anything": 1}});
            let got = normalize(&serde_json::to_vec(&body).expect("json")).expect("ignored");
            assert_eq!(got, Normalized::Ignored(format!("{source} {detail_type}")));
        }
    }

    #[test]
    fn delivery_id_is_the_envelope_id() {
        assert_eq!(delivery_id(ALARM).expect("id"), "574b4ef6-3b27-8daa-ce2d-bda6db63efde");
        assert_eq!(delivery_id(TRAIL_S3).expect("id"), "b8075aef-d4bd-7a02-ccd8-318ada3cf0bd");
    }

    #[test]
    fn missing_or_empty_envelope_id_is_an_error_naming_it() {
        let err = delivery_id(&edit(ALARM, |v| v["id"] = json!(" "))).expect_err("empty id");
        assert_eq!(err.field.as_deref(), Some("id"));
        let err = delivery_id(br#"{"source": "aws.config"}"#).expect_err("no id");
        assert!(err.message.contains("`id`"), "{err}");
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(normalize(b"{\"version\": \"0\",").expect_err("truncated").message.contains("not valid JSON"));
        assert!(delivery_id(b"\xff\xfe").is_err());
    }

    #[test]
    fn wrong_typed_fields_are_errors_naming_their_path() {
        type Case = (&'static [u8], fn(&mut Value), &'static str);
        let cases: [Case; 6] = [
            (ALARM, |v| v["detail"]["state"]["value"] = json!(1), "detail.state.value"),
            (
                CONFIG_ITEM,
                |v| v["detail"]["configurationItem"]["relatedEvents"] = json!("one"),
                "detail.configurationItem.relatedEvents",
            ),
            (
                COMPLIANCE,
                |v| v["detail"]["newEvaluationResult"]["complianceType"] = json!(null),
                "detail.newEvaluationResult.complianceType",
            ),
            (DRIFT, |v| v["detail"]["stack-id"] = json!(["x"]), "detail.stack-id"),
            (TRAIL_EC2, |v| v["detail"]["readOnly"] = json!("false"), "detail.readOnly"),
            (STACK, |v| v["time"] = json!("10:31"), "time"),
        ];
        for (sample, f, path) in cases {
            let err = normalize(&edit(sample, f)).expect_err(path);
            assert_eq!(err.field.as_deref(), Some(path), "{err}");
        }
    }

    const WORDS: &[&str] = &[
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
        "aws.cloudwatch",
        "aws.config",
        "aws.cloudformation",
        "CloudWatch Alarm State Change",
        "Config Configuration Item Change",
        "Config Rules Compliance Change",
        "CloudFormation Drift Detection Status Change",
        "CloudFormation Stack Status Change",
        "CloudFormation Resource Status Change",
        "AWS API Call via CloudTrail",
        "alarmName",
        "state",
        "value",
        "configurationItem",
        "configurationItemSummary",
        "resourceType",
        "resourceId",
        "ARN",
        "newEvaluationResult",
        "complianceType",
        "stack-id",
        "status-details",
        "status",
        "stack-drift-status",
        "eventID",
        "eventName",
        "eventSource",
        "readOnly",
        "userIdentity",
        "arn",
        "type",
        "AssumedRole",
        "arn:aws:cloudformation:us-east-1:1:stack/a/b",
    ];

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = delivery_id(&body);
            let _ = normalize(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(v in fuzz::json_with(WORDS)) {
            let body = serde_json::to_vec(&v).expect("json");
            let _ = delivery_id(&body);
            let _ = normalize(&body);
        }

        #[test]
        fn arbitrary_details_never_panic(
            detail in fuzz::json_with(WORDS),
            source_and_type in proptest::sample::select(&[
                ("aws.cloudwatch", "CloudWatch Alarm State Change"),
                ("aws.config", "Config Configuration Item Change"),
                ("aws.config", "Config Rules Compliance Change"),
                ("aws.cloudformation", "CloudFormation Drift Detection Status Change"),
                ("aws.cloudformation", "CloudFormation Resource Status Change"),
                ("aws.iam", "AWS API Call via CloudTrail"),
            ][..]),
        ) {
            let (source, detail_type) = source_and_type;
            let body = json!({
                "version": "0", "id": "e", "detail-type": detail_type, "source": source, "account": "1",
                "time": "2026-09-14T10:00:00Z", "region": "us-east-1", "resources": [], "detail": detail,
            });
            let _ = normalize(&serde_json::to_vec(&body).expect("json"));
        }

        #[test]
        fn mutated_samples_never_panic(body in fuzz::mutated(SAMPLES, WORDS)) {
            if let Err(e) = delivery_id(&body) {
                prop_assert!(!e.message.is_empty());
            }
            if let Err(e) = normalize(&body) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
