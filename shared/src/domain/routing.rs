//! Who hears of what: the catalog's `routing:` section and the resolution of
//! an event to its recipients. Pure: the catalog and the event's subject in,
//! the recipients out, each with the audience it is addressed as, the
//! group or person (`notify`), the service it is about, the template its
//! text is rendered from ([`render`]) and the time zone it reads times in.
//!
//! Every event also goes once to the `feed` (a technical text, no `notify`),
//! so that an archive or a subscriber that wants everything has one stream.
//! A group or person named by several audiences of one event gets one
//! message, as the first audience of [`Audience::PRECEDENCE`] that names it.

pub mod render;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, valid_group};
use super::ids::ServiceName;
use super::validation::Problems;

/// The most stakeholders a service may list.
pub const MAX_STAKEHOLDERS: usize = 20;

/// Event types routing knows, as the notification attribute `type` names
/// them: the shared vocabulary, then the other change mutations
/// (`change_` and their bus detail-type in snake case). `approval_requested`
/// is a level opening after another was decided: its approvers are asked.
pub const EVENT_TYPES: [&str; 32] = [
    "change_submitted",
    "approval_requested",
    "change_approved",
    "change_scheduled",
    "change_starting_soon",
    "change_completed",
    "change_failed",
    "change_rolled_back",
    "approval_reminder",
    "approval_escalated",
    "sla_breached",
    "change_related_incident",
    "unauthorized_change",
    "freeze_starting",
    "change_created",
    "change_rejected",
    "change_implementing",
    "change_closed",
    "change_cancelled",
    "change_approval_recorded",
    "change_checklist_item_done",
    "change_reviewed",
    "change_rescheduled",
    "change_peer_review_recorded",
    "change_edited",
    "change_reworked",
    "change_deployment_recorded",
    "change_incident_related",
    "change_incident_unrelated",
    "change_verifying",
    "change_suspect_cleared",
    "change_rollback_dispatched",
];

/// The event type of a change mutation's bus detail-type: `Change Rolled
/// Back` is `change_rolled_back`, `Approval Recorded` is
/// `change_approval_recorded`; the cadence's steps keep their own names
/// (`approval_reminder`, `approval_escalated`, `sla_breached`).
pub fn event_type_of(detail_type: &str) -> String {
    match detail_type {
        "Approval Reminder" => "approval_reminder".to_owned(),
        "Approval Escalated" => "approval_escalated".to_owned(),
        "Approval SLA Breached" => "sla_breached".to_owned(),
        other => {
            let rest = other.strip_prefix("Change ").unwrap_or(other);
            format!("change_{}", rest.split_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>().join("_"))
        }
    }
}

/// Who a notification is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Those who may decide the open approval level (or the step a reminder is for).
    Approvers,
    /// The open level's `escalate_to`.
    EscalateTo,
    /// The owner group of each service the event is about.
    Owners,
    /// Who asked for the change.
    Requester,
    /// The owner groups of the services that depend on the event's services (`depends_on`, reversed).
    Dependents,
    /// The tenant's change advisory board (or its admins when it names no CAB).
    Cab,
    /// The people and groups each service lists as its `stakeholders`.
    Stakeholders,
    /// Everything, once per event: archives and catch-all subscribers.
    Feed,
}

impl Audience {
    /// Which audience a group or person named by several is addressed as:
    /// the first listed. Those asked to act come first (approvers,
    /// escalation targets), then the service's owners, the requester, the
    /// dependents, the CAB, the stakeholders.
    pub const PRECEDENCE: [Audience; 8] = [
        Audience::Approvers,
        Audience::EscalateTo,
        Audience::Owners,
        Audience::Requester,
        Audience::Dependents,
        Audience::Cab,
        Audience::Stakeholders,
        Audience::Feed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Approvers => "approvers",
            Audience::EscalateTo => "escalate_to",
            Audience::Owners => "owners",
            Audience::Requester => "requester",
            Audience::Dependents => "dependents",
            Audience::Cab => "cab",
            Audience::Stakeholders => "stakeholders",
            Audience::Feed => "feed",
        }
    }

    /// The template an audience reads unless `routing.templates` says otherwise.
    pub fn default_template(self) -> Template {
        match self {
            Audience::Stakeholders => Template::Business,
            Audience::Cab => Template::Executive,
            _ => Template::Technical,
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// Ids, state, the window in UTC, links and commands.
    Technical,
    /// Plain words, the impact, the time in the reader's time zone, one reference.
    Business,
    /// One line.
    Executive,
}

/// An IANA time zone (`Europe/Paris`, `America/New_York`, `UTC`), the
/// whole database: readers live anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    pub const UTC: TimeZone = TimeZone(chrono_tz::Tz::UTC);

    pub fn parse(s: &str) -> Result<TimeZone, String> {
        chrono_tz::Tz::from_str(s.trim())
            .map(TimeZone)
            .map_err(|_| format!("{s:?} is not an IANA time zone such as Europe/Paris, America/New_York or UTC"))
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        TimeZone::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Someone with a stake in a service: told in plain words (by default) of
/// its scheduled changes, their outcome, and freezes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stakeholder {
    /// A group or a person, as subscribers filter on it (`notify`).
    pub notify: String,
    /// The zone their times are written in; `routing.time_zone` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<TimeZone>,
}

/// The catalog's `routing:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingPolicy {
    /// The zone times are written in for readers who name none (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<TimeZone>,
    /// The template each audience reads, over [`Audience::default_template`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<Audience, Template>,
    /// Who hears of each event type, over the default table
    /// ([`default_audiences`]); `[]` sends an event type to the feed only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, Vec<Audience>>,
}

