//! What a piece of configuration-change evidence says happened: an
//! [`Observation`] (resource, account, region, the event's own time, what
//! changed, and the actor behind it, resolved from CloudTrail's
//! `userIdentity`), read from a canonical hub event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::settings::{DriftPolicy, principal_matches};
use crate::domain::{ServiceName, TenantId};
use crate::ingest::canonical::{
    ApiCall, CallerIdentity, ComplianceChange, ConfigurationChange, Detail, DriftStatus, StackStatus,
};

/// Most resources an observation or a finding keeps.
pub const MAX_RESOURCES: usize = 20;

/// The AWS service that acts for a stack.
pub const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";

/// Where the evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// AWS Config's configuration item change (or a tool's `Configuration Changed`).
    ConfigurationItem,
    /// A mutating API call recorded by CloudTrail.
    ApiCall,
    /// A CloudFormation stack or resource status change.
    StackStatus,
    /// CloudFormation drift detection found a stack drifted.
    StackDrift,
    /// An AWS Config rule found a resource newly `NON_COMPLIANT`: evidence
    /// that its configuration changed, joined with the item and the call
    /// behind it (no actor of its own).
    ComplianceChange,
}

/// A resource, by what the evidence names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Its id (`sg-…`, a role name, a bucket name), or its ARN when that is all there is.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `AWS::EC2::SecurityGroup`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

impl Resource {
    /// The names that identify it: its id, its ARN and the ARN's last part
    /// (`…:role/checkout-task` → `checkout-task`), which is what a call names.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.id.as_str()];
        if let Some(arn) = &self.arn {
            names.push(arn);
            if let Some(tail) = arn_tail(arn) {
                names.push(tail);
            }
        }
        names
    }

    /// The one name a Config item and an API call both give it: its ARN's
    /// last part (`sg-…`, a role's or a bucket's name), else its id.
    pub fn key(&self) -> &str {
        self.arn.as_deref().map_or(self.id.as_str(), |arn| arn_tail(arn).unwrap_or(arn))
    }

    /// Whether both name the same resource.
    pub fn same_as(&self, other: &Resource) -> bool {
        let theirs = other.names();
        self.names().iter().any(|n| theirs.contains(n))
    }
}

/// `arn:aws:ec2:…:security-group/sg-1` → `sg-1`; `arn:aws:s3:::bucket` → `bucket`.
fn arn_tail(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let tail = resource.rsplit(['/', ':']).next()?;
    (!tail.is_empty()).then_some(tail)
}

/// Who made a change, resolved as far as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The person (or service) people are told about: the source identity,
    /// the Identity Center user, the session name, the IAM user, the root
    /// of the account or the AWS service, in that order.
    pub name: String,
    /// CloudTrail's identity type (`AssumedRole`, `IAMUser`, `Root`, `AWSService`, ...).
    pub kind: String,
    /// The stable principal: the role a session was issued from, or the caller's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// An assumed role's session ARN (the role plus the session name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// The IAM Identity Center user (id, or name where CloudTrail gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The AWS service that made the call for the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// The principal is one of the tenant's vendors (`drift.vendor_principals`).
    #[serde(default)]
    pub vendor: bool,
    /// The principal is a deployment pipeline's (`drift.pipeline_principals`).
    #[serde(default)]
    pub pipeline: bool,
}

