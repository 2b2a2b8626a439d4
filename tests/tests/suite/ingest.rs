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
use changehub::app::ingest::{ClaimTimes, Ingest, IngestStore, Webhooks};
use changehub::domain::{EventPattern, HubEvent, TenantId};
use changehub::http::webhooks::WebhookLimits;
use changehub::http::{finish, webhooks};
use changehub::ingest::canonical::{schema_file, schemas};
use changehub::ingest::{Origin, sign};
use changehub::ports::{BusError, EventBus, SystemClock, TenantDocs};
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

struct Hub<B, S = EmbeddedStore> {
    router: Router,
    tokens: changehub_tests::http::Tokens,
    catalog: CachedCatalog<S>,
    _dir: Option<tempfile::TempDir>,
    _bus: std::marker::PhantomData<B>,
}

fn hub_with<B: EventBus + Clone + 'static>(bus: B) -> Hub<B> {
    hub_limited(bus, ClaimTimes::default(), WebhookLimits::default())
}

fn hub_limited<B: EventBus + Clone + 'static>(bus: B, claims: ClaimTimes, limits: WebhookLimits) -> Hub<B> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open");
    hub_on(store, Some(dir), bus, claims, limits)
}

/// The hub on `store` (kept in `dir`, when it is a file).
fn hub_on<S, B>(
    store: S,
    dir: Option<tempfile::TempDir>,
    bus: B,
    claims: ClaimTimes,
    limits: WebhookLimits,
) -> Hub<B, S>
where
    S: IngestStore + TenantDocs + Clone + 'static,
    B: EventBus + Clone + 'static,
{
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    let ingest = || Ingest::new(store.clone(), bus.clone(), catalog.clone(), SystemClock).with_claims(claims);
    let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: secrets() });
    let tokens = changehub_tests::http::Tokens::new();
    let router = finish(
        webhooks::webhook_routes(webhooks, limits)
            .merge(webhooks::local_routes(Arc::new(ingest()), tokens.authenticator())),
    );
    Hub { router, tokens, catalog, _dir: dir, _bus: std::marker::PhantomData }
}

/// A local bus with a rule that receives every hub event.
fn local_bus() -> (LocalBus, UnboundedReceiver<HubEvent>) {
    let bus = LocalBus::new();
    let rx = bus
        .add_rule("everything", EventPattern::parse(json!({"source": [{"prefix": "changehub."}]})).expect("pattern"));
    (bus, rx)
}

fn hub() -> (Hub<LocalBus>, UnboundedReceiver<HubEvent>) {
    let (bus, rx) = local_bus();
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
    let token = hub.tokens.ingest("default");
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

    // The sample catalog maps the samples' repository to payments (case-insensitively).
    let mut catalog = changehub_tests::fixtures::catalog();
    let mapped = &mut catalog.services[0].mappings.repositories;
    assert!(mapped.iter().any(|r| r.eq_ignore_ascii_case(&repo)), "{mapped:?}");
    mapped.iter_mut().filter(|r| r.eq_ignore_ascii_case(&repo)).for_each(|r| *r = repo.to_uppercase());
    let admin = changehub_tests::fixtures::root("default");
    hub.catalog.replace(&admin, catalog, None, &SystemClock).await.expect("import a catalog mapping the repository");
    // The same pull request, sent again as a new delivery (another body: the
    // same bytes under a new id would be a replay, and a duplicate).
    let dir = tempfile::tempdir().expect("tempdir");
    let resent = dir.path().join("pull_request.opened.json");
    std::fs::write(&resent, serde_json::to_vec(&sample).expect("json")).expect("write");
    let a = send(&hub.router, signed(Origin::Github, "/webhooks/github", &resent, "d-mapped", SECRET)).await;
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

/// A bus that fails its first `n` publishes (the activity suite's too).
#[derive(Clone)]
pub(crate) struct FlakyBus {
    pub(crate) failures_left: Arc<AtomicUsize>,
    pub(crate) inner: LocalBus,
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
    let (inner, mut rx) = local_bus();
    let hub = hub_with(FlakyBus { failures_left: Arc::new(AtomicUsize::new(1)), inner });
    let file = Path::new(ROOT).join("events/pagerduty/incident.triggered.json");
    let first = send(&hub.router, signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "retry-me", SECRET)).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", first.body);
    assert_eq!(first.body["error"]["code"], "publish_failed");
    let retry = send(&hub.router, signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "retry-me", SECRET)).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(drain(&mut rx).len(), 1);
}

