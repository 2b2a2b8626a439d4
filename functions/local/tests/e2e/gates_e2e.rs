//! The gates through the real binary (issue 13 point 8): `changehub serve`
//! takes signed webhooks built from the `events/` samples (ids, shas and
//! times patched) and answers a fake GitHub and GitLab API
//! (`changehub_tests::forge`) that records every request exactly: the merge
//! gate's statuses for a rejected or cancelled change, exempt paths and
//! labels and an ungated branch; a GitLab merge request's commit status or
//! external status check response; deployment protection rules answered at
//! once, held by a freeze until it ends, rejected when the freeze outlasts
//! GitHub's wait or when their change is rejected; the generic gate
//! refusing over HTTP and in `changehub gate`; a redeploy of the earlier
//! sha rolling its change back; a failed GitLab deployment failing its
//! change; an incident during a bake holding the next stage until cleared. Where time matters the hub reads
//! a clock file and ticks on request only (`--escalate-every off`).

use crate::common;

use changehub_tests::forge::{Answer, Call, FakeForge, answer};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use common::{
    PAYMENTS_MERGE_GATE, Served, TestClock, approve, create_and_submit, event_sample, forge_calls, github_app_env,
    import_catalog_with_payments, merge_gate_env, pairs, pull_request, replay_payload, run_gate, sample, token,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

const REPOSITORY: &str = "/repos/acme-corp/checkout-service";

/// A 40-hex-digit sha made of `n`.
fn sha(n: u64) -> String {
    format!("{n:040x}")
}

fn secs(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A hub of the tests below: its process, directory, environment (the
/// secrets webhooks are signed with), alice's token and its clock file.
struct Hub {
    served: Served,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
    alice: String,
    clock: TestClock,
}

impl Hub {
    /// A hub with `env`, payments' entry in the sample catalog extended by
    /// `payments`, on a clock file (ticking on request only) reading `at`,
    /// or the time it starts: a clock file also gives the tests
    /// `/_test/settled`.
    fn start(env: Vec<(&'static str, String)>, payments: &str, at: Option<DateTime<Utc>>) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TestClock::at(dir.path(), at.unwrap_or_else(Utc::now));
        let path = clock.path.to_str().expect("a UTF-8 path");
        let served = Served::start_args(dir.path(), &pairs(&env), &["--escalate-every", "off", "--clock-file", path]);
        import_catalog_with_payments(dir.path(), &served.base, payments);
        let alice = token(dir.path(), "alice@example.com", "engineers");
        Hub { served, dir, env, http: reqwest::Client::new(), alice, clock }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn base(&self) -> &str {
        &self.served.base
    }

    /// `changehub replay --source SOURCE` of `payload`, signed.
    fn replay(&self, source: &str, name: &str, payload: &Value) {
        replay_payload(self.path(), self.base(), &pairs(&self.env), source, name, payload);
    }

    /// `METHOD path` as `who`: the status and the JSON answer.
    async fn call(&self, who: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base())).bearer_auth(who);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        (answer.status().as_u16(), answer.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, who: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(who, reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 200, "POST {path}: {answer}");
        answer
    }

    async fn change(&self, id: &str) -> Value {
        let (status, change) = self.call(&self.alice, reqwest::Method::GET, &format!("/changes/{id}"), None).await;
        assert_eq!(status, 200, "{change}");
        change
    }

    /// Change `id` once `until` holds of it (within 15 s: consumers apply events).
    async fn change_once(&self, id: &str, what: &str, until: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let change = self.change(id).await;
            if until(&change) {
                return change;
            }
            assert!(Instant::now() < deadline, "{what}: {change}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A payments change for production planned `from` to `to`, submitted
    /// and approved by both levels (and scheduled, if asked); its id.
    async fn approved(&self, from: DateTime<Utc>, to: DateTime<Utc>, scheduled: bool) -> String {
        let mut body = sample();
        body["planned_start"] = json!(from);
        body["planned_end"] = json!(to);
        let (status, created) = self.call(&self.alice, reqwest::Method::POST, "/changes", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().expect("id").to_owned();
        self.post(&self.alice, &format!("/changes/{id}/transitions"), json!({"to": "submitted", "version": 1})).await;
        approve(self.path(), &self.http, self.base(), &id).await;
        if scheduled {
            let version = self.change(&id).await["version"].clone();
            let to = json!({"to": "scheduled", "version": version});
            self.post(&self.alice, &format!("/changes/{id}/transitions"), to).await;
        }
        id
    }

    /// A freeze of payments from `start` to `end`, put by an admin.
    async fn freeze(&self, id: &str, name: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        let admin = token(self.path(), "root@example.com", "changehub-admins");
        let freeze = json!({"id": id, "name": name, "services": ["payments"], "reason": "quarter end",
                            "schedule": {"kind": "one_off", "start": start, "end": end}});
        let (status, answer) = self.call(&admin, reqwest::Method::POST, "/freezes", Some(freeze)).await;
        assert!((200..300).contains(&status), "freeze: {status} {answer}");
    }

    /// `POST /gates/deployments` for payments in production on change `id`, as alice.
    async fn gate(&self, id: &str) -> Value {
        let ask = json!({"service": "payments", "environment": "production", "sha": "64db262", "change": id});
        self.post(&self.alice, "/gates/deployments", ask).await
    }

    fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// Moves the hub's clock to `at` and takes one escalation tick.
    /// Returns once the hub has handled every event and published every
    /// mutation so far: what a check that something did *not* happen waits for.
    async fn settled(&self) {
        let url = format!("{}/_test/settled", self.base());
        let settled = self.http.get(url).send().await.expect("settled");
        assert_eq!(settled.status(), 200, "the hub did not settle: {:?}", settled.text().await);
    }

    async fn tick_at(&self, at: DateTime<Utc>) -> Value {
        self.clock().set(at);
        let url = format!("{}/_test/escalation-tick", self.base());
        let tick = self.http.post(url).send().await.expect("tick");
        assert_eq!(tick.status(), 200);
        tick.json().await.expect("json")
    }
}

// The merge gate: the `changehub/change` status on a pull request's head.

/// The sample pull request `number`, head `head`, naming change `id` (or none).
fn pull(number: u64, head: &str, id: Option<&str>) -> Value {
    let mut pr = pull_request(id);
    pr["number"] = json!(number);
    pr["pull_request"]["number"] = json!(number);
    pr["pull_request"]["head"]["sha"] = json!(head);
    pr["pull_request"]["labels"] = json!([]);
    pr
}

/// The statuses set on `head`: (state, description).
fn statuses(forge: &FakeForge, head: &str) -> Vec<(String, String)> {
    let path = format!("{REPOSITORY}/statuses/{head}");
    forge.statuses().into_iter().filter(|(p, ..)| *p == path).map(|(_, state, text)| (state, text)).collect()
}

/// The calls to `/statuses/{head}` once there are `n`, each checked for the hub's token and context.
async fn status_calls(forge: &FakeForge, head: &str, n: usize) -> Vec<Call> {
    let calls = forge_calls(forge, &format!("/statuses/{head}"), n).await;
    for call in &calls {
        assert_eq!((call.method.as_str(), call.auth.as_deref()), ("POST", Some("Bearer ghp_merge_gate")), "{call:?}");
        assert_eq!(call.body["context"], "changehub/change", "{call:?}");
    }
    calls
}

/// `/_test/settled` answers only once the work under way is done: here a
/// status GitHub answered 429 (retry after 2 seconds), so the hub's second
/// attempt is made before it answers. What the checks that something did
/// *not* happen rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_waits_for_the_work_under_way() {
    let forge = FakeForge::start().await;
    let hub = Hub::start(merge_gate_env(&forge, "30s"), PAYMENTS_MERGE_GATE, None);
    forge.fail_next([Answer { retry_after: Some("2"), ..answer(429) }]);
    let started = Instant::now();
    hub.replay("github", "pull_request.430.json", &pull(430, &sha(430), None));
    hub.settled().await;
    let waited = started.elapsed();
    assert_eq!(forge.calls_to(&format!("/statuses/{}", sha(430))).len(), 2, "{:?}", forge.calls());
    assert!(waited >= std::time::Duration::from_millis(1500), "settled after the retry: {waited:?}");
    hub.settled().await;
    assert_eq!(forge.calls().len(), 2, "nothing more: {:?}", forge.calls());
    hub.served.interrupt();
}

/// A pull request naming a submitted change is pending, and fails when the
/// change is rejected (through the reverse index, without another webhook;
/// GitHub's 429 and 502 are retried, the 429 after its `Retry-After`);
/// one naming a change already cancelled fails at once. Each failure links
/// to its change and says why, as the README's table has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_on_a_rejected_or_cancelled_change_fails() {
    let forge = FakeForge::start().await;
    let hub = Hub::start(merge_gate_env(&forge, "30s"), PAYMENTS_MERGE_GATE, None);
    let rejected = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    hub.replay("github", "pull_request.418.json", &pull(418, &sha(418), Some(&rejected)));
    let first = status_calls(&forge, &sha(418), 1).await;
    assert_eq!(first[0].body["state"], "pending", "{first:?}");
    // GitHub answers the failure 429 (retry after 2 seconds), then 502: the hub's client tries again.
    let throttled = Answer { retry_after: Some("2"), ..answer(429) };
    forge.fail_next([throttled, answer(502)]);
    let pat = ("pat@example.com", "payments-leads");
    let reject = json!({"decision": "reject", "comment": "Not during\nthe sale"});
    common::decide_with(hub.path(), &hub.http, hub.base(), &rejected, pat, reject).await;
    status_calls(&forge, &sha(418), 2).await;
    let throttled_at = Instant::now();
    status_calls(&forge, &sha(418), 3).await;
    let waited = throttled_at.elapsed();
    assert!(waited >= std::time::Duration::from_millis(1500), "Retry-After was kept: {waited:?}");
    let all = status_calls(&forge, &sha(418), 4).await;
    assert!(all[1..].iter().all(|c| c.body == all[3].body), "the same status each time: {all:?}");
    assert_eq!(all[3].body["target_url"], format!("https://changes.example.com/changes/{rejected}"));
    let told = (
        String::from("failure"),
        format!("Change {rejected} was rejected by pat@example.com; open a new change. Reason: Not during the sale"),
    );
    assert_eq!(statuses(&forge, &sha(418)).last(), Some(&told));

    let cancelled = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    hub.post(&hub.alice, &format!("/changes/{cancelled}/transitions"), json!({"to": "cancelled", "version": 2})).await;
    hub.replay("github", "pull_request.419.json", &pull(419, &sha(419), Some(&cancelled)));
    status_calls(&forge, &sha(419), 1).await;
    let told = (String::from("failure"), format!("Change {cancelled} was cancelled; open a new change"));
    assert_eq!(statuses(&forge, &sha(419)), [told]);
    hub.served.interrupt();
}

/// Payments exempts requests labelled `docs` or changing only docs: a
/// docs-only request passes (its files read from GitHub with the hub's
/// token), a labelled one passes without reading them, one that also
/// changes code waits for a change, and one into an ungated base branch
/// gets no status at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_requests_pass_without_a_change_and_an_ungated_branch_gets_no_status() {
    let forge = FakeForge::start().await;
    let policy = "    merge_gate:\n      branches: [main]\n      exempt_paths: [\"docs/**\", \"*.md\"]\n      exempt_labels: [docs]\n";
    let hub = Hub::start(merge_gate_env(&forge, "30s"), policy, None);

    let mut develop = pull(423, &sha(423), None);
    develop["pull_request"]["base"]["ref"] = json!("develop");
    hub.replay("github", "pull_request.423.json", &develop);

    forge.files(&["docs/runbook.md", "README.md"]);
    hub.replay("github", "pull_request.420.json", &pull(420, &sha(420), None));
    status_calls(&forge, &sha(420), 1).await;
    assert_eq!(statuses(&forge, &sha(420)), [("success".into(), "exempt: changes only docs/**, *.md".into())]);
    let files = forge.calls_to("/pulls/420/files");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, format!("{REPOSITORY}/pulls/420/files?per_page=100"));
    assert_eq!((files[0].method.as_str(), files[0].auth.as_deref()), ("GET", Some("Bearer ghp_merge_gate")));

    forge.files(&["docs/runbook.md", "src/pool.rs"]);
    let mut labelled = pull(421, &sha(421), None);
    labelled["pull_request"]["labels"] = json!([{"id": 1, "name": "docs", "color": "0e8a16", "default": false}]);
    hub.replay("github", "pull_request.421.json", &labelled);
    status_calls(&forge, &sha(421), 1).await;
    assert_eq!(statuses(&forge, &sha(421)), [("success".into(), "exempt: labelled docs".into())]);
    assert!(forge.calls_to("/pulls/421/files").is_empty(), "a label decides without reading the files");

    hub.replay("github", "pull_request.422.json", &pull(422, &sha(422), None));
    status_calls(&forge, &sha(422), 1).await;
    let waits = "No change referenced: open a change for payments and put its id in the title, body, branch or a label";
    assert_eq!(statuses(&forge, &sha(422)), [("pending".into(), waits.into())]);
    let code = forge.calls_to("/statuses/").last().map(|c| c.body["target_url"].clone());
    assert_eq!(code, Some(json!("https://changes.example.com/changes")), "a link to open one");

    hub.settled().await;
    assert!(forge.calls_to(&sha(423)).is_empty(), "develop is not gated: {:?}", forge.calls());
    assert!(forge.calls_to("/pulls/423/").is_empty(), "{:?}", forge.calls());
    hub.served.interrupt();
}

// The merge gate on GitLab: a commit status, or an external status check's response.

/// GitLab's project, as the hub names it in API paths (its path, encoded).
const PROJECT: &str = "/api/v4/projects/platform%2Fcheckout-service";
/// The hub's GitLab API token (`PRIVATE-TOKEN`).
const GITLAB_API_TOKEN: &str = "glpat-e2e-merge-gate";

/// The hub's environment for GitLab on `forge`: the webhook token, the API token and URL, its public URL.
fn gitlab_env(forge: &FakeForge) -> Vec<(&'static str, String)> {
    vec![
        ("CHANGEHUB_GITLAB_TOKEN", "gl-dev-webhook-token".into()),
        ("CHANGEHUB_GITLAB_API_TOKEN", GITLAB_API_TOKEN.into()),
        ("CHANGEHUB_GITLAB_URL", forge.url.clone()),
        ("CHANGEHUB_PUBLIC_URL", "https://changes.example.com".into()),
    ]
}

/// GitLab's time format in webhooks (`2026-09-14 08:02:11 UTC`).
fn gitlab_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The sample merge request 233 as `action` (`open`, `update`) at `at`,
/// head `head`, its title naming change `id` (or none), unlabelled.
fn merge_request(action: &str, head: &str, id: Option<&str>, at: DateTime<Utc>) -> Value {
    let mut mr = event_sample("gitlab/merge_request.open.json");
    let title = "Raise checkout-service DB connection pool";
    let attributes = &mut mr["object_attributes"];
    attributes["action"] = json!(action);
    attributes["title"] = json!(id.map_or_else(|| title.to_owned(), |id| format!("{id}: {title}")));
    // The sample's description names a change of its own.
    attributes["description"] = json!("Raise `DB_POOL_MAX` from 20 to 50 in production.");
    attributes["last_commit"]["id"] = json!(head);
    attributes["updated_at"] = json!(gitlab_time(at));
    attributes["labels"] = json!([]);
    mr["labels"] = json!([]);
    mr
}

/// The calls to GitLab paths containing `part` once there are `n`, each a POST with the hub's `PRIVATE-TOKEN`.
async fn gitlab_calls(forge: &FakeForge, part: &str, n: usize) -> Vec<Call> {
    let calls = forge_calls(forge, part, n).await;
    for call in &calls {
        assert_eq!((call.method.as_str(), call.auth.as_deref()), ("POST", Some(GITLAB_API_TOKEN)), "{call:?}");
    }
    calls
}

/// A GitLab merge request into main without a change gets a `pending`
/// commit status on its head (`POST /api/v4/projects/:id/statuses/:sha`,
/// the hub's `PRIVATE-TOKEN`); its title edited to name a submitted change,
/// pending again (GitLab refuses a pending status that already is with a
/// 400, which counts as set: not retried); the change approved, `success`
/// without another webhook, linking to the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_merge_request_is_pending_without_a_change_and_passes_once_its_change_is_approved() {
    let forge = FakeForge::start().await;
    let hub = Hub::start(gitlab_env(&forge), PAYMENTS_MERGE_GATE, None);
    let (head, now) = (sha(233), Utc::now());
    let path = format!("{PROJECT}/statuses/{head}");
    hub.replay("gitlab", "merge_request.233.json", &merge_request("open", &head, None, now));
    let first = gitlab_calls(&forge, &path, 1).await;
    let waits = "No change referenced: open a change for payments and put its id in the title, body, branch or a label";
    let expected = json!({"state": "pending", "name": "changehub/change", "description": waits,
                          "target_url": "https://changes.example.com/changes"});
    assert_eq!((first[0].path.as_str(), &first[0].body), (path.as_str(), &expected), "{first:?}");

    let id = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    let named = merge_request("update", &head, Some(&id), now + Duration::seconds(1));
    hub.replay("gitlab", "merge_request.233.named.json", &named);
    let second = gitlab_calls(&forge, &path, 2).await;
    assert_eq!(second[1].body["state"], "pending", "{second:?}");
    assert_eq!(second[1].body["target_url"], format!("https://changes.example.com/changes/{id}"));

    approve(hub.path(), &hub.http, hub.base(), &id).await;
    let all = gitlab_calls(&forge, &path, 3).await;
    assert_eq!(
        (all[2].body["state"].as_str(), all[2].body["name"].as_str()),
        (Some("success"), Some("changehub/change"))
    );
    assert_eq!(all[2].body["target_url"], format!("https://changes.example.com/changes/{id}"));
    hub.settled().await;
    assert_eq!(forge.calls().len(), 3, "GitLab's 400 on pending was not retried: {:?}", forge.calls());
    hub.served.interrupt();
}

/// A project answering an external status check (`merge_gate.gitlab.status_check_id`)
/// gets that check's responses instead of a commit status: `pending` while
/// its change waits, `passed` once approved, `failed` for a request whose
/// change is rejected; each the exact request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_status_check_gets_its_responses_instead_of_a_commit_status() {
    let forge = FakeForge::start().await;
    let policy = "    merge_gate:\n      branches: [main]\n      gitlab:\n        status_check_id: 42\n";
    let hub = Hub::start(gitlab_env(&forge), policy, None);
    let id = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    let head = sha(0x233);
    hub.replay("gitlab", "merge_request.233.json", &merge_request("open", &head, Some(&id), Utc::now()));
    let path = format!("{PROJECT}/merge_requests/233/status_check_responses");
    gitlab_calls(&forge, &path, 1).await;
    approve(hub.path(), &hub.http, hub.base(), &id).await;
    let calls = gitlab_calls(&forge, &path, 2).await;
    for (call, status) in calls.iter().zip(["pending", "passed"]) {
        assert_eq!(call.path, path, "{call:?}");
        assert_eq!(call.body, json!({"sha": head, "external_status_check_id": 42, "status": status}), "{call:?}");
    }

    let rejected = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    let mut other = merge_request("open", &sha(0x234), Some(&rejected), Utc::now());
    other["object_attributes"]["iid"] = json!(234);
    hub.replay("gitlab", "merge_request.234.json", &other);
    let path = format!("{PROJECT}/merge_requests/234/status_check_responses");
    gitlab_calls(&forge, &path, 1).await;
    let pat = ("pat@example.com", "payments-leads");
    common::decide(hub.path(), &hub.http, hub.base(), &rejected, pat, "reject").await;
    let calls = gitlab_calls(&forge, &path, 2).await;
    for (call, status) in calls.iter().zip(["pending", "failed"]) {
        assert_eq!(call.body, json!({"sha": sha(0x234), "external_status_check_id": 42, "status": status}), "{call:?}");
    }
    hub.settled().await;
    assert_eq!(forge.calls().len(), 4, "no commit status besides: {:?}", forge.calls());
    hub.served.interrupt();
}

// Deployment protection rules: GitHub's `deployment_protection_rule` callback.

/// The sample protection rule request for run `run`, on change `id` (its
/// ref `chg/<id>`), asked at `at`.
fn protection_request(run: u64, id: &str, at: DateTime<Utc>) -> Value {
    let mut request = event_sample("github/deployment_protection_rule.requested.json");
    request["ref"] = json!(format!("refs/heads/chg/{id}"));
    request["deployment_callback_url"] =
        json!(format!("https://api.github.com{REPOSITORY}/actions/runs/{run}/deployment_protection_rule"));
    request["deployment"]["id"] = json!(1_834_500_000 + run);
    request["deployment"]["created_at"] = json!(secs(at));
    request["deployment"]["updated_at"] = json!(secs(at));
    request
}

fn callback_path(run: u64) -> String {
    format!("{REPOSITORY}/actions/runs/{run}/deployment_protection_rule")
}

/// Checks that `call` went to run `run`'s callback with the sample
/// installation's token (`ghs_51234567_<n>`), for production.
fn assert_callback(call: &Call, run: u64) {
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", callback_path(run).as_str()), "{call:?}");
    let token = call.auth.as_deref().unwrap_or_default();
    assert!(token.starts_with("Bearer ghs_51234567_"), "the installation's token: {call:?}");
    assert_eq!(call.body["environment_name"], "production", "{call:?}");
}

/// A protection rule request on a change approved and inside its window is
/// answered at once: the App's JWT is exchanged for the installation's
/// token, which posts `approved` with a comment naming the change; once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protection_rule_on_an_approved_change_in_its_window_is_approved_at_once() {
    let forge = FakeForge::start().await;
    let hub = Hub::start(github_app_env(&forge), "", None);
    let now = Utc::now();
    let id = hub.approved(now - Duration::minutes(5), now + Duration::hours(2), false).await;
    hub.replay("github", "deployment_protection_rule.7001.json", &protection_request(7001, &id, now));

    let answered = forge_calls(&forge, &callback_path(7001), 1).await;
    assert_callback(&answered[0], 7001);
    assert_eq!(answered[0].auth.as_deref(), Some("Bearer ghs_51234567_1"));
    let comment = answered[0].body["comment"].as_str().unwrap_or_default().to_owned();
    assert_eq!(answered[0].body, json!({"environment_name": "production", "state": "approved", "comment": comment}));
    assert!(comment.starts_with(&format!("changehub approved on change {id} (")), "{comment}");
    let exchange = forge.calls_to("/access_tokens");
    assert_eq!(exchange.len(), 1, "{exchange:?}");
    assert_eq!(exchange[0].path, "/app/installations/51234567/access_tokens");
    assert!(exchange[0].by_jwt(), "{exchange:?}");
    hub.settled().await;
    assert_eq!(forge.callbacks().len(), 1, "answered once, no status report: {:?}", forge.callbacks());
    hub.served.interrupt();
}