impl Actor {
    /// The actor of an API call's caller, flagged by the tenant's settings.
    pub fn of_caller(id: &CallerIdentity, account: &str, policy: &DriftPolicy) -> Actor {
        let kind = id.kind.clone().unwrap_or_else(|| "Unknown".to_owned());
        let principal = match kind.as_str() {
            "AssumedRole" => id.issuer_arn.clone().or_else(|| id.arn.clone()),
            _ => id.arn.clone(),
        };
        let session = (kind == "AssumedRole").then(|| id.arn.clone()).flatten();
        let root = (kind == "Root").then(|| format!("root of account {}", id.account_id.as_deref().unwrap_or(account)));
        let name = id
            .source_identity
            .clone()
            .or_else(|| (kind == "IdentityCenterUser").then(|| id.user_name.clone()).flatten())
            .or_else(|| id.on_behalf_of.clone())
            .or_else(|| id.session_name.clone())
            .or_else(|| id.user_name.clone())
            .or(root)
            .or_else(|| id.invoked_by.clone())
            .or_else(|| id.arn.clone())
            .or_else(|| id.principal_id.clone())
            .unwrap_or_else(|| "an unknown caller".to_owned());
        let named = |list: &[String]| {
            let arns: Vec<&str> = principal.iter().chain(&id.arn).map(String::as_str).collect();
            list.iter().any(|p| arns.iter().any(|arn| principal_matches(p, arn)))
        };
        Actor {
            name,
            kind,
            vendor: named(&policy.vendor_principals),
            pipeline: named(&policy.pipeline_principals),
            principal,
            session,
            session_name: id.session_name.clone(),
            source_identity: id.source_identity.clone(),
            on_behalf_of: id.on_behalf_of.clone(),
            user_name: id.user_name.clone(),
            invoked_by: id.invoked_by.clone(),
        }
    }

    /// Whoever a tool's own `Configuration Changed` names (an email, a
    /// login or an ARN), flagged when the settings list it.
    pub fn reported(name: &str, policy: &DriftPolicy) -> Actor {
        let named = |list: &[String]| list.iter().any(|p| principal_matches(p, name));
        Actor {
            name: name.to_owned(),
            kind: "Reported".to_owned(),
            principal: Some(name.to_owned()),
            session: None,
            session_name: None,
            source_identity: None,
            on_behalf_of: None,
            user_name: None,
            invoked_by: None,
            vendor: named(&policy.vendor_principals),
            pipeline: named(&policy.pipeline_principals),
        }
    }

    /// CloudFormation, acting for a stack.
    pub fn cloudformation(stack_id: &str) -> Actor {
        Actor {
            name: format!("CloudFormation stack {}", stack_name(stack_id).unwrap_or(stack_id)),
            kind: "AWSService".to_owned(),
            principal: Some(stack_id.to_owned()),
            session: None,
            session_name: None,
            source_identity: None,
            on_behalf_of: None,
            user_name: None,
            invoked_by: Some(CLOUDFORMATION.to_owned()),
            vendor: false,
            pipeline: false,
        }
    }

    /// What one burst is gathered by: the session (a role's session, or the principal).
    pub fn storm_key(&self) -> &str {
        self.session.as_deref().or(self.principal.as_deref()).unwrap_or(&self.name)
    }

    /// Whether CloudFormation made the change for a stack.
    pub fn by_cloudformation(&self) -> bool {
        self.invoked_by.as_deref() == Some(CLOUDFORMATION)
    }

    /// The chain people read: `ana@acme.example (source identity) via role
    /// arn:…:role/ops, session ana@acme.example`.
    pub fn chain(&self) -> String {
        let mut parts = vec![self.name.clone()];
        if let Some(principal) = self.principal.as_deref().filter(|p| *p != self.name) {
            let role = if self.kind == "AssumedRole" { "role" } else { "principal" };
            parts.push(format!("via {role} {principal}"));
        }
        if let Some(s) = self.session_name.as_deref().filter(|s| *s != self.name) {
            parts.push(format!("session {s}"));
        }
        if let Some(by) = self.invoked_by.as_deref().filter(|b| *b != self.name) {
            parts.push(format!("invoked by {by}"));
        }
        if self.vendor {
            parts.push("(vendor)".to_owned());
        }
        parts.join(", ")
    }
}

/// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>` → `<name>`.
fn stack_name(stack_id: &str) -> Option<&str> {
    let resource = stack_id.splitn(6, ':').nth(5)?;
    resource.strip_prefix("stack/")?.split('/').next().filter(|n| !n.is_empty())
}

