//! What a requester sends to open a change, and its validation.

use crate::domain::deployment::rollback::RollbackPlan;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::DEFAULT_CATEGORY;
use super::change::{
    Change, ChangeState, ChangeType, MAX_DESCRIPTION_CHARS, MAX_PLANNED_WINDOW, MAX_SERVICES, MAX_TITLE_CHARS,
};
use super::ids::{ChangeId, ServiceName, TenantId};
use super::risk::{Complexity, Impact};
use super::slug::Slug;
use super::validation::FieldError;

/// The body of `POST /changes`. Unknown fields are refused so that a typo is
/// an error, not a silently ignored setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub services: Vec<String>,
    pub environment: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    /// The catalog category (default `general`); it decides the checklist.
    #[serde(default)]
    pub category: Option<String>,
    /// For standard changes: the pre-approved template used.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub impact: Impact,
    #[serde(default)]
    pub complexity: Complexity,
    #[serde(default)]
    pub privileged_access: bool,
    #[serde(default)]
    pub cryptographic_keys: bool,
    /// For emergency changes: the id of the open major incident the change
    /// fixes; its commander may then confirm the change.
    #[serde(default)]
    pub incident: Option<String>,
    /// How the change is rolled back: `{automated: true}` runs its services'
    /// configured rollback (catalog `services[].rollback`) when a production
    /// deployment of it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<RollbackPlan>,
    /// The resources the change will touch, by id or ARN (`sg-…`,
    /// `arn:aws:iam::…:role/…`): a configuration change of one inside the
    /// change's window is authorized even when the resource maps to none of
    /// its services, or to no service at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// Longest major incident id, in bytes.
pub const MAX_INCIDENT_ID_LEN: usize = 128;

/// Whether `id` may name a major incident: 1 to 128 bytes, no control characters.
pub fn valid_incident_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_INCIDENT_ID_LEN && !id.chars().any(char::is_control)
}

/// A `NewChange` that passed validation.
#[derive(Debug, Clone)]
pub struct ValidNewChange {
    pub title: String,
    pub description: String,
    pub change_type: ChangeType,
    pub services: Vec<ServiceName>,
    pub environment: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    pub category: Slug,
    pub template: Option<String>,
    pub impact: Impact,
    pub complexity: Complexity,
    pub privileged_access: bool,
    pub cryptographic_keys: bool,
    pub incident: Option<String>,
    pub rollback_plan: Option<RollbackPlan>,
    pub resources: Vec<String>,
}

/// Most resources a change names.
pub const MAX_RESOURCES: usize = 20;
/// Longest resource id or ARN a change names.
pub const MAX_RESOURCE_CHARS: usize = 2048;

/// Checks the resources a change names: at most [`MAX_RESOURCES`], each 1
/// to [`MAX_RESOURCE_CHARS`] characters with no space or control character;
/// trimmed, duplicates dropped.
fn validate_resources(resources: Vec<String>) -> Result<Vec<String>, FieldError> {
    if resources.len() > MAX_RESOURCES {
        return Err(FieldError::new("resources", format!("at most {MAX_RESOURCES} resources per change")));
    }
    let mut valid: Vec<String> = Vec::with_capacity(resources.len());
    for (i, r) in resources.into_iter().enumerate() {
        let r = r.trim().to_owned();
        if r.is_empty()
            || r.chars().count() > MAX_RESOURCE_CHARS
            || r.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(FieldError::new(
                format!("resources[{i}]"),
                format!("a resource is its id or ARN: 1 to {MAX_RESOURCE_CHARS} characters, no spaces"),
            ));
        }
        if !valid.contains(&r) {
            valid.push(r);
        }
    }
    Ok(valid)
}