/// A freeze holds a request on an approved change: the hub keeps it (GitHub
/// gets a status report naming the freeze) and answers `approved` on the
/// first tick at the freeze's end, not before. A freeze that outlasts
/// GitHub's 30-day wait is answered `rejected` at once, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protection_rule_in_a_freeze_is_held_until_it_ends_or_rejected_when_it_outlasts_github() {
    let forge = FakeForge::start().await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("t0");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let hub = Hub::start(github_app_env(&forge), "", Some(t0));
    let id = hub.approved(at(-5), at(180), false).await;
    hub.freeze("release-freeze", "Release freeze", at(0), at(14)).await;

    hub.replay("github", "deployment_protection_rule.7002.json", &protection_request(7002, &id, at(1)));
    let report = forge_calls(&forge, &callback_path(7002), 1).await;
    assert_callback(&report[0], 7002);
    assert_eq!(report[0].body.get("state"), None, "a status report, no answer: {report:?}");
    assert!(report[0].body["comment"].as_str().unwrap_or_default().contains("Release freeze"), "{report:?}");

    hub.tick_at(at(13)).await;
    hub.settled().await;
    assert!(forge.protection_answers().is_empty(), "held until the freeze ends: {:?}", forge.callbacks());
    hub.tick_at(at(14)).await;
    let answered = forge_calls(&forge, &callback_path(7002), 2).await;
    assert_callback(&answered[1], 7002);
    assert_eq!(answered[1].body["state"], "approved", "{answered:?}");
    assert!(answered[1].body["comment"].as_str().unwrap_or_default().contains(&id), "{answered:?}");

    hub.freeze("year-end", "Year-end freeze", at(40), at(40) + Duration::days(40)).await;
    hub.clock().set(at(45));
    hub.replay("github", "deployment_protection_rule.7003.json", &protection_request(7003, &id, at(45)));
    let rejected = forge_calls(&forge, &callback_path(7003), 1).await;
    assert_callback(&rejected[0], 7003);
    assert_eq!(rejected[0].body["state"], "rejected", "at once: {rejected:?}");
    let comment = rejected[0].body["comment"].as_str().unwrap_or_default();
    assert!(comment.contains("Year-end freeze") && comment.contains("after GitHub stops waiting"), "{comment}");
    hub.settled().await;
    assert_eq!(forge.protection_answers().len(), 2, "each answered once: {:?}", forge.callbacks());
    hub.served.interrupt();
}

