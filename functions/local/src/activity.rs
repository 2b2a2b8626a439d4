//! `changehub activity`: the hub events the hub accepted (`GET /activity`),
//! newest first, as a table.

use changehub::domain::catalog::Span;
use changehub::ports::Activity;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::table;

#[derive(Debug, thiserror::Error)]
pub enum ActivityCliError {
    #[error(
        "no token: pass --token or set CHANGEHUB_TOKEN (locally: changehub token --user NAME --groups GROUP, any group the catalog gives a role)"
    )]
    NoToken,
    #[error("--{flag}: {value:?} is neither an RFC 3339 time (2026-12-01T22:00:00Z) nor a duration ago (30m, 4h, 2d)")]
    Time { flag: &'static str, value: String },
    #[error("{url} is not a URL: {message}")]
    Url { url: String, message: String },
    #[error("cannot reach the hub at {url}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the hub answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the hub's answer is not an activity page: {0}")]
    Body(#[source] reqwest::Error),
}

/// What `changehub activity` was asked for.
pub struct Options {
    pub url: String,
    pub token: Option<String>,
    pub service: Option<String>,
    pub source: Option<String>,
    pub detail_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Follow every `next_cursor` to the end.
    pub all: bool,
    /// Print JSON instead of a table.
    pub json: bool,
}

/// A page of `GET /activity`.
#[derive(Debug, Serialize, Deserialize)]
struct ActivityPage {
    activity: Vec<Activity>,
    next_cursor: Option<String>,
}

pub async fn run(options: &Options) -> Result<(), ActivityCliError> {
    let token = options.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).ok_or(ActivityCliError::NoToken)?;
    let filters = filters(options, Utc::now())?;
    let client = reqwest::Client::new();
    let mut all = ActivityPage { activity: vec![], next_cursor: options.cursor.clone() };
    loop {
        let page = fetch(&client, &options.url, token, &filters, all.next_cursor.as_deref()).await?;
        all.activity.extend(page.activity);
        all.next_cursor = page.next_cursor;
        if !options.all || all.next_cursor.is_none() {
            break;
        }
    }
    if options.json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return Ok(());
    }
    if all.activity.is_empty() {
        println!("no accepted events{}", if all.next_cursor.is_some() { " on this page" } else { "" });
    } else {
        print!("{}", render(&all.activity));
    }
    if let Some(cursor) = &all.next_cursor {
        println!("more: run again with --cursor {cursor} (or --all for every page)");
    }
    Ok(())
}

/// The query parameters other than the cursor; `--since`/`--until` given
/// as durations are counted back from `now`.
fn filters(options: &Options, now: DateTime<Utc>) -> Result<Vec<(&'static str, String)>, ActivityCliError> {
    let time = |flag: &'static str, value: &Option<String>| -> Result<Option<String>, ActivityCliError> {
        let Some(value) = value.as_deref().map(str::trim) else { return Ok(None) };
        let at = match DateTime::parse_from_rfc3339(value) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => Span::parse(value)
                .ok()
                .and_then(|ago| now.checked_sub_signed(ago.chrono()))
                .ok_or_else(|| ActivityCliError::Time { flag, value: value.to_owned() })?,
        };
        Ok(Some(at.to_rfc3339_opts(SecondsFormat::Secs, true)))
    };
    let pairs = [
        ("service", options.service.clone()),
        ("source", options.source.clone()),
        ("type", options.detail_type.clone()),
        ("since", time("since", &options.since)?),
        ("until", time("until", &options.until)?),
        ("limit", options.limit.map(|l| l.to_string())),
    ];
    Ok(pairs.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))).collect())
}

async fn fetch(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    filters: &[(&'static str, String)],
    cursor: Option<&str>,
) -> Result<ActivityPage, ActivityCliError> {
    let endpoint = format!("{}/activity", base.trim_end_matches('/'));
    let params = filters.iter().map(|(k, v)| (*k, v.as_str())).chain(cursor.map(|c| ("cursor", c)));
    let url = reqwest::Url::parse_with_params(&endpoint, params)
        .map_err(|e| ActivityCliError::Url { url: endpoint.clone(), message: e.to_string() })?;
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|source| ActivityCliError::Send { url: endpoint.clone(), source })?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("no error message");
        return Err(ActivityCliError::Refused { status: status.as_u16(), message: message.to_owned() });
    }
    response.json().await.map_err(ActivityCliError::Body)
}

/// The rows as a table: time, type, source, external id, service (or why
/// none), changes, delivery.
fn render(rows: &[Activity]) -> String {
    let header = ["TIME", "TYPE", "SOURCE", "EXTERNAL ID", "SERVICE", "CHANGES", "DELIVERY"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            let service = match (&a.service, &a.service_reason) {
                (Some(s), _) => s.clone(),
                (None, Some(reason)) => format!("- ({reason})"),
                (None, None) => "-".to_owned(),
            };
            let changes = if a.change_ids.is_empty() { "-".to_owned() } else { a.change_ids.join(",") };
            vec![
                a.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                a.detail_type.clone(),
                a.source.strip_prefix("changehub.").unwrap_or(&a.source).to_owned(),
                a.external_id.clone(),
                service,
                changes,
                a.delivery_id.clone(),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            url: "http://127.0.0.1:8080".into(),
            token: Some("t".into()),
            service: Some("payments".into()),
            source: None,
            detail_type: Some("Alert Firing".into()),
            since: Some("2h".into()),
            until: Some("2026-12-01T23:00:00+01:00".into()),
            limit: Some(20),
            cursor: None,
            all: false,
            json: false,
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T22:00:00Z").expect("time").with_timezone(&Utc);
        let pairs = filters(&options(), now).expect("valid");
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("service", "payments"),
                ("type", "Alert Firing"),
                ("since", "2026-12-01T20:00:00Z"),
                ("until", "2026-12-01T22:00:00Z"),
                ("limit", "20"),
            ]
        );
        let bad = Options { since: Some("yesterday-ish".into()), ..options() };
        let err = filters(&bad, now).expect_err("not a time").to_string();
        assert!(err.starts_with("--since: \"yesterday-ish\""), "{err}");
    }

    #[test]
    fn a_row_without_a_service_says_why() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T22:10:00Z").expect("time").with_timezone(&Utc);
        let row = Activity {
            event_id: "github-ab-0".into(),
            detail_type: "Deployment Status Changed".into(),
            source: "changehub.github".into(),
            external_id: "42".into(),
            service: None,
            service_reason: Some("no catalog mapping for repository acme/x".into()),
            change_ids: vec![],
            occurred_at: at,
            received_at: at,
            delivery_id: "d-1".into(),
            expires_at: at,
            decision: None,
        };
        let table = render(&[row]);
        let line = table.lines().nth(1).expect("a row");
        assert_eq!(
            line,
            "2026-12-01T22:10:00Z  Deployment Status Changed  github  42           \
             - (no catalog mapping for repository acme/x)  -        d-1"
        );
    }
}
