//! Opening a change: a draft with its category's checklist and a first risk
//! score, admitted against the tenant's catalog. Editing a draft and
//! reworking a rejected change admit their drafts the same way.

use chrono::{DateTime, Utc};
use tracing::instrument;

use super::{ChangeError, ChangeStore, Changes};
use crate::domain::access::Caller;
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::{CatalogView, Category, DEFAULT_CATEGORY, Role};
use crate::domain::change::ChecklistItem;
use crate::domain::new_change::ValidNewChange;
use crate::domain::{Change, ChangeId, FieldError, NewChange, ServiceName};
use crate::ports::Clock;

/// A standard change takes its template's category: filled in when the
/// request leaves it out, refused when it names another one.
fn with_template_category(mut input: NewChange, view: &CatalogView) -> Result<NewChange, FieldError> {
    let Some(id) = &input.template else { return Ok(input) };
    let Some(template) = view.catalog.template(id) else {
        return Err(FieldError::new("template", format!("the catalog has no standard template {id:?}")));
    };
    match &input.category {
        None => input.category = Some(template.category.clone()),
        Some(c) if *c != template.category => {
            return Err(FieldError::new(
                "category",
                format!(
                    "standard template {id} is for category {}, not {c}; leave category out to take the template's",
                    template.category
                ),
            ));
        }
        Some(_) => {}
    }
    Ok(input)
}

/// Refuses services the tenant's catalog does not list (once it has a
/// catalog), naming the closest names it does list.
fn known_services(view: &CatalogView, valid: &ValidNewChange) -> Result<(), FieldError> {
    if view.version == 0 {
        return Ok(());
    }
    let Some((i, unknown)) = valid.services.iter().enumerate().find(|(_, s)| view.catalog.service(s).is_none()) else {
        return Ok(());
    };
    Err(unknown_service(view, format!("services[{i}]"), unknown))
}

/// Refuses an automated rollback plan when none of the change's services
/// configures a rollback to run (catalog `services[].rollback`).
fn planned_rollback(view: &CatalogView, valid: &ValidNewChange) -> Result<(), FieldError> {
    if !valid.rollback_plan.is_some_and(|p| p.automated) || view.version == 0 {
        return Ok(());
    }
    if valid.services.iter().any(|s| view.catalog.service(s).is_some_and(|svc| svc.rollback.is_some())) {
        return Ok(());
    }
    let services: Vec<&str> = valid.services.iter().map(ServiceName::as_str).collect();
    Err(FieldError::new(
        "rollback_plan.automated",
        format!(
            "none of the change's services ({}) configures a rollback to run (catalog services[].rollback); \
             add one there, or leave the plan manual",
            services.join(", ")
        ),
    ))
}

/// `field` names a service the catalog does not list: the error names the closest names it does list.
pub(crate) fn unknown_service(view: &CatalogView, field: String, unknown: &ServiceName) -> FieldError {
    let closest: Vec<&str> = view.catalog.closest_services(unknown.as_str()).into_iter().map(|s| s.as_str()).collect();
    let hint = if closest.is_empty() {
        format!("it lists {} services (GET /catalog)", view.catalog.services.len())
    } else {
        format!("did you mean {}?", closest.join(", "))
    };
    FieldError::new(field, format!("service {:?} is not in the catalog; {hint}", unknown.as_str()))
}

