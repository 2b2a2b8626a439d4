//! End to end: the real `changehub` binary, over HTTP, as the README uses it.

use crate::common;

use common::{
    BIN, CATALOG, Served, approve, create_and_submit, forge_calls, free_port, import_catalog, import_gated_catalog,
    merge_gate_env, pairs, replay_pull_request, run_gate, sample, token,
};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test]
async fn serve_answers_keeps_writes_across_ctrl_c_and_notifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let http = reqwest::Client::new();

    let health: Value =
        http.get(format!("{}/health", hub.base)).send().await.expect("health").json().await.expect("json");
    assert_eq!(health["status"], "ok");

    import_catalog(dir.path(), &hub.base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let id = create_and_submit(&http, &hub.base, &alice).await;
    hub.interrupt();

    // Restarted on the same database: everything acknowledged is there, and the key still signs.
    let hub = Served::start(dir.path());
    let got: Value = http
        .get(format!("{}/changes/{id}", hub.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got["state"], "submitted");
    assert_eq!(got["version"], 2);
    let audit: Value = http
        .get(format!("{}/changes/{id}/audit", hub.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(2));
    hub.interrupt();

    // The local notifier wrote one JSON object per mutation to the feed.
    let lines = std::fs::read_to_string(dir.path().join("notifications.jsonl")).expect("notifications file");
    let kinds: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|n| n["attributes"]["audience"] == "feed")
        .map(|n| n["attributes"]["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["Change Created", "Change Submitted"]);
}

#[tokio::test]
async fn replay_sends_event_files_once_and_reports_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        json!({
            "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-12-01T22:10:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:payments-5xx"],
            "detail": {"alarmName": "payments-5xx", "state": {"value": "ALARM"}}
        })
        .to_string(),
    )
    .expect("write event");
    let db = dir.path().join("hub.db");
    let replay = |file: &Path| {
        Command::new(BIN).args(["replay", "--url", &hub.base, "--db"]).arg(&db).arg(file).output().expect("replay")
    };
    // AWS events need a token: without the hub's key or --token, replay says how to get one.
    let keyless = Command::new(BIN)
        .args(["replay", "--url", &hub.base, "--db"])
        .arg(dir.path().join("elsewhere.db"))
        .arg(&event)
        .env_remove("CHANGEHUB_TOKEN")
        .output()
        .expect("replay");
    assert!(!keyless.status.success());
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("needs a bearer token"));

    let first = replay(&event);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("202"), "{}", String::from_utf8_lossy(&first.stdout));
    let again = replay(&event);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("\"duplicate\":true"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    let not_an_event = dir.path().join("body.json");
    std::fs::write(&not_an_event, sample().to_string()).expect("write");
    let refused = replay(&not_an_event);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an EventBridge-shaped event"));

    let missing = replay(&dir.path().join("nope.json"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    hub.interrupt();
}

/// Every AWS-native sample in events/aws replays into the local hub's bus.
#[tokio::test]
async fn every_aws_sample_event_replays_into_the_hub() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/aws");
    let mut files: Vec<_> = std::fs::read_dir(samples)
        .expect("events/aws")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "events/aws holds the AWS samples: {files:?}");
    let out = Command::new(BIN)
        .args(["replay", "--url", &hub.base, "--db"])
        .arg(dir.path().join("hub.db"))
        .args(&files)
        .output()
        .expect("replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": 202 ") || l.contains(": 200 ")).count(),
        files.len(),
        "{stdout}"
    );
    assert!(stdout.lines().filter(|l| l.contains(": 202 ")).count() >= 6, "{stdout}");
    hub.interrupt();
}

fn sample_files(source: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(source);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("events/<source>")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every webhook sample, signed by `changehub replay` with the secrets both
/// sides read from the environment, is accepted once; a second replay is a duplicate.
#[tokio::test]
async fn signed_webhook_samples_replay_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [
        ("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret"),
        ("CHANGEHUB_GITLAB_TOKEN", "gl-dev-token"),
        ("CHANGEHUB_PAGERDUTY_SECRET", "pd-dev-secret"),
        ("CHANGEHUB_INCIDENTIO_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("CHANGEHUB_ALERTMANAGER_TOKEN", "am-dev-token"),
        ("CHANGEHUB_ARGOCD_TOKEN", "argocd-dev-token"),
    ];
    let hub = Served::start_with(dir.path(), &secrets);
    let files: Vec<PathBuf> = ["github", "gitlab", "pagerduty", "alertmanager", "incidentio", "argocd"]
        .iter()
        .flat_map(|s| sample_files(s))
        .collect();
    let replay = |extra: &[&str]| {
        Command::new(BIN).args(["replay", "--url", &hub.base]).args(extra).args(&files).envs(secrets).output()
    };
    // GitHub's ping and star samples are of types the hub ignores: the run says so and fails.
    let first = replay(&[]).expect("replay");
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(!first.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 files were ignored") && stderr.contains("--allow-ignored"), "{stderr}");
    let accepted = stdout.lines().filter(|l| l.contains(": 202 ")).count();
    assert!(accepted >= 20, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.contains("{\"ignored\":")).count(), 2, "{stdout}");
    // With --allow-ignored the second run passes; every accepted file is now a duplicate.
    let second = replay(&["--allow-ignored"]).expect("replay");
    let again = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success(), "{again}\n{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(again.lines().filter(|l| l.contains("\"duplicate\":true")).count(), accepted, "{again}");

    // Without the secret, replay says which variable to set; a hub without one refuses.
    let unsigned = Command::new(BIN)
        .args(["replay", "--url", &hub.base])
        .arg(&files[0])
        .env_remove("CHANGEHUB_GITHUB_SECRET")
        .output()
        .expect("replay");
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("CHANGEHUB_GITHUB_SECRET"));
    hub.interrupt();
}

/// `changehub replay` with `args` and `env`: its exit code, stdout and stderr.
fn run_replay<A: AsRef<std::ffi::OsStr>>(args: &[A], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).arg("replay").args(args).envs(env.iter().copied()).output().expect("replay");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A capture of one's own outside events/: its event type comes from
/// `--event`, else its `.headers` sidecar, else its file name; a delivery
/// the hub ignores fails the run unless `--allow-ignored`, and a refused one
/// fails it always.
#[tokio::test]
async fn replay_takes_the_event_type_from_the_flag_the_sidecar_or_the_file_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret"), ("CHANGEHUB_PAGERDUTY_SECRET", "pd-dev-secret")];
    let hub = Served::start_with(dir.path(), &secrets);
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let capture = |name: &str, sample: &str| {
        let file = dir.path().join(name);
        std::fs::copy(events.join(sample), &file).expect("copy");
        file
    };
    let github = |extra: &[&str], file: &Path| {
        let mut args: Vec<std::ffi::OsString> = ["--url", &hub.base, "--source", "github"]
            .into_iter()
            .chain(extra.iter().copied())
            .map(Into::into)
            .collect();
        args.push(file.into());
        run_replay(&args, &secrets)
    };

    // The file name says nothing: the hub ignores "mypush", and the run fails, saying what to do.
    let mypush = capture("mypush.json", "github/push.default_branch.json");
    let (code, stdout, stderr) = github(&[], &mypush);
    assert!(stdout.contains(r#": 200 {"ignored":"mypush"}"#), "{stdout}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(r#"event type "mypush", taken from the file name"#) && stderr.contains("--event"),
        "{stderr}"
    );
    assert!(stderr.contains("1 file was ignored"), "{stderr}");
    let (code, _, stderr) = github(&["--allow-ignored"], &mypush);
    assert_eq!(code, Some(0), "--allow-ignored forgives an ignored delivery: {stderr}");
    assert!(stderr.is_empty(), "and does not warn about it: {stderr}");
    let (code, stdout, stderr) = github(&["--event", "push"], &mypush);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(": 202 "), "{stdout}");

    // The headers captured with the delivery, as GitHub's Recent Deliveries view shows them.
    let deploy = capture("deploy.json", "github/deployment_status.success.json");
    let sidecar = dir.path().join("deploy.json.headers");
    std::fs::write(
        &sidecar,
        "Request URL: https://hub.example/webhooks/github\nRequest method: POST\nAccept: */*\n\
         Content-Type: application/json\nX-GitHub-Delivery: 0b0e5d50-9d1c-11ef-8e2f-3c6f0d0a4b21\n\
         X-GitHub-Event: deployment_status\nX-Hub-Signature-256: sha256=from-the-real-secret\n",
    )
    .expect("sidecar");
    let (code, stdout, stderr) = github(&[], &deploy);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(": 202 "), "{stdout}");
    std::fs::write(&sidecar, "Accept: */*\n").expect("sidecar");
    let (code, _, stderr) = github(&[], &deploy);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("deploy.json.headers: holds no X-GitHub-Event header"), "{stderr}");
    std::fs::write(&sidecar, "X-GitHub-Event: deployment_status\nnot a header\n").expect("sidecar");
    let (_, _, stderr) = github(&[], &deploy);
    assert!(stderr.contains("deploy.json.headers: line 2: expected a header"), "{stderr}");

    // A refusal fails the run, --allow-ignored or not.
    let wrong = [("CHANGEHUB_GITHUB_SECRET", "not the hub's secret")];
    let args = ["--url", &hub.base, "--source", "github", "--allow-ignored", "--event", "push"];
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    args.push(mypush.clone().into());
    let (code, stdout, stderr) = run_replay(&args, &wrong);
    assert!(stdout.contains(": 401 "), "{stdout}");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("1 file was refused"), "{stderr}");

    // --event is for senders that name the type in a header.
    let pagerduty = events.join("pagerduty/incident.triggered.json");
    let args = ["--url", &hub.base, "--event", "incident.triggered"];
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    args.push(pagerduty.into());
    let (code, _, stderr) = run_replay(&args, &secrets);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("pagerduty names it in the body"), "{stderr}");
    hub.interrupt();
}

/// `changehub token` signs only with the key the hub created: run where
/// there is none, it creates nothing, says where it looked and how to point
/// at the hub's database.
#[test]
fn token_refuses_to_mint_without_the_hubs_key() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["token", "--user", "alice@example.com", "--groups", "engineers"])
        .current_dir(elsewhere.path())
        .env_remove("CHANGEHUB_DB")
        .output()
        .expect("changehub token");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let looked = std::fs::canonicalize(elsewhere.path()).expect("dir").join("changehub.db.key");
    assert!(stderr.contains(&format!("no signing key at {}", looked.display())), "{stderr}");
    assert!(stderr.contains("--db PATH or CHANGEHUB_DB"), "{stderr}");
    assert!(std::fs::read_dir(elsewhere.path()).expect("dir").next().is_none(), "nothing was created");
}

