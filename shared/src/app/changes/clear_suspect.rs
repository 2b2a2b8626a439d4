//! Clearing a suspect bake: a person who owns one of the change's services
//! (a member of its `owner_group`), or the cab or an admin, says the
//! incident during the bake is not the change's; the change's next stage may
//! go ahead and its bake completes it again. Audited with the note.

use super::{ChangeError, ChangeStore, Changes, NoteRequest, Pending, check_text, current_at, refused};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::change::Done;
use crate::domain::{Change, ChangeId};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// `POST /changes/{id}/clear-suspect`.
    pub async fn clear_suspect(&self, caller: &Caller, id: &ChangeId, req: NoteRequest) -> Result<Change, ChangeError> {
        check_text("note", Some(&req.note), true)?;
        let (access, view) = self.access(caller).await?;
        let current = self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))?;
        let owners: Vec<String> =
            current.services.iter().filter_map(|s| view.catalog.service(s)).map(|s| s.owner_group.clone()).collect();
        let owner = caller.in_any(&owners) && access.has_any(&Role::PEOPLE);
        if !owner && !access.has_any(&[Role::Cab, Role::Admin]) {
            return Err(Forbidden(format!(
                "clearing a suspect change needs membership of an owner group of its services ({}), or the cab or admin role; {}",
                owners.join(", "),
                access.held()
            ))
            .into());
        }
        current_at(&current, req.version)?;
        let now = self.clock.now();
        let done = Done { by: caller.user.clone(), at: now, note: req.note.trim().to_owned() };
        let Some(next) = current.clear_suspect(done) else {
            return Err(refused(
                "not_suspect",
                None,
                format!(
                    "change {id} is not suspect: only an incident during its bake makes it so (it is {})",
                    current.state
                ),
            ));
        };
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::SuspectCleared, Some(req.note.trim().to_owned()));
        self.save(pending, current.version).await
    }
}
