//! `changehub replay`: sends event files to a running hub.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("{path}: not an EventBridge-shaped event (needs \"source\", \"detail-type\" and \"detail\")")]
    Shape { path: String },
    #[error("{path}: cannot reach the hub at {url}: {source}")]
    Send { path: String, url: String, source: reqwest::Error },
    #[error("{failed} of {total} file(s) were refused")]
    Refused { failed: usize, total: usize },
}

pub async fn run(url: &str, files: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let endpoint = format!("{}/events", url.trim_end_matches('/'));
    let mut failed = 0;
    for file in files {
        let path = file.display().to_string();
        let bytes = tokio::fs::read(file).await.map_err(|source| ReplayError::Read { path: path.clone(), source })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| ReplayError::Json { path: path.clone(), source })?;
        if !["source", "detail-type", "detail"].iter().all(|k| value.get(k).is_some()) {
            return Err(ReplayError::Shape { path }.into());
        }
        let response = client
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|source| ReplayError::Send { path: path.clone(), url: endpoint.clone(), source })?;
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
