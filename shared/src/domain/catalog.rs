//! A tenant's service catalog: services (owner, tier, dependencies, approval
//! chain), how external names map to them, who holds which role, change
//! categories with their checklists, standard-change templates, and the
//! tenant's risk, emergency and correlation rules. One document per tenant, validated
//! whole ([`check`]), with every error naming the field at fault by its path.

mod check;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

pub use check::{parse_yaml, valid_group};

use super::correlation::{CorrelationOverride, CorrelationPolicy};
use super::deployment::PipelinePolicy;
use super::escalation::{self, Cadence, Percent};
use super::ids::ServiceName;
use super::incident::IncidentPolicy;
use super::problem::{ProblemOverride, ProblemPolicy};
use super::risk::RiskRules;
use super::routing::{RoutingPolicy, Stakeholder};
use super::writeback::WriteBackPolicy;

pub const MAX_SERVICES: usize = 2_000;
pub const MAX_LEVELS: usize = 5;
pub const MAX_DEPENDENCIES: usize = 20;
/// Every category that is not listed in a catalog still exists, with no checklist.
pub const DEFAULT_CATEGORY: &str = "general";

/// The roles a group can grant in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Opens changes and drives their own changes through the lifecycle.
    Requester,
    /// Decides approval levels whose group they belong to.
    Approver,
    /// The change advisory board: reviews emergencies, drives any change.
    Cab,
    /// Manages the catalog, freeze windows and major incidents.
    Admin,
    /// Reads everything, audit trails included; changes nothing.
    Auditor,
    /// A machine's role: sends AWS events to the local hub's `POST /events`; reads nothing.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Requester, Role::Approver, Role::Cab, Role::Admin, Role::Auditor, Role::Ingest];
    /// The roles people hold: each may read the tenant's changes, catalog and governance documents.
    pub const PEOPLE: [Role; 5] = [Role::Requester, Role::Approver, Role::Cab, Role::Admin, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Cab => "cab",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Ingest => "ingest",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which groups grant each role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMap {
    #[serde(default)]
    pub requester: Vec<String>,
    #[serde(default)]
    pub approver: Vec<String>,
    #[serde(default)]
    pub cab: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
    #[serde(default)]
    pub auditor: Vec<String>,
    #[serde(default)]
    pub ingest: Vec<String>,
}

impl RoleMap {
    pub fn groups(&self, role: Role) -> &[String] {
        match role {
            Role::Requester => &self.requester,
            Role::Approver => &self.approver,
            Role::Cab => &self.cab,
            Role::Admin => &self.admin,
            Role::Auditor => &self.auditor,
            Role::Ingest => &self.ingest,
        }
    }
}

/// Whether one approval from any listed group completes a level, or one from each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    #[default]
    AnyOf,
    AllOf,
}

/// A length of time written for people: `30m`, `4h`, `2d`, `1w`, parts
/// combined (`1h30m`, `1h 30m`). The unit follows its number without a
/// space: `4 hours` is refused, so that a duration reads one way. It keeps
/// the text it was written in (the second field), so a catalog's `1d` reads
/// back as `1d` from `GET /catalog` and on the approval steps copied from it.
/// Two spans are equal when they last as long, whatever their text.
#[derive(Debug, Clone)]
pub struct Span(pub Duration, String);

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let text = s.trim();
        if let Ok(n) = text.parse::<u64>() {
            return Err(format!("{s:?} has no unit: write {n}m, {n}h or {n}d"));
        }
        let number = |part: &str| part.chars().all(|c| c.is_ascii_digit() || c == '.');
        if text.split_whitespace().any(number) {
            return Err(format!(
                "{s:?} is not a duration: write the unit right after the number, such as 30m, 4h, 2d or 1w"
            ));
        }
        humantime::parse_duration(text)
            .map(|d| Span(d, text.to_owned()))
            .map_err(|_| format!("{s:?} is not a duration such as 30m, 4h, 2d or 1w"))
    }

    /// A span of `d`, written in its largest whole unit: `90m`, `3d`, `1w`.
    /// Whether it is zero (`off`).
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn new(d: Duration) -> Span {
        let secs = d.as_secs();
        let text = match [(604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
            .into_iter()
            .find(|(unit, _)| d.subsec_nanos() == 0 && secs >= *unit && secs.is_multiple_of(*unit))
        {
            Some((unit, suffix)) => format!("{}{suffix}", secs / unit),
            None => humantime::format_duration(d).to_string(),
        };
        Span(d, text)
    }

    /// The span as people read it in a sentence: its two largest units,
    /// cut (not rounded) to whole seconds: `6 min 56 s`, `2 h 5 min`, `3 h`,
    /// `1 d 4 h`, `45 s`, `0 s`. The one formatter for durations in texts
    /// (explanations, notices); [`Span`]'s own text is the catalog's notation.
    pub fn for_people(&self) -> String {
        const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
        let secs = self.0.as_secs();
        let Some(first) = UNITS.iter().position(|(unit, _)| secs >= *unit) else { return "0 s".to_owned() };
        let (unit, name) = UNITS[first];
        let mut text = format!("{} {name}", secs / unit);
        if let Some((next, next_name)) = UNITS.get(first + 1) {
            let rest = secs % unit / next;
            if rest > 0 {
                text.push_str(&format!(" {rest} {next_name}"));
            }
        }
        text
    }

    /// The text the span was written in.
    pub fn as_str(&self) -> &str {
        &self.1
    }

    pub fn chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl PartialEq for Span {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Span {}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.1)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.1)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Span::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One level of a service's approval chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalLevel {
    pub name: String,
    pub groups: Vec<String>,
    #[serde(default)]
    pub rule: Rule,
    /// How long the level may wait for its decision before it escalates.
    pub sla: Span,
    /// Who is told when the level is overdue.
    pub escalate_to: String,
    /// Reminders to the approvers before the deadline, as shares of the SLA (`50%`).
    #[serde(default = "escalation::default_reminders", skip_serializing_if = "escalation::are_default_reminders")]
    pub reminders: Vec<Percent>,
    /// The period between escalations from the deadline on; the SLA when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_every: Option<Span>,
    /// Escalations to `escalate_to` before the breach goes to the CAB.
    #[serde(
        default = "escalation::default_max_escalations",
        skip_serializing_if = "escalation::is_default_max_escalations"
    )]
    pub max_escalations: u32,
}