/// One piece of evidence, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub tenant: TenantId,
    /// The evidence's identity (a duplicate has the same): the hub event's
    /// id, or for an API call CloudTrail's own `eventID`, so one record
    /// delivered under two EventBridge envelope ids counts once.
    pub event_id: String,
    pub evidence: Evidence,
    pub account: String,
    pub region: String,
    /// When it happened, by the source's own clock.
    pub at: DateTime<Utc>,
    /// At most [`MAX_RESOURCES`], the first being the one changed.
    pub resources: Vec<Resource>,
    /// The service, as ingest resolved it (or `None`: see [`Observation::resolve_with`]).
    pub service: Option<ServiceName>,
    /// What changed, for people: the API call and its key parameters, or Config's changed properties.
    pub what: String,
    /// `service:Action` of an API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who, when the evidence says (Config does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// Why a hub event is not an observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotObserved {
    /// Evidence of no configuration change (read-only, failed call, a status in progress...).
    #[error("{0}")]
    Skipped(&'static str),
    /// The detail is not the canonical shape of its type.
    #[error("detail of a {detail_type:?} event: {message}")]
    Malformed { detail_type: String, message: String },
}

/// The hub event detail-types the drift consumer reads.
pub const DETAIL_TYPES: [&str; 5] =
    ["Configuration Changed", "API Call Recorded", "Stack Status Changed", "Drift Detected", "Compliance Changed"];

/// The compliance a resource turns to that is evidence of a change.
pub const NON_COMPLIANT: &str = "NON_COMPLIANT";

impl Observation {
    /// The observation a canonical hub event makes, judged by the tenant's settings.
    pub fn of(detail_type: &str, detail: &serde_json::Value, policy: &DriftPolicy) -> Result<Observation, NotObserved> {
        fn parse<F: serde::de::DeserializeOwned>(
            detail_type: &str,
            v: &serde_json::Value,
        ) -> Result<(Head, F), NotObserved> {
            let malformed = |message: String| NotObserved::Malformed { detail_type: detail_type.to_owned(), message };
            let d: Detail<F> = serde_json::from_value(v.clone()).map_err(|e| malformed(e.to_string()))?;
            let tenant = TenantId::parse(&d.tenant).map_err(|e| malformed(format!("tenant: {}", e.message)))?;
            let service = d.service.as_deref().and_then(|s| ServiceName::parse(s).ok());
            Ok((Head { tenant, event_id: d.event_id, at: d.occurred_at, service, actor: d.actor }, d.data))
        }
        match detail_type {
            "Configuration Changed" => Ok(configuration(parse(detail_type, detail)?, policy)),
            "API Call Recorded" => api_call(parse(detail_type, detail)?, policy),
            "Stack Status Changed" => stack_status(parse(detail_type, detail)?),
            "Drift Detected" => Ok(drift(parse(detail_type, detail)?)),
            "Compliance Changed" => compliance(parse(detail_type, detail)?),
            _ => Err(NotObserved::Skipped("not configuration-change evidence")),
        }
    }

    /// Whether both name a resource in common, in one account.
    pub fn touches_same(&self, account: &str, resources: &[Resource]) -> bool {
        self.account == account && self.resources.iter().any(|r| resources.iter().any(|o| r.same_as(o)))
    }

    /// The names the catalog may map, in order: each resource's ARN, then its id.
    pub fn mapping_keys(&self) -> Vec<&str> {
        let arns = self.resources.iter().filter_map(|r| r.arn.as_deref());
        arns.chain(self.resources.iter().map(|r| r.id.as_str())).collect()
    }

    /// Whether the resource is one of those whose unauthorized change opens a
    /// security hole: IAM, security groups, KMS keys, S3 bucket policies.
    pub fn security_relevant(&self) -> bool {
        let by_action = self.action.as_deref().is_some_and(|a| {
            let (service, name) = a.split_once(':').unwrap_or((a, ""));
            matches!(service, "iam" | "kms" | "sso" | "organizations")
                || (service == "ec2" && name.contains("SecurityGroup"))
                || (service == "s3"
                    && ["BucketPolicy", "BucketAcl", "PublicAccessBlock", "BucketOwnershipControls"]
                        .iter()
                        .any(|k| name.contains(k)))
        });
        let by_type = self.resources.iter().filter_map(|r| r.resource_type.as_deref()).any(|t| {
            t.starts_with("AWS::IAM::")
                || t.starts_with("AWS::KMS::")
                || t == "AWS::EC2::SecurityGroup"
                || t == "AWS::S3::BucketPolicy"
                || t == "AWS::S3::AccountPublicAccessBlock"
        });
        by_action || by_type
    }
}