/// Who hears of `event` when the catalog's `routing.rules` does not say.
pub fn default_audiences(event: &str) -> &'static [Audience] {
    use Audience::*;
    match event {
        "change_submitted" => &[Owners, Approvers],
        "change_approved" | "change_rejected" => &[Owners, Requester],
        "change_scheduled" | "change_starting_soon" => &[Owners, Requester, Dependents, Stakeholders],
        "change_implementing" | "change_verifying" => &[Owners, Dependents],
        "change_suspect_cleared" => &[Owners, Cab],
        "change_rollback_dispatched" => &[Owners, Requester],
        "change_completed" => &[Owners, Requester, Stakeholders],
        "change_failed" | "change_rolled_back" => &[Owners, Requester, Dependents, Stakeholders, Cab],
        "change_cancelled" => &[Owners, Dependents, Stakeholders],
        "approval_requested" | "approval_reminder" => &[Approvers],
        "approval_escalated" => &[EscalateTo],
        "sla_breached" => &[Cab, Owners, Requester],
        "change_related_incident" => &[Owners, Requester, Cab],
        "unauthorized_change" => &[Owners, Cab],
        "freeze_starting" => &[Owners, Stakeholders],
        _ => &[],
    }
}

impl RoutingPolicy {
    pub fn is_default(&self) -> bool {
        *self == RoutingPolicy::default()
    }

    /// Who hears of `event`: the catalog's rule, else the default table's.
    pub fn audiences(&self, event: &str) -> &[Audience] {
        self.rules.get(event).map_or_else(|| default_audiences(event), Vec::as_slice)
    }

    pub fn template(&self, audience: Audience) -> Template {
        self.templates.get(&audience).copied().unwrap_or_else(|| audience.default_template())
    }

    pub fn time_zone(&self) -> TimeZone {
        self.time_zone.unwrap_or(TimeZone::UTC)
    }

    /// Every problem of the section, by its path.
    pub(crate) fn check(&self, p: &mut Problems) {
        for (event, audiences) in &self.rules {
            let at = format!("routing.rules.{event}");
            if !EVENT_TYPES.contains(&event.as_str()) {
                p.add(&at, format!("{event:?} is not an event type; known: {}", EVENT_TYPES.join(", ")));
            }
            let mut seen = HashSet::new();
            for (i, audience) in audiences.iter().enumerate() {
                if *audience == Audience::Feed {
                    p.add(format!("{at}[{i}]"), "the feed hears of every event: leave it out");
                } else if !seen.insert(audience) {
                    p.add(format!("{at}[{i}]"), format!("audience {audience} is listed twice"));
                }
            }
        }
        if self.templates.contains_key(&Audience::Feed) {
            p.add("routing.templates.feed", "the feed is always technical: leave it out");
        }
    }
}

/// Checks a service's `stakeholders`.
pub(crate) fn check_stakeholders(p: &mut Problems, at: &str, stakeholders: &[Stakeholder]) {
    if stakeholders.len() > MAX_STAKEHOLDERS {
        p.add(format!("{at}.stakeholders"), format!("at most {MAX_STAKEHOLDERS} stakeholders per service"));
    }
    let mut seen = HashSet::new();
    for (i, s) in stakeholders.iter().enumerate() {
        let path = format!("{at}.stakeholders[{i}].notify");
        if !valid_group(&s.notify) {
            p.add(path, format!("a group or person: 1 to 256 characters, without control characters or surrounding spaces; got {:?}", s.notify));
        } else if !seen.insert(s.notify.as_str()) {
            p.add(path, format!("{:?} is listed twice", s.notify));
        }
    }
}

