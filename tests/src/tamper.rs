//! What someone with write access to the table (or the database file) could
//! do to an audit trail, for the tests that show it is found.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::domain::audit::TrailHead;
use changehub::domain::{AuditEntry, Change};

/// A consistent rewrite: entry `index` gets another actor, then every later
/// hash and link and the record's head are recomputed, so the hash chain
/// verifies again. Only the seals (which need the audit key) can tell.
pub fn rewrite_actor(trail: &mut [AuditEntry], record: &mut Change, index: usize, actor: &str) {
    if let Some(head) = rewrite_trail_actor(trail, index, actor) {
        record.audit_head = head.hash;
    }
}

/// The same rewrite of any trail (a governance trail keeps its head beside
/// it): the head to store with it.
pub fn rewrite_trail_actor(trail: &mut [AuditEntry], index: usize, actor: &str) -> Option<TrailHead> {
    trail[index].actor = actor.to_owned();
    for i in index..trail.len() {
        if i > 0 {
            trail[i].prev_hash = trail[i - 1].hash.clone();
        }
        trail[i].hash = trail[i].compute_hash();
    }
    trail.last().map(AuditEntry::head)
}

/// Overwrites one item of the table with a document, as a raw PutItem would.
pub async fn overwrite_item(store: &DynamoStore, pk: String, sk: String, doc: &impl serde::Serialize) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let doc = serde_json::to_string(doc).expect("json");
    store
        .client()
        .put_item()
        .table_name(store.table_name())
        .item("PK", S(pk))
        .item("SK", S(sk))
        .item("doc", S(doc))
        .send()
        .await
        .expect("raw write");
}
