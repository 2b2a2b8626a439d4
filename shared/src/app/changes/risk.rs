//! Risk scoring with the failure history of similar changes.

use chrono::{DateTime, Datelike, Utc};

use super::{ChangeError, ChangeStore, Changes};
use crate::domain::Change;
use crate::domain::catalog::CatalogView;
use crate::domain::risk::{self, History, IncidentHistory, RiskAssessment, RiskInput};
use crate::ports::{Clock, CounterKey, IncidentCounterKey};

/// The months `[now - period + 1 month, now]` as `YYYY-MM`.
fn months_back(now: DateTime<Utc>, period: u8) -> Vec<String> {
    let (mut y, mut m) = (now.year(), now.month());
    let mut out = Vec::with_capacity(usize::from(period));
    for _ in 0..period.max(1) {
        out.push(format!("{y:04}-{m:02}"));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Scores `change` under the tenant's rules, with the failure history of
    /// similar changes read from the monthly counters (services × months keys)
    /// and the incident history of its services (one key per service), in one read.
    pub(super) async fn assess(&self, view: &CatalogView, change: &Change) -> Result<RiskAssessment, ChangeError> {
        let rules = &view.catalog.risk;
        let tier = rules.effective_tier(change.services.iter().map(|s| view.catalog.service(s).map(|svc| svc.tier)));
        let months = months_back(self.clock.now(), rules.period_months);
        let keys: Vec<CounterKey> = change
            .services
            .iter()
            .flat_map(|service| {
                months.iter().map(move |month| CounterKey {
                    tenant: change.tenant.clone(),
                    service: service.clone(),
                    month: month.clone(),
                    category: change.category.clone(),
                    change_type: change.change_type,
                })
            })
            .collect();
        let incident_keys: Vec<IncidentCounterKey> = change
            .services
            .iter()
            .flat_map(|service| {
                months.iter().map(move |month| IncidentCounterKey {
                    tenant: change.tenant.clone(),
                    service: service.clone(),
                    month: month.clone(),
                })
            })
            .collect();
        // One batch read: the incident counters are one item per service.
        let (counts, incident_counts) = self.store.history(&keys, &incident_keys).await?;
        let incidents = incident_counts.iter().fold(IncidentHistory::default(), |h, c| IncidentHistory {
            incidents: h.incidents.saturating_add(c.incidents),
            change_related: h.change_related.saturating_add(c.change_related),
            problems: h.problems.saturating_add(c.problems),
        });
        let history = counts.iter().fold(History::default(), |h, c| History {
            changes: h.changes.saturating_add(c.changes),
            failures: h.failures.saturating_add(c.failures),
        });
        Ok(risk::assess(
            rules,
            &RiskInput {
                tier,
                impact: &change.impact,
                complexity: change.complexity,
                privileged_access: change.privileged_access,
                cryptographic_keys: change.cryptographic_keys,
                history,
                incidents,
            },
        ))
    }
}
