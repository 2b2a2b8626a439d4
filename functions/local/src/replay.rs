//! `changehub replay`: sends event files to a running hub, as their senders would.
//!
//! - An EventBridge envelope (with `source`, `detail-type`, `detail`) goes to `/events`.
//! - Any other file is a webhook body: its source is the folder it sits in
//!   (`events/github/...`) or `--source`; the event type comes from the file
//!   name (`deployment_status.success.json` → `deployment_status`); it is
//!   signed with the source's secret from the environment, as the vendor signs.
//!
//! Delivery ids are derived from the file's bytes, so replaying a file twice
//! shows the hub's dedupe; `--fresh-ids` sends each under a new delivery id,
//! which shows the replay protection: the hub also dedupes on the signed
//! body, so a file it accepted before is still a duplicate.

use changehub::adapters::env_secrets::{self, StaticSecrets};
use changehub::domain::TenantId;
use changehub::ingest::{Origin, sign};
use changehub::ports::SecretSource;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error(
        "{path}: not an EventBridge-shaped event (needs \"source\", \"detail-type\" and \"detail\"), and its webhook source is unknown: put it under events/<source>/ or pass --source"
    )]
    Shape { path: String },
    #[error("{path}: no {} secret in the environment (set {})", .origin.as_str(), env_secrets::variables(*.origin).join(" or "))]
    NoSecret { path: String, origin: Origin },
    #[error("{path}: cannot reach the hub at {url}: {source}")]
    Send { path: String, url: String, source: reqwest::Error },
    #[error(
        "AWS events go to /events, which needs a bearer token: pass --token, set CHANGEHUB_TOKEN, or run beside the hub's database (no key at {key})"
    )]
    NoToken { key: String },
    #[error("cannot mint a token: {0}")]
    Token(String),
    #[error("{failed} of {total} file(s) were refused")]
    Refused { failed: usize, total: usize },
}

pub struct Options {
    pub url: String,
    pub tenant: TenantId,
    pub source: Option<Origin>,
    pub fresh_ids: bool,
    /// The bearer token for `/events`; when absent one is minted with the
    /// local hub's key beside `db`, if that key exists.
    pub token: Option<String>,
    pub db: PathBuf,
}

/// The token `/events` files are sent with.
fn events_token(options: &Options) -> Result<String, ReplayError> {
    if let Some(t) = options.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_owned());
    }
    let key_file = changehub::http::bearer::key_path(&options.db);
    if !key_file.exists() {
        return Err(ReplayError::NoToken { key: key_file.display().to_string() });
    }
    let key =
        changehub::http::bearer::LocalKey::for_database(&options.db).map_err(|e| ReplayError::Token(e.to_string()))?;
    key.mint_ingest("replay", &options.tenant, chrono::Utc::now(), chrono::Duration::hours(1))
        .map_err(|e| ReplayError::Token(e.to_string()))
}

fn origin_of(file: &Path, forced: Option<Origin>) -> Option<Origin> {
    forced.or_else(|| {
        file.parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .and_then(Origin::parse)
            .filter(|o| *o != Origin::Aws)
    })
}

pub async fn run(options: &Options, files: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let base = options.url.trim_end_matches('/');
    let secrets = StaticSecrets::from_env()?;
    let mut failed = 0;
    for file in files {
        let path = file.display().to_string();
        let bytes = tokio::fs::read(file).await.map_err(|source| ReplayError::Read { path: path.clone(), source })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| ReplayError::Json { path: path.clone(), source })?;
        let is_envelope = ["source", "detail-type", "detail"].iter().all(|k| value.get(k).is_some());
        let request = if is_envelope {
            client.post(format!("{base}/events")).bearer_auth(events_token(options)?)
        } else {
            let origin = origin_of(file, options.source).ok_or_else(|| ReplayError::Shape { path: path.clone() })?;
            let secret = secrets
                .secrets(&options.tenant, origin)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ReplayError::NoSecret { path: path.clone(), origin })?;
            let delivery = if options.fresh_ids {
                uuid::Uuid::now_v7().to_string()
            } else {
                hex::encode(&Sha256::digest(&bytes)[..16])
            };
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let headers = sign::delivery(origin, &secret, stem, &delivery, &bytes, chrono::Utc::now());
            let route = if options.tenant.as_str() == "default" {
                format!("{base}/webhooks/{}", origin.as_str())
            } else {
                format!("{base}/tenants/{}/webhooks/{}", options.tenant, origin.as_str())
            };
            let mut req = client.post(route);
            for (name, value) in &headers {
                req = req.header(name.as_str(), value.as_bytes());
            }
            req
        };
        let response = request
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|source| ReplayError::Send { path: path.clone(), url: base.to_owned(), source })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        println!("{path}: {} {body}", status.as_u16());
        if !status.is_success() {
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(ReplayError::Refused { failed, total: files.len() }.into());
    }
    Ok(())
}
