//! Unauthorized changes end to end: one real `changehub serve` on a clock
//! file, one catalog written for it (a service and a security group per
//! case, the account watched, the deployment pipeline's and the vendors'
//! roles), changes created and moved through the API, and AWS events built
//! from the samples in events/aws (ids, times and the group patched; the
//! shapes are the samples') posted to `/events` as EventBridge would.
//!
//! Every event carries its own time, set relative to its case's change
//! window; the hub's clock only decides when the changes move (scheduled,
//! implementing, completed). Each case has a service and a resource of its
//! own, so no case touches another. The drift consumer takes events one at
//! a time in the order they were accepted, so once the last event's (a
//! sentinel's) finding exists every earlier event has been judged: what has
//! no finding by then never will.

use crate::common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Served, TestClock, import_catalog_file, notifications, token};
use serde_json::{Value, json};
use std::path::Path;

const ACCOUNT: &str = "123456789012";

/// The samples the events are made from.
const BREAK_GLASS: &str = "cloudtrail.ec2_authorize_security_group_ingress.source_identity.json";
const DEPLOYER: &str = "cloudtrail.ec2_authorize_security_group_ingress.json";
const VENDOR: &str = "cloudtrail.ec2_revoke_security_group_ingress.vendor.json";
const CLOUDFORMATION: &str = "cloudtrail.ec2_authorize_security_group_ingress.cloudformation.json";
const CONFIG_ITEM: &str = "config.configuration_item_change.json";
const STACK_STEP: &str = "cloudformation.resource_status_change.json";

/// The cases' services and their security groups (`sg-` and 17 hex digits).
const CASES: [(&str, &str); 11] = [
    ("windowed", "sg-0a00000000000a001"),
    ("graced", "sg-0a00000000000b001"),
    ("vendored", "sg-0a00000000000c001"),
    ("planned-pipeline", "sg-0a00000000000d001"),
    ("deploying", "sg-0a00000000000e001"),
    ("stacked", "sg-0a00000000000f001"),
    ("config-first", "sg-0a000000000010001"),
    ("trail-first", "sg-0a000000000011001"),
    ("bursty", "sg-0a000000000012001"),
    ("duplicated", "sg-0a000000000013001"),
    ("sentinel", "sg-0a000000000014001"),
];

/// A group no catalog entry maps.
const UNMAPPED: &str = "sg-0a0000000000ff001";

/// The sample stack (`checkout-service-prod`), mapped to the `stacked` case.
const STACK_PREFIX: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/checkout-service-";

fn group_of(service: &str) -> &'static str {
    CASES.iter().find(|(s, _)| *s == service).map(|(_, g)| *g).unwrap_or(UNMAPPED)
}

fn group_arn(group: &str) -> String {
    format!("arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{group}")
}

fn catalog() -> String {
    let mut services = String::new();
    for (name, group) in CASES {
        let stack = if name == "stacked" { format!(", \"{STACK_PREFIX}\"") } else { String::new() };
        services.push_str(&format!(
            "  - name: {name}\n    owner_group: {name}-team\n    tier: 2\n    approval:\n      - {{name: lead, groups: [leads], sla: 4h, escalate_to: managers}}\n    mappings:\n      aws_arn_prefixes: [\"{}\"{stack}]\n",
            group_arn(group)
        ));
    }
    format!(
        "roles:\n  requester: [engineers]\n  approver: [leads]\n  cab: [cab]\n  admin: [platform]\nservices:\n{services}\
         drift:\n  grace: 15m\n  storm_window: 10m\n  accounts: [\"{ACCOUNT}\"]\n\
         \x20 pipeline_principals: [\"arn:aws:iam::{ACCOUNT}:role/github-actions-deployer\"]\n\
         \x20 vendor_principals: [\"arn:aws:iam::{ACCOUNT}:role/vendor-*\"]\n"
    )
}

