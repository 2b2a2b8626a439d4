//! Telling people about a change-related incident: the write-back adapter
//! against a local HTTP server that checks the exact requests (method, path,
//! headers, JSON body), its retries, refusals and timeouts; the use case's
//! once-per-channel deliveries; the notification's attributes on the local
//! file notifier and on SNS (→ SQS on the emulator); the tokens from Secrets
//! Manager on the emulator.

use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use changehub::adapters::local_notifier::FileNotifier;
use changehub::adapters::secretsmanager::SecretsManagerSecrets;
use changehub::app::tell::{Channel, Delivery, Failure, Teller};
use changehub::domain::catalog::Catalog;
use changehub::domain::correlation::{Implementation, Outcome, Reason};
use changehub::domain::notice::{GithubThread, NoticeChange, NoticeIncident, NoticeOrigin, Suspicion, TagNotice};
use changehub::domain::writeback::{GithubWriteBack, PagerdutyWriteBack, Target, WriteBackPolicy};
use changehub::domain::{ChangeId, ChangeType, ServiceName, TenantId};
use changehub::ports::{Post, SystemClock, WriteBack, WriteBackCredentials, WriteBackError};
use changehub_tests::scripted::{Answer, Received, answer, server};
use changehub_tests::{aws, t0, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn tokens() -> StaticSecrets {
    let document = json!({"acme": {"pagerduty_api": ["pd-t0ken"], "github_api": ["ghp_t0ken"]}});
    StaticSecrets::new(serde_json::from_value(document).expect("document"))
}

/// Fast retries for tests.
fn retries(attempts: u32) -> Retries {
    Retries {
        attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..Retries::default()
    }
}

fn client<C: WriteBackCredentials>(credentials: C, attempts: u32) -> HttpWriteBack<C> {
    HttpWriteBack::new(credentials, Timeouts::default(), retries(attempts)).expect("client")
}

/// A P1 on payments, 38 minutes after alice's failed DB upgrade, deployed from acme/pay#7.
fn notice() -> TagNotice {
    let at = |m: i64| t0() + chrono::Duration::minutes(m);
    let payments = ServiceName::parse("payments").expect("service");
    TagNotice {
        tenant: acme(),
        incident: NoticeIncident {
            source: "pagerduty".into(),
            external_id: "PT4KHLK".into(),
            id: unique("inc"),
            title: "Checkout errors".into(),
            service: payments.clone(),
            severity: Some("P1".into()),
            major: true,
            started_at: at(45),
            link: Some("https://acme.pagerduty.com/incidents/PT4KHLK".into()),
        },
        change: NoticeChange {
            id: ChangeId::parse("0195f3a2-7c00-7000-8000-000000000001").expect("id"),
            title: "Upgrade DB".into(),
            requester: "alice".into(),
            change_type: ChangeType::Normal,
            environment: "production".into(),
            services: vec![payments],
            implementation: Some(Implementation::Finished {
                started_at: at(0),
                ended_at: at(7),
                outcome: Outcome::Failed,
            }),
            origin: Some(NoticeOrigin {
                repository: Some("acme/pay".into()),
                pull_request: Some(7),
                url: Some("https://github.com/acme/pay/pull/7".into()),
                ..NoticeOrigin::default()
            }),
            link: None,
        },
        suspicion: Suspicion {
            reasons: vec![Reason::SameService, Reason::FailedDeployment],
            confidence: 0.85,
            explanation: "It changed payments and its deployment failed.".into(),
        },
    }
}

fn note(api_url: &str) -> Post {
    Post::PagerdutyNote {
        api_url: api_url.into(),
        incident: "PT4KHLK".into(),
        from: "bot@example.com".into(),
        content: "the note".into(),
    }
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn a_pagerduty_note_is_posted_as_pagerduty_documents_it() {
    let (base, script) = server([]).await;
    client(tokens(), 3).post(&acme(), &note(&format!("{base}/pd"))).await.expect("posted");
    let [r] = script.received().try_into().expect("one request");
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/pd/incidents/PT4KHLK/notes"));
    assert_eq!(header(&r, "authorization"), "Token token=pd-t0ken");
    assert_eq!(header(&r, "from"), "bot@example.com");
    assert_eq!(header(&r, "accept"), "application/vnd.pagerduty+json;version=2");
    assert_eq!(header(&r, "content-type"), "application/json");
    assert!(header(&r, "user-agent").starts_with("changehub/"));
    assert_eq!(r.body, json!({"note": {"content": "the note"}}));
}

#[tokio::test]
async fn github_comments_go_to_the_pull_request_or_the_commit() {
    let (base, script) = server([]).await;
    let writeback = client(tokens(), 3);
    for thread in
        [GithubThread::PullRequest(7), GithubThread::Commit("9fceb02d0ae598e95dc970b74767f19372d61af8".into())]
    {
        let post = Post::GithubComment {
            api_url: format!("{base}/api/v3"),
            repository: "acme/pay".into(),
            thread,
            body: "**the** comment".into(),
        };
        writeback.post(&acme(), &post).await.expect("posted");
    }
    let received = script.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v3/repos/acme/pay/issues/7/comments",
            "/api/v3/repos/acme/pay/commits/9fceb02d0ae598e95dc970b74767f19372d61af8/comments"
        ]
    );
    for r in &received {
        assert_eq!(r.method, axum::http::Method::POST);
        assert_eq!(header(r, "authorization"), "Bearer ghp_t0ken");
        assert_eq!(header(r, "accept"), "application/vnd.github+json");
        assert_eq!(header(r, "x-github-api-version"), "2022-11-28");
        assert!(header(r, "user-agent").starts_with("changehub/"));
        assert_eq!(r.body, json!({"body": "**the** comment"}));
    }
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds() {
    let (base, script) = server([answer(503), answer(502)]).await;
    client(tokens(), 3).post(&acme(), &note(&base)).await.expect("posted on the third attempt");
    assert_eq!(script.received().len(), 3);
}

#[tokio::test]
async fn retries_end_after_the_attempts_and_the_failure_is_retryable() {
    let (base, script) = server([answer(503), answer(503), answer(503)]).await;
    let e = client(tokens(), 3).post(&acme(), &note(&base)).await.expect_err("unavailable");
    assert!(matches!(e, WriteBackError::Unavailable { status: 503, attempts: 3, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(script.received().len(), 3);
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_asks() {
    let busy = Answer { retry_after: Some("1"), ..answer(429) };
    let (base, script) = server([busy]).await;
    let started = Instant::now();
    client(tokens(), 3).post(&acme(), &note(&base)).await.expect("posted");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    assert_eq!(script.received().len(), 2);
}

#[tokio::test]
async fn a_401_is_not_retried() {
    let (base, script) = server([answer(401)]).await;
    let e = client(tokens(), 3).post(&acme(), &note(&base)).await.expect_err("refused");
    assert!(matches!(e, WriteBackError::Refused { target: Target::Pagerduty, status: 401 }), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(script.received().len(), 1);
    assert!(!format!("{e} {e:?}").contains("t0ken"));
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let slow = Answer { delay: Duration::from_secs(5), ..answer(201) };
    let (base, script) = server([slow.clone(), slow]).await;
    let timeouts = Timeouts { connect: Duration::from_secs(1), request: Duration::from_millis(200) };
    let writeback = HttpWriteBack::new(tokens(), timeouts, retries(2)).expect("client");
    let started = Instant::now();
    let e = writeback.post(&acme(), &note(&base)).await.expect_err("timed out");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(e, WriteBackError::Unreachable { attempts: 2, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(script.received().len(), 2);
}

#[tokio::test]
async fn a_tenant_without_a_token_is_refused_without_a_request() {
    let (base, script) = server([]).await;
    let other = TenantId::parse("other").expect("tenant");
    let e = client(tokens(), 3).post(&other, &note(&base)).await.expect_err("no token");
    assert_eq!(e.to_string(), "no pagerduty write-back token is configured for tenant other");
    assert!(script.received().is_empty());
}

#[tokio::test]
async fn tokens_are_read_from_a_secrets_manager_secret_keyed_by_tenant() {
    let client = aws_sdk_secretsmanager::Client::new(&aws::config().await);
    let name = unique("writeback-tokens");
    let document = json!({"acme": {"github_api": ["ghp_t0ken"]}});
    client.create_secret().name(&name).secret_string(document.to_string()).send().await.expect("create secret");
    let secrets = SecretsManagerSecrets::new(client, name);
    assert_eq!(secrets.token(&acme(), Target::Github).await.expect("read").as_deref(), Some("ghp_t0ken"));
    assert_eq!(secrets.token(&acme(), Target::Pagerduty).await.expect("read"), None);
}

/// A catalog that lists no service and writes back as `writeback` says: a
/// tag is routed to the feed and the change's requester.
fn catalog(writeback: WriteBackPolicy) -> Catalog {
    Catalog { writeback, ..Catalog::default() }
}

/// Both targets on, at `base`.
fn both(base: &str) -> WriteBackPolicy {
    WriteBackPolicy {
        pagerduty: Some(PagerdutyWriteBack { from: "bot@example.com".into(), api_url: base.into() }),
        github: Some(GithubWriteBack { api_url: base.into() }),
    }
}

fn deliveries(told: &changehub::app::tell::Told) -> Vec<(Channel, Delivery)> {
    told.deliveries.clone()
}

#[tokio::test]
async fn each_channel_is_delivered_once_and_a_failed_write_back_is_retried_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("tell.db")).expect("open");
    let file = dir.path().join("notifications.jsonl");
    // PagerDuty is down for the first attempt; GitHub answers.
    let (base, script) = server([answer(503), answer(503)]).await;
    let teller = Teller::new(store, SystemClock, FileNotifier::new(&file), client(tokens(), 2));
    let notice = notice();

    let e = teller.tell(&catalog(both(&base)), &notice).await.expect_err("pagerduty to retry");
    let failed: Vec<Channel> = e.failures.iter().map(|(c, _)| *c).collect();
    assert_eq!(failed, [Channel::WriteBack(Target::Pagerduty)]);
    assert!(matches!(e.failures[0].1, Failure::WriteBack(WriteBackError::Unavailable { status: 503, .. })));
    assert_eq!(
        deliveries(&e.told),
        [(Channel::Notification, Delivery::Sent), (Channel::WriteBack(Target::Github), Delivery::Sent)]
    );

    let told = teller.tell(&catalog(both(&base)), &notice).await.expect("the retry succeeds");
    assert_eq!(
        deliveries(&told),
        [
            (Channel::Notification, Delivery::Duplicate),
            (Channel::WriteBack(Target::Pagerduty), Delivery::Sent),
            (Channel::WriteBack(Target::Github), Delivery::Duplicate),
        ]
    );
    let received = script.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/incidents/PT4KHLK/notes",
            "/incidents/PT4KHLK/notes",
            "/repos/acme/pay/issues/7/comments",
            "/incidents/PT4KHLK/notes",
        ]
    );
    assert_eq!(received[3].body, json!({"note": {"content": notice.pagerduty_note()}}));
    assert_eq!(received[2].body, json!({"body": notice.github_comment()}));
    let lines = std::fs::read_to_string(&file).expect("notifications");
    assert_eq!(lines.lines().count(), 2, "the feed and the requester, notified once each");
}

/// What GitHub would read as mentions: `@` right before a name.
fn mentions(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices('@') {
        let name: String =
            text[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/')).collect();
        if !name.is_empty() {
            found.push(format!("@{name}"));
        }
    }
    found
}

#[tokio::test]
async fn write_backs_quote_outside_text_without_mentioning_anyone_or_breaking_the_markdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("tell.db")).expect("open");
    let (base, script) = server([]).await;
    let teller = Teller::new(store, SystemClock, FileNotifier::new(dir.path().join("n.jsonl")), client(tokens(), 1));
    let mut notice = notice();
    notice.incident.title = "Checkout down, paging @acme/payments-oncall and @bob\n### not a heading".into();
    notice.incident.link = Some("https://acme.pagerduty.com/incidents/(PT4KHLK)".into());
    notice.change.title = "Revert [this](https://evil.example) for @carol & <b>".into();
    if let Some(origin) = notice.change.origin.as_mut() {
        origin.actor = Some("@dave".into());
        origin.url = Some("@acme/security".into());
    }
    notice.suspicion.explanation = "It touched @acme/db, which the incident names.".into();
    teller.tell(&catalog(both(&base)), &notice).await.expect("told");

    let received = script.received();
    let [note, comment] = received.try_into().expect("a note and a comment");
    let note = note.body["note"]["content"].as_str().expect("note").to_owned();
    let comment = comment.body["body"].as_str().expect("comment").to_owned();
    assert_eq!(mentions(&note), Vec::<String>::new(), "{note}");
    assert_eq!(mentions(&comment), Vec::<String>::new(), "{comment}");
    assert!(note.contains("paging @\u{200d}acme/payments-oncall and @\u{200d}bob ### not a heading"), "{note}");
    assert!(comment.starts_with(
        "### Major incident [Checkout down, paging @\u{200d}acme/payments-oncall and @\u{200d}bob \\#\\#\\# not a heading]\
         (https://acme.pagerduty.com/incidents/%28PT4KHLK%29) may have been caused by this change\n"
    ), "{comment}");
    assert!(
        comment.contains(
            "'Revert \\[this\\](https://evil.example) for @\u{200d}carol \\& \\<b\\>' by @\u{200d}dave failed"
        ),
        "{comment}"
    );
    assert!(comment.contains("- **Why**: It touched @\u{200d}acme/db, which the incident names.\n"), "{comment}");
    assert!(
        comment.contains("- **Links**: https://acme.pagerduty.com/incidents/(PT4KHLK) @\u{200d}acme/security\n"),
        "{comment}"
    );
    assert_eq!(comment.lines().count(), 10, "no line of outside text starts a new one: {comment}");
}

#[tokio::test]
async fn a_refused_write_back_is_reported_and_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("tell.db")).expect("open");
    let (base, script) = server([answer(404)]).await;
    let teller = Teller::new(store, SystemClock, FileNotifier::new(dir.path().join("n.jsonl")), client(tokens(), 3));
    let only_pagerduty = WriteBackPolicy { github: None, ..both(&base) };
    let told = teller.tell(&catalog(only_pagerduty), &notice()).await.expect("nothing to retry");
    assert_eq!(
        deliveries(&told),
        [
            (Channel::Notification, Delivery::Sent),
            (
                Channel::WriteBack(Target::Pagerduty),
                Delivery::Refused("pagerduty refused the write-back with status 404".into())
            ),
            (Channel::WriteBack(Target::Github), Delivery::Skipped("off in the catalog")),
        ]
    );
    assert_eq!(script.received().len(), 1);
}

/// The attributes every change-related incident notification carries.
fn expected_attributes() -> BTreeMap<String, String> {
    [
        ("audience", "feed"),
        ("environment", "production"),
        ("kind", "Change Related Incident"),
        ("major", "true"),
        ("service", "payments"),
        ("services", "payments"),
        ("severity", "P1"),
        ("tenant", "acme"),
        ("type", "change_related_incident"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A write-back that must not be called.
struct NoWriteBack;

impl WriteBack for NoWriteBack {
    async fn post(&self, _: &TenantId, post: &Post) -> Result<(), WriteBackError> {
        panic!("no write-back expected, got {post:?}")
    }
}

#[tokio::test]
async fn the_local_notification_file_gets_the_attributes_and_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("tell.db")).expect("open");
    let file = dir.path().join("notifications.jsonl");
    let teller = Teller::new(store, SystemClock, FileNotifier::new(&file), NoWriteBack);
    teller.tell(&Catalog::default(), &notice()).await.expect("told");
    let text = std::fs::read_to_string(&file).expect("notifications");
    let line: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    let attributes: BTreeMap<String, String> = serde_json::from_value(line["attributes"].clone()).expect("attributes");
    assert_eq!(attributes, expected_attributes());
    assert_eq!(line["subject"], "Major change-related incident on payments (P1): Checkout errors");
    assert_eq!(line["body"]["summary"], notice().summary());
}

#[tokio::test]
async fn the_sns_notification_carries_the_filter_attributes() {
    let (notifier, mut inbox) = aws::topic_to_queue().await;
    let store = aws::dynamo_store().await;
    let teller = Teller::new(store, SystemClock, notifier, NoWriteBack);
    teller.tell(&Catalog::default(), &notice()).await.expect("told");
    let bodies = inbox.bodies(2).await;
    assert_eq!(bodies.len(), 2, "the feed and the requester: {bodies:?}");
    let feed = bodies
        .iter()
        .map(|b| aws::SnsMessage::of(b))
        .find(|n| n.attributes.get("audience").map(String::as_str) == Some("feed"))
        .expect("the feed's message");
    assert_eq!(feed.attributes, expected_attributes());
    assert_eq!(feed.subject, "Major change-related incident on payments (P1): Checkout errors");
    assert_eq!(feed.message["summary"], notice().summary());
}

/// A notifier that refuses the first notification to `audience`, then sends.
struct RefusesOnce {
    file: FileNotifier,
    audience: &'static str,
    refused: std::sync::atomic::AtomicBool,
}

impl changehub::ports::Notifier for RefusesOnce {
    async fn notify(&self, n: &changehub::ports::Notification) -> Result<(), changehub::ports::NotifyError> {
        use std::sync::atomic::Ordering;
        if n.attributes.get("audience").map(String::as_str) == Some(self.audience)
            && !self.refused.swap(true, Ordering::SeqCst)
        {
            return Err(changehub::ports::NotifyError::Backend("the topic is down".into()));
        }
        changehub::ports::Notifier::notify(&self.file, n).await
    }
}

#[tokio::test]
async fn a_retry_after_one_recipient_failed_sends_only_the_missing_notifications() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("tell.db")).expect("open");
    let file = dir.path().join("notifications.jsonl");
    let notifier = RefusesOnce { file: FileNotifier::new(&file), audience: "requester", refused: Default::default() };
    let teller = Teller::new(store, SystemClock, notifier, NoWriteBack);
    let notice = notice();
    let e = teller.tell(&Catalog::default(), &notice).await.expect_err("the requester's to retry");
    assert!(matches!(e.failures.as_slice(), [(Channel::Notification, Failure::Notify(_))]), "{e}");
    let told = teller.tell(&Catalog::default(), &notice).await.expect("the retry succeeds");
    assert_eq!(told.delivery(Channel::Notification), Some(&Delivery::Sent));
    let text = std::fs::read_to_string(&file).expect("notifications");
    let audiences: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["attributes"]["audience"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(audiences, ["feed", "requester"], "the feed once, the requester once its retry came");
    assert_eq!(
        teller.tell(&Catalog::default(), &notice).await.expect("again").delivery(Channel::Notification),
        Some(&Delivery::Duplicate)
    );
}
