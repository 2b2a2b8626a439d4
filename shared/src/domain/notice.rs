//! Telling people that an incident was tagged change-related: what the
//! notice holds (the incident, the suspected change, why it is suspected)
//! and the texts made of it — the summary, a PagerDuty note, a GitHub
//! comment. Pure and deterministic: every time shown is the events' own
//! (the incident's start, the change's implementation), never the time of
//! sending, so a retry or a replay says exactly the same.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::Span;
use super::change::{Change, ChangeType};
use super::correlation::{Implementation, Outcome, Reason, RelatedChange};
use super::ids::{ChangeId, ServiceName, TenantId};

/// The longest subject a notice gets (SNS subjects are under 100 characters).
pub const MAX_SUBJECT_CHARS: usize = 99;

/// One incident tagged change-related because of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagNotice {
    pub tenant: TenantId,
    pub incident: NoticeIncident,
    pub change: NoticeChange,
    pub suspicion: Suspicion,
}

/// The incident, as its record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeIncident {
    /// Where it came from: `pagerduty`, `incidentio`, `alertmanager`, `aws`.
    pub source: String,
    /// The source's own id (for PagerDuty, the incident id its REST API takes).
    pub external_id: String,
    /// The hub's id of the incident record.
    pub id: String,
    pub title: String,
    pub service: ServiceName,
    /// The source's severity or priority (`P1`, `SEV2`, `critical`), if it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default)]
    pub major: bool,
    /// When it started, by the source's clock.
    pub started_at: DateTime<Utc>,
    /// Where people see it (the source's incident page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The suspected change, as its record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeChange {
    pub id: ChangeId,
    pub title: String,
    pub requester: String,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub environment: String,
    pub services: Vec<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<Implementation>,
    /// Where the change came from, when a deployment opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<NoticeOrigin>,
    /// Where people see the change in the hub, when the hub has a public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The deployment or pull request behind a change, as far as known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoticeOrigin {
    /// `owner/name` on GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The pull request's, deployment's or run's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who merged or deployed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// Why the change is suspected (from [`RelatedChange`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspicion {
    pub reasons: Vec<Reason>,
    pub confidence: f64,
    pub explanation: String,
}

impl Suspicion {
    pub fn of(related: &RelatedChange) -> Suspicion {
        Suspicion {
            reasons: related.reasons.clone(),
            confidence: related.confidence,
            explanation: related.explanation.clone(),
        }
    }
}

impl NoticeChange {
    /// The change record's part; the caller adds its origin and link.
    pub fn of(change: &Change) -> NoticeChange {
        NoticeChange {
            id: change.id,
            title: change.title.clone(),
            requester: change.requester.clone(),
            change_type: change.change_type,
            environment: change.environment.clone(),
            services: change.services.clone(),
            implementation: change.implementation,
            origin: None,
            link: None,
        }
    }

    /// Who made it: whoever deployed it when known, else its requester.
    pub fn author(&self) -> &str {
        self.origin.as_ref().and_then(|o| o.actor.as_deref()).unwrap_or(&self.requester)
    }
}

/// Where a GitHub comment goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubThread {
    PullRequest(u64),
    Commit(String),
}

