//! Completing a checklist item, with its evidence.

use super::{ChangeError, ChangeStore, Changes, NoteRequest, Pending, check_text, current_at, refused};
use crate::domain::access::Caller;
use crate::domain::audit::AuditAction;
use crate::domain::change::Done;
use crate::domain::{Change, ChangeId};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Marks a checklist item done, with its evidence.
    pub async fn complete_item(
        &self,
        caller: &Caller,
        id: &ChangeId,
        item: &str,
        req: NoteRequest,
    ) -> Result<Change, ChangeError> {
        check_text("note", Some(&req.note), true)?;
        let (_, _, current) = self.driven(caller, id, "completing a checklist item").await?;
        current_at(&current, req.version)?;
        if !current.state.is_open() {
            return Err(refused(
                "checklist_closed",
                None,
                format!("the checklist is closed once implementation starts; the change is {}", current.state),
            ));
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        let Some(entry) = next.checklist.iter_mut().find(|i| i.id == item) else {
            let known: Vec<&str> = current.checklist.iter().map(|i| i.id.as_str()).collect();
            return Err(ChangeError::Missing(format!(
                "change {id} has no checklist item {item:?}; its items: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        if entry.done.is_some() {
            return Err(refused("already_done", None, format!("checklist item {item} is already done")));
        }
        entry.done = Some(Done { by: caller.user.clone(), at: now, note: req.note.trim().to_owned() });
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::ChecklistItemDone, Some(format!("{item}: {}", req.note.trim())));
        self.save(pending, current.version).await
    }
}
