//! `changehub token` and `changehub catalog check|import`.

use std::path::Path;

use changehub::domain::catalog::{Catalog, parse_yaml};
use changehub::domain::{FieldError, FieldErrors, TenantId};
use changehub::http::bearer::{LocalKey, LocalKeyError};

use crate::plural::count;

#[derive(Debug, thiserror::Error)]
pub enum CatalogCliError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", problems(path, errors.listed(), errors.total()))]
    Invalid { path: String, errors: FieldErrors },
    #[error(
        "no token: pass --token or set CHANGEHUB_TOKEN (locally: changehub token --user NAME --groups changehub-admins)"
    )]
    NoToken,
    #[error("cannot reach the hub at {url}")]
    Send { url: String, source: reqwest::Error },
    #[error("the hub refused the catalog ({status}): {}", refusal(body))]
    Refused { status: u16, body: String },
    #[error("--ttl: {0}")]
    Ttl(String),
    #[error(
        "no signing key at {}: changehub token signs with the key the hub creates beside its database when \
         it starts, and the hub refuses tokens signed with any other. Start the hub (changehub serve) first, \
         or point at its database with --db PATH or CHANGEHUB_DB (its key is PATH.key)",
        .path.display()
    )]
    NoKey { path: std::path::PathBuf },
}

/// One line per problem, `file: field: message`, under a count when there are several.
fn problems(path: &str, listed: &[FieldError], total: usize) -> String {
    let lines: Vec<String> = listed.iter().map(|e| format!("{path}: {}: {}", e.field, e.message)).collect();
    match (lines.as_slice(), total - listed.len()) {
        ([one], 0) => one.clone(),
        (_, 0) => format!("{path}: {}\n{}", count(total, "problem", "problems"), lines.join("\n")),
        (_, unlisted) => {
            format!("{path}: {}\n{}\n... and {unlisted} more", count(total, "problem", "problems"), lines.join("\n"))
        }
    }
}

/// The hub's error answer, its problems one per line; the body as sent if it is not one.
fn refusal(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Refusal,
    }
    #[derive(serde::Deserialize)]
    struct Refusal {
        message: String,
        #[serde(default)]
        errors: Vec<Problem>,
    }
    #[derive(serde::Deserialize)]
    struct Problem {
        field: String,
        message: String,
    }
    match serde_json::from_str::<Answer>(body) {
        Ok(Answer { error: Refusal { errors, .. } }) if !errors.is_empty() => {
            errors.iter().map(|e| format!("\n{}: {}", e.field, e.message)).collect()
        }
        Ok(Answer { error }) => error.message,
        Err(_) => body.to_owned(),
    }
}

/// What a catalog holds, for people: `3 services, 1 template, 2 categories`.
pub fn contents(catalog: &Catalog) -> String {
    format!(
        "{}, {}, {}",
        count(catalog.services.len(), "service", "services"),
        count(catalog.templates.len(), "template", "templates"),
        count(catalog.categories.len(), "category", "categories")
    )
}

/// Reads and validates a catalog file; errors carry the file, and every problem's field path and line.
pub fn check(file: &Path) -> Result<(String, Catalog), CatalogCliError> {
    let path = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| CatalogCliError::Read { path: path.clone(), source })?;
    let catalog = parse_yaml(&text).map_err(|errors| CatalogCliError::Invalid { path: path.clone(), errors })?;
    Ok((text, catalog))
}

/// Validates locally, then replaces the tenant's catalog through the API (the tenant is the token's).
pub async fn import(file: &Path, url: &str, token: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let (text, catalog) = check(file)?;
    let token = token.filter(|t| !t.trim().is_empty()).ok_or(CatalogCliError::NoToken)?;
    let endpoint = format!("{}/catalog", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .put(&endpoint)
        .bearer_auth(token.trim())
        .header("content-type", "application/yaml")
        .body(text)
        .send()
        .await
        .map_err(|source| CatalogCliError::Send { url: endpoint.clone(), source })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(CatalogCliError::Refused { status: status.as_u16(), body }.into());
    }
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    println!(
        "imported {}: {}; catalog version {}",
        file.display(),
        contents(&catalog),
        summary.get("version").and_then(|v| v.as_u64()).unwrap_or(0)
    );
    Ok(())
}

/// Prints a token signed with the local hub's key, which the hub created beside its database;
/// refused when there is none (a token signed with a new key would be refused by the hub).
pub fn token(db: &Path, user: &str, groups: &str, tenant: &str, ttl: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tenant = TenantId::parse(tenant)?;
    let ttl = humantime_ttl(ttl)?;
    let groups: Vec<String> = groups.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
    if let Some(bad) = groups.iter().find(|g| !changehub::domain::catalog::valid_group(g)) {
        return Err(format!("--groups: {bad:?} is not a group name (no spaces; 1 to 256 characters)").into());
    }
    if user.trim().is_empty() || user.len() > 256 {
        return Err("--user must be 1 to 256 characters".into());
    }
    let key = LocalKey::existing(db).map_err(|e| -> Box<dyn std::error::Error> {
        match e {
            LocalKeyError::Missing { path } => {
                CatalogCliError::NoKey { path: std::path::absolute(&path).unwrap_or(path) }.into()
            }
            other => other.into(),
        }
    })?;
    println!("{}", key.mint(user.trim(), &groups, &tenant, chrono::Utc::now(), ttl)?);
    Ok(())
}

fn humantime_ttl(raw: &str) -> Result<chrono::Duration, CatalogCliError> {
    let span = changehub::domain::catalog::Span::parse(raw).map_err(CatalogCliError::Ttl)?;
    if span.0 < std::time::Duration::from_secs(60) || span.0 > std::time::Duration::from_secs(366 * 86_400) {
        return Err(CatalogCliError::Ttl("a token lives between 1m and 366d".into()));
    }
    Ok(span.chrono())
}
