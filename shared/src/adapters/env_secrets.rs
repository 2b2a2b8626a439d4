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
//! | argocd | `CHANGEHUB_ARGOCD_TOKEN` |
//!
//! `CHANGEHUB_SECRETS_FILE` may name a JSON document of the same shape as the
//! AWS secret: `{"<tenant>": {"<source>": ["secret", "previous secret"]}}`.
//!
//! The same document holds the API tokens change-related incidents are
//! written back with ([`WriteBackCredentials`]), under `pagerduty_api` and
//! `github_api` (the first token listed is used); for the `default` tenant
//! also `CHANGEHUB_PAGERDUTY_API_TOKEN` and `CHANGEHUB_GITHUB_API_TOKEN`.
//!
//! The merge gate's credentials ([`ForgeCredentials`]) are entries of the
//! same document: a GitHub App as `github_app_id` and `github_app_key` (its
//! PEM private key), else the token `github_api`; GitLab's token as
//! `gitlab_api`. For the `default` tenant also `CHANGEHUB_GITHUB_APP_ID` and
//! `CHANGEHUB_GITHUB_APP_KEY_FILE` (the key file, read at start),
//! `CHANGEHUB_GITHUB_TOKEN` (`CHANGEHUB_GITHUB_API_TOKEN` is its older name)
//! and `CHANGEHUB_GITLAB_API_TOKEN`.
//!
//! A bad entry of the document (an unknown source, a tenant that is not a
//! slug, a secret that is not a list of strings) is left out and reported by
//! its path; the other entries are served. Reports name the path and the
//! problem, never a value, so no secret reaches a log.

use std::collections::BTreeMap;

use crate::domain::TenantId;
use crate::domain::writeback::Target;
use crate::ingest::Origin;
use crate::ports::{ForgeCredentials, GithubCredential, SecretSource, SecretsError, WriteBackCredentials};

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
        Origin::Argocd => &["CHANGEHUB_ARGOCD_TOKEN"],
        Origin::Aws => &[],
    }
}

/// The variable holding the `default` tenant's write-back token for `target`.
pub fn token_variable(target: Target) -> &'static str {
    match target {
        Target::Pagerduty => "CHANGEHUB_PAGERDUTY_API_TOKEN",
        Target::Github => "CHANGEHUB_GITHUB_API_TOKEN",
    }
}

/// The entry of a secrets document holding a tenant's write-back token for `target`.
pub fn token_entry(target: Target) -> &'static str {
    match target {
        Target::Pagerduty => "pagerduty_api",
        Target::Github => "github_api",
    }
}

/// The entries of a secrets document holding the merge gate's credentials
/// beside the GitHub token (`github_api`).
pub const FORGE_ENTRIES: [&str; 3] = ["github_app_id", "github_app_key", "gitlab_api"];

/// The `default` tenant's GitHub token; `CHANGEHUB_GITHUB_API_TOKEN` is its older name.
pub const GITHUB_TOKEN_VARIABLE: &str = "CHANGEHUB_GITHUB_TOKEN";
/// The `default` tenant's GitHub App id, and the file holding its private key.
pub const GITHUB_APP_VARIABLES: [&str; 2] = ["CHANGEHUB_GITHUB_APP_ID", "CHANGEHUB_GITHUB_APP_KEY_FILE"];
/// The `default` tenant's GitLab API token.
pub const GITLAB_TOKEN_VARIABLE: &str = "CHANGEHUB_GITLAB_API_TOKEN";

/// Whether `name` is an entry a tenant's secrets may have: a webhook source, a write-back token or a forge credential.
fn known_entry(name: &str) -> bool {
    Origin::parse(name).is_some_and(|o| o != Origin::Aws)
        || Target::ALL.iter().any(|t| token_entry(*t) == name)
        || FORGE_ENTRIES.contains(&name)
}

/// The first non-blank value of `tenant`'s `entry`.
fn first_in(document: &SecretsDocument, tenant: &TenantId, entry: &str) -> Option<String> {
    let values = document.get(tenant.as_str())?.get(entry)?;
    values.iter().map(|t| t.trim()).find(|t| !t.is_empty()).map(str::to_owned)
}

/// `tenant`'s GitHub credential in `document`: its App when both its
/// entries are there, else its token.
pub fn github_in(document: &SecretsDocument, tenant: &TenantId) -> Option<GithubCredential> {
    let app = first_in(document, tenant, "github_app_id").zip(first_in(document, tenant, "github_app_key"));
    match app {
        Some((app_id, private_key)) => Some(GithubCredential::App { app_id, private_key }),
        None => token_in(document, tenant, Target::Github).map(GithubCredential::Token),
    }
}

