//! Opening a change: a draft with its category's checklist and a first risk score.

use tracing::instrument;

use super::{ChangeError, ChangeStore, Changes};
use crate::domain::access::Caller;
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::Role;
use crate::domain::change::ChecklistItem;
use crate::domain::{Change, ChangeId, FieldError, NewChange};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    #[instrument(skip(self, input), fields(tenant = %caller.tenant))]
    pub async fn create(&self, caller: &Caller, input: NewChange) -> Result<Change, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&[Role::Requester, Role::Cab, Role::Admin], "opening a change")?;
        let valid = input.validate()?;
        let Some(category) = view.catalog.category(&valid.category) else {
            let known: Vec<&str> = std::iter::once(crate::domain::catalog::DEFAULT_CATEGORY)
                .chain(view.catalog.categories.keys().map(String::as_str))
                .collect();
            return Err(FieldError::new(
                "category",
                format!("unknown category {:?}; the catalog knows: {}", valid.category, known.join(", ")),
            )
            .into());
        };
        if let Some(t) = &valid.template
            && view.catalog.template(t).is_none()
        {
            return Err(FieldError::new("template", format!("the catalog has no standard template {t:?}")).into());
        }
        let mut draft = valid.into_draft(ChangeId::new(), caller.tenant.clone(), caller.user.clone(), self.clock.now());
        draft.checklist = category
            .checklist
            .iter()
            .map(|i| ChecklistItem { id: i.id.clone(), text: i.text.clone(), done: None })
            .collect();
        draft.risk = Some(self.assess(&view, &draft).await?);
        let (change, entry) = audit::record(None, draft, &caller.user, AuditAction::Created, None);
        self.store.insert_change(&change, &entry).await?;
        tracing::info!(change_id = %change.id, "change created");
        Ok(change)
    }
}
