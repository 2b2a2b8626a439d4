//! Ingest as the Lambdas run it, against the AWS emulator: DynamoDB for dedupe
//! and the catalog, EventBridge (rule → SQS) for the events, Secrets Manager
//! for the webhook secrets. Every sample in events/ goes through: webhooks
//! as API Gateway events into the ingest router via lambda_http's adapter,
//! AWS events into the aws-events target.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::eventbridge::EventBridgeBus;
use changehub::adapters::secretsmanager::SecretsManagerSecrets;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{Ingest, Webhooks};
use changehub::domain::TenantId;
use changehub::http::webhooks::WebhookLimits;
use changehub::http::{finish, webhooks};
use changehub::ingest::{Origin, sign};
use changehub::ports::{SecretSource, SecretsError, SystemClock};
use changehub_tests::aws::{self, SqsInbox};
use changehub_tests::samples::{WEBHOOK_ORIGINS, samples, secret_for};
use changehub_tests::unique;
use lambda_http::tower::Service;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

pub(crate) async fn secrets_manager(document: &Value) -> SecretsManagerSecrets {
    let client = aws_sdk_secretsmanager::Client::new(&aws::config().await);
    let name = unique("webhook-secrets");
    client.create_secret().name(&name).secret_string(document.to_string()).send().await.expect("create secret");
    SecretsManagerSecrets::new(client, name)
}

/// An API Gateway HTTP API (payload 2.0) event carrying a signed delivery.
fn api_gateway_event(origin: Origin, file: &Path, delivery: &str) -> Value {
    let body = std::fs::read(file).expect("sample");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let headers = sign::delivery(origin, secret_for(origin), stem, delivery, &body, chrono::Utc::now());
    let headers: serde_json::Map<String, Value> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), Value::from(v.to_str().unwrap_or_default()))).collect();
    let path = format!("/webhooks/{}", origin.as_str());
    json!({
        "version": "2.0", "routeKey": "POST /webhooks/{source}", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"source": origin.as_str()},
        "requestContext": {
            "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5", "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.30.252.1", "userAgent": "GitHub-Hookshot/abc"},
            "requestId": delivery, "routeKey": "POST /webhooks/{source}", "stage": "$default", "time": "01/Dec/2026:22:10:00 +0000", "timeEpoch": 1796170200000u64
        },
        "body": String::from_utf8(body).expect("utf-8 sample"),
        "isBase64Encoded": false
    })
}