/// What every canonical event says besides its fact.
struct Head {
    tenant: TenantId,
    event_id: String,
    at: DateTime<Utc>,
    service: Option<ServiceName>,
    /// Who the event names: none for AWS's own evidence (CloudTrail's
    /// caller is read from the call), whoever a tool's change names.
    actor: Option<String>,
}

/// An AWS Config item, or a tool's own `Configuration Changed`, which may name who made it.
fn configuration((d, c): (Head, ConfigurationChange), policy: &DriftPolicy) -> Observation {
    let resource = Resource {
        id: c.resource_id.clone(),
        arn: c.resource_arn.clone(),
        resource_type: Some(c.resource_type.clone()),
    };
    let mut what = format!("{} {} {}", c.resource_type, c.resource_id, c.change_type);
    if !c.changed_properties.is_empty() {
        let shown: Vec<&str> = c.changed_properties.iter().take(5).map(String::as_str).collect();
        what.push_str(&format!(": {}", shown.join(", ")));
        if c.changed_properties.len() > shown.len() {
            what.push_str(&format!(" and {} more", c.changed_properties.len() - shown.len()));
        }
    }
    Observation {
        tenant: d.tenant,
        event_id: d.event_id,
        evidence: Evidence::ConfigurationItem,
        account: c.account,
        region: c.region,
        at: d.at,
        resources: vec![resource],
        service: d.service,
        what,
        action: None,
        actor: d.actor.as_deref().map(|name| Actor::reported(name, policy)),
    }
}

/// Request parameters that name the resource a call changed.
const RESOURCE_PARAMETERS: [&str; 12] = [
    "groupId",
    "roleName",
    "userName",
    "policyArn",
    "bucketName",
    "keyId",
    "functionName",
    "instanceId",
    "dBInstanceIdentifier",
    "stackName",
    "topicArn",
    "queueUrl",
];

fn api_call((d, call): (Head, ApiCall), policy: &DriftPolicy) -> Result<Observation, NotObserved> {
    if call.error_code.is_some() {
        return Err(NotObserved::Skipped("the call failed: it changed nothing"));
    }
    let resource_type = resource_type_of(&call.action);
    let mut resources: Vec<Resource> = call
        .resources
        .iter()
        .map(|arn| Resource {
            id: arn_tail(arn).unwrap_or(arn).to_owned(),
            arn: Some(arn.clone()),
            resource_type: resource_type.clone(),
        })
        .collect();
    for name in RESOURCE_PARAMETERS {
        if let Some(value) = call.parameters.get(name) {
            let arn = arn_of(resource_type.as_deref(), value, &call.account, &call.region);
            let named = Resource { id: value.clone(), arn, resource_type: resource_type.clone() };
            if !resources.iter().any(|r| r.same_as(&named)) {
                resources.push(named);
            }
        }
    }
    resources.truncate(MAX_RESOURCES);
    let mut what = call.action.clone();
    let params: Vec<String> = call.parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !params.is_empty() {
        what.push_str(&format!(" ({})", params.join(", ")));
    }
    let actor = Actor::of_caller(&call.identity, &call.account, policy);
    // CloudTrail's own id: the record is one piece of evidence whatever
    // envelope (or how many) EventBridge delivered it in.
    let event_id = Some(call.event_id.trim()).filter(|id| !id.is_empty()).map_or(d.event_id, str::to_owned);
    Ok(Observation {
        tenant: d.tenant,
        event_id,
        evidence: Evidence::ApiCall,
        account: call.account,
        region: call.region,
        at: d.at,
        resources,
        service: d.service,
        what,
        action: Some(call.action),
        actor: Some(actor),
    })
}

/// The ARN of a resource a call names by id, for the types whose ARN
/// follows from it (what the catalog's ARN prefixes match).
fn arn_of(resource_type: Option<&str>, id: &str, account: &str, region: &str) -> Option<String> {
    if id.starts_with("arn:") {
        return Some(id.to_owned());
    }
    Some(match resource_type? {
        "AWS::EC2::SecurityGroup" => format!("arn:aws:ec2:{region}:{account}:security-group/{id}"),
        "AWS::IAM::Role" => format!("arn:aws:iam::{account}:role/{id}"),
        "AWS::IAM::User" => format!("arn:aws:iam::{account}:user/{id}"),
        "AWS::KMS::Key" => format!("arn:aws:kms:{region}:{account}:key/{id}"),
        "AWS::S3::Bucket" | "AWS::S3::BucketPolicy" => format!("arn:aws:s3:::{id}"),
        _ => return None,
    })
}

