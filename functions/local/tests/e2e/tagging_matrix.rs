//! The tagging matrix, end to end: one real `changehub serve`, one catalog
//! written for it, and for every case signed webhooks built from the samples
//! in events/ with their times, ids, repository or service and environment
//! edited. Each case has services of its own, so no case touches another.
//!
//! The cases run side by side, as concurrent senders would (each case's
//! deliveries in order), and events flow asynchronously. Every case's
//! deployments are sent, and each change waited for (polling, with a
//! deadline); then every case's incidents, and last a sentinel incident on a
//! service of its own. The hub's correlate consumer takes incident events
//! one at a time in the order they were accepted, so once the sentinel's
//! record exists every earlier incident has been recorded, tagged (both
//! ways) and told: what is not tagged by then never will be, and a count of
//! one is final. Every case is then checked and every failure reported by
//! name.
//!
//! An incident delivered before its deployment (out of order) is tested
//! with the behaviour that re-checks incidents, not here.

use crate::common;

use changehub::domain::ChangeId;
use changehub::ingest::{Origin, sign};
use chrono::{DateTime, TimeZone, Utc};
use common::{Served, import_catalog_file, token};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The webhook secrets the hub is started with and the test signs with.
const SECRETS: [(&str, &str); 5] = [
    ("CHANGEHUB_GITHUB_SECRET", "matrix-github-secret"),
    ("CHANGEHUB_GITLAB_TOKEN", "matrix-gitlab-token"),
    ("CHANGEHUB_PAGERDUTY_SECRET", "matrix-pagerduty-secret"),
    ("CHANGEHUB_INCIDENTIO_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("CHANGEHUB_ALERTMANAGER_TOKEN", "matrix-alertmanager-token"),
];

/// The secret `origin` signs with (AWS events are sent with a bearer token instead).
fn secret(origin: Origin) -> &'static str {
    let variable = match origin {
        Origin::Github => "CHANGEHUB_GITHUB_SECRET",
        Origin::Gitlab => "CHANGEHUB_GITLAB_TOKEN",
        Origin::Pagerduty => "CHANGEHUB_PAGERDUTY_SECRET",
        Origin::Incidentio => "CHANGEHUB_INCIDENTIO_SECRET",
        Origin::Alertmanager => "CHANGEHUB_ALERTMANAGER_TOKEN",
        Origin::Aws | Origin::Argocd => return "",
    };
    SECRETS.iter().find(|(name, _)| *name == variable).map_or("", |(_, secret)| secret)
}

/// How long an event may take to be applied.
const DEADLINE: Duration = Duration::from_secs(15);

/// The catalog's services: name, tier, what it depends on. Every name is
/// mapped the same way (see [`catalog`]).
const SERVICES: &[(&str, u8, &[&str])] = &[
    ("tag-same", 1, &[]),
    ("dep-api", 2, &["dep-db"]),
    ("dep-db", 2, &[]),
    ("tag-failed", 2, &[]),
    ("tag-rollback", 2, &[]),
    ("tag-running", 2, &[]),
    ("solo-a", 3, &[]),
    ("solo-b", 3, &[]),
    ("down-web", 2, &["down-core"]),
    ("down-core", 2, &[]),
    ("too-old", 2, &[]),
    ("too-late", 2, &[]),
    ("staged", 2, &[]),
    ("edge-in", 2, &[]),
    ("edge-out", 2, &[]),
    ("dup", 2, &[]),
    ("gl-svc", 2, &[]),
    ("am-svc", 2, &[]),
    ("cw-svc", 2, &[]),
    ("sentinel", 4, &[]),
];

