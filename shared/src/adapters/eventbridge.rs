//! The EventBridge bus: PutEvents in batches of ten, retrying only the
//! entries that failed, with exponential backoff. Every entry is built (and
//! its size checked) before the first batch is sent, so an oversize event
//! refuses the whole publish rather than part of it.

pub use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;

use crate::domain::HubEvent;
use crate::ports::{BusError, EventBus};

/// PutEvents takes at most ten entries per call.
pub const MAX_BATCH: usize = 10;
/// EventBridge refuses entries over 256 KB (detail, source, detail-type and resources together).
pub const MAX_ENTRY_BYTES: usize = crate::domain::event::MAX_EVENT_BYTES;
const ATTEMPTS: u32 = 4;

/// The EventBridge client, built at its first use ([`super::aws::Lazy`]):
/// an escalation tick or a drift event with nothing to publish never builds it.
pub type LazyClient = super::aws::Lazy<Client>;

impl LazyClient {
    /// A client built from `aws` at its first use.
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self::from_config(aws, Client::new)
    }
}

#[derive(Clone)]
pub struct EventBridgeBus {
    client: LazyClient,
    bus_name: String,
    base_delay: Duration,
}

impl EventBridgeBus {
    pub fn new(client: impl Into<LazyClient>, bus_name: impl Into<String>) -> Self {
        Self { client: client.into(), bus_name: bus_name.into(), base_delay: Duration::from_millis(50) }
    }

    fn entry(&self, e: &HubEvent) -> Result<PutEventsRequestEntry, BusError> {
        let detail = serde_json::to_string(&e.detail).map_err(|err| BusError::Backend(err.into()))?;
        let size = e.entry_size();
        if size > MAX_ENTRY_BYTES {
            return Err(BusError::TooLarge { id: e.id.clone(), size, max: MAX_ENTRY_BYTES });
        }
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&e.source)
            .detail_type(&e.detail_type)
            .detail(detail)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(e.time.timestamp_millis()))
            .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
            .build())
    }

    /// Sends one batch, resending only failed entries; returns those that never succeeded.
    async fn send_batch(
        &self,
        batch: Vec<(&HubEvent, PutEventsRequestEntry)>,
    ) -> Result<Vec<(String, String)>, BusError> {
        let mut pending = batch;
        let mut failed = Vec::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.base_delay * 2u32.pow(attempt - 1)).await;
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(pending.iter().map(|(_, entry)| entry.clone()).collect()))
                .send()
                .await
                .map_err(|e| BusError::Backend(e.into()))?;
            if out.failed_entry_count == 0 {
                return Ok(vec![]);
            }
            // Result entries are in request order; a failed one has an error code.
            failed.clear();
            let mut retry = Vec::new();
            for ((event, entry), result) in pending.into_iter().zip(out.entries()) {
                if let Some(code) = result.error_code() {
                    tracing::warn!(event_id = %event.id, code, attempt, "PutEvents entry failed");
                    failed.push((event.id.clone(), code.to_owned()));
                    retry.push((event, entry));
                }
            }
            pending = retry;
        }
        Ok(failed)
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        let mut entries: Vec<(&HubEvent, PutEventsRequestEntry)> =
            events.iter().map(|e| self.entry(e).map(|entry| (e, entry))).collect::<Result<_, _>>()?;
        let mut failed = Vec::new();
        while !entries.is_empty() {
            let rest = entries.split_off(entries.len().min(MAX_BATCH));
            failed.extend(self.send_batch(std::mem::replace(&mut entries, rest)).await?);
        }
        if failed.is_empty() { Ok(()) } else { Err(BusError::Rejected { failed }) }
    }
}