/// Someone named on the event's subject, with the service they are named for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub notify: String,
    pub service: Option<ServiceName>,
}

/// What an event is about, as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The event type (`change_failed`, `unauthorized_change`).
    pub event: String,
    /// The services it is about, the first the main one.
    pub services: Vec<ServiceName>,
    /// Who asked for the change, if it is about one.
    pub requester: Option<String>,
    /// Who may decide: the open level's groups and people (or those of the step a reminder is for).
    pub approvers: Vec<Named>,
    /// The open level's (or the escalated step's) escalation targets.
    pub escalate_to: Vec<Named>,
}

impl Subject {
    /// An event about `services` with no change of its own to read
    /// approvers or a requester from: an unauthorized change found, a
    /// freeze starting.
    pub fn about(event: impl Into<String>, services: Vec<ServiceName>) -> Subject {
        Subject { event: event.into(), services, requester: None, approvers: vec![], escalate_to: vec![] }
    }
}

/// One notification to send for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub audience: Audience,
    /// The group or person; none for the feed.
    pub notify: Option<String>,
    /// The service the text is about for this reader (their own, for owners, dependents and stakeholders).
    pub service: Option<ServiceName>,
    pub template: Template,
    pub time_zone: TimeZone,
}

impl Recipient {
    /// What tells this recipient's deliveries apart, for exactly-once keys: `owners:payments-team`, `feed`.
    pub fn key(&self) -> String {
        match &self.notify {
            Some(n) => format!("{}:{n}", self.audience),
            None => self.audience.to_string(),
        }
    }
}

impl Catalog {
    /// Who the tenant's CAB is: its cab groups, else its admins.
    pub fn cab_groups(&self) -> &[String] {
        if self.roles.cab.is_empty() { &self.roles.admin } else { &self.roles.cab }
    }
}

