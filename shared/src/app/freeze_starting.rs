//! The "freeze starting" notification: a freeze window's occurrence is
//! about to start. One per owner group of the frozen services (audience
//! `owners`), or one to the tenant's CAB for a tenant-wide window (audience
//! `cab`); a frozen service the catalog does not know goes to the CAB too.
//! Built here, in one function, so that routing can take it over.
//!
//! Not yet sent by the tick: the freezes document's due entry (its windows'
//! next occurrences, [`crate::domain::soon::next_freeze_starts`]) is still
//! to be written and read; see ARCHITECTURE.md, "Starting soon".

use std::collections::BTreeMap;

use chrono::SecondsFormat;

use super::escalation::cab_of;
use crate::domain::catalog::Catalog;
use crate::domain::freeze::{FreezeWindow, Occurrence};
use crate::domain::{ServiceName, TenantId};
use crate::ports::{Fact, Message, Notification};

/// The notification's `kind` attribute: the bus detail-type.
pub const KIND: &str = "Freeze Starting";
/// The notification's `type` attribute, for SNS filter policies.
pub const TYPE: &str = "freeze_starting";

/// The notifications of `window`'s `occurrence` about to start: one per
/// owner group of its services (`audience` `owners`, `notify` the group,
/// `services` theirs), or one to the CAB (`cab`: the catalog's cab groups,
/// else its admins) for a tenant-wide window and for services the catalog
/// does not know. Attributes `type`, `kind`, `tenant`, `services`.
pub fn notifications_for(
    tenant: &TenantId,
    window: &FreezeWindow,
    occurrence: &Occurrence,
    catalog: &Catalog,
) -> Vec<Notification> {
    let mut audiences: BTreeMap<(&str, String), Vec<&ServiceName>> = BTreeMap::new();
    let cab = || ("cab", cab_of(catalog));
    if window.services.is_empty() {
        audiences.insert(cab(), vec![]);
    }
    for service in &window.services {
        let to = catalog.service(service).map_or_else(cab, |s| ("owners", s.owner_group.clone()));
        audiences.entry(to).or_default().push(service);
    }
    audiences
        .into_iter()
        .map(|((audience, to), services)| notice(tenant, window, occurrence, audience, &to, &services))
        .collect()
}

fn notice(
    tenant: &TenantId,
    window: &FreezeWindow,
    occurrence: &Occurrence,
    audience: &str,
    to: &str,
    services: &[&ServiceName],
) -> Notification {
    let scope = if services.is_empty() {
        "every service".to_owned()
    } else {
        services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    };
    let (start, end) = (
        occurrence.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        occurrence.end.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let name = window.name.trim();
    let subject: String = format!("Freeze starting {start}: {name} ({scope})").chars().take(99).collect();
    let mut attributes = BTreeMap::new();
    attributes.insert("type".to_owned(), TYPE.to_owned());
    attributes.insert("kind".to_owned(), KIND.to_owned());
    attributes.insert("tenant".to_owned(), tenant.to_string());
    attributes.insert("audience".to_owned(), audience.to_owned());
    attributes.insert("notify".to_owned(), to.to_owned());
    attributes.insert("services".to_owned(), services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    let mut facts = vec![
        Fact { name: "Window (UTC)".into(), value: format!("{start} to {end}") },
        Fact { name: "Frozen".into(), value: scope.clone() },
    ];
    if !window.reason.trim().is_empty() {
        facts.push(Fact { name: "Reason".into(), value: window.reason.trim().to_owned() });
    }
    let message = Message {
        headline: subject.clone(),
        lines: vec![format!(
            "No change to {scope} may be submitted, scheduled or started from {start} to {end} (UTC) \
             without an override."
        )],
        facts,
        links: vec![],
    };
    let body = serde_json::json!({
        "event": KIND,
        "window": window,
        "occurrence": occurrence,
        "services": services,
        "notify": {"audience": audience, "to": to},
    });
    Notification { subject, body, attributes, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "roles": {"cab": ["cab"]},
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1},
                {"name": "ledger", "owner_group": "payments-team", "tier": 2},
                {"name": "search", "owner_group": "search-team", "tier": 3},
            ],
        }))
        .expect("catalog")
    }

    fn window(services: &[&str]) -> (FreezeWindow, Occurrence) {
        let window: FreezeWindow = serde_json::from_value(serde_json::json!({
            "id": "dec-close", "name": "December close", "services": services, "reason": "Year-end books",
            "schedule": {"kind": "one_off", "start": "2030-12-01T00:00:00Z", "end": "2030-12-03T00:00:00Z"},
        }))
        .expect("window");
        let occurrence = window.next_occurrence(chrono::DateTime::UNIX_EPOCH).expect("occurrence");
        (window, occurrence)
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    #[test]
    fn each_owner_group_of_the_frozen_services_is_told_once() {
        let (w, occ) = window(&["payments", "ledger", "search", "unknown-svc"]);
        let sent = notifications_for(&tenant(), &w, &occ, &catalog());
        let to: Vec<(&str, &str, &str)> = sent
            .iter()
            .map(|n| {
                (n.attributes["audience"].as_str(), n.attributes["notify"].as_str(), n.attributes["services"].as_str())
            })
            .collect();
        assert_eq!(
            to,
            [
                ("cab", "cab", "unknown-svc"),
                ("owners", "payments-team", "payments,ledger"),
                ("owners", "search-team", "search")
            ]
        );
        let n = &sent[1];
        assert_eq!(
            (n.attributes["type"].as_str(), n.attributes["kind"].as_str()),
            ("freeze_starting", "Freeze Starting")
        );
        assert_eq!(n.subject, "Freeze starting 2030-12-01T00:00:00Z: December close (payments, ledger)");
        let facts: Vec<(&str, &str)> = n.message.facts.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(
            facts,
            [
                ("Window (UTC)", "2030-12-01T00:00:00Z to 2030-12-03T00:00:00Z"),
                ("Frozen", "payments, ledger"),
                ("Reason", "Year-end books")
            ]
        );
    }

    #[test]
    fn a_tenant_wide_freeze_goes_to_the_cab() {
        let (w, occ) = window(&[]);
        let sent = notifications_for(&tenant(), &w, &occ, &catalog());
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].attributes["audience"].as_str(), sent[0].attributes["notify"].as_str()), ("cab", "cab"));
        assert!(sent[0].subject.ends_with("December close (every service)"), "{}", sent[0].subject);
    }
}