/// A protection rule request on a change still waiting for approval is
/// held (GitHub gets a status report saying so); the change is rejected:
/// the hub answers `rejected` with a comment naming the change and its
/// rejection, once, and a later tick has nothing more to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protection_rule_held_for_approval_is_rejected_once_with_its_change() {
    let forge = FakeForge::start().await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("t0");
    let hub = Hub::start(github_app_env(&forge), "", Some(t0));
    let id = create_and_submit(&hub.http, hub.base(), &hub.alice).await;
    hub.replay("github", "deployment_protection_rule.7004.json", &protection_request(7004, &id, t0));
    let report = forge_calls(&forge, &callback_path(7004), 1).await;
    assert_callback(&report[0], 7004);
    assert_eq!(report[0].body.get("state"), None, "a status report, no answer: {report:?}");
    assert!(report[0].body["comment"].as_str().unwrap_or_default().contains("waits for approval"), "{report:?}");

    let pat = ("pat@example.com", "payments-leads");
    common::decide(hub.path(), &hub.http, hub.base(), &id, pat, "reject").await;
    let answered = forge_calls(&forge, &callback_path(7004), 2).await;
    assert_callback(&answered[1], 7004);
    let what = "deploying payments 64db262264ce to production";
    let comment = format!("changehub rejected: {what}: change {id} was rejected by pat@example.com; open a new change");
    let expected = json!({"environment_name": "production", "state": "rejected", "comment": comment});
    assert_eq!(answered[1].body, expected, "{answered:?}");

    hub.tick_at(t0 + Duration::hours(2)).await;
    hub.settled().await;
    assert_eq!(forge.protection_answers().len(), 1, "answered once: {:?}", forge.callbacks());
    assert_eq!(forge.callbacks().len(), 2, "{:?}", forge.callbacks());
    hub.served.interrupt();
}