/// A signed request for a body (not a sample file).
fn signed_body(origin: Origin, stem: &str, delivery: &str, body: Vec<u8>) -> Request<Body> {
    let headers = sign::delivery(origin, secret_for(origin), stem, delivery, &body, chrono::Utc::now());
    let mut req = Request::builder().method("POST").uri(format!("/webhooks/{}", origin.as_str()));
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.body(Body::from(body)).expect("request")
}

/// GitHub and PagerDuty sign no timestamp and neither signs its delivery id
/// header: a captured delivery replayed under a fresh id is still a duplicate
/// (keyed by the signed body), and so is every other vendor's.
#[tokio::test]
async fn a_captured_delivery_replayed_under_a_new_delivery_id_is_a_duplicate() {
    let (hub, mut rx) = hub();
    for origin in WEBHOOK_ORIGINS {
        let mut replayed = 0;
        for file in samples(origin) {
            let what = file.display().to_string();
            let path = format!("/webhooks/{}", origin.as_str());
            let first =
                send(&hub.router, signed(origin, &path, &file, &uuid::Uuid::now_v7().to_string(), secret_for(origin)))
                    .await;
            // Only a type the hub ignores (GitHub's ping and star) is not taken.
            if first.body.get("ignored").is_some() {
                continue;
            }
            assert_eq!(first.status, StatusCode::ACCEPTED, "{what}: {}", first.body);
            drain(&mut rx);
            let fresh = uuid::Uuid::now_v7().to_string();
            let replay = send(&hub.router, signed(origin, &path, &file, &fresh, secret_for(origin))).await;
            assert_eq!((replay.status, &replay.body), (StatusCode::OK, &json!({"duplicate": true})), "{what}");
            assert!(drain(&mut rx).is_empty(), "{what}: a replay emitted events");
            replayed += 1;
        }
        assert!(replayed > 0, "no {} sample was replayed", origin.as_str());
    }
    // PagerDuty's signed event.id: the same event in other bytes is a duplicate too.
    let file = Path::new(ROOT).join("events/pagerduty/incident.resolved.json");
    let sample: Value = serde_json::from_slice(&std::fs::read(&file).expect("sample")).expect("json");
    let reserialized = serde_json::to_vec_pretty(&sample).expect("json");
    let again = send(&hub.router, signed_body(Origin::Pagerduty, "incident", "pd-other-id", reserialized)).await;
    assert_eq!(again.body, json!({"duplicate": true}));
}

/// A bus whose publishes wait until the test lets them through, and say
/// when one arrives.
#[derive(Clone)]
struct GatedBus {
    gate: Arc<tokio::sync::Semaphore>,
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    inner: LocalBus,
}

impl EventBus for GatedBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        let _ = self.arrived.send(());
        let _pass = self.gate.acquire().await.map_err(|e| BusError::Backend(e.into()))?;
        self.inner.publish(events).await
    }
}

/// A hub whose publishes wait at `gate`.
struct Gated<S> {
    hub: Hub<GatedBus, S>,
    gate: Arc<tokio::sync::Semaphore>,
    arrived: UnboundedReceiver<()>,
    events: UnboundedReceiver<HubEvent>,
}

/// The lease of the gated hub's claims: long enough that a slow store
/// (moto on a busy machine) answers the redelivery within it.
const GATED_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

impl<S> Gated<S> {
    /// Until an attempt has taken its claims and waits in publish.
    async fn in_publish(&mut self) {
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(20), self.arrived.recv()).await;
        assert!(matches!(arrived, Ok(Some(()))), "the first attempt never reached publish");
    }

    /// The answer to `req`, which must come (a request stuck at the gate fails the test, not hangs it).
    async fn send(&self, req: Request<Body>) -> Answer {
        tokio::time::timeout(std::time::Duration::from_secs(20), send(&self.hub.router, req))
            .await
            .unwrap_or_else(|_| panic!("no answer: the request waits at the gate"))
    }
}