/// Checks a planned window (`planned_start`, `planned_end`): supported
/// years, end after start, at most [`MAX_PLANNED_WINDOW`] long.
pub fn validate_window(planned_start: DateTime<Utc>, planned_end: DateTime<Utc>) -> Result<(), FieldError> {
    for (field, t) in [("planned_start", planned_start), ("planned_end", planned_end)] {
        if !in_supported_range(t) {
            return Err(FieldError::new(field, "time must be between the years 2000 and 9998"));
        }
    }
    if planned_end <= planned_start {
        return Err(FieldError::new("planned_end", "planned_end must be after planned_start"));
    }
    if planned_end - planned_start > MAX_PLANNED_WINDOW {
        return Err(FieldError::new(
            "planned_end",
            format!(
                "a planned window may last at most {} days; split longer work into several changes",
                MAX_PLANNED_WINDOW.num_days()
            ),
        ));
    }
    Ok(())
}

/// Earliest and latest instants a planned window may use; keeps time keys
/// fixed-width (four-digit years) and therefore correctly ordered.
pub fn in_supported_range(t: DateTime<Utc>) -> bool {
    (2000..=9998).contains(&chrono::Datelike::year(&t))
}

impl NewChange {
    /// A normal change with every optional field at its default.
    pub fn basic(
        title: impl Into<String>,
        services: &[&str],
        environment: impl Into<String>,
        planned_start: DateTime<Utc>,
        planned_end: DateTime<Utc>,
    ) -> Self {
        NewChange {
            title: title.into(),
            description: String::new(),
            change_type: ChangeType::Normal,
            services: services.iter().map(|s| s.to_string()).collect(),
            environment: environment.into(),
            planned_start,
            planned_end,
            category: None,
            template: None,
            impact: Impact::default(),
            complexity: Complexity::default(),
            privileged_access: false,
            cryptographic_keys: false,
            incident: None,
            rollback_plan: None,
            resources: Vec::new(),
        }
    }

