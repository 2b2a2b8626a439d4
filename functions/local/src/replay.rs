//! `changehub replay`: sends event files to a running hub, as their senders would.
//!
//! - An EventBridge envelope (with `source`, `detail-type`, `detail`) goes to `/events`.
//! - Any other file is a webhook body: its source is the folder it sits in
//!   (`events/github/...`) or `--source`; it is signed with the source's
//!   secret from the environment, as the vendor signs. GitHub and GitLab name
//!   the event type in a header ([`event_type`]): `--event`, else the
//!   captured headers in a `<file>.headers` sidecar, else the file name
//!   (`deployment_status.success.json` → `deployment_status`), as the
//!   samples in events/ are named.
//!
//! Delivery ids are derived from the file's bytes, so replaying a file twice
//! shows the hub's dedupe; `--fresh-ids` sends each under a new delivery id,
//! which shows the replay protection: the hub also dedupes on the signed
//! body, so a file it accepted before is still a duplicate.
//!
//! The run fails when any delivery is refused (4xx/5xx), or ignored (an event
//! type the hub does not use) unless `--allow-ignored`; a duplicate counts as
//! accepted: the hub has it.

use changehub::adapters::env_secrets::{self, StaticSecrets};
use changehub::domain::TenantId;
use changehub::ingest::{self, Origin, sign};
use changehub::ports::SecretSource;
use http::{HeaderMap, HeaderName, HeaderValue};
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
    #[error("{path}: --event names the event type of GitHub and GitLab deliveries only; {why}")]
    EventFlag { path: String, why: String },
    #[error("{path}: line {line}: expected a header `Name: value`")]
    Sidecar { path: String, line: usize },
    #[error("{path}: holds no {header} header, which names the event type")]
    SidecarEvent { path: String, header: &'static str },
    #[error("{path}: cannot reach the hub at {url}: {source}")]
    Send { path: String, url: String, source: reqwest::Error },
    #[error(
        "AWS events go to /events, which needs a bearer token: pass --token, set CHANGEHUB_TOKEN, or run beside the hub's database (no key at {key})"
    )]
    NoToken { key: String },
    #[error("cannot mint a token: {0}")]
    Token(String),
    #[error("{0}")]
    NotAccepted(Tally),
}

pub struct Options {
    pub url: String,
    pub tenant: TenantId,
    pub source: Option<Origin>,
    /// The event type of GitHub and GitLab files, over their sidecar and file name.
    pub event: Option<String>,
    /// Ignored deliveries do not fail the run.
    pub allow_ignored: bool,
    pub fresh_ids: bool,
    /// The bearer token for `/events`; when absent one is minted with the
    /// local hub's key beside `db`, if that key exists.
    pub token: Option<String>,
    pub db: PathBuf,
}

/// How a run's deliveries fared, when not all were accepted.
#[derive(Debug)]
pub struct Tally {
    total: usize,
    refused: usize,
    ignored: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = |n: usize| if n == 1 { "1 file was".to_owned() } else { format!("{n} files were") };
        write!(f, "of {} sent, ", self.total)?;
        match (self.refused, self.ignored) {
            (0, i) => write!(f, "{} ignored", files(i))?,
            (r, 0) => write!(f, "{} refused", files(r))?,
            (r, i) => write!(f, "{} refused and {i} ignored", files(r))?,
        }
        if self.ignored > 0 {
            write!(f, " (an event type the hub does not use; --allow-ignored accepts those)")?;
        }
        Ok(())
    }
}

/// What the hub made of one delivery.
enum Answer {
    /// Accepted now, or a duplicate of one it accepted before.
    Accepted,
    /// A valid delivery of a type the hub does not use.
    Ignored(String),
    Refused,
}

impl Answer {
    fn of(status: reqwest::StatusCode, body: &str) -> Self {
        if !status.is_success() {
            return Answer::Refused;
        }
        let ignored = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("ignored").and_then(|k| k.as_str()).map(str::to_owned));
        ignored.map_or(Answer::Accepted, Answer::Ignored)
    }
}

/// Where a webhook's event type was taken from.
enum EventFrom {
    Flag,
    Sidecar,
    FileName,
}