/// The CloudFormation type a call's action most likely changed.
fn resource_type_of(action: &str) -> Option<String> {
    let (service, name) = action.split_once(':')?;
    let t = match service {
        "ec2" if name.contains("SecurityGroup") => "AWS::EC2::SecurityGroup",
        "iam" if name.contains("Role") => "AWS::IAM::Role",
        "iam" if name.contains("User") => "AWS::IAM::User",
        "iam" if name.contains("Policy") => "AWS::IAM::Policy",
        "kms" => "AWS::KMS::Key",
        "s3" if name.contains("BucketPolicy") => "AWS::S3::BucketPolicy",
        "s3" => "AWS::S3::Bucket",
        _ => return None,
    };
    Some(t.to_owned())
}

fn stack_status((d, s): (Head, StackStatus)) -> Result<Observation, NotObserved> {
    // Only a finished step changed something; in-progress and failed ones did not (yet).
    if !s.status.ends_with("_COMPLETE") || s.status.contains("ROLLBACK") {
        return Err(NotObserved::Skipped("a stack status that changed nothing yet"));
    }
    let resource = Resource {
        id: s.logical_resource_id.clone().unwrap_or_else(|| stack_name(&s.stack_id).unwrap_or(&s.stack_id).to_owned()),
        arn: Some(s.stack_id.clone()),
        resource_type: s.resource_type.clone().or_else(|| Some("AWS::CloudFormation::Stack".to_owned())),
    };
    let what = match &s.logical_resource_id {
        Some(logical) => format!("stack resource {logical} {}", s.status),
        None => format!("stack {}", s.status),
    };
    Ok(Observation {
        tenant: d.tenant,
        event_id: d.event_id,
        evidence: Evidence::StackStatus,
        account: s.account,
        region: s.region,
        at: d.at,
        resources: vec![resource],
        service: d.service,
        what,
        action: None,
        actor: Some(Actor::cloudformation(&s.stack_id)),
    })
}

fn drift((d, s): (Head, DriftStatus)) -> Observation {
    let resource = Resource {
        id: stack_name(&s.stack_id).unwrap_or(&s.stack_id).to_owned(),
        arn: Some(s.stack_id.clone()),
        resource_type: Some("AWS::CloudFormation::Stack".to_owned()),
    };
    Observation {
        tenant: d.tenant,
        event_id: d.event_id,
        evidence: Evidence::StackDrift,
        account: s.account,
        region: s.region,
        at: d.at,
        resources: vec![resource],
        service: d.service,
        what: format!("stack drifted from its template ({})", s.drift_status),
        action: None,
        actor: None,
    }
}