/// `tenant`'s GitLab token in `document`.
pub fn gitlab_in(document: &SecretsDocument, tenant: &TenantId) -> Option<String> {
    first_in(document, tenant, "gitlab_api")
}

/// Puts `value` first in the `default` tenant's `entry`.
fn put_first(document: &mut SecretsDocument, entry: &str, value: String) {
    document.entry("default".into()).or_default().entry(entry.into()).or_default().insert(0, value);
}

/// The `default` tenant's forge credentials from the environment (see the module).
fn forge_variables(document: &mut SecretsDocument) -> Result<(), SecretsError> {
    let read = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(token) = read(GITHUB_TOKEN_VARIABLE) {
        put_first(document, token_entry(Target::Github), token);
    }
    if let Some(token) = read(GITLAB_TOKEN_VARIABLE) {
        put_first(document, "gitlab_api", token);
    }
    let [id_variable, key_variable] = GITHUB_APP_VARIABLES;
    match (read(id_variable), read(key_variable)) {
        (Some(app_id), Some(file)) => {
            // The error names the file, never its content.
            let key = std::fs::read_to_string(&file)
                .map_err(|e| SecretsError::Invalid(format!("{key_variable}: cannot read {file}: {e}")))?;
            put_first(document, "github_app_id", app_id);
            put_first(document, "github_app_key", key);
        }
        (None, None) => {}
        _ => {
            return Err(SecretsError::Invalid(format!(
                "set both {id_variable} and {key_variable} for a GitHub App, or neither"
            )));
        }
    }
    Ok(())
}

/// The first token listed under `target`'s entry of `tenant`.
pub fn token_in(document: &SecretsDocument, tenant: &TenantId, target: Target) -> Option<String> {
    let tokens = document.get(tenant.as_str())?.get(token_entry(target))?;
    tokens.iter().map(|t| t.trim()).find(|t| !t.is_empty()).map(str::to_owned)
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
    /// Entries of the file that are left out are logged by path.
    pub fn from_env() -> Result<Self, SecretsError> {
        let mut document: SecretsDocument = match std::env::var_os("CHANGEHUB_SECRETS_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SecretsError::Invalid(format!("cannot read {}: {e}", path.to_string_lossy())))?;
                let parsed = parse_document(&text)?;
                parsed.log_skipped();
                parsed.document
            }
            None => SecretsDocument::new(),
        };
        // AWS events have no variables: they come through the bus, unsigned.
        for origin in Origin::ALL {
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
        for target in Target::ALL {
            if let Ok(value) = std::env::var(token_variable(target)) {
                let value = value.trim().to_owned();
                if !value.is_empty() {
                    // The variable comes first: it is the token used.
                    let entry = document.entry("default".into()).or_default().entry(token_entry(target).into());
                    entry.or_default().insert(0, value);
                }
            }
        }
        forge_variables(&mut document)?;
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

/// An entry of a secrets document that was left out: where, and why. It
/// never holds a value from the document (keys only, as the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `tenant`, `tenant.source` or `tenant.source[i]`; `?` stands for a wrong name, never quoted.
    pub path: String,
    pub problem: String,
    /// The tenant and source the entry was for (`source` is `None` when the whole tenant was left out).
    pub tenant: String,
    pub source: Option<String>,
}

/// A secrets document with its bad entries left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub document: SecretsDocument,
    pub skipped: Vec<Skipped>,
}

impl Parsed {
    pub fn log_skipped(&self) {
        for s in &self.skipped {
            tracing::warn!(path = %s.path, problem = %s.problem, "secrets document entry left out");
        }
    }
}

/// Why a wrong entry's name is not in its path.
const HIDDEN: &str = "its name is not shown, in case it is a secret";

