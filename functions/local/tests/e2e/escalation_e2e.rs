//! Escalation end to end through the real binary, on an injected clock:
//! `changehub serve --clock-file` reads the time from a file the test
//! rewrites, and takes a tick on request besides its own ticker's
//! (`--escalate-every 1s`), so every step is decided by the clock the test
//! sets, not by waiting, and ticks overlap as they do on AWS.

use crate::common;

use chrono::{DateTime, TimeZone, Utc};
use common::{BIN, Served, TestClock, token, wait_for_notifications};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Two levels with minute SLAs: the team leads' (1m: a reminder at 30s,
/// escalations at 60s and 120s, the breach at 180s) and the CAB's (2m, one
/// escalation: a reminder at 1m, the escalation at 2m, the breach at 4m, from
/// when it opens).
const CATALOG: &str = r#"
roles:
  requester: [engineers]
  approver: [payments-leads, deputies]
  cab: [cab]
  admin: [platform]
services:
  - name: payments
    owner_group: payments-team
    tier: 1
    approval:
      - name: team-lead
        groups: [payments-leads]
        sla: 1m
        escalate_to: payments-managers
        reminders: [50%]
        max_escalations: 2
      - name: cab
        groups: [cab]
        sla: 2m
        escalate_to: cto-office
        max_escalations: 1
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
}

/// A hub on a clock file reading `t0()`, ticking every second, with the catalog imported.
fn hub(dir: &Path) -> (Served, TestClock) {
    let clock = TestClock::at(dir, t0());
    let args = ["--escalate-every", "1s", "--clock-file", clock.path.to_str().expect("a UTF-8 path")];
    let hub = Served::start_args(dir, &[], &args);
    let file = dir.join("catalog.yaml");
    std::fs::write(&file, CATALOG).expect("write the catalog");
    common::import_catalog_file(dir, &hub.base, &file);
    (hub, clock)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let (status, body) = self.call(token, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates a change on payments as `who` and submits it; its id.
    async fn submitted(&self, who: &str, title: &str) -> String {
        let new = json!({
            "title": title, "type": "normal", "services": ["payments"], "environment": "production",
            "planned_start": "2026-12-10T22:00:00Z", "planned_end": "2026-12-10T23:00:00Z",
        });
        let (status, created) = self.call(who, reqwest::Method::POST, "/changes", Some(new)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().expect("id").to_owned();
        let submit = json!({"to": "submitted", "version": 1});
        let (status, body) =
            self.call(who, reqwest::Method::POST, &format!("/changes/{id}/transitions"), Some(submit)).await;
        assert_eq!(status, 200, "{body}");
        id
    }

    async fn decide(&self, who: &str, id: &str) -> (u16, Value) {
        let body = json!({"decision": "approve"});
        self.call(who, reqwest::Method::POST, &format!("/changes/{id}/decisions"), Some(body)).await
    }

    /// `n` ticks at once on request, while the hub's own ticker runs too:
    /// the steps they took, as `change kind number`.
    async fn ticks(&self, n: usize) -> Vec<String> {
        let mut ticks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (http, url) = (self.http.clone(), format!("{}/_test/escalation-tick", self.base));
            ticks.spawn(async move {
                let res = http.post(url).send().await.expect("tick");
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.expect("json")
            });
        }
        let mut taken = Vec::new();
        while let Some(tick) = ticks.join_next().await {
            let tick = tick.expect("a tick");
            for t in tick["taken"].as_array().cloned().unwrap_or_default() {
                taken.push(format!("{} {} {}", t["change_id"], t["kind"], t["number"]));
            }
        }
        taken
    }
}

/// The notifications of `kind` (`Approval Reminder`, ...) about change `id`
/// addressed to the step's own audience (routing also sends the feed its
/// copy, and a breach to the owners and the requester besides the CAB).
fn of(lines: &[Value], kind: &str, id: &str) -> Vec<Value> {
    let audience = match kind {
        "Approval Reminder" => "approvers",
        "Approval Escalated" => "escalate_to",
        _ => "cab",
    };
    lines
        .iter()
        .filter(|n| n["attributes"]["kind"] == kind && n["body"]["change"]["id"] == id)
        .filter(|n| n["attributes"]["audience"] == audience)
        .cloned()
        .collect()
}

/// The notifications asking the approvers of a level that opened about change `id`.
fn requested(lines: &[Value], id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|n| n["attributes"]["type"] == "approval_requested" && n["body"]["change"]["id"] == id)
        .cloned()
        .collect()
}