/// The recipients of `subject`'s event under `catalog`: the feed first,
/// then one per group or person, as the audience of highest
/// [`Audience::PRECEDENCE`] that names them, in that order.
pub fn recipients(catalog: &Catalog, subject: &Subject) -> Vec<Recipient> {
    let policy = &catalog.routing;
    let main = subject.services.first().cloned();
    let mut named: Vec<(Audience, Named, Option<TimeZone>)> = Vec::new();
    let mut add = |audience, notify: &str, service: Option<ServiceName>, zone| {
        named.push((audience, Named { notify: notify.to_owned(), service }, zone));
    };
    let services = || subject.services.iter().filter_map(|s| catalog.service(s));
    for &audience in policy.audiences(&subject.event) {
        match audience {
            Audience::Owners => services().for_each(|s| add(audience, &s.owner_group, Some(s.name.clone()), None)),
            Audience::Approvers | Audience::EscalateTo => {
                let list = if audience == Audience::Approvers { &subject.approvers } else { &subject.escalate_to };
                list.iter().for_each(|n| add(audience, &n.notify, n.service.clone().or_else(|| main.clone()), None));
            }
            Audience::Requester => {
                if let Some(r) = &subject.requester {
                    add(audience, r, main.clone(), None);
                }
            }
            Audience::Dependents => catalog
                .services
                .iter()
                .filter(|s| !subject.services.contains(&s.name))
                .filter(|s| s.depends_on.iter().any(|d| subject.services.contains(d)))
                .for_each(|s| add(audience, &s.owner_group, Some(s.name.clone()), None)),
            Audience::Stakeholders => services().for_each(|s| {
                s.stakeholders.iter().for_each(|h| add(audience, &h.notify, Some(s.name.clone()), h.time_zone));
            }),
            Audience::Cab => catalog.cab_groups().iter().for_each(|g| add(audience, g, main.clone(), None)),
            Audience::Feed => {}
        }
    }
    named.sort_by_key(|(audience, ..)| Audience::PRECEDENCE.iter().position(|a| a == audience));
    let mut seen = HashSet::new();
    let feed = Recipient {
        audience: Audience::Feed,
        notify: None,
        service: main,
        template: Template::Technical,
        time_zone: policy.time_zone(),
    };
    let mut out = vec![feed];
    for (audience, n, zone) in named {
        if seen.insert(n.notify.clone()) {
            out.push(Recipient {
                audience,
                notify: Some(n.notify),
                service: n.service,
                template: policy.template(audience),
                time_zone: zone.unwrap_or_else(|| policy.time_zone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn catalog() -> Catalog {
        serde_json::from_value(json!({
            "roles": {"cab": ["cab"], "admin": ["platform"]},
            "routing": {"time_zone": "Europe/Paris"},
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1, "depends_on": ["ledger"],
                 "stakeholders": [{"notify": "finance-ops", "time_zone": "America/New_York"}, {"notify": "cfo@acme.example"}]},
                {"name": "ledger", "owner_group": "ledger-team", "tier": 2,
                 "stakeholders": [{"notify": "accounting"}]},
                {"name": "web", "owner_group": "web-team", "tier": 2, "depends_on": ["ledger"]},
                {"name": "search", "owner_group": "search-team", "tier": 3}
            ]
        }))
        .expect("catalog")
    }

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("service name")
    }

    fn named(notify: &str, service: &str) -> Named {
        Named { notify: notify.into(), service: Some(svc(service)) }
    }

    fn ledger_change(event: &str) -> Subject {
        Subject {
            requester: Some("alice@example.com".into()),
            approvers: vec![named("ledger-leads", "ledger")],
            escalate_to: vec![named("ledger-managers", "ledger")],
            ..Subject::about(event, vec![svc("ledger")])
        }
    }

    fn who(recipients: &[Recipient]) -> Vec<(&str, Option<&str>, Option<&str>)> {
        recipients
            .iter()
            .map(|r| (r.audience.as_str(), r.notify.as_deref(), r.service.as_ref().map(ServiceName::as_str)))
            .collect()
    }

    #[test]
    fn a_failed_change_reaches_owners_requester_dependents_stakeholders_and_the_cab_after_the_feed() {
        let r = recipients(&catalog(), &ledger_change("change_failed"));
        assert_eq!(
            who(&r),
            [
                ("feed", None, Some("ledger")),
                ("owners", Some("ledger-team"), Some("ledger")),
                ("requester", Some("alice@example.com"), Some("ledger")),
                ("dependents", Some("payments-team"), Some("payments")),
                ("dependents", Some("web-team"), Some("web")),
                ("cab", Some("cab"), Some("ledger")),
                ("stakeholders", Some("accounting"), Some("ledger")),
            ]
        );
        let templates: Vec<Template> = r.iter().map(|r| r.template).collect();
        use Template::*;
        assert_eq!(templates, [Technical, Technical, Technical, Technical, Technical, Executive, Business]);
        assert!(r.iter().all(|r| r.time_zone.name() == "Europe/Paris"), "the tenant's zone by default");
    }

    #[test]
    fn submitted_reaches_owners_and_the_open_levels_approvers() {
        let r = recipients(&catalog(), &ledger_change("change_submitted"));
        assert_eq!(
            who(&r),
            [
                ("feed", None, Some("ledger")),
                ("approvers", Some("ledger-leads"), Some("ledger")),
                ("owners", Some("ledger-team"), Some("ledger")),
            ]
        );
        let escalated = recipients(&catalog(), &ledger_change("approval_escalated"));
        assert_eq!(who(&escalated)[1..], [("escalate_to", Some("ledger-managers"), Some("ledger"))]);
    }

    #[test]
    fn dependents_are_the_owners_of_services_that_depend_on_the_changed_ones_not_the_changed_ones() {
        let mut subject = ledger_change("change_scheduled");
        subject.services = vec![svc("ledger"), svc("payments")];
        let r = recipients(&catalog(), &subject);
        let dependents: Vec<_> = who(&r).into_iter().filter(|(a, ..)| *a == "dependents").collect();
        assert_eq!(dependents, [("dependents", Some("web-team"), Some("web"))], "payments changes too: an owner");
        assert!(
            recipients(&catalog(), &Subject::about("change_scheduled", vec![svc("search")]))
                .iter()
                .all(|r| r.audience != Audience::Dependents)
        );
    }

    #[test]
    fn one_group_gets_one_message_as_its_highest_audience() {
        let mut subject = ledger_change("change_failed");
        // The CAB approves the open level and the requester's team is a dependent.
        subject.approvers = vec![named("cab", "ledger")];
        subject.requester = Some("web-team".into());
        let mut catalog = catalog();
        catalog.routing.rules.insert(
            "change_failed".into(),
            vec![Audience::Cab, Audience::Approvers, Audience::Dependents, Audience::Requester],
        );
        let r = recipients(&catalog, &subject);
        assert_eq!(
            who(&r),
            [
                ("feed", None, Some("ledger")),
                ("approvers", Some("cab"), Some("ledger")),
                ("requester", Some("web-team"), Some("ledger")),
                ("dependents", Some("payments-team"), Some("payments")),
            ]
        );
        assert_eq!(r[1].template, Template::Technical, "the winning audience's template");
    }

    #[test]
    fn stakeholders_read_their_own_zone_and_the_business_template() {
        let r = recipients(&catalog(), &Subject::about("freeze_starting", vec![svc("payments")]));
        let finance = r.iter().find(|r| r.notify.as_deref() == Some("finance-ops")).expect("finance-ops");
        assert_eq!((finance.audience, finance.template), (Audience::Stakeholders, Template::Business));
        assert_eq!(finance.time_zone.name(), "America/New_York");
        let cfo = r.iter().find(|r| r.notify.as_deref() == Some("cfo@acme.example")).expect("cfo");
        assert_eq!(cfo.time_zone.name(), "Europe/Paris");
    }

    #[test]
    fn without_a_routing_section_the_default_table_applies_and_times_are_utc() {
        let mut catalog = catalog();
        catalog.routing = RoutingPolicy::default();
        let r = recipients(&catalog, &ledger_change("change_completed"));
        let audiences: Vec<&str> = r.iter().map(|r| r.audience.as_str()).collect();
        assert_eq!(audiences, ["feed", "owners", "requester", "stakeholders"]);
        assert!(r.iter().all(|r| r.time_zone == TimeZone::UTC));
        let edited = recipients(&catalog, &ledger_change("change_edited"));
        assert_eq!(who(&edited), [("feed", None, Some("ledger"))], "other mutations go to the feed only");
    }

    #[test]
    fn a_catalog_rule_replaces_the_default_for_its_event_and_templates_override() {
        let mut catalog = catalog();
        catalog.routing.rules.insert("change_completed".into(), vec![]);
        catalog.routing.templates.insert(Audience::Owners, Template::Executive);
        assert_eq!(recipients(&catalog, &ledger_change("change_completed")).len(), 1, "the feed only");
        let failed = recipients(&catalog, &ledger_change("change_failed"));
        assert_eq!(failed[1].template, Template::Executive);
    }

    #[test]
    fn the_cab_is_the_admins_when_the_catalog_names_no_cab() {
        let mut catalog = catalog();
        catalog.roles.cab.clear();
        let r = recipients(&catalog, &Subject::about("unauthorized_change", vec![svc("search")]));
        assert_eq!(
            who(&r)[1..],
            [("owners", Some("search-team"), Some("search")), ("cab", Some("platform"), Some("search"))]
        );
    }

    #[test]
    fn event_types_of_detail_types() {
        assert_eq!(event_type_of("Change Rolled Back"), "change_rolled_back");
        assert_eq!(event_type_of("Change Submitted"), "change_submitted");
        assert_eq!(event_type_of("Approval Recorded"), "change_approval_recorded");
        assert_eq!(event_type_of("Approval SLA Breached"), "sla_breached");
        assert_eq!(event_type_of("Approval Reminder"), "approval_reminder");
        for dt in ["Change Created", "Change Incident Related", "Peer Review Recorded", "Checklist Item Done"] {
            assert!(EVENT_TYPES.contains(&event_type_of(dt).as_str()), "{dt}");
        }
    }

    #[test]
    fn bad_routing_is_refused_naming_the_field() {
        let problems = |routing: serde_json::Value| -> Vec<String> {
            let mut v = json!({"services": [{"name": "a", "owner_group": "g", "tier": 1,
                "stakeholders": [{"notify": "x"}, {"notify": "x"}, {"notify": " y"}]}]});
            v["routing"] = routing;
            let catalog: Catalog = serde_json::from_value(v).expect("catalog");
            catalog.validate().expect_err("invalid").listed().iter().map(ToString::to_string).collect()
        };
        let listed = problems(json!({"rules": {"change_faild": ["owners"], "change_failed": ["feed", "cab", "cab"]},
                                     "templates": {"feed": "business"}}));
        let text = listed.join("\n");
        for expected in [
            "services[0].stakeholders[1].notify: \"x\" is listed twice",
            "services[0].stakeholders[2].notify: a group or person",
            "routing.rules.change_faild: \"change_faild\" is not an event type; known: change_submitted",
            "routing.rules.change_failed[0]: the feed hears of every event",
            "routing.rules.change_failed[2]: audience cab is listed twice",
            "routing.templates.feed: the feed is always technical",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        let zone: Result<Catalog, _> = serde_json::from_value(json!({"routing": {"time_zone": "Europe/Pariss"}}));
        let e = zone.expect_err("an unknown zone").to_string();
        assert!(e.contains("\"Europe/Pariss\" is not an IANA time zone"), "{e}");
        let audience: Result<Catalog, _> =
            serde_json::from_value(json!({"routing": {"rules": {"change_failed": ["owner"]}}}));
        assert!(audience.expect_err("an unknown audience").to_string().contains("unknown variant `owner`"));
    }
}