// The generic deployment gate.

/// Past its planned window an approved change is refused, whatever else
/// holds it: `POST /gates/deployments` answers `allowed: false`, `refused`,
/// `window_ended` with the reason, and `changehub gate` exits 1 saying so.
#[tokio::test]
async fn the_generic_gate_refuses_a_change_past_its_window_over_http_and_in_the_cli() {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("t0");
    let hub = Hub::start(vec![], "", Some(t0));
    let id = hub.approved(t0 - Duration::minutes(5), t0 + Duration::hours(1), false).await;
    let open = hub.gate(&id).await;
    assert_eq!((&open["allowed"], &open["code"]), (&json!(true), &json!("allowed")), "{open}");

    hub.clock().set(t0 + Duration::hours(2));
    let refused = hub.gate(&id).await;
    assert_eq!(
        (&refused["allowed"], &refused["status"], &refused["code"]),
        (&json!(false), &json!("refused"), &json!("window_ended"))
    );
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("change {id} was planned")) && reason.contains("which is over"), "{reason}");
    assert_eq!(refused["change"]["id"], json!(id));

    let (code, line) =
        run_gate(hub.base(), &hub.alice, &["--environment", "production", "--sha", "64db262", "--change", &id]);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("refused (window_ended)") && line.contains("which is over"), "{line}");
    hub.served.interrupt();
}

