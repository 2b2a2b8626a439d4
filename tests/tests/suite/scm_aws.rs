//! The scm function wired as template.yaml wires it, on the AWS emulator:
//! the signed GitHub pull request sample, naming a submitted change, goes
//! through ingest onto a hub bus whose one rule is the template's
//! `ScmEvents` pattern (its target a queue, as the function is); what
//! arrives is handed to the function's own handler, twice (EventBridge
//! delivers at least once), built as its main builds it: DynamoDB, the
//! forge credentials (a GitHub App) in a Secrets Manager secret read at the
//! first forge call, and the fake forge as GitHub. The change's approval
//! then reaches the function through the same rule and flips the status
//! through the reverse index. GitHub's deployment protection rule takes the
//! same way: held on a change not approved, answered on its callback when
//! the approval arrives, at once on an approved change, once per request.

use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::scm::{Endpoints, ForgeClient, Retries, Timeouts, base_url};
use changehub::adapters::secretsmanager::SecretsManagerSecrets;
use changehub::app::Changes;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{DeliveryOutcome, Ingest, Webhooks};
use changehub::domain::gate::merge::MergeGatePolicy;
use changehub::domain::{ChangeId, ChangeState, HubEvent, ServiceName, TenantId};
use changehub::ingest::{Origin, sign};
use changehub::ports::{ChangeReader, EventBus, PullLinkStore, SecretSource, SystemClock};
use changehub_tests::fixtures::{self, alice, carol, pat, root, to};
use changehub_tests::forge::{APP_ID, APP_KEY, FakeForge, answer};
use changehub_tests::{aws, new_change, unique};
use chrono::Utc;
use serde_json::{Value, json};

use super::template::{function, template};