/// The ingest use case as the Lambdas assemble it, on the emulator: DynamoDB
/// for dedupe and the catalog, EventBridge (rule → SQS inbox) for the events.
async fn ingest_on_the_emulator()
-> (Ingest<DynamoStore, EventBridgeBus, CachedCatalog<DynamoStore>, SystemClock>, SqsInbox) {
    let (bus, inbox) = aws::bus_to_queue(&json!({"source": [{"prefix": "changehub."}]})).await;
    let store = aws::dynamo_store().await;
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    (Ingest::new(store, bus, catalog, SystemClock), inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_sample_goes_through_the_ingest_lambda_to_eventbridge_once() {
    let mut doc = serde_json::Map::new();
    for o in WEBHOOK_ORIGINS {
        doc.insert(o.as_str().into(), json!([secret_for(o)]));
    }
    let (ingest, mut inbox) = ingest_on_the_emulator().await;
    let webhooks = Arc::new(Webhooks { ingest, secrets: secrets_manager(&json!({"default": doc})).await });
    let mut lambda =
        lambda_http::Adapter::from(finish(webhooks::webhook_routes(webhooks, WebhookLimits { concurrent_bodies: 1 })));
    let mut accepted = 0u64;
    for origin in WEBHOOK_ORIGINS {
        for file in samples(origin) {
            let what = file.display().to_string();
            let delivery = uuid::Uuid::now_v7().to_string();
            for attempt in 0..2 {
                let request: lambda_http::request::LambdaRequest =
                    serde_json::from_value(api_gateway_event(origin, &file, &delivery)).expect("API Gateway event");
                let response = lambda
                    .call(lambda_http::LambdaEvent::new(request, lambda_http::Context::default()))
                    .await
                    .expect("invoke");
                let response = serde_json::to_value(response).expect("response");
                let body: Value =
                    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
                match (attempt, response["statusCode"].as_u64()) {
                    (0, Some(202)) => accepted += body["accepted"].as_u64().expect("accepted count"),
                    (0, Some(200)) => assert!(body["ignored"].is_string(), "{what}: {body}"),
                    (1, Some(200)) => {
                        assert!(body["duplicate"] == true || body["ignored"].is_string(), "{what}: {body}")
                    }
                    (_, status) => panic!("{what} (attempt {attempt}): {status:?} {body}"),
                }
            }
        }
    }
    assert!(accepted >= 20);
    let delivered = inbox.bodies(accepted as usize).await;
    assert_eq!(delivered.len() as u64, accepted, "every published event reached the rule's queue, once");
    for raw in delivered {
        let event: Value = serde_json::from_str(&raw).expect("event");
        assert!(event["source"].as_str().is_some_and(|s| s.starts_with("changehub.")));
        assert!(event["detail"]["delivery_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aws_sample_goes_through_the_aws_events_target() {
    let (ingest, mut inbox) = ingest_on_the_emulator().await;
    let tenant = TenantId::parse("default").expect("tenant");
    let mut published = 0;
    for file in samples(Origin::Aws) {
        let event: Value = serde_json::from_slice(&std::fs::read(&file).expect("sample")).expect("json");
        let first = aws_events::handle(&ingest, &tenant, &event).await.expect("handled");
        if let Some(ids) = first["published"].as_array() {
            published += ids.len();
            assert_eq!(aws_events::handle(&ingest, &tenant, &event).await.expect("again"), json!({"duplicate": true}));
        } else {
            assert!(first["ignored"].is_string(), "{}: {first}", file.display());
        }
    }
    assert!(published >= 6);
    assert_eq!(inbox.bodies(published).await.len(), published);
    // An event that cannot be normalized fails the invocation, so it ends in
    // the on-failure queue with its reason, marked as one no retry fixes.
    let broken = json!({"id": "x", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": {"state": 5}});
    let error = aws_events::handle(&ingest, &tenant, &broken).await.expect_err("a failed invocation, not an answer");
    let failure = aws_events::diagnostic(&error);
    assert_eq!(failure.error_type, "Rejected");
    assert!(failure.error_message.contains("AlarmState"), "{}", failure.error_message);
}

#[tokio::test]
async fn secrets_manager_holds_per_tenant_secrets_with_rotation() {
    let secrets =
        secrets_manager(&json!({"default": {"github": ["new", "old"]}, "acme": {"pagerduty": ["acme-pd"]}})).await;
    let default = TenantId::parse("default").expect("tenant");
    let acme = TenantId::parse("acme").expect("tenant");
    assert_eq!(secrets.secrets(&default, Origin::Github).await.expect("read"), ["new", "old"]);
    assert_eq!(secrets.secrets(&acme, Origin::Pagerduty).await.expect("read"), ["acme-pd"]);
    assert!(secrets.secrets(&acme, Origin::Github).await.expect("read").is_empty());
    assert!(
        secrets.secrets(&TenantId::parse("nobody").expect("tenant"), Origin::Github).await.expect("read").is_empty()
    );

    // A bad entry is left out (and logged by path); the rest is served.
    let partly =
        secrets_manager(&json!({"default": {"bitbucket": ["x"], "github": ["g"]}, "acme": {"github": "oops"}})).await;
    assert_eq!(partly.secrets(&default, Origin::Github).await.expect("read"), ["g"]);
    assert!(partly.secrets(&acme, Origin::Github).await.expect("read").is_empty());
    // A document that is not JSON at all is an error naming no value of it.
    let broken = secrets_manager(&Value::String("{\"default\": {\"github\": [\"s3cr3t\"".into())).await;
    match broken.secrets(&default, Origin::Github).await {
        Err(SecretsError::Invalid(message)) => assert!(!message.contains("s3cr3t"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A Secrets Manager endpoint on loopback that counts its `GetSecretValue`
/// calls, answers each once the test gives a permit, and refuses the first
/// call when told to.
#[derive(Clone)]
struct HeldSecretsManager {
    calls: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    refuse_first: bool,
}

impl HeldSecretsManager {
    /// The endpoint, serving, and the adapter pointed at it.
    async fn start(refuse_first: bool) -> (Self, SecretsManagerSecrets) {
        let held = Self { calls: Arc::default(), permits: Arc::new(Semaphore::new(0)), refuse_first };
        let router = axum::Router::new().fallback(Self::answer).with_state(held.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let config = aws_sdk_secretsmanager::config::Builder::from(&aws::config().await).endpoint_url(endpoint).build();
        (held, SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::from_conf(config), "held-secrets"))
    }

    async fn answer(axum::extract::State(held): axum::extract::State<Self>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let call = held.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(permit) = held.permits.acquire().await {
            permit.forget();
        }
        let json = [("content-type", "application/x-amz-json-1.1")];
        if held.refuse_first && call == 0 {
            let body = json!({"__type": "ResourceNotFoundException", "message": "not yet"}).to_string();
            return (axum::http::StatusCode::BAD_REQUEST, json, body).into_response();
        }
        let document = json!({"default": {"github": ["held"]}}).to_string();
        (json, json!({"Name": "held-secrets", "SecretString": document}).to_string()).into_response()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_during_the_secrets_prefetch_waits_for_it_instead_of_fetching_again() {
    let (held, secrets) = HeldSecretsManager::start(false).await;
    let prefetch = secrets.prefetch();
    let first_delivery = tokio::spawn({
        let secrets = secrets.clone();
        async move { secrets.secrets(&TenantId::parse("default").expect("tenant"), Origin::Github).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(held.calls(), 1, "one fetch under way, the prefetch's");
    assert!(!secrets.is_cached(), "a fetch under way is not a cached document");
    held.permits.add_permits(2);
    prefetch.await.expect("prefetch");
    assert_eq!(first_delivery.await.expect("joined").expect("the prefetched secrets"), ["held"]);
    assert_eq!(held.calls(), 1);
    assert!(secrets.is_cached());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_secrets_prefetch_leaves_the_fetch_to_the_first_delivery() {
    let (held, secrets) = HeldSecretsManager::start(true).await;
    held.permits.add_permits(2);
    secrets.prefetch().await.expect("a failed prefetch is logged, not raised");
    assert_eq!(held.calls(), 1);
    assert!(!secrets.is_cached(), "nothing is cached from a failed prefetch");
    let default = TenantId::parse("default").expect("tenant");
    assert_eq!(secrets.secrets(&default, Origin::Github).await.expect("fetched by the delivery"), ["held"]);
    assert_eq!(held.calls(), 2);
}
