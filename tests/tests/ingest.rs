//! Ingest end to end, in process: every sample in events/ signed as its
//! vendor signs it, through the webhook routes (and `/events` for AWS), onto
//! the bus, each emitted event valid against its schema in events/schemas.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::{SecretsDocument, StaticSecrets};
use changehub::adapters::local_bus::LocalBus;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{Ingest, Webhooks};
use changehub::domain::{EventPattern, HubEvent};
use changehub::http::webhooks::WebhookLimits;
use changehub::http::{finish, webhooks};
use changehub::ingest::canonical::{schema_file, schemas};
use changehub::ingest::{Origin, sign};
use changehub::ports::{BusError, EventBus, SystemClock};
use changehub_tests::http::{Answer, send};
use changehub_tests::samples::{ROOT, SECRET, WEBHOOK_ORIGINS, samples, secret_for};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc::UnboundedReceiver;

/// Secrets for the `default` and `acme` tenants; `globex` has its own.
fn secrets() -> StaticSecrets {
    let mut doc = SecretsDocument::new();
    for tenant in ["default", "acme"] {
        for origin in WEBHOOK_ORIGINS {
            doc.entry(tenant.into()).or_default().insert(origin.as_str().into(), vec![secret_for(origin).into()]);
        }
    }
    doc.entry("globex".into()).or_default().insert("github".into(), vec!["globex's own secret".into()]);
    StaticSecrets::new(doc)
}

struct Hub<B> {
    router: Router,
    tokens: changehub_tests::http::Tokens,
    catalog: CachedCatalog<EmbeddedStore>,
    _dir: tempfile::TempDir,
    _bus: std::marker::PhantomData<B>,
}

fn hub_with<B: EventBus + Clone + 'static>(bus: B) -> Hub<B> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open");
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    let ingest = || Ingest::new(store.clone(), bus.clone(), catalog.clone(), SystemClock);
    let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: secrets() });
    let tokens = changehub_tests::http::Tokens::new();
    let router = finish(
        webhooks::webhook_routes(webhooks, WebhookLimits::default())
            .merge(webhooks::local_routes(Arc::new(ingest()), tokens.authenticator())),
    );
    Hub { router, tokens, catalog, _dir: dir, _bus: std::marker::PhantomData }
}

fn hub() -> (Hub<LocalBus>, UnboundedReceiver<HubEvent>) {
    let bus = LocalBus::new();
    let rx = bus
        .add_rule("everything", EventPattern::parse(json!({"source": [{"prefix": "changehub."}]})).expect("pattern"));
    (hub_with(bus), rx)
}

/// A signed webhook request for a sample file, as its vendor sends it.
fn signed(origin: Origin, path: &str, file: &Path, delivery: &str, secret: &str) -> Request<Body> {
    let body = std::fs::read(file).expect("sample");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let headers = sign::delivery(origin, secret, stem, delivery, &body, chrono::Utc::now());
    let mut req = Request::builder().method("POST").uri(path);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.body(Body::from(body)).expect("request")
}

fn drain(rx: &mut UnboundedReceiver<HubEvent>) -> Vec<HubEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn schema_validators() -> std::collections::BTreeMap<String, jsonschema::Validator> {
    schemas()
        .into_iter()
        .map(|(t, s)| {
            (t.to_owned(), jsonschema::options().should_validate_formats(true).build(&s).expect("schema compiles"))
        })
        .collect()
}

fn assert_valid(validators: &std::collections::BTreeMap<String, jsonschema::Validator>, event: &HubEvent, what: &str) {
    let v =
        validators.get(&event.detail_type).unwrap_or_else(|| panic!("{what}: no schema for {:?}", event.detail_type));
    let errors: Vec<String> = v.iter_errors(&event.detail).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: {} does not match its schema: {errors:?}\n{}", event.detail_type, event.detail);
    assert!(event.source.starts_with("changehub."), "{what}: source {}", event.source);
    let size = serde_json::to_vec(&event.detail).map(|b| b.len()).unwrap_or(0);
    assert!(size < 256 * 1024, "{what}: detail is {size} bytes");
}

#[test]
fn committed_schemas_are_the_ones_the_code_generates() {
    let dir = Path::new(ROOT).join("events/schemas");
    let bless = std::env::var_os("CHANGEHUB_BLESS").is_some();
    let mut expected = std::collections::BTreeSet::new();
    for (detail_type, schema) in schemas() {
        let file = dir.join(schema_file(detail_type));
        let text = serde_json::to_string_pretty(&schema).expect("json") + "\n";
        expected.insert(schema_file(detail_type));
        if bless {
            std::fs::write(&file, &text).expect("write schema");
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            committed,
            text,
            "{} is stale: run `CHANGEHUB_BLESS=1 cargo test -p changehub-tests --test ingest`",
            file.display()
        );
    }
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("events/schemas")
        .filter_map(|e| e.ok().and_then(|e| e.file_name().to_str().map(str::to_owned)))
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(on_disk, expected, "events/schemas holds exactly one schema per canonical detail-type");
}