const PUBLIC_URL: &str = "https://changes.example.com";
const WEBHOOK_SECRET: &str = "scm-webhook-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_through_the_template_rule_gets_its_status_and_the_approval_flips_it() {
    let t = template();
    let pattern = &function(&t, "ScmFunction")["Properties"]["Events"]["ScmEvents"]["Properties"]["Pattern"];
    let (bus, mut rule_target) = aws::bus_to_queue(pattern).await;
    let store = aws::dynamo_store().await;
    let tenant = unique("scm");
    let tenant_id = TenantId::parse(&tenant).expect("tenant");

    // The sample catalog, its payments service gating merges into main; a submitted change.
    let changes = Changes::new(store.clone(), SystemClock);
    let mut catalog = fixtures::catalog();
    let payments = ServiceName::parse("payments").expect("service");
    let service = catalog.services.iter_mut().find(|s| s.name == payments).expect("payments in the sample");
    service.merge_gate = Some(MergeGatePolicy {
        branches: vec!["main".into()],
        exempt_paths: vec![],
        exempt_labels: vec![],
        standard_changes: true,
        gitlab: None,
    });
    changes.catalog.replace(&root(&tenant), catalog, None, &changes.clock).await.expect("import the catalog");
    let start = Utc::now() + chrono::Duration::days(1);
    let id = changes
        .create(&alice(&tenant), new_change("Raise the pool", &["payments"], start, 2))
        .await
        .expect("create")
        .id;
    changes.transition(&alice(&tenant), &id, to(ChangeState::Submitted, 1)).await.expect("submit");

    // The function as its main builds it: nothing is read from the secret yet.
    let (scm, forge, credentials) = function_on(&store, &tenant).await;
    assert!(!credentials.is_cached(), "no secret is read when the function is built");

    // The pull request sample, its title naming the change, through ingest onto the bus.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/github/pull_request.opened.json");
    let mut pr: Value = serde_json::from_slice(&std::fs::read(sample).expect("sample")).expect("json");
    pr["pull_request"]["title"] = json!(format!("{id}: Raise checkout-service DB connection pool"));
    pr["pull_request"]["body"] = json!("Raise DB_POOL_MAX from 20 to 50 in production.");
    let installation = pr["installation"]["id"].as_u64().expect("the sample names its installation");
    let head = pr["pull_request"]["head"]["sha"].as_str().expect("head sha").to_owned();
    let number = pr["pull_request"]["number"].as_u64().expect("number");
    let delivered = through_ingest(&store, &bus, &mut rule_target, &tenant_id, "pull_request.opened", &pr).await;
    assert_eq!(delivered["detail-type"], "Pull Request Changed");

    // Pending on the submitted change, through the App's installation token.
    let first = scm.handle(&delivered).await.expect("handled");
    let expected = json!({"statuses": [{
        "repository": "acme-corp/checkout-service", "number": number, "head_sha": head,
        "state": "pending", "code": first["merge_gate"]["statuses"][0]["code"], "change": id,
    }]});
    assert_eq!(first["merge_gate"], expected, "{first}");
    assert!(credentials.is_cached(), "the secret is read at the first forge call");
    let statuses = forge.calls_to("/statuses/");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].path, format!("/repos/acme-corp/checkout-service/statuses/{head}"));
    assert_eq!(statuses[0].auth.as_deref(), Some(&*format!("Bearer ghs_{installation}_1")));
    assert_eq!(
        (&statuses[0].body["state"], &statuses[0].body["context"]),
        (&json!("pending"), &json!("changehub/change"))
    );
    assert_eq!(statuses[0].body["target_url"], format!("{PUBLIC_URL}/changes/{id}"));
    let linked = store.get_pull_links(&tenant_id, &id).await.expect("read").expect("linked");
    assert_eq!(linked.pulls.iter().map(|p| p.pull.number).collect::<Vec<_>>(), [number]);

    // A duplicate delivery sets the same status with the kept token, and
    // leaves the reverse index as it was.
    let again = scm.handle(&delivered).await.expect("handled again");
    assert_eq!(again, first);
    assert_eq!(forge.issued(), 1, "the installation token is kept across invocations");
    let statuses = forge.calls_to("/statuses/");
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[1], statuses[0], "the same status, set again");
    let kept = store.get_pull_links(&tenant_id, &id).await.expect("read").expect("linked");
    assert_eq!(kept, linked, "not written again");

    // The change is approved: its events, as the outbox publishes them, through the same rule.
    changes.decide(&pat(&tenant), &id, fixtures::approve()).await.expect("level 1");
    changes.decide(&carol(&tenant), &id, fixtures::approve()).await.expect("level 2");
    let change = store.get_change(&tenant_id, &id).await.expect("read").expect("the change");
    assert_eq!(change.state, ChangeState::Approved);
    let trail = store.audit_trail(&tenant_id, &id).await.expect("trail");
    let events: Vec<HubEvent> = trail.iter().map(|entry| HubEvent::change_mutated(&change, entry)).collect();
    let rule = scm::rule_pattern().expect("pattern");
    let taken = events.iter().filter(|e| rule.matches(&e.to_json())).count();
    assert!(events.iter().any(|e| e.detail_type == "Change Approved"), "{events:?}");
    bus.publish(&events).await.expect("published");
    let mut delivered: Vec<Value> = rule_target
        .bodies(taken)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("an EventBridge event"))
        .collect();
    assert!(delivered.iter().all(|e| e["detail"]["change_id"] == json!(id)), "{delivered:?}");
    let approved = delivered.iter().position(|e| e["detail-type"] == "Change Approved").expect("delivered");
    let approved = delivered.swap_remove(approved);

    forge.forget();
    let flipped = scm.handle(&approved).await.expect("handled");
    assert_eq!(flipped["merge_gate"]["statuses"][0]["state"], "success", "{flipped}");
    let statuses = forge.calls_to("/statuses/");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].path, format!("/repos/acme-corp/checkout-service/statuses/{head}"));
    assert_eq!(statuses[0].body["state"], "success");
    assert_eq!(forge.issued(), 1, "still the kept token");

    // A forge that stays unavailable fails the invocation as retryable (Lambda
    // retries it, then the failed-events queue keeps it); one that refuses
    // the call fails it as rejected, with the reason.
    forge.fail_next([answer(502), answer(502), answer(502), answer(502)]);
    let unavailable = scm.handle(&approved).await.expect_err("502 after every retry");
    let failure = scm::diagnostic(&unavailable);
    assert_eq!(failure.error_type, "Retryable", "{failure:?}");
    assert!(failure.error_message.contains("502"), "{failure:?}");
    forge.fail_next([answer(403)]);
    let refused = scm::diagnostic(&scm.handle(&approved).await.expect_err("refused"));
    assert_eq!(refused.error_type, "Rejected", "{refused:?}");
    assert!(
        refused.error_message.contains("acme-corp/checkout-service") && refused.error_message.contains("403"),
        "{refused:?}"
    );
    assert!(!refused.error_message.contains("ghs_"), "no token in the reason: {refused:?}");
}