/// A catalog with a 4h window, one hop of dependencies, `production` as the
/// only production environment (`staging` is not), the pipelines' change
/// types by tier, and for every service of [`SERVICES`] the names its events
/// carry: repository `acme/<name>` (GitHub and GitLab), PagerDuty service
/// [`pagerduty_service`], incident.io service and alert label `<name>`, and
/// alarm ARNs starting with [`alarm_arn`]'s prefix.
fn catalog() -> String {
    let mut yaml = String::from(
        "roles:\n  requester: [engineers]\n\
         correlation:\n  window: 4h\n  hops: 1\n  production_environments: [production]\n\
         pipelines:\n  production:\n    - {tiers: [1], type: normal}\n    - {tiers: [2, 3, 4], type: standard}\n\
         \x20 rollback_words: [rollback, revert]\n\
         services:\n",
    );
    for (name, tier, depends_on) in SERVICES {
        yaml.push_str(&format!(
            "  - name: {name}\n    owner_group: {name}-team\n    tier: {tier}\n    depends_on: [{deps}]\n    mappings:\n\
             \x20     repositories: [acme/{name}]\n      pagerduty_services: [{pd}]\n\
             \x20     incidentio_services: [{name}]\n      alert_labels: [{name}]\n\
             \x20     aws_arn_prefixes: [\"{arn}\"]\n",
            deps = depends_on.join(", "),
            pd = pagerduty_service(name),
            arn = alarm_arn(name, ""),
        ));
    }
    yaml
}

fn pagerduty_service(service: &str) -> String {
    format!("P{}", service.replace('-', "").to_uppercase())
}

fn alarm_arn(service: &str, alarm: &str) -> String {
    format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{service}-{alarm}")
}

/// When the cases' incidents start; deployments are placed around it.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 12, 0, 0).single().unwrap_or_default()
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A sample from events/ with the fields at these JSON pointers replaced;
/// a pointer the sample does not have is a mistake in the test.
fn sample(file: &str, edits: &[(&str, Value)]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(file);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    for (pointer, new) in edits {
        *value.pointer_mut(pointer).unwrap_or_else(|| panic!("{file} has no {pointer}")) = new.clone();
    }
    value
}

/// One delivery of a webhook (or, from AWS, of an EventBridge event).
#[derive(Clone)]
struct Delivery {
    origin: Origin,
    /// The event as the sample files name it (`deployment_status`, GitLab's `deployment`).
    event: &'static str,
    /// The delivery id the sender puts in its header.
    id: String,
    body: Vec<u8>,
    /// Whether the hub must answer it as a duplicate.
    duplicate: bool,
}

impl Delivery {
    fn new(origin: Origin, event: &'static str, body: &Value) -> Self {
        let body = serde_json::to_vec_pretty(body).unwrap_or_default();
        Self { origin, event, id: uuid::Uuid::now_v7().to_string(), body, duplicate: false }
    }

    /// The same delivery again, as a sender retries it.
    fn again(&self) -> Self {
        Self { duplicate: true, ..self.clone() }
    }

    /// The same signed body under a new delivery id, as a captured delivery replayed.
    fn renamed(&self) -> Self {
        Self { id: uuid::Uuid::now_v7().to_string(), duplicate: true, ..self.clone() }
    }
}

/// How a deployment ends, as each source says it.
#[derive(Clone, Copy)]
enum Deploy {
    Succeeded,
    Failed,
    /// Succeeded, with a rollback word in its description.
    RolledBack,
    /// In progress: no outcome yet.
    Running,
}

impl Deploy {
    /// The change's state once the deployment is applied.
    fn change_state(self) -> &'static str {
        match self {
            Deploy::Succeeded => "completed",
            Deploy::Failed => "failed",
            Deploy::RolledBack => "rolled_back",
            Deploy::Running => "implementing",
        }
    }
}

/// A deployment's deliveries and the change they make.
struct Deployment {
    deliveries: Vec<Delivery>,
    change: ChangeId,
    state: &'static str,
}

impl Deployment {
    fn new(origin: Origin, event: &'static str, body: &Value, repository: &str, id: u64, how: Deploy) -> Self {
        let source = origin.as_str();
        let change = ChangeId::derived(&["default", source, &repository.to_ascii_lowercase(), &id.to_string()]);
        Self { deliveries: vec![Delivery::new(origin, event, body)], change, state: how.change_state() }
    }
}