impl ApprovalLevel {
    /// How the level's steps are chased.
    pub fn cadence(&self) -> Cadence {
        Cadence {
            reminders: self.reminders.clone(),
            escalate_every: self.escalate_every.clone(),
            max_escalations: self.max_escalations,
        }
    }
}

/// External names that mean this service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mappings {
    /// `owner/name` (GitHub) or `group/project` paths (GitLab).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// PagerDuty service ids, e.g. `PIJ90N7`.
    #[serde(default)]
    pub pagerduty_services: Vec<String>,
    /// incident.io service names: the value of an incident's "Affected service" field.
    #[serde(default)]
    pub incidentio_services: Vec<String>,
    /// Values of an alert's `service` label that mean this service.
    #[serde(default)]
    pub alert_labels: Vec<String>,
    /// ARN prefixes (the longest matching prefix wins). A resource tagged
    /// `changehub:service` needs no mapping.
    #[serde(default)]
    pub aws_arn_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: ServiceName,
    #[serde(default)]
    pub description: String,
    pub owner_group: String,
    /// 1 (most critical) to 4.
    pub tier: u8,
    /// The services this one depends on.
    #[serde(default)]
    pub depends_on: Vec<ServiceName>,
    /// The approval chain of normal changes, in order.
    #[serde(default)]
    pub approval: Vec<ApprovalLevel>,
    #[serde(default)]
    pub mappings: Mappings,
    /// The window and hops for incidents on this service, where they differ from the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationOverride>,
    /// The service's own problem threshold and period, over the tenant's `problems:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<ProblemOverride>,
    /// Who is told in plain words of its changes (`domain::routing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stakeholders: Vec<Stakeholder>,
    /// The merge gate on its repositories' pull and merge requests
    /// (`domain::gate::merge`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_gate: Option<crate::domain::gate::merge::MergeGatePolicy>,
    /// How long a change stays `verifying` after a successful production
    /// deployment before it completes (`domain::bake`; default off, at most
    /// [`MAX_BAKE_TIME_DAYS`] days).
    #[serde(default = "bake_off", deserialize_with = "lead", skip_serializing_if = "Span::is_zero")]
    pub bake_time: Span,
    /// The rollback a failed production deployment of a change that
    /// declares an automated rollback plan runs
    /// (`domain::deployment::rollback`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::domain::deployment::rollback::RollbackAutomation>,
}

/// The longest `services[].bake_time` a catalog may set, in days.
pub const MAX_BAKE_TIME_DAYS: u64 = 7;

fn bake_off() -> Span {
    Span(Duration::ZERO, "off".to_owned())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistTemplate {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    #[serde(default)]
    pub description: String,
    /// Items that must be complete before the change starts implementing.
    #[serde(default)]
    pub checklist: Vec<ChecklistTemplate>,
}

/// A pre-approved standard change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardTemplate {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The services it may be used on; empty means any.
    #[serde(default)]
    pub services: Vec<ServiceName>,
    #[serde(default = "default_category")]
    pub category: String,
}

