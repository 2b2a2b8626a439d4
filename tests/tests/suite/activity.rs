//! The activity log: its store contract on both stores; what ingest records
//! (webhooks and AWS events, one row per accepted event whatever is
//! retried); and `GET /activity` on the local hub.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::{SecretsDocument, StaticSecrets};
use changehub::adapters::local_bus::LocalBus;
use changehub::app::activity::ActivityRetention;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{DeliveryOutcome, Ingest, IngestError, Webhooks};
use changehub::domain::{EventPattern, HubEvent, TenantId};
use changehub::http::bearer::LocalKey;
use changehub::http::{finish, webhooks};
use changehub::ingest::{Origin, sign};
use changehub::local::{Hub, HubConfig};
use changehub::ports::{Activity, ActivityLog, ActivityQuery, Claim, Dedupe, Page, StoreError, SystemClock};
use changehub_tests::activity_contract as contract;
use changehub_tests::aws;
use changehub_tests::http::{Answer, call_as, send};
use changehub_tests::samples::{ROOT, WEBHOOK_ORIGINS, secret_for};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::ingest::FlakyBus;
use super::store_contract::{contract_cases, embedded};

contract_cases!(
    activity_is_listed_newest_first_within_since_and_until,
    recording_an_event_again_replaces_its_row,
    a_filtered_page_reads_a_bounded_number_of_rows_and_hands_back_a_cursor,
    expired_activity_is_not_listed,
    foreign_activity_cursors_are_refused,
);

// ---------------------------------------------------------------------------
// What ingest records

/// A change id the crafted deployment names.
const CHANGE_ID: &str = "0193a1fc-2807-77b8-8313-5a6aafca8d3a";

fn sample(file: &str) -> Vec<u8> {
    std::fs::read(format!("{ROOT}/events/{file}")).expect("sample")
}

/// GitHub's deployment_status sample, on a repository the sample catalog
/// maps to `payments`, whose deployment names [`CHANGE_ID`].
fn deployment() -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample("github/deployment_status.success.json")).expect("json");
    body["repository"]["full_name"] = json!("acme-corp/checkout-service");
    body["deployment"]["description"] = json!(format!("Release for change {CHANGE_ID}"));
    body.to_string().into_bytes()
}

/// `body` as `origin` sends a delivery of `event` to the default tenant, under `delivery`.
fn webhook(origin: Origin, event: &str, delivery: &str, body: Vec<u8>) -> Request<Body> {
    let headers = sign::delivery(origin, secret_for(origin), event, delivery, &body, Utc::now());
    let mut req = Request::builder().method("POST").uri(format!("/webhooks/{}", origin.as_str()));
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.body(Body::from(body)).expect("request")
}

/// A CloudWatch alarm as an EventBridge rule delivers it.
fn alarm_envelope(id: &str) -> Vec<u8> {
    json!({
        "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": "2026-12-01T22:10:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:payments-5xx"],
        "detail": {"alarmName": "payments-5xx", "state": {"value": "ALARM"}}
    })
    .to_string()
    .into_bytes()
}

fn secrets() -> StaticSecrets {
    let mut doc = SecretsDocument::new();
    for origin in WEBHOOK_ORIGINS {
        doc.entry("default".into()).or_default().insert(origin.as_str().into(), vec![secret_for(origin).into()]);
    }
    StaticSecrets::new(doc)
}

/// The local hub of `changehub serve` with the sample catalog in tenant `default`.
struct Local {
    hub: Hub,
    key: LocalKey,
    _dir: tempfile::TempDir,
}