#[tokio::test]
async fn every_webhook_sample_is_accepted_once_and_emits_valid_events() {
    let (hub, mut rx) = hub();
    let validators = schema_validators();
    let mut emitted = 0;
    for origin in WEBHOOK_ORIGINS {
        for file in samples(origin) {
            let what = file.display().to_string();
            let delivery = uuid::Uuid::now_v7().to_string();
            let path = format!("/webhooks/{}", origin.as_str());
            let first = send(&hub.router, signed(origin, &path, &file, &delivery, secret_for(origin))).await;
            match first.status {
                StatusCode::ACCEPTED => {
                    let events = drain(&mut rx);
                    assert_eq!(first.body["accepted"], events.len(), "{what}: {:?}", first.body);
                    assert!(!events.is_empty(), "{what}");
                    for e in &events {
                        assert_valid(&validators, e, &what);
                        assert_eq!(e.detail["delivery_id"].as_str().map(|d| d.is_empty()), Some(false));
                        assert_eq!(e.detail["tenant"], "default");
                    }
                    emitted += events.len();
                    // The same delivery again: a duplicate, nothing emitted.
                    let again = send(&hub.router, signed(origin, &path, &file, &delivery, secret_for(origin))).await;
                    assert_eq!((again.status, &again.body), (StatusCode::OK, &json!({"duplicate": true})), "{what}");
                    assert!(drain(&mut rx).is_empty(), "{what}: a duplicate emitted events");
                }
                StatusCode::OK => {
                    assert!(first.body["ignored"].is_string(), "{what}: {:?}", first.body);
                    assert!(drain(&mut rx).is_empty(), "{what}: an ignored delivery emitted events");
                }
                other => panic!("{what}: answered {other}: {:?}", first.body),
            }
        }
    }
    assert!(emitted >= 20, "the samples emit events ({emitted})");
}

#[tokio::test]
async fn every_aws_sample_normalizes_through_events_and_matches_its_schema() {
    let (hub, mut rx) = hub();
    let validators = schema_validators();
    let token = hub.tokens.of(&changehub_tests::fixtures::who("default", "ops@example.com", &[]));
    for file in samples(Origin::Aws) {
        let what = file.display().to_string();
        let body = std::fs::read(&file).expect("sample");
        let req = || {
            Request::builder()
                .method("POST")
                .uri("/events")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .expect("req")
        };
        let a = send(&hub.router, req()).await;
        match a.status {
            StatusCode::ACCEPTED => {
                let events = drain(&mut rx);
                assert!(!events.is_empty(), "{what}");
                for e in &events {
                    assert_valid(&validators, e, &what);
                    assert_eq!(e.source, "changehub.aws");
                }
                let again = send(&hub.router, req()).await;
                assert_eq!(again.body, json!({"duplicate": true}), "{what}");
            }
            StatusCode::OK => assert!(a.body["ignored"].is_string(), "{what}: {:?}", a.body),
            other => panic!("{what}: answered {other}: {:?}", a.body),
        }
    }
}

