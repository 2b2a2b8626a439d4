//! The publish Lambda's stream shape: DynamoDB stream records of change
//! items in, a partial batch response out (the Lambda's concern, not the
//! use case's, which is [`Outbox`]).
//!
//! A write of a change puts the change item (its `doc` as that write left
//! it) and the write's audit entries in one transaction; the stream carries
//! the change item's new and old images, so a record says which entries the
//! write added (after the old image's version, up to the new one). Records
//! are handled in order; at the first that fails, it and the rest of the
//! batch are reported as failures, so Lambda retries from it and the
//! change's events keep their order.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use changehub::app::publish::{Outbox, PublishError, Published};
use changehub::domain::Change;
use changehub::ports::{CatalogReader, ChangeReader, Clock, Dedupe, EventBus, Notifier};

/// The attributes of a change item the publisher reads (its `entity` is
/// checked before).
#[derive(serde::Deserialize)]
struct ChangeImage {
    version: u64,
    doc: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stream record {sequence}: {message}")]
    Image { sequence: String, message: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The write a record describes: the change as it left it and the version
/// before it (0 for an insert); `None` for records of other items and for
/// removals, which publish nothing.
fn write_of(record: &EventRecord) -> Result<Option<(Change, u64)>, RecordError> {
    let sequence = record.change.sequence_number.clone().unwrap_or_default();
    let bad = |message: String| RecordError::Image { sequence: sequence.clone(), message };
    if record.change.new_image.is_empty() {
        return Ok(None);
    }
    if record.change.new_image.get("entity") != Some(&serde_dynamo::AttributeValue::S("change".into())) {
        return Ok(None);
    }
    let new: ChangeImage = serde_dynamo::from_item(record.change.new_image.clone())
        .map_err(|e| bad(format!("the change item's new image: {e}")))?;
    let change: Change = serde_json::from_str(&new.doc).map_err(|e| bad(format!("the change document: {e}")))?;
    if change.version != new.version {
        return Err(bad(format!("the item's version {} differs from its document's {}", new.version, change.version)));
    }
    let previous = if record.change.old_image.is_empty() {
        0
    } else {
        let old: ChangeImage = serde_dynamo::from_item(record.change.old_image.clone())
            .map_err(|e| bad(format!("the change item's old image: {e}")))?;
        old.version
    };
    Ok(Some((change, previous)))
}

/// What one invocation did, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    pub duplicates: usize,
    pub skipped: usize,
}

/// Handles one batch. A record whose event another attempt holds (a
/// previous invocation died mid-publish, leaving its lease) is retried once
/// after `lease` (by then every lease the dead attempt took has run out);
/// any other failure stops the batch at that record.
pub async fn handle<R, D, B, N, C, K>(
    outbox: &Outbox<D, B, N, C, K>,
    reader: &R,
    event: Event,
    lease: Duration,
) -> (DynamoDbEventResponse, Tally)
where
    R: ChangeReader,
    D: Dedupe,
    B: EventBus,
    N: Notifier,
    C: Clock,
    K: CatalogReader,
{
    let mut tally = Tally::default();
    let mut waited = false;
    let mut response = DynamoDbEventResponse::default();
    for (i, record) in event.records.iter().enumerate() {
        let result = loop {
            match publish_record(outbox, reader, record, &mut tally).await {
                Err(RecordError::Publish(PublishError::InProgress(id))) if !waited => {
                    tracing::info!(event_id = %id, wait_secs = lease.as_secs(), "event leased by an earlier attempt; waiting for the lease to run out");
                    waited = true;
                    tokio::time::sleep(lease).await;
                }
                other => break other,
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, sequence = ?record.change.sequence_number, "record not published; it and the rest of the batch are retried");
            response.batch_item_failures = event.records[i..].iter().map(failure).collect();
            break;
        }
    }
    (response, tally)
}

async fn publish_record<R, D, B, N, C, K>(
    outbox: &Outbox<D, B, N, C, K>,
    reader: &R,
    record: &EventRecord,
    tally: &mut Tally,
) -> Result<(), RecordError>
where
    R: ChangeReader,
    D: Dedupe,
    B: EventBus,
    N: Notifier,
    C: Clock,
    K: CatalogReader,
{
    let Some((change, previous)) = write_of(record)? else {
        tally.skipped += 1;
        return Ok(());
    };
    for published in outbox.publish_write(reader, &change, previous).await? {
        match published {
            Published::Sent => tally.sent += 1,
            Published::Duplicate => tally.duplicates += 1,
        }
    }
    Ok(())
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}