impl Local {
    async fn start(retention: ActivityRetention) -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("hub.db");
        let hub = Hub::open(&HubConfig {
            db: db.clone(),
            notifications: dir.path().join("n.jsonl"),
            secrets: secrets(),
            bootstrap_admin_group: Some("changehub-admins".into()),
            limits: Default::default(),
            activity_retention: retention,
            public_url: None,
        })
        .expect("open the local hub");
        let key = LocalKey::for_database(&db).expect("the hub's key");
        let local = Local { hub, key, _dir: dir };
        let catalog = std::fs::read(format!("{ROOT}/events/catalog/acme.yaml")).expect("catalog");
        let req = Request::put("/catalog")
            .header("authorization", format!("Bearer {}", local.token("root@example.com", &["changehub-admins"])))
            .header("content-type", "application/yaml")
            .body(Body::from(catalog))
            .expect("request");
        assert_eq!(send(&local.router(), req).await.status, StatusCode::OK, "import the sample catalog");
        local
    }

    fn router(&self) -> Router {
        self.hub.router()
    }

    fn token(&self, user: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let tenant = TenantId::parse("default").expect("tenant");
        self.key.mint(user, &groups, &tenant, Utc::now(), Duration::hours(1)).expect("mint")
    }

    /// `GET /activity?{query}` as Alice, a requester.
    async fn activity(&self, query: &str) -> Answer {
        let alice = self.token("alice@example.com", &["engineers"]);
        call_as(&self.router(), &alice, "GET", &format!("/activity?{query}"), None).await
    }

    /// The event ids `GET /activity?{query}` lists, which must succeed.
    async fn listed(&self, query: &str) -> Vec<String> {
        let a = self.activity(query).await;
        assert_eq!(a.status, StatusCode::OK, "{query}: {:?}", a.body);
        let rows = a.body["activity"].as_array().cloned().unwrap_or_default();
        rows.iter().map(|r| r["event_id"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

fn event_ids(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    let ids = a.body["events"].as_array().cloned().unwrap_or_default();
    ids.iter().map(|i| i.as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn every_accepted_event_is_listed_once_with_its_service_changes_and_delivery() {
    let local = Local::start(ActivityRetention::default()).await;
    let before = Utc::now();
    let github = send(&local.router(), webhook(Origin::Github, "deployment_status", "gh-1", deployment())).await;
    let github = event_ids(&github);
    let alerts = webhook(Origin::Alertmanager, "firing", "am-1", sample("alertmanager/firing.json"));
    let alerts = event_ids(&send(&local.router(), alerts).await);
    assert_eq!(alerts.len(), 2, "one event per alert");
    let tenant = TenantId::parse("default").expect("tenant");
    let replay = local.key.mint_ingest("replay", &tenant, Utc::now(), Duration::hours(1)).expect("mint");
    let aws = Request::post("/events")
        .header("authorization", format!("Bearer {replay}"))
        .body(Body::from(alarm_envelope("7bf73129-1428-4cd3-a780-95db273d1602")))
        .expect("request");
    let aws = event_ids(&send(&local.router(), aws).await);
    // A redelivery under a new delivery id is a duplicate: no second row.
    let again = send(&local.router(), webhook(Origin::Github, "deployment_status", "gh-2", deployment())).await;
    assert_eq!(again.body, json!({"duplicate": true}));

    let all = local.activity("").await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    let rows: Vec<Activity> = serde_json::from_value(all.body["activity"].clone()).expect("activity rows");
    let mut listed: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    listed.sort();
    let mut accepted = [github.clone(), alerts.clone(), aws.clone()].concat();
    accepted.sort();
    assert_eq!(listed, accepted, "each accepted event once");
    assert!(rows.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at), "newest first by event time");
    assert_eq!(all.body["next_cursor"], Value::Null);

    let deployment = rows.iter().find(|r| r.event_id == github[0]).expect("the deployment's row");
    assert_eq!(
        (deployment.detail_type.as_str(), deployment.source.as_str(), deployment.service.as_deref()),
        ("Deployment Status Changed", "changehub.github", Some("payments"))
    );
    assert_eq!(
        (deployment.change_ids.as_slice(), deployment.delivery_id.as_str()),
        ([CHANGE_ID.to_owned()].as_slice(), "gh-1")
    );
    assert_eq!(deployment.occurred_at.to_rfc3339(), "2026-09-14T10:34:11+00:00", "the event's own time");
    assert!(deployment.received_at >= before && deployment.received_at <= Utc::now(), "the time it was accepted");
    assert_eq!(deployment.expires_at, deployment.received_at + Duration::days(30), "kept 30 days by default");
    let alarm = rows.iter().find(|r| r.event_id == aws[0]).expect("the alarm's row");
    assert_eq!((alarm.service.as_deref(), alarm.delivery_id.as_str()), (None, "7bf73129-1428-4cd3-a780-95db273d1602"));
    assert!(alarm.service_reason.as_deref().is_some_and(|r| r.contains("no catalog mapping")), "{alarm:?}");

    // Filters, typed and forgiving: an origin or an event source, a type as written or as a file name.
    // The sample catalog maps both the repository and the alerts' `service` label to payments.
    let mut on_payments = local.listed("service=payments").await;
    on_payments.sort();
    let mut expected = [github.clone(), alerts.clone()].concat();
    expected.sort();
    assert_eq!(on_payments, expected);
    let mut firing = local.listed("source=alertmanager&type=alert-firing").await;
    firing.sort();
    let mut expected = alerts.clone();
    expected.sort();
    assert_eq!(firing, expected);
    assert_eq!(local.listed("source=changehub.aws").await, aws);
    assert_eq!(local.listed("since=2026-12-01T22:10:00Z&until=2026-12-01T22:10:00Z").await, aws);

    // A page at a time, newest first.
    let first = local.activity("limit=2").await;
    let cursor = first.body["next_cursor"].as_str().expect("a next page").to_owned();
    let second = local.listed(&format!("limit=2&cursor={}", cursor.replace('#', "%23"))).await;
    let first: Vec<String> = first.body["activity"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!([first, second].concat(), rows.iter().take(4).map(|r| r.event_id.clone()).collect::<Vec<_>>());
}

/// The embedded store, with an activity log that fails while `down` is set.
#[derive(Clone)]
struct FlakyLog {
    store: EmbeddedStore,
    down: Arc<AtomicBool>,
}

impl Dedupe for FlakyLog {
    async fn claim(
        &self,
        keys: &[String],
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        self.store.claim(keys, owner, now, lease).await
    }

    async fn complete(&self, keys: &[String], now: DateTime<Utc>, ttl: std::time::Duration) -> Result<(), StoreError> {
        self.store.complete(keys, now, ttl).await
    }

    async fn release(&self, keys: &[String], owner: &str) -> Result<(), StoreError> {
        self.store.release(keys, owner).await
    }
}

impl ActivityLog for FlakyLog {
    async fn record(&self, tenant: &TenantId, rows: &[Activity]) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::backend(true, "the activity log is throttled"));
        }
        self.store.record(tenant, rows).await
    }

    async fn activity(&self, query: &ActivityQuery) -> Result<Page<Activity>, StoreError> {
        self.store.activity(query).await
    }
}

struct Flaky {
    store: EmbeddedStore,
    log_down: Arc<AtomicBool>,
    bus_failures: Arc<AtomicUsize>,
    published: tokio::sync::mpsc::UnboundedReceiver<HubEvent>,
    ingest: Arc<Ingest<FlakyLog, FlakyBus, CachedCatalog<EmbeddedStore>, SystemClock>>,
    router: Router,
    _dir: tempfile::TempDir,
}

fn flaky(retention: ActivityRetention) -> Flaky {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("flaky.db")).expect("open");
    let log_down = Arc::new(AtomicBool::new(false));
    let bus_failures = Arc::new(AtomicUsize::new(0));
    let inner = LocalBus::new();
    let published = inner
        .add_rule("everything", EventPattern::parse(json!({"source": [{"prefix": "changehub."}]})).expect("pattern"));
    let bus = FlakyBus { failures_left: bus_failures.clone(), inner };
    let log = FlakyLog { store: store.clone(), down: log_down.clone() };
    let ingest = || {
        Ingest::new(log.clone(), bus.clone(), CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), SystemClock)
            .with_retention(retention)
    };
    let router = finish(webhooks::webhook_routes(
        Arc::new(Webhooks { ingest: ingest(), secrets: secrets() }),
        webhooks::WebhookLimits::default(),
    ));
    let ingest = Arc::new(ingest());
    Flaky { store, log_down, bus_failures, published, ingest, router, _dir: dir }
}

