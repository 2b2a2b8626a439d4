//! Adapters: one module per port implementation.

#[cfg(feature = "chat")]
pub mod chat;
pub mod env_secrets;
pub mod file_clock;
pub mod keys;
pub mod local_bus;
pub mod local_notifier;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "sdk-config")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "writeback")]
pub mod http_writeback;
#[cfg(any(feature = "writeback", feature = "chat", feature = "scm"))]
pub mod https;
#[cfg(feature = "scm")]
pub mod protection_callback;
#[cfg(feature = "scm")]
pub mod scm;
#[cfg(feature = "secretsmanager")]
pub mod secretsmanager;
#[cfg(feature = "sns")]
pub mod sns;

/// When a claim or lease taken at `now` for `d` runs out (saturating a year ahead).
#[cfg(any(feature = "embedded", feature = "dynamodb"))]
fn expiry(now: chrono::DateTime<chrono::Utc>, d: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365))
}

/// A page of changes waiting for someone, from the sort keys and ids read in
/// each of their partitions (each read after the cursor, at most `limit + 1`
/// of them): earliest due first, each change once (a change has the same
/// sort key in every partition it waits in), and the cursor when there are more.
#[cfg(any(feature = "embedded", feature = "dynamodb"))]
fn merge_waiting(
    mut found: Vec<(String, crate::domain::ChangeId)>,
    limit: usize,
) -> (Vec<crate::domain::ChangeId>, Option<crate::ports::Cursor>) {
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    let next = (found.len() > limit).then(|| found.get(limit.saturating_sub(1)).map(|(sk, _)| sk.clone()));
    found.truncate(limit);
    (found.into_iter().map(|(_, id)| id).collect(), next.flatten().map(crate::ports::Cursor::issued))
}

/// The changes an implementation query keeps of the index entries both
/// stores read, each once (a change is filed under each of its services).
#[cfg(any(feature = "embedded", feature = "dynamodb"))]
#[derive(Default)]
struct FoundOnce {
    ids: Vec<crate::domain::ChangeId>,
    seen: std::collections::HashSet<crate::domain::ChangeId>,
}

#[cfg(any(feature = "embedded", feature = "dynamodb"))]
impl FoundOnce {
    /// Keeps the change of the implementation entry at `sk` if `q` wants it.
    fn keep(
        &mut self,
        q: &crate::ports::ImplementationQuery,
        sk: &str,
        idx: &keys::IndexItem,
    ) -> Result<(), crate::ports::StoreError> {
        let implementation = idx.implementation.as_ref().ok_or_else(|| crate::ports::StoreError::Corrupt {
            key: sk.to_owned(),
            message: "implementation index item without its implementation".into(),
        })?;
        if q.wants(implementation) && self.seen.insert(idx.change_id) {
            self.ids.push(idx.change_id);
        }
        Ok(())
    }
}
