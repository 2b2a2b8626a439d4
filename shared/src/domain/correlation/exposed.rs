//! The reverse of [`Scope::of`]: which services' incidents a change may
//! explain, and when those incidents started. A change event that arrives
//! after the incident (delivery is unordered) re-checks exactly these.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Implementation, MAX_HOPS, Settings};
use crate::domain::catalog::Catalog;
use crate::domain::ids::ServiceName;

/// A service whose incidents a change may explain: the change touched it,
/// or a service it depends on within its own `hops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    pub service: ServiceName,
    /// The service's own settings (its window and hops), as an incident on it is correlated by.
    pub settings: Settings,
}

impl Exposed {
    /// Every service whose incidents' scope ([`Scope::of`]) holds one of
    /// `changed`: those services, and the services that depend on them, each
    /// within its own configured hops; by name.
    ///
    /// [`Scope::of`]: super::Scope::of
    pub fn of(catalog: &Catalog, changed: &[ServiceName]) -> Vec<Exposed> {
        let mut dependents: HashMap<&ServiceName, Vec<&ServiceName>> = HashMap::new();
        for service in &catalog.services {
            for d in &service.depends_on {
                dependents.entry(d).or_default().push(&service.name);
            }
        }
        // How many `depends_on` steps each service lies above the nearest changed one.
        let mut steps: BTreeMap<&ServiceName, u8> = changed.iter().map(|s| (s, 0)).collect();
        let mut frontier: Vec<&ServiceName> = steps.keys().copied().collect();
        for hops in 1..=MAX_HOPS {
            let next: BTreeSet<&ServiceName> = frontier
                .iter()
                .filter_map(|s| dependents.get(s))
                .flatten()
                .copied()
                .filter(|s| !steps.contains_key(s))
                .collect();
            steps.extend(next.iter().map(|&s| (s, hops)));
            frontier = next.into_iter().collect();
        }
        steps
            .into_iter()
            .filter_map(|(service, hops)| {
                let own = catalog.service(service).and_then(|s| s.correlation.as_ref());
                let settings = catalog.correlation.settings(own);
                (hops <= settings.hops).then(|| Exposed { service: service.clone(), settings })
            })
            .collect()
    }

    /// When an incident on this service must have started for a change
    /// implemented as `implementation` to be related to it: from the
    /// implementation's start to its end plus the service's window, with no
    /// end while it is still implementing.
    pub fn started_between(&self, implementation: &Implementation) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let until =
            implementation.ended_at().map(|end| end.checked_add_signed(self.settings.window.chrono()).unwrap_or(end));
        (implementation.started_at(), until)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::catalog_with;
    use super::super::{Outcome, Scope};
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn names(exposed: &[Exposed]) -> Vec<&str> {
        exposed.iter().map(|e| e.service.as_str()).collect()
    }

    fn name(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("service")
    }

    #[test]
    fn a_change_exposes_its_services_and_their_dependents_within_their_hops() {
        let one_hop = catalog_with(|_| {});
        assert_eq!(names(&Exposed::of(&one_hop, &[name("ledger")])), ["ledger", "payments"]);
        assert_eq!(names(&Exposed::of(&one_hop, &[name("search")])), ["search"]);
        assert_eq!(names(&Exposed::of(&one_hop, &[name("web")])), ["web"], "never what web depends on");
        let web_two = catalog_with(|v| v["services"][0]["correlation"] = json!({"hops": 2, "window": "1h"}));
        let exposed = Exposed::of(&web_two, &[name("ledger")]);
        assert_eq!(names(&exposed), ["ledger", "payments", "web"], "web reads two hops down");
        assert_eq!(exposed[2].settings.window.chrono(), Duration::hours(1), "with its own window");
        let own_only = catalog_with(|v| v["correlation"] = json!({"hops": 0}));
        assert_eq!(names(&Exposed::of(&own_only, &[name("ledger"), name("db")])), ["db", "ledger"]);
        assert_eq!(names(&Exposed::of(&one_hop, &[name("unlisted")])), ["unlisted"]);
    }

    /// For every catalog shape and every changed service, the exposed
    /// services are exactly those whose incidents' scope holds it.
    #[test]
    fn exposed_is_the_reverse_of_the_scope() {
        let shapes = [json!({"hops": 0}), json!({"hops": 1}), json!({"hops": 2}), json!({"hops": 3})];
        for tenant in &shapes {
            for web in &shapes {
                let catalog = catalog_with(|v| {
                    v["correlation"] = tenant.clone();
                    v["services"][0]["correlation"] = web.clone();
                });
                let all: Vec<ServiceName> = catalog.services.iter().map(|s| s.name.clone()).collect();
                for changed in &all {
                    let exposed: Vec<ServiceName> =
                        Exposed::of(&catalog, std::slice::from_ref(changed)).into_iter().map(|e| e.service).collect();
                    let by_scope: Vec<ServiceName> = all
                        .iter()
                        .filter(|s| Scope::of(&catalog, s).services.iter().any(|l| &l.service == changed))
                        .cloned()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    assert_eq!(exposed, by_scope, "{changed} with {tenant} and web {web}");
                }
            }
        }
    }

    #[test]
    fn incidents_are_looked_for_from_the_start_to_the_end_plus_the_window() {
        let catalog = catalog_with(|_| {});
        let exposed = Exposed::of(&catalog, &[name("payments")]).remove(0);
        let t = |h: i64| Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().unwrap_or_default() + Duration::hours(h);
        let done = Implementation::Finished { started_at: t(0), ended_at: t(1), outcome: Outcome::Succeeded };
        assert_eq!(exposed.started_between(&done), (t(0), Some(t(5))));
        assert_eq!(exposed.started_between(&Implementation::Ongoing { started_at: t(0) }), (t(0), None));
    }
}