/// A hub on `store` whose publishes wait for the test, with [`GATED_LEASE`] leases.
fn gated<S: IngestStore + TenantDocs + Clone + 'static>(store: S, dir: Option<tempfile::TempDir>) -> Gated<S> {
    let (inner, events) = local_bus();
    let (sender, arrived) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let claims = ClaimTimes { lease: GATED_LEASE, ..ClaimTimes::default() };
    let bus = GatedBus { gate: gate.clone(), arrived: sender, inner };
    Gated { hub: hub_on(store, dir, bus, claims, WebhookLimits::default()), gate, arrived, events }
}

/// The claim scenarios below run on both stores: the embedded one and
/// DynamoDB on the emulator, whose conditional writes take the leases.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod claims_embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = super::EmbeddedStore::open(dir.path().join("ingest.db")).expect("open");
                    super::$case(store, Some(dir)).await;
                }
            )*
        }
        mod claims_dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(changehub_tests::aws::dynamo_store().await, None).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_redelivery_while_the_first_is_publishing_is_answered_retry,
    a_delivery_cut_off_mid_publish_is_processed_again_once_its_lease_runs_out,
    a_partial_batch_is_republished_with_the_same_event_ids_in_the_detail,
);

/// A redelivery that arrives while the first is still publishing is told to
/// retry (503), not that it is a duplicate: if the first then failed, the
/// sender would otherwise never send it again.
async fn a_redelivery_while_the_first_is_publishing_is_answered_retry<S>(store: S, dir: Option<tempfile::TempDir>)
where
    S: IngestStore + TenantDocs + Clone + 'static,
{
    let mut g = gated(store, dir);
    let file = Path::new(ROOT).join("events/pagerduty/incident.triggered.json");
    let req = || signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "racing", SECRET);
    let router = g.hub.router.clone();
    let first = tokio::spawn({
        let req = req();
        async move { send(&router, req).await }
    });
    g.in_publish().await;
    let racing = g.send(req()).await;
    assert_eq!(
        (racing.status, error(&racing).1),
        (StatusCode::SERVICE_UNAVAILABLE, "in_progress"),
        "{:?}",
        racing.body
    );
    g.gate.add_permits(10);
    assert_eq!(first.await.expect("first").status, StatusCode::ACCEPTED);
    let after = g.send(req()).await;
    assert_eq!(after.body, json!({"duplicate": true}));
    assert_eq!(drain(&mut g.events).len(), 1);
}

/// The function times out mid-publish (the request is dropped, nothing is
/// released): the lease runs out and the sender's retry is processed, where
/// a one-phase claim answered `duplicate` for 72 hours.
async fn a_delivery_cut_off_mid_publish_is_processed_again_once_its_lease_runs_out<S>(
    store: S,
    dir: Option<tempfile::TempDir>,
) where
    S: IngestStore + TenantDocs + Clone + 'static,
{
    let mut g = gated(store, dir);
    let file = Path::new(ROOT).join("events/pagerduty/incident.triggered.json");
    let req = || signed(Origin::Pagerduty, "/webhooks/pagerduty", &file, "cut-off", SECRET);
    let router = g.hub.router.clone();
    let first = tokio::spawn({
        let req = req();
        async move { send(&router, req).await }
    });
    g.in_publish().await;
    let cut_at = std::time::Instant::now();
    first.abort();
    assert!(first.await.is_err_and(|e| e.is_cancelled()), "the first attempt is cut off in publish");
    let early = g.send(req()).await;
    assert_eq!(error(&early).1, "in_progress", "{:?}", early.body);
    tokio::time::sleep((GATED_LEASE + std::time::Duration::from_millis(100)).saturating_sub(cut_at.elapsed())).await;
    g.gate.add_permits(10);
    let retry = g.send(req()).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(drain(&mut g.events).len(), 1);
}

/// A bus that publishes the first event of its first call and refuses the rest.
#[derive(Clone)]
struct PartialBus {
    calls: Arc<AtomicUsize>,
    inner: LocalBus,
}