#[test]
fn help_explains_every_command_and_flag() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("help");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for cmd in ["serve", "replay", "token", "catalog", "audit", "bench", "escalate", "migrate"] {
        assert!(top.contains(cmd), "--help lists {cmd}:\n{top}");
    }
    let serve = help(&["serve", "--help"]);
    for flag in [
        "--port",
        "--db",
        "--notifications",
        "--bootstrap-admin-group",
        "--escalate-every",
        "[default: 8080]",
        "[default: ./changehub.db]",
    ] {
        assert!(serve.contains(flag), "serve --help mentions {flag}:\n{serve}");
    }
    let replay = help(&["replay", "--help"]);
    for flag in ["--url", "--event", "--allow-ignored", ".headers", "Exit status"] {
        assert!(replay.contains(flag), "replay --help mentions {flag}:\n{replay}");
    }
    let token = help(&["token", "--help"]);
    for flag in ["--user", "--groups", "--tenant", "--ttl", "changehub-admins"] {
        assert!(token.contains(flag), "token --help mentions {flag}:\n{token}");
    }
    assert!(help(&["catalog", "import", "--help"]).contains("--token"));
}

/// The bootstrap admin group is the hub's configuration: renamed, the old
/// name grants nothing; given empty, no group is admin without the catalog.
#[tokio::test]
async fn serve_takes_its_bootstrap_admin_group_from_configuration() {
    let http = reqwest::Client::new();
    let roles = async |base: &str, token: &str| -> Value {
        let me = http.get(format!("{base}/me")).bearer_auth(token).send().await.expect("me");
        assert_eq!(me.status(), 200);
        me.json::<Value>().await.expect("json")["roles"].clone()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start_with(dir.path(), &[("CHANGEHUB_BOOTSTRAP_ADMIN_GROUP", "Platform Admins")]);
    let renamed = token(dir.path(), "root@example.com", "Platform Admins");
    assert_eq!(roles(&hub.base, &renamed).await, json!(["admin"]), "a group name with a space, whole");
    let old = token(dir.path(), "root@example.com", "changehub-admins");
    assert_eq!(roles(&hub.base, &old).await, json!([]), "the default name grants nothing once renamed");
    drop(hub);

    let retired = Served::start_args(dir.path(), &[], &["--bootstrap-admin-group", ""]);
    assert_eq!(roles(&retired.base, &old).await, json!([]), "retired: no bootstrap admin");
    drop(retired);
    let default = Served::start(dir.path());
    assert_eq!(roles(&default.base, &old).await, json!(["admin"]), "by default, changehub-admins");
}

/// The README's walkthrough, through the real binary: tokens, the catalog
/// import, a change from draft to closed through two approval levels (moved
/// to now before it starts), a change through its peer review, and a
/// submission refused by a freeze window.
#[tokio::test]
async fn readme_walkthrough_from_catalog_import_to_a_refused_freeze() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let http = reqwest::Client::new();
    let base = hub.base.clone();

    // A bad catalog is refused before anything is sent, naming the line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, std::fs::read_to_string(CATALOG).expect("catalog").replace("tier: 2", "tier: 7"))
        .expect("write");
    let out = Command::new(BIN).args(["catalog", "check"]).arg(&bad).output().expect("check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line =
        std::fs::read_to_string(CATALOG).expect("catalog").lines().position(|l| l.contains("tier: 2")).expect("ledger")
            + 1;
    assert!(err.contains(&format!("services[1].tier: line {line}: tier must be 1 to 4; got 7")), "{err}");
    let out = Command::new(BIN)
        .args(["catalog", "import"])
        .arg(CATALOG)
        .args(["--url", &base])
        .env_remove("CHANGEHUB_TOKEN")
        .output()
        .expect("import");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token"), "{}", String::from_utf8_lossy(&out.stderr));
    import_catalog(dir.path(), &base);

    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let carol = token(dir.path(), "carol@example.com", "cab");
    let root = token(dir.path(), "root@example.com", "changehub-admins");
    let post = |token: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}")).bearer_auth(token.to_owned()).json(&body).send()
    };

    // No token: 401, saying how to get one.
    let anonymous = http.get(format!("{base}/me")).send().await.expect("me");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.text().await.expect("body").contains("changehub token"));

    let id = create_and_submit(&http, &base, &alice).await;
    let change: Value = post(&pat, &format!("/changes/{id}/decisions"), json!({"decision": "approve"}))
        .await
        .expect("level 1")
        .json()
        .await
        .expect("json");
    assert_eq!(change["state"], "submitted", "{change}");
    let change: Value = post(&carol, &format!("/changes/{id}/decisions"), json!({"decision": "approve"}))
        .await
        .expect("level 2")
        .json()
        .await
        .expect("json");
    assert_eq!(change["state"], "approved", "{change}");
    // Its planned window lies ahead: implementing starts only inside it, so the cab moves it to now, audited.
    let now = chrono::Utc::now();
    let moved = post(
        &carol,
        &format!("/changes/{id}/reschedule"),
        json!({"version": change["version"], "planned_start": now, "planned_end": now + chrono::Duration::hours(1),
               "reason": "starting now"}),
    )
    .await
    .expect("reschedule");
    assert_eq!(moved.status(), 200);
    let change: Value = moved.json().await.expect("json");
    let first = change["version"].as_u64().expect("version");
    for (version, to) in (first..).zip(["scheduled", "implementing", "completed", "closed"]) {
        let moved = post(&alice, &format!("/changes/{id}/transitions"), json!({"to": to, "version": version}))
            .await
            .expect("transition");
        assert_eq!(moved.status(), 200, "{to}");
    }

    // A change touching keys waits for a peer review: Pat's approval is refused there, root gives it,
    // then Pat and Carol approve their levels; each answer names the step it counted for.
    let keys = {
        let mut body = sample();
        body["cryptographic_keys"] = json!(true);
        body
    };
    let created: Value = post(&alice, "/changes", keys).await.expect("create").json().await.expect("json");
    let third = created["id"].as_str().expect("id").to_owned();
    let decide = |token: &str, decision: &str| {
        post(token, &format!("/changes/{third}/decisions"), json!({"decision": decision}))
    };
    post(&alice, &format!("/changes/{third}/transitions"), json!({"to": "submitted", "version": 1}))
        .await
        .expect("submit");
    let refused = decide(&pat, "approve").await.expect("approve");
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "peer_review_required", "{body}");
    let reviewed: Value = decide(&root, "peer_review").await.expect("peer review").json().await.expect("json");
    assert_eq!(reviewed["decision"]["counted_for"], json!([{"level": 1, "name": "peer-review"}]), "{reviewed}");
    let level2: Value = decide(&pat, "approve").await.expect("level 2").json().await.expect("json");
    assert_eq!(level2["decision"]["counted_for"][0]["name"], "team-lead", "{level2}");
    let level3: Value = decide(&carol, "approve").await.expect("level 3").json().await.expect("json");
    assert_eq!(level3["state"], "approved", "{level3}");

    // A month-end freeze on payments refuses a change planned inside it, naming the window.
    let freeze = json!({"id": "dec-close", "name": "December close", "services": ["payments"],
        "schedule": {"kind": "one_off", "start": "2030-12-01T00:00:00Z", "end": "2030-12-03T00:00:00Z"}});
    assert_eq!(post(&root, "/freezes", freeze).await.expect("freeze").status(), 201);
    let created: Value = post(&alice, "/changes", sample()).await.expect("create").json().await.expect("json");
    let second = created["id"].as_str().expect("id");
    let refused = post(&alice, &format!("/changes/{second}/transitions"), json!({"to": "submitted", "version": 1}))
        .await
        .expect("submit");
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "freeze_window");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("\"December close\" (dec-close)")), "{body}");
    hub.interrupt();
}

/// Step 7 of the README's walkthrough: with the README's secrets, one
/// delivery of each source and a CloudWatch alarm are accepted, answered
/// exactly as the README shows, and each event is matched to payments
/// through the sample catalog (the hub's log says so).
#[tokio::test]
async fn readme_walkthrough_replays_one_delivery_of_each_source_to_payments() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README");
    let secrets = [
        ("CHANGEHUB_GITHUB_SECRET", "local-github-secret"),
        ("CHANGEHUB_GITLAB_TOKEN", "local-gitlab-token"),
        ("CHANGEHUB_PAGERDUTY_SECRET", "local-pagerduty-secret"),
        ("CHANGEHUB_ALERTMANAGER_TOKEN", "local-alertmanager-token"),
        ("CHANGEHUB_INCIDENTIO_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("CHANGEHUB_ARGOCD_TOKEN", "local-argocd-token"),
    ];
    for (name, value) in secrets {
        assert!(readme.contains(&format!("{name}={value}")), "the README sets {name}={value}");
    }
    // The command of step 7 and the answers the README shows under it.
    let start = readme.find("changehub replay events/github/deployment_status.success.json").expect("step 7");
    let mut lines = readme[start..].lines();
    let mut command = String::new();
    for line in lines.by_ref() {
        command.push_str(line.trim_end_matches('\\'));
        if !line.ends_with('\\') {
            break;
        }
    }
    let files: Vec<&str> = command.split_whitespace().skip(2).collect();
    let shown: Vec<&str> = lines.map_while(|l| l.strip_prefix("# → ").or_else(|| l.strip_prefix("#   "))).collect();
    assert_eq!(shown.len(), files.len(), "one answer shown per file: {shown:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("hub.log");
    let hub = Served::start_logged(dir.path(), &secrets, &log);
    import_catalog(dir.path(), &hub.base);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(BIN)
        .current_dir(&root)
        .args(["replay", "--url", &hub.base, "--db"])
        .arg(dir.path().join("hub.db"))
        .args(&files)
        .envs(secrets)
        .output()
        .expect("replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), shown, "the README shows the answers as they come back");
    hub.interrupt();

    let logged = without_colours(&std::fs::read_to_string(&log).expect("log"));
    let published: Vec<&str> = logged.lines().filter(|l| l.contains("event published")).collect();
    assert_eq!(published.len(), 7, "{logged}");
    for line in published {
        assert!(line.contains("service=\"payments\""), "{line}");
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn serve_refuses_a_port_in_use_with_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["serve", "--port", &port])
        .arg("--db")
        .arg(dir.path().join("hub.db"))
        .output()
        .expect("serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on 127.0.0.1:{port}")));
}