// Deployments: rollbacks and bake time.

/// The bake time of payments (a change stays `verifying` that long after its deployment).
const BAKE: &str = "    bake_time: 30m\n";

/// The GitHub `deployment_status` success sample as deployment `deployment`
/// of `sha`, naming change `id`, at `at`.
fn deployed(deployment: u64, sha: &str, id: &str, at: DateTime<Utc>) -> Value {
    let mut d = event_sample("github/deployment_status.success.json");
    d["deployment"]["id"] = json!(deployment);
    d["deployment"]["sha"] = json!(sha);
    d["deployment"]["description"] = json!(format!("Deploy {id}"));
    d["deployment_status"]["id"] = json!(deployment * 10);
    for time in ["created_at", "updated_at"] {
        d["deployment"][time] = json!(secs(at));
        d["deployment_status"][time] = json!(secs(at));
    }
    d
}

fn signing() -> Vec<(&'static str, String)> {
    vec![("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret".into()), ("CHANGEHUB_PAGERDUTY_SECRET", "pd-dev-secret".into())]
}

/// A scheduled change deploys sha A then sha B (baking: `verifying`);
/// GitHub then deploys A again to production: the change is `rolled_back`,
/// and `GET /changes/{id}` shows its post-mortem draft naming the deployment
/// rolled back and the rollback. A failed deployment followed by one whose
/// payload says `rollback: true` rolls its change back the same way.
#[tokio::test]
async fn a_redeploy_of_the_earlier_sha_or_a_rollback_flag_rolls_the_change_back_with_a_postmortem_draft() {
    let t0 = Utc.with_ymd_and_hms(2026, 9, 14, 10, 0, 0).single().expect("t0");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let hub = Hub::start(signing(), BAKE, Some(t0));
    let id = hub.approved(at(-10), at(180), true).await;
    let (a, b) = (sha(0xa), sha(0xb));
    for (n, (deployment, sha, minute)) in [(701, &a, 5), (702, &b, 10), (703, &a, 20)].into_iter().enumerate() {
        hub.clock().set(at(minute));
        hub.replay(
            "github",
            &format!("deployment_status.{deployment}.json"),
            &deployed(deployment, sha, &id, at(minute)),
        );
        let what = format!("deployment {deployment} recorded");
        hub.change_once(&id, &what, |c| c["deployments"].as_array().is_some_and(|d| d.len() > n)).await;
    }
    let change = hub.change(&id).await;
    assert_eq!(change["state"], "rolled_back", "{change}");
    let pm = &change["postmortem"];
    assert_eq!(pm["outcome"], "rolled_back", "{pm}");
    assert_eq!((&pm["deployed"]["deployment_id"], &pm["deployed"]["sha"]), (&json!("702"), &json!(b)), "{pm}");
    assert_eq!(pm["rollback"]["deployment_id"], "703", "{pm}");
    assert_eq!(pm["at"], json!(secs(at(20))), "{pm}");

    // A failed deployment, then one flagged `rollback` in its payload (no rollback words) naming the change.
    let failing = hub.approved(at(20), at(180), true).await;
    let mut failed = deployed(704, &sha(0xc), &failing, at(30));
    failed["deployment_status"]["state"] = json!("failure");
    hub.clock().set(at(30));
    hub.replay("github", "deployment_status.704.json", &failed);
    hub.change_once(&failing, "failed", |c| c["state"] == "failed").await;
    let mut flagged = deployed(705, &sha(0xd), &failing, at(35));
    flagged["deployment"]["payload"] = json!({"rollback": true});
    hub.clock().set(at(35));
    hub.replay("github", "deployment_status.705.json", &flagged);
    let back = hub.change_once(&failing, "rolled back by the flag", |c| c["state"] == "rolled_back").await;
    let pm = &back["postmortem"];
    assert_eq!((&pm["outcome"], &pm["deployed"]["deployment_id"]), (&json!("rolled_back"), &json!("704")), "{pm}");
    assert_eq!(pm["rollback"]["deployment_id"], "705", "{pm}");
    hub.served.interrupt();
}

