//! The texts of a routed notification, one per template: technical (ids,
//! state, the window in UTC, links, commands), business (plain words, the
//! impact, times in the reader's time zone, one reference) and executive
//! (one line). Pure and deterministic: every time shown is the event's own,
//! never the time of sending, so a retry says exactly the same.

use chrono::{DateTime, Utc};

use super::{Audience, Recipient, Template, TimeZone};
use crate::domain::ids::ServiceName;
use crate::domain::notice::{one_line, truncate};
use crate::ports::notifier::{Fact, Link, Message};

/// The longest headline: what a Slack header block shows whole (the SNS
/// adapter cuts its subjects to 99 characters itself: `adapters::sns`).
pub const MAX_HEADLINE_CHARS: usize = 150;

/// What happened, whoever reads of it: the facts every text is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// The event type (`change_failed`).
    pub event: String,
    /// The technical headline (`[Change Failed] <id>: <title>`).
    pub headline: String,
    /// The one reference people quote: the change's id, a finding's.
    pub reference: String,
    /// The change or finding's title.
    pub title: String,
    pub services: Vec<ServiceName>,
    /// When it happened, by the event's own clock.
    pub at: DateTime<Utc>,
    /// The planned window, for a change.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Further facts for technical readers, in order (`State`: `failed`).
    pub facts: Vec<Fact>,
    /// Further lines for technical readers (a reason, a summary).
    pub details: Vec<String>,
    /// The impact in plain words, for business readers.
    pub impact: Option<String>,
    /// The change's page in the hub, when the hub's address is known; other links after it.
    pub links: Vec<Link>,
    /// Commands that help the approvers and escalation targets act.
    pub commands: Vec<String>,
}

/// What happened, in plain words after the title: `failed`, `is scheduled`.
fn plain(event: &str) -> String {
    match event {
        "change_submitted" => "was submitted for approval".into(),
        "change_approved" => "was approved".into(),
        "change_rejected" => "was rejected".into(),
        "change_scheduled" => "is scheduled".into(),
        "change_starting_soon" => "starts soon".into(),
        "change_implementing" => "is being carried out".into(),
        "change_completed" => "was completed".into(),
        "change_failed" => "failed".into(),
        "change_rolled_back" => "was rolled back".into(),
        "change_cancelled" => "was cancelled".into(),
        "approval_requested" => "is ready for the next approval".into(),
        "approval_reminder" => "waits for approval".into(),
        "approval_escalated" => "is overdue for approval".into(),
        "sla_breached" => "missed its approval deadline".into(),
        "change_related_incident" => "may have caused an incident".into(),
        "unauthorized_change" => "was made without an approved change".into(),
        "freeze_starting" => "a change freeze starts".into(),
        other => other.strip_prefix("change_").unwrap_or(other).replace('_', " "),
    }
}

/// Whether the event is about a change still to come: its window is what matters.
fn ahead(event: &str) -> bool {
    matches!(
        event,
        "change_submitted"
            | "change_approved"
            | "change_scheduled"
            | "change_starting_soon"
            | "approval_requested"
            | "approval_reminder"
            | "approval_escalated"
            | "sla_breached"
            | "change_cancelled"
            | "freeze_starting"
    )
}

/// `2026-12-01 21:00-22:00 UTC`, or both ends in full when they fall on different days.
pub fn utc_window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    if start.date_naive() == end.date_naive() {
        format!("{}-{} UTC", start.format("%Y-%m-%d %H:%M"), end.format("%H:%M"))
    } else {
        format!("{} - {} UTC", start.format("%Y-%m-%d %H:%M"), end.format("%Y-%m-%d %H:%M"))
    }
}

/// `Tuesday 1 December, 22:00` in `zone`, with its abbreviation (`CET`) when `zoned`.
fn local(t: DateTime<Utc>, zone: TimeZone, zoned: bool) -> String {
    let t = t.with_timezone(&zone.0);
    if zoned { t.format("%A %-d %B, %H:%M %Z").to_string() } else { t.format("%A %-d %B, %H:%M").to_string() }
}

