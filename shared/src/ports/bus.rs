//! The event bus port.

use std::future::Future;

use super::store::BoxError;
use crate::domain::HubEvent;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Some entries were still refused after retrying; their ids and error codes.
    #[error("{} event(s) could not be published: {}", failed.len(), failed.iter().map(|(id, code)| format!("{id} ({code})")).collect::<Vec<_>>().join(", "))]
    Rejected { failed: Vec<(String, String)> },
    #[error("event {id} is {size} bytes; the bus takes at most {max}")]
    TooLarge { id: String, size: usize, max: usize },
    #[error("event bus backend failed")]
    Backend(#[source] BoxError),
}

pub trait EventBus: Send + Sync {
    /// Publishes every event or returns an error naming those that failed.
    fn publish(&self, events: &[HubEvent]) -> impl Future<Output = Result<(), BusError>> + Send;
}