impl EventBus for PartialBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.inner.publish(&events[..1]).await?;
            return Err(BusError::Rejected {
                failed: events[1..].iter().map(|e| (e.id.clone(), "InternalFailure".into())).collect(),
            });
        }
        self.inner.publish(events).await
    }
}

/// A partly published batch is published again whole on the sender's retry;
/// every event carries its hub event id in its detail, so a consumer drops
/// the copies.
async fn a_partial_batch_is_republished_with_the_same_event_ids_in_the_detail<S>(
    store: S,
    dir: Option<tempfile::TempDir>,
) where
    S: IngestStore + TenantDocs + Clone + 'static,
{
    let (inner, mut rx) = local_bus();
    let partial = PartialBus { calls: Arc::new(AtomicUsize::new(0)), inner };
    let hub = hub_on(store, dir, partial, ClaimTimes::default(), WebhookLimits::default());
    let file = Path::new(ROOT).join("events/alertmanager/firing.json");
    let first = send(&hub.router, signed(Origin::Alertmanager, "/webhooks/alertmanager", &file, "x", SECRET)).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", first.body);
    let retry = send(&hub.router, signed(Origin::Alertmanager, "/webhooks/alertmanager", &file, "x", SECRET)).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    let events = drain(&mut rx);
    assert_eq!(events.len(), 3, "one event of the failed batch, then the whole batch of two");
    for e in &events {
        assert_eq!(e.detail["event_id"], e.id.as_str(), "the detail carries the hub event id");
    }
    let distinct: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e.detail["event_id"].as_str()).collect();
    assert_eq!(distinct.len(), 2, "the copy has the same event_id");
}

