//! Webhook secrets for the local hub: environment variables for the
//! `default` tenant, and an optional JSON file for any tenant.
//!
//! | source | variables (each may also be set as `<NAME>_PREVIOUS` while rotating) |
//! |---|---|
//! | github | `CHANGEHUB_GITHUB_SECRET` |
//! | gitlab | `CHANGEHUB_GITLAB_TOKEN`, `CHANGEHUB_GITLAB_SIGNING_SECRET` (`whsec_...`) |
//! | pagerduty | `CHANGEHUB_PAGERDUTY_SECRET` |
//! | incidentio | `CHANGEHUB_INCIDENTIO_SECRET` (`whsec_...`) |
//! | alertmanager | `CHANGEHUB_ALERTMANAGER_TOKEN` |
//!
//! `CHANGEHUB_SECRETS_FILE` may name a JSON document of the same shape as the
//! AWS secret: `{"<tenant>": {"<source>": ["secret", "previous secret"]}}`.

use std::collections::BTreeMap;

use crate::domain::TenantId;
use crate::ingest::Origin;
use crate::ports::{SecretSource, SecretsError};

/// `{"tenant": {"source": ["secret", ...]}}`
pub type SecretsDocument = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The variables holding `origin`'s secrets for the default tenant.
pub fn variables(origin: Origin) -> &'static [&'static str] {
    match origin {
        Origin::Github => &["CHANGEHUB_GITHUB_SECRET"],
        Origin::Gitlab => &["CHANGEHUB_GITLAB_TOKEN", "CHANGEHUB_GITLAB_SIGNING_SECRET"],
        Origin::Pagerduty => &["CHANGEHUB_PAGERDUTY_SECRET"],
        Origin::Incidentio => &["CHANGEHUB_INCIDENTIO_SECRET"],
        Origin::Alertmanager => &["CHANGEHUB_ALERTMANAGER_TOKEN"],
        Origin::Aws => &[],
    }
}

/// Secrets read once, at start.
#[derive(Debug, Clone, Default)]
pub struct StaticSecrets {
    document: SecretsDocument,
}

impl StaticSecrets {
    pub fn new(document: SecretsDocument) -> Self {
        Self { document }
    }

    /// Reads the variables above (and `CHANGEHUB_SECRETS_FILE` if set).
    pub fn from_env() -> Result<Self, SecretsError> {
        let mut document: SecretsDocument = match std::env::var_os("CHANGEHUB_SECRETS_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SecretsError::Invalid(format!("cannot read {}: {e}", path.to_string_lossy())))?;
                parse_document(&text)?
            }
            None => SecretsDocument::new(),
        };
        for origin in [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Incidentio, Origin::Alertmanager] {
            for var in variables(origin) {
                for name in [var.to_string(), format!("{var}_PREVIOUS")] {
                    if let Ok(value) = std::env::var(&name) {
                        let value = value.trim().to_owned();
                        if !value.is_empty() {
                            document
                                .entry("default".into())
                                .or_default()
                                .entry(origin.as_str().into())
                                .or_default()
                                .push(value);
                        }
                    }
                }
            }
        }
        Ok(Self { document })
    }

    /// The sources that have at least one secret for `tenant`.
    pub fn configured(&self, tenant: &str) -> Vec<String> {
        self.document
            .get(tenant)
            .map(|m| m.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }
}

/// Parses and checks a secrets document.
pub fn parse_document(text: &str) -> Result<SecretsDocument, SecretsError> {
    let document: SecretsDocument = serde_json::from_str(text)
        .map_err(|e| SecretsError::Invalid(format!("expected {{\"tenant\": {{\"source\": [\"secret\"]}}}}: {e}")))?;
    for (tenant, sources) in &document {
        TenantId::parse(tenant).map_err(|e| SecretsError::Invalid(e.message))?;
        for source in sources.keys() {
            if Origin::parse(source).is_none_or(|o| o == Origin::Aws) {
                return Err(SecretsError::Invalid(format!("tenant {tenant}: unknown webhook source {source:?}")));
            }
        }
    }
    Ok(document)
}

impl SecretSource for StaticSecrets {
    async fn secrets(&self, tenant: &TenantId, origin: Origin) -> Result<Vec<String>, SecretsError> {
        Ok(self.document.get(tenant.as_str()).and_then(|m| m.get(origin.as_str())).cloned().unwrap_or_default())
    }
}