impl Flaky {
    async fn rows(&self) -> Vec<Activity> {
        let q = ActivityQuery {
            tenant: TenantId::parse("default").expect("tenant"),
            since: None,
            until: None,
            service: None,
            source: None,
            detail_type: None,
            now: Utc::now(),
            limit: 100,
            after: None,
        };
        self.store.activity(&q).await.expect("the log").items
    }

    fn published(&mut self) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(e) = self.published.try_recv() {
            ids.push(e.id);
        }
        ids
    }
}

/// The events got out but their rows could not be kept: the delivery is
/// answered 503 and its claim given back, so the sender's retry publishes
/// the same event ids again (consumers drop the copies) and lists each once.
#[tokio::test]
async fn a_failed_activity_write_is_retried_by_the_sender_and_lists_each_event_once() {
    let mut hub = flaky(ActivityRetention::default());
    hub.log_down.store(true, Ordering::SeqCst);
    let refused =
        send(&hub.router, webhook(Origin::Alertmanager, "firing", "am-1", sample("alertmanager/firing.json"))).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let first = hub.published();
    assert_eq!(first.len(), 2, "published before the log failed");
    assert!(hub.rows().await.is_empty());

    hub.log_down.store(false, Ordering::SeqCst);
    let retried =
        send(&hub.router, webhook(Origin::Alertmanager, "firing", "am-1", sample("alertmanager/firing.json"))).await;
    assert_eq!(event_ids(&retried), first, "the same event ids");
    assert_eq!(hub.published(), first);
    let mut rows: Vec<String> = hub.rows().await.into_iter().map(|r| r.event_id).collect();
    rows.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(rows, expected, "one row per event");

    // The same holds for AWS events (the aws-events function's path).
    hub.log_down.store(true, Ordering::SeqCst);
    let tenant = TenantId::parse("default").expect("tenant");
    let envelope = alarm_envelope("5cd0a3e2-0000-4000-8000-000000000001");
    match hub.ingest.aws_event(&tenant, &envelope).await {
        Err(IngestError::Store(StoreError::Backend { retryable: true, .. })) => {}
        other => panic!("a failed activity write is a retryable failure, got {other:?}"),
    }
    hub.log_down.store(false, Ordering::SeqCst);
    let Ok(DeliveryOutcome::Published(ids)) = hub.ingest.aws_event(&tenant, &envelope).await else {
        panic!("the retry is processed")
    };
    assert_eq!(hub.rows().await.iter().filter(|r| r.event_id == ids[0]).count(), 1);
}