fn default_category() -> String {
    DEFAULT_CATEGORY.to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyPolicy {
    /// How soon after approval an emergency change must have its post-implementation review.
    #[serde(default = "default_review_within")]
    pub review_within: Span,
    /// The groups (an ECAB) whose members approve emergency changes, one
    /// approval by anyone but the requester; empty means the groups holding the cab role.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How long an emergency approval may wait before it is overdue.
    #[serde(default = "default_emergency_sla")]
    pub approval_sla: Span,
}

fn default_review_within() -> Span {
    Span::new(Duration::from_secs(72 * 3600))
}

fn default_emergency_sla() -> Span {
    Span::new(Duration::from_secs(3600))
}

impl Default for EmergencyPolicy {
    fn default() -> Self {
        Self { review_within: default_review_within(), approvers: vec![], approval_sla: default_emergency_sla() }
    }
}

/// When an approved change may start implementing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImplementationPolicy {
    /// How long before its planned start a change may start implementing
    /// (never after its planned end).
    #[serde(default = "default_start_grace")]
    pub start_grace: Span,
}

fn default_start_grace() -> Span {
    Span::new(Duration::from_secs(15 * 60))
}

impl Default for ImplementationPolicy {
    fn default() -> Self {
        Self { start_grace: default_start_grace() }
    }
}

/// Rules for the changes people open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePolicy {
    /// How far before now a change's planned start may lie when it is
    /// opened, edited or reworked (default 30d, at most [`MAX_BACKDATE_DAYS`]
    /// days): room to record work already done, such as an emergency fix
    /// recorded afterwards, without accepting a date years off by mistake.
    #[serde(default = "default_max_backdate")]
    pub max_backdate: Span,
    /// How long before a scheduled change's planned start its "starting
    /// soon" reminder goes out (default 1h, at most 7d; `off` or `0`: none).
    #[serde(default = "default_starting_soon", deserialize_with = "lead")]
    pub starting_soon: Span,
}

/// The longest `changes.starting_soon` a catalog may set, in days.
pub const MAX_STARTING_SOON_DAYS: u64 = 7;

fn default_starting_soon() -> Span {
    Span::new(Duration::from_secs(3_600))
}

/// A lead time: a span, or `off` / `0` for none.
fn lead<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Number(0) => Ok(Span(Duration::ZERO, "off".to_owned())),
        Raw::Text(t) if matches!(t.trim(), "off" | "0") => Ok(Span(Duration::ZERO, "off".to_owned())),
        Raw::Text(t) => Span::parse(&t).map_err(serde::de::Error::custom),
        Raw::Number(n) => Err(serde::de::Error::custom(format!("{n} has no unit: write {n}m or {n}h, or off"))),
    }
}

/// The longest `changes.max_backdate` a catalog may set, in days.
pub const MAX_BACKDATE_DAYS: u64 = 3_650;

fn default_max_backdate() -> Span {
    Span::new(Duration::from_secs(30 * 86_400))
}

impl Default for ChangePolicy {
    fn default() -> Self {
        Self { max_backdate: default_max_backdate(), starting_soon: default_starting_soon() }
    }
}

/// The catalog document, as imported from YAML or sent to `PUT /catalog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub roles: RoleMap,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub categories: BTreeMap<String, Category>,
    #[serde(default)]
    pub templates: Vec<StandardTemplate>,
    #[serde(default)]
    pub risk: RiskRules,
    #[serde(default)]
    pub emergency: EmergencyPolicy,
    #[serde(default)]
    pub implementation: ImplementationPolicy,
    #[serde(default)]
    pub changes: ChangePolicy,
    /// Which changes an incident is related to (`domain::correlation`).
    #[serde(default)]
    pub correlation: CorrelationPolicy,
    /// Which tools change-related incidents are written back to (`domain::writeback`).
    #[serde(default, skip_serializing_if = "WriteBackPolicy::is_off")]
    pub writeback: WriteBackPolicy,
    /// What a pipeline's deployment means as a change (`domain::deployment`).
    #[serde(default)]
    pub pipelines: PipelinePolicy,
    /// When recurring incidents open a problem (`domain::problem`).
    #[serde(default)]
    pub problems: ProblemPolicy,
    /// Which incidents are major (`domain::incident::MajorRule`).
    #[serde(default)]
    pub incidents: IncidentPolicy,
    /// How unauthorized configuration changes are judged (`domain::finding`).
    #[serde(default, skip_serializing_if = "is_default_drift")]
    pub drift: crate::domain::finding::settings::DriftPolicy,
    /// Which events go to which audiences, and how each reads them (`domain::routing`).
    #[serde(default, skip_serializing_if = "RoutingPolicy::is_default")]
    pub routing: RoutingPolicy,
}

