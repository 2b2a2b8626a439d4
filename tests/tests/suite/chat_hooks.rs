//! Chat webhooks: the deliverer against a local server scripted to fail
//! (502 twice, 429 with Retry-After, 400, down for a while), the kept
//! queue, and the notifier that writes the file first and never waits on a hook.

use changehub::adapters::chat::deliver::{Backoff, Deliverer};
use changehub::adapters::chat::queue::{DeliveryQueue, HookDelivery};
use changehub::adapters::chat::{ChatKind, Hook, HookNotifier};
use changehub::adapters::https::{Retries, Timeouts};
use changehub::adapters::local_notifier::FileNotifier;
use changehub::ports::{Message, Notification, Notifier};
use changehub_tests::notifier_contract::sample;
use changehub_tests::scripted::{Answer, answer, server};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Quick attempts, for tests.
fn retries() -> Retries {
    Retries {
        attempts: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

const BACKOFF: Backoff = Backoff { first: Duration::from_millis(300), max: Duration::from_secs(1) };

struct Setup {
    hook: Hook,
    queue: DeliveryQueue,
    deliverer: Deliverer,
    _dir: tempfile::TempDir,
}

fn setup(spec: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = Hook::parse(spec).expect("hook");
    let queue = DeliveryQueue::beside(&dir.path().join("notifications.jsonl"));
    let deliverer = Deliverer::new(std::slice::from_ref(&hook), queue.clone(), Timeouts::default(), retries(), BACKOFF);
    Setup { hook, queue, deliverer, _dir: dir }
}

fn headed(headline: &str) -> Notification {
    Notification { message: Message::headline(headline), ..sample("Change Approved") }
}

async fn queued(s: &Setup, n: Notification) -> HookDelivery {
    let d = HookDelivery::new(&s.hook, n, Utc::now());
    s.queue.put(&d).await.expect("queued");
    d
}

async fn kept(s: &Setup) -> Vec<HookDelivery> {
    s.queue.list().await.expect("list").deliveries
}

#[tokio::test]
async fn a_delivery_answered_502_twice_is_posted_a_third_time_and_removed() {
    let (base, script) = server([answer(502), answer(502)]).await;
    let s = setup(&format!("slack={base}/services/T0/B0/x"));
    let n = sample("Change Approved");
    queued(&s, n.clone()).await;

    let pass = s.deliverer.pass(false).await;
    assert_eq!((pass.delivered, pass.failed, pass.refused), (1, 0, 0), "{pass:?}");
    let received = script.received();
    assert_eq!(received.len(), 3);
    for r in &received {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/services/T0/B0/x"));
        assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
        assert_eq!(r.body, ChatKind::Slack.payload(&n), "the Slack payload, the same each attempt");
    }
    assert!(kept(&s).await.is_empty(), "delivered: no longer kept");
}

#[tokio::test]
async fn a_429_is_posted_again_after_the_retry_after_it_asks_for() {
    let busy = Answer { retry_after: Some("1"), ..answer(429) };
    let (base, script) = server([busy]).await;
    let s = setup(&format!("teams={base}/workflows/1"));
    queued(&s, sample("Change Approved")).await;

    let started = Instant::now();
    let pass = s.deliverer.pass(false).await;
    assert_eq!(pass.delivered, 1, "{pass:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked: {:?}", started.elapsed());
    let received = script.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].body["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(kept(&s).await.is_empty());
}

#[tokio::test]
async fn a_400_is_refused_kept_with_its_error_and_not_posted_again_until_retried() {
    let (base, script) = server([answer(400)]).await;
    let s = setup(&format!("slack={base}/x"));
    let d = queued(&s, sample("Change Approved")).await;

    let pass = s.deliverer.pass(false).await;
    assert_eq!((pass.delivered, pass.refused), (0, 1), "{pass:?}");
    let [refused] = kept(&s).await.try_into().expect("kept");
    assert!(refused.refused);
    assert_eq!(refused.attempts, 1, "a refusal is not retried");
    assert_eq!(refused.last_error.as_deref(), Some("refused with HTTP status 400"));
    assert_eq!(refused.notification, d.notification, "kept whole");

    // Later passes leave it alone, however long they wait.
    assert_eq!(s.deliverer.pass(false).await.delivered, 0);
    assert_eq!(s.deliverer.pass(true).await.delivered, 0, "not even the first pass after a restart");
    assert_eq!(script.received().len(), 1);

    // `changehub notifications --retry`: due now; the hook takes it.
    let mut again = refused;
    again.retry_now(Utc::now());
    s.queue.put(&again).await.expect("retry");
    assert_eq!(s.deliverer.pass(false).await.delivered, 1);
    assert_eq!(script.received().len(), 2);
    assert!(kept(&s).await.is_empty());
}

#[tokio::test]
async fn while_a_hook_is_down_its_deliveries_are_kept_and_then_delivered_in_order() {
    let (base, script) = server(std::iter::repeat_n(answer(503), 100)).await;
    let s = setup(&format!("slack={base}/x"));
    let first = queued(&s, headed("first")).await;
    let second = queued(&s, headed("second")).await;

    let pass = s.deliverer.pass(false).await;
    assert_eq!((pass.delivered, pass.failed), (0, 1), "the second waits behind the first: {pass:?}");
    assert_eq!(script.received().len(), 3, "three attempts of the first");
    let kept_now = kept(&s).await;
    assert_eq!(kept_now.len(), 2);
    let failed = &kept_now[0];
    assert_eq!(failed.id, first.id);
    assert_eq!((failed.attempts, failed.failures, failed.refused), (3, 1, false));
    assert_eq!(failed.last_error.as_deref(), Some("answered HTTP status 503 to every attempt (3)"));
    let wait = failed.next_at - failed.last_attempt_at.expect("attempted");
    assert_eq!(wait.to_std().ok(), Some(BACKOFF.first), "tried again after the first wait");
    assert_eq!(pass.next_at, Some(failed.next_at));
    assert_eq!(kept_now[1], second, "untouched");

    // Not due yet: nothing is posted.
    let pass = s.deliverer.pass(false).await;
    assert_eq!((pass.delivered, pass.failed), (0, 0), "{pass:?}");
    assert_eq!(script.received().len(), 3);

    // Still down when due: the wait doubles.
    tokio::time::sleep(BACKOFF.first).await;
    s.deliverer.pass(false).await;
    let failed = &kept(&s).await[0];
    assert_eq!((failed.attempts, failed.failures), (6, 2));
    assert_eq!((failed.next_at - failed.last_attempt_at.expect("attempted")).to_std().ok(), Some(BACKOFF.after(2)));

    // Back up: both are delivered, in the order queued.
    script.recover();
    let pass = s.deliverer.pass(true).await;
    assert_eq!(pass.delivered, 2, "{pass:?}");
    let headlines: Vec<String> = script.received()[6..]
        .iter()
        .map(|r| r.body["blocks"][0]["text"]["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(headlines, ["first", "second"]);
    assert!(kept(&s).await.is_empty());
}

#[tokio::test]
async fn the_notifier_writes_the_file_then_queues_one_delivery_per_hook_that_wants_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notifications.jsonl");
    let queue = DeliveryQueue::beside(&file);
    // Nothing listens on these: the notifier never posts, so it never waits.
    let every = Hook::parse("slack=http://127.0.0.1:9/every").expect("hook");
    let cab = Hook::parse("teams=http://127.0.0.1:9/cab;audience=cab").expect("hook");
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifier = HookNotifier::new(
        FileNotifier::new(&file),
        vec![every.clone(), cab.clone()].into(),
        queue.clone(),
        wake.clone(),
    );

    let mut owners = sample("Change Approved");
    owners.attributes.insert("audience".into(), "owners".into());
    let mut for_cab = sample("Change Approved");
    for_cab.attributes.insert("audience".into(), "cab".into());
    let started = Instant::now();
    notifier.notify(&owners).await.expect("notify");
    notifier.notify(&for_cab).await.expect("notify");
    assert!(started.elapsed() < Duration::from_secs(2));

    let lines = std::fs::read_to_string(&file).expect("file");
    assert_eq!(lines.lines().count(), 2, "every notification is in the file");
    let hooks: Vec<(String, ChatKind, String)> = queue
        .list()
        .await
        .expect("list")
        .deliveries
        .into_iter()
        .map(|d| (d.hook, d.kind, d.notification.attributes["audience"].clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            (every.id().to_owned(), ChatKind::Slack, "owners".to_owned()),
            (every.id().to_owned(), ChatKind::Slack, "cab".to_owned()),
            (cab.id().to_owned(), ChatKind::Teams, "cab".to_owned()),
        ]
    );
    // The deliverer was told.
    tokio::time::timeout(Duration::from_secs(1), wake.notified()).await.expect("woken");
}

/// The README's Slack example is what the hub posts for the README's own
/// escalation: the sample catalog, the sample change (`events/api/new-change.json`)
/// submitted at 09:00, escalated at its 4 h deadline to payments-managers,
/// on a hub at http://127.0.0.1:8080 (the change id shown is a fixed one).
#[tokio::test]
async fn the_readme_shows_the_slack_payload_of_an_escalation_as_the_hub_posts_it() {
    use changehub::app::Changes;
    use changehub::app::escalation::Escalator;
    use changehub::app::publish::notifications_for;
    use changehub::domain::{ChangeState, HubEvent, NewChange};
    use changehub::ports::{CatalogReader, ChangeReader, FixedClock};
    use changehub_tests::fixtures::{alice, seed, to};
    let (store, _dir) = super::store_contract::embedded().await;
    let submitted_at = chrono::DateTime::parse_from_rfc3339("2030-11-28T09:00:00Z").expect("time").to_utc();
    let clock = FixedClock::new(submitted_at);
    let app = Changes::new(store.clone(), &clock);
    seed(&app, "default").await;
    let new: NewChange =
        serde_json::from_str(include_str!("../../../events/api/new-change.json")).expect("the sample change");
    let change = app.create(&alice("default"), new).await.expect("create");
    app.transition(&alice("default"), &change.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    clock.set(submitted_at + chrono::Duration::hours(4));
    let escalator = Escalator { store: store.clone(), catalog: app.catalog.clone(), clock: &clock };
    let tick = escalator.tick().await.expect("tick");
    assert_eq!(tick.taken.len(), 1, "{tick:?}");
    let tenant = change.tenant.clone();
    let escalated = store.get_change(&tenant, &change.id).await.expect("get").expect("the change");
    let entries =
        store.audit_entries(&tenant, &change.id, escalated.version..=escalated.version).await.expect("entries");
    let event = HubEvent::change_mutated(&escalated, &entries[0]);
    let view = app.catalog.catalog(&tenant).await.expect("catalog");
    let routed = notifications_for(&view.catalog, &escalated, &entries[0], &event, Some("http://127.0.0.1:8080"));
    let to_managers = routed
        .iter()
        .find(|r| r.notification.attributes.get("notify").map(String::as_str) == Some("payments-managers"))
        .expect("the escalation to payments-managers");
    let posted = ChatKind::Slack.payload(&to_managers.notification).to_string();
    let posted: serde_json::Value =
        serde_json::from_str(&posted.replace(&change.id.to_string(), "0193a5f2-7c00-7000-8000-000000000001"))
            .expect("JSON");

    let readme = include_str!("../../../README.md");
    let shown = readme
        .split("<!-- slack-example -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README's Slack example");
    let shown: serde_json::Value = serde_json::from_str(shown).expect("the README's Slack example is JSON");
    assert_eq!(shown, posted, "{}", serde_json::to_string_pretty(&posted).unwrap_or_default());
}