/// A publish that fails lists nothing; the retry lists each event once,
/// kept for the configured retention.
#[tokio::test]
async fn a_failed_publish_lists_nothing_until_the_retry_and_rows_keep_the_configured_retention() {
    let mut hub = flaky(ActivityRetention::days(7).expect("7 days"));
    hub.bus_failures.store(1, Ordering::SeqCst);
    let req = || webhook(Origin::Alertmanager, "firing", "am-1", sample("alertmanager/firing.json"));
    let refused = send(&hub.router, req()).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("publish_failed"))
    );
    assert!(hub.rows().await.is_empty());
    let ids = event_ids(&send(&hub.router, req()).await);
    assert_eq!(hub.published(), ids);
    let rows = hub.rows().await;
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row.expires_at, row.received_at + Duration::days(7), "{row:?}");
    }
}

// ---------------------------------------------------------------------------
// GET /activity

#[tokio::test]
async fn reading_the_activity_log_needs_a_role_and_refuses_bad_filters_by_name() {
    let local = Local::start(ActivityRetention::default()).await;
    let router = local.router();
    let anonymous = send(&router, Request::get("/activity").body(Body::empty()).expect("request")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let tenant = TenantId::parse("default").expect("tenant");
    let replay = local.key.mint_ingest("replay", &tenant, Utc::now(), Duration::hours(1)).expect("mint");
    for (token, who) in [(replay, "an ingest token"), (local.token("vic@example.com", &["visitors"]), "no role")] {
        let a = call_as(&router, &token, "GET", "/activity", None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {:?}", a.body);
        assert!(
            a.body["error"]["message"].as_str().is_some_and(|m| m.contains("reading the activity log")),
            "{who}: {:?}",
            a.body
        );
    }
    let auditor = local.token("ava@example.com", &["audit"]);
    assert_eq!(
        call_as(&router, &auditor, "GET", "/activity", None).await.status,
        StatusCode::OK,
        "an auditor reads it"
    );

    for (query, field, says) in [
        ("colour=red", "colour", "unknown query parameter"),
        ("service=Pay%20ments", "service", "service must be"),
        ("source=jenkins", "source", "github, gitlab, pagerduty, alertmanager, incidentio, aws"),
        ("type=deployment", "type", "Deployment Status Changed"),
        ("since=yesterday", "since", "RFC 3339"),
        ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "until", "until must not be before since"),
        ("until=1999-01-01T00:00:00Z", "until", "between the years 2000 and 9998"),
        ("limit=0", "limit", "between 1 and 100"),
        ("cursor=CHG%23nope", "cursor", "not one this API returned"),
        ("limit=1&limit=2", "limit", "more than once"),
    ] {
        let a = local.activity(query).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], json!(field), "{query}: {:?}", a.body);
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| m.contains(says)), "{query}: {:?}", a.body);
    }
}

/// The api Lambda's router serves `GET /activity` from DynamoDB.
#[tokio::test]
async fn the_api_lambda_lists_activity_from_dynamodb() {
    let store = aws::dynamo_store().await;
    let tenant = "default";
    let app = Arc::new(changehub::app::Changes::new(store.clone(), SystemClock));
    changehub_tests::fixtures::seed(&app, tenant).await;
    let tenant_id = TenantId::parse(tenant).expect("tenant");
    let now = Utc::now();
    let rows = [
        Activity {
            received_at: now,
            expires_at: now + Duration::days(30),
            ..contract::row("github-a-0", now - Duration::hours(2), "github", "Deployment Created", Some("payments"))
        },
        Activity {
            received_at: now,
            expires_at: now + Duration::days(30),
            ..contract::row("aws-b-0", now - Duration::hours(1), "aws", "Alarm State Changed", None)
        },
    ];
    store.record(&tenant_id, &rows).await.expect("record");
    let tokens = changehub_tests::http::Tokens::new();
    let router = changehub::http::router(app, tokens.authenticator());
    let alice = tokens.of(&changehub_tests::fixtures::alice(tenant));
    let a = call_as(&router, &alice, "GET", "/activity?source=github", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["activity"][0]["event_id"], "github-a-0");
    assert_eq!(a.body["activity"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["next_cursor"], Value::Null);
}