fn is_default_drift(d: &crate::domain::finding::settings::DriftPolicy) -> bool {
    *d == crate::domain::finding::settings::DriftPolicy::default()
}

/// What an external name is, for [`Catalog::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    Repository,
    PagerdutyService,
    IncidentioService,
    AlertLabel,
    /// An ARN (or resource id): exact or longest-prefix match.
    AwsResource,
}

impl Catalog {
    pub fn service(&self, name: &ServiceName) -> Option<&Service> {
        self.services.iter().find(|s| &s.name == name)
    }

    /// Up to three of the catalog's service names closest to `name` (a
    /// typo's likely meaning), closest first; none when nothing is close.
    pub fn closest_services(&self, name: &str) -> Vec<&ServiceName> {
        let near = name.chars().count().div_ceil(3).max(2);
        let mut scored: Vec<(usize, &ServiceName)> = self
            .services
            .iter()
            .map(|s| (strsim::osa_distance(name, s.name.as_str()), &s.name))
            .filter(|(d, _)| *d <= near)
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, s)| s).collect()
    }

    pub fn template(&self, id: &str) -> Option<&StandardTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// The groups whose members approve emergency changes: `emergency.approvers`, else the cab role's groups.
    pub fn emergency_approvers(&self) -> &[String] {
        if self.emergency.approvers.is_empty() { &self.roles.cab } else { &self.emergency.approvers }
    }

    /// The checklist a change of `category` must complete; `None` if the
    /// category is neither listed nor the default one.
    pub fn category(&self, category: &str) -> Option<Category> {
        match self.categories.get(category) {
            Some(c) => Some(c.clone()),
            None if category == DEFAULT_CATEGORY => Some(Category::default()),
            None => None,
        }
    }
}

/// A validated catalog with its lookups built, as cached by warm functions.
#[derive(Debug, Clone, Default)]
pub struct CatalogView {
    /// 0 when the tenant has no catalog yet.
    pub version: u64,
    pub catalog: Catalog,
    exact: HashMap<(MappingKind, String), ServiceName>,
    /// ARN prefixes, longest first.
    prefixes: Vec<(String, ServiceName)>,
}

