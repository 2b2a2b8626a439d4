//! Checking a catalog whole: every problem is reported, each naming its field
//! by its path (and, read from YAML, its line), not only the first.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{
    ApprovalLevel, Catalog, MAX_BACKDATE_DAYS, MAX_BAKE_TIME_DAYS, MAX_DEPENDENCIES, MAX_LEVELS, MAX_SERVICES,
    MAX_STARTING_SOON_DAYS, MappingKind, Role, Service,
};
use crate::domain::escalation::{MAX_ESCALATIONS, MAX_REMINDERS};
use crate::domain::ids::ServiceName;
use crate::domain::slug::Slug;
use crate::domain::validation::{FieldError, FieldErrors, Problems};

/// What a bad id is told, after the kind of id (`category`, `template`, `checklist`).
const SLUG_RULE: &str = "ids are 1 to 64 characters of a-z, 0-9, '.', '_' or '-'";

/// A group name as identity providers send them: visible characters, no spaces.
/// Identity providers' group names are display names (`Payments Leads`), so
/// inner spaces are allowed; empty names, surrounding whitespace and control
/// characters are not.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty() && g.len() <= 256 && g.trim() == g && g.chars().all(|c| !c.is_control())
}

fn check_group(p: &mut Problems, path: String, g: &str) {
    if !valid_group(g) {
        p.add(
            path,
            format!("group names are 1 to 256 characters, without control characters or surrounding spaces; got {g:?}"),
        );
    }
}

fn check_groups(p: &mut Problems, path: &str, groups: &[String], required: bool) {
    if required && groups.is_empty() {
        p.add(path, "name at least one group");
    }
    for (i, g) in groups.iter().enumerate() {
        check_group(p, format!("{path}[{i}]"), g);
    }
}

fn check_text(p: &mut Problems, path: String, text: &str, max: usize) {
    if text.trim().is_empty() || text.chars().count() > max {
        p.add(path, format!("must be 1 to {max} characters"));
    }
}

/// An id that is a slug and unique among `seen`; `(kind, noun)` name it in
/// the messages (`checklist ids are ...`, `item "x" is listed twice`).
fn check_id<'c>(p: &mut Problems, path: String, id: &'c str, (kind, noun): (&str, &str), seen: &mut HashSet<&'c str>) {
    if !Slug::is_valid(id) {
        p.add(path, format!("{kind} {SLUG_RULE}"));
    } else if !seen.insert(id) {
        p.add(path, format!("{noun} {id:?} is listed twice"));
    }
}

fn check_span(p: &mut Problems, path: &str, value: Duration, (min, max): (u64, u64), rule: &str) {
    if value < Duration::from_secs(min) || value > Duration::from_secs(max) {
        p.add(path, rule);
    }
}

