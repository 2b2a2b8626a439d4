//! Prometheus Alertmanager `webhook_config` notifications (payload version 4).
//!
//! One notification carries a group of alerts; each alert becomes its own
//! Alert Firing or Alert Resolved fact, by the alert's own `status` (a group
//! that is `firing` may still contain resolved alerts).
//!
//! Alertmanager sends no delivery id, so [`delivery_id`] hashes what makes a
//! notification a new state: the group key, the group status and, for each
//! alert, its fingerprint, status, `startsAt` and `endsAt`. A notification
//! resent unchanged (a retry or a `repeat_interval` reminder) gets the same id
//! and is a duplicate; one where an alert resolved, joined or restarted does not.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::canonical::{Alert, Canonical, Fact, NormalizeError, Normalized, Origin, ServiceKey};
use super::parse_body;

/// The only payload version the hub reads. A `payload:` template in the
/// receiver replaces the whole body, so anything else is rejected.
pub const VERSION: &str = "4";

/// The most alerts one notification may carry: each becomes an event, and a
/// delivery is published within one function invocation. Set `max_alerts:
/// 100` (or less) on the receiver's `webhook_config`; Alertmanager then
/// truncates larger groups and says so in `truncatedAlerts`.
pub const MAX_ALERTS: usize = 100;

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of firing alerts.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// A SHA-256 (lowercase hex) of the notification's group key, status and
/// each alert's fingerprint, status, `startsAt` and `endsAt`, as sent. The
/// alerts are sorted first, so their order in the body does not matter.
pub fn delivery_id(_headers: &HeaderMap, body: &[u8]) -> Result<String, NormalizeError> {
    let n: DeliveryFields = parse_body(body)?;
    let mut alerts: Vec<[&str; 4]> = n
        .alerts
        .iter()
        .map(|a| [a.fingerprint.as_str(), a.status.as_str(), a.starts_at.as_str(), a.ends_at.as_deref().unwrap_or("")])
        .collect();
    alerts.sort_unstable();

    let mut hash = Sha256::new();
    // Every part is length-prefixed, so no two different inputs concatenate alike.
    let mut part = |s: &str| {
        hash.update((s.len() as u64).to_be_bytes());
        hash.update(s.as_bytes());
    };
    part("alertmanager-v4");
    part(&n.group_key);
    part(&n.status);
    for alert in &alerts {
        for field in alert {
            part(field);
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// One fact per alert, or `Ignored("empty alert group")` when there is none.
pub fn normalize(_headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let n: Notification = parse_body(body)?;
    if n.version != VERSION {
        return Err(NormalizeError::field(
            "version",
            format!("unsupported Alertmanager payload version {:?}; only {VERSION:?} is read", n.version),
        ));
    }
    if n.alerts.is_empty() {
        return Ok(Normalized::Ignored("empty alert group".into()));
    }
    if n.alerts.len() > MAX_ALERTS {
        return Err(NormalizeError::field(
            "alerts",
            format!(
                "the group has {} alerts; at most {MAX_ALERTS} are accepted (set max_alerts: {MAX_ALERTS} on the webhook receiver)",
                n.alerts.len()
            ),
        ));
    }
    let group_key = n.group_key;
    n.alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| canonical(a, &group_key, i))
        .collect::<Result<Vec<_>, _>>()
        .map(Normalized::Events)
}

fn canonical(a: AlertIn, group_key: &str, index: usize) -> Result<Canonical, NormalizeError> {
    let firing = match a.status.as_str() {
        "firing" => true,
        "resolved" => false,
        other => {
            return Err(NormalizeError::field(
                format!("alerts[{index}].status"),
                format!("unknown alert status {other:?}; expected \"firing\" or \"resolved\""),
            ));
        }
    };
    let ends_at = a.ends_at.filter(|t| t.timestamp() != GO_ZERO_TIME_UNIX);
    let label = |name: &str| a.labels.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
    let annotation =
        |name: &str| a.annotations.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
    let service_key = label("service").map(ServiceKey::AlertLabel);
    let environment = label("env").or_else(|| label("environment"));
    let alert = Alert {
        // Alerts from Prometheus rules always have one; alerts posted to the
        // API need not.
        alertname: label("alertname").unwrap_or_default(),
        status: a.status,
        fingerprint: a.fingerprint.clone(),
        group_key: group_key.to_owned(),
        summary: annotation("summary").or_else(|| annotation("description")),
        starts_at: a.starts_at,
        ends_at,
        labels: a.labels,
    };
    // When the alert reached the state it is reported in.
    let occurred_at = if firing { alert.starts_at } else { ends_at.unwrap_or(alert.starts_at) };
    Ok(Canonical {
        origin: Origin::Alertmanager,
        fact: if firing { Fact::AlertFiring(alert) } else { Fact::AlertResolved(alert) },
        external_id: a.fingerprint,
        occurred_at,
        actor: None,
        environment,
        url: Some(a.generator_url).map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()),
        service_key,
    })
}

/// The notification body. Fields the hub does not use (`receiver`,
/// `groupLabels`, `commonLabels`, `externalURL`, `truncatedAlerts`, ...) are
/// not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    version: String,
    group_key: String,
    alerts: Vec<AlertIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertIn {
    status: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

/// What the delivery id is made of, as the raw strings that were sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryFields {
    group_key: String,
    /// Not needed to normalize, so not required here either.
    #[serde(default)]
    status: String,
    alerts: Vec<DeliveryAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryAlert {
    fingerprint: String,
    status: String,
    starts_at: String,
    ends_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::support::testing as fuzz;
    use crate::ingest::support::testing::{at, edited as edit};
    use proptest::prelude::*;
    use serde_json::json;

    const FIRING: &[u8] = include_bytes!("../../../events/alertmanager/firing.json");
    const RESOLVED: &[u8] = include_bytes!("../../../events/alertmanager/resolved.json");
    const SAMPLES: &[&[u8]] = &[FIRING, RESOLVED];

    fn events(body: &[u8]) -> Vec<Canonical> {
        match normalize(&HeaderMap::new(), body) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn alert(fact: &Fact) -> &Alert {
        match fact {
            Fact::AlertFiring(a) | Fact::AlertResolved(a) => a,
            other => panic!("not an alert fact: {other:?}"),
        }
    }

    const GROUP_KEY: &str =
        "{}/{team=\"payments-platform\"}:{alertname=\"HighErrorRate\", service=\"checkout-service\"}";

    #[test]
    fn firing_sample_becomes_one_alert_firing_per_alert() {
        let events = events(FIRING);
        assert_eq!(events.len(), 2);
        let c = &events[0];
        assert!(matches!(c.fact, Fact::AlertFiring(_)));
        let a = alert(&c.fact);
        assert_eq!(a.alertname, "HighErrorRate");
        assert_eq!(a.status, "firing");
        assert_eq!(a.fingerprint, "e7441af7e5092eab");
        assert_eq!(a.group_key, GROUP_KEY);
        assert_eq!(a.labels.get("instance").map(String::as_str), Some("10.20.3.17:8080"));
        assert_eq!(a.summary.as_deref(), Some("checkout-service 5xx ratio above 5% on 10.20.3.17:8080"));
        assert_eq!(a.starts_at, at("2026-09-14T10:39:52.481Z"));
        assert_eq!(a.ends_at, None, "the zero endsAt means no end");
        assert_eq!(c.origin, Origin::Alertmanager);
        assert_eq!(c.external_id, "e7441af7e5092eab");
        assert_eq!(c.occurred_at, at("2026-09-14T10:39:52.481Z"));
        assert_eq!(c.actor, None);
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert!(c.url.as_deref().is_some_and(|u| u.starts_with("http://prometheus-k8s-0:9090/graph?")));
        assert_eq!(c.service_key, Some(ServiceKey::AlertLabel("checkout-service".into())));
        assert_eq!(events[1].external_id, "dc8832f0eff351dd");
        assert!(matches!(events[1].fact, Fact::AlertFiring(_)));
    }

    #[test]
    fn resolved_sample_becomes_alert_resolved_at_its_end() {
        let events = events(RESOLVED);
        assert_eq!(events.len(), 2);
        let c = &events[1];
        assert!(matches!(c.fact, Fact::AlertResolved(_)));
        let a = alert(&c.fact);
        assert_eq!(a.status, "resolved");
        assert_eq!(a.fingerprint, "dc8832f0eff351dd");
        assert_eq!(a.ends_at, Some(at("2026-09-14T11:10:22.481Z")));
        assert_eq!(c.occurred_at, at("2026-09-14T11:10:22.481Z"));
    }

    #[test]
    fn each_alert_keeps_its_own_status_in_a_mixed_group() {
        let body = edit(FIRING, |v| {
            v["alerts"][1]["status"] = json!("resolved");
            v["alerts"][1]["endsAt"] = json!("2026-09-14T10:50:07.481Z");
        });
        let events = events(&body);
        assert!(matches!(events[0].fact, Fact::AlertFiring(_)));
        assert!(matches!(events[1].fact, Fact::AlertResolved(_)));
    }

    #[test]
    fn alert_without_service_label_has_no_service_key_and_environment_falls_back() {
        let body = edit(FIRING, |v| {
            let labels = v["alerts"][0]["labels"].as_object_mut().expect("labels");
            labels.remove("service");
            labels.remove("env");
            labels.insert("environment".into(), json!("staging"));
            v["alerts"][0]["annotations"] = json!({"description": "only a description"});
        });
        let c = &events(&body)[0];
        assert_eq!(c.service_key, None);
        assert_eq!(c.environment.as_deref(), Some("staging"));
        assert_eq!(alert(&c.fact).summary.as_deref(), Some("only a description"));
    }

    #[test]
    fn missing_annotations_ends_at_and_generator_url_are_tolerated() {
        let body = edit(FIRING, |v| {
            let a = v["alerts"][0].as_object_mut().expect("alert");
            a.remove("annotations");
            a.remove("endsAt");
            a.remove("generatorURL");
        });
        let c = &events(&body)[0];
        assert_eq!(alert(&c.fact).summary, None);
        assert_eq!(alert(&c.fact).ends_at, None);
        assert_eq!(c.url, None);
    }

    #[test]
    fn empty_alert_group_is_ignored() {
        let body = edit(FIRING, |v| v["alerts"] = json!([]));
        assert_eq!(
            normalize(&HeaderMap::new(), &body).expect("ignored"),
            Normalized::Ignored("empty alert group".into())
        );
    }

    #[test]
    fn other_payload_versions_are_rejected() {
        let body = edit(FIRING, |v| v["version"] = json!("5"));
        let err = normalize(&HeaderMap::new(), &body).expect_err("version 5");
        assert_eq!(err.field.as_deref(), Some("version"));
    }

    #[test]
    fn unknown_alert_status_is_an_error_naming_the_alert() {
        let body = edit(FIRING, |v| v["alerts"][1]["status"] = json!("pending"));
        let err = normalize(&HeaderMap::new(), &body).expect_err("pending");
        assert_eq!(err.field.as_deref(), Some("alerts[1].status"));
    }

    #[test]
    fn a_group_over_the_alert_cap_is_refused_naming_the_cap() {
        let at_cap = edit(FIRING, |v| {
            let one = v["alerts"][0].clone();
            v["alerts"] = json!(vec![one; MAX_ALERTS]);
        });
        assert!(matches!(normalize(&HeaderMap::new(), &at_cap), Ok(Normalized::Events(e)) if e.len() == MAX_ALERTS));
        let over = edit(FIRING, |v| {
            let one = v["alerts"][0].clone();
            v["alerts"] = json!(vec![one; MAX_ALERTS + 1]);
        });
        let err = normalize(&HeaderMap::new(), &over).expect_err("over the cap");
        assert_eq!(err.field.as_deref(), Some("alerts"));
        assert!(err.message.contains(&format!("at most {MAX_ALERTS}")), "{}", err.message);
    }

    #[test]
    fn delivery_id_is_stable_for_the_same_body() {
        let a = delivery_id(&HeaderMap::new(), FIRING).expect("id");
        assert_eq!(a, delivery_id(&HeaderMap::new(), FIRING).expect("id"));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        // Re-serialized (whitespace, key order) and with the alerts reordered: same notification.
        let reordered = edit(FIRING, |v| {
            v["alerts"].as_array_mut().expect("alerts").reverse();
            v["notification_reason"] = json!("repeat interval elapsed");
        });
        assert_eq!(a, delivery_id(&HeaderMap::new(), &reordered).expect("id"));
    }

    #[test]
    fn delivery_id_differs_for_resolved_and_firing() {
        let firing = delivery_id(&HeaderMap::new(), FIRING).expect("id");
        let resolved = delivery_id(&HeaderMap::new(), RESOLVED).expect("id");
        assert_ne!(firing, resolved);
        // One alert of the group resolving is a new state too.
        let partly = edit(FIRING, |v| {
            v["alerts"][1]["status"] = json!("resolved");
            v["alerts"][1]["endsAt"] = json!("2026-09-14T10:50:07.481Z");
        });
        assert_ne!(firing, delivery_id(&HeaderMap::new(), &partly).expect("id"));
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(normalize(&HeaderMap::new(), b"not json").expect_err("text").message.contains("not valid JSON"));
        assert!(delivery_id(&HeaderMap::new(), b"{\"groupKey\":").is_err());
    }

    #[test]
    fn wrong_typed_field_is_an_error_naming_its_path() {
        let body = edit(FIRING, |v| v["alerts"][0]["labels"]["severity"] = json!(3));
        let err = normalize(&HeaderMap::new(), &body).expect_err("numeric label");
        assert_eq!(err.field.as_deref(), Some("alerts[0].labels.severity"));

        let body = edit(FIRING, |v| v["alerts"][1]["startsAt"] = json!("soon"));
        let err = normalize(&HeaderMap::new(), &body).expect_err("bad time");
        assert_eq!(err.field.as_deref(), Some("alerts[1].startsAt"));
    }

    #[test]
    fn missing_group_key_is_an_error() {
        let body = edit(FIRING, |v| {
            v.as_object_mut().expect("object").remove("groupKey");
        });
        assert!(normalize(&HeaderMap::new(), &body).expect_err("no groupKey").message.contains("groupKey"));
        assert!(delivery_id(&HeaderMap::new(), &body).expect_err("no groupKey").message.contains("groupKey"));
    }

    const WORDS: &[&str] = &[
        "version",
        "4",
        "groupKey",
        "status",
        "alerts",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
        "alertname",
        "service",
        "env",
        "environment",
        "summary",
        "description",
        "firing",
        "resolved",
    ];

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = delivery_id(&HeaderMap::new(), &body);
            let _ = normalize(&HeaderMap::new(), &body);
        }

        #[test]
        fn arbitrary_json_never_panics(v in fuzz::json_with(WORDS)) {
            let body = serde_json::to_vec(&v).expect("json");
            let _ = delivery_id(&HeaderMap::new(), &body);
            let _ = normalize(&HeaderMap::new(), &body);
        }

        #[test]
        fn mutated_samples_never_panic(body in fuzz::mutated(SAMPLES, WORDS)) {
            if let Err(e) = delivery_id(&HeaderMap::new(), &body) {
                prop_assert!(!e.message.is_empty());
            }
            if let Err(e) = normalize(&HeaderMap::new(), &body) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