impl TagNotice {
    /// `14:05 UTC`-style times are the events' own; a whole timestamp is `2026-03-02 14:05 UTC`.
    fn at(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// `P1`, or `unknown severity`.
    pub fn severity(&self) -> &str {
        self.incident.severity.as_deref().unwrap_or("unknown severity")
    }

    /// A one-line subject under 100 characters:
    /// `Change-related incident on payments (P1): Checkout errors`.
    pub fn subject(&self) -> String {
        let major = if self.incident.major { "Major change-related" } else { "Change-related" };
        let subject = format!(
            "{major} incident on {} ({}): {}",
            self.incident.service,
            quoted(self.severity()),
            quoted(&self.incident.title)
        );
        truncate(&subject, MAX_SUBJECT_CHARS)
    }

    /// When the change ran, relative to the incident: `38 min after
    /// change C 'Upgrade DB' by alice completed`.
    fn timing(&self) -> String {
        let c = &self.change;
        let change = format!("change {} '{}' by {}", c.id, one_line(&c.title), c.author());
        let started = self.incident.started_at;
        match c.implementation {
            Some(Implementation::Finished { outcome, .. }) => {
                let ended = c.implementation.and_then(|i| i.ended_at()).unwrap_or(started);
                let verb = match outcome {
                    Outcome::Succeeded => "completed",
                    Outcome::Failed => "failed",
                    Outcome::RolledBack => "was rolled back",
                };
                format!("{} after {change} {verb} (at {})", gap(started - ended), Self::at(ended))
            }
            Some(Implementation::Ongoing { started_at }) => {
                format!("while {change} was being implemented (since {})", Self::at(started_at))
            }
            None => format!("near {change}"),
        }
    }

    /// The links people follow, in order: the incident, the change, its origin.
    pub fn links(&self) -> Vec<&str> {
        let origin = self.change.origin.as_ref().and_then(|o| o.url.as_deref());
        [self.incident.link.as_deref(), self.change.link.as_deref(), origin].into_iter().flatten().collect()
    }

    fn reasons(&self) -> String {
        let reasons: Vec<String> = self.suspicion.reasons.iter().map(|r| r.as_str().replace('_', " ")).collect();
        if reasons.is_empty() { "timing".to_owned() } else { reasons.join(", ") }
    }

    /// The human summary: which change, who made it, when, why it is suspected, links.
    pub fn summary(&self) -> String {
        let i = &self.incident;
        let major = if i.major { "Major incident" } else { "Incident" };
        let mut text = format!(
            "{major} '{}' on {} ({}) started {}, {}; suspected because: {}; confidence {:.2}.",
            quoted(&i.title),
            i.service,
            quoted(self.severity()),
            Self::at(i.started_at),
            quoted(&self.timing()),
            self.reasons(),
            self.suspicion.confidence,
        );
        let links: Vec<String> =
            self.links().into_iter().map(|l| web_url(l).map_or_else(|| quoted(l), str::to_owned)).collect();
        if !links.is_empty() {
            text.push_str(" Links: ");
            text.push_str(&links.join(" "));
        }
        text
    }

    /// The note added to the PagerDuty incident (plain text).
    pub fn pagerduty_note(&self) -> String {
        let mut note = format!("changehub: this incident looks change-related.\n{}", self.summary());
        if !self.suspicion.explanation.is_empty() {
            note.push_str("\nWhy: ");
            note.push_str(&quoted(&self.suspicion.explanation));
        }
        note
    }

    /// The incident id PagerDuty's REST API takes, when the incident came from PagerDuty.
    pub fn pagerduty_incident(&self) -> Option<&str> {
        (self.incident.source == "pagerduty" && !self.incident.external_id.is_empty())
            .then_some(self.incident.external_id.as_str())
    }

    /// The repository and thread a GitHub comment goes to: the pull
    /// request when known, else the deployed commit.
    pub fn github_thread(&self) -> Option<(&str, GithubThread)> {
        let origin = self.change.origin.as_ref()?;
        let repository = origin.repository.as_deref().filter(|r| r.split('/').count() == 2)?;
        let thread = match (origin.pull_request, origin.sha.as_deref()) {
            (Some(number), _) => GithubThread::PullRequest(number),
            (None, Some(sha)) if !sha.is_empty() => GithubThread::Commit(sha.to_owned()),
            _ => return None,
        };
        Some((repository, thread))
    }

    /// The comment on the pull request or commit (GitHub markdown).
    pub fn github_comment(&self) -> String {
        let i = &self.incident;
        let title = match i.link.as_deref().and_then(web_url) {
            Some(url) => format!("[{}]({})", markdown(&i.title), url.replace('(', "%28").replace(')', "%29")),
            None => markdown(&i.title),
        };
        let mut lines = vec![
            format!("### {}ncident {title} may have been caused by this change", if i.major { "Major i" } else { "I" }),
            String::new(),
            format!(
                "- **Incident**: on `{}` ({}), started {}",
                i.service,
                markdown(self.severity()),
                Self::at(i.started_at)
            ),
            format!("- **Change**: {}", markdown(&self.timing())),
            format!("- **Suspected because**: {}", self.reasons()),
            format!("- **Confidence**: {:.2}", self.suspicion.confidence),
        ];
        if !self.suspicion.explanation.is_empty() {
            lines.push(format!("- **Why**: {}", markdown(&self.suspicion.explanation)));
        }
        let links: Vec<String> =
            self.links().into_iter().map(|l| web_url(l).map_or_else(|| markdown(l), str::to_owned)).collect();
        if !links.is_empty() {
            lines.push(format!("- **Links**: {}", links.join(" ")));
        }
        lines.push(String::new());
        lines.push(format!("<sub>Posted by changehub for change `{}`.</sub>", self.change.id));
        lines.join("\n")
    }
}

/// How long before the incident, as people read it (`38 min`, `2 h 5 min`);
/// none is `0 s`.
fn gap(d: chrono::Duration) -> String {
    Span::new(d.to_std().unwrap_or_default()).for_people()
}

/// Text on one line: control characters (line breaks included) become spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// At most `max` characters, ending in `...` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let kept: String = s.chars().take(max - 3).collect();
    format!("{}...", kept.trim_end())
}