impl Catalog {
    /// Checks the whole document; the error lists every field at fault, in
    /// document order (the risk rules report their first problem).
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut p = Problems::default();
        for role in Role::ALL {
            check_groups(&mut p, &format!("roles.{role}"), self.roles.groups(role), false);
        }
        if self.services.len() > MAX_SERVICES {
            p.add("services", format!("at most {MAX_SERVICES} services per catalog"));
            return p.finish();
        }
        let names: HashSet<&ServiceName> = self.services.iter().map(|s| &s.name).collect();
        let mut seen = HashSet::new();
        let mut mapped: HashMap<(MappingKind, &str), &ServiceName> = HashMap::new();
        for (i, svc) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !seen.insert(&svc.name) {
                p.add(format!("{at}.name"), format!("service {} is listed twice", svc.name));
            }
            check_service(&mut p, &at, svc, &names);
            if let Some(own) = &svc.correlation {
                own.check(&mut p, &format!("{at}.correlation"));
            }
            if let Some(own) = &svc.problems {
                own.check(&mut p, &format!("{at}.problems"));
            }
            let most = format!("bake_time must be at most {MAX_BAKE_TIME_DAYS}d, or off");
            check_span(&mut p, &format!("{at}.bake_time"), svc.bake_time.0, (0, MAX_BAKE_TIME_DAYS * 86_400), &most);
            check_mappings(&mut p, &at, svc, &mut mapped);
            crate::domain::routing::check_stakeholders(&mut p, &at, &svc.stakeholders);
            if let Some(gate) = &svc.merge_gate {
                gate.check(&mut p, &format!("{at}.merge_gate"));
            }
            if let Some(rollback) = &svc.rollback {
                rollback.check(&mut p, &format!("{at}.rollback"));
            }
        }
        self.check_cycles(&mut p);
        self.check_categories(&mut p);
        self.check_templates(&mut p, &names);
        p.check(self.risk.validate().map_err(|e| FieldError::new(format!("risk.{}", e.field), e.message)));
        let day = 86_400;
        check_span(
            &mut p,
            "emergency.review_within",
            self.emergency.review_within.0,
            (3600, 90 * day),
            "review_within must be between 1h and 90d",
        );
        check_groups(&mut p, "emergency.approvers", &self.emergency.approvers, false);
        let sla = self.emergency.approval_sla.0;
        check_span(&mut p, "emergency.approval_sla", sla, (10, day), "approval_sla must be between 10s and 1d");
        let grace = self.implementation.start_grace.0;
        check_span(&mut p, "implementation.start_grace", grace, (0, day), "start_grace must be at most 1d");
        let backdate = self.changes.max_backdate.0;
        let most = format!("max_backdate must be at most {MAX_BACKDATE_DAYS}d");
        check_span(&mut p, "changes.max_backdate", backdate, (0, MAX_BACKDATE_DAYS * day), &most);
        let lead = self.changes.starting_soon.0;
        let most = format!("starting_soon must be at most {MAX_STARTING_SOON_DAYS}d, or off");
        check_span(&mut p, "changes.starting_soon", lead, (0, MAX_STARTING_SOON_DAYS * day), &most);
        self.correlation.check(&mut p);
        self.writeback.check(&mut p);
        self.pipelines.check(&mut p);
        self.problems.check(&mut p);
        self.drift.check(&mut p);
        self.incidents.major.check(&mut p);
        self.routing.check(&mut p);
        p.finish()
    }

    /// Refuses services that depend on themselves through others, naming
    /// each cycle found once, at the dependency that closes it.
    fn check_cycles(&self, p: &mut Problems) {
        let mut index: HashMap<&ServiceName, usize> = HashMap::new();
        for (i, svc) in self.services.iter().enumerate() {
            index.entry(&svc.name).or_insert(i);
        }
        let edges: Vec<Vec<Option<usize>>> =
            self.services.iter().map(|s| s.depends_on.iter().map(|d| index.get(d).copied()).collect()).collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Seen {
            Not,
            OnPath,
            Done,
        }
        let mut seen = vec![Seen::Not; self.services.len()];
        for root in 0..self.services.len() {
            if seen[root] != Seen::Not {
                continue;
            }
            // The path being explored: each service with the index of its next dependency.
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            seen[root] = Seen::OnPath;
            while let Some(&(node, next)) = path.last() {
                let Some(&dep) = edges[node].get(next) else {
                    seen[node] = Seen::Done;
                    path.pop();
                    continue;
                };
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                // Unknown services and a service naming itself are reported by `check_service`.
                let Some(to) = dep.filter(|&to| to != node) else { continue };
                match seen[to] {
                    Seen::Not => {
                        seen[to] = Seen::OnPath;
                        path.push((to, 0));
                    }
                    Seen::OnPath => {
                        let start = path.iter().position(|&(s, _)| s == to).unwrap_or(0);
                        let cycle: Vec<&str> = path[start..]
                            .iter()
                            .chain([&(to, 0)])
                            .map(|&(s, _)| self.services[s].name.as_str())
                            .collect();
                        p.add(
                            format!("services[{node}].depends_on[{next}]"),
                            format!("depends_on forms a cycle: {}", cycle.join(" → ")),
                        );
                    }
                    Seen::Done => {}
                }
            }
        }
    }

    fn check_categories(&self, p: &mut Problems) {
        for (id, cat) in &self.categories {
            let at = format!("categories.{id}");
            if !Slug::is_valid(id) {
                p.add(&at, format!("category {SLUG_RULE}"));
            }
            let mut ids = HashSet::new();
            for (j, item) in cat.checklist.iter().enumerate() {
                let iat = format!("{at}.checklist[{j}]");
                check_id(p, format!("{iat}.id"), &item.id, ("checklist", "item"), &mut ids);
                check_text(p, format!("{iat}.text"), &item.text, 500);
            }
        }
    }

    fn check_templates(&self, p: &mut Problems, names: &HashSet<&ServiceName>) {
        let mut template_ids = HashSet::new();
        for (i, t) in self.templates.iter().enumerate() {
            let at = format!("templates[{i}]");
            check_id(p, format!("{at}.id"), &t.id, ("template", "template"), &mut template_ids);
            check_text(p, format!("{at}.title"), &t.title, 200);
            for (j, s) in t.services.iter().enumerate() {
                if !names.contains(s) {
                    p.add(
                        format!("{at}.services[{j}]"),
                        format!("template {} names service {s}, which the catalog does not list", t.id),
                    );
                }
            }
            if self.category(&t.category).is_none() {
                p.add(format!("{at}.category"), format!("category {:?} is not listed under categories", t.category));
            }
        }
    }
}