/// 2026-09-14 (the samples' day) at `hh:mm:ss`.
fn at(hms: &str) -> DateTime<Utc> {
    let t = chrono::NaiveTime::parse_from_str(hms, "%H:%M:%S").expect("a time of day");
    Utc.from_utc_datetime(&chrono::NaiveDate::from_ymd_opt(2026, 9, 14).expect("date").and_time(t))
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/aws").join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("sample")).expect("sample JSON")
}

/// Another call like the CloudTrail sample `name`: its own envelope and
/// event ids, made at `t`, on `group`.
fn call(name: &str, id: &str, t: DateTime<Utc>, group: &str) -> Value {
    let mut e = sample(name);
    e["id"] = json!(id);
    e["time"] = json!(text(t));
    let d = &mut e["detail"];
    d["eventID"] = json!(id);
    d["eventTime"] = json!(text(t));
    d["requestParameters"]["groupId"] = json!(group);
    if let Some(rules) = d["responseElements"]["securityGroupRuleSet"]["items"].as_array_mut() {
        for rule in rules {
            rule["groupId"] = json!(group);
        }
    }
    e
}

/// Another AWS Config item like the sample: `group` changed, captured at
/// `t`, with no related events (as Config often sends).
fn config_item(id: &str, t: DateTime<Utc>, group: &str) -> Value {
    let mut e = sample(CONFIG_ITEM);
    e["id"] = json!(id);
    e["time"] = json!(text(t));
    e["resources"] = json!([group_arn(group)]);
    let d = &mut e["detail"];
    d["notificationCreationTime"] = json!(text(t));
    let item = &mut d["configurationItem"];
    item["relatedEvents"] = json!([]);
    item["configurationItemCaptureTime"] = json!(text(t));
    item["resourceId"] = json!(group);
    item["ARN"] = json!(group_arn(group));
    item["configuration"]["groupId"] = json!(group);
    e
}

/// The sample stack's resource step, completed at `t`.
fn stack_step(id: &str, t: DateTime<Utc>) -> Value {
    let mut e = sample(STACK_STEP);
    e["id"] = json!(id);
    e["time"] = json!(text(t));
    e
}

struct Hub {
    served: Served,
    clock: TestClock,
    http: reqwest::Client,
    admin: String,
    engineer: String,
    lead: String,
}

impl Hub {
    async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.served.base)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(token, reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {answer}");
        answer
    }

    /// A change on `service` planned `from`..`to`, submitted and approved by a lead: its id.
    async fn approved(&self, service: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let new = json!({
            "title": format!("Open the {service} database port"), "type": "normal", "services": [service],
            "environment": "production", "planned_start": text(from), "planned_end": text(to),
        });
        let created = self.post(&self.engineer, "/changes", new).await;
        let id = created["id"].as_str().expect("id").to_owned();
        self.post(&self.engineer, &format!("/changes/{id}/transitions"), json!({"to": "submitted", "version": 1}))
            .await;
        let approved = self.post(&self.lead, &format!("/changes/{id}/decisions"), json!({"decision": "approve"})).await;
        assert_eq!(approved["state"], "approved", "{service}: {approved}");
        id
    }

    async fn version(&self, id: &str) -> u64 {
        let (status, change) = self.call(&self.engineer, reqwest::Method::GET, &format!("/changes/{id}"), None).await;
        assert_eq!(status, 200, "{change}");
        change["version"].as_u64().expect("version")
    }

    /// Moves the change to `to` at the hub's current time.
    async fn move_to(&self, id: &str, to: &str) {
        let version = self.version(id).await;
        self.post(&self.engineer, &format!("/changes/{id}/transitions"), json!({"to": to, "version": version})).await;
    }

    /// Posts an AWS event to `/events`, as EventBridge delivers it: what the hub answered.
    async fn send(&self, event: &Value) -> Value {
        self.post(&self.admin, "/events", event.clone()).await
    }

    async fn findings(&self, query: &str) -> Vec<Value> {
        let (status, page) =
            self.call(&self.engineer, reqwest::Method::GET, &format!("/findings?limit=100{query}"), None).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["next_cursor"].is_null(), "one page holds them all: {page}");
        page["findings"].as_array().cloned().unwrap_or_default()
    }

    async fn of(&self, service: &str) -> Vec<Value> {
        self.findings(&format!("&service={service}")).await
    }
}

