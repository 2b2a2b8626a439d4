//! Reading typed configuration from named environment variables, once, at init.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
}

/// A variable that must be set and non-empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ConfigError::Invalid { name, message: "empty".into() }),
        Err(_) => Err(ConfigError::Missing(name)),
    }
}

/// A variable that may be unset; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The hub's public address (`CHANGEHUB_PUBLIC_URL`, optional; the
/// template's `PublicUrl`), without a trailing `/`: notifications link to a
/// change's page under it. Unset or empty: no link.
pub fn public_url() -> Result<Option<String>, ConfigError> {
    let name = "CHANGEHUB_PUBLIC_URL";
    optional(name)
        .map(|url| parse_public_url(&url).map_err(|message| ConfigError::Invalid { name, message }))
        .transpose()
}

/// A public address as given: an http(s) URL without white space; its trailing `/` dropped.
pub fn parse_public_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if host.is_some_and(|h| !h.trim_end_matches('/').is_empty()) && !url.contains(char::is_whitespace) {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(format!("{url:?} is not an http(s) URL such as https://changes.example.com"))
    }
}

/// The tenant an AWS account's own events belong to (`CHANGEHUB_AWS_TENANT`,
/// default `default`): the aws-events function files them under it, and
/// the drift function reads its catalog at init.
pub fn aws_tenant() -> Result<crate::domain::TenantId, ConfigError> {
    let name = "CHANGEHUB_AWS_TENANT";
    let tenant = std::env::var(name).unwrap_or_else(|_| "default".into());
    crate::domain::TenantId::parse(&tenant).map_err(|e| ConfigError::Invalid { name, message: e.message })
}

/// The table of change records and the secret holding the audit key that
/// seals every audit entry written to it: `CHANGEHUB_TABLE` and
/// `CHANGEHUB_AUDIT_KEY_SECRET`, for every function that writes audited
/// changes (`adapters::secretsmanager` builds its store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedTable {
    pub table: String,
    pub audit_key_secret: String,
}

impl AuditedTable {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: required("CHANGEHUB_TABLE")?, audit_key_secret: required("CHANGEHUB_AUDIT_KEY_SECRET")? })
    }
}

/// Timeouts for the AWS SDK clients, below the functions' 10 s timeout, so
/// that a hung call fails inside the invocation (and its dedupe lease is
/// released) rather than being cut off with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// One call, retries included: `CHANGEHUB_SDK_OPERATION_TIMEOUT_MS` (default 5000).
    pub operation: std::time::Duration,
    /// One attempt of a call: `CHANGEHUB_SDK_ATTEMPT_TIMEOUT_MS` (default 2000).
    pub attempt: std::time::Duration,
}

impl SdkTimeouts {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            operation: millis("CHANGEHUB_SDK_OPERATION_TIMEOUT_MS", 5000)?,
            attempt: millis("CHANGEHUB_SDK_ATTEMPT_TIMEOUT_MS", 2000)?,
        })
    }
}

/// A positive number of milliseconds, `default` when unset.
fn millis(name: &'static str, default: u64) -> Result<std::time::Duration, ConfigError> {
    match optional(name) {
        None => Ok(std::time::Duration::from_millis(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
            _ => Err(ConfigError::Invalid { name, message: "expected a positive whole number of milliseconds".into() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_public_url;

    #[test]
    fn a_public_url_is_an_http_url_kept_without_its_trailing_slash() {
        assert_eq!(parse_public_url("https://changes.example.com/"), Ok("https://changes.example.com".to_owned()));
        assert_eq!(parse_public_url(" http://127.0.0.1:8080 "), Ok("http://127.0.0.1:8080".to_owned()));
        for bad in ["changes.example.com", "https://", "ftp://x", "https://a b"] {
            let e = parse_public_url(bad).expect_err(bad);
            assert!(e.contains("is not an http(s) URL such as https://changes.example.com"), "{e}");
        }
    }
}