/// A GitHub `deployment_status` of deployment `id` of `acme/<service>` to
/// `environment`, at `at`.
fn github(service: &str, id: u64, environment: &str, how: Deploy, at: DateTime<Utc>) -> Deployment {
    let (file, state, description) = match how {
        Deploy::Succeeded => ("success", "success", "Deployment finished successfully."),
        Deploy::Failed => ("failure", "failure", "Deployment failed: helm upgrade timed out waiting for rollout"),
        Deploy::RolledBack => ("success", "success", "Rollback to the previous release finished."),
        Deploy::Running => ("success", "in_progress", "Deployment started."),
    };
    let repository = format!("acme/{service}");
    let body = sample(
        &format!("github/deployment_status.{file}.json"),
        &[
            ("/repository/full_name", json!(repository)),
            ("/repository/name", json!(service)),
            ("/deployment/id", json!(id)),
            ("/deployment/environment", json!(environment)),
            ("/deployment/original_environment", json!(environment)),
            ("/deployment/production_environment", json!(environment == "production")),
            ("/deployment_status/environment", json!(environment)),
            ("/deployment_status/state", json!(state)),
            ("/deployment_status/description", json!(description)),
            ("/deployment_status/created_at", json!(rfc3339(at))),
            ("/deployment_status/updated_at", json!(rfc3339(at))),
        ],
    );
    Deployment::new(Origin::Github, "deployment_status", &body, &repository, id, how)
}

/// A GitLab Deployment Hook of deployment `id` of project `acme/<service>` to production, at `at`.
fn gitlab(service: &str, id: u64, at: DateTime<Utc>) -> Deployment {
    let repository = format!("acme/{service}");
    let body = sample(
        "gitlab/deployment.success.json",
        &[
            ("/deployment_id", json!(id)),
            ("/status_changed_at", json!(at.format("%Y-%m-%d %H:%M:%S %z").to_string())),
            ("/project/name", json!(service)),
            ("/project/path_with_namespace", json!(repository)),
        ],
    );
    Deployment::new(Origin::Gitlab, "deployment", &body, &repository, id, Deploy::Succeeded)
}

/// An incident's deliveries and the records they make: each by source and external id.
struct Incident {
    deliveries: Vec<Delivery>,
    service: &'static str,
    source: &'static str,
    external_ids: Vec<String>,
}

/// A PagerDuty incident on `service` started at `at`: the sample event
/// `file` (`incident.triggered`, `incident.acknowledged`...), `minutes_later` after the start.
fn pagerduty_event(file: &'static str, service: &'static str, at: DateTime<Utc>, minutes_later: i64) -> Incident {
    let external_id = format!("Q{}", service.replace('-', "").to_uppercase());
    let body = sample(
        &format!("pagerduty/{file}.json"),
        &[
            ("/event/id", json!(uuid::Uuid::now_v7().simple().to_string().to_uppercase())),
            ("/event/occurred_at", json!(rfc3339(at + minutes(minutes_later)))),
            ("/event/data/id", json!(external_id)),
            ("/event/data/created_at", json!(rfc3339(at))),
            ("/event/data/service/id", json!(pagerduty_service(service))),
            ("/event/data/service/summary", json!(service)),
        ],
    );
    let deliveries = vec![Delivery::new(Origin::Pagerduty, "incident", &body)];
    Incident { deliveries, service, source: "pagerduty", external_ids: vec![external_id] }
}

fn pagerduty(service: &'static str, at: DateTime<Utc>) -> Incident {
    pagerduty_event("incident.triggered", service, at, 0)
}

