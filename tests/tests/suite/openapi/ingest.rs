//! The webhook routes: signed deliveries from every source, path parameters
//! that are not UTF-8, and the 503s of ingest failures.

use super::*;

/// The part of the scenario on the webhook routes: signed deliveries of real
/// samples from every source.
pub(super) async fn webhook_scenario(api: &Api) {
    let default_route = key(&Method::POST, "/webhooks/{source}");
    let tenant_route = key(&Method::POST, "/tenants/{tenant}/webhooks/{source}");

    // Per source, on both routes: an unsigned delivery and one signed with
    // another secret are refused, naming the check that failed; the signed
    // delivery is published; the same delivery again is a duplicate.
    for (origin, file, credential) in [
        (Origin::Github, "github/deployment_status.success.json", "X-Hub-Signature-256"),
        (Origin::Gitlab, "gitlab/merge_request.merge.json", "X-Gitlab-Token"),
        (Origin::Pagerduty, "pagerduty/incident.triggered.json", "X-PagerDuty-Signature"),
        (Origin::Alertmanager, "alertmanager/firing.json", "Authorization"),
        (Origin::Incidentio, "incidentio/public_incident.incident_created_v2.json", "webhook-timestamp"),
        (Origin::Argocd, "argocd/app.deployed.json", "Authorization"),
    ] {
        let source = origin.as_str();
        let secret = if origin == Origin::Incidentio { SIGNING_SECRET } else { SECRET };
        let delivery = uuid::Uuid::now_v7().to_string();
        for (op, uri) in [
            (&default_route, format!("/webhooks/{source}")),
            (&tenant_route, format!("/tenants/acme/webhooks/{source}")),
        ] {
            let what = |w: &str| format!("{w} {file} to {uri}");
            let unsigned = api.call(op, Req::webhook(origin, &uri, file, &delivery, None)).await;
            unsigned.expect(&what("unsigned"), StatusCode::UNAUTHORIZED, Some("unauthorized"));
            assert!(
                unsigned.message().to_ascii_lowercase().contains(&credential.to_ascii_lowercase()),
                "{}: the message names the failed check ({credential}): {}",
                what("unsigned"),
                unsigned.brief()
            );
            let forged = api.call(op, Req::webhook(origin, &uri, file, &delivery, Some("not the secret"))).await;
            forged.expect(&what("wrongly signed"), StatusCode::UNAUTHORIZED, Some("unauthorized"));
            assert!(!forged.brief().contains(SECRET), "{}: the answer shows a secret", what("wrongly signed"));

            api.call(op, Req::webhook(origin, &uri, file, &delivery, Some(secret)))
                .await
                .expect_published(&what("signed"), source);
            let again = api.call(op, Req::webhook(origin, &uri, file, &delivery, Some(secret))).await;
            again.expect(&what("the same delivery again:"), StatusCode::OK, None);
            assert_eq!(again.body, json!({"duplicate": true}), "{}", what("the same delivery again:"));
        }
    }

    // A tenant with no secret for a source refuses its deliveries.
    let globex = "/tenants/globex/webhooks/github";
    let file = "github/pull_request.opened.json";
    let refused = api.call(&tenant_route, Req::webhook(Origin::Github, globex, file, "d-globex", Some(SECRET))).await;
    refused.expect("a delivery to a tenant without secrets", StatusCode::UNAUTHORIZED, Some("unauthorized"));
    assert!(refused.message().contains("no secret"), "{}", refused.brief());

    // Valid deliveries of kinds the hub does not use.
    for (file, kind) in [("github/star.created.json", "star"), ("github/ping.json", "ping")] {
        let a =
            api.call(&default_route, Req::webhook(Origin::Github, "/webhooks/github", file, file, Some(SECRET))).await;
        a.expect(file, StatusCode::OK, None);
        assert_eq!(a.body, json!({"ignored": kind}), "{file}");
    }

    // The content type is not checked. (Two different deliveries: the same
    // signed body under another delivery id would be a replay.)
    let webhook =
        |file: &str, delivery: &str| Req::webhook(Origin::Github, "/webhooks/github", file, delivery, Some(SECRET));
    api.call(&default_route, webhook(file, "d-text").header("content-type", "text/plain"))
        .await
        .expect_published("a delivery sent as text/plain", "github");
    api.call(&default_route, webhook("github/pull_request.synchronize.json", "d-untyped").without("content-type"))
        .await
        .expect_published("a delivery without a content type", "github");

    // The path: unknown sources, invalid tenants.
    for (op, uri) in [(&default_route, "/webhooks/bitbucket"), (&tenant_route, "/tenants/acme/webhooks/bitbucket")] {
        api.call(op, Req::new(Method::POST, uri).body(b"{}".to_vec())).await.expect(
            uri,
            StatusCode::NOT_FOUND,
            Some("not_found"),
        );
    }
    for tenant in ["Acme", "-acme", "a%20b", &"t".repeat(65)] {
        let uri = format!("/tenants/{tenant}/webhooks/github");
        api.call(&tenant_route, Req::webhook(Origin::Github, &uri, file, "d-tenant", Some(SECRET)))
            .await
            .expect(&uri, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&uri, "tenant");
    }

    // Signed deliveries the hub cannot read.
    let push = |body: &[u8]| Req::github("/webhooks/github", "push", "d-unreadable", body);
    api.call(&default_route, push(b"{not json")).await.expect(
        "a webhook that is not JSON",
        StatusCode::BAD_REQUEST,
        Some("malformed_json"),
    );
    api.call(&default_route, push(b"[]"))
        .await
        .expect("a webhook that is not an object", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a webhook that is not an object", "body");
    let a = api.call(&default_route, Req::github("/webhooks/github", "pull_request", "d-empty", b"{}")).await;
    a.expect("a pull_request webhook of {}", StatusCode::BAD_REQUEST, Some("invalid_request"));
    assert!(!a.field().is_empty(), "a pull_request webhook of {{}}: the field at fault is named: {}", a.brief());
    for (origin, file, header) in [
        (Origin::Github, "github/push.default_branch.json", "X-GitHub-Event"),
        (Origin::Github, "github/push.default_branch.json", "X-GitHub-Delivery"),
        (Origin::Pagerduty, "pagerduty/incident.resolved.json", "X-Webhook-Id"),
    ] {
        let what = format!("{file} without {header}");
        let uri = format!("/webhooks/{}", origin.as_str());
        api.call(&default_route, Req::webhook(origin, &uri, file, "d-headers", Some(SECRET)).without(header))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, header);
    }

    // Too large.
    let oversized = vec![b' '; MAX_WEBHOOK_BYTES + 1];
    api.call(&default_route, Req::github("/webhooks/github", "push", "d-large", &oversized)).await.expect(
        "a webhook over 25 MiB",
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
    );
}