/// Follows every `@` of text quoted from outside, so that `@someone` or
/// `@org/team` in a title reads the same but mentions nobody (on GitHub, or
/// wherever a note or notification is shown).
const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// Text from outside, quoted in plain text: on one line, and mentioning no one.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        out.push(c);
        if c == '@' {
            out.push(ZERO_WIDTH_JOINER);
        }
    }
    out
}

/// A link from outside that is an `http(s)` URL with nothing that could end
/// it early (spaces, quotes, angle brackets, backticks); anything else is
/// shown as quoted text, not as a link.
fn web_url(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"))?;
    let breaks = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '`' | '\\');
    (!rest.is_empty() && !rest.chars().any(breaks)).then_some(s)
}

/// Text from outside shown literally in markdown: quoted (on one line,
/// mentioning no one), its markup characters escaped.
fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in quoted(s).chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '!' | '&') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).single().expect("time")
    }

    pub(crate) fn change_id() -> ChangeId {
        ChangeId::parse("0195f3a2-7c00-7000-8000-000000000001").expect("change id")
    }

    /// The example: P1 on payments, 38 minutes after a failed DB upgrade by alice.
    pub(crate) fn notice() -> TagNotice {
        TagNotice {
            tenant: TenantId::parse("acme").expect("tenant"),
            incident: NoticeIncident {
                source: "pagerduty".into(),
                external_id: "PT4KHLK".into(),
                id: "inc-1".into(),
                title: "Checkout errors".into(),
                service: ServiceName::parse("payments").expect("service"),
                severity: Some("P1".into()),
                major: false,
                started_at: at(14, 5),
                link: Some("https://acme.pagerduty.com/incidents/PT4KHLK".into()),
            },
            change: NoticeChange {
                id: change_id(),
                title: "Upgrade DB".into(),
                requester: "alice".into(),
                change_type: ChangeType::Normal,
                environment: "production".into(),
                services: vec![ServiceName::parse("payments").expect("service")],
                implementation: Some(Implementation::Finished {
                    started_at: at(13, 20),
                    ended_at: at(13, 27),
                    outcome: Outcome::Failed,
                }),
                origin: None,
                link: None,
            },
            suspicion: Suspicion {
                reasons: vec![Reason::SameService, Reason::FailedDeployment],
                confidence: 0.85,
                explanation: "It changed payments and its deployment failed.".into(),
            },
        }
    }

    #[test]
    fn the_summary_says_which_change_who_when_why_and_links() {
        assert_eq!(
            notice().summary(),
            "Incident 'Checkout errors' on payments (P1) started 2026-03-02 14:05 UTC, 38 min after change \
             0195f3a2-7c00-7000-8000-000000000001 'Upgrade DB' by alice failed (at 2026-03-02 13:27 UTC); \
             suspected because: same service, failed deployment; confidence 0.85. \
             Links: https://acme.pagerduty.com/incidents/PT4KHLK"
        );
    }

    #[test]
    fn an_ongoing_change_and_a_deployer_are_described_as_such() {
        let mut n = notice();
        n.incident.major = true;
        n.incident.severity = None;
        n.change.implementation = Some(Implementation::Ongoing { started_at: at(13, 50) });
        n.change.origin = Some(NoticeOrigin {
            actor: Some("bob".into()),
            url: Some("https://github.com/acme/pay/pull/7".into()),
            ..NoticeOrigin::default()
        });
        n.change.link = Some("https://hub.example.com/changes/x".into());
        let summary = n.summary();
        assert!(
            summary.starts_with("Major incident 'Checkout errors' on payments (unknown severity) started"),
            "{summary}"
        );
        assert!(summary.contains("while change 0195f3a2-7c00-7000-8000-000000000001 'Upgrade DB' by bob was being implemented (since 2026-03-02 13:50 UTC)"), "{summary}");
        assert!(summary.ends_with(
            "Links: https://acme.pagerduty.com/incidents/PT4KHLK https://hub.example.com/changes/x https://github.com/acme/pay/pull/7"
        ));
    }

    #[test]
    fn gaps_read_as_people_read_durations() {
        assert_eq!(gap(chrono::Duration::seconds(30)), "30 s");
        assert_eq!(gap(chrono::Duration::seconds(416)), "6 min 56 s");
        assert_eq!(gap(chrono::Duration::minutes(185)), "3 h 5 min");
        assert_eq!(gap(chrono::Duration::minutes(-5)), "0 s", "a change that ended after the start has no gap");
    }

    #[test]
    fn subjects_stay_under_a_hundred_characters_on_one_line() {
        let mut n = notice();
        assert_eq!(n.subject(), "Change-related incident on payments (P1): Checkout errors");
        n.incident.title = format!("Line one\nline two {}", "é".repeat(200));
        let subject = n.subject();
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(subject.ends_with("...") && !subject.contains('\n'), "{subject}");
    }

    #[test]
    fn the_pagerduty_note_is_the_summary_with_the_explanation() {
        let note = notice().pagerduty_note();
        assert_eq!(
            note,
            format!(
                "changehub: this incident looks change-related.\n{}\nWhy: It changed payments and its deployment failed.",
                notice().summary()
            )
        );
        assert_eq!(notice().pagerduty_incident(), Some("PT4KHLK"));
        let mut other = notice();
        other.incident.source = "incidentio".into();
        assert_eq!(other.pagerduty_incident(), None);
    }

    #[test]
    fn the_github_comment_escapes_outside_text_and_names_the_change() {
        let mut n = notice();
        n.incident.title = "DB *down* [again]".into();
        assert_eq!(
            n.github_comment(),
            "### Incident [DB \\*down\\* \\[again\\]](https://acme.pagerduty.com/incidents/PT4KHLK) may have been caused by this change\n\
             \n\
             - **Incident**: on `payments` (P1), started 2026-03-02 14:05 UTC\n\
             - **Change**: 38 min after change 0195f3a2-7c00-7000-8000-000000000001 'Upgrade DB' by alice failed (at 2026-03-02 13:27 UTC)\n\
             - **Suspected because**: same service, failed deployment\n\
             - **Confidence**: 0.85\n\
             - **Why**: It changed payments and its deployment failed.\n\
             - **Links**: https://acme.pagerduty.com/incidents/PT4KHLK\n\
             \n\
             <sub>Posted by changehub for change `0195f3a2-7c00-7000-8000-000000000001`.</sub>"
        );
    }

    #[test]
    fn a_github_comment_goes_to_the_pull_request_else_the_commit() {
        let mut n = notice();
        assert_eq!(n.github_thread(), None);
        n.change.origin = Some(NoticeOrigin {
            repository: Some("acme/pay".into()),
            sha: Some("abc123".into()),
            ..NoticeOrigin::default()
        });
        assert_eq!(n.github_thread(), Some(("acme/pay", GithubThread::Commit("abc123".into()))));
        if let Some(o) = n.change.origin.as_mut() {
            o.pull_request = Some(42);
        }
        assert_eq!(n.github_thread(), Some(("acme/pay", GithubThread::PullRequest(42))));
        if let Some(o) = n.change.origin.as_mut() {
            o.repository = Some("not-a-repo".into());
        }
        assert_eq!(n.github_thread(), None);
    }
}
