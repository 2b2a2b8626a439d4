//! `changehub changes`: a page of the tenant's changes (`GET /changes`) as
//! an aligned table.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The filters and page of `GET /changes`, as the command's flags give them.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub service: Option<String>,
    pub state: Option<String>,
    pub change_type: Option<String>,
    pub requester: Option<String>,
    pub approver: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u16>,
    pub cursor: Option<String>,
}

impl Query {
    /// The query string's pairs, in the API's names.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let given = [
            ("service", &self.service),
            ("state", &self.state),
            ("type", &self.change_type),
            ("requester", &self.requester),
            ("approver", &self.approver),
            ("from", &self.from),
            ("to", &self.to),
            ("cursor", &self.cursor),
        ];
        given.into_iter().filter_map(|(name, value)| value.as_deref().map(|v| (name, v))).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("no token: pass --token or set CHANGEHUB_TOKEN (locally: changehub token --user NAME --groups GROUP)")]
    NoToken,
    #[error("--url {url} is not a URL")]
    Url {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot reach the hub at {url}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the hub refused the listing ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the hub's answer is not a page of changes: {0}")]
    Answer(#[from] serde_json::Error),
}

/// A page of `GET /changes`, with what the table shows of each change.
#[derive(Debug, Deserialize)]
struct Page {
    changes: Vec<Row>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    state: String,
    #[serde(rename = "type")]
    change_type: String,
    services: Vec<String>,
    requester: String,
    planned_start: DateTime<Utc>,
    planned_end: DateTime<Utc>,
    #[serde(default)]
    risk: Option<Risk>,
}

#[derive(Debug, Deserialize)]
struct Risk {
    score: i64,
    level: String,
}

/// Fetches one page and prints it; the cursor of the next one, if any, last.
pub async fn list(url: &str, token: Option<String>, query: &Query) -> Result<(), Box<dyn std::error::Error>> {
    let token = token.filter(|t| !t.trim().is_empty()).ok_or(ChangesError::NoToken)?;
    let endpoint = format!("{}/changes", url.trim_end_matches('/'));
    let mut pairs = query.pairs();
    let limit = query.limit.map(|l| l.to_string());
    if let Some(limit) = &limit {
        pairs.push(("limit", limit));
    }
    let target = reqwest::Url::parse_with_params(&endpoint, &pairs)
        .map_err(|e| ChangesError::Url { url: endpoint.clone(), source: e.into() })?;
    let response = reqwest::Client::new()
        .get(target)
        .bearer_auth(token.trim())
        .send()
        .await
        .map_err(|source| ChangesError::Send { url: endpoint.clone(), source })?;
    let status = response.status();
    let body = response.text().await.map_err(|source| ChangesError::Send { url: endpoint.clone(), source })?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(ChangesError::Refused { status: status.as_u16(), message }.into());
    }
    let page: Page = serde_json::from_str(&body).map_err(ChangesError::Answer)?;
    print!("{}", render(&page));
    Ok(())
}

/// The page as a table: a header, one line per change, columns aligned;
/// then how to get the next page.
fn render(page: &Page) -> String {
    let mut out = String::new();
    if page.changes.is_empty() {
        out.push_str("no changes\n");
    } else {
        let header = ["ID", "STATE", "TYPE", "SERVICES", "REQUESTER", "WINDOW (UTC)", "RISK"].map(str::to_owned);
        let rows: Vec<[String; 7]> = page
            .changes
            .iter()
            .map(|c| {
                [
                    c.id.clone(),
                    c.state.clone(),
                    c.change_type.clone(),
                    c.services.join(","),
                    c.requester.clone(),
                    window(c.planned_start, c.planned_end),
                    c.risk.as_ref().map_or_else(|| "-".to_owned(), |r| format!("{} ({})", r.level, r.score)),
                ]
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("more: the same command with --cursor '{cursor}'\n"));
    }
    out
}

/// `2026-12-01 22:00–23:30`, or with the end's date when it is another day.
fn window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let end_format = if start.date_naive() == end.date_naive() { "%H:%M" } else { "%Y-%m-%d %H:%M" };
    format!("{}–{}", start.format("%Y-%m-%d %H:%M"), end.format(end_format))
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths: [usize; N] = std::array::from_fn(|i| header[i].chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, services: &[&str], start: &str, end: &str) -> Row {
        Row {
            id: id.into(),
            state: "submitted".into(),
            change_type: "normal".into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            requester: "alice@example.com".into(),
            planned_start: start.parse().expect("time"),
            planned_end: end.parse().expect("time"),
            risk: Some(Risk { score: 12, level: "medium".into() }),
        }
    }

    #[test]
    fn a_page_is_an_aligned_table_then_the_next_cursor() {
        let page = Page {
            changes: vec![
                row("0193-a", &["payments", "ledger"], "2026-12-01T22:00:00Z", "2026-12-01T23:30:00Z"),
                Row { risk: None, ..row("0193-bb", &["search"], "2026-12-01T23:00:00Z", "2026-12-02T01:00:00Z") },
            ],
            next_cursor: Some("CHG#x".into()),
        };
        let expected = "\
ID       STATE      TYPE    SERVICES         REQUESTER          WINDOW (UTC)                       RISK
0193-a   submitted  normal  payments,ledger  alice@example.com  2026-12-01 22:00–23:30             medium (12)
0193-bb  submitted  normal  search           alice@example.com  2026-12-01 23:00–2026-12-02 01:00  -
more: the same command with --cursor 'CHG#x'
";
        assert_eq!(render(&page), expected);
        assert_eq!(render(&Page { changes: vec![], next_cursor: None }), "no changes\n");
    }

    #[test]
    fn only_the_filters_given_are_sent_under_the_apis_names() {
        let q = Query { change_type: Some("emergency".into()), approver: Some("me".into()), ..Query::default() };
        assert_eq!(q.pairs(), [("type", "emergency"), ("approver", "me")]);
    }
}