/// `changehub changes` prints the tenant's changes as a table, filtered, and
/// with --mine those waiting for the caller's decision; a refusal is an error.
#[tokio::test]
async fn changes_lists_the_tenants_changes_as_a_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let http = reqwest::Client::new();
    import_catalog(dir.path(), &hub.base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let submitted = create_and_submit(&http, &hub.base, &alice).await;
    let created = http.post(format!("{}/changes", hub.base)).bearer_auth(&alice).json(&sample()).send().await;
    let draft: Value = created.expect("create").json().await.expect("json");
    let draft = draft["id"].as_str().expect("id").to_owned();
    let changes = |token: &str, args: &[&str]| {
        let out = Command::new(BIN)
            .args(["changes", "--url", &hub.base, "--from", "2030-01-01T00:00:00Z", "--to", "2031-12-31T00:00:00Z"])
            .args(args)
            .env("CHANGEHUB_TOKEN", token)
            .output()
            .expect("changehub changes");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = changes(&alice, &[]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].ends_with("RISK"), "{out}");
    let row = |id: &str| lines.iter().find(|l| l.starts_with(id)).copied().unwrap_or_default();
    for (id, state) in [(&submitted, "submitted"), (&draft, "draft")] {
        let words: Vec<&str> = row(id).split_whitespace().collect();
        assert_eq!(words.get(1..5), Some(&[state, "normal", "payments", "alice@example.com"][..]), "{out}");
    }
    let (ok, out, _) = changes(&alice, &["--state", "submitted", "--requester", "me"]);
    assert!(ok && out.contains(&submitted) && !out.contains(&draft), "{out}");
    let (ok, out, _) = changes(&pat, &["--mine"]);
    assert!(ok && out.contains(&submitted) && !out.contains(&draft), "level 1 waits for pat: {out}");
    let (ok, out, _) = changes(&alice, &["--mine"]);
    assert_eq!((ok, out.as_str()), (true, "no changes\n"), "nothing waits for the requester");
    let (ok, out, _) = changes(&alice, &["--limit", "1"]);
    assert!(ok && out.contains("more: the same command with --cursor"), "{out}");
    let (ok, _, err) = changes(&alice, &["--state", "finished"]);
    assert!(!ok && err.contains("the hub refused the listing (400)") && err.contains("state"), "{err}");
    let (ok, _, err) = changes("", &[]);
    assert!(!ok && err.contains("no token"), "{err}");
    hub.interrupt();
}

/// What people read: counts in the singular when there is one, durations
/// suggested in forms that are valid, each cause of an error said once, every
/// problem of a catalog with its line.
#[test]
fn cli_messages_count_suggest_valid_forms_and_say_each_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| Command::new(BIN).args(args).env_remove("CHANGEHUB_TOKEN").output().expect("changehub");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    let db = dir.path().join("hub.db");
    let ttl = run(&["token", "--user", "alice", "--ttl", "5", "--db", db.to_str().expect("utf-8 path")]);
    assert!(!ttl.status.success());
    assert_eq!(text(&ttl.stderr).trim(), "error: --ttl: \"5\" has no unit: write 5m, 5h or 5d");

    let checked = run(&["catalog", "check", CATALOG]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(
        text(&checked.stdout).ends_with("valid; 3 services, 1 template, 2 categories\n"),
        "{}",
        text(&checked.stdout)
    );

    let sample = std::fs::read_to_string(CATALOG).expect("the sample catalog");
    let line_of = |needle: &str| 1 + sample.lines().position(|l| l.trim() == needle).expect(needle);
    let bad = dir.path().join("bad.yaml");
    let edited = sample.replacen("tier: 1", "tier: 7", 1).replacen("depends_on: [ledger]", "depends_on: [ledgr]", 1);
    std::fs::write(&bad, edited).expect("write bad.yaml");
    let refused = run(&["catalog", "check", bad.to_str().expect("utf-8 path")]);
    assert!(!refused.status.success());
    let path = bad.display();
    assert_eq!(
        text(&refused.stderr).trim(),
        format!(
            "error: {path}: 2 problems\n\
             {path}: services[0].tier: line {}: tier must be 1 to 4; got 7\n\
             {path}: services[0].depends_on[0]: line {}: service payments depends on ledgr, which the catalog does not list",
            line_of("tier: 1"),
            line_of("depends_on: [ledger]"),
        )
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = run(&["catalog", "import", CATALOG, "--url", &closed, "--token", "t"]);
    assert!(!unreachable.status.success());
    let stderr = text(&unreachable.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.first().copied(), Some(format!("error: cannot reach the hub at {closed}/catalog").as_str()));
    assert!(stderr.contains("Connection refused"), "{stderr}");
    for (i, line) in lines.iter().enumerate() {
        let said = line.trim_start_matches("error: ").trim_start_matches("  caused by: ");
        assert!(lines[..i].iter().all(|earlier| !earlier.contains(said)), "said twice: {said:?} in\n{stderr}");
    }
}

/// `GET /` says what answers and links on; the document is served; a token
/// that is not a JWT is told so in words; a log redirected to a file has no
/// colour codes.
#[tokio::test]
async fn serve_answers_the_root_and_its_document_and_logs_plain_text_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("hub.log");
    let hub = Served::start_logged(dir.path(), &[], &log);
    let http = reqwest::Client::new();

    let root: Value = http.get(format!("{}/", hub.base)).send().await.expect("GET /").json().await.expect("json");
    assert_eq!(root["name"], "changehub");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(root["links"], json!({"health": "/health", "openapi": "/openapi.yaml"}));
    let document = http.get(format!("{}/openapi.yaml", hub.base)).send().await.expect("GET /openapi.yaml");
    assert_eq!(document.headers()["content-type"], "application/yaml");
    let committed = include_str!("../../../../openapi.yaml");
    assert_eq!(document.text().await.expect("text"), committed);

    let garbled = http.get(format!("{}/me", hub.base)).bearer_auth("eyJhbGciOi.e30.c2ln").send().await.expect("me");
    assert_eq!(garbled.status(), 401);
    let body: Value = garbled.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("the token is not a JWT"), "{body}");
    assert!(!message.contains("line") && !message.contains("column"), "{body}");

    hub.interrupt();
    let written = std::fs::read_to_string(&log).expect("the log");
    assert!(written.contains("changehub serving"), "{written}");
    assert!(!written.contains('\u{1b}'), "colour codes in a log file: {written:?}");
}