/// The unauthorized-change notifications of finding `id` addressed to the
/// people who act on it: its service's owners, or the cab for a finding of
/// no service (the feed's and the other audiences' copies left out).
fn told(lines: &[Value], id: &Value) -> Vec<Value> {
    let addressed = |n: &Value| {
        let a = &n["attributes"];
        a["audience"] == "owners" || (a["audience"] == "cab" && a["service"] == "unknown")
    };
    lines
        .iter()
        .filter(|n| n["attributes"]["type"] == "unauthorized_change" && &n["body"]["finding"]["id"] == id)
        .filter(|n| addressed(n))
        .cloned()
        .collect()
}

/// The one finding of `service`, and the notifications of it.
fn one<'a>(findings: &'a [Value], lines: &[Value], case: &str) -> (&'a Value, Vec<Value>) {
    assert_eq!(findings.len(), 1, "{case}: one finding: {findings:#?}");
    let f = &findings[0];
    (f, told(lines, &f["id"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_changes_through_serve_every_case_of_the_matrix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at(dir.path(), at("08:00:00"));
    let served = Served::start_args(dir.path(), &[], &["--clock-file", clock.path.to_str().expect("a UTF-8 path")]);
    let file = dir.path().join("catalog.yaml");
    std::fs::write(&file, catalog()).expect("write the catalog");
    import_catalog_file(dir.path(), &served.base, &file);
    let hub = Hub {
        admin: token(dir.path(), "root@example.com", "changehub-admins"),
        engineer: token(dir.path(), "erin@example.com", "engineers"),
        lead: token(dir.path(), "lee@example.com", "leads"),
        http: reqwest::Client::new(),
        served,
        clock,
    };
    let (ten, eleven) = (at("10:00:00"), at("11:00:00"));

    // The changes, planned 10:00-11:00; two start implementing at 10:05
    // and the stack's completes at 10:40, by the hub's clock.
    for service in ["windowed", "graced", "vendored", "planned-pipeline"] {
        hub.approved(service, ten, eleven).await;
    }
    let deploying = hub.approved("deploying", ten, eleven).await;
    let stacked = hub.approved("stacked", ten, eleven).await;
    for id in [&deploying, &stacked] {
        hub.move_to(id, "scheduled").await;
    }
    hub.clock.set(at("10:05:00"));
    for id in [&deploying, &stacked] {
        hub.move_to(id, "implementing").await;
    }
    hub.clock.set(at("10:40:00"));
    hub.move_to(&stacked, "completed").await;
    hub.clock.set(at("16:00:00"));

    let mut n = 0;
    let mut id = |case: &str| {
        n += 1;
        format!("{case}-{n:03}")
    };
    let g = group_of;
    let events = [
        // Authorized inside the window; unauthorized outside it.
        call(BREAK_GLASS, &id("windowed"), at("10:30:00"), g("windowed")),
        call(BREAK_GLASS, &id("windowed"), at("13:00:00"), g("windowed")),
        // The grace on both sides: 15 minutes in, a second more out.
        call(BREAK_GLASS, &id("graced"), at("09:45:00"), g("graced")),
        call(BREAK_GLASS, &id("graced"), at("11:15:00"), g("graced")),
        call(BREAK_GLASS, &id("graced"), at("09:44:59"), g("graced")),
        call(BREAK_GLASS, &id("graced"), at("11:15:01"), g("graced")),
        // A resource no service maps.
        call(BREAK_GLASS, &id("unmapped"), at("12:00:00"), UNMAPPED),
        // A vendor: authorized like anyone inside the window, flagged outside it.
        call(VENDOR, &id("vendored"), at("10:20:00"), g("vendored")),
        call(VENDOR, &id("vendored"), at("12:00:00"), g("vendored")),
        // The pipeline's role: a plan is not enough, an implementation is.
        call(DEPLOYER, &id("planned-pipeline"), at("10:30:00"), g("planned-pipeline")),
        call(DEPLOYER, &id("deploying"), at("10:30:00"), g("deploying")),
        // CloudFormation for the stack: during its update, its step, within
        // the grace of its completion; then long after.
        call(CLOUDFORMATION, &id("stacked"), at("10:30:00"), g("stacked")),
        stack_step(&id("stacked"), at("10:31:00")),
        call(CLOUDFORMATION, &id("stacked"), at("10:54:59"), g("stacked")),
        call(CLOUDFORMATION, &id("stacked"), at("11:30:00"), g("stacked")),
        // Config before the call behind it, and the reverse.
        config_item(&id("config-first"), at("12:00:45"), g("config-first")),
        call(BREAK_GLASS, &id("config-first"), at("12:00:00"), g("config-first")),
        call(BREAK_GLASS, &id("trail-first"), at("12:00:00"), g("trail-first")),
        config_item(&id("trail-first"), at("12:00:45"), g("trail-first")),
    ];
    for e in &events {
        let answer = hub.send(e).await;
        assert_eq!(answer["accepted"], 1, "{}: {answer}", e["id"]);
    }
    // A burst: six calls by one session in two minutes.
    for i in 0..6 {
        let e = call(BREAK_GLASS, &id("bursty"), at("12:00:00") + Duration::seconds(20 * i), g("bursty"));
        assert_eq!(hub.send(&e).await["accepted"], 1);
    }
    // A duplicate: EventBridge delivers the same event again.
    let once = call(BREAK_GLASS, &id("duplicated"), at("12:00:00"), g("duplicated"));
    assert_eq!(hub.send(&once).await["accepted"], 1);
    assert_eq!(hub.send(&once).await, json!({"duplicate": true}));
    // The same CloudTrail record in another envelope: a new delivery, the same record.
    let mut again = once.clone();
    again["id"] = json!(id("duplicated"));
    assert_eq!(hub.send(&again).await["accepted"], 1);
    // Last, the sentinel: once its finding exists, every event before it was judged.
    hub.send(&call(BREAK_GLASS, &id("sentinel"), at("15:00:00"), g("sentinel"))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while hub.of("sentinel").await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the sentinel's finding within 20s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let lines = notifications(dir.path());
    let maria = "maria.rossi@acme.example";

    // Inside the window: nothing; outside it: one finding naming the person.
    let windowed = hub.of("windowed").await;
    let (f, n) = one(&windowed, &lines, "windowed");
    assert_eq!(f["first_seen"], text(at("13:00:00")));
    assert_eq!((f["status"].as_str(), f["count"].as_u64()), (Some("open"), Some(1)));
    assert_eq!(f["actor"]["name"], maria);
    assert_eq!(f["actor"]["principal"], "arn:aws:iam::123456789012:role/ops-break-glass");
    assert_eq!(f["severity"], "high", "a security group on a tier-2 service");
    assert!(f["reason"].as_str().is_some_and(|r| r.contains("no approved change covers windowed")), "{f}");
    assert_eq!(n.len(), 1, "told once: {n:#?}");
    assert_eq!(n[0]["attributes"]["service"], "windowed");
    assert_eq!(n[0]["attributes"]["notify"], "windowed-team");
    assert!(n[0]["subject"].as_str().is_some_and(|s| s.contains(maria)), "{}", n[0]["subject"]);

    // The grace: 15 minutes either side authorizes, one second more does not.
    let mut graced: Vec<String> =
        hub.of("graced").await.iter().map(|f| f["first_seen"].as_str().unwrap_or_default().to_owned()).collect();
    graced.sort();
    assert_eq!(graced, [text(at("09:44:59")), text(at("11:15:01"))]);

    // An unmapped resource in a watched account is a finding of no service, told to the cab.
    let all = hub.findings("").await;
    let unmapped: Vec<Value> = all.iter().filter(|f| f["resources"][0]["id"] == UNMAPPED).cloned().collect::<Vec<_>>();
    let (f, n) = one(&unmapped, &lines, "unmapped");
    assert!(f["service"].is_null(), "{f}");
    assert!(f["reason"].as_str().is_some_and(|r| r.contains("no service")), "{f}");
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0]["attributes"]["service"].as_str(), n[0]["attributes"]["notify"].as_str()),
        (Some("unknown"), Some("cab"))
    );

    // The vendor: treated as anyone, flagged.
    let vendored = hub.of("vendored").await;
    let (f, n) = one(&vendored, &lines, "vendored");
    assert_eq!(f["first_seen"], text(at("12:00:00")), "inside the window it was authorized");
    assert_eq!(
        (f["actor"]["name"].as_str(), f["actor"]["vendor"].as_bool()),
        (Some("j.okafor@northwind-ops.example"), Some(true))
    );
    assert_eq!(
        n.iter().map(|n| n["attributes"]["vendor"].as_str()).collect::<Vec<_>>(),
        [Some("true")],
        "told once, flagged"
    );
    assert!(n[0]["message"]["facts"].to_string().contains("(vendor)"), "{}", n[0]["message"]);

    // The pipeline's role inside a planned window but before any implementation: a finding.
    let planned = hub.of("planned-pipeline").await;
    let (f, n) = one(&planned, &lines, "planned-pipeline");
    assert_eq!(f["actor"]["pipeline"], true);
    assert!(f["reason"].as_str().is_some_and(|r| r.contains("pipeline")), "{f}");
    assert_eq!(n.len(), 1);
    // While a change for the service implements: authorized.
    assert_eq!(hub.of("deploying").await, Vec::<Value>::new());

    // CloudFormation's calls and step during the stack update and within the
    // grace of its completion are authorized; the call long after is not.
    let stacked_findings = hub.of("stacked").await;
    let (f, n) = one(&stacked_findings, &lines, "stacked");
    assert_eq!(f["first_seen"], text(at("11:30:00")));
    assert_eq!(f["actor"]["invoked_by"], "cloudformation.amazonaws.com");
    assert_eq!(f["actor"]["principal"], "arn:aws:iam::123456789012:role/checkout-service-cfn-exec");
    assert_eq!(n.len(), 1);
    assert!(n[0]["message"]["facts"].to_string().contains("invoked by cloudformation.amazonaws.com"), "{}", n[0]);

    // Config first: a finding without an actor, told; the call names the person, told again.
    let config_first = hub.of("config-first").await;
    let (f, n) = one(&config_first, &lines, "config-first");
    assert_eq!((f["count"].as_u64(), f["actor"]["name"].as_str()), (Some(2), Some(maria)));
    let evidence: Vec<&str> =
        f["changes"].as_array().into_iter().flatten().filter_map(|c| c["evidence"].as_str()).collect();
    assert_eq!(evidence, ["api_call", "configuration_item"], "by the events' own times");
    let subjects: Vec<&str> = n.iter().filter_map(|n| n["subject"].as_str()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[0].contains("an unknown actor") && subjects[1].contains(maria), "{subjects:?}");
    // The call first: the Config item joins its finding, told once.
    let trail_first = hub.of("trail-first").await;
    let (f, n) = one(&trail_first, &lines, "trail-first");
    assert_eq!((f["count"].as_u64(), f["actor"]["name"].as_str()), (Some(2), Some(maria)));
    assert_eq!(n.len(), 1);

    // A burst is one finding with its count, told once.
    let bursty = hub.of("bursty").await;
    let (f, n) = one(&bursty, &lines, "bursty");
    assert_eq!(
        (f["count"].as_u64(), f["first_seen"].as_str(), f["last_seen"].as_str()),
        (Some(6), Some(text(at("12:00:00")).as_str()), Some(text(at("12:01:40")).as_str()))
    );
    assert_eq!(n.len(), 1);
    // A duplicate, or the same record in another envelope, changes nothing.
    let duplicated = hub.of("duplicated").await;
    let (f, n) = one(&duplicated, &lines, "duplicated");
    assert_eq!(f["count"], 1);
    assert_eq!(n.len(), 1);

    // Nothing else was found, and nothing failed.
    let expected = 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1;
    assert_eq!(all.len(), expected, "{all:#?}");
    let dead = std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "no event failed: {dead}");
    hub.served.interrupt();
}