// ---------------------------------------------------------------------------
// Ingest failures: the 503 answers fit the document

/// A bus that refuses every publish.
#[derive(Clone)]
struct DownBus;

impl EventBus for DownBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        Err(BusError::Rejected { failed: events.iter().map(|e| (e.id.clone(), "InternalFailure".into())).collect() })
    }
}

/// A secrets backend that cannot be read.
struct SecretsDown;

impl SecretSource for SecretsDown {
    async fn secrets(&self, _tenant: &TenantId, _origin: Origin) -> Result<Vec<String>, SecretsError> {
        Err(SecretsError::Invalid("the secrets document cannot be read".into()))
    }
}

#[tokio::test]
async fn ingest_failures_are_documented_503s() {
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let events = key(&Method::POST, "/events");
    let delivery = || {
        Req::webhook(Origin::Pagerduty, "/webhooks/pagerduty", "pagerduty/incident.triggered.json", "d", Some(SECRET))
    };
    let alarm = || Req::new(Method::POST, "/events").body(sample("aws/cloudwatch.alarm_state_change.json"));

    // The bus refuses: publish_failed, and the delivery is not remembered.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open store");
    let catalog =
        changehub::app::catalog::CachedCatalog::new(store.clone(), changehub::app::catalog::DEFAULT_CACHE_TTL);
    let ingest = || Ingest::new(store.clone(), DownBus, catalog.clone(), SystemClock);
    let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: secrets() });
    let key = LocalKey::from_secret(vec![9; 32]);
    let auth = Authenticator::Local(Arc::new(LocalKey::from_secret(vec![9; 32])), Default::default());
    let token = mint(&key, &REPLAY, chrono::Utc::now());
    let alarm = || alarm().bearer(&token);
    let router = changehub::http::finish(
        webhooks::webhook_routes(webhooks, WebhookLimits::default())
            .merge(webhooks::local_routes(Arc::new(ingest()), auth)),
    );
    let api = Api::with_router(router, dir, key);
    for _attempt in 0..2 {
        api.call(&webhook, delivery()).await.expect(
            "a webhook while the bus is down",
            StatusCode::SERVICE_UNAVAILABLE,
            Some("publish_failed"),
        );
        api.call(&events, alarm()).await.expect(
            "an AWS event while the bus is down",
            StatusCode::SERVICE_UNAVAILABLE,
            Some("publish_failed"),
        );
    }

    // The secrets cannot be read: unavailable.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open store");
    let ingest = Ingest::new(
        store.clone(),
        LocalBus::new(),
        changehub::app::catalog::CachedCatalog::new(store, changehub::app::catalog::DEFAULT_CACHE_TTL),
        SystemClock,
    );
    let api = Api::with_router(
        changehub::http::finish(webhooks::webhook_routes(
            Arc::new(Webhooks { ingest, secrets: SecretsDown }),
            WebhookLimits::default(),
        )),
        dir,
        LocalKey::from_secret(vec![9; 32]),
    );
    api.call(&webhook, delivery()).await.expect(
        "a webhook while the secrets are unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        Some("unavailable"),
    );
}

/// Path parameters that do not percent-decode to UTF-8 get the documented
/// JSON error, as a change `id` does (see
/// `an_id_that_is_not_utf8_is_a_json_invalid_request`).
#[tokio::test]
async fn webhook_path_parameters_that_are_not_utf8_get_a_json_error() {
    let api = Api::start().await;
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let tenant_webhook = key(&Method::POST, "/tenants/{tenant}/webhooks/{source}");
    let file = "github/star.created.json";
    for (op, uri, status, code, field) in [
        (&tenant_webhook, "/tenants/%FF/webhooks/github", StatusCode::BAD_REQUEST, "invalid_request", "tenant"),
        (&tenant_webhook, "/tenants/acme/webhooks/%FF", StatusCode::NOT_FOUND, "not_found", ""),
        (&webhook, "/webhooks/%FF", StatusCode::NOT_FOUND, "not_found", ""),
    ] {
        api.call(op, Req::webhook(Origin::Github, uri, file, "d", Some(SECRET)))
            .await
            .expect(uri, status, Some(code))
            .expect_field(uri, field);
    }
}