/// An incident.io incident created on `service` at `at`.
fn incidentio(service: &'static str, at: DateTime<Utc>) -> Incident {
    let external_id = format!("01MATRIX{}", service.replace('-', "").to_uppercase());
    let at = rfc3339(at);
    let field = "/public_incident.incident_created_v2/custom_field_entries/0";
    let body = sample(
        "incidentio/public_incident.incident_created_v2.json",
        &[
            ("/public_incident.incident_created_v2/id", json!(external_id)),
            ("/public_incident.incident_created_v2/created_at", json!(at)),
            ("/public_incident.incident_created_v2/updated_at", json!(at)),
            ("/public_incident.incident_created_v2/last_activity_at", json!(at)),
            ("/public_incident.incident_created_v2/incident_timestamp_values/0/value/value", json!(at)),
            (&format!("{field}/custom_field/options/0/value"), json!(service)),
            (&format!("{field}/values/0/value_option/value"), json!(service)),
        ],
    );
    let deliveries = vec![Delivery::new(Origin::Incidentio, "public_incident", &body)];
    Incident { deliveries, service, source: "incidentio", external_ids: vec![external_id] }
}

/// An Alertmanager notification of the sample's two firing alerts, both on
/// `service` in production and started at `at`: two incident records.
fn alertmanager(service: &'static str, at: DateTime<Utc>) -> Incident {
    let fingerprint = |i: usize| hex::encode(&Sha256::digest(format!("{service}/{i}"))[..8]);
    let group = format!("{{}}/{{team=\"{service}-team\"}}:{{alertname=\"HighErrorRate\", service=\"{service}\"}}");
    let mut edits: Vec<(String, Value)> = vec![
        ("/groupKey".into(), json!(group)),
        ("/groupLabels/service".into(), json!(service)),
        ("/commonLabels/service".into(), json!(service)),
    ];
    for i in 0..2 {
        edits.push((format!("/alerts/{i}/labels/service"), json!(service)));
        edits.push((format!("/alerts/{i}/startsAt"), json!(rfc3339(at))));
        edits.push((format!("/alerts/{i}/fingerprint"), json!(fingerprint(i))));
    }
    let edits: Vec<(&str, Value)> = edits.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    let body = sample("alertmanager/firing.json", &edits);
    let deliveries = vec![Delivery::new(Origin::Alertmanager, "firing", &body)];
    Incident { deliveries, service, source: "alertmanager", external_ids: (0..2).map(fingerprint).collect() }
}

/// A CloudWatch alarm on `service` entering ALARM at `at`, as EventBridge delivers it.
fn cloudwatch(service: &'static str, at: DateTime<Utc>) -> Incident {
    let arn = alarm_arn(service, "alb-5xx-high");
    let body = sample(
        "aws/cloudwatch.alarm_state_change.json",
        &[
            ("/id", json!(uuid::Uuid::now_v7().to_string())),
            ("/time", json!(rfc3339(at))),
            ("/resources/0", json!(arn)),
            ("/detail/alarmName", json!(format!("{service}-alb-5xx-high"))),
            ("/detail/state/timestamp", json!(at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string())),
        ],
    );
    let deliveries = vec![Delivery::new(Origin::Aws, "cloudwatch", &body)];
    Incident { deliveries, service, source: "cloudwatch", external_ids: vec![arn] }
}

/// What a case must end with.
enum Expect {
    /// Every incident of the case relates the case's one change, for these
    /// reasons with this confidence, both ways, told once.
    Tagged { reasons: &'static [&'static str], confidence: f64 },
    /// No incident of the case relates any change.
    NotTagged,
}

struct Case {
    name: &'static str,
    deployments: Vec<Deployment>,
    incidents: Vec<Incident>,
    expect: Expect,
}

fn tagged(reasons: &'static [&'static str], confidence: f64) -> Expect {
    Expect::Tagged { reasons, confidence }
}

const CLOSE: &[&str] = &["same_service", "time_proximity"];

