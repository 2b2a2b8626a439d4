//! `changehub migrate`: brings a table an older hub wrote up to the indexes
//! this one reads ([`changehub::app::migrate`]), in a hub's database file
//! (stop the hub first: the file is locked while it runs) or, with
//! `--table`, in a deployed hub's DynamoDB table. Prints one line per tenant.

use std::collections::BTreeSet;
use std::path::Path;

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::migrate::{Migrated, restore_indexes};
use changehub::domain::TenantId;

use crate::plural::count;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no database at {0} (pass --db the hub's database, or --table a deployed hub's table)")]
    NoDatabase(String),
    #[error("--table needs --tenant: a table's changes are read from a tenant's change list")]
    NoTenant,
}

fn line(tenant: &TenantId, m: Migrated) {
    println!("{tenant}: {} read, {} indexed (plannable index)", count(m.read, "change", "changes"), m.indexed);
}

/// The database file: every tenant it holds changes of (or `tenant`'s).
pub async fn database(db: &Path, tenant: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    if !db.exists() {
        return Err(MigrateError::NoDatabase(db.display().to_string()).into());
    }
    let store = EmbeddedStore::open(db)?;
    let only = tenant.map(TenantId::parse).transpose()?;
    let tenants: BTreeSet<TenantId> = store
        .all_changes()
        .await?
        .into_iter()
        .map(|c| c.tenant)
        .filter(|t| only.as_ref().is_none_or(|o| o == t))
        .collect();
    for t in &tenants {
        line(t, restore_indexes(&store, t).await?);
    }
    if tenants.is_empty() {
        println!("no changes to migrate in {}", db.display());
    }
    Ok(())
}

/// A deployed hub's table: `tenant`'s changes (AWS credentials from the environment).
pub async fn table(table: &str, tenant: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let tenant = TenantId::parse(tenant.ok_or(MigrateError::NoTenant)?)?;
    let aws = changehub::adapters::aws::load_config().await?;
    let store = DynamoStore::new(changehub::adapters::dynamodb::Client::new(&aws), table);
    line(&tenant, restore_indexes(&store, &tenant).await?);
    Ok(())
}