/// The token `/events` files are sent with.
fn events_token(options: &Options) -> Result<String, ReplayError> {
    use changehub::http::bearer::{LocalKey, LocalKeyError};
    if let Some(t) = options.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_owned());
    }
    let key = LocalKey::existing(&options.db).map_err(|e| match e {
        LocalKeyError::Missing { path } => ReplayError::NoToken { key: path.display().to_string() },
        other => ReplayError::Token(other.to_string()),
    })?;
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

/// The file holding the headers captured with `file`: `<file>.headers`.
fn sidecar_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".headers");
    PathBuf::from(name)
}

/// Captured headers, one `Name: value` a line, as GitHub's "Recent
/// Deliveries" view or `curl -D` shows them. Blank lines, `#` comments, a
/// request or status line (`POST /hook HTTP/1.1`) and GitHub's `Request URL`
/// and `Request method` lines are skipped; any other line is an error (its number).
fn parse_headers(text: &str) -> Result<HeaderMap, usize> {
    let mut headers = HeaderMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let skipped = line.is_empty()
            || line.starts_with('#')
            || line.contains(" HTTP/")
            || line.starts_with("HTTP/")
            || line.starts_with("Request ");
        if skipped {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(i + 1)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| i + 1)?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| i + 1)?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The event type of a webhook `file` from `origin`, and where it came from:
/// `--event`, else the sidecar's event header, else the file name. `None` for
/// senders that name the type in the body (PagerDuty, incident.io, Alertmanager).
async fn event_type(
    file: &Path,
    origin: Origin,
    flag: Option<&str>,
) -> Result<Option<(String, EventFrom)>, ReplayError> {
    let Some(header) = ingest::event_header(origin) else {
        return match flag {
            None => Ok(None),
            Some(_) => Err(ReplayError::EventFlag {
                path: file.display().to_string(),
                why: format!("{} names it in the body", origin.as_str()),
            }),
        };
    };
    if let Some(event) = flag {
        return Ok(Some((event.to_owned(), EventFrom::Flag)));
    }
    let sidecar = sidecar_of(file);
    let path = sidecar.display().to_string();
    match tokio::fs::read_to_string(&sidecar).await {
        Ok(text) => {
            let headers = parse_headers(&text).map_err(|line| ReplayError::Sidecar { path: path.clone(), line })?;
            let event = headers.get(header).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
            let event = event.ok_or(ReplayError::SidecarEvent { path, header })?;
            Ok(Some((event.to_owned(), EventFrom::Sidecar)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            Ok(Some((stem.split('.').next().unwrap_or(stem).to_owned(), EventFrom::FileName)))
        }
        Err(source) => Err(ReplayError::Read { path, source }),
    }
}

/// The request for one file, and where its event type came from (webhooks of GitHub and GitLab).
async fn request(
    client: &reqwest::Client,
    options: &Options,
    secrets: &StaticSecrets,
    file: &Path,
    bytes: &[u8],
) -> Result<(reqwest::RequestBuilder, Option<EventFrom>), Box<dyn std::error::Error>> {
    let base = options.url.trim_end_matches('/');
    let path = file.display().to_string();
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| ReplayError::Json { path: path.clone(), source })?;
    if ["source", "detail-type", "detail"].iter().all(|k| value.get(k).is_some()) {
        if options.event.is_some() {
            let why = "this is an EventBridge event, whose detail-type is its type".into();
            return Err(ReplayError::EventFlag { path, why }.into());
        }
        let request = client.post(format!("{base}/events")).bearer_auth(events_token(options)?);
        return Ok((request.header("content-type", "application/json"), None));
    }
    let origin = origin_of(file, options.source).ok_or_else(|| ReplayError::Shape { path: path.clone() })?;
    let event = event_type(file, origin, options.event.as_deref()).await?;
    let secret = secrets
        .secrets(&options.tenant, origin)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ReplayError::NoSecret { path: path.clone(), origin })?;
    let delivery =
        if options.fresh_ids { uuid::Uuid::now_v7().to_string() } else { hex::encode(&Sha256::digest(bytes)[..16]) };
    let (event, from) = event.map_or((String::new(), None), |(e, from)| (e, Some(from)));
    let headers = sign::delivery(origin, &secret, &event, &delivery, bytes, chrono::Utc::now());
    let route = if options.tenant.as_str() == "default" {
        format!("{base}/webhooks/{}", origin.as_str())
    } else {
        format!("{base}/tenants/{}/webhooks/{}", options.tenant, origin.as_str())
    };
    // The signed headers, content-type included.
    Ok((client.post(route).headers(headers), from))
}