type Function = scm::Scm<
    changehub::adapters::dynamodb::DynamoStore,
    CachedCatalog<changehub::adapters::dynamodb::DynamoStore>,
    ForgeClient<SecretsManagerSecrets>,
    SystemClock,
    changehub::adapters::sns::SnsNotifier,
>;

/// The scm function as its main builds it, on `store`: `tenant`'s forge
/// credentials (the test GitHub App) in a new Secrets Manager secret, the
/// fake forge as GitHub; the function, the forge and the credentials.
async fn function_on(
    store: &changehub::adapters::dynamodb::DynamoStore,
    tenant: &str,
) -> (Function, FakeForge, SecretsManagerSecrets) {
    let forge = FakeForge::start().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws::config().await);
    let secret = unique("forge-credentials");
    let document = json!({ tenant: {"github_app_id": [APP_ID], "github_app_key": [APP_KEY]} });
    secrets.create_secret().name(&secret).secret_string(document.to_string()).send().await.expect("create secret");
    let credentials = SecretsManagerSecrets::new(secrets, secret);
    let url = base_url(&forge.url).expect("url");
    let endpoints = Endpoints { github_api: url.clone(), gitlab: url };
    let forges = ForgeClient::new(credentials.clone(), endpoints, Timeouts::default(), Retries::default());
    let (notifier, _topic) = aws::topic_to_queue().await;
    let retention = changehub::app::activity::ActivityRetention::default();
    let scm = scm::Scm::new(store.clone(), forges, notifier, Some(PUBLIC_URL.into()), retention);
    (scm, forge, credentials)
}

/// GitHub's webhook `payload` (of the sample `file_stem`), signed, through
/// ingest onto `bus`: the one event the rule's queue receives.
async fn through_ingest(
    store: &changehub::adapters::dynamodb::DynamoStore,
    bus: &changehub::adapters::eventbridge::EventBridgeBus,
    rule_target: &mut aws::SqsInbox,
    tenant: &TenantId,
    file_stem: &str,
    payload: &Value,
) -> Value {
    let body = serde_json::to_vec(payload).expect("json");
    let headers = sign::delivery(Origin::Github, WEBHOOK_SECRET, file_stem, &unique("d"), &body, Utc::now());
    let ingest =
        Ingest::new(store.clone(), bus.clone(), CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), SystemClock);
    let webhooks = Webhooks { ingest, secrets: StaticSecrets::default() };
    let outcome = webhooks
        .webhook(tenant, Origin::Github, &[WEBHOOK_SECRET.to_owned()], &headers, &body)
        .await
        .expect("accepted");
    assert!(matches!(outcome, DeliveryOutcome::Published(ref ids) if ids.len() == 1), "{outcome:?}");
    serde_json::from_str(&rule_target.bodies(1).await[0]).expect("an EventBridge event")
}

/// The sample protection rule request for run `run` on change `id` (its
/// ref `chg/<id>`), asked now.
fn protection_request(run: u64, id: &ChangeId) -> Value {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/github/deployment_protection_rule.requested.json");
    let mut request: Value = serde_json::from_slice(&std::fs::read(sample).expect("sample")).expect("json");
    request["ref"] = json!(format!("refs/heads/chg/{id}"));
    request["deployment_callback_url"] = json!(format!("https://api.github.com{}", callback_path(run)));
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    request["deployment"]["created_at"] = json!(now);
    request["deployment"]["updated_at"] = json!(now);
    request
}

fn callback_path(run: u64) -> String {
    format!("/repos/acme-corp/checkout-service/actions/runs/{run}/deployment_protection_rule")
}