/// `changehub audit verify` passes intact chains and names an edited entry.
#[tokio::test]
async fn audit_verify_names_an_entry_edited_in_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let http = reqwest::Client::new();
    import_catalog(dir.path(), &hub.base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = create_and_submit(&http, &hub.base, &alice).await;
        ids.push(id);
    }
    hub.interrupt();
    let db = dir.path().join("hub.db");
    let verify = |extra: &[&str]| {
        Command::new(BIN).args(["audit", "verify", "--db"]).arg(&db).args(extra).output().expect("audit verify")
    };

    let ok = verify(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains("3 audit chains, 5 entries; hashes, links, heads and seals checked; 0 broken"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Someone edits the second entry of the first change directly in the file.
    {
        let store = changehub::adapters::embedded::EmbeddedStore::open(&db).expect("open");
        let tenant = changehub::domain::TenantId::parse("default").expect("tenant");
        let id = changehub::domain::ChangeId::parse(&ids[0]).expect("id");
        use changehub::ports::ChangeReader;
        let mut trail = store.audit_trail(&tenant, &id).await.expect("trail");
        trail[1].actor = "mallory".into();
        let pk = changehub::adapters::keys::change_pk(&tenant, &id);
        store
            .put_raw(pk, changehub::adapters::keys::audit_sk(2), serde_json::to_value(&trail[1]).expect("json"))
            .await
            .expect("tamper");
    }
    // And the governance trail's first entry (the catalog import): someone else imported it.
    {
        let store = changehub::adapters::embedded::EmbeddedStore::open(&db).expect("open");
        let tenant = changehub::domain::TenantId::parse("default").expect("tenant");
        use changehub::ports::TenantDocs;
        let mut trail = store.trail(&tenant, 10, None).await.expect("trail").items;
        trail[0].actor = "mallory".into();
        let pk = changehub::adapters::keys::governance_pk(&tenant);
        let entry = serde_json::to_value(&trail[0]).expect("json");
        store.put_raw(pk, changehub::adapters::keys::audit_sk(1), entry).await.expect("tamper");
    }
    let broken = verify(&[]);
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success());
    assert!(out.contains(&format!("BROKEN  default/{}  audit entry 2: stored hash does not match", ids[0])), "{out}");
    assert!(out.contains("BROKEN  default/governance  audit entry 1: stored hash does not match"), "{out}");
    assert!(out.contains("2 broken"), "{out}");
    assert!(out.contains(&format!("ok      default/{}", ids[1])), "{out}");
    let one = verify(&["--change", &ids[1]]);
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stdout));
    assert!(
        String::from_utf8_lossy(&one.stdout).contains(": 1 audit chain, "),
        "{}",
        String::from_utf8_lossy(&one.stdout)
    );
    let missing = verify(&["--change", "01a1fcf8-0000-7000-8000-000000000000"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no change"));
}

/// A secrets file with a secret in the wrong place: `serve` reports the bad
/// entry by its path (and serves the rest), and a file that is not JSON
/// stops it with an error; neither prints the secret.
#[test]
fn a_malformed_secrets_file_is_reported_by_path_and_never_prints_a_secret() {
    const SECRET: &str = "s3cr3t-in-the-wrong-place";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secrets.json");
    let file_env = file.to_string_lossy().into_owned();

    std::fs::write(&file, format!(r#"{{"default": {{"github": "{SECRET}", "pagerduty": ["pd"]}}}}"#)).expect("write");
    let (out, err) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--port", &port.to_string()])
        .arg("--db")
        .arg(dir.path().join("hub.db"))
        .arg("--notifications")
        .arg(dir.path().join("n.jsonl"))
        .env("CHANGEHUB_SECRETS_FILE", &file_env)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("start changehub serve");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "changehub serve did not listen with a partly bad secrets file");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(child.wait().expect("wait").success(), "changehub serve exited cleanly on Ctrl-C");
    let printed = std::fs::read_to_string(&out).expect("out") + &std::fs::read_to_string(&err).expect("err");
    assert!(printed.contains("default.github"), "the bad entry is named by its path: {printed}");
    assert!(!printed.contains("s3cr3t"), "the secret was printed: {printed}");

    std::fs::write(&file, format!(r#"{{"default": {{"github": ["{SECRET}" "#)).expect("write");
    let output = Command::new(BIN)
        .args(["serve", "--port", &free_port().to_string()])
        .arg("--db")
        .arg(dir.path().join("hub.db"))
        .env("CHANGEHUB_SECRETS_FILE", &file_env)
        .output()
        .expect("changehub serve");
    assert!(!output.status.success(), "a secrets file that is not JSON stops serve");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("not JSON"), "{printed}");
    assert!(!printed.contains("s3cr3t"), "the secret was printed: {printed}");
}

/// A replayed delivery leaves a trace a person finds: `GET /activity` and
/// `changehub activity` list each of its events, with the service it was
/// resolved to (the sample catalog maps the alert label `checkout-service`
/// to payments) and the delivery it came in with.
#[tokio::test]
async fn a_replayed_delivery_is_listed_by_the_activity_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [("CHANGEHUB_ALERTMANAGER_TOKEN", "am-dev-token")];
    let hub = Served::start_with(dir.path(), &secrets);
    import_catalog(dir.path(), &hub.base);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/alertmanager/firing.json");
    let replayed =
        Command::new(BIN).args(["replay", "--url", &hub.base]).arg(&sample).envs(secrets).output().expect("replay");
    let stdout = String::from_utf8_lossy(&replayed.stdout).into_owned();
    assert!(replayed.status.success() && stdout.contains(": 202 "), "{stdout}");

    let alice = token(dir.path(), "alice@example.com", "engineers");
    let http = reqwest::Client::new();
    let page: Value = http
        .get(format!("{}/activity", hub.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("activity")
        .json()
        .await
        .expect("json");
    let rows = page["activity"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "one row per alert: {page}");
    for row in &rows {
        assert_eq!((&row["detail_type"], &row["service"]), (&json!("Alert Firing"), &json!("payments")), "{row}");
        assert_eq!(row["source"], "changehub.alertmanager");
    }

    let activity = |args: &[&str]| {
        Command::new(BIN)
            .args(["activity", "--url", &hub.base])
            .args(args)
            .env("CHANGEHUB_TOKEN", &alice)
            .output()
            .expect("changehub activity")
    };
    let out = activity(&[]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("EXTERNAL ID") && lines[0].contains("DELIVERY"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "a header and one line per event:\n{table}");
    for line in &lines[1..] {
        for cell in ["Alert Firing", "alertmanager", "payments"] {
            assert!(line.contains(cell), "{cell:?} in {line:?}");
        }
    }
    let delivery = rows[0]["delivery_id"].as_str().expect("a delivery id");
    assert!(lines[1].ends_with(delivery), "{table}");

    // A page at a time: the command says how to get the next one, or follows them all.
    let first = String::from_utf8_lossy(&activity(&["--limit", "1"]).stdout).into_owned();
    let cursor = first
        .lines()
        .find_map(|l| l.strip_prefix("more: run again with --cursor "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no next page:\n{first}"))
        .to_owned();
    let second = String::from_utf8_lossy(&activity(&["--limit", "1", "--cursor", &cursor]).stdout).into_owned();
    assert_eq!(second.lines().filter(|l| l.contains("Alert Firing")).count(), 1, "{second}");
    assert_ne!(first.lines().nth(1), second.lines().nth(1), "{first}\n{second}");
    let every = String::from_utf8_lossy(&activity(&["--limit", "1", "--all"]).stdout).into_owned();
    assert_eq!(every.lines().filter(|l| l.contains("Alert Firing")).count(), 2, "{every}");
    let json: Value = serde_json::from_slice(&activity(&["--json", "--type", "alert-firing"]).stdout).expect("--json");
    assert_eq!(json["activity"].as_array().map(Vec::len), Some(2), "{json}");
    let none = String::from_utf8_lossy(&activity(&["--source", "github", "--since", "1h"]).stdout).into_owned();
    assert_eq!(none.trim(), "no accepted events");

    let refused = activity(&["--source", "jenkins"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("400: source must be one of"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let anonymous = Command::new(BIN)
        .args(["activity", "--url", &hub.base])
        .env_remove("CHANGEHUB_TOKEN")
        .output()
        .expect("changehub activity");
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("no token"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    hub.interrupt();
}

/// A signed GitHub `deployment_status` webhook (the sample, success to
/// production) ends as a change: `changehub serve`'s deployments consumer
/// makes it from the hub event, with where it came from as `origin`.
#[tokio::test]
async fn a_signed_deployment_status_webhook_becomes_a_change_with_its_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret")];
    let hub = Served::start_with(dir.path(), &secrets);
    import_catalog(dir.path(), &hub.base);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/github/deployment_status.success.json");
    let out =
        Command::new(BIN).args(["replay", "--url", &hub.base]).arg(&sample).envs(secrets).output().expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // One deployment, one change: its id is derived from the deployment.
    let id = changehub::domain::ChangeId::derived(&["default", "github", "acme-corp/checkout-service", "1834567890"]);
    let reader = token(dir.path(), "alice@example.com", "engineers");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let change: Value = loop {
        let got = http.get(format!("{}/changes/{id}", hub.base)).bearer_auth(&reader).send().await.expect("get");
        if got.status() == 200 {
            break got.json().await.expect("json");
        }
        assert!(Instant::now() < deadline, "no change {id} from the deployment: {}", got.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        change["origin"],
        json!({
            "source": "github", "repository": "acme-corp/checkout-service", "deployment_id": "1834567890",
            "sha": change["origin"]["sha"], "ref": change["origin"]["ref"], "environment": "production",
            "url": "https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210",
            "actor": "github-actions[bot]"
        })
    );
    assert!(change["origin"]["sha"].is_string() && change["origin"]["ref"].is_string(), "{change}");
    assert_eq!((change["state"].as_str(), change["type"].as_str()), (Some("completed"), Some("normal")));
    assert_eq!(change["services"], json!(["payments"]));
    assert_eq!(change["implementation"]["ended_at"], "2026-09-14T10:34:11Z", "the deployment's own time");
    assert!(change["review"]["due_at"].is_string(), "production without an approved change: flagged for review");
}

/// A signed PagerDuty webhook (a sample from `events/`) becomes an incident
/// record the hub lists by source and external id, on the catalog service.
#[tokio::test]
async fn a_pagerduty_incident_becomes_a_record_listed_by_its_external_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [("CHANGEHUB_PAGERDUTY_SECRET", "pd-dev-secret")];
    let hub = Served::start_with(dir.path(), &secrets);
    import_catalog(dir.path(), &hub.base);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/pagerduty/incident.triggered.json");
    let external_id = serde_json::from_slice::<Value>(&std::fs::read(&sample).expect("sample")).expect("json")["event"]
        ["data"]["id"]
        .as_str()
        .expect("an incident id")
        .to_owned();
    let replayed =
        Command::new(BIN).args(["replay", "--url", &hub.base]).arg(&sample).envs(secrets).output().expect("replay");
    let stdout = String::from_utf8_lossy(&replayed.stdout).into_owned();
    assert!(replayed.status.success() && stdout.contains(": 202 "), "{stdout}");

    let alice = token(dir.path(), "alice@example.com", "engineers");
    let http = reqwest::Client::new();
    let url = format!("{}/incidents?source=pagerduty&external_id={external_id}", hub.base);
    // The consumer applies the event after the webhook is answered: wait for it a little.
    let mut page = Value::Null;
    for _ in 0..50 {
        page = http.get(&url).bearer_auth(&alice).send().await.expect("incidents").json().await.expect("json");
        if page["incidents"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let record = &page["incidents"][0];
    assert_eq!((&record["source"], &record["status"]), (&json!("pagerduty"), &json!("triggered")), "{page}");
    assert_eq!(record["service"], json!("payments"), "{page}");
    assert_eq!(record["related_changes"], json!([]));
    let one: Value = http
        .get(format!("{}/incidents/{}", hub.base, record["id"].as_str().expect("id")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("one")
        .json()
        .await
        .expect("json");
    assert_eq!(&one, record);
}

/// The dev secrets the signed GitHub and PagerDuty samples are signed with.
const SIGNING: [(&str, &str); 2] =
    [("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret"), ("CHANGEHUB_PAGERDUTY_SECRET", "pd-dev-secret")];

/// A hub that takes the signed GitHub and PagerDuty samples, with the
/// sample catalog imported and alice's token: what the tagging flows replay into.
struct SignedHub {
    hub: Served,
    alice: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl SignedHub {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = Served::start_with(dir.path(), &SIGNING);
        import_catalog(dir.path(), &hub.base);
        let alice = token(dir.path(), "alice@example.com", "engineers");
        SignedHub { hub, alice, http: reqwest::Client::new(), dir }
    }

    /// `GET {path}` as alice.
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.hub.base);
        self.http.get(url).bearer_auth(&self.alice).send().await.expect("get").json().await.expect("json")
    }

    /// `changehub replay` of one sample of events/.
    fn replay(&self, file: &str) {
        let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
        let out = Command::new(BIN)
            .args(["replay", "--url", &self.hub.base])
            .arg(events.join(file))
            .envs(SIGNING)
            .output()
            .expect("replay");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// The `change_related_incident` lines of the notifications file's feed.
    fn told(&self) -> usize {
        let lines = std::fs::read_to_string(self.dir.path().join("notifications.jsonl")).unwrap_or_default();
        let notices = lines.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok());
        notices
            .filter(|n| {
                n["attributes"]["type"] == json!("change_related_incident") && n["attributes"]["audience"] == "feed"
            })
            .count()
    }

    fn interrupt(self) {
        self.hub.interrupt();
    }
}

/// The change the GitHub `deployment_status` sample makes, in the default tenant.
fn sample_deployment_change() -> changehub::domain::ChangeId {
    changehub::domain::ChangeId::derived(&["default", "github", "acme-corp/checkout-service", "1834567890"])
}

/// The PagerDuty sample incident's record, as listed.
const SAMPLE_INCIDENT: &str = "/incidents?source=pagerduty&external_id=Q2LKX3U8ZP7WNM";

/// The headline flow: a signed GitHub `deployment_status` (success to
/// production, payments) then a signed PagerDuty incident on payments seven
/// minutes later. The incident lists the change, the change lists the
/// incident, and the notifications file has the `change_related_incident` line.
#[tokio::test]
async fn a_deployment_then_an_incident_on_its_service_is_tagged_both_ways_and_told() {
    let hub = SignedHub::start();
    let id = sample_deployment_change();
    hub.replay("github/deployment_status.success.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.get(&format!("/changes/{id}")).await["state"] != json!("completed") {
        assert!(Instant::now() < deadline, "no completed change {id} from the deployment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.replay("pagerduty/incident.triggered.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let page = hub.get(SAMPLE_INCIDENT).await;
        if page["incidents"][0]["change_related"] == json!(true) {
            break page["incidents"][0].clone();
        }
        assert!(Instant::now() < deadline, "the incident was not tagged: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["related_changes"][0]["change_id"], json!(id.to_string()), "{record}");
    let reasons = record["related_changes"][0]["reasons"].as_array().cloned().unwrap_or_default();
    assert!(reasons.contains(&json!("same_service")), "{record}");
    // The incident's record is written before the change's side: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let change = loop {
        let change = hub.get(&format!("/changes/{id}")).await;
        if change["related_incidents"].as_array().is_some_and(|r| !r.is_empty()) || Instant::now() >= deadline {
            break change;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(change["related_incidents"][0]["incident_id"], record["id"], "{change}");
    assert_eq!(change["related_incidents"].as_array().map(Vec::len), Some(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.told() == 0 {
        assert!(Instant::now() < deadline, "no change_related_incident notification");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.interrupt();
}

/// Out of order: the signed PagerDuty incident arrives first, then the
/// GitHub `deployment_status` of the deployment that caused it (seven minutes
/// before the incident, by the sources' own times). The deployment's change
/// events re-check the incident: it is tagged both ways, and the
/// notifications file has one `change_related_incident` line.
#[tokio::test]
async fn an_incident_then_the_deployment_that_caused_it_is_tagged_and_told_once() {
    let hub = SignedHub::start();
    let id = sample_deployment_change();
    hub.replay("pagerduty/incident.triggered.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.get(SAMPLE_INCIDENT).await["incidents"].as_array().is_none_or(Vec::is_empty) {
        assert!(Instant::now() < deadline, "no incident record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hub.get(SAMPLE_INCIDENT).await["incidents"][0]["change_related"], json!(false), "no change yet");

    hub.replay("github/deployment_status.success.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (record, change) = loop {
        let record = hub.get(SAMPLE_INCIDENT).await["incidents"][0].clone();
        let change = hub.get(&format!("/changes/{id}")).await;
        let listed = change["related_incidents"].as_array().is_some_and(|r| !r.is_empty());
        if record["change_related"] == json!(true) && listed && hub.told() > 0 {
            break (record, change);
        }
        assert!(Instant::now() < deadline, "the incident was not tagged: {record} {change}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["related_changes"][0]["change_id"], json!(id.to_string()), "{record}");
    assert_eq!(change["related_incidents"][0]["incident_id"], record["id"], "{change}");
    assert_eq!(change["related_incidents"].as_array().map(Vec::len), Some(1));
    // The change's implementing and completed events both re-check it: told once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.told(), 1);
    hub.interrupt();
}

/// `serve --escalate-every 1s` with a 10s SLA on payments' first level: the
/// reminder (at 5s) and the escalation (at 10s) reach the notifications
/// file, each once, addressed to their audience; `changehub escalate --now`
/// against the stopped hub's database then finds nothing more due yet.
#[tokio::test]
async fn serve_escalates_an_approval_past_its_sla_into_the_notifications_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = std::fs::read_to_string(CATALOG).expect("catalog").replacen("sla: 4h", "sla: 10s", 1);
    let short = dir.path().join("short-sla.yaml");
    std::fs::write(&short, catalog).expect("write catalog");
    let hub = Served::start_args(dir.path(), &[], &["--escalate-every", "1s"]);
    let admin = token(dir.path(), "root@example.com", "changehub-admins");
    let out = Command::new(BIN)
        .args(["catalog", "import"])
        .arg(&short)
        .args(["--url", &hub.base])
        .env("CHANGEHUB_TOKEN", admin)
        .output()
        .expect("catalog import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let id = create_and_submit(&http, &hub.base, &alice).await;
    let path = dir.path().join("notifications.jsonl");
    let notes = |kind: &str| -> Vec<Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|n| n["attributes"]["kind"] == kind && n["attributes"]["audience"] != "feed")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while notes("Approval Escalated").is_empty() {
        assert!(Instant::now() < deadline, "no Approval Escalated line within 30s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    hub.interrupt();
    let reminders = notes("Approval Reminder");
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_eq!(reminders[0]["attributes"]["audience"], "approvers");
    assert_eq!(reminders[0]["attributes"]["notify"], "payments-leads");
    let escalated = notes("Approval Escalated");
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert_eq!(escalated[0]["attributes"]["audience"], "escalate_to");
    assert_eq!(escalated[0]["attributes"]["notify"], "payments-managers");
    assert_eq!(escalated[0]["body"]["change"]["id"], id.as_str());
    let subject = escalated[0]["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("[Approval Escalated]") && subject.ends_with("(to payments-managers)"), "{subject}");

    // The second escalation is due 20s after submission: nothing yet (unless this machine is very slow).
    let out = Command::new(BIN)
        .args(["escalate", "--now", "--db"])
        .arg(dir.path().join("hub.db"))
        .arg("--notifications")
        .arg(&path)
        .output()
        .expect("escalate --now");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text == "0 steps taken, 0 starting-soon reminders and 0 freeze-starting notices sent; 0 due items read\n\
                 0 protection rule requests due\n"
            || text.contains(": escalation 2 (due "),
        "{text}"
    );
}

/// `serve --escalate-every 1s` with a 3s starting-soon lead: a change
/// scheduled to start 6s ahead gets its "Change Starting Soon" notification
/// once, from its lead on, and it says when the change starts.
#[tokio::test]
async fn serve_sends_a_starting_soon_reminder_once_before_a_scheduled_change_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = std::fs::read_to_string(CATALOG).expect("catalog").replacen(
        "  max_backdate: 30d",
        "  max_backdate: 30d\n  starting_soon: 3s",
        1,
    );
    let short = dir.path().join("short-lead.yaml");
    std::fs::write(&short, catalog).expect("write catalog");
    let hub = Served::start_args(dir.path(), &[], &["--escalate-every", "1s"]);
    common::import_catalog_file(dir.path(), &hub.base, &short);
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let carol = token(dir.path(), "carol@example.com", "cab");
    let post = |token: &str, path: &str, body: Value| {
        http.post(format!("{}{path}", hub.base)).bearer_auth(token.to_owned()).json(&body).send()
    };
    let id = create_and_submit(&http, &hub.base, &alice).await;
    post(&pat, &format!("/changes/{id}/decisions"), json!({"decision": "approve"})).await.expect("level 1");
    let approved: Value = post(&carol, &format!("/changes/{id}/decisions"), json!({"decision": "approve"}))
        .await
        .expect("level 2")
        .json()
        .await
        .expect("json");
    let start = chrono::Utc::now() + chrono::Duration::seconds(6);
    let moved: Value = post(
        &carol,
        &format!("/changes/{id}/reschedule"),
        json!({"version": approved["version"], "planned_start": start, "planned_end": start + chrono::Duration::hours(1),
               "reason": "tonight's window"}),
    )
    .await
    .expect("reschedule")
    .json()
    .await
    .expect("json");
    let scheduled =
        post(&alice, &format!("/changes/{id}/transitions"), json!({"to": "scheduled", "version": moved["version"]}))
            .await
            .expect("schedule");
    assert_eq!(scheduled.status(), 200);
    let path = dir.path().join("notifications.jsonl");
    let soon = || -> Vec<Value> {
        let lines = std::fs::read_to_string(&path).unwrap_or_default();
        let notes = lines.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok());
        // The feed's copy: routing also tells the owners, requester and stakeholders.
        notes
            .filter(|n| n["attributes"]["kind"] == "Change Starting Soon" && n["attributes"]["audience"] == "feed")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while soon().is_empty() {
        assert!(Instant::now() < deadline, "no Change Starting Soon line within 30s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = chrono::Utc::now();
    assert!(seen >= start - chrono::Duration::seconds(3), "not before its lead: seen {seen}, start {start}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    hub.interrupt();
    let notes = soon();
    assert_eq!(notes.len(), 1, "once: {notes:?}");
    assert_eq!(notes[0]["body"]["change"]["id"], id.as_str());
    assert_eq!(notes[0]["body"]["change"]["state"], "scheduled");
    let reason = notes[0]["body"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("starts at ") || reason.starts_with("planned to start at "), "{reason}");
}

/// The generic deployment gate through the real binary: staging is recorded
/// only; production waits for approval on a long poll and passes when the
/// change is approved (exit 0), times out while it is pending (2), is
/// refused for a rejected change (1); a usage or connection error is 3.
#[tokio::test]
async fn the_gate_command_waits_for_approval_and_exits_by_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    let http = reqwest::Client::new();
    let base = hub.base.clone();
    import_catalog(dir.path(), &base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let pat = token(dir.path(), "pat@example.com", "payments-leads");
    let carol = token(dir.path(), "carol@example.com", "cab");
    let open = |title: &str| {
        let now = chrono::Utc::now();
        let mut body = sample();
        body["title"] = json!(title);
        body["planned_start"] = json!(now - chrono::Duration::minutes(5));
        body["planned_end"] = json!(now + chrono::Duration::hours(2));
        let (http, base, alice) = (http.clone(), base.clone(), alice.clone());
        async move {
            let created =
                http.post(format!("{base}/changes")).bearer_auth(&alice).json(&body).send().await.expect("create");
            assert_eq!(created.status(), 201);
            let id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
            let submit = json!({"to": "submitted", "version": 1});
            let moved = http
                .post(format!("{base}/changes/{id}/transitions"))
                .bearer_auth(&alice)
                .json(&submit)
                .send()
                .await
                .expect("submit");
            assert_eq!(moved.status(), 200);
            id
        }
    };
    let decide = |who: &str, id: &str, decision: &str| {
        let request = http
            .post(format!("{base}/changes/{id}/decisions"))
            .bearer_auth(who.to_owned())
            .json(&json!({"decision": decision}));
        async move { assert_eq!(request.send().await.expect("decide").status(), 200) }
    };

    let (code, line) = run_gate(&base, &alice, &["--environment", "staging", "--version", "1.4.2"]);
    assert_eq!(code, Some(0), "{line}");
    assert!(line.starts_with("changehub gate: allowed (recorded): "), "{line}");

    let id = open("Roll out payments 1.4.2").await;
    let (code, line) = run_gate(
        &base,
        &alice,
        &["--environment", "production", "--version", "1.4.2", "--change", &id, "--timeout", "2s"],
    );
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("timed out after 2s: pending (not_approved)"), "{line}");

    // Held on a long poll; the approval wakes it.
    let waiting = {
        let (base, alice, id) = (base.clone(), alice.clone(), id.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let args = ["--environment", "production", "--sha", "3f2a9c1d0b7e", "--timeout", "60s", "--json"];
            let out = Command::new(BIN)
                .args(["gate", "--url", &base, "--service", "payments", "--change", &id])
                .args(args)
                .env("CHANGEHUB_TOKEN", &alice)
                .output()
                .expect("changehub gate");
            (out, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    decide(&pat, &id, "approve").await;
    decide(&carol, &id, "approve").await;
    let (out, took) = waiting.join().expect("the waiting gate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.lines().last().unwrap_or_default().starts_with("changehub gate: allowed (allowed): "), "{stderr}");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("--json prints the answer");
    assert_eq!(answer["change"]["id"], json!(id));
    assert!(took < Duration::from_secs(20), "answered when the change was approved, not at the timeout: {took:?}");

    let rejected = open("Roll out payments 1.4.3").await;
    decide(&pat, &rejected, "reject").await;
    let (code, line) =
        run_gate(&base, &alice, &["--environment", "production", "--version", "1.4.3", "--change", &rejected]);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("refused (change_rejected)"), "{line}");

    let (code, line) = run_gate(&base, &alice, &["--environment", "production"]);
    assert_eq!(code, Some(3), "neither --version nor --sha: {line}");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, line) = run_gate(&nowhere, &alice, &["--environment", "production", "--version", "1"]);
    assert_eq!(code, Some(3), "{line}");
    assert!(line.contains("cannot reach the hub"), "{line}");
    hub.interrupt();
}

/// A change to ledger goes through submission, approval and scheduling on
/// the sample catalog: its notifications reach the owners, the approvers of
/// the open level, the requester, the owners of the services that depend on
/// ledger, its stakeholders and the CAB, each once, each with its text
/// (technical, business in the reader's zone, executive) and its filter
/// attributes, next to one feed copy per mutation.
#[tokio::test]
async fn a_changes_notifications_reach_each_audience_with_its_text_and_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start_with(dir.path(), &[("CHANGEHUB_PUBLIC_URL", "https://changes.example.com/")]);
    import_catalog(dir.path(), &hub.base);
    let http = reqwest::Client::new();
    let base = hub.base.clone();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let post = |token: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}")).bearer_auth(token.to_owned()).json(&body).send()
    };
    let mut body = sample();
    body["title"] = json!("Reindex the ledger");
    body["services"] = json!(["ledger"]);
    let created: Value = post(&alice, "/changes", body).await.expect("create").json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let step = |token: String, path: &'static str, body: Value| {
        let request = post(&token, &format!("/changes/{id}/{path}"), body);
        async move {
            let answer = request.await.expect(path);
            assert_eq!(answer.status(), 200, "{path}");
            answer.json::<Value>().await.expect("json")["version"].as_u64().expect("version")
        }
    };
    step(alice.clone(), "transitions", json!({"to": "submitted", "version": 1})).await;
    let lead = token(dir.path(), "lee@example.com", "ledger-leads");
    step(lead, "decisions", json!({"decision": "approve"})).await;
    let security = token(dir.path(), "sam@example.com", "security");
    step(security, "decisions", json!({"decision": "approve"})).await;
    let carol = token(dir.path(), "carol@example.com", "cab");
    let version = step(carol, "decisions", json!({"decision": "approve"})).await;
    step(alice.clone(), "transitions", json!({"to": "scheduled", "version": version})).await;

    let path = dir.path().join("notifications.jsonl");
    let of_type = |t: &str| -> Vec<Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|n| n["attributes"]["type"] == t)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while of_type("change_scheduled").len() < 6 {
        assert!(Instant::now() < deadline, "scheduled: {:?}", of_type("change_scheduled"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.interrupt();

    let submitted = of_type("change_submitted");
    let who: Vec<_> = submitted.iter().map(addressed).collect();
    assert_eq!(who, [("feed", ""), ("approvers", "ledger-leads"), ("owners", "ledger-team")]);
    let approvers = &submitted[1];
    let approve = format!("https://changes.example.com/changes/{id}/decisions");
    assert!(
        approvers["message"]["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l.as_str().is_some_and(|l| l.contains(&approve))),
        "{approvers}"
    );

    // The team lead's approval opened level 2 (security and cab, all of them):
    // its groups are asked once; security's approval leaves it open and asks nobody.
    let requested = of_type("approval_requested");
    let who: Vec<_> = requested.iter().map(addressed).collect();
    assert_eq!(who, [("approvers", "security"), ("approvers", "cab")]);
    let asked = requested[0]["message"]["lines"][0].as_str().unwrap_or_default();
    assert!(
        asked.starts_with("Level 2 is open and waits for your decision: level 2 (security-and-cab of ledger)"),
        "{asked}"
    );

    let scheduled = of_type("change_scheduled");
    let who: Vec<_> = scheduled.iter().map(addressed).collect();
    assert_eq!(
        who,
        [
            ("feed", ""),
            ("owners", "ledger-team"),
            ("requester", "alice@example.com"),
            ("dependents", "payments-team"),
            ("cab", "cab"),
            ("stakeholders", "accounting"),
        ]
    );
    for n in &scheduled {
        let a = &n["attributes"];
        assert_eq!(
            (a["tenant"].as_str(), a["kind"].as_str(), a["change_type"].as_str()),
            (Some("default"), Some("Change Scheduled"), Some("normal")),
            "{n}"
        );
        assert_eq!((a["severity"].as_str(), a["services"].as_str()), (Some("low"), Some("ledger")), "{n}");
        assert_eq!(n["subject"], n["message"]["headline"]);
    }
    let [feed, owners, _, dependents, cab, stakeholders] = scheduled.try_into().expect("six");
    assert_eq!(feed["message"]["headline"], format!("[Change Scheduled] {id}: Reindex the ledger"));
    assert_eq!(owners["message"]["headline"], format!("[Change Scheduled] {id}: Reindex the ledger (to ledger-team)"));
    let link = format!("https://changes.example.com/changes/{id}");
    assert_eq!(owners["message"]["links"][0]["url"], link.as_str());
    assert!(
        owners["message"]["facts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f == &json!({"name": "Window", "value": "2030-12-01 22:00-23:00 UTC"})),
        "{owners}"
    );
    assert_eq!(dependents["attributes"]["service"], "payments");
    assert_eq!(
        dependents["message"]["lines"][0],
        "Your service payments depends on ledger, which changes 2030-12-01 22:00-23:00 UTC."
    );
    assert_eq!(
        stakeholders["message"]["headline"],
        "ledger: Reindex the ledger is scheduled (Sunday 1 December, 17:00-18:00 EST)"
    );
    assert_eq!(stakeholders["message"]["facts"][2], json!({"name": "Reference", "value": id}));
    assert_eq!(
        cab["message"],
        json!({"headline": "Reindex the ledger is scheduled (ledger, Sunday 1 December, 22:00-23:00 GMT)"})
    );
}

/// A notification's `audience` and `notify` attributes (`""` when absent).
fn addressed(n: &Value) -> (&str, &str) {
    (n["attributes"]["audience"].as_str().unwrap_or(""), n["attributes"]["notify"].as_str().unwrap_or(""))
}

/// The README's unauthorized change, through the real binary: a break-glass
/// session opens port 22 on payments' database group outside any change;
/// the drift consumer records one finding naming the person, tells the
/// owners once, and a replayed duplicate changes nothing.
#[tokio::test]
async fn readme_walkthrough_catches_an_unauthorized_change_with_the_person_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    import_catalog(dir.path(), &hub.base);
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.source_identity.json");
    for _ in 0..2 {
        let out = Command::new(BIN)
            .args(["replay", "--url", &hub.base, "--db"])
            .arg(dir.path().join("hub.db"))
            .arg(&sample)
            .output()
            .expect("replay");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let http = reqwest::Client::new();
    let mut findings = Value::Null;
    for _ in 0..100 {
        let page: Value = http
            .get(format!("{}/findings?service=payments&status=open", hub.base))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        if page["findings"].as_array().is_some_and(|f| !f.is_empty()) {
            findings = page["findings"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let hub_base = hub.base.clone();
    let f = &findings[0];
    assert_eq!(f["actor"]["name"], "maria.rossi@acme.example", "{findings}");
    assert_eq!(f["actor"]["principal"], "arn:aws:iam::123456789012:role/ops-break-glass");
    assert_eq!((f["count"].as_u64(), f["severity"].as_str()), (Some(1), Some("critical")), "{f}");
    assert!(f["changes"][0]["what"].as_str().is_some_and(|w| w.contains("tcp 22 from 0.0.0.0/0")), "{f}");
    hub.interrupt();
    let told = std::fs::read_to_string(dir.path().join("notifications.jsonl")).unwrap_or_default();
    let unauthorized: Vec<&str> = told.lines().filter(|l| l.contains("\"unauthorized_change\"")).collect();
    // Routed: the feed, payments' owners and the cab, each told once.
    assert_eq!(unauthorized.len(), 3, "told once to each: {told}");
    let owners: Vec<&&str> = unauthorized.iter().filter(|l| l.contains("\"notify\":\"payments-team\"")).collect();
    assert_eq!(owners.len(), 1, "{told}");
    assert!(owners[0].contains("maria.rossi@acme.example"));
    // The owners' text links the finding under the hub's address.
    let link = format!("{}/findings/{}", hub_base, f["id"].as_str().expect("id"));
    assert!(owners[0].contains(&link), "{link}: {}", owners[0]);
}

/// The `sh` blocks of the README section headed `heading`, in order.
fn readme_blocks(heading: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README");
    let start = readme.find(heading).unwrap_or_else(|| panic!("the README has {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    section.split("```sh\n").skip(1).filter_map(|b| b.split_once("```").map(|(code, _)| code.to_owned())).collect()
}

/// The README's two security-group changes side by side, its commands run
/// as written (bash, curl, sed) against the real binary, after the walk's
/// tokens and its December freeze: the break-glass call replayed at 14:02
/// is one finding naming the person; the same call made now, inside a
/// payments change Pat and Carol approved, finds nothing and is recorded
/// on the change, naming her.
#[tokio::test]
async fn readme_unauthorized_and_authorized_security_group_changes_side_by_side() {
    let blocks = readme_blocks("### Catch an unauthorized change, with the person named");
    let (unauthorized, authorized) = (&blocks[0], &blocks[1]);
    assert!(unauthorized.contains("changehub replay") && authorized.contains("/changes/$ID4/evidence"));
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    import_catalog(dir.path(), &hub.base);
    let tokens = [
        ("ROOT", token(dir.path(), "root@example.com", "changehub-admins")),
        ("ALICE", token(dir.path(), "alice@example.com", "engineers")),
        ("PAT", token(dir.path(), "pat@example.com", "payments-leads")),
        ("CAROL", token(dir.path(), "carol@example.com", "cab")),
    ];
    let http = reqwest::Client::new();
    let freeze = json!({"id": "dec-close", "name": "December close", "services": ["payments"],
        "schedule": {"kind": "one_off", "start": "2030-12-01T00:00:00Z", "end": "2030-12-03T00:00:00Z"}});
    let declared = http.post(format!("{}/freezes", hub.base)).bearer_auth(&tokens[0].1).json(&freeze).send();
    assert_eq!(declared.await.expect("freeze").status(), 201);
    // The newcomer's terminal: the repository's events, the hub's database and notifications here.
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events"), dir.path().join("events"))
        .expect("events");
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let host = hub.base.trim_start_matches("http://").to_owned();
    let run = |block: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(block.replace("localhost:8080", &host))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("CHANGEHUB_URL", &hub.base)
            .env("CHANGEHUB_DB", dir.path().join("hub.db"))
            .envs(tokens.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("bash runs the README's commands (curl, sed and date on the path)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let alice = tokens[1].1.clone();
    let get = |path: String| {
        let (http, alice) = (http.clone(), alice.clone());
        async move {
            let res = http.get(path).bearer_auth(alice).send().await.expect("get");
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.expect("json")
        }
    };
    let open = format!("{}/findings?service=payments&status=open", hub.base);
    // The unauthorized change, then its finding (the consumer is asynchronous: wait for it).
    let shown = run(unauthorized);
    let mut findings = Value::Null;
    for _ in 0..100 {
        findings = get(open.clone()).await["findings"].clone();
        if findings.as_array().is_some_and(|f| !f.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(findings[0]["actor"]["name"], "maria.rossi@acme.example", "{findings}");
    let caught = findings[0]["id"].clone();
    assert!(shown.contains("[Unauthorized Change] maria.rossi@acme.example changed sg-0a1b2c3d4e5f67890"), "{shown}");

    // The authorized one.
    let shown = run(authorized);
    assert!(shown.contains("\"state\":\"approved\""), "{shown}");
    assert!(shown.contains("{\"accepted\":1,\"events\":[\"aws-6d2f8c41-0b7e-4c9a-9e31-7a6b2c4d8e10-0\"]}"), "{shown}");
    let id = shown.lines().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v["state"] == "approved"));
    let id = id.and_then(|c| c["id"].as_str().map(str::to_owned)).expect("the approved change's answer");
    let mut evidence = Value::Null;
    for _ in 0..100 {
        evidence = get(format!("{}/changes/{id}/evidence", hub.base)).await["evidence"].clone();
        if evidence.as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = &evidence[0];
    assert_eq!(
        (e["event_id"].as_str(), e["evidence"].as_str(), e["authorized_by"].as_str()),
        (Some("f7b94c1d-2a3f-4b6e-9c8d-0f1a2b3c4d5e"), Some("api_call"), Some("planned_window")),
        "{evidence}"
    );
    assert_eq!(e["actor"]["name"], "maria.rossi@acme.example");
    assert!(e["what"].as_str().is_some_and(|w| w.contains("groupId=sg-0a1b2c3d4e5f67890")), "{e}");
    let findings = get(open).await["findings"].clone();
    assert_eq!(findings.as_array().map(|f| f.len()), Some(1), "nothing new found: {findings}");
    assert_eq!(findings[0]["id"], caught);
    hub.interrupt();
}

/// `changehub migrate` on a database an older hub left (an approved change
/// with no plannable entry, so drift could not see it): one line for the
/// tenant, the entry written; a second run changes nothing.
#[tokio::test]
async fn migrate_writes_the_plannable_entries_a_database_from_an_older_hub_lacks() {
    use changehub::adapters::{embedded::EmbeddedStore, keys};
    use changehub::ports::{ImplementationReader, MAX_PAGE, ServiceWindowQuery};
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    import_catalog(dir.path(), &hub.base);
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let id = create_and_submit(&http, &hub.base, &alice).await;
    for who in [token(dir.path(), "pat@example.com", "payments-leads"), token(dir.path(), "carol@example.com", "cab")] {
        let url = format!("{}/changes/{id}/decisions", hub.base);
        let decided =
            http.post(url).bearer_auth(who).json(&json!({"decision": "approve"})).send().await.expect("decide");
        assert_eq!(decided.status(), 200);
    }
    hub.interrupt();
    let db = dir.path().join("hub.db");
    let tenant = changehub::domain::TenantId::parse("default").expect("tenant");
    let service = changehub::domain::ServiceName::parse("payments").expect("service");
    let id = changehub::domain::ChangeId::parse(&id).expect("id");
    let start = chrono::DateTime::parse_from_rfc3339("2030-12-01T22:00:00Z").expect("start").to_utc();
    let window = ServiceWindowQuery {
        tenant: tenant.clone(),
        service: service.clone(),
        from: start,
        to: start,
        limit: MAX_PAGE,
        after: None,
    };
    let plannable = |store: EmbeddedStore| {
        let window = window.clone();
        async move { store.plannable(&window).await.expect("plannable").items.into_iter().map(|c| c.id).collect::<Vec<_>>() }
    };
    {
        let store = EmbeddedStore::open(&db).expect("open");
        store.delete_raw(keys::plannable_pk(&tenant, &service), keys::service_sk(start, &id)).await.expect("delete");
        assert!(plannable(store).await.is_empty(), "as an older hub left it");
    }
    for indexed in [1, 1] {
        let out = Command::new(BIN).args(["migrate", "--db"]).arg(&db).output().expect("migrate");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said.trim(), format!("default: 1 change read, {indexed} indexed (plannable index)"));
    }
    assert_eq!(plannable(EmbeddedStore::open(&db).expect("open")).await, [id]);
}

/// The README's tool example, exactly as a newcomer sends it: a Terraform
/// apply's `Configuration Changed` posted to `/events` with an admin's
/// token. The drift consumer opens a finding naming the person the tool
/// reported and tells the owners. Prints the local latency figure of
/// ARCHITECTURE.md ("Latency"): from `/events` answering to the
/// notification line in the file, which must be under a second.
#[tokio::test]
async fn readme_tool_configuration_change_is_judged_and_told_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Served::start(dir.path());
    import_catalog(dir.path(), &hub.base);
    let root = token(dir.path(), "root@example.com", "changehub-admins");
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/tools/terraform.configuration_changed.json"),
    )
    .expect("sample");
    let http = reqwest::Client::new();
    let sent = Instant::now();
    let answer = http
        .post(format!("{}/events", hub.base))
        .bearer_auth(&root)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    let answered = Instant::now();
    let status = answer.status();
    let text = answer.text().await.expect("body");
    assert_eq!(status, 202, "{text}");
    let accepted: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(accepted["events"], json!(["aws-tf-run-7Qk2mZ9xWbLr3NpA-0-0"]), "the README's answer");
    let notifications = dir.path().join("notifications.jsonl");
    let told = loop {
        let lines = std::fs::read_to_string(&notifications).unwrap_or_default();
        if let Some(line) = lines.lines().find(|l| l.contains("\"unauthorized_change\"")) {
            break (answered.elapsed(), line.to_owned());
        }
        assert!(answered.elapsed() < Duration::from_secs(10), "not told: {lines}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "local latency: /events answered in {:?}; the notification was written {:?} after the answer",
        answered - sent,
        told.0
    );
    assert!(told.0 < Duration::from_secs(1), "{:?}", told.0);
    assert!(told.1.contains("dev.lee@acme.example"), "{}", told.1);
    let page: Value = http
        .get(format!("{}/findings?service=payments", hub.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let f = &page["findings"][0];
    assert_eq!(
        (f["actor"]["name"].as_str(), f["actor"]["kind"].as_str()),
        (Some("dev.lee@acme.example"), Some("Reported"))
    );
    assert_eq!(f["changes"][0]["what"], "AWS::EC2::SecurityGroup sg-0a1b2c3d4e5f67890 UPDATE: ingress", "{f}");
    hub.interrupt();
}

/// A failed deployment writes its own post-mortem: the signed GitHub
/// `deployment_status` failure sample (production, payments) through the
/// real binary leaves its change `failed` with a draft naming the sha, the
/// pull request, who deployed, the failing job, its log and the error; the
/// PagerDuty incident that follows joins the draft, and the cab's review
/// needs nothing but the version.
#[tokio::test]
async fn a_failed_deployment_leaves_its_change_failed_with_a_postmortem_draft_the_review_starts_from() {
    let hub = SignedHub::start();
    hub.replay("github/deployment_status.failure.json");
    hub.replay("pagerduty/incident.triggered.json");
    let path = format!("/changes/{}", sample_deployment_change());
    let deadline = Instant::now() + Duration::from_secs(10);
    let change = loop {
        let change = hub.get(&path).await;
        if change["postmortem"]["incidents"].as_array().is_some_and(|i| !i.is_empty()) {
            break change;
        }
        assert!(Instant::now() < deadline, "no post-mortem with the incident: {change}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(change["state"], "failed");
    let pm = &change["postmortem"];
    assert_eq!(pm["outcome"], "failed");
    assert_eq!(pm["deployed"]["sha"], "64db262264ce70c5b2b5b871318525461ab8eb77");
    assert_eq!((&pm["deployed"]["pull_request"], &pm["by"]), (&json!(418), &json!("raj-acme")));
    assert_eq!(pm["failing_job"], "deploy-production");
    assert_eq!(pm["log_url"], "https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210");
    assert_eq!(pm["error"], "Deployment failed: helm upgrade timed out waiting for rollout");
    assert!(change["review"]["due_at"].is_string(), "{change}");

    let carol = token(hub.dir.path(), "carol@example.com", "cab");
    let reviewed: Value = hub
        .http
        .post(format!("{}{path}/review", hub.hub.base))
        .bearer_auth(&carol)
        .json(&json!({"version": change["version"]}))
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("json");
    let note = reviewed["review"]["done"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("failing job deploy-production") && note.contains("incidents"), "{reviewed}");
    hub.interrupt();
}

/// The merge gate through the real binary: a signed `pull_request` webhook
/// (the sample, its title naming a change of payments) gets a pending
/// `changehub/change` status on its head sha from the fake GitHub API, with
/// the hub's token; approving the change flips it to success through the
/// reverse index (the change events on the local bus), without another webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_pull_request_gets_a_status_that_flips_when_its_change_is_approved() {
    let forge = changehub_tests::forge::FakeForge::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = merge_gate_env(&forge, "30s");
    let hub = Served::start_with(dir.path(), &pairs(&env));
    import_gated_catalog(dir.path(), &hub.base);
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let id = create_and_submit(&http, &hub.base, &alice).await;
    let head = replay_pull_request(dir.path(), &hub.base, &env, &id);

    let first = forge_calls(&forge, "/statuses/", 1).await;
    assert_eq!(first[0].path, format!("/repos/acme-corp/checkout-service/statuses/{head}"));
    assert_eq!(first[0].auth.as_deref(), Some("Bearer ghp_merge_gate"));
    assert_eq!((&first[0].body["state"], &first[0].body["context"]), (&json!("pending"), &json!("changehub/change")));
    assert_eq!(first[0].body["target_url"], format!("https://changes.example.com/changes/{id}"));

    approve(dir.path(), &http, &hub.base, &id).await;
    let all = forge_calls(&forge, "/statuses/", 2).await;
    assert_eq!(all.last().map(|c| c.body["state"].clone()), Some(json!("success")), "{all:?}");
    hub.interrupt();
}

/// A status GitHub would not take (502 to every attempt of the consumer)
/// becomes a dead letter, shown in `GET /health`, and is redriven: after its
/// first wait (`CHANGEHUB_REDRIVE_MIN`), and after a restart (the letters
/// are files that outlive the process), until GitHub takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_that_could_not_be_delivered_is_redriven_later_and_after_a_restart() {
    // The hub's forge client tries 4 times, its consumer 3 times.
    const EVERY_ATTEMPT: usize = 12;
    let forge = changehub_tests::forge::FakeForge::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = merge_gate_env(&forge, "2s");
    let hub = Served::start_with(dir.path(), &pairs(&env));
    import_gated_catalog(dir.path(), &hub.base);
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let id = create_and_submit(&http, &hub.base, &alice).await;
    forge.fail_next(std::iter::repeat_n(changehub_tests::forge::answer(502), EVERY_ATTEMPT));
    replay_pull_request(dir.path(), &hub.base, &env, &id);

    let letters = dead_letters(&http, &hub.base, |d| d["waiting"] == 1).await;
    assert_eq!(letters["oldest_consumer"], "merge-gate", "{letters}");
    assert!(letters["oldest_last_error"].as_str().is_some_and(|e| e.contains("502")), "{letters}");
    let all = forge_calls(&forge, "/statuses/", EVERY_ATTEMPT + 1).await;
    assert_eq!(all.last().map(|c| c.body["state"].clone()), Some(json!("pending")), "redriven: {all:?}");
    dead_letters(&http, &hub.base, |d| d["waiting"] == 0 && d["exhausted"] == 0).await;
    hub.interrupt();

    // A letter waiting an hour outlives the hub; the next start redrives it at once.
    let env = merge_gate_env(&forge, "1h");
    let hub = Served::start_with(dir.path(), &pairs(&env));
    forge.forget();
    forge.fail_next(std::iter::repeat_n(changehub_tests::forge::answer(502), EVERY_ATTEMPT));
    approve(dir.path(), &http, &hub.base, &id).await;
    dead_letters(&http, &hub.base, |d| d["waiting"] == 1).await;
    let kept = std::fs::read_dir(dir.path().join("dead-letters")).expect("the letters' directory").count();
    assert_eq!(kept, 1);
    hub.interrupt();
    let hub = Served::start_with(dir.path(), &pairs(&env));
    let all = forge_calls(&forge, "/statuses/", EVERY_ATTEMPT + 1).await;
    assert_eq!(all.last().map(|c| c.body["state"].clone()), Some(json!("success")), "{all:?}");
    dead_letters(&http, &hub.base, |d| d["waiting"] == 0).await;
    hub.interrupt();
}

/// `GET /health`'s `dead_letters`, once `until` holds for it (within 30 s).
async fn dead_letters(http: &reqwest::Client, base: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health: Value =
            http.get(format!("{base}/health")).send().await.expect("health").json().await.expect("json");
        if until(&health["dead_letters"]) {
            return health["dead_letters"].clone();
        }
        assert!(Instant::now() < deadline, "dead letters never as expected: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rollback automation through the real binary: payments' catalog entry
/// names a rollback workflow; a change planned with an automated rollback
/// is approved and scheduled; a signed `deployment_status` failure naming
/// it (after an earlier successful production deployment of another sha)
/// fails it, and the hub dispatches the workflow on the fake GitHub API,
/// once, with the sha that ran before; the change's post-mortem draft says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_production_deployment_dispatches_the_changes_rollback_workflow() {
    let forge = changehub_tests::forge::FakeForge::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret"),
        ("CHANGEHUB_GITHUB_TOKEN", "ghp_rollback"),
        ("CHANGEHUB_GITHUB_API_URL", forge.url.as_str()),
    ];
    let hub = Served::start_with(dir.path(), &env);
    let rollback = "    rollback:\n      github:\n        repository: acme-corp/checkout-service\n        workflow: rollback.yml\n        \
                    ref: main\n        inputs: {sha: \"{sha}\", change: \"{change}\"}\n";
    common::import_catalog_with_payments(dir.path(), &hub.base, rollback);

    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let mut body = sample();
    body["rollback_plan"] = json!({"automated": true});
    let created =
        http.post(format!("{}/changes", hub.base)).bearer_auth(&alice).json(&body).send().await.expect("create");
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let mut version = 1;
    let step = |who: String, path: String, body: Value| {
        let (http, base) = (http.clone(), hub.base.clone());
        async move {
            let answer = http.post(format!("{base}{path}")).bearer_auth(&who).json(&body).send().await.expect("post");
            assert_eq!(answer.status(), 200, "{path}");
            answer.json::<Value>().await.expect("json")["version"].as_u64().expect("version")
        }
    };
    version =
        step(alice.clone(), format!("/changes/{id}/transitions"), json!({"to": "submitted", "version": version})).await;
    for (user, group) in [("pat@example.com", "payments-leads"), ("carol@example.com", "cab")] {
        let approver = token(dir.path(), user, group);
        version = step(approver, format!("/changes/{id}/decisions"), json!({"decision": "approve"})).await;
    }
    step(alice.clone(), format!("/changes/{id}/transitions"), json!({"to": "scheduled", "version": version})).await;

    // What ran in production before: another sha, deployed successfully at 09:00.
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/github");
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(events.join(name)).expect("sample")).expect("json")
    };
    let last_good = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
    let mut earlier = read("deployment_status.success.json");
    earlier["deployment"]["id"] = json!(1834500000);
    earlier["deployment"]["sha"] = json!(last_good);
    earlier["deployment_status"]["created_at"] = json!("2026-09-14T09:00:00Z");
    earlier["deployment_status"]["updated_at"] = json!("2026-09-14T09:00:00Z");
    let mut failed = read("deployment_status.failure.json");
    failed["deployment_status"]["description"] = json!(format!("Deployment of {id} failed: helm upgrade timed out"));
    failed["deployment"]["description"] = json!(format!("Deploy {id}"));
    let replay = |name: &str, payload: &Value| {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec(payload).expect("json")).expect("write");
        let out =
            Command::new(BIN).args(["replay", "--source", "github", "--url", &hub.base]).arg(&file).envs(env).output();
        let out = out.expect("replay");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    replay("deployment_status.earlier.json", &earlier);
    let path = format!("{}/changes/{id}", hub.base);
    replay("deployment_status.failed.json", &failed);

    let deadline = Instant::now() + Duration::from_secs(15);
    let change = loop {
        let change: Value = http.get(&path).bearer_auth(&alice).send().await.expect("get").json().await.expect("json");
        if change["postmortem"]["automated_rollback"].is_object() {
            break change;
        }
        assert!(Instant::now() < deadline, "no automated rollback recorded: {change}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(change["state"], "failed");
    assert_eq!(change["postmortem"]["automated_rollback"]["dispatched"], true, "{change}");
    let calls = forge.calls_to("/dispatches");
    assert_eq!(calls.len(), 1, "once: {calls:?}");
    assert_eq!(calls[0].path, "/repos/acme-corp/checkout-service/actions/workflows/rollback.yml/dispatches");
    assert_eq!(calls[0].auth.as_deref(), Some("Bearer ghp_rollback"));
    assert_eq!(calls[0].body, json!({"ref": "main", "inputs": {"sha": last_good, "change": id}}));
    hub.interrupt();
}

/// A signed GitHub `deployment_protection_rule` (the sample, its ref naming
/// a submitted change of payments) is kept: GitHub gets a status report
/// saying what it waits for, posted with the App installation's token to the
/// fake GitHub API. Approving the change answers it `approved`, naming the
/// change, through the change's waiting set (the change events on the local
/// bus), without another webhook and without polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_protection_rule_request_is_kept_and_approved_when_its_change_is() {
    use changehub_tests::forge::FakeForge;
    let forge = FakeForge::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = common::github_app_env(&forge);
    let env = pairs(&env);
    let hub = Served::start_with(dir.path(), &env);
    import_catalog(dir.path(), &hub.base);
    let http = reqwest::Client::new();
    let alice = token(dir.path(), "alice@example.com", "engineers");
    let now = chrono::Utc::now();
    let mut change = sample();
    change["planned_start"] = json!(now - chrono::Duration::minutes(5));
    change["planned_end"] = json!(now + chrono::Duration::hours(2));
    let created = http.post(format!("{}/changes", hub.base)).bearer_auth(&alice).json(&change).send().await;
    let created = created.expect("create");
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let submit = json!({"to": "submitted", "version": 1});
    let moved = http.post(format!("{}/changes/{id}/transitions", hub.base)).bearer_auth(&alice).json(&submit);
    assert_eq!(moved.send().await.expect("submit").status(), 200);

    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/github/deployment_protection_rule.requested.json");
    let mut request: Value = serde_json::from_slice(&std::fs::read(&sample).expect("sample")).expect("json");
    request["ref"] = json!(format!("refs/heads/chg/{id}"));
    // Asked now: GitHub's 30 days run from the deployment's time (the sample's is long past).
    let asked = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    request["deployment"]["created_at"] = asked.clone();
    request["deployment"]["updated_at"] = asked;
    let file = dir.path().join("deployment_protection_rule.requested.json");
    std::fs::write(&file, serde_json::to_vec(&request).expect("json")).expect("write");
    let replay = ["replay", "--source", "github", "--url", &hub.base];
    let out = Command::new(BIN).args(replay).arg(&file).envs(env.iter().copied()).output().expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let path = "/repos/acme-corp/checkout-service/actions/runs/10987654321/deployment_protection_rule";
    let first = forge_calls(&forge, path, 1).await;
    assert_eq!(first[0].path, path);
    assert_eq!(first[0].auth.as_deref(), Some("Bearer ghs_51234567_1"), "the installation's token");
    assert_eq!(first[0].body.get("state"), None, "a status report, no answer yet: {first:?}");
    assert_eq!(first[0].body["environment_name"], json!("production"));

    for (user, group) in [("pat@example.com", "payments-leads"), ("carol@example.com", "cab")] {
        let approver = token(dir.path(), user, group);
        let decided = http
            .post(format!("{}/changes/{id}/decisions", hub.base))
            .bearer_auth(&approver)
            .json(&json!({"decision": "approve"}))
            .send()
            .await
            .expect("decide");
        assert_eq!(decided.status(), 200, "{user}");
    }
    let all = forge_calls(&forge, path, 2).await;
    let answer = &all[1];
    assert_eq!((answer.path.as_str(), &answer.body["state"]), (path, &json!("approved")), "{all:?}");
    assert!(answer.body["comment"].as_str().unwrap_or_default().contains(&id), "{all:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(forge.protection_answers().len(), 1, "answered once: {:?}", forge.callbacks());
    hub.interrupt();
}