/// Hub event ids come from the signed body, never from the unsigned delivery
/// id: the same delivery under another id (a redelivery after a lease ran
/// out, say) carries the same event ids, so consumers drop the copies.
#[tokio::test]
async fn event_ids_do_not_depend_on_the_unsigned_delivery_id() {
    let file = Path::new(ROOT).join("events/github/deployment_status.success.json");
    let mut ids = vec![];
    for delivery in ["first-id", "second-id"] {
        let (hub, mut rx) = hub();
        let a = send(&hub.router, signed(Origin::Github, "/webhooks/github", &file, delivery, SECRET)).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
        let events = drain(&mut rx);
        assert_eq!(events[0].detail["delivery_id"], delivery, "the detail keeps the sender's delivery id");
        ids.push(events.into_iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert!(!ids[0].is_empty());
    assert_eq!(ids[0], ids[1]);
    assert!(ids[0].iter().all(|id| !id.contains("first-id")), "{ids:?}");
}

/// An event over the bus's 256 KB limit can never be published: 413 naming
/// the limit, not a 503 the sender would retry for days.
#[tokio::test]
async fn a_delivery_whose_event_is_too_large_is_refused_with_413() {
    let (hub, mut rx) = hub();
    let file = Path::new(ROOT).join("events/github/pull_request.opened.json");
    let mut sample: Value = serde_json::from_slice(&std::fs::read(&file).expect("sample")).expect("json");
    sample["pull_request"]["title"] = Value::from("t".repeat(300 * 1024));
    let body = serde_json::to_vec(&sample).expect("json");
    let a = send(&hub.router, signed_body(Origin::Github, "pull_request", "huge", body.clone())).await;
    let (status, code, message) = error(&a);
    assert_eq!((status, code), (StatusCode::PAYLOAD_TOO_LARGE, "event_too_large"), "{:?}", a.body);
    assert!(message.contains("262144"), "{message}");
    assert!(drain(&mut rx).is_empty());
}

/// A body that never arrives.
struct NeverBody;

impl axum::body::HttpBody for NeverBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

fn never_ending(path: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("x-github-event", "push")
        .header("content-length", (25 * 1024 * 1024).to_string())
        .body(Body::new(NeverBody))
        .expect("request")
}

/// A tenant or source without a secret is refused before the body is read:
/// an unauthenticated sender cannot make the hub buffer 25 MiB.
#[tokio::test]
async fn a_webhook_nobody_could_verify_is_refused_before_its_body_is_read() {
    let (hub, _rx) = hub();
    for path in ["/tenants/nobody/webhooks/github", "/tenants/globex/webhooks/pagerduty"] {
        let a = tokio::time::timeout(std::time::Duration::from_secs(2), send(&hub.router, never_ending(path)))
            .await
            .unwrap_or_else(|_| panic!("{path}: the hub waited for the body of a delivery it cannot verify"));
        assert_eq!(error(&a).0, StatusCode::UNAUTHORIZED, "{path}: {:?}", a.body);
        assert!(error(&a).2.contains("no secret"), "{:?}", a.body);
    }
}

/// At most `concurrent_bodies` webhook bodies are read at once; more get 503 and Retry-After.
#[tokio::test]
async fn webhook_bodies_beyond_the_limit_are_answered_busy() {
    let (bus, _rx) = (LocalBus::new(), ());
    let hub = hub_limited(bus, ClaimTimes::default(), WebhookLimits { concurrent_bodies: 1 });
    let router = hub.router.clone();
    let slow = tokio::spawn(async move { send(&router, never_ending("/webhooks/github")).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let file = Path::new(ROOT).join("events/github/deployment_status.success.json");
    let busy = send(&hub.router, signed(Origin::Github, "/webhooks/github", &file, "busy", SECRET)).await;
    assert_eq!((busy.status, error(&busy).1), (StatusCode::SERVICE_UNAVAILABLE, "busy"), "{:?}", busy.body);
    assert_eq!(busy.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    slow.abort();
    let _ = slow.await;
    let ok = send(&hub.router, signed(Origin::Github, "/webhooks/github", &file, "busy", SECRET)).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "the slot is free again: {:?}", ok.body);
}

/// `changehub serve` answers a request that does not complete in time 408,
/// and handles at most `concurrent_requests` at once.
#[tokio::test]
async fn the_local_hub_times_requests_out_and_bounds_how_many_run_at_once() {
    use changehub::local::{Hub as LocalHub, HubConfig, ServeLimits};
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = ServeLimits {
        request_timeout: std::time::Duration::from_millis(500),
        concurrent_requests: 1,
        webhooks: WebhookLimits::default(),
    };
    let local = LocalHub::open(&HubConfig {
        db: dir.path().join("hub.db"),
        notifications: dir.path().join("n.jsonl"),
        secrets: secrets(),
        bootstrap_admin_group: None,
        limits,
        activity_retention: Default::default(),
        public_url: None,
    })
    .expect("open the local hub");
    let router = local.router();
    let stuck = {
        let router = router.clone();
        tokio::spawn(async move { send(&router, never_ending("/webhooks/github")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let health = send(&router, Request::builder().uri("/health").body(Body::empty()).expect("req")).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "the second request waited for the only slot ({:?}, {})",
        started.elapsed(),
        health.status
    );
    let stuck = stuck.await.expect("stuck request");
    assert_eq!((stuck.status, error(&stuck).1), (StatusCode::REQUEST_TIMEOUT, "timeout"), "{:?}", stuck.body);
}

/// A secrets source that must fetch, and whose fetch only completes once
/// the tenant's catalog has been read (or fails after a while).
struct ColdSecrets {
    catalog_read: Arc<tokio::sync::Notify>,
}

impl changehub::ports::SecretSource for ColdSecrets {
    async fn secrets(&self, _: &TenantId, _: Origin) -> Result<Vec<String>, changehub::ports::SecretsError> {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.catalog_read.notified())
            .await
            .map_err(|_| changehub::ports::SecretsError::Invalid("the catalog was not read meanwhile".into()))?;
        Ok(vec![SECRET.into()])
    }

    fn is_cached(&self) -> bool {
        false
    }
}

/// A catalog reader that counts its reads and says when one happened.
#[derive(Clone, Default)]
struct CountingCatalog {
    reads: Arc<AtomicUsize>,
    read: Arc<tokio::sync::Notify>,
}

impl changehub::ports::CatalogReader for CountingCatalog {
    async fn catalog(
        &self,
        _: &TenantId,
    ) -> Result<Arc<changehub::domain::catalog::CatalogView>, changehub::ports::StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.read.notify_one();
        Ok(Arc::default())
    }
}

fn webhooks_with<S: changehub::ports::SecretSource>(
    secrets: S,
    catalog: CountingCatalog,
) -> Webhooks<EmbeddedStore, LocalBus, CountingCatalog, S, SystemClock> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open");
    Webhooks { ingest: Ingest::new(store, LocalBus::new(), catalog, SystemClock), secrets }
}

#[tokio::test]
async fn a_cold_secrets_fetch_reads_the_tenants_catalog_meanwhile() {
    let catalog = CountingCatalog::default();
    let webhooks = webhooks_with(ColdSecrets { catalog_read: catalog.read.clone() }, catalog.clone());
    let tenant = TenantId::parse("acme").expect("tenant");
    let secrets = webhooks.secrets(&tenant, Origin::Github).await.expect("secrets fetched while the catalog was read");
    assert_eq!(secrets, [SECRET]);
    assert_eq!(catalog.reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cached_secrets_refuse_a_tenant_without_secrets_before_reading_its_catalog() {
    let catalog = CountingCatalog::default();
    let webhooks = webhooks_with(secrets(), catalog.clone());
    let tenant = TenantId::parse("nobody").expect("tenant");
    webhooks.secrets(&tenant, Origin::Github).await.expect_err("no secrets for this tenant");
    assert_eq!(catalog.reads.load(Ordering::SeqCst), 0, "nothing is read for an unknown tenant");
}

/// The sample payloads and the sample catalog tell one story: with
/// `events/catalog/acme.yaml` imported, every event a sample emits resolves
/// to a catalog service, so a newcomer replaying them sees how an event is
/// matched to its service. The exceptions name no resource an ARN prefix
/// can match (events/README.md says why), and the hub says so.
#[tokio::test]
async fn every_sample_resolves_to_a_service_of_the_sample_catalog() {
    let (hub, mut rx) = hub();
    let admin = changehub_tests::fixtures::root("default");
    let catalog = changehub_tests::fixtures::catalog();
    hub.catalog.replace(&admin, catalog.clone(), None, &SystemClock).await.expect("import the sample catalog");
    let unresolvable = [
        ("cloudtrail.ec2_authorize_security_group_ingress.json", "the event names no service"),
        ("cloudtrail.ec2_authorize_security_group_ingress.source_identity.json", "the event names no service"),
        ("cloudtrail.ec2_authorize_security_group_ingress.cloudformation.json", "the event names no service"),
        ("cloudtrail.ec2_revoke_security_group_ingress.vendor.json", "the event names no service"),
        ("cloudtrail.iam_put_role_policy.json", "the event names no service"),
        ("config.rules_compliance_change.json", "no catalog mapping for AWS resource sg-0a1b2c3d4e5f67890"),
    ];
    let token = hub.tokens.ingest("default");
    let (mut resolved, mut unresolved) = (0, vec![]);
    for origin in WEBHOOK_ORIGINS.into_iter().chain([Origin::Aws]) {
        for file in samples(origin) {
            let what = file.display().to_string();
            let req = if origin == Origin::Aws {
                Request::builder()
                    .method("POST")
                    .uri("/events")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(std::fs::read(&file).expect("sample")))
                    .expect("request")
            } else {
                signed(origin, &format!("/webhooks/{}", origin.as_str()), &file, &what, secret_for(origin))
            };
            let a = send(&hub.router, req).await;
            assert!(a.status.is_success(), "{what}: {} {:?}", a.status, a.body);
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let expected_reason = unresolvable.iter().find(|(f, _)| *f == name).map(|(_, reason)| *reason);
            for e in drain(&mut rx) {
                let (service, reason) = (&e.detail["service"], &e.detail["service_resolution"]["reason"]);
                match (service.as_str(), expected_reason) {
                    (None, Some(expected)) if reason == expected => {}
                    (Some(s), None) if catalog.services.iter().any(|svc| svc.name.as_str() == s) => resolved += 1,
                    _ => unresolved.push(format!("{what}: service {service}, {}", e.detail["service_resolution"])),
                }
            }
        }
    }
    assert!(unresolved.is_empty(), "samples whose events do not resolve as expected:\n{}", unresolved.join("\n"));
    assert!(resolved >= 30, "the samples resolve ({resolved})");
}