#[tokio::test]
async fn services_resolve_through_the_catalog_or_say_why_not() {
    let (hub, mut rx) = hub();
    let pr = Path::new(ROOT).join("events/github/pull_request.opened.json");
    let sample: Value = serde_json::from_slice(&std::fs::read(&pr).expect("sample")).expect("json");
    let repo = sample["repository"]["full_name"].as_str().expect("full_name").to_owned();

    let a = send(&hub.router, signed(Origin::Github, "/webhooks/github", &pr, "d-unmapped", SECRET)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let e = drain(&mut rx).pop().expect("event");
    assert_eq!(e.detail["service"], Value::Null);
    assert_eq!(e.detail["service_resolution"]["reason"], format!("no catalog mapping for repository {repo}"));
    assert_eq!(e.detail["service_resolution"]["key"], json!({"by": "repository", "key": repo}));

    let mut catalog = changehub_tests::fixtures::catalog();
    catalog.services[0].mappings.repositories.push(repo.to_uppercase());
    let admin = changehub_tests::fixtures::root("default");
    hub.catalog.replace(&admin, catalog, None, &SystemClock).await.expect("import a catalog mapping the repository");
    let a = send(&hub.router, signed(Origin::Github, "/webhooks/github", &pr, "d-mapped", SECRET)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let e = drain(&mut rx).pop().expect("event");
    assert_eq!(e.detail["service"], "payments");
    assert_eq!(e.detail["service_resolution"]["reason"], Value::Null);
}

fn error(a: &Answer) -> (StatusCode, &str, &str) {
    (a.status, a.body["error"]["code"].as_str().unwrap_or(""), a.body["error"]["message"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn forged_or_unsigned_deliveries_are_refused_and_leave_no_trace() {
    let (hub, mut rx) = hub();
    let file = Path::new(ROOT).join("events/github/deployment_status.success.json");
    let path = "/webhooks/github";

    let wrong = send(&hub.router, signed(Origin::Github, path, &file, "d1", "not the secret")).await;
    let (status, code, message) = error(&wrong);
    assert_eq!((status, code), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(!message.contains(SECRET), "the secret never appears in an answer");

    let mut unsigned = signed(Origin::Github, path, &file, "d1", SECRET);
    unsigned.headers_mut().remove("x-hub-signature-256");
    let a = send(&hub.router, unsigned).await;
    assert_eq!(error(&a).0, StatusCode::UNAUTHORIZED);
    assert!(error(&a).2.to_ascii_lowercase().contains("x-hub-signature-256"), "{:?}", a.body);

    // globex's deliveries are checked against globex's secret only.
    let cross = send(&hub.router, signed(Origin::Github, "/tenants/globex/webhooks/github", &file, "d1", SECRET)).await;
    assert_eq!(error(&cross).0, StatusCode::UNAUTHORIZED);
    // A tenant without a secret for a source refuses that source.
    let pd = Path::new(ROOT).join("events/pagerduty/incident.triggered.json");
    let none =
        send(&hub.router, signed(Origin::Pagerduty, "/tenants/globex/webhooks/pagerduty", &pd, "d2", SECRET)).await;
    assert_eq!(error(&none).0, StatusCode::UNAUTHORIZED);
    assert!(error(&none).2.contains("no secret"), "{:?}", none.body);

    assert!(drain(&mut rx).is_empty(), "nothing was forwarded");
    // Nothing was stored either: the same delivery id, properly signed, is new.
    let ok = send(&hub.router, signed(Origin::Github, path, &file, "d1", SECRET)).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{:?}", ok.body);
    // The acme tenant has its own route.
    let acme = send(&hub.router, signed(Origin::Github, "/tenants/acme/webhooks/github", &file, "d1", SECRET)).await;
    assert_eq!(acme.status, StatusCode::ACCEPTED, "{:?}", acme.body);
    let events = drain(&mut rx);
    assert_eq!(
        events.iter().map(|e| e.detail["tenant"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["default", "acme"]
    );
}

#[tokio::test]
async fn bad_deliveries_get_a_clear_error() {
    let (hub, _rx) = hub();
    let post = |path: &str, headers: &[(&str, &str)], body: Vec<u8>| {
        let mut req = Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::from(body)).expect("request")
    };
    let sig = |body: &[u8]| {
        let h = sign::auth_headers(Origin::Github, SECRET, "x", body, chrono::Utc::now());
        h["x-hub-signature-256"].to_str().expect("ascii").to_owned()
    };
    let broken = b"{not json".to_vec();
    let a = send(
        &hub.router,
        post(
            "/webhooks/github",
            &[("x-github-event", "push"), ("x-github-delivery", "d"), ("x-hub-signature-256", &sig(&broken))],
            broken.clone(),
        ),
    )
    .await;
    assert_eq!(error(&a).0, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert!(error(&a).2.contains("JSON"), "{:?}", a.body);

    let body = b"{}".to_vec();
    let a = send(
        &hub.router,
        post("/webhooks/github", &[("x-github-delivery", "d"), ("x-hub-signature-256", &sig(&body))], body.clone()),
    )
    .await;
    assert_eq!(error(&a).0, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["field"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("x-github-event"));

    let a = send(
        &hub.router,
        post(
            "/webhooks/github",
            &[("x-github-event", "star"), ("x-github-delivery", "d2"), ("x-hub-signature-256", &sig(&body))],
            body.clone(),
        ),
    )
    .await;
    assert_eq!((a.status, a.body.clone()), (StatusCode::OK, json!({"ignored": "star"})));

    let a = send(&hub.router, post("/webhooks/bitbucket", &[], body.clone())).await;
    assert_eq!(error(&a).0, StatusCode::NOT_FOUND);

    let huge = vec![b' '; 25 * 1024 * 1024 + 1];
    let a = send(&hub.router, post("/webhooks/github", &[("x-github-event", "push")], huge)).await;
    assert_eq!(error(&a).0, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A bus that fails its first `n` publishes.
#[derive(Clone)]
struct FlakyBus {
    failures_left: Arc<AtomicUsize>,
    inner: LocalBus,
}

impl EventBus for FlakyBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        if self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(BusError::Rejected {
                failed: events.iter().map(|e| (e.id.clone(), "InternalFailure".into())).collect(),
            });
        }
        self.inner.publish(events).await
    }
}

#[tokio::test]
async fn a_failed_publish_answers_5xx_and_the_retry_is_not_a_duplicate() {
    let inner = LocalBus::new();
    let mut rx =
        inner.add_rule("all", EventPattern::parse(json!({"source": [{"prefix": "changehub."}]})).expect("pattern"));
    let hub = hub_with(FlakyBus { failures_left: Arc::new(AtomicUsize::new(1)), inner });
    let file = Path::new(ROOT).join("events/pagerduty/incident.triggered.json");
    let first = send(&hub.router, signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "retry-me", SECRET)).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", first.body);
    assert_eq!(first.body["error"]["code"], "publish_failed");
    let retry = send(&hub.router, signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "retry-me", SECRET)).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(drain(&mut rx).len(), 1);
}