    pub fn validate(self) -> Result<ValidNewChange, FieldError> {
        let title = self.title.trim().to_owned();
        if title.is_empty() {
            return Err(FieldError::new("title", "title must not be empty"));
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(FieldError::new("title", format!("title must be at most {MAX_TITLE_CHARS} characters")));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(FieldError::new(
                "description",
                format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if self.services.is_empty() {
            return Err(FieldError::new("services", "name at least one affected service"));
        }
        if self.services.len() > MAX_SERVICES {
            return Err(FieldError::new("services", format!("at most {MAX_SERVICES} services per change")));
        }
        let mut services = Vec::with_capacity(self.services.len());
        for (i, s) in self.services.iter().enumerate() {
            let svc = ServiceName::parse(s).map_err(|e| FieldError::new(format!("services[{i}]"), e.message))?;
            if !services.contains(&svc) {
                services.push(svc);
            }
        }
        let environment = self.environment.trim().to_owned();
        if environment.is_empty() || environment.chars().count() > 64 {
            return Err(FieldError::new("environment", "environment must be 1 to 64 characters"));
        }
        validate_window(self.planned_start, self.planned_end)?;
        let category = Slug::try_from(self.category.unwrap_or_else(|| DEFAULT_CATEGORY.to_owned())).map_err(|_| {
            FieldError::new("category", "category must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")
        })?;
        if self.change_type == ChangeType::Recorded {
            return Err(FieldError::new(
                "type",
                "recorded changes are made by the hub from the deployments it is told of; open a standard, normal or emergency change",
            ));
        }
        match (&self.template, self.change_type) {
            (None, ChangeType::Standard) => {
                return Err(FieldError::new("template", "a standard change names the pre-approved template it uses"));
            }
            (Some(_), ChangeType::Normal | ChangeType::Emergency) => {
                return Err(FieldError::new("template", "only standard changes use templates"));
            }
            _ => {}
        }
        let incident = self.incident.map(|i| i.trim().to_owned());
        match (&incident, self.change_type) {
            (Some(id), ChangeType::Emergency) if !valid_incident_id(id) => {
                return Err(FieldError::new(
                    "incident",
                    format!("incident must be 1 to {MAX_INCIDENT_ID_LEN} characters, the id of an open major incident"),
                ));
            }
            (Some(_), ChangeType::Normal | ChangeType::Standard) => {
                return Err(FieldError::new("incident", "only an emergency change names the major incident it fixes"));
            }
            _ => {}
        }
        let resources = validate_resources(self.resources)?;
        Ok(ValidNewChange {
            resources,
            rollback_plan: self.rollback_plan,
            incident,
            category,
            template: self.template,
            impact: self.impact,
            complexity: self.complexity,
            privileged_access: self.privileged_access,
            cryptographic_keys: self.cryptographic_keys,
            title,
            description: self.description,
            change_type: self.change_type,
            services,
            environment,
            planned_start: self.planned_start,
            planned_end: self.planned_end,
        })
    }
}

impl ValidNewChange {
    /// The draft record, before its first audit entry is chained onto it.
    pub fn into_draft(self, id: ChangeId, tenant: TenantId, requester: String, now: DateTime<Utc>) -> Change {
        let mut draft = Change {
            id,
            tenant,
            title: String::new(),
            description: String::new(),
            change_type: self.change_type,
            services: vec![],
            environment: String::new(),
            planned_start: self.planned_start,
            planned_end: self.planned_end,
            requester,
            state: ChangeState::Draft,
            version: 1,
            created_at: now,
            updated_at: now,
            audit_head: String::new(),
            category: String::new(),
            template: None,
            impact: Impact::default(),
            complexity: Complexity::default(),
            privileged_access: false,
            cryptographic_keys: false,
            risk: None,
            approval: None,
            checklist: vec![],
            conflicts: vec![],
            review: None,
            incident: None,
            reworks: None,
            reworked_as: None,
            implementation: None,
            origin: None,
            deployments: vec![],
            related_incidents: vec![],
            postmortem: None,
            bake: None,
            starting_soon: None,
            rollback_plan: None,
            resources: Vec::new(),
        };
        self.apply_to(&mut draft);
        draft
    }

    /// Sets every field a requester writes on `change` (a draft being
    /// created or edited); the rest of the record is left as it is.
    pub fn apply_to(self, change: &mut Change) {
        change.title = self.title;
        change.description = self.description;
        change.change_type = self.change_type;
        change.services = self.services;
        change.environment = self.environment;
        change.planned_start = self.planned_start;
        change.planned_end = self.planned_end;
        change.category = self.category.into();
        change.template = self.template;
        change.impact = self.impact;
        change.complexity = self.complexity;
        change.privileged_access = self.privileged_access;
        change.cryptographic_keys = self.cryptographic_keys;
        change.incident = self.incident;
        change.rollback_plan = self.rollback_plan;
        change.resources = self.resources;
    }
}

impl From<&Change> for NewChange {
    /// What a requester would send to open `change` as it stands: the start
    /// of an edit (a merge patch) or of a rework.
    fn from(change: &Change) -> Self {
        NewChange {
            title: change.title.clone(),
            description: change.description.clone(),
            change_type: change.change_type,
            services: change.services.iter().map(|s| s.as_str().to_owned()).collect(),
            environment: change.environment.clone(),
            planned_start: change.planned_start,
            planned_end: change.planned_end,
            category: Some(change.category.clone()),
            template: change.template.clone(),
            impact: change.impact,
            complexity: change.complexity,
            privileged_access: change.privileged_access,
            cryptographic_keys: change.cryptographic_keys,
            incident: change.incident.clone(),
            rollback_plan: change.rollback_plan,
            resources: change.resources.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn base() -> NewChange {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 22, 0, 0).single().unwrap_or_default();
        let services = ["payments", "ledger", "payments"];
        NewChange::basic("  Upgrade payments DB  ", &services, "production", start, start + chrono::Duration::hours(1))
    }

    #[test]
    fn nobody_opens_a_recorded_change() {
        let err = NewChange { change_type: ChangeType::Recorded, ..base() }.validate().expect_err("recorded");
        assert_eq!(err.field, "type");
        assert!(err.message.contains("made by the hub from the deployments"), "{err:?}");
    }

    fn field_of(c: NewChange) -> String {
        c.validate().expect_err("invalid").field
    }

    #[test]
    fn valid_input_is_trimmed_and_services_deduplicated() {
        let v = base().validate().expect("valid");
        assert_eq!(v.title, "Upgrade payments DB");
        assert_eq!(v.services.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["payments", "ledger"]);
    }

    #[test]
    fn each_invalid_field_is_named() {
        assert_eq!(field_of(NewChange { title: "   ".into(), ..base() }), "title");
        assert_eq!(field_of(NewChange { title: "x".repeat(201), ..base() }), "title");
        assert_eq!(field_of(NewChange { description: "x".repeat(20_001), ..base() }), "description");
        assert_eq!(field_of(NewChange { services: vec![], ..base() }), "services");
        assert_eq!(field_of(NewChange { services: (0..21).map(|i| format!("s{i}")).collect(), ..base() }), "services");
        assert_eq!(field_of(NewChange { services: vec!["ok".into(), "Not#Ok".into()], ..base() }), "services[1]");
        assert_eq!(field_of(NewChange { environment: " ".into(), ..base() }), "environment");
        let b = base();
        assert_eq!(field_of(NewChange { planned_end: b.planned_start, ..base() }), "planned_end");
        assert_eq!(
            field_of(NewChange { planned_end: b.planned_start + chrono::Duration::days(32), ..base() }),
            "planned_end"
        );
        let ancient = Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).single().unwrap_or_default();
        assert_eq!(field_of(NewChange { planned_start: ancient, ..base() }), "planned_start");
        assert_eq!(field_of(NewChange { incident: Some("INC-1".into()), ..base() }), "incident");
        let emergency = NewChange { change_type: ChangeType::Emergency, ..base() };
        assert_eq!(field_of(NewChange { incident: Some(" ".into()), ..emergency.clone() }), "incident");
        assert_eq!(field_of(NewChange { incident: Some("x".repeat(129)), ..emergency }), "incident");
    }

    #[test]
    fn a_draft_reads_back_as_the_request_that_opened_it() {
        let input = NewChange {
            category: Some("database_schema".into()),
            privileged_access: true,
            change_type: ChangeType::Emergency,
            incident: Some("INC-1".into()),
            ..base()
        };
        let tenant = TenantId::parse("acme").expect("tenant");
        let draft =
            input.clone().validate().expect("valid").into_draft(ChangeId::new(), tenant, "rita".into(), Utc::now());
        let again = NewChange::from(&draft);
        let expected = NewChange {
            title: "Upgrade payments DB".into(),
            services: vec!["payments".into(), "ledger".into()],
            ..input
        };
        assert_eq!(serde_json::to_value(again).expect("json"), serde_json::to_value(expected).expect("json"));
    }

    #[test]
    fn the_category_is_a_slug_defaulting_to_general() {
        assert_eq!(base().validate().expect("valid").category, DEFAULT_CATEGORY);
        let v = NewChange { category: Some("database_schema".into()), ..base() }.validate().expect("valid");
        assert_eq!(v.category, "database_schema");
        for bad in ["", "Database", "-x", "a#b", &"a".repeat(65)] {
            assert_eq!(
                NewChange { category: Some(bad.into()), ..base() }.validate().expect_err("a bad category"),
                FieldError::new("category", "category must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resources_are_trimmed_deduplicated_and_bounded() {
        let mut c = base();
        c.resources =
            vec![" sg-0a1b2c3d4e5f67890 ".into(), "sg-0a1b2c3d4e5f67890".into(), "arn:aws:s3:::acme-logs".into()];
        let valid = c.validate().expect("valid");
        assert_eq!(valid.resources, ["sg-0a1b2c3d4e5f67890", "arn:aws:s3:::acme-logs"]);
        for (bad, field) in
            [(vec!["".to_owned()], "resources[0]"), (vec!["sg-1".into(), "two words".into()], "resources[1]")]
        {
            let mut c = base();
            c.resources = bad;
            assert_eq!(c.validate().expect_err("invalid").field, field);
        }
        let mut c = base();
        c.resources = (0..=MAX_RESOURCES).map(|i| format!("sg-{i}")).collect();
        assert_eq!(c.validate().expect_err("too many").field, "resources");
    }
}