/// Waits until `count` notifications of `kind` about `id` are in the file; the last one.
fn nth(dir: &Path, kind: &str, id: &str, count: usize) -> Value {
    let lines = wait_for_notifications(dir, &format!("{kind} #{count} of {id}"), |l| of(l, kind, id).len() >= count);
    let found = of(&lines, kind, id);
    assert_eq!(found.len(), count, "{kind} of {id} once each: {found:#?}");
    found.last().cloned().unwrap_or_default()
}

/// `(audience, notify)` of a notification, and that its subject names the kind and the audience
/// (or, for the CAB's executive text, says the deadline was missed).
fn addressed(n: &Value) -> (String, String) {
    let (audience, notify) = (&n["attributes"]["audience"], &n["attributes"]["notify"]);
    let subject = n["subject"].as_str().unwrap_or_default();
    let kind = n["attributes"]["kind"].as_str().unwrap_or_default();
    if audience == "cab" {
        // The CAB reads the executive template: one line in plain words.
        assert!(subject.contains("missed its approval deadline"), "{subject}");
    } else {
        assert!(subject.starts_with(&format!("[{kind}]")), "{subject}");
        assert!(subject.ends_with(&format!("(to {})", notify.as_str().unwrap_or_default())), "{subject}");
    }
    (audience.as_str().unwrap_or_default().to_owned(), notify.as_str().unwrap_or_default().to_owned())
}

fn pair(audience: &str, notify: &str) -> (String, String) {
    (audience.to_owned(), notify.to_owned())
}