/// Refuses a planned start further back than the catalog's `changes.max_backdate`.
fn within_backdate(view: &CatalogView, valid: &ValidNewChange, now: DateTime<Utc>) -> Result<(), FieldError> {
    let limit = &view.catalog.changes.max_backdate;
    if valid.planned_start >= now - limit.chrono() {
        return Ok(());
    }
    Err(FieldError::new(
        "planned_start",
        format!(
            "planned_start {} lies more than {limit} in the past; the catalog's changes.max_backdate ({limit}) bounds how old recorded work may be",
            valid.planned_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    ))
}

/// The checklist of `category`, keeping what was already done of the same items in `before`.
pub(super) fn checklist_of(category: &Category, before: &[ChecklistItem]) -> Vec<ChecklistItem> {
    category
        .checklist
        .iter()
        .map(|i| ChecklistItem {
            id: i.id.clone(),
            text: i.text.clone(),
            done: before.iter().find(|b| b.id == i.id).and_then(|b| b.done.clone()),
        })
        .collect()
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    #[instrument(skip(self, input), fields(tenant = %caller.tenant))]
    pub async fn create(&self, caller: &Caller, input: NewChange) -> Result<Change, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&[Role::Requester, Role::Cab, Role::Admin], "opening a change")?;
        let (valid, category) = self.admit(&view, input)?;
        let mut draft = valid.into_draft(ChangeId::new(), caller.tenant.clone(), caller.user.clone(), self.clock.now());
        draft.checklist = checklist_of(&category, &[]);
        draft.risk = Some(self.assess(&view, &draft).await?);
        let (change, entry) = audit::record(None, draft, &caller.user, AuditAction::Created, None);
        self.store.insert_change(&change, &entry).await?;
        tracing::info!(change_id = %change.id, "change created");
        Ok(change)
    }

    /// Validates what a requester sent for a draft (a new one, an edit, a
    /// rework) against the tenant's catalog: a standard change takes its
    /// template's category, the category is known, the services too (once
    /// the tenant has a catalog), and the planned start lies no further back
    /// than `changes.max_backdate`. Returns the valid request and its category.
    pub(super) fn admit(
        &self,
        view: &CatalogView,
        input: NewChange,
    ) -> Result<(ValidNewChange, Category), ChangeError> {
        let valid = with_template_category(input, view)?.validate()?;
        let Some(category) = view.catalog.category(&valid.category) else {
            let known: Vec<&str> =
                std::iter::once(DEFAULT_CATEGORY).chain(view.catalog.categories.keys().map(String::as_str)).collect();
            return Err(FieldError::new(
                "category",
                format!("unknown category {:?}; the catalog knows: {}", valid.category, known.join(", ")),
            )
            .into());
        };
        known_services(view, &valid)?;
        planned_rollback(view, &valid)?;
        within_backdate(view, &valid, self.clock.now())?;
        Ok((valid, category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use chrono::TimeZone;
    use serde_json::json;

    fn view(version: u64) -> CatalogView {
        let catalog: Catalog = serde_json::from_value(json!({
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1},
                {"name": "ledger", "owner_group": "ledger-team", "tier": 2},
                {"name": "search", "owner_group": "search-team", "tier": 3}
            ],
            "categories": {"certificate": {}},
            "templates": [{"id": "rotate-tls-cert", "title": "Rotate a TLS certificate", "category": "certificate"}],
            "changes": {"max_backdate": "2d"}
        }))
        .expect("catalog");
        CatalogView::new(version, catalog)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
    }

    fn change(services: &[&str], start: DateTime<Utc>) -> NewChange {
        NewChange::basic("Rotate", services, "production", start, start + chrono::Duration::hours(1))
    }

    #[test]
    fn a_standard_change_takes_its_templates_category_and_no_other() {
        let standard = NewChange {
            change_type: crate::domain::ChangeType::Standard,
            template: Some("rotate-tls-cert".into()),
            ..change(&["payments"], now())
        };
        let taken = with_template_category(standard.clone(), &view(1)).expect("taken");
        assert_eq!(taken.category.as_deref(), Some("certificate"));
        let named = NewChange { category: Some("certificate".into()), ..standard.clone() };
        assert!(with_template_category(named, &view(1)).is_ok());
        let other = NewChange { category: Some("general".into()), ..standard };
        let err = with_template_category(other, &view(1)).expect_err("another category");
        assert_eq!(err.field, "category");
        assert!(err.message.contains("standard template rotate-tls-cert is for category certificate"), "{err:?}");
    }

    #[test]
    fn an_unknown_service_is_refused_with_the_closest_known_names_once_there_is_a_catalog() {
        let valid = change(&["payments", "paymnets"], now()).validate().expect("valid");
        let err = known_services(&view(1), &valid).expect_err("typo");
        assert_eq!(
            err,
            FieldError::new("services[1]", "service \"paymnets\" is not in the catalog; did you mean payments?")
        );
        let far = change(&["warehouse"], now()).validate().expect("valid");
        let err = known_services(&view(1), &far).expect_err("nothing close");
        assert!(err.message.ends_with("it lists 3 services (GET /catalog)"), "{err:?}");
        assert_eq!(known_services(&view(0), &far), Ok(()), "no catalog yet: any service");
    }

    #[test]
    fn a_planned_start_further_back_than_max_backdate_is_refused() {
        let recent = change(&["payments"], now() - chrono::Duration::days(2)).validate().expect("valid");
        assert_eq!(within_backdate(&view(1), &recent, now()), Ok(()));
        let old = change(&["payments"], now() - chrono::Duration::days(3)).validate().expect("valid");
        let err = within_backdate(&view(1), &old, now()).expect_err("too old");
        assert_eq!(err.field, "planned_start");
        assert!(err.message.contains("lies more than 2d in the past"), "{err:?}");
        let years = change(&["payments"], now() - chrono::Duration::days(3 * 365)).validate().expect("valid");
        let default = CatalogView::default();
        assert!(within_backdate(&default, &years, now()).is_err(), "without a catalog: the default, 30d");
        let month = change(&["payments"], now() - chrono::Duration::days(29)).validate().expect("valid");
        assert_eq!(within_backdate(&default, &month, now()), Ok(()));
    }
}