/// A resource turning `NON_COMPLIANT` (from anything else): its
/// configuration changed. Any other result (compliant again, not
/// applicable, no data) is no evidence of a change.
fn compliance((d, c): (Head, ComplianceChange)) -> Result<Observation, NotObserved> {
    if c.compliance != NON_COMPLIANT || c.previous_compliance.as_deref() == Some(NON_COMPLIANT) {
        return Err(NotObserved::Skipped("a compliance result other than newly NON_COMPLIANT"));
    }
    let resource = Resource {
        arn: arn_of(Some(&c.resource_type), &c.resource_id, &c.account, &c.region),
        id: c.resource_id,
        resource_type: Some(c.resource_type.clone()),
    };
    let before = c.previous_compliance.as_deref().unwrap_or("not evaluated");
    let what = format!(
        "{} {} turned {NON_COMPLIANT} (was {before}) under AWS Config rule {}",
        c.resource_type, resource.id, c.rule_name
    );
    Ok(Observation {
        tenant: d.tenant,
        event_id: d.event_id,
        evidence: Evidence::ComplianceChange,
        account: c.account,
        region: c.region,
        at: d.at,
        resources: vec![resource],
        service: d.service,
        what,
        action: None,
        actor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Normalized, aws};
    use serde_json::{Value, json};

    const CONFIG_ITEM: &[u8] = include_bytes!("../../../../events/aws/config.configuration_item_change.json");
    const TRAIL_EC2: &[u8] =
        include_bytes!("../../../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.json");
    const TRAIL_BREAK_GLASS: &[u8] =
        include_bytes!("../../../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.source_identity.json");
    const TRAIL_SSO_USER: &[u8] = include_bytes!("../../../../events/aws/cloudtrail.iam_put_role_policy.json");
    const TRAIL_IDENTITY_CENTER: &[u8] =
        include_bytes!("../../../../events/aws/cloudtrail.s3_delete_bucket_policy.identity_center.json");
    const STACK: &[u8] = include_bytes!("../../../../events/aws/cloudformation.resource_status_change.json");
    const COMPLIANCE: &[u8] = include_bytes!("../../../../events/aws/config.rules_compliance_change.json");
    const TOOL_K8S: &[u8] = include_bytes!("../../../../events/tools/kubernetes.configuration_changed.json");

    #[test]
    fn a_tools_change_names_the_actor_it_reports_flagged_by_the_settings() {
        let policy = DriftPolicy {
            vendor_principals: vec!["arn:aws:iam::123456789012:role/vendor-*".into()],
            ..DriftPolicy::default()
        };
        let o = observe(TOOL_K8S, &policy);
        assert_eq!(o.evidence, Evidence::ConfigurationItem);
        assert_eq!(o.what, "Kubernetes::networking.k8s.io/v1::NetworkPolicy payments/allow-db-egress DELETE");
        let actor = o.actor.expect("the reported actor");
        assert_eq!(
            (actor.name.as_str(), actor.kind.as_str(), actor.vendor, actor.pipeline),
            ("arn:aws:iam::123456789012:role/vendor-netops", "Reported", true, false)
        );
        assert_eq!(observe(CONFIG_ITEM, &policy).actor, None, "AWS Config names nobody");
    }

    /// The hub event detail ingest makes of an AWS sample (service unresolved).
    fn detail(body: &[u8]) -> (String, Value) {
        let Ok(Normalized::Events(mut events)) = aws::normalize(body) else { panic!("one event") };
        let c = events.remove(0);
        let (detail_type, data) = c.fact.split();
        let detail = json!({
            "event_id": format!("aws-{}-0", c.external_id), "tenant": "acme", "origin": "aws", "service": null,
            "service_resolution": {"key": null, "reason": "test"}, "environment": null,
            "occurred_at": c.occurred_at, "actor": c.actor, "external_id": c.external_id, "url": null,
            "delivery_id": "d", "data": data,
        });
        (detail_type, detail)
    }

    fn observe(body: &[u8], policy: &DriftPolicy) -> Observation {
        let (detail_type, detail) = detail(body);
        Observation::of(&detail_type, &detail, policy).expect("an observation")
    }

    #[test]
    fn an_api_call_is_identified_by_cloudtrails_own_event_id_whatever_its_envelope() {
        let (detail_type, mut detail) = detail(TRAIL_BREAK_GLASS);
        let policy = DriftPolicy::default();
        let first = Observation::of(&detail_type, &detail, &policy).expect("an observation");
        // The same record under another EventBridge envelope: another hub event id.
        detail["event_id"] = json!("aws-another-envelope-0");
        detail["delivery_id"] = json!("another-envelope");
        let again = Observation::of(&detail_type, &detail, &policy).expect("an observation");
        assert_eq!(first.event_id, "e7b94c1d-2a3f-4b6e-9c8d-0f1a2b3c4d5e");
        assert_eq!(again.event_id, first.event_id);
        // A Config item keeps the hub event's id.
        assert_eq!(observe(CONFIG_ITEM, &policy).event_id, detail_of(CONFIG_ITEM)["event_id"]);
    }

    fn detail_of(body: &[u8]) -> Value {
        detail(body).1
    }

    #[test]
    fn an_assumed_role_with_a_source_identity_names_the_person() {
        let o = observe(TRAIL_BREAK_GLASS, &DriftPolicy::default());
        let actor = o.actor.as_ref().expect("actor");
        assert_eq!(actor.name, "maria.rossi@acme.example");
        assert_eq!(actor.principal.as_deref(), Some("arn:aws:iam::123456789012:role/ops-break-glass"));
        assert_eq!(
            actor.session.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/ops-break-glass/maria.rossi")
        );
        assert_eq!(actor.session_name.as_deref(), Some("maria.rossi"));
        assert_eq!(
            actor.chain(),
            "maria.rossi@acme.example, via role arn:aws:iam::123456789012:role/ops-break-glass, session maria.rossi"
        );
        assert_eq!(
            o.what,
            "ec2:AuthorizeSecurityGroupIngress (groupId=sg-0a1b2c3d4e5f67890, ipPermissions=tcp 22 from 0.0.0.0/0)"
        );
        assert_eq!(
            o.resources,
            vec![Resource {
                id: "sg-0a1b2c3d4e5f67890".into(),
                arn: Some("arn:aws:ec2:us-east-1:123456789012:security-group/sg-0a1b2c3d4e5f67890".into()),
                resource_type: Some("AWS::EC2::SecurityGroup".into()),
            }]
        );
        assert!(o.security_relevant());
        assert_eq!(o.at.to_rfc3339(), "2026-09-14T14:02:11+00:00");
    }

    #[test]
    fn an_identity_center_permission_set_session_names_the_user_by_its_session() {
        let o = observe(TRAIL_SSO_USER, &DriftPolicy::default());
        let actor = o.actor.expect("actor");
        assert_eq!(actor.name, "ana@acme.example");
        assert!(actor.principal.as_deref().is_some_and(|p| p.contains("AWSReservedSSO_PlatformAdmin")));
    }

    #[test]
    fn an_identity_center_user_is_named_on_behalf_of() {
        let o = observe(TRAIL_IDENTITY_CENTER, &DriftPolicy::default());
        let actor = o.actor.as_ref().expect("actor");
        assert_eq!(actor.kind, "IdentityCenterUser");
        assert_eq!(actor.name, "94c8d4a8-6081-70f1-3e2b-5c7d9e1f3a5b");
        assert_eq!(actor.on_behalf_of.as_deref(), Some("94c8d4a8-6081-70f1-3e2b-5c7d9e1f3a5b"));
        assert_eq!(o.action.as_deref(), Some("s3:DeleteBucketPolicy"));
        assert!(o.security_relevant(), "a bucket policy");
    }

    #[test]
    fn pipeline_and_vendor_principals_are_flagged_from_the_settings() {
        let policy = DriftPolicy {
            pipeline_principals: vec!["arn:aws:iam::123456789012:role/github-actions-*".into()],
            vendor_principals: vec!["arn:aws:iam::123456789012:role/ops-break-glass".into()],
            ..DriftPolicy::default()
        };
        let deploy = observe(TRAIL_EC2, &policy).actor.expect("actor");
        assert!(deploy.pipeline && !deploy.vendor);
        let vendor = observe(TRAIL_BREAK_GLASS, &policy).actor.expect("actor");
        assert!(vendor.vendor && !vendor.pipeline);
        assert!(vendor.chain().ends_with("(vendor)"));
    }

    #[test]
    fn root_users_and_services_are_named_as_such() {
        let id = CallerIdentity {
            kind: Some("Root".into()),
            arn: Some("arn:aws:iam::123456789012:root".into()),
            account_id: Some("123456789012".into()),
            ..CallerIdentity::default()
        };
        assert_eq!(Actor::of_caller(&id, "123456789012", &DriftPolicy::default()).name, "root of account 123456789012");
        let id = CallerIdentity {
            kind: Some("AWSService".into()),
            invoked_by: Some("autoscaling.amazonaws.com".into()),
            ..CallerIdentity::default()
        };
        assert_eq!(Actor::of_caller(&id, "1", &DriftPolicy::default()).name, "autoscaling.amazonaws.com");
        let user = CallerIdentity {
            kind: Some("IAMUser".into()),
            arn: Some("arn:aws:iam::123456789012:user/vendor-ops".into()),
            user_name: Some("vendor-ops".into()),
            ..CallerIdentity::default()
        };
        let actor = Actor::of_caller(&user, "1", &DriftPolicy::default());
        assert_eq!(
            (actor.name.as_str(), actor.storm_key()),
            ("vendor-ops", "arn:aws:iam::123456789012:user/vendor-ops")
        );
    }

    #[test]
    fn a_config_item_names_its_resource_and_changed_properties_but_no_actor() {
        let o = observe(CONFIG_ITEM, &DriftPolicy::default());
        assert_eq!(o.evidence, Evidence::ConfigurationItem);
        assert_eq!(o.actor, None);
        assert_eq!(o.what, "AWS::EC2::SecurityGroup sg-0a1b2c3d4e5f67890 UPDATE: Configuration.IpPermissions.1");
        let trail = observe(TRAIL_EC2, &DriftPolicy::default());
        assert!(o.touches_same(&trail.account, &trail.resources), "the call names the group by id");
        assert!(!o.touches_same("999999999999", &trail.resources), "another account's group");
    }

    #[test]
    fn stack_steps_in_progress_are_skipped_and_completed_ones_are_cloudformations() {
        let o = observe(STACK, &DriftPolicy::default());
        let actor = o.actor.as_ref().expect("actor");
        assert!(actor.by_cloudformation());
        assert_eq!(actor.name, "CloudFormation stack checkout-service-prod");
        let (detail_type, mut detail) = detail(STACK);
        detail["data"]["status"] = json!("UPDATE_IN_PROGRESS");
        assert!(matches!(
            Observation::of(&detail_type, &detail, &DriftPolicy::default()),
            Err(NotObserved::Skipped(_))
        ));
    }

    #[test]
    fn failed_calls_and_other_events_are_skipped_and_bad_details_named() {
        let (detail_type, mut detail) = detail(TRAIL_EC2);
        detail["data"]["error_code"] = json!("Client.UnauthorizedOperation");
        assert!(matches!(
            Observation::of(&detail_type, &detail, &DriftPolicy::default()),
            Err(NotObserved::Skipped(_))
        ));
        assert!(matches!(
            Observation::of("Incident Triggered", &json!({}), &DriftPolicy::default()),
            Err(NotObserved::Skipped(_))
        ));
        let err = Observation::of("API Call Recorded", &json!({"tenant": "acme"}), &DriftPolicy::default());
        assert!(matches!(err, Err(NotObserved::Malformed { .. })), "{err:?}");
    }

    #[test]
    fn a_resource_turning_non_compliant_is_evidence_on_it_and_other_results_are_skipped() {
        let o = observe(COMPLIANCE, &DriftPolicy::default());
        assert_eq!((o.evidence, o.actor.as_ref()), (Evidence::ComplianceChange, None));
        assert_eq!(
            o.what,
            "AWS::EC2::SecurityGroup sg-0a1b2c3d4e5f67890 turned NON_COMPLIANT (was COMPLIANT) \
             under AWS Config rule restricted-common-ports"
        );
        assert!(o.security_relevant(), "a security group");
        let trail = observe(TRAIL_BREAK_GLASS, &DriftPolicy::default());
        assert!(o.touches_same(&trail.account, &trail.resources), "the call names the same group");
        assert_eq!(
            o.mapping_keys()[0],
            "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0a1b2c3d4e5f67890",
            "mapped by the ARN built from its id"
        );
        for (now, before) in [("COMPLIANT", json!("NON_COMPLIANT")), ("NOT_APPLICABLE", json!(null))] {
            let (detail_type, mut detail) = detail(COMPLIANCE);
            detail["data"]["compliance"] = json!(now);
            detail["data"]["previous_compliance"] = before;
            assert!(
                matches!(Observation::of(&detail_type, &detail, &DriftPolicy::default()), Err(NotObserved::Skipped(_))),
                "{now}"
            );
        }
        let (detail_type, mut detail) = detail(COMPLIANCE);
        detail["data"]["previous_compliance"] = json!("NON_COMPLIANT");
        assert!(
            matches!(Observation::of(&detail_type, &detail, &DriftPolicy::default()), Err(NotObserved::Skipped(_))),
            "still non-compliant: no new change"
        );
    }
}