fn cases() -> Vec<Case> {
    use Deploy::*;
    let t = t0();
    let before = t - minutes(10);
    let case = |name, deployments, incidents, expect| Case { name, deployments, incidents, expect };
    let mut duplicated = github("dup", 13, "production", Succeeded, before);
    let first = duplicated.deliveries[0].clone();
    duplicated.deliveries.extend([first.again(), first.renamed()]);
    let mut told_twice = pagerduty("dup", t);
    let first = told_twice.deliveries[0].clone();
    told_twice.deliveries.extend([first.again(), first.renamed()]);
    vec![
        // 400 + 150 × 230/240 (closeness, integer points): 543.
        case(
            "same service",
            vec![github("tag-same", 1, "production", Succeeded, before)],
            vec![pagerduty("tag-same", t)],
            tagged(CLOSE, 0.543),
        ),
        case(
            "dependency",
            vec![github("dep-db", 2, "production", Succeeded, before)],
            vec![pagerduty("dep-api", t)],
            tagged(&["dependency", "time_proximity"], 0.393),
        ),
        case(
            "failed deployment",
            vec![github("tag-failed", 3, "production", Failed, before)],
            vec![pagerduty("tag-failed", t)],
            tagged(&["same_service", "failed_deployment", "time_proximity"], 0.743),
        ),
        case(
            "rolled back",
            vec![github("tag-rollback", 4, "production", RolledBack, before)],
            vec![pagerduty("tag-rollback", t)],
            tagged(&["same_service", "rolled_back", "time_proximity"], 0.743),
        ),
        case(
            "in progress",
            vec![github("tag-running", 5, "production", Running, before)],
            vec![pagerduty("tag-running", t)],
            tagged(&["same_service", "in_progress"], 0.6),
        ),
        case(
            "unrelated service",
            vec![github("solo-a", 6, "production", Succeeded, before)],
            vec![pagerduty("solo-b", t)],
            Expect::NotTagged,
        ),
        case(
            "downstream service",
            vec![github("down-web", 7, "production", Succeeded, before)],
            vec![pagerduty("down-core", t)],
            Expect::NotTagged,
        ),
        case(
            "change too old",
            vec![github("too-old", 8, "production", Succeeded, t - minutes(5 * 60))],
            vec![pagerduty("too-old", t)],
            Expect::NotTagged,
        ),
        case(
            "incident before the change",
            vec![github("too-late", 9, "production", Succeeded, t + minutes(10))],
            vec![pagerduty("too-late", t)],
            Expect::NotTagged,
        ),
        case(
            "staging deployment",
            vec![github("staged", 10, "staging", Succeeded, before)],
            vec![pagerduty("staged", t)],
            Expect::NotTagged,
        ),
        case(
            "window edge: ended exactly 4h before",
            vec![github("edge-in", 11, "production", Succeeded, t - minutes(4 * 60))],
            vec![pagerduty("edge-in", t)],
            tagged(&["same_service"], 0.4),
        ),
        case(
            "window edge: ended 4h and 1s before",
            vec![github("edge-out", 12, "production", Succeeded, t - minutes(4 * 60) - chrono::Duration::seconds(1))],
            vec![pagerduty("edge-out", t)],
            Expect::NotTagged,
        ),
        // Each delivery twice (a retry, and the same body under a new id),
        // then the incident acknowledged: one link, one count, one notification.
        case(
            "duplicates",
            vec![duplicated],
            vec![told_twice, pagerduty_event("incident.acknowledged", "dup", t, 3)],
            tagged(CLOSE, 0.543),
        ),
        case(
            "GitLab deployment, incident.io incident",
            vec![gitlab("gl-svc", 14, before)],
            vec![incidentio("gl-svc", t)],
            tagged(CLOSE, 0.543),
        ),
        case(
            "Alertmanager alerts",
            vec![github("am-svc", 15, "production", Succeeded, before)],
            vec![alertmanager("am-svc", t)],
            tagged(CLOSE, 0.543),
        ),
        case(
            "CloudWatch alarm",
            vec![github("cw-svc", 16, "production", Succeeded, before)],
            vec![cloudwatch("cw-svc", t)],
            tagged(CLOSE, 0.543),
        ),
    ]
}