/// GitLab's failed deployment sample, its deployed commit's title naming
/// an approved change, fails that change with a post-mortem draft naming
/// the deployment, its job and log, and who ran it.
#[tokio::test]
async fn a_failed_gitlab_deployment_fails_its_change_with_a_postmortem_draft() {
    let t0 = Utc.with_ymd_and_hms(2026, 9, 14, 10, 0, 0).single().expect("t0");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let hub = Hub::start(vec![("CHANGEHUB_GITLAB_TOKEN", "gl-dev-webhook-token".into())], "", Some(t0));
    let id = hub.approved(at(-10), at(180), true).await;
    let mut failed = event_sample("gitlab/deployment.failed.json");
    failed["commit_title"] = json!(format!("Merge branch 'chg/{id}' into 'main'"));
    failed["status_changed_at"] = json!(at(12).format("%Y-%m-%d %H:%M:%S +0000").to_string());
    hub.clock().set(at(13));
    hub.replay("gitlab", "deployment.48212.json", &failed);
    let change = hub.change_once(&id, "failed", |c| c["state"] == "failed").await;
    let pm = &change["postmortem"];
    assert_eq!((&pm["outcome"], &pm["by"], &pm["at"]), (&json!("failed"), &json!("raj.acme"), &json!(secs(at(12)))));
    let deployed = (&pm["deployed"]["deployment_id"], &pm["deployed"]["sha"]);
    assert_eq!(deployed, (&json!("48212"), &json!("81d973398311d4c31cc7fc1ce8ad4a41d4e7cdf3")), "{pm}");
    let job = "https://gitlab.acme.example/platform/checkout-service/-/jobs/1556230";
    assert_eq!((&pm["failing_job"], &pm["log_url"]), (&json!("job 1556230"), &json!(job)), "{pm}");
    hub.served.interrupt();
}

