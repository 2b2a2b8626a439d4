//! A tenant's service catalog: services (owner, tier, dependencies, approval
//! chain), how external names map to them, who holds which role, change
//! categories with their checklists, standard-change templates, and the
//! tenant's risk and emergency rules. One document per tenant, validated
//! whole, with every error naming the field at fault by its path.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::ids::ServiceName;
use super::risk::RiskRules;
use super::slug::Slug;
use super::validation::FieldError;

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

/// A length of time written for people: `30m`, `4h`, `2d`, `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        humantime::parse_duration(s.trim())
            .map(Span)
            .map_err(|e| format!("{s:?} is not a duration such as 30m, 4h, 2d or 1w: {e}"))
    }

    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
    Span(Duration::from_secs(72 * 3600))
}

fn default_emergency_sla() -> Span {
    Span(Duration::from_secs(3600))
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
    Span(Duration::from_secs(15 * 60))
}

impl Default for ImplementationPolicy {
    fn default() -> Self {
        Self { start_grace: default_start_grace() }
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

/// A group name as identity providers send them: visible characters, no spaces.
/// Identity providers' group names are display names (`Payments Leads`), so
/// inner spaces are allowed; empty names, surrounding whitespace and control
/// characters are not.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty() && g.len() <= 256 && g.trim() == g && g.chars().all(|c| !c.is_control())
}

fn check_groups(path: &str, groups: &[String], required: bool) -> Result<(), FieldError> {
    if required && groups.is_empty() {
        return Err(FieldError::new(path, "name at least one group"));
    }
    for (i, g) in groups.iter().enumerate() {
        if !valid_group(g) {
            return Err(FieldError::new(
                format!("{path}[{i}]"),
                format!(
                    "group names are 1 to 256 characters, without control characters or surrounding spaces; got {g:?}"
                ),
            ));
        }
    }
    Ok(())
}

fn check_text(path: &str, text: &str, max: usize) -> Result<(), FieldError> {
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(FieldError::new(path, format!("must be 1 to {max} characters")));
    }
    Ok(())
}

impl Catalog {
    pub fn service(&self, name: &ServiceName) -> Option<&Service> {
        self.services.iter().find(|s| &s.name == name)
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

    /// Checks the whole document; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), FieldError> {
        for role in Role::ALL {
            check_groups(&format!("roles.{role}"), self.roles.groups(role), false)?;
        }
        if self.services.len() > MAX_SERVICES {
            return Err(FieldError::new("services", format!("at most {MAX_SERVICES} services per catalog")));
        }
        let names: HashSet<&ServiceName> = self.services.iter().map(|s| &s.name).collect();
        let mut seen = HashSet::new();
        let mut mapped: HashMap<(MappingKind, &str), &ServiceName> = HashMap::new();
        for (i, svc) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !seen.insert(&svc.name) {
                return Err(FieldError::new(format!("{at}.name"), format!("service {} is listed twice", svc.name)));
            }
            if svc.description.chars().count() > 2_000 {
                return Err(FieldError::new(format!("{at}.description"), "must be at most 2000 characters"));
            }
            check_groups(&format!("{at}.owner_group"), std::slice::from_ref(&svc.owner_group), true)
                .map_err(|e| FieldError::new(format!("{at}.owner_group"), e.message))?;
            if !(1..=4).contains(&svc.tier) {
                return Err(FieldError::new(format!("{at}.tier"), format!("tier must be 1 to 4; got {}", svc.tier)));
            }
            if svc.depends_on.len() > MAX_DEPENDENCIES {
                return Err(FieldError::new(
                    format!("{at}.depends_on"),
                    format!("at most {MAX_DEPENDENCIES} dependencies"),
                ));
            }
            for (j, dep) in svc.depends_on.iter().enumerate() {
                let path = format!("{at}.depends_on[{j}]");
                if dep == &svc.name {
                    return Err(FieldError::new(path, format!("service {} cannot depend on itself", svc.name)));
                }
                if !names.contains(dep) {
                    return Err(FieldError::new(
                        path,
                        format!("service {} depends on {dep}, which the catalog does not list", svc.name),
                    ));
                }
            }
            if svc.approval.len() > MAX_LEVELS {
                return Err(FieldError::new(format!("{at}.approval"), format!("at most {MAX_LEVELS} approval levels")));
            }
            let mut level_names = HashSet::new();
            for (j, level) in svc.approval.iter().enumerate() {
                let lat = format!("{at}.approval[{j}]");
                check_text(&format!("{lat}.name"), &level.name, 64)?;
                if !level_names.insert(level.name.as_str()) {
                    return Err(FieldError::new(
                        format!("{lat}.name"),
                        format!("level {:?} is listed twice", level.name),
                    ));
                }
                check_groups(&format!("{lat}.groups"), &level.groups, true)?;
                let (min, max) = (Duration::from_secs(60), Duration::from_secs(30 * 86_400));
                if level.sla.0 < min || level.sla.0 > max {
                    return Err(FieldError::new(format!("{lat}.sla"), "sla must be between 1m and 30d"));
                }
                check_text(&format!("{lat}.escalate_to"), &level.escalate_to, 256)?;
            }
            let m = &svc.mappings;
            let lists: [(&str, MappingKind, &Vec<String>); 5] = [
                ("repositories", MappingKind::Repository, &m.repositories),
                ("pagerduty_services", MappingKind::PagerdutyService, &m.pagerduty_services),
                ("incidentio_services", MappingKind::IncidentioService, &m.incidentio_services),
                ("alert_labels", MappingKind::AlertLabel, &m.alert_labels),
                ("aws_arn_prefixes", MappingKind::AwsResource, &m.aws_arn_prefixes),
            ];
            for (field, kind, keys) in lists {
                for (j, key) in keys.iter().enumerate() {
                    let path = format!("{at}.mappings.{field}[{j}]");
                    check_text(&path, key, 1_024)?;
                    if kind == MappingKind::AwsResource && !key.starts_with("arn:") {
                        return Err(FieldError::new(path, format!("an ARN prefix starts with \"arn:\"; got {key:?}")));
                    }
                    if let Some(other) = mapped.insert((kind, key.as_str()), &svc.name) {
                        return Err(FieldError::new(
                            path,
                            format!("{key:?} is already mapped to service {other}; a name maps to one service"),
                        ));
                    }
                }
            }
        }
        for (id, cat) in &self.categories {
            let at = format!("categories.{id}");
            if !Slug::is_valid(id) {
                return Err(FieldError::new(at, "category ids are 1 to 64 characters of a-z, 0-9, '.', '_' or '-'"));
            }
            let mut ids = HashSet::new();
            for (j, item) in cat.checklist.iter().enumerate() {
                let iat = format!("{at}.checklist[{j}]");
                if !Slug::is_valid(&item.id) {
                    return Err(FieldError::new(
                        format!("{iat}.id"),
                        "checklist ids are 1 to 64 characters of a-z, 0-9, '.', '_' or '-'",
                    ));
                }
                if !ids.insert(item.id.as_str()) {
                    return Err(FieldError::new(format!("{iat}.id"), format!("item {:?} is listed twice", item.id)));
                }
                check_text(&format!("{iat}.text"), &item.text, 500)?;
            }
        }
        let mut template_ids = HashSet::new();
        for (i, t) in self.templates.iter().enumerate() {
            let at = format!("templates[{i}]");
            if !Slug::is_valid(&t.id) {
                return Err(FieldError::new(
                    format!("{at}.id"),
                    "template ids are 1 to 64 characters of a-z, 0-9, '.', '_' or '-'",
                ));
            }
            if !template_ids.insert(t.id.as_str()) {
                return Err(FieldError::new(format!("{at}.id"), format!("template {:?} is listed twice", t.id)));
            }
            check_text(&format!("{at}.title"), &t.title, 200)?;
            for (j, s) in t.services.iter().enumerate() {
                if !names.contains(s) {
                    return Err(FieldError::new(
                        format!("{at}.services[{j}]"),
                        format!("template {} names service {s}, which the catalog does not list", t.id),
                    ));
                }
            }
            if self.category(&t.category).is_none() {
                return Err(FieldError::new(
                    format!("{at}.category"),
                    format!("category {:?} is not listed under categories", t.category),
                ));
            }
        }
        self.risk.validate().map_err(|e| FieldError::new(format!("risk.{}", e.field), e.message))?;
        let review = self.emergency.review_within.0;
        if review < Duration::from_secs(3600) || review > Duration::from_secs(90 * 86_400) {
            return Err(FieldError::new("emergency.review_within", "review_within must be between 1h and 90d"));
        }
        check_groups("emergency.approvers", &self.emergency.approvers, false)?;
        let sla = self.emergency.approval_sla.0;
        if sla < Duration::from_secs(60) || sla > Duration::from_secs(86_400) {
            return Err(FieldError::new("emergency.approval_sla", "approval_sla must be between 1m and 1d"));
        }
        if self.implementation.start_grace.0 > Duration::from_secs(86_400) {
            return Err(FieldError::new("implementation.start_grace", "start_grace must be at most 1d"));
        }
        Ok(())
    }
}

