//! `changehub gate`: a pipeline step that asks the hub's deployment gate
//! (`POST /gates/deployments`) and waits for its answer.
//!
//! Each ask is a long poll (`?wait=`, at most [`MAX_HELD`]): `changehub
//! serve` holds a pending answer and answers as soon as it turns. A hub that
//! cannot hold one (the api Lambda behind API Gateway answers at once) is
//! asked again after a pause that grows from [`FIRST_PAUSE`] to
//! [`LONGEST_PAUSE`]. Exit status: 0 allowed, 1 refused, 2 still pending at
//! `--timeout`, 3 a usage or connection error; one line on stderr says why.

use serde::Deserialize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The longest one ask holds (the hub caps it below its request timeout).
const MAX_HELD: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// Beyond the wait, how long one ask may take on the wire.
const SLACK: Duration = Duration::from_secs(10);

/// The exit statuses.
pub const ALLOWED: u8 = 0;
pub const REFUSED: u8 = 1;
pub const TIMED_OUT: u8 = 2;
pub const FAILED: u8 = 3;

/// What `changehub gate` asks.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The hub's base URL (the API Gateway URL on AWS).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CHANGEHUB_URL")]
    pub url: String,
    /// A bearer token: a pipeline's (a group holding the ingest role) or a person's.
    #[arg(long, env = "CHANGEHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The catalog service deployed.
    #[arg(long)]
    pub service: String,
    /// Where it deploys (production is gated; other environments are recorded only).
    #[arg(long)]
    pub environment: String,
    /// The version deployed (a tag, a build number); this or --sha.
    #[arg(long = "version", value_name = "VERSION", required_unless_present = "sha")]
    pub deployed_version: Option<String>,
    /// The commit deployed; this or --version.
    #[arg(long)]
    pub sha: Option<String>,
    /// The change the deployment belongs to; without it the hub finds the service's change.
    #[arg(long)]
    pub change: Option<String>,
    /// How long to wait for a pending answer to turn (e.g. 30s, 10m, 1h); 0s: ask once.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub timeout: Duration,
    /// Print the hub's last answer (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" => Ok(Duration::ZERO),
        s => humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration such as 30s or 10m: {e}")),
    }
}

#[derive(Debug, thiserror::Error)]
enum GateError {
    #[error("no token: pass --token or set CHANGEHUB_TOKEN (locally: changehub token --user NAME --groups GROUP)")]
    NoToken,
    #[error("cannot reach the hub at {url}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the hub refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the hub's answer is not a gate decision: {0}")]
    Answer(String),
}

/// The part of the hub's answer the command reads.
#[derive(Debug, Deserialize)]
struct Decision {
    status: String,
    code: String,
    reason: String,
}

/// What one ask came to.
enum Asked {
    Decided(Decision, serde_json::Value),
    /// The hub is busy (429, 502, 503, 504): ask again after a pause.
    Busy(String),
}

pub async fn run(args: GateArgs) -> ExitCode {
    match gate(&args).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("changehub gate: error: {}", crate::report(&e).trim_start_matches("error: ").replace('\n', " "));
            ExitCode::from(FAILED)
        }
    }
}

async fn gate(args: &GateArgs) -> Result<u8, GateError> {
    let token = args.token.clone().filter(|t| !t.trim().is_empty()).ok_or(GateError::NoToken)?;
    let body = serde_json::json!({
        "service": args.service, "environment": args.environment, "version": args.deployed_version,
        "sha": args.sha, "change": args.change,
    });
    let http = reqwest::Client::new();
    let url = format!("{}/gates/deployments", args.url.trim_end_matches('/'));
    let deadline = Instant::now() + args.timeout;
    let mut pause = FIRST_PAUSE;
    let mut said = String::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(MAX_HELD);
        let asked_at = Instant::now();
        let (line, last) = match ask(&http, &url, &token, &body, wait).await? {
            Asked::Decided(d, json) => {
                let line = format!("{} ({}): {}", d.status, d.code, d.reason);
                let exit = match d.status.as_str() {
                    "allowed" => Some(ALLOWED),
                    "refused" => Some(REFUSED),
                    "pending" => None,
                    other => return Err(GateError::Answer(format!("unknown status {other:?}"))),
                };
                if let Some(exit) = exit {
                    finish(args, &line, &json);
                    return Ok(exit);
                }
                (line, Some(json))
            }
            Asked::Busy(why) => (format!("pending: the hub is busy ({why})"), None),
        };
        if Instant::now() >= deadline {
            finish(
                args,
                &format!("timed out after {}: {line}", humantime::format_duration(args.timeout)),
                &last.unwrap_or_default(),
            );
            return Ok(TIMED_OUT);
        }
        if line != said {
            eprintln!("changehub gate: waiting: {line}");
            said = line;
        }
        // A hub that held the ask answered as things changed: ask again at
        // once. One that answered at once (it cannot hold) is asked after a pause.
        if asked_at.elapsed() < wait / 2 {
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

fn finish(args: &GateArgs, line: &str, json: &serde_json::Value) {
    if args.json {
        println!("{json}");
    }
    eprintln!("changehub gate: {line}");
}

async fn ask(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    wait: Duration,
) -> Result<Asked, GateError> {
    let sent = http
        .post(format!("{url}?wait={}s", wait.as_secs()))
        .bearer_auth(token)
        .json(body)
        .timeout(wait + SLACK)
        .send()
        .await
        .map_err(|source| GateError::Send { url: url.to_owned(), source })?;
    let status = sent.status();
    let text = sent.text().await.map_err(|source| GateError::Send { url: url.to_owned(), source })?;
    if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
        return Ok(Asked::Busy(status.to_string()));
    }
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| GateError::Answer(e.to_string()))?;
    if !status.is_success() {
        let message = json["error"]["message"].as_str().unwrap_or(&text).to_owned();
        return Err(GateError::Refused { status: status.as_u16(), message });
    }
    let decision = serde_json::from_value(json.clone()).map_err(|e| GateError::Answer(e.to_string()))?;
    Ok(Asked::Decided(decision, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_durations_with_a_unit() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert!(duration("soon").is_err());
    }
}