/// Level 1 is reminded (by the hub's own ticker) and escalated, then
/// approved: level 2's cadence counts from its opening, and it is reminded,
/// escalated and breached to the CAB, the change marked SLA-breached and
/// counted by the report. A withdrawn change is chased no more. Every step
/// goes out once, whatever ticks overlap.
#[tokio::test]
async fn escalation_climbs_the_levels_on_the_injected_clock_each_step_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, clock) = hub(dir.path());
    let api = Client { http: reqwest::Client::new(), base: hub.base.clone() };
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let id = api.submitted(&alice, "Upgrade payments DB").await;
    let withdrawn = api.submitted(&alice, "Rotate payments keys").await;

    clock.advance_to(29);
    assert_eq!(api.ticks(2).await, Vec::<String>::new(), "nothing is due before half the SLA");
    // The hub's own ticker reads the clock file: nobody asks for this tick.
    clock.advance_to(30);
    let reminder = nth(dir.path(), "Approval Reminder", &id, 1);
    assert_eq!(addressed(&reminder), pair("approvers", "payments-leads"));
    nth(dir.path(), "Approval Reminder", &withdrawn, 1);

    let version = api.get(&alice, &format!("/changes/{withdrawn}")).await["version"].clone();
    let cancel = json!({"to": "cancelled", "version": version});
    let path = format!("/changes/{withdrawn}/transitions");
    let (status, body) = api.call(&alice, reqwest::Method::POST, &path, Some(cancel)).await;
    assert_eq!(status, 200, "{body}");

    clock.advance_to(60);
    api.ticks(3).await;
    let escalated = nth(dir.path(), "Approval Escalated", &id, 1);
    assert_eq!(addressed(&escalated), pair("escalate_to", "payments-managers"));

    clock.advance_to(90);
    let (status, body) = api.decide(&pat, &id).await;
    assert_eq!(status, 200, "{body}");
    // Level 2 opened: its approvers are asked, as `approval_requested`.
    let asked = wait_for_notifications(dir.path(), "level 2's approvers asked", |l| !requested(l, &id).is_empty());
    let asked = requested(&asked, &id);
    let (audience, notify) = (&asked[0]["attributes"]["audience"], &asked[0]["attributes"]["notify"]);
    assert_eq!((audience.as_str(), notify.as_str()), (Some("approvers"), Some("cab")));
    assert_eq!(asked[0]["attributes"]["kind"], "Approval Recorded", "the hub event it comes of");
    let subject = asked[0]["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("[Approval Requested] ") && subject.ends_with(" (to cab)"), "{subject}");
    // Level 1's second escalation would be due at 120s: its cadence stopped
    // with the decision. Level 2 opened at 90s: its reminder is due at 150s.
    clock.advance_to(149);
    assert_eq!(api.ticks(3).await, Vec::<String>::new(), "nothing due between the decision and level 2's reminder");
    clock.advance_to(150);
    api.ticks(3).await;
    let reminder = nth(dir.path(), "Approval Reminder", &id, 2);
    assert_eq!(addressed(&reminder), pair("approvers", "cab"));
    clock.advance_to(210);
    api.ticks(4).await;
    let escalated = nth(dir.path(), "Approval Escalated", &id, 2);
    assert_eq!(addressed(&escalated), pair("escalate_to", "cto-office"));
    clock.advance_to(330);
    api.ticks(4).await;
    let breach = nth(dir.path(), "Approval SLA Breached", &id, 1);
    assert_eq!(addressed(&breach), pair("cab", "cab"));

    // Nothing follows the breach, nor comes of the withdrawn change.
    clock.advance_to(3600);
    assert_eq!(api.ticks(3).await, Vec::<String>::new());
    let lines = common::notifications(dir.path());
    assert_eq!(of(&lines, "Approval Reminder", &id).len(), 2);
    assert_eq!(of(&lines, "Approval Escalated", &id).len(), 2);
    assert_eq!(of(&lines, "Approval SLA Breached", &id).len(), 1);
    assert!(of(&lines, "Approval Escalated", &withdrawn).is_empty(), "withdrawn: chased no more");

    // Every copy went out once, each to its audience as the default routing table says.
    let copies = |lines: &[Value]| -> Vec<(String, String, String)> {
        let mut copies: Vec<_> = lines
            .iter()
            .filter(|n| n["body"]["change"]["id"] == id.as_str())
            .map(|n| {
                let a = |k: &str| n["attributes"][k].as_str().unwrap_or_default().to_owned();
                (a("type"), a("audience"), a("notify"))
            })
            .collect();
        copies.sort();
        copies
    };
    let expected: Vec<(String, String, String)> = {
        let mut expected: Vec<_> = [
            ("approval_escalated", "escalate_to", "cto-office"),
            ("approval_escalated", "escalate_to", "payments-managers"),
            ("approval_escalated", "feed", ""),
            ("approval_escalated", "feed", ""),
            ("approval_reminder", "approvers", "cab"),
            ("approval_reminder", "approvers", "payments-leads"),
            ("approval_reminder", "feed", ""),
            ("approval_reminder", "feed", ""),
            ("approval_requested", "approvers", "cab"),
            ("change_approval_recorded", "feed", ""),
            ("change_created", "feed", ""),
            ("change_submitted", "approvers", "payments-leads"),
            ("change_submitted", "feed", ""),
            ("change_submitted", "owners", "payments-team"),
            ("sla_breached", "cab", "cab"),
            ("sla_breached", "feed", ""),
            ("sla_breached", "owners", "payments-team"),
            ("sla_breached", "requester", "alice@example.com"),
        ]
        .iter()
        .map(|(t, a, n)| (t.to_string(), a.to_string(), n.to_string()))
        .collect();
        expected.sort();
        expected
    };
    let lines = wait_for_notifications(dir.path(), "every copy", |l| copies(l).len() >= expected.len());
    assert_eq!(copies(&lines), expected);

    let change = api.get(&alice, &format!("/changes/{id}")).await;
    assert_eq!(change["approval"]["sla_breached"], true, "{change}");
    let trail = api.get(&alice, &format!("/changes/{id}/audit")).await;
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        [
            "created",
            "transitioned",
            "approval_reminded",
            "approval_escalated",
            "decided",
            "approval_reminded",
            "approval_escalated",
            "approval_sla_breached"
        ]
    );
    let report = api.get(&alice, "/reports/approval-sla").await;
    assert_eq!(report["from"], "2026-12", "the report's month is the hub clock's: {report}");
    let level = |key: &str| -> Value {
        let levels = report["levels"].as_array().cloned().unwrap_or_default();
        levels.into_iter().find(|l| l["key"] == key).unwrap_or_default()
    };
    assert_eq!((&level("cab")["escalations"], &level("cab")["breaches"]), (&json!(1), &json!(1)), "{report}");
    assert_eq!(level("team-lead")["escalations"], 1, "{report}");
    hub.interrupt();
}