/// Reads and validates a catalog written in YAML. Every error names the
/// field's path and its line: `line 12: services[1].tier: tier must be 1 to 4; got 7`.
pub fn parse_yaml(text: &str) -> Result<Catalog, FieldError> {
    use crate::yaml::{YamlDoc, YamlError};
    let as_field = |e: YamlError| match e {
        YamlError::Syntax { .. } => FieldError::new("body", e.to_string()),
        YamlError::Invalid { line, path, message } if path.is_empty() => {
            FieldError::new("body", format!("line {line}: {message}"))
        }
        YamlError::Invalid { line, path, message } => FieldError::new(path, format!("line {line}: {message}")),
    };
    let doc = YamlDoc::parse(text).map_err(as_field)?;
    if !doc.value.is_object() {
        return Err(FieldError::new("body", "line 1: a catalog is a mapping (roles:, services:, ...)"));
    }
    let catalog: Catalog = doc.deserialize().map_err(as_field)?;
    if let Some(path) = crate::json::positional(&doc.value, &serde_json::to_value(&catalog).unwrap_or_default()) {
        return Err(as_field(doc.error_at(&path, crate::json::POSITIONAL)));
    }
    catalog.validate().map_err(|e| as_field(doc.error_at(&e.field, e.message)))?;
    Ok(catalog)
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
        catalog(v).validate().expect_err("invalid").field
    }

    #[test]
    fn the_sample_catalog_is_valid_and_round_trips() {
        let c = catalog(sample());
        c.validate().expect("valid");
        let back: Catalog = serde_json::from_value(serde_json::to_value(&c).expect("ser")).expect("de");
        assert_eq!(back, c);
        assert_eq!(c.emergency.review_within.0, Duration::from_secs(48 * 3600));
        assert_eq!(serde_json::to_value(c.services[0].approval[0].sla).expect("ser"), json!("4h"));
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
        assert_eq!(field_of(|v| v["services"][0]["approval"][0]["sla"] = json!("10s")), "services[0].approval[0].sla");
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
            catalog(v).validate().err()
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