/// The PagerDuty sample incident `incident` on payments (not major: low urgency), started at `at`.
fn incident(incident: &str, at: DateTime<Utc>) -> Value {
    let mut pd = event_sample("pagerduty/incident.triggered.json");
    pd["event"]["id"] = json!(format!("01F4QZ8T0CKD0M9XJ3E2WS7{incident}"));
    pd["event"]["occurred_at"] = json!(secs(at));
    pd["event"]["data"]["id"] = json!(incident);
    pd["event"]["data"]["created_at"] = json!(secs(at));
    pd["event"]["data"]["urgency"] = json!("low");
    pd
}

/// A change deployed to production bakes (`verifying` until 30 minutes
/// after); the next stage's gate is open. A signed PagerDuty incident on
/// payments during the bake makes it suspect: the gate answers `pending`,
/// `suspect`, pointing at clear-suspect, and the tick past the bake's end
/// does not complete it. An owner of payments clears it: the gate opens and
/// the next tick completes the change.
#[tokio::test]
async fn an_incident_during_the_bake_holds_the_next_stage_until_an_owner_clears_it() {
    let t0 = Utc.with_ymd_and_hms(2026, 9, 14, 10, 0, 0).single().expect("t0");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let hub = Hub::start(signing(), BAKE, Some(t0));
    let id = hub.approved(at(-10), at(180), true).await;
    hub.clock().set(at(5));
    hub.replay("github", "deployment_status.801.json", &deployed(801, &sha(0x801), &id, at(5)));
    let baking = hub.change_once(&id, "verifying", |c| c["state"] == "verifying").await;
    assert_eq!(baking["bake"]["until"], json!(secs(at(35))), "{baking}");
    hub.clock().set(at(10));
    let open = hub.gate(&id).await;
    assert_eq!((&open["allowed"], &open["code"]), (&json!(true), &json!("allowed")), "{open}");

    hub.clock().set(at(12));
    hub.replay("pagerduty", "incident.json", &incident("Q9BAKE00000001", at(12)));
    let suspect = hub.change_once(&id, "suspect", |c| c["bake"]["suspect"].is_object()).await;
    assert_eq!(suspect["bake"]["suspect"]["started_at"], json!(secs(at(12))), "{suspect}");
    let held = hub.gate(&id).await;
    assert_eq!(
        (&held["allowed"], &held["status"], &held["code"]),
        (&json!(false), &json!("pending"), &json!("suspect"))
    );
    assert!(held["reason"].as_str().unwrap_or_default().contains("clear-suspect"), "{held}");
    hub.tick_at(at(40)).await;
    assert_eq!(hub.change(&id).await["state"], "verifying", "a suspect change does not complete on its own");

    let olga = token(hub.path(), "olga@example.com", "payments-team,engineers");
    let body = json!({"version": hub.change(&id).await["version"], "note": "a card network outage"});
    let cleared = hub.post(&olga, &format!("/changes/{id}/clear-suspect"), body).await;
    assert_eq!(cleared["bake"]["cleared"]["by"], "olga@example.com", "{cleared}");
    let open = hub.gate(&id).await;
    assert_eq!((&open["allowed"], &open["code"]), (&json!(true), &json!("allowed")), "{open}");
    hub.tick_at(at(41)).await;
    hub.change_once(&id, "completed past its bake", |c| c["state"] == "completed").await;
    hub.served.interrupt();
}