/// A hub on a clock file where Alice's "Upgrade payments DB" waits for
/// approval, stopped, so that `escalate --now` may open its database; the clock and the change's id.
async fn one_waiting_then_stopped(dir: &Path) -> (TestClock, String) {
    let (hub, clock) = hub(dir);
    let api = Client { http: reqwest::Client::new(), base: hub.base.clone() };
    let alice = token(dir, "alice@example.com", "engineers");
    let id = api.submitted(&alice, "Upgrade payments DB").await;
    hub.interrupt();
    (clock, id)
}

/// `changehub escalate --now` on `dir`'s database, notifications file and `clock`.
fn escalate_now(dir: &Path, clock: &TestClock) -> Command {
    let mut command = Command::new(BIN);
    command.args(["escalate", "--now", "--db"]).arg(dir.join("hub.db"));
    command.arg("--notifications").arg(dir.join("notifications.jsonl"));
    command.arg("--clock-file").arg(&clock.path);
    command
}

/// `changehub escalate --now` reads the same clock file: two run at once
/// against the stopped hub's database (one may find the file locked by the
/// other, and says so), and the step due goes out once.
#[tokio::test]
async fn escalate_now_ticks_on_the_clock_file_once_however_many_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, id) = one_waiting_then_stopped(dir.path()).await;

    clock.advance_to(60);
    let run = || {
        escalate_now(dir.path(), &clock)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("escalate --now")
    };
    let (a, b) = (run(), run());
    let mut taken = 0;
    for out in [a.wait_with_output().expect("wait"), b.wait_with_output().expect("wait")] {
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            taken += stdout.matches(": escalation 1 (due 2026-12-01T09:01:00Z) to payments-managers").count();
        } else {
            assert!(stderr.contains("stop the hub first"), "{stderr}");
        }
    }
    assert_eq!(taken, 1, "the reminder collapsed into the escalation due at 60s, taken once");
    let lines = common::notifications(dir.path());
    assert_eq!(of(&lines, "Approval Escalated", &id).len(), 1, "{lines:#?}");
    assert!(of(&lines, "Approval Reminder", &id).is_empty(), "a late tick takes only the latest step");
}

/// `changehub escalate --now --webhook` posts the tick's notifications to
/// the hooks before it ends, as `serve` would; what a hook does not take
/// is kept in `undelivered/` for the next `serve`, and the command says so.
// Several threads: the stand-in hooks answer while the test waits on the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_now_posts_to_the_webhooks_and_keeps_what_a_hook_does_not_take() {
    use changehub::adapters::chat::ChatKind;
    use changehub_tests::scripted::{answer, server};
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, id) = one_waiting_then_stopped(dir.path()).await;
    let before = common::notifications(dir.path()).len();

    let (slack, slack_hook) = server([]).await;
    let (teams, teams_hook) = server([]).await;
    teams_hook.answer_next(std::iter::repeat_n(answer(503), 100));
    clock.advance_to(60);
    let out = escalate_now(dir.path(), &clock)
        .args(["--webhook", &format!("slack={slack}/services/T0/B0/x")])
        .args(["--webhook", &format!("teams={teams}/workflows/1;audience=escalate_to")])
        .args(["--public-url", "https://changes.example.com/"])
        .output()
        .expect("escalate --now");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": escalation 1 (due 2026-12-01T09:01:00Z) to payments-managers"), "{stdout}");
    assert!(
        stdout.contains("2 notifications posted to the webhooks; 1 delivery kept in ")
            && stdout.contains("the next `changehub serve` posts them"),
        "{stdout}"
    );

    let told: Vec<changehub::ports::Notification> = common::notifications(dir.path())[before..]
        .iter()
        .map(|n| serde_json::from_value(n.clone()).expect("a notification"))
        .collect();
    let audiences: Vec<&str> = told.iter().map(|n| n.attributes["audience"].as_str()).collect();
    assert_eq!(audiences, ["feed", "escalate_to"], "the escalation's copies");
    let link = &told[1].message.links[0].url;
    assert_eq!(link, &format!("https://changes.example.com/changes/{id}"), "--public-url");
    let slack_bodies: Vec<Value> = slack_hook.received().into_iter().map(|r| r.body).collect();
    assert_eq!(slack_bodies, told.iter().map(|n| ChatKind::Slack.payload(n)).collect::<Vec<_>>(), "posted now");
    assert!(!teams_hook.received().is_empty(), "tried");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("undelivered")).expect("the queue").collect();
    assert_eq!(kept.len(), 1, "the Teams delivery waits for the next serve: {kept:?}");
}