/// A service's own fields: owner, tier, dependencies, approval chain.
fn check_service(p: &mut Problems, at: &str, svc: &Service, names: &HashSet<&ServiceName>) {
    if svc.description.chars().count() > 2_000 {
        p.add(format!("{at}.description"), "must be at most 2000 characters");
    }
    check_group(p, format!("{at}.owner_group"), &svc.owner_group);
    if !(1..=4).contains(&svc.tier) {
        p.add(format!("{at}.tier"), format!("tier must be 1 to 4; got {}", svc.tier));
    }
    if svc.depends_on.len() > MAX_DEPENDENCIES {
        p.add(format!("{at}.depends_on"), format!("at most {MAX_DEPENDENCIES} dependencies"));
    }
    for (j, dep) in svc.depends_on.iter().enumerate() {
        let path = format!("{at}.depends_on[{j}]");
        if dep == &svc.name {
            p.add(path, format!("service {} cannot depend on itself", svc.name));
        } else if !names.contains(dep) {
            p.add(path, format!("service {} depends on {dep}, which the catalog does not list", svc.name));
        }
    }
    if svc.approval.len() > MAX_LEVELS {
        p.add(format!("{at}.approval"), format!("at most {MAX_LEVELS} approval levels"));
    }
    let mut level_names = HashSet::new();
    for (j, level) in svc.approval.iter().enumerate() {
        let lat = format!("{at}.approval[{j}]");
        check_text(p, format!("{lat}.name"), &level.name, 64);
        if !level_names.insert(level.name.as_str()) {
            p.add(format!("{lat}.name"), format!("level {:?} is listed twice", level.name));
        }
        check_groups(p, &format!("{lat}.groups"), &level.groups, true);
        check_span(p, &format!("{lat}.sla"), level.sla.0, (10, 30 * 86_400), "sla must be between 10s and 30d");
        check_text(p, format!("{lat}.escalate_to"), &level.escalate_to, 256);
        check_cadence(p, &lat, level);
    }
}

/// A level's cadence: reminders in order, a period and a number of escalations in bounds.
fn check_cadence(p: &mut Problems, lat: &str, level: &ApprovalLevel) {
    if level.reminders.len() > MAX_REMINDERS {
        p.add(format!("{lat}.reminders"), format!("at most {MAX_REMINDERS} reminders"));
    }
    if level.reminders.windows(2).any(|w| w[0] >= w[1]) {
        p.add(format!("{lat}.reminders"), "reminders are shares of the SLA in increasing order, such as [25%, 75%]");
    }
    if let Some(every) = &level.escalate_every {
        let path = format!("{lat}.escalate_every");
        check_span(p, &path, every.0, (10, 30 * 86_400), "escalate_every must be between 10s and 30d");
    }
    if level.max_escalations > MAX_ESCALATIONS {
        p.add(format!("{lat}.max_escalations"), format!("max_escalations must be at most {MAX_ESCALATIONS}"));
    }
}

/// A service's mappings: well formed, and each name mapped to one service only.
fn check_mappings<'c>(
    p: &mut Problems,
    at: &str,
    svc: &'c Service,
    mapped: &mut HashMap<(MappingKind, &'c str), &'c ServiceName>,
) {
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
            check_text(p, path.clone(), key, 1_024);
            if kind == MappingKind::AwsResource && !key.starts_with("arn:") {
                p.add(&path, format!("an ARN prefix starts with \"arn:\"; got {key:?}"));
            }
            if let Some(other) = mapped.insert((kind, key.as_str()), &svc.name) {
                p.add(path, format!("{key:?} is already mapped to service {other}; a name maps to one service"));
            }
        }
    }
}

/// Reads and validates a catalog written in YAML. Every error names the
/// field's path and its line: `line 12: services[1].tier: tier must be 1 to 4; got 7`.
/// A document that cannot be read (not YAML, a field of the wrong type or
/// unknown) stops at its first error; a readable one is checked whole.
pub fn parse_yaml(text: &str) -> Result<Catalog, FieldErrors> {
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
        return Err(FieldError::new("body", "line 1: a catalog is a mapping (roles:, services:, ...)").into());
    }
    let catalog: Catalog = doc.deserialize().map_err(as_field)?;
    if let Some(path) = crate::json::positional(&doc.value, &serde_json::to_value(&catalog).unwrap_or_default()) {
        return Err(as_field(doc.error_at(&path, crate::json::POSITIONAL)).into());
    }
    catalog.validate().map_err(|errors| errors.map(|e| as_field(doc.error_at(&e.field, e.message))))?;
    Ok(catalog)
}