pub async fn run(options: &Options, files: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let secrets = StaticSecrets::from_env()?;
    let mut tally = Tally { total: files.len(), refused: 0, ignored: 0 };
    for file in files {
        let path = file.display().to_string();
        let bytes = tokio::fs::read(file).await.map_err(|source| ReplayError::Read { path: path.clone(), source })?;
        let (request, event_from) = request(&client, options, &secrets, file, &bytes).await?;
        let response = request.body(bytes).send().await.map_err(|source| ReplayError::Send {
            path: path.clone(),
            url: options.url.clone(),
            source,
        })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        println!("{path}: {} {body}", status.as_u16());
        match Answer::of(status, &body) {
            Answer::Accepted => {}
            Answer::Refused => tally.refused += 1,
            Answer::Ignored(kind) => {
                tally.ignored += 1;
                if !options.allow_ignored && matches!(event_from, Some(EventFrom::FileName)) {
                    eprintln!(
                        "{path}: the hub ignores event type {kind:?}, taken from the file name; if that is not \
                         its type, pass --event TYPE or put the captured headers in {}",
                        sidecar_of(file).display()
                    );
                }
            }
        }
    }
    if tally.refused > 0 || (tally.ignored > 0 && !options.allow_ignored) {
        return Err(ReplayError::NotAccepted(tally).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_headers_parse_as_github_shows_them() {
        let text = "Request URL: https://hub.example/webhooks/github\nRequest method: POST\n\
                    Accept: */*\ncontent-type: application/json\nX-GitHub-Event: push\n\n# a comment\n";
        let headers = parse_headers(text).expect("parses");
        assert_eq!(headers.get("x-github-event").and_then(|v| v.to_str().ok()), Some("push"));
        assert_eq!(headers.len(), 3);
        let curl = "POST /webhooks/gitlab HTTP/1.1\r\nX-Gitlab-Event: Push Hook\r\n\r\n";
        assert_eq!(
            parse_headers(curl).expect("parses").get("x-gitlab-event").map(|v| v.as_bytes()),
            Some(&b"Push Hook"[..])
        );
    }

    #[test]
    fn a_line_that_is_not_a_header_is_named_by_its_number() {
        assert_eq!(parse_headers("X-GitHub-Event: push\njust some text\n").err(), Some(2));
        assert_eq!(parse_headers("Bad Name: x\n").err(), Some(1));
    }

    #[test]
    fn answers_are_accepted_ignored_or_refused() {
        use reqwest::StatusCode;
        assert!(matches!(Answer::of(StatusCode::ACCEPTED, r#"{"accepted":1}"#), Answer::Accepted));
        assert!(matches!(Answer::of(StatusCode::OK, r#"{"duplicate":true}"#), Answer::Accepted));
        assert!(matches!(Answer::of(StatusCode::OK, r#"{"ignored":"star"}"#), Answer::Ignored(k) if k == "star"));
        assert!(matches!(Answer::of(StatusCode::UNAUTHORIZED, r#"{"error":{}}"#), Answer::Refused));
    }

    #[test]
    fn the_summary_counts_refused_and_ignored_files() {
        let t = |refused, ignored| Tally { total: 5, refused, ignored }.to_string();
        assert_eq!(t(1, 0), "of 5 sent, 1 file was refused");
        assert_eq!(
            t(0, 2),
            "of 5 sent, 2 files were ignored (an event type the hub does not use; --allow-ignored accepts those)"
        );
        assert!(t(2, 1).starts_with("of 5 sent, 2 files were refused and 1 ignored"));
    }
}
