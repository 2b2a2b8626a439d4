//! End to end: `changehub serve --webhook` posts notifications to a Slack
//! and a Teams hook (local stand-ins), keeps what a hook does not take
//! (down, or refusing) and delivers it once the hook is back, also after a
//! restart; `changehub notifications` shows and retries what is kept.

use crate::common;

use changehub::adapters::chat::ChatKind;
use changehub::ports::Notification;
use changehub_tests::notifier_contract::file_lines;
use changehub_tests::scripted::{Script, answer, server};
use common::{BIN, Served, create_and_submit, import_catalog, token};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The notifications file's lines, as notifications.
fn notified(dir: &Path) -> Vec<Notification> {
    file_lines(&std::fs::read_to_string(dir.join("notifications.jsonl")).unwrap_or_default())
}

/// `changehub notifications` with `args`: its standard output.
fn notifications(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("notifications")
        .args(args)
        .arg("--notifications")
        .arg(dir.join("notifications.jsonl"))
        .output()
        .expect("changehub notifications");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The deliveries kept, as `changehub notifications --undelivered --json` prints them.
fn kept(dir: &Path) -> Vec<Value> {
    let out = notifications(dir, &["--undelivered", "--json"]);
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The headlines of the Teams cards the hook received.
fn cards(script: &Script) -> Vec<String> {
    let headline = |r: &changehub_tests::scripted::Received| {
        r.body["attachments"][0]["content"]["body"][0]["text"].as_str().unwrap_or_default().to_owned()
    };
    script.received().iter().map(headline).collect()
}

fn down(script: &Script) {
    script.answer_next(std::iter::repeat_n(answer(503), 10_000));
}

// Several threads: the stand-in hooks answer while the test waits on the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_to_slack_and_teams_and_keeps_what_a_hook_does_not_take_until_it_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (slack, slack_hook) = server([]).await;
    let (teams, teams_hook) = server([]).await;
    let hooks = [format!("slack={slack}/services/T0/B0/x"), format!("teams={teams}/workflows/1;kind=Change Submitted")];
    let args = ["--webhook", &hooks[0], "--webhook", &hooks[1], "--webhook-retry-min", "1s"];
    let hub = Served::start_args(dir.path(), &[], &args);
    import_catalog(dir.path(), &hub.base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let http = reqwest::Client::new();

    // The Teams hook is down: its deliveries are kept, with their attempts and error.
    down(&teams_hook);
    create_and_submit(&http, &hub.base, &alice).await;
    eventually("the failed Teams delivery is kept after a few attempts", || {
        kept(dir.path()).first().is_some_and(|d| d["attempts"].as_u64() >= Some(3))
    })
    .await;
    let first: Vec<Value> =
        kept(dir.path()).into_iter().filter(|d| d["hook"].as_str().is_some_and(|h| h.starts_with("teams-"))).collect();
    assert!(first.iter().all(|d| d["notification"]["attributes"]["kind"] == "Change Submitted"), "{first:?}");
    assert_eq!(first[0]["last_error"], "answered HTTP status 503 to every attempt (3)");
    let table = notifications(dir.path(), &["--undelivered"]);
    assert!(table.contains("retry at") && table.contains("undelivered notification"), "{table}");
    assert!(!table.contains(&teams), "the hook's URL is never printed: {table}");

    // Back up: the running hub delivers them.
    teams_hook.recover();
    eventually("the kept deliveries are delivered", || kept(dir.path()).is_empty()).await;

    // Refused (400): kept until retried by hand.
    teams_hook.answer_next([answer(400)]);
    create_and_submit(&http, &hub.base, &alice).await;
    eventually("the refused delivery is kept", || kept(dir.path()).iter().any(|d| d["refused"] == true)).await;
    let table = notifications(dir.path(), &["--undelivered"]);
    assert!(table.contains("refused with HTTP status 400"), "{table}");
    assert!(notifications(dir.path(), &["--retry"]).contains("due now"));
    eventually("the retried delivery is delivered", || kept(dir.path()).is_empty()).await;

    // Down again, and the hub stops: what is kept survives the restart and is delivered at start.
    down(&teams_hook);
    create_and_submit(&http, &hub.base, &alice).await;
    eventually("the third change's delivery is kept", || !kept(dir.path()).is_empty()).await;
    hub.interrupt();
    assert!(!kept(dir.path()).is_empty(), "kept while the hub is stopped");
    teams_hook.recover();
    let hub = Served::start_args(dir.path(), &[], &args);
    eventually("the restarted hub delivers what was kept", || kept(dir.path()).is_empty()).await;
    hub.interrupt();

    // Nothing lost: Slack got every notification, in its payload; Teams every
    // submitted one (each card at least once: posting is at least once).
    let all = notified(dir.path());
    let slack_bodies: Vec<Value> = slack_hook.received().into_iter().map(|r| r.body).collect();
    assert_eq!(slack_bodies, all.iter().map(|n| ChatKind::Slack.payload(n)).collect::<Vec<_>>());
    let submitted: Vec<&Notification> =
        all.iter().filter(|n| n.attributes.get("kind").map(String::as_str) == Some("Change Submitted")).collect();
    assert!(submitted.len() >= 3);
    let cards = cards(&teams_hook);
    for n in submitted {
        assert!(cards.contains(&n.message.headline), "{:?} not in {cards:?}", n.message.headline);
    }
    assert!(notifications(dir.path(), &[]).starts_with("no undelivered notifications"));
}