/// The hub under test, and a client with the tokens it needs.
struct Hub {
    served: Served,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    /// An engineer: reads changes and incidents.
    reader: String,
    /// The bootstrap admin: sends AWS events to `/events`.
    admin: String,
}

impl Hub {
    fn start() -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = Served::start_with(dir.path(), &SECRETS);
        let file = dir.path().join("catalog.yaml");
        std::fs::write(&file, catalog()).expect("write the catalog");
        import_catalog_file(dir.path(), &served.base, &file);
        let reader = token(dir.path(), "alice@example.com", "engineers");
        let admin = token(dir.path(), "root@example.com", "changehub-admins");
        Hub { served, dir, http: reqwest::Client::new(), reader, admin }
    }

    /// Sends one delivery, signed as its sender signs it; an error unless
    /// it is accepted (202), or answered as a duplicate when it is one.
    async fn send(&self, d: &Delivery) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (status, text) = self.post(d).await?;
            // Busy: more deliveries than the hub reads at once; a sender retries.
            if status == 503 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let duplicate = status == 200 && text.contains("\"duplicate\":true");
            let (origin, id) = (d.origin.as_str(), &d.id);
            return match (d.duplicate, status, duplicate) {
                (false, 202, _) | (true, _, true) => Ok(()),
                (false, ..) => Err(format!("{origin} delivery {id}: {status} {text}; expected 202")),
                (true, ..) => Err(format!("{origin} delivery {id}: {status} {text}; expected a duplicate")),
            };
        }
    }

    /// Posts one delivery, signed as its sender signs it: the status and body of the answer.
    async fn post(&self, d: &Delivery) -> Result<(u16, String), String> {
        let base = &self.served.base;
        let request = match d.origin {
            Origin::Aws => self
                .http
                .post(format!("{base}/events"))
                .bearer_auth(&self.admin)
                .header("content-type", "application/json"),
            origin => {
                let headers = sign::delivery(origin, secret(origin), d.event, &d.id, &d.body, Utc::now());
                self.http.post(format!("{base}/webhooks/{}", origin.as_str())).headers(headers)
            }
        };
        let answer = request.body(d.body.clone()).send().await.map_err(|e| format!("sending: {e}"))?;
        let status = answer.status().as_u16();
        Ok((status, answer.text().await.unwrap_or_default()))
    }

    /// Sends each deployment of `case` and waits until its change is recorded.
    async fn deploy(&self, case: &Case) -> Vec<String> {
        let mut problems = Vec::new();
        for d in case.deployments.iter().flat_map(|d| &d.deliveries) {
            problems.extend(self.send(d).await.err());
        }
        for d in &case.deployments {
            problems.extend(self.wait_for_change(&d.change, d.state).await.err());
        }
        problems
    }

    /// Sends each incident delivery of `case`.
    async fn alert(&self, case: &Case) -> Vec<String> {
        let mut problems = Vec::new();
        for d in case.incidents.iter().flat_map(|i| &i.deliveries) {
            problems.extend(self.send(d).await.err());
        }
        problems
    }

    /// `GET path` as the reader: the JSON, `None` on 404.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Option<Value>, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.served.base), query)
            .map_err(|e| format!("{path}: {e}"))?;
        let got = self.http.get(url).bearer_auth(&self.reader).send().await.map_err(|e| e.to_string())?;
        match got.status().as_u16() {
            200 => got.json().await.map(Some).map_err(|e| e.to_string()),
            404 => Ok(None),
            status => Err(format!("GET {path}: {status} {}", got.text().await.unwrap_or_default())),
        }
    }

    async fn change(&self, id: &ChangeId) -> Result<Option<Value>, String> {
        self.get(&format!("/changes/{id}"), &[]).await
    }

    /// The incident record of `source` and `external_id`, if there is one.
    async fn incident(&self, source: &str, external_id: &str) -> Result<Option<Value>, String> {
        let page = self.get("/incidents", &[("source", source), ("external_id", external_id)]).await?;
        Ok(page.and_then(|p| p["incidents"].get(0).cloned()))
    }

    /// Polls until the change is in `state`.
    async fn wait_for_change(&self, id: &ChangeId, state: &str) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let change = self.change(id).await?;
            if change.as_ref().is_some_and(|c| c["state"] == state) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let now = change.map_or("no change".to_owned(), |c| format!("state {}", c["state"]));
                return Err(format!("change {id} never reached {state}: {now}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the incident has a record.
    async fn wait_for_incident(&self, source: &str, external_id: &str) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        while self.incident(source, external_id).await?.is_none() {
            if Instant::now() >= deadline {
                return Err(format!("no {source} incident {external_id}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// The `change_related_incident` lines of the notifications file's feed (one per tag).
    fn tag_notifications(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("notifications.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|n| n["attributes"]["type"] == "change_related_incident" && n["attributes"]["audience"] == "feed")
            .collect()
    }
}

fn entries(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The notifications of the tags of `record`.
fn told_of<'a>(told: &'a [Value], record: &Value) -> Vec<&'a Value> {
    told.iter().filter(|n| n["body"]["incident"]["id"] == record["id"]).collect()
}

/// Everything wrong with `case` once every event was applied.
async fn check(hub: &Hub, case: &Case, told: &[Value]) -> Result<Vec<String>, String> {
    let mut wrong = Vec::new();
    let mut records = Vec::new();
    let incidents: BTreeSet<(&str, &str, &str)> = case
        .incidents
        .iter()
        .flat_map(|i| i.external_ids.iter().map(move |e| (i.source, e.as_str(), i.service)))
        .collect();
    for (source, external_id, service) in incidents {
        let Some(record) = hub.incident(source, external_id).await? else {
            wrong.push(format!("no {source} incident {external_id}"));
            continue;
        };
        // A record without its service would be "not tagged" for the wrong reason.
        if record["service"] != service {
            wrong.push(format!("{source} {external_id} is on {}, not {service}", record["service"]));
        }
        records.push(record);
    }
    match &case.expect {
        Expect::NotTagged => {
            for record in &records {
                if record["change_related"] != false || !entries(&record["related_changes"]).is_empty() {
                    wrong.push(format!("{} is tagged: {}", record["external_id"], record["related_changes"]));
                }
                if !told_of(told, record).is_empty() {
                    wrong.push(format!("a change_related_incident notification names {}", record["external_id"]));
                }
            }
            for deployment in &case.deployments {
                let change = hub.change(&deployment.change).await?.unwrap_or_default();
                if !entries(&change["related_incidents"]).is_empty() {
                    wrong.push(format!("change {} lists {}", deployment.change, change["related_incidents"]));
                }
            }
        }
        Expect::Tagged { reasons, confidence } => {
            let [deployment] = &case.deployments[..] else { return Err("a tagged case has one deployment".into()) };
            let id = deployment.change.to_string();
            let change = hub.change(&deployment.change).await?.unwrap_or_default();
            let services: Vec<&str> = entries(&change["services"]).iter().filter_map(Value::as_str).collect();
            for record in &records {
                let related = entries(&record["related_changes"]);
                let fits = |r: &Value| {
                    r["change_id"] == id.as_str()
                        && r["reasons"] == json!(reasons)
                        && r["confidence"].as_f64().is_some_and(|c| (c - confidence).abs() < 1e-9)
                        && r["explanation"].as_str().is_some_and(|e| !e.is_empty())
                };
                if record["change_related"] != true || related.len() != 1 || !fits(&related[0]) {
                    wrong.push(format!(
                        "{} relates {}; expected change {id} for {reasons:?} with confidence {confidence}",
                        record["external_id"], record["related_changes"]
                    ));
                }
                let severity = record["severity"].as_str().or(record["priority"].as_str()).unwrap_or("unknown");
                let attributes = json!({
                    "type": "change_related_incident", "kind": "Change Related Incident", "tenant": "default",
                    "service": record["service"], "severity": severity, "major": record["major"].to_string(),
                    "environment": "production", "services": services.join(","), "audience": "feed",
                });
                match told_of(told, record).as_slice() {
                    [n] if n["body"]["change"]["id"] == id.as_str() && n["attributes"] == attributes => {}
                    notices => wrong.push(format!(
                        "notifications of {}: {notices:?}; expected one naming change {id} with attributes {attributes}",
                        record["external_id"]
                    )),
                }
            }
            let listed = entries(&change["related_incidents"]);
            let ids: BTreeSet<&str> = listed.iter().filter_map(|r| r["incident_id"].as_str()).collect();
            let expected: BTreeSet<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
            if listed.len() != records.len() || ids != expected {
                wrong.push(format!("change {id} lists {}", change["related_incidents"]));
            }
            // The change's failure is counted once: by its outcome, or by its first incident.
            let counted = listed.iter().filter(|r| r["counted"].is_string()).count();
            let already_failed = matches!(deployment.state, "failed" | "rolled_back");
            if counted != usize::from(!already_failed) {
                wrong.push(format!("change {id} ({}) counts {counted} incidents", deployment.state));
            }
            let audit = hub.get(&format!("/changes/{id}/audit"), &[]).await?.unwrap_or_default();
            let links = entries(&audit["entries"]).iter().filter(|e| e["action"] == "incident_related").count();
            if links != records.len() {
                wrong.push(format!("change {id} has {links} incident_related audit entries"));
            }
        }
    }
    Ok(wrong)
}

/// Runs `step` for every case at once; the problems it found, each named by its case.
async fn every_case<F, Fut>(hub: &Arc<Hub>, cases: &Arc<Vec<Case>>, step: F) -> Vec<String>
where
    F: Fn(Arc<Hub>, Arc<Vec<Case>>, usize) -> Fut,
    Fut: Future<Output = Vec<String>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in cases.iter().enumerate() {
        let (name, step) = (case.name, step(hub.clone(), cases.clone(), i));
        tasks.spawn(async move { step.await.into_iter().map(|p| format!("{name}: {p}")).collect::<Vec<_>>() });
    }
    let mut problems = Vec::new();
    while let Some(done) = tasks.join_next().await {
        problems.extend(done.unwrap_or_else(|e| vec![format!("a case stopped: {e}")]));
    }
    problems
}

/// Every case of the matrix on one hub; a failure names every case that failed and why.
#[tokio::test]
async fn every_tagging_case_holds_through_changehub_serve() {
    let hub = Arc::new(Hub::start());
    let cases = Arc::new(cases());
    let mut failures = every_case(&hub, &cases, |hub, cases, i| async move { hub.deploy(&cases[i]).await }).await;
    failures.extend(every_case(&hub, &cases, |hub, cases, i| async move { hub.alert(&cases[i]).await }).await);
    // The correlate consumer applies incident events in order: once the
    // sentinel's record exists, every incident above has been applied.
    let sentinel = pagerduty("sentinel", t0());
    hub.send(&sentinel.deliveries[0]).await.expect("the sentinel is accepted");
    hub.wait_for_incident("pagerduty", &sentinel.external_ids[0]).await.expect("the sentinel is applied");

    let told = Arc::new(hub.tag_notifications());
    failures.extend(
        every_case(&hub, &cases, |hub, cases, i| {
            let told = told.clone();
            async move { check(&hub, &cases[i], &told).await.unwrap_or_else(|e| vec![e]) }
        })
        .await,
    );
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    let Ok(hub) = Arc::try_unwrap(hub) else { panic!("every case is done with the hub") };
    hub.served.interrupt();
}
