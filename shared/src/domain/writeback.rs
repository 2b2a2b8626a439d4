//! The catalog's `writeback:` section: which tools a tenant's
//! change-related incidents are written back to, besides the notification.
//! A target is on when its section is present.
//!
//! ```yaml
//! writeback:
//!   pagerduty:
//!     from: oncall-bot@example.com   # the PagerDuty user the notes are added as
//!   github:
//!     api_url: https://github.example.com/api/v3   # GitHub Enterprise; default https://api.github.com
//! ```
//!
//! The tokens are not here: they come from the write-back credentials
//! (Secrets Manager on AWS, the environment locally).

use serde::{Deserialize, Serialize};
use std::fmt;

use super::validation::Problems;

/// PagerDuty's REST API.
pub const PAGERDUTY_API: &str = "https://api.pagerduty.com";
/// GitHub's REST API (GitHub Enterprise Server: `https://HOST/api/v3`).
pub const GITHUB_API: &str = "https://api.github.com";

/// A tool the hub writes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A note on the PagerDuty incident.
    Pagerduty,
    /// A comment on the GitHub pull request, or on the deployed commit.
    Github,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Pagerduty, Target::Github];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Pagerduty => "pagerduty",
            Target::Github => "github",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenant's write-back settings (`writeback:`); every target is off unless listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerdutyWriteBack>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubWriteBack>,
}

/// Notes on PagerDuty incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyWriteBack {
    /// The email of the PagerDuty user the notes are added as (PagerDuty's `From` header).
    pub from: String,
    /// The REST API's base URL.
    #[serde(default = "pagerduty_api")]
    pub api_url: String,
}

/// Comments on GitHub pull requests and commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubWriteBack {
    /// The REST API's base URL.
    #[serde(default = "github_api")]
    pub api_url: String,
}

fn pagerduty_api() -> String {
    PAGERDUTY_API.to_owned()
}

fn github_api() -> String {
    GITHUB_API.to_owned()
}

impl WriteBackPolicy {
    pub fn is_off(&self) -> bool {
        self.pagerduty.is_none() && self.github.is_none()
    }

    /// Adds the problems of the settings, under `writeback`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        if let Some(pd) = &self.pagerduty {
            if !valid_email(&pd.from) {
                p.add(
                    "writeback.pagerduty.from",
                    "the email of a PagerDuty user, such as oncall-bot@example.com (PagerDuty adds the notes as that user)",
                );
            }
            check_api_url(p, "writeback.pagerduty.api_url", &pd.api_url);
        }
        if let Some(gh) = &self.github {
            check_api_url(p, "writeback.github.api_url", &gh.api_url);
        }
    }
}

/// An email address as PagerDuty takes it: `local@domain.tld`, no spaces, at most 254 characters.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().all(|c| c.is_ascii_graphic())
}

/// An `https://` base URL (or `http://` to this machine, for tests and
/// local mocks), without a query, fragment or trailing slash.
fn check_api_url(p: &mut Problems, path: &str, url: &str) {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        p.add(path, format!("an https:// URL such as {GITHUB_API}; got {url:?}"));
        return;
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    if host.is_empty() || !rest.chars().all(|c| c.is_ascii_graphic()) || rest.contains(['?', '#']) {
        p.add(path, format!("an https:// URL without a query or fragment, such as {GITHUB_API}; got {url:?}"));
    } else if url.starts_with("http://") && !local {
        p.add(path, "the API is called with a token: use https:// (http:// only to localhost)");
    } else if url.ends_with('/') {
        p.add(path, format!("leave out the trailing '/': {:?}", url.trim_end_matches('/')));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{Catalog, parse_yaml};

    #[test]
    fn targets_are_off_unless_listed_and_default_to_the_public_apis() {
        assert!(Catalog::default().writeback.is_off());
        let catalog = parse_yaml("writeback:\n  pagerduty:\n    from: bot@example.com\n  github: {}\n").expect("valid");
        let pd = catalog.writeback.pagerduty.expect("pagerduty on");
        assert_eq!((pd.from.as_str(), pd.api_url.as_str()), ("bot@example.com", PAGERDUTY_API));
        assert_eq!(catalog.writeback.github.expect("github on").api_url, GITHUB_API);
    }

    #[test]
    fn every_bad_setting_is_reported_by_its_path() {
        let yaml = "writeback:\n  pagerduty:\n    from: not-an-email\n    api_url: http://pd.example.com\n  github:\n    api_url: https://ghe.example.com/api/v3/\n";
        let errors = parse_yaml(yaml).expect_err("invalid");
        let fields: Vec<&str> = errors.listed().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["writeback.pagerduty.from", "writeback.pagerduty.api_url", "writeback.github.api_url"]);
        assert!(errors.listed()[1].message.contains("use https://"), "{}", errors.listed()[1].message);
        assert!(errors.listed()[2].message.contains("\"https://ghe.example.com/api/v3\""));
    }

    #[test]
    fn a_local_http_api_is_allowed_for_tests_and_mocks() {
        let mut p = Problems::default();
        check_api_url(&mut p, "x", "http://127.0.0.1:8080");
        check_api_url(&mut p, "x", "http://localhost/api");
        check_api_url(&mut p, "x", "https://ghe.example.com/api/v3");
        assert_eq!(p.finish(), Ok(()));
        let mut p = Problems::default();
        check_api_url(&mut p, "x", "ftp://example.com");
        check_api_url(&mut p, "x", "https://example.com/?token=1");
        check_api_url(&mut p, "x", "https://");
        assert_eq!(p.finish().expect_err("bad").listed().len(), 3);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse_yaml("writeback:\n  slack: {}\n").is_err());
        assert!(parse_yaml("writeback:\n  github:\n    token: abc\n").is_err());
    }
}