/// The JSON kind of a value, for errors that must not quote it.
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses a secrets document, leaving out (and listing) the entries that are
/// wrong, so that one bad tenant entry does not take every tenant's webhooks
/// down. Only a document that is not a JSON object at all is an error.
/// Nothing returned quotes a value from the document.
pub fn parse_document(text: &str) -> Result<Parsed, SecretsError> {
    const SHAPE: &str = r#"expected {"tenant": {"source": ["secret"]}}"#;
    // Syntax errors are reported by position only: serde's messages may quote the input.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| SecretsError::Invalid(format!("not JSON (line {}, column {}); {SHAPE}", e.line(), e.column())))?;
    let serde_json::Value::Object(tenants) = value else {
        return Err(SecretsError::Invalid(format!("the document is {}; {SHAPE}", kind(&value))));
    };
    let (mut document, mut skipped) = (SecretsDocument::new(), Vec::new());
    // Entries left out whose wrong name cannot be shown (nothing is carried over for them).
    let mut unnamed = Vec::new();
    for (tenant, sources) in tenants {
        let mut skip = |path: String, problem: String, source: Option<&str>| {
            skipped.push(Skipped { path, problem, tenant: tenant.clone(), source: source.map(str::to_owned) })
        };
        if TenantId::parse(&tenant).is_err() {
            // A wrong name is never quoted: in a garbled document it may be a secret.
            // Nothing is carried over for it, so it keeps no tenant either.
            unnamed.push(Skipped {
                path: "?".into(),
                problem: format!("an entry named other than a tenant (a lowercase slug); {HIDDEN}"),
                tenant: String::new(),
                source: None,
            });
            continue;
        }
        let serde_json::Value::Object(sources) = sources else {
            skip(tenant.clone(), format!("expected an object of sources, found {}", kind(&sources)), None);
            continue;
        };
        for (source, secrets) in sources {
            if !known_entry(&source) {
                unnamed.push(Skipped {
                    path: format!("{tenant}.?"),
                    problem: format!(
                        "an entry named other than a webhook source (github, gitlab, pagerduty, incidentio, alertmanager) a write-back token (pagerduty_api, github_api) or a forge credential (github_app_id, github_app_key, gitlab_api); {HIDDEN}"
                    ),
                    tenant: String::new(),
                    source: None,
                });
                continue;
            }
            let path = format!("{tenant}.{source}");
            let serde_json::Value::Array(list) = secrets else {
                skip(path, format!("expected a list of strings, found {}", kind(&secrets)), Some(&source));
                continue;
            };
            let mut strings = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                match item {
                    serde_json::Value::String(secret) => strings.push(secret.clone()),
                    other => {
                        skip(
                            format!("{path}[{i}]"),
                            format!("expected a string, found {}", kind(other)),
                            Some(&source),
                        );
                        strings.clear();
                        break;
                    }
                }
            }
            if strings.len() == list.len() {
                document.entry(tenant.clone()).or_default().insert(source, strings);
            }
        }
    }
    skipped.extend(unnamed);
    Ok(Parsed { document, skipped })
}

impl SecretSource for StaticSecrets {
    async fn secrets(&self, tenant: &TenantId, origin: Origin) -> Result<Vec<String>, SecretsError> {
        Ok(self.document.get(tenant.as_str()).and_then(|m| m.get(origin.as_str())).cloned().unwrap_or_default())
    }
}

impl WriteBackCredentials for StaticSecrets {
    async fn token(&self, tenant: &TenantId, target: Target) -> Result<Option<String>, SecretsError> {
        Ok(token_in(&self.document, tenant, target))
    }
}

impl ForgeCredentials for StaticSecrets {
    async fn github(&self, tenant: &TenantId) -> Result<Option<GithubCredential>, SecretsError> {
        Ok(github_in(&self.document, tenant))
    }

