//! `changehub audit verify`: checks the audit trails of a hub (each change's,
//! and each tenant's governance trail), either in its database file or, with
//! `--table`, in a deployed hub's DynamoDB table: every entry's hash, every
//! link, no gap, each head (a record's, a governance trail's) is its last
//! entry, and, with the audit key, every entry's seal (an HMAC of its hash,
//! which someone who can rewrite the table but not read the key cannot forge).
//!
//! The database file is locked while `changehub serve` runs: stop the hub
//! first. The table is read with GetItem and Query only, never Scan: a
//! tenant's changes come from its change list (`T#{tenant}#CHANGES`).

use std::path::Path;

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::secretsmanager;
use changehub::app::audit::{ChainReport, verify_governance, verify_trails};
use changehub::domain::audit::AuditKey;
use changehub::domain::{ChangeId, TenantId};
use changehub::http::bearer::{LocalKey, key_path};
use changehub::ports::ChangeReader;

use crate::plural::count;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no database at {0}")]
    NoDatabase(String),
    #[error("cannot open {path} (is `changehub serve` still running on it?): {source}")]
    Open { path: String, source: changehub::ports::StoreError },
    #[error("no change {0} in the database")]
    NoSuchChange(String),
    #[error("--table needs --tenant: changes are listed per tenant (the table is never scanned)")]
    NoTenant,
    #[error("cannot read the audit key from secret {secret}: {source}")]
    AuditKey { secret: String, source: changehub::ports::BoxError },
    #[error("{broken} of {} broken", count(*.checked, "audit chain is", "audit chains are"))]
    Broken { broken: usize, checked: usize },
}

pub async fn verify(db: &Path, tenant: Option<&str>, change: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    if !db.exists() {
        return Err(AuditError::NoDatabase(db.display().to_string()).into());
    }
    // The key file is not created here: without one, seals are not checked (and the report says so).
    let key = match key_path(db).exists() {
        true => Some(LocalKey::for_database(db)?.audit_key()?),
        false => None,
    };
    let store =
        EmbeddedStore::open(db).map_err(|source| AuditError::Open { path: db.display().to_string(), source })?;
    let tenant = tenant.map(TenantId::parse).transpose()?;
    let change = change.map(ChangeId::parse).transpose()?;
    // The whole file: it also finds changes that no tenant list names.
    let targets: Vec<(TenantId, ChangeId)> = store
        .all_changes()
        .await?
        .into_iter()
        .filter(|c| tenant.as_ref().is_none_or(|t| &c.tenant == t))
        .filter(|c| change.is_none_or(|id| c.id == id))
        .map(|c| (c.tenant, c.id))
        .collect();
    if let (Some(id), true) = (change, targets.is_empty()) {
        return Err(AuditError::NoSuchChange(id.to_string()).into());
    }
    let mut reports = verify_trails(&store, &targets, key.as_ref()).await?;
    if change.is_none() {
        for t in store.governance_tenants().await?.iter().filter(|t| tenant.as_ref().is_none_or(|want| want == *t)) {
            reports.extend(verify_governance(&store, t, key.as_ref()).await?);
        }
    }
    report(&reports, key.as_ref(), &format!("database {}", db.display()))
}

/// AWS mode: the tenant's change list (or the one change named), read with
/// Query and GetItem; seals checked with the key from `audit_key_secret`.
pub async fn verify_table(
    table: &str,
    audit_key_secret: Option<&str>,
    tenant: Option<&str>,
    change: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let tenant = TenantId::parse(tenant.ok_or(AuditError::NoTenant)?)?;
    let change = change.map(ChangeId::parse).transpose()?;
    let aws = changehub::adapters::aws::load_config().await?;
    let key = match audit_key_secret {
        Some(secret) => Some(
            secretsmanager::audit_key(&secretsmanager::Client::new(&aws), secret)
                .await
                .map_err(|source| AuditError::AuditKey { secret: secret.to_owned(), source })?,
        ),
        None => None,
    };
    let store = DynamoStore::new(changehub::adapters::dynamodb::Client::new(&aws), table);
    let ids = match change {
        Some(id) => vec![id],
        None => store.change_ids(&tenant).await?,
    };
    let targets: Vec<(TenantId, ChangeId)> = ids.into_iter().map(|id| (tenant.clone(), id)).collect();
    let mut reports = verify_trails(&store, &targets, key.as_ref()).await?;
    if change.is_none() {
        reports.extend(verify_governance(&store, &tenant, key.as_ref()).await?);
    }
    report(&reports, key.as_ref(), &format!("table {table}, tenant {tenant}"))
}

/// Prints one line per chain and what was checked; an error if any is broken.
fn report(reports: &[ChainReport], key: Option<&AuditKey>, source: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut broken = 0;
    for r in reports {
        let (tenant, trail) = (&r.tenant, r.trail());
        match &r.result {
            Ok(()) => println!("ok      {tenant}/{trail}  {}", count(r.entries, "entry", "entries")),
            Err(e) => {
                broken += 1;
                println!("BROKEN  {tenant}/{trail}  {e}");
            }
        }
    }
    let entries: usize = reports.iter().map(|r| r.entries).sum();
    let seals = match key {
        Some(_) => "hashes, links, heads and seals checked",
        None => "hashes, links and heads checked; seals NOT checked (no audit key)",
    };
    let (chains, entries) = (count(reports.len(), "audit chain", "audit chains"), count(entries, "entry", "entries"));
    println!("{source}: {chains}, {entries}; {seals}; {broken} broken");
    if broken > 0 {
        return Err(AuditError::Broken { broken, checked: reports.len() }.into());
    }
    Ok(())
}
