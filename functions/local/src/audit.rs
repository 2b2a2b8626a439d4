//! `changehub audit verify`: checks the hash chains of audit trails in a hub's
//! database file: every entry's hash, every link, no gap, and that each
//! record's head is its last entry. Run it against a stopped hub (the file
//! is locked while `changehub serve` runs).

use std::path::Path;

use changehub::adapters::embedded::EmbeddedStore;
use changehub::domain::audit::verify_record;
use changehub::domain::{ChangeId, TenantId};
use changehub::ports::ChangeReader;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no database at {0}")]
    NoDatabase(String),
    #[error("cannot open {path} (is `changehub serve` still running on it?): {source}")]
    Open { path: String, source: changehub::ports::StoreError },
    #[error("no change {0} in the database")]
    NoSuchChange(String),
    #[error("{broken} of {checked} audit chain(s) are broken")]
    Broken { broken: usize, checked: usize },
}

pub async fn verify(db: &Path, tenant: Option<&str>, change: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    if !db.exists() {
        return Err(AuditError::NoDatabase(db.display().to_string()).into());
    }
    let store =
        EmbeddedStore::open(db).map_err(|source| AuditError::Open { path: db.display().to_string(), source })?;
    let tenant = tenant.map(TenantId::parse).transpose()?;
    let change = change.map(ChangeId::parse).transpose()?;
    let records: Vec<_> = store
        .all_changes()
        .await?
        .into_iter()
        .filter(|c| tenant.as_ref().is_none_or(|t| &c.tenant == t))
        .filter(|c| change.is_none_or(|id| c.id == id))
        .collect();
    if let (Some(id), true) = (change, records.is_empty()) {
        return Err(AuditError::NoSuchChange(id.to_string()).into());
    }
    let mut broken = 0;
    for record in &records {
        let trail = store.audit_trail(&record.tenant, &record.id).await?;
        match verify_record(record, &trail) {
            Ok(()) => println!("ok      {}/{}  {} entries", record.tenant, record.id, trail.len()),
            Err(e) => {
                broken += 1;
                println!("BROKEN  {}/{}  {e}", record.tenant, record.id);
            }
        }
    }
    println!("{} audit chain(s) checked, {broken} broken", records.len());
    if broken > 0 {
        return Err(AuditError::Broken { broken, checked: records.len() }.into());
    }
    Ok(())
}