    async fn gitlab(&self, tenant: &TenantId) -> Result<Option<String>, SecretsError> {
        Ok(gitlab_in(&self.document, tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-hunter2";

    /// Documents with the secret where it does not belong, and what each
    /// must still serve.
    fn malformed() -> Vec<String> {
        [
            // The review's case: a string where a list belongs.
            r#"{"default": {"github": "SECRET"}, "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": {"github": ["ok", {"SECRET": 1}]}, "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": {"github": [5, "SECRET"]}, "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": "SECRET", "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": {"github": {"secret": "SECRET"}}, "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": {"github": ["SECRET"]}, "acme": {"github": ["acme-ok"]}, "Not A Slug": {"github": ["SECRET"]}}"#,
            // Names and secrets swapped: the secret is a key.
            r#"{"SECRET/": {"github": ["default"]}, "acme": {"github": ["acme-ok"]}}"#,
            r#"{"default": {"SECRET": ["github"]}, "acme": {"github": ["acme-ok"]}}"#,
        ]
        .iter()
        .map(|d| d.replace("SECRET", SECRET))
        .collect()
    }

    #[test]
    fn errors_about_a_malformed_document_never_quote_a_secret() {
        let broken = [
            format!(r#"{{"default": {{"github": ["{SECRET}"]"#),
            format!(r#"{{"default": {{"github": ["{SECRET}" "x"]}}}}"#),
            format!(r#"["{SECRET}"]"#),
            format!(r#""{SECRET}""#),
            format!(r#"{{"default": {{"github": ["{SECRET}\q"]}}}}"#),
        ];
        for text in &broken {
            match parse_document(text) {
                Err(SecretsError::Invalid(message)) => {
                    assert!(!message.contains(SECRET) && !message.contains("s3cr3t"), "{message}")
                }
                other => panic!("{text}: expected Invalid, got {other:?}"),
            }
        }
        for text in malformed() {
            let parsed = parse_document(&text).expect("a document with bad entries is parsed");
            assert!(!parsed.skipped.is_empty(), "{text}: nothing was left out");
            let report = format!("{:?}", parsed.skipped);
            assert!(!report.contains("s3cr3t"), "{text}: {report}");
        }
    }

    #[tokio::test]
    async fn write_back_tokens_are_read_from_the_document_by_tenant_and_target() {
        let parsed = parse_document(
            r#"{"acme": {"github": ["whsec"], "github_api": [" ", "ghp_current", "ghp_old"], "pagerduty_api": []}}"#,
        )
        .expect("parsed");
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let secrets = StaticSecrets::new(parsed.document);
        let acme = TenantId::parse("acme").expect("tenant");
        assert_eq!(secrets.token(&acme, Target::Github).await.expect("read").as_deref(), Some("ghp_current"));
        assert_eq!(secrets.token(&acme, Target::Pagerduty).await.expect("read"), None);
        let other = TenantId::parse("other").expect("tenant");
        assert_eq!(secrets.token(&other, Target::Github).await.expect("read"), None);
        // A webhook source's secrets are not write-back tokens, nor the other way round.
        assert_eq!(secrets.secrets(&acme, Origin::Github).await.expect("read"), ["whsec"]);
    }

    #[tokio::test]
    async fn forge_credentials_are_read_from_the_document_an_app_before_a_token() {
        let parsed = parse_document(
            r#"{"acme": {"github_api": ["ghp_x"], "github_app_id": ["123"], "github_app_key": ["PEM"], "gitlab_api": ["glpat"]},
                "solo": {"github_api": ["ghp_solo"]}}"#,
        )
        .expect("parsed");
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let secrets = StaticSecrets::new(parsed.document);
        let acme = TenantId::parse("acme").expect("tenant");
        let app = GithubCredential::App { app_id: "123".into(), private_key: "PEM".into() };
        assert_eq!(secrets.github(&acme).await.expect("read"), Some(app));
        assert_eq!(secrets.gitlab(&acme).await.expect("read").as_deref(), Some("glpat"));
        let solo = TenantId::parse("solo").expect("tenant");
        assert_eq!(secrets.github(&solo).await.expect("read"), Some(GithubCredential::Token("ghp_solo".into())));
        assert_eq!(secrets.gitlab(&solo).await.expect("read"), None);
        assert!(!format!("{:?}", secrets.github(&acme).await).contains("PEM"), "the key is never printed");
    }

    #[test]
    fn one_bad_tenant_entry_leaves_the_other_tenants_served() {
        for text in malformed() {
            let parsed = parse_document(&text).expect("parsed");
            assert_eq!(parsed.document.get("acme").and_then(|m| m.get("github")), Some(&vec!["acme-ok".to_owned()]));
        }
        let parsed =
            parse_document(r#"{"default": {"github": 7, "pagerduty": ["pd"], "bitbucket": ["x"]}}"#).expect("parsed");
        assert_eq!(parsed.document["default"]["pagerduty"], ["pd"]);
        let paths: Vec<(&str, &str)> = parsed.skipped.iter().map(|s| (s.path.as_str(), s.problem.as_str())).collect();
        assert_eq!(
            paths,
            [
                ("default.github", "expected a list of strings, found a number"),
                (
                    "default.?",
                    "an entry named other than a webhook source (github, gitlab, pagerduty, incidentio, alertmanager) \
                     a write-back token (pagerduty_api, github_api) \
                     or a forge credential (github_app_id, github_app_key, gitlab_api); \
                     its name is not shown, in case it is a secret"
                ),
            ]
        );
    }
}