/// The window as a reader in `zone` reads it: `Tuesday 1 December,
/// 22:00-23:00 CET`; across a day or a change of offset, both ends in full.
pub fn local_window(start: DateTime<Utc>, end: DateTime<Utc>, zone: TimeZone) -> String {
    let (s, e) = (start.with_timezone(&zone.0), end.with_timezone(&zone.0));
    let same_zone = s.format("%Z").to_string() == e.format("%Z").to_string();
    if s.date_naive() == e.date_naive() && same_zone {
        format!("{}-{}", local(start, zone, false), e.format("%H:%M %Z"))
    } else if same_zone {
        format!("{} - {}", local(start, zone, false), local(end, zone, true))
    } else {
        format!("{} - {}", local(start, zone, true), local(end, zone, true))
    }
}

fn services(list: &[ServiceName]) -> String {
    list.iter().map(ServiceName::as_str).collect::<Vec<_>>().join(", ")
}

/// The services `o` is about, in words: a freeze of none is of every
/// service; another event of none is about a resource no service claims.
fn scope(o: &Occurrence) -> String {
    match (o.services.is_empty(), o.event.as_str()) {
        (false, _) => services(&o.services),
        (true, "freeze_starting") => "every service".to_owned(),
        (true, _) => "no known service".to_owned(),
    }
}

fn fact(name: &str, value: impl Into<String>) -> Fact {
    Fact { name: name.to_owned(), value: value.into() }
}

/// The text `recipient` reads of `o`.
pub fn render(o: &Occurrence, recipient: &Recipient) -> Message {
    match recipient.template {
        Template::Technical => technical(o, recipient),
        Template::Business => business(o, recipient),
        Template::Executive => executive(o, recipient),
    }
}

/// When, for plain-words readers: the window for a change still to come, else the event's time.
fn when(o: &Occurrence, zone: TimeZone) -> String {
    match o.window {
        Some((start, end)) if ahead(&o.event) => local_window(start, end, zone),
        _ => local(o.at, zone, true),
    }
}