/// Pat delegates the team leads' level to Dave: the reminder names Dave, who
/// approves for Pat, but never his own change (dual control); revoking the
/// delegation says why, on its trail entry.
#[tokio::test]
async fn a_delegate_is_named_by_the_reminder_approves_for_the_delegator_but_never_their_own_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, clock) = hub(dir.path());
    let api = Client { http: reqwest::Client::new(), base: hub.base.clone() };
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let dave = token(dir.path(), "dave@example.com", "deputies,engineers");
    let cab = token(dir.path(), "carol@example.com", "cab");
    let leave = json!({"delegate": "dave@example.com", "levels": ["team-lead"], "from": t0(),
                       "until": t0() + chrono::Duration::days(7), "reason": "on leave"});
    let (status, delegation) = api.call(&pat, reqwest::Method::POST, "/delegations", Some(leave)).await;
    assert_eq!(status, 201, "{delegation}");
    let delegation = delegation["id"].as_str().expect("id").to_owned();
    let id = api.submitted(&alice, "Upgrade payments DB").await;
    let own = api.submitted(&dave, "Dave's own change").await;

    clock.advance_to(30);
    api.ticks(2).await;
    let reminder = nth(dir.path(), "Approval Reminder", &id, 1);
    assert_eq!(addressed(&reminder), pair("approvers", "payments-leads"));
    assert_eq!(reminder["body"]["delegates"], json!(["dave@example.com for pat@example.com"]));
    let reason = reminder["body"]["reason"].as_str().unwrap_or_default();
    assert!(reason.ends_with("delegates deciding for its approvers: dave@example.com for pat@example.com"), "{reason}");

    let (status, body) = api.decide(&dave, &id).await;
    assert_eq!(status, 200, "{body}");
    let approval = &body["approval"]["steps"][0]["approvals"][0];
    assert_eq!(approval["on_behalf_of"], json!({"user": "pat@example.com", "delegation": delegation}), "{body}");
    let (status, body) = api.decide(&dave, &own).await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("dual control: dave@example.com requested"), "{message}");

    let path = format!("/delegations/{delegation}?reason=back%20early");
    let (status, body) = api.call(&pat, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"]["reason"], "back early");
    let trail = api.get(&cab, "/audit/governance").await;
    let entries = trail["entries"].as_array().cloned().unwrap_or_default();
    let revoked = entries.iter().find(|e| e["action"] == "delegation_revoked").cloned().unwrap_or_default();
    assert_eq!(revoked["reason"], "back early", "{trail}");
    hub.interrupt();
}

