//! Editing a draft: a JSON merge patch of the fields its requester wrote,
//! admitted like a new change, re-scored and audited.

use serde_json::{Map, Value};
use tracing::instrument;

use super::create::checklist_of;
use super::{ChangeError, ChangeStore, Changes, Pending, current_at, refused};
use crate::domain::access::Caller;
use crate::domain::audit::AuditAction;
use crate::domain::catalog::CatalogView;
use crate::domain::{Change, ChangeId, ChangeState, FieldError, NewChange};
use crate::json::JsonError;
use crate::ports::Clock;

/// `PATCH /changes/{id}` (and `POST /changes/{id}/rework`): the version the
/// caller last read, and the fields to change, as a JSON merge patch
/// (RFC 7396) of the body `POST /changes` takes: a field sent replaces the
/// change's, `null` resets an optional one, a field left out stays.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EditRequest {
    pub version: u64,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in fields {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// What `change`'s requester would send to open it with `fields` changed,
/// decoded as `POST /changes` decodes its body (every error naming its
/// field). Naming another template without a category takes the template's.
pub(super) fn patched(change: &Change, fields: &Map<String, Value>) -> Result<NewChange, FieldError> {
    let mut doc = serde_json::to_value(NewChange::from(change)).unwrap_or(Value::Null);
    if fields.contains_key("template")
        && !fields.contains_key("category")
        && let Value::Object(map) = &mut doc
    {
        map.remove("category");
    }
    merge_patch(&mut doc, &Value::Object(fields.clone()));
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    crate::json::decode_strict(&bytes).map_err(|e| match e {
        JsonError::Invalid { field, message } => FieldError::new(field.unwrap_or_else(|| "body".to_owned()), message),
        JsonError::Malformed(m) => FieldError::new("body", m),
        JsonError::NotObject => FieldError::new("body", "the body must be a JSON object"),
    })
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Edits a draft: its requester (or the cab or an admin) changes the
    /// fields of the request that opened it. The draft is admitted again as
    /// at creation, re-scored, its checklist follows its category, and one
    /// audit entry (`edited`) records every field that changed; its index
    /// entries (service, listing, waiting) follow it in the same write.
    /// A patch that changes nothing writes nothing.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn edit(&self, caller: &Caller, id: &ChangeId, req: EditRequest) -> Result<Change, ChangeError> {
        let (_, view, current) = self.driven(caller, id, "editing a change").await?;
        current_at(&current, req.version)?;
        if current.state != ChangeState::Draft {
            let hint = if current.was_rejected() {
                format!("; rework it into a new draft (POST /changes/{id}/rework)")
            } else {
                String::new()
            };
            return Err(refused(
                "not_draft",
                None,
                format!("only a draft is edited; change {id} is {}{hint}", current.state),
            ));
        }
        if req.fields.is_empty() {
            return Err(FieldError::new("body", "name at least one field to change besides version").into());
        }
        let next = self.redraft(&view, &current, &req.fields).await?;
        if next == current.revised(next.updated_at) {
            return Ok(current);
        }
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::Edited, None);
        let change = self.save(pending, current.version).await?;
        tracing::info!("draft edited");
        Ok(change)
    }

    /// The next version of `current` with `fields` patched in, admitted,
    /// with its checklist and risk score brought up to date.
    pub(super) async fn redraft(
        &self,
        view: &CatalogView,
        current: &Change,
        fields: &Map<String, Value>,
    ) -> Result<Change, ChangeError> {
        let (valid, category) = self.admit(view, patched(current, fields)?)?;
        let mut next = current.revised(self.clock.now());
        valid.apply_to(&mut next);
        next.checklist = checklist_of(&category, &current.checklist);
        next.risk = Some(self.assess(view, &next).await?);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_replaces_adds_and_removes_fields() {
        let mut doc = json!({"title": "a", "impact": {"data": "read", "compliance": true}, "template": "t"});
        let patch = json!({"title": "b", "impact": {"compliance": null, "availability": "outage"}, "template": null});
        merge_patch(&mut doc, &patch);
        assert_eq!(doc, json!({"title": "b", "impact": {"data": "read", "availability": "outage"}}));
    }
}