impl CatalogView {
    pub fn new(version: u64, catalog: Catalog) -> Self {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for svc in &catalog.services {
            let m = &svc.mappings;
            for (kind, keys) in [
                (MappingKind::Repository, &m.repositories),
                (MappingKind::PagerdutyService, &m.pagerduty_services),
                (MappingKind::IncidentioService, &m.incidentio_services),
                (MappingKind::AlertLabel, &m.alert_labels),
            ] {
                for key in keys {
                    let key = if kind == MappingKind::Repository { key.to_ascii_lowercase() } else { key.clone() };
                    exact.insert((kind, key), svc.name.clone());
                }
            }
            for p in &m.aws_arn_prefixes {
                prefixes.push((p.clone(), svc.name.clone()));
            }
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self { version, catalog, exact, prefixes }
    }

    /// The service an external name maps to. Repository names compare
    /// case-insensitively (GitHub treats them so); ARNs match exactly or by
    /// their longest listed prefix.
    pub fn resolve(&self, kind: MappingKind, key: &str) -> Option<&ServiceName> {
        let lookup = if kind == MappingKind::Repository { key.to_ascii_lowercase() } else { key.to_owned() };
        if let Some(s) = self.exact.get(&(kind, lookup)) {
            return Some(s);
        }
        if kind == MappingKind::AwsResource {
            return self.prefixes.iter().find(|(p, _)| key.starts_with(p.as_str())).map(|(_, s)| s);
        }
        None
    }

    /// The tier of the most critical of `services`; unknown services count as `unknown`.
    pub fn highest_tier(&self, services: &[ServiceName], unknown: u8) -> u8 {
        services.iter().map(|s| self.catalog.service(s).map_or(unknown, |svc| svc.tier)).min().unwrap_or(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldError;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "roles": {"admin": ["platform-admins"], "requester": ["engineers"], "approver": ["payments-leads"], "cab": ["cab"]},
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1, "depends_on": ["ledger"],
                 "approval": [
                    {"name": "team-lead", "groups": ["payments-leads"], "sla": "4h", "escalate_to": "payments-managers"},
                    {"name": "cab", "groups": ["cab"], "rule": "any_of", "sla": "1d", "escalate_to": "cto-office"}
                 ],
                 "mappings": {"repositories": ["Acme/Payments-API"], "pagerduty_services": ["PIJ90N7"],
                              "aws_arn_prefixes": ["arn:aws:rds:eu-west-1:123456789012:db:payments-"]}},
                {"name": "ledger", "owner_group": "ledger-team", "tier": 2,
                 "mappings": {"aws_arn_prefixes": ["arn:aws:rds:eu-west-1:123456789012:db:"], "alert_labels": ["ledger-api"]}}
            ],
            "categories": {"database_schema": {"checklist": [{"id": "backup_verified", "text": "A backup was taken and restored"}]}},
            "templates": [{"id": "rotate-tls-cert", "title": "Rotate a TLS certificate", "services": ["payments"]}],
            "emergency": {"review_within": "48h"}
        })
    }

    fn catalog(v: serde_json::Value) -> Catalog {
        serde_json::from_value(v).expect("catalog json")
    }

    fn field_of(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = sample();
        edit(&mut v);
        catalog(v).validate().expect_err("invalid").first().field.clone()
    }

    /// Every problem of `v` edited, as `field: message` lines.
    fn problems_of(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut v = sample();
        edit(&mut v);
        catalog(v).validate().expect_err("invalid").listed().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_sample_catalog_is_valid_and_round_trips() {
        let c = catalog(sample());
        c.validate().expect("valid");
        let back: Catalog = serde_json::from_value(serde_json::to_value(&c).expect("ser")).expect("de");
        assert_eq!(back, c);
        assert_eq!(c.emergency.review_within.0, Duration::from_secs(48 * 3600));
        assert_eq!(serde_json::to_value(&c.services[0].approval[0].sla).expect("ser"), json!("4h"));
    }

    #[test]
    fn durations_read_back_as_they_were_written() {
        let mut v = sample();
        v["services"][0]["approval"][1]["sla"] = json!("1d");
        v["services"][0]["approval"][0]["sla"] = json!(" 90m ");
        v["emergency"]["approval_sla"] = json!("1hour");
        let c = catalog(v);
        let back = serde_json::to_value(&c).expect("ser");
        assert_eq!(back["services"][0]["approval"][1]["sla"], json!("1d"), "not 1day");
        assert_eq!(back["services"][0]["approval"][0]["sla"], json!("90m"), "trimmed, not 1h 30m");
        assert_eq!(back["emergency"]["approval_sla"], json!("1hour"));
        assert_eq!(back["emergency"]["review_within"], json!("48h"));
        assert_eq!(back["implementation"]["start_grace"], json!("15m"), "a default in its largest whole unit");
        assert_eq!(back["changes"]["max_backdate"], json!("30d"));
        assert_eq!(Span::parse("1d"), Span::parse("24h"), "equal when they last as long");
        let written = |secs: u64| Span::new(Duration::from_secs(secs)).to_string();
        assert_eq!(
            [written(604_800), written(259_200), written(5_400), written(90), written(0)],
            ["1w", "3d", "90m", "90s", "0s"]
        );
        assert_eq!(Span::new(Duration::from_millis(1_500)).as_str(), "1s 500ms");
    }

    #[test]
    fn spans_read_for_people_in_their_two_largest_units() {
        let people = |secs: u64| Span::new(Duration::from_secs(secs)).for_people();
        assert_eq!(people(416), "6 min 56 s");
        assert_eq!(people(2 * 3600 + 5 * 60 + 30), "2 h 5 min", "cut to two units, not rounded");
        assert_eq!(people(3 * 3600), "3 h");
        assert_eq!(people(86_400 + 4 * 3600), "1 d 4 h");
        assert_eq!(people(86_400 + 60), "1 d", "the unit after the first only");
        assert_eq!(people(45), "45 s");
        assert_eq!(people(0), "0 s");
        assert_eq!(Span::new(Duration::from_millis(1500)).for_people(), "1 s");
        assert_eq!(Span::parse("1h30m").expect("span").for_people(), "1 h 30 min");
    }

    #[test]
    fn the_major_incident_rule_is_checked_by_path_and_defaults_to_the_hubs() {
        assert_eq!(catalog(sample()).incidents.major, crate::domain::incident::MajorRule::default());
        let twice = |v: &mut serde_json::Value| {
            v["incidents"] = json!({"major": {"pagerduty_priorities": ["P1", "p1"], "alert_severities": [" page"]}});
        };
        assert_eq!(
            problems_of(twice),
            [
                "incidents.major.pagerduty_priorities[1]: \"p1\" is listed twice (names are compared without regard to case)",
                "incidents.major.alert_severities[0]: names are 1 to 64 characters without surrounding spaces",
            ]
        );
        let names = ["S"; 21];
        let many = |v: &mut serde_json::Value| v["incidents"] = json!({"major": {"incidentio_severities": names}});
        assert_eq!(field_of(many), "incidents.major.incidentio_severities");
        let mut typo = sample();
        typo["incidents"] = json!({"major": {"pagerduty_priority": ["P1"]}});
        let e = serde_json::from_value::<Catalog>(typo).expect_err("unknown field");
        assert!(e.to_string().contains("pagerduty_priority"), "{e}");
    }

    #[test]
    fn max_backdate_is_bounded() {
        assert_eq!(field_of(|v| v["changes"] = json!({"max_backdate": "3651d"})), "changes.max_backdate");
        let mut v = sample();
        v["changes"] = json!({"max_backdate": "3650d"});
        assert_eq!(catalog(v).validate(), Ok(()));
    }

    #[test]
    fn the_starting_soon_lead_defaults_to_an_hour_and_may_be_off() {
        assert_eq!(catalog(sample()).changes.starting_soon, Span::new(Duration::from_secs(3_600)));
        for off in [json!("off"), json!("0"), json!(0), json!("0m")] {
            let mut v = sample();
            v["changes"] = json!({"starting_soon": off.clone()});
            let c = catalog(v);
            assert!(c.changes.starting_soon.0.is_zero() && c.validate().is_ok(), "{off}");
        }
        let mut v = sample();
        v["changes"] = json!({"starting_soon": "15m"});
        assert_eq!(catalog(v).changes.starting_soon.0, Duration::from_secs(900));
        assert_eq!(field_of(|v| v["changes"] = json!({"starting_soon": "8d"})), "changes.starting_soon");
        let mut v = sample();
        v["changes"] = json!({"starting_soon": 30});
        assert!(serde_json::from_value::<Catalog>(v).is_err(), "a number other than 0 has no unit");
    }

    #[test]
    fn each_invalid_field_is_named_by_its_path() {
        assert_eq!(field_of(|v| v["services"][0]["tier"] = json!(5)), "services[0].tier");
        assert_eq!(field_of(|v| v["services"][0]["depends_on"] = json!(["ledgr"])), "services[0].depends_on[0]");
        assert_eq!(field_of(|v| v["services"][0]["depends_on"] = json!(["payments"])), "services[0].depends_on[0]");
        let duplicate = |v: &mut serde_json::Value| {
            v["services"][1]["name"] = json!("payments");
            v["services"][0]["depends_on"] = json!([]);
        };
        assert_eq!(field_of(duplicate), "services[1].name");
        assert_eq!(
            field_of(|v| v["services"][0]["approval"][1]["groups"] = json!([])),
            "services[0].approval[1].groups"
        );
        assert_eq!(field_of(|v| v["services"][0]["approval"][0]["sla"] = json!("9s")), "services[0].approval[0].sla");
        let level = |field: &'static str, value: serde_json::Value| {
            move |v: &mut serde_json::Value| v["services"][0]["approval"][0][field] = value.clone()
        };
        assert_eq!(field_of(level("reminders", json!(["75%", "25%"]))), "services[0].approval[0].reminders");
        assert_eq!(field_of(level("escalate_every", json!("5s"))), "services[0].approval[0].escalate_every");
        assert_eq!(field_of(level("max_escalations", json!(11))), "services[0].approval[0].max_escalations");
        assert_eq!(
            field_of(|v| v["services"][0]["approval"][1]["name"] = json!("team-lead")),
            "services[0].approval[1].name"
        );
        assert_eq!(
            field_of(|v| v["services"][1]["mappings"]["aws_arn_prefixes"] = json!(["db:"])),
            "services[1].mappings.aws_arn_prefixes[0]"
        );
        assert_eq!(
            field_of(|v| v["services"][1]["mappings"]["pagerduty_services"] = json!(["PIJ90N7"])),
            "services[1].mappings.pagerduty_services[0]"
        );
        assert_eq!(field_of(|v| v["roles"]["admin"] = json!([" padded"])), "roles.admin[0]");
        assert_eq!(field_of(|v| v["roles"]["cab"] = json!(["cab", "tab\there"])), "roles.cab[1]");
        assert_eq!(field_of(|v| v["templates"][0]["services"] = json!(["nope"])), "templates[0].services[0]");
        assert_eq!(field_of(|v| v["templates"][0]["category"] = json!("nope")), "templates[0].category");
        assert_eq!(
            field_of(|v| v["categories"]["database_schema"]["checklist"][0]["id"] = json!("Bad Id")),
            "categories.database_schema.checklist[0].id"
        );
        assert_eq!(field_of(|v| v["emergency"]["review_within"] = json!("5m")), "emergency.review_within");
        assert_eq!(field_of(|v| v["emergency"]["approvers"] = json!(["tab\there"])), "emergency.approvers[0]");
        assert_eq!(field_of(|v| v["emergency"]["approval_sla"] = json!("2d")), "emergency.approval_sla");
        assert_eq!(field_of(|v| v["implementation"]["start_grace"] = json!("2d")), "implementation.start_grace");
    }

    #[test]
    fn category_template_and_checklist_ids_are_slugs() {
        let error_of = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = sample();
            edit(&mut v);
            catalog(v).validate().err().map(|e| e.first().clone())
        };
        let rule = "ids are 1 to 64 characters of a-z, 0-9, '.', '_' or '-'";
        for bad in ["", "Upper", "-lead", ".lead", "has space", "a#b", "ünï", &"a".repeat(65)] {
            assert_eq!(
                error_of(&|v| v["categories"][bad] = json!({})),
                Some(FieldError::new(format!("categories.{bad}"), format!("category {rule}")))
            );
            assert_eq!(
                error_of(&|v| v["templates"][0]["id"] = json!(bad)),
                Some(FieldError::new("templates[0].id", format!("template {rule}")))
            );
            assert_eq!(
                error_of(&|v| v["categories"]["database_schema"]["checklist"][0]["id"] = json!(bad)),
                Some(FieldError::new("categories.database_schema.checklist[0].id", format!("checklist {rule}")))
            );
        }
        for ok in ["a", "9", "db.primary", "a_b-c", &"a".repeat(64)] {
            assert_eq!(error_of(&|v| v["categories"][ok] = json!({})), None, "{ok:?}");
            assert_eq!(error_of(&|v| v["templates"][0]["id"] = json!(ok)), None, "{ok:?}");
            assert_eq!(
                error_of(&|v| v["categories"]["database_schema"]["checklist"][0]["id"] = json!(ok)),
                None,
                "{ok:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path_not_only_the_first() {
        let problems = problems_of(|v| {
            v["services"][0]["tier"] = json!(7);
            v["services"][0]["depends_on"] = json!(["ledgr"]);
            v["services"][1]["mappings"]["aws_arn_prefixes"] = json!(["db:"]);
            v["templates"][0]["category"] = json!("nope");
            v["emergency"]["approval_sla"] = json!("2d");
        });
        assert_eq!(
            problems,
            [
                "services[0].tier: tier must be 1 to 4; got 7",
                "services[0].depends_on[0]: service payments depends on ledgr, which the catalog does not list",
                "services[1].mappings.aws_arn_prefixes[0]: an ARN prefix starts with \"arn:\"; got \"db:\"",
                "templates[0].category: category \"nope\" is not listed under categories",
                "emergency.approval_sla: approval_sla must be between 10s and 1d",
            ]
        );
        let mut v = sample();
        v["roles"]["admin"] = json!([" a", "b ", "\tc"]);
        let errors = catalog(v).validate().expect_err("three bad groups");
        assert_eq!(errors.total(), 3);
        assert!(errors.to_string().ends_with("(and 2 more problems)"), "{errors}");
    }

    #[test]
    fn circular_dependencies_are_refused_naming_the_cycle() {
        let cycle = problems_of(|v| v["services"][1]["depends_on"] = json!(["payments"]));
        assert_eq!(cycle, ["services[1].depends_on[0]: depends_on forms a cycle: payments → ledger → payments"]);
        let longer = problems_of(|v| {
            v["services"][1]["depends_on"] = json!(["checkout"]);
            v["services"].as_array_mut().expect("services").push(json!(
                {"name": "checkout", "owner_group": "web", "tier": 2, "depends_on": ["ledger", "payments"]}
            ));
        });
        assert_eq!(
            longer,
            [
                "services[2].depends_on[0]: depends_on forms a cycle: ledger → checkout → ledger",
                "services[2].depends_on[1]: depends_on forms a cycle: payments → ledger → checkout → payments",
            ]
        );
        let own = problems_of(|v| v["services"][1]["depends_on"] = json!(["ledger"]));
        assert_eq!(own, ["services[1].depends_on[0]: service ledger cannot depend on itself"]);
        let mut v = sample();
        v["services"][1]["depends_on"] = json!([]);
        v["services"].as_array_mut().expect("services").push(json!(
            {"name": "web", "owner_group": "web", "tier": 3, "depends_on": ["payments", "ledger"]}
        ));
        assert_eq!(catalog(v).validate(), Ok(()), "a shared dependency is no cycle");
    }

    #[test]
    fn yaml_problems_each_name_their_line() {
        let text = "services:\n  - name: payments\n    owner_group: payments-team\n    tier: 7\n    depends_on: [payments]\n    approval:\n      - name: lead\n        groups: [leads]\n        sla: 5s\n        escalate_to: managers\n";
        let errors = parse_yaml(text).expect_err("three problems");
        let listed: Vec<(&str, &str)> =
            errors.listed().iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            listed,
            [
                ("services[0].tier", "line 4: tier must be 1 to 4; got 7"),
                ("services[0].depends_on[0]", "line 5: service payments cannot depend on itself"),
                ("services[0].approval[0].sla", "line 9: sla must be between 10s and 30d"),
            ]
        );
        let spaced = parse_yaml(&text.replace("5s", "4 hours")).expect_err("a spaced duration");
        assert_eq!(spaced.first().field, "services[0].approval[0].sla");
        assert!(spaced.first().message.starts_with("line 9: "), "{spaced}");
    }

    #[test]
    fn durations_are_a_number_and_its_unit_and_errors_suggest_valid_forms() {
        for (text, secs) in [("30m", 1_800), ("4h", 14_400), ("1d", 86_400), ("1w", 604_800), ("1h30m", 5_400)] {
            assert_eq!(Span::parse(text), Ok(Span::new(Duration::from_secs(secs))), "{text}");
        }
        let ninety = Span::new(Duration::from_secs(5_400));
        assert_eq!(Span::parse(&ninety.to_string()), Ok(ninety), "what is written back is read again");
        assert_eq!(Span::parse("5"), Err("\"5\" has no unit: write 5m, 5h or 5d".to_owned()));
        for spaced in ["4 hours", "1 d", "1.5 h"] {
            let err = Span::parse(spaced).expect_err(spaced);
            assert!(err.ends_with("write the unit right after the number, such as 30m, 4h, 2d or 1w"), "{err}");
        }
        assert_eq!(Span::parse("soon"), Err("\"soon\" is not a duration such as 30m, 4h, 2d or 1w".to_owned()));
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_when_decoding() {
        let mut v = sample();
        v["services"][0]["teir"] = json!(1);
        assert!(serde_json::from_value::<Catalog>(v).is_err());
        let mut v = sample();
        v["services"][0]["approval"][0]["sla"] = json!("soon");
        let err = serde_json::from_value::<Catalog>(v).expect_err("bad sla").to_string();
        assert!(err.contains("not a duration"), "{err}");
    }

    #[test]
    fn mappings_resolve_exactly_case_insensitively_for_repositories_and_by_longest_arn_prefix() {
        let view = CatalogView::new(3, catalog(sample()));
        let svc = |s: Option<&ServiceName>| s.map(|s| s.as_str().to_owned());
        assert_eq!(svc(view.resolve(MappingKind::Repository, "acme/payments-api")).as_deref(), Some("payments"));
        assert_eq!(svc(view.resolve(MappingKind::PagerdutyService, "PIJ90N7")).as_deref(), Some("payments"));
        assert_eq!(svc(view.resolve(MappingKind::PagerdutyService, "pij90n7")), None);
        assert_eq!(svc(view.resolve(MappingKind::AlertLabel, "ledger-api")).as_deref(), Some("ledger"));
        let rds = "arn:aws:rds:eu-west-1:123456789012:db:";
        assert_eq!(
            svc(view.resolve(MappingKind::AwsResource, &format!("{rds}payments-main"))).as_deref(),
            Some("payments")
        );
        assert_eq!(svc(view.resolve(MappingKind::AwsResource, &format!("{rds}ledger-1"))).as_deref(), Some("ledger"));
        assert_eq!(svc(view.resolve(MappingKind::AwsResource, "arn:aws:s3:::bucket")), None);
    }

    #[test]
    fn highest_tier_is_the_most_critical_known_service() {
        let view = CatalogView::new(1, catalog(sample()));
        let names = |v: &[&str]| v.iter().map(|s| ServiceName::parse(s).expect("name")).collect::<Vec<_>>();
        assert_eq!(view.highest_tier(&names(&["ledger"]), 1), 2);
        assert_eq!(view.highest_tier(&names(&["ledger", "payments"]), 4), 1);
        assert_eq!(view.highest_tier(&names(&["unknown"]), 3), 3);
    }
}