/// The clock file is a testing aid nobody meets by accident: `--help` does
/// not list it, no environment variable sets it, a hub without it has no
/// tick endpoint, and a file that holds no instant stops the hub at start.
#[tokio::test]
async fn the_clock_file_is_a_hidden_testing_aid() {
    for command in ["serve", "escalate"] {
        let out = Command::new(BIN).args([command, "--help"]).output().expect("help");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("clock"), "{command} --help");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("clock");
    std::fs::write(&bad, "tomorrow").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--port", &common::free_port().to_string(), "--clock-file"])
        .arg(&bad)
        .arg("--db")
        .arg(dir.path().join("hub.db"))
        .output()
        .expect("serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("must hold one RFC 3339 instant"), "{stderr}");
    let hub = Served::start(dir.path());
    let res = reqwest::Client::new().post(format!("{}/_test/escalation-tick", hub.base)).send().await.expect("tick");
    assert_eq!(res.status(), 404, "only a hub on a clock file takes a tick on request");
    hub.interrupt();
}

/// `changehub escalate --now` takes the deployment protection rule
/// requests due, as `serve`'s ticker does: a request held by a freeze is
/// answered `approved` on GitHub's callback, with the installation's token
/// from the environment, by the run after the freeze ends (printed), and
/// by no later run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_now_answers_the_protection_rule_requests_due() {
    use changehub_tests::forge::FakeForge;
    use common::{approve, event_sample, forge_calls, github_app_env, import_catalog, pairs, replay_payload, sample};
    let dir = tempfile::tempdir().expect("tempdir");
    let forge = FakeForge::start().await;
    let env = github_app_env(&forge);
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("t0");
    let clock = TestClock::at(dir.path(), t0);
    let path = clock.path.to_str().expect("a UTF-8 path");
    let hub = Served::start_args(dir.path(), &pairs(&env), &["--escalate-every", "off", "--clock-file", path]);
    import_catalog(dir.path(), &hub.base);
    let (http, alice) = (reqwest::Client::new(), token(dir.path(), "alice@example.com", "engineers"));
    let call = |method: reqwest::Method, path: &str, who: &str, body: Value| {
        http.request(method, format!("{}{path}", hub.base)).bearer_auth(who).json(&body).send()
    };
    let mut change = sample();
    change["planned_start"] = json!(t0 - chrono::Duration::minutes(5));
    change["planned_end"] = json!(t0 + chrono::Duration::hours(3));
    let created: Value =
        call(reqwest::Method::POST, "/changes", &alice, change).await.expect("create").json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let submitted = call(
        reqwest::Method::POST,
        &format!("/changes/{id}/transitions"),
        &alice,
        json!({"to": "submitted", "version": 1}),
    );
    assert_eq!(submitted.await.expect("submit").status(), 200);
    approve(dir.path(), &http, &hub.base, &id).await;
    let admin = token(dir.path(), "root@example.com", "changehub-admins");
    let freeze = json!({"id": "release-freeze", "name": "Release freeze", "services": ["payments"], "reason": "quarter end",
                        "schedule": {"kind": "one_off", "start": t0, "end": t0 + chrono::Duration::minutes(14)}});
    assert!(call(reqwest::Method::POST, "/freezes", &admin, freeze).await.expect("freeze").status().is_success());

    let callback = "/repos/acme-corp/checkout-service/actions/runs/7101/deployment_protection_rule";
    let mut request = event_sample("github/deployment_protection_rule.requested.json");
    request["ref"] = json!(format!("refs/heads/chg/{id}"));
    request["deployment_callback_url"] = json!(format!("https://api.github.com{callback}"));
    for at in ["created_at", "updated_at"] {
        request["deployment"][at] = json!(t0 + chrono::Duration::minutes(1));
    }
    replay_payload(dir.path(), &hub.base, &pairs(&env), "github", "deployment_protection_rule.json", &request);
    let report = forge_calls(&forge, callback, 1).await;
    assert_eq!(report[0].body.get("state"), None, "held by the freeze: a status report, no answer: {report:?}");
    hub.interrupt();

    let run = || {
        let out = escalate_now(dir.path(), &clock).envs(pairs(&env)).output().expect("escalate --now");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    clock.set(t0 + chrono::Duration::minutes(13));
    let early = run();
    assert!(early.contains("0 protection rule requests due"), "held until the freeze ends: {early}");
    clock.set(t0 + chrono::Duration::minutes(14));
    let stdout = run();
    assert!(stdout.contains(": answered approved\n") && stdout.contains("1 protection rule request due"), "{stdout}");
    let answered = forge.calls_to(callback);
    assert_eq!(answered.len(), 2, "the report, then the answer: {answered:?}");
    assert_eq!(answered[1].body["state"], "approved", "{answered:?}");
    assert!(answered[1].body["comment"].as_str().unwrap_or_default().contains(&id), "{answered:?}");
    assert!(answered[1].auth.as_deref().unwrap_or_default().starts_with("Bearer ghs_51234567_"), "{answered:?}");
    let again = run();
    assert!(again.contains("0 protection rule requests due"), "{again}");
    assert_eq!(forge.calls_to(callback).len(), 2, "answered once");
}