fn technical(o: &Occurrence, r: &Recipient) -> Message {
    let headline = match &r.notify {
        Some(to) => {
            let suffix = format!(" (to {})", one_line(to));
            let room = MAX_HEADLINE_CHARS.saturating_sub(suffix.chars().count()).max(10);
            format!("{}{suffix}", truncate(&o.headline, room))
        }
        None => truncate(&o.headline, MAX_HEADLINE_CHARS),
    };
    let mut lines = Vec::new();
    if r.audience == Audience::Dependents
        && let Some(own) = &r.service
    {
        let changes = match o.window {
            Some((start, end)) => format!("changes {}", utc_window(start, end)),
            None => format!("{} ({})", plain(&o.event), o.at.format("%Y-%m-%d %H:%M UTC")),
        };
        lines.push(format!("Your service {own} depends on {}, which {changes}.", scope(o)));
    }
    lines.extend(o.details.iter().cloned());
    if matches!(r.audience, Audience::Approvers | Audience::EscalateTo) {
        lines.extend(o.commands.iter().cloned());
    }
    let mut facts = vec![fact("Event", o.event.clone()), fact("Reference", o.reference.clone())];
    facts.extend(o.facts.iter().cloned());
    facts.push(fact("Services", scope(o)));
    if let Some((start, end)) = o.window {
        facts.push(fact("Window", utc_window(start, end)));
    }
    facts.push(fact("At", o.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    Message { headline, lines, facts, links: o.links.clone() }
}

fn business(o: &Occurrence, r: &Recipient) -> Message {
    let zone = r.time_zone;
    let title = one_line(&o.title);
    let headline = if o.event == "freeze_starting" {
        format!("A change freeze starts for {}: {}", scope(o), when(o, zone))
    } else {
        format!("{}: {title} {} ({})", scope(o), plain(&o.event), when(o, zone))
    };
    let mut lines = Vec::new();
    if let Some(own) = &r.service
        && !o.services.contains(own)
    {
        lines.push(format!("{own} depends on {}.", scope(o)));
    }
    if let Some(impact) = &o.impact {
        lines.push(impact.clone());
    }
    lines.push(format!("Times are {}.", zone.name()));
    let facts = vec![fact("When", when(o, zone)), fact("Services", scope(o)), fact("Reference", o.reference.clone())];
    Message {
        headline: truncate(&headline, MAX_HEADLINE_CHARS),
        lines,
        facts,
        links: o.links.iter().take(1).cloned().collect(),
    }
}

fn executive(o: &Occurrence, r: &Recipient) -> Message {
    let headline = if o.event == "freeze_starting" {
        format!("Change freeze starts for {} ({})", scope(o), when(o, r.time_zone))
    } else {
        let (title, what) = (one_line(&o.title), plain(&o.event));
        format!("{title} {what} ({}, {})", scope(o), when(o, r.time_zone))
    };
    Message::headline(truncate(&headline, MAX_HEADLINE_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("a time")
    }

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("service")
    }

    fn occurrence(event: &str) -> Occurrence {
        Occurrence {
            event: event.into(),
            headline: "[Change Scheduled] 0193-ab: Upgrade ledger DB".into(),
            reference: "0193-ab".into(),
            title: "Upgrade ledger DB".into(),
            services: vec![svc("ledger")],
            at: at(2026, 11, 30, 9, 15),
            window: Some((at(2026, 12, 1, 21, 0), at(2026, 12, 1, 22, 0))),
            facts: vec![fact("State", "scheduled")],
            details: vec!["Reason: quarterly upgrade".into()],
            impact: Some("Ledger may be unavailable for up to 1 h.".into()),
            links: vec![Link { label: "Change".into(), url: "https://hub.example.com/changes/0193-ab".into() }],
            commands: vec!["changehub changes --mine".into()],
        }
    }

    fn to(audience: Audience, template: Template, zone: &str, service: &str) -> Recipient {
        Recipient {
            audience,
            notify: Some("someone".into()),
            service: Some(svc(service)),
            template,
            time_zone: TimeZone::parse(zone).expect("zone"),
        }
    }

    #[test]
    fn technical_texts_carry_ids_the_utc_window_links_and_commands_for_approvers() {
        let m = render(&occurrence("change_scheduled"), &to(Audience::Approvers, Template::Technical, "UTC", "ledger"));
        assert_eq!(m.headline, "[Change Scheduled] 0193-ab: Upgrade ledger DB (to someone)");
        assert_eq!(m.lines, ["Reason: quarterly upgrade", "changehub changes --mine"]);
        let facts: Vec<(&str, &str)> = m.facts.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(
            facts,
            [
                ("Event", "change_scheduled"),
                ("Reference", "0193-ab"),
                ("State", "scheduled"),
                ("Services", "ledger"),
                ("Window", "2026-12-01 21:00-22:00 UTC"),
                ("At", "2026-11-30 09:15:00 UTC"),
            ]
        );
        assert_eq!(m.links[0].url, "https://hub.example.com/changes/0193-ab");
        let owners =
            render(&occurrence("change_scheduled"), &to(Audience::Owners, Template::Technical, "UTC", "ledger"));
        assert_eq!(owners.lines, ["Reason: quarterly upgrade"], "commands are for those asked to act");
    }

    #[test]
    fn dependents_are_told_their_dependency_changes() {
        let m =
            render(&occurrence("change_scheduled"), &to(Audience::Dependents, Template::Technical, "UTC", "payments"));
        assert_eq!(m.lines[0], "Your service payments depends on ledger, which changes 2026-12-01 21:00-22:00 UTC.");
    }

    #[test]
    fn business_texts_are_plain_words_in_the_readers_zone_with_one_reference() {
        let m = render(
            &occurrence("change_scheduled"),
            &to(Audience::Stakeholders, Template::Business, "Europe/Paris", "ledger"),
        );
        assert_eq!(m.headline, "ledger: Upgrade ledger DB is scheduled (Tuesday 1 December, 22:00-23:00 CET)");
        assert_eq!(m.lines, ["Ledger may be unavailable for up to 1 h.", "Times are Europe/Paris."]);
        let facts: Vec<(&str, &str)> = m.facts.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(
            facts,
            [("When", "Tuesday 1 December, 22:00-23:00 CET"), ("Services", "ledger"), ("Reference", "0193-ab")]
        );
        let ny = render(
            &occurrence("change_scheduled"),
            &to(Audience::Stakeholders, Template::Business, "America/New_York", "payments"),
        );
        assert_eq!(ny.headline, "ledger: Upgrade ledger DB is scheduled (Tuesday 1 December, 16:00-17:00 EST)");
        assert_eq!(ny.lines[0], "payments depends on ledger.");
        let failed = render(
            &occurrence("change_failed"),
            &to(Audience::Stakeholders, Template::Business, "Europe/Paris", "ledger"),
        );
        assert_eq!(
            failed.headline, "ledger: Upgrade ledger DB failed (Monday 30 November, 10:15 CET)",
            "the event's own time"
        );
    }

    #[test]
    fn a_window_across_a_daylight_saving_change_names_both_offsets() {
        let mut o = occurrence("change_scheduled");
        // Europe/Paris moves from CET to CEST at 01:00 UTC on 29 March 2026.
        o.window = Some((at(2026, 3, 29, 0, 30), at(2026, 3, 29, 1, 30)));
        let m = render(&o, &to(Audience::Stakeholders, Template::Business, "Europe/Paris", "ledger"));
        assert_eq!(m.facts[0].value, "Sunday 29 March, 01:30 CET - Sunday 29 March, 03:30 CEST");
        o.window = Some((at(2026, 7, 1, 21, 0), at(2026, 7, 1, 23, 30)));
        let summer = render(&o, &to(Audience::Stakeholders, Template::Business, "Europe/Paris", "ledger"));
        assert_eq!(summer.facts[0].value, "Wednesday 1 July, 23:00 - Thursday 2 July, 01:30 CEST");
    }

    #[test]
    fn executive_texts_are_one_line() {
        let m = render(
            &occurrence("change_rolled_back"),
            &to(Audience::Cab, Template::Executive, "Europe/London", "ledger"),
        );
        assert_eq!(m, Message::headline("Upgrade ledger DB was rolled back (ledger, Monday 30 November, 09:15 GMT)"));
        let freeze = render(&occurrence("freeze_starting"), &to(Audience::Cab, Template::Executive, "UTC", "ledger"));
        assert_eq!(freeze.headline, "Change freeze starts for ledger (Tuesday 1 December, 21:00-22:00 UTC)");
    }

    #[test]
    fn the_feed_reads_the_technical_headline_unaddressed_and_cut_to_a_chat_header() {
        let mut o = occurrence("change_failed");
        o.headline = format!("[Change Failed] 0193-ab: {}", "x".repeat(300));
        let feed = Recipient {
            notify: None,
            audience: Audience::Feed,
            ..to(Audience::Feed, Template::Technical, "UTC", "ledger")
        };
        let m = render(&o, &feed);
        assert_eq!(m.headline.chars().count(), MAX_HEADLINE_CHARS);
        let addressed = render(&o, &to(Audience::Owners, Template::Technical, "UTC", "ledger"));
        assert!(addressed.headline.ends_with("... (to someone)"), "{}", addressed.headline);
        assert!(addressed.headline.chars().count() <= MAX_HEADLINE_CHARS);
    }
}