/// GitHub's `deployment_protection_rule` through ingest and the template's
/// rule to the scm function: a request on a change not approved yet is held
/// (GitHub gets a status report, no answer), and answered `approved` when
/// the change's approval reaches the function; a request on the approved
/// change is answered at once; each on its run's callback with the
/// installation's token; a duplicate delivery answers nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protection_rule_through_the_template_rule_is_answered_at_once_or_when_its_change_is_approved() {
    let t = template();
    let pattern = &function(&t, "ScmFunction")["Properties"]["Events"]["ScmEvents"]["Properties"]["Pattern"];
    let (bus, mut rule_target) = aws::bus_to_queue(pattern).await;
    let store = aws::dynamo_store().await;
    let tenant = unique("scm-protection");
    let tenant_id = TenantId::parse(&tenant).expect("tenant");
    let changes = Changes::new(store.clone(), SystemClock);
    changes.catalog.replace(&root(&tenant), fixtures::catalog(), None, &changes.clock).await.expect("catalog");
    let start = Utc::now() - chrono::Duration::minutes(5);
    let id = changes
        .create(&alice(&tenant), new_change("Raise the pool", &["payments"], start, 3))
        .await
        .expect("create")
        .id;
    changes.transition(&alice(&tenant), &id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let (scm, forge, _credentials) = function_on(&store, &tenant).await;

    // Held: the change awaits its approvals.
    let request = protection_request(7201, &id);
    let installation = request["installation"]["id"].as_u64().expect("the sample names its installation");
    let token = format!("Bearer ghs_{installation}_1");
    let stem = "deployment_protection_rule.requested";
    let held = through_ingest(&store, &bus, &mut rule_target, &tenant_id, stem, &request).await;
    assert_eq!(held["detail-type"], "Deployment Gate Requested");
    let kept = scm.handle(&held).await.expect("handled");
    assert_eq!(kept["protection"]["waiting"]["change"], json!(id), "{kept}");
    let report = forge.callbacks();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!((report[0].path.as_str(), report[0].auth.as_deref()), (callback_path(7201).as_str(), Some(&*token)));
    assert_eq!(report[0].body.get("state"), None, "a status report, no answer: {report:?}");
    let again = scm.handle(&held).await.expect("a duplicate delivery");
    assert!(again["protection"]["ignored"].as_str().unwrap_or_default().contains("taken already"), "{again}");
    assert_eq!(forge.callbacks().len(), 1, "nothing posted for the copy");

    // The approval, as the outbox publishes it, through the same rule.
    changes.decide(&pat(&tenant), &id, fixtures::approve()).await.expect("level 1");
    changes.decide(&carol(&tenant), &id, fixtures::approve()).await.expect("level 2");
    let change = store.get_change(&tenant_id, &id).await.expect("read").expect("the change");
    let trail = store.audit_trail(&tenant_id, &id).await.expect("trail");
    let approved =
        trail.iter().map(|entry| HubEvent::change_mutated(&change, entry)).find(|e| e.detail_type == "Change Approved");
    bus.publish(&[approved.expect("the approval's event")]).await.expect("published");
    let approved: Value = serde_json::from_str(&rule_target.bodies(1).await[0]).expect("an EventBridge event");
    assert_eq!(approved["detail-type"], "Change Approved");
    let answered = scm.handle(&approved).await.expect("handled");
    assert_eq!(answered["protection"]["each"][0]["did"], json!({"answered": "approved"}), "{answered}");
    let callbacks = forge.callbacks();
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    assert_eq!(
        (callbacks[1].path.as_str(), callbacks[1].auth.as_deref()),
        (callback_path(7201).as_str(), Some(&*token))
    );
    let comment = callbacks[1].body["comment"].as_str().unwrap_or_default().to_owned();
    assert!(comment.starts_with(&format!("changehub approved on change {id} (")), "{comment}");
    assert_eq!(callbacks[1].body, json!({"environment_name": "production", "state": "approved", "comment": comment}));
    scm.handle(&approved).await.expect("the approval delivered again");
    scm.handle(&held).await.expect("the request delivered again");
    assert_eq!(forge.callbacks().len(), 2, "answered once: {:?}", forge.callbacks());

    // On the approved change, a new request is answered at once.
    let request = protection_request(7202, &id);
    let at_once = through_ingest(&store, &bus, &mut rule_target, &tenant_id, stem, &request).await;
    let done = scm.handle(&at_once).await.expect("handled");
    assert_eq!(done["protection"], json!({"answered": "approved"}), "{done}");
    let callbacks = forge.calls_to(&callback_path(7202));
    assert_eq!(callbacks.len(), 1, "answered, no status report: {callbacks:?}");
    assert_eq!(callbacks[0].auth.as_deref(), Some(&*token), "the kept installation token");
    assert_eq!(callbacks[0].body["state"], "approved");
    assert_eq!(forge.issued(), 1, "one installation token for all");
}
