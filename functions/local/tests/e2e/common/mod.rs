//! What the real-binary tests share: a `changehub serve` process, tokens
//! minted against its database, a catalog imported into it.

// Each suite uses its part.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_changehub");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    pub fn start(dir: &Path) -> Served {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Served {
        Self::start_args(dir, env, &[])
    }

    pub fn start_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Served {
        Self::spawn(dir, env, args, None)
    }

    /// The hub with its log (at `info`) written to the file `log`, as when
    /// its output is redirected to a file.
    pub fn start_logged(dir: &Path, env: &[(&str, &str)], log: &Path) -> Served {
        Self::spawn(dir, env, &[], Some(log))
    }

    fn spawn(dir: &Path, env: &[(&str, &str)], args: &[&str], log: Option<&Path>) -> Served {
        let port = free_port();
        // The log goes to stdout.
        let (level, stdout) = match log {
            Some(path) => ("info", Stdio::from(std::fs::File::create(path).expect("log file"))),
            None => ("warn", Stdio::null()),
        };
        let child = Command::new(BIN)
            .env("RUST_LOG", level)
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .args(["serve", "--port", &port.to_string()])
            .args(args)
            .arg("--db")
            .arg(dir.join("hub.db"))
            .arg("--notifications")
            .arg(dir.join("notifications.jsonl"))
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start changehub serve");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "changehub serve did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Served { child, base }
    }

    /// Ctrl-C, as a person would press it; the hub must exit cleanly.
    pub fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "changehub serve exited with {status} on Ctrl-C");
                return;
            }
            assert!(Instant::now() < deadline, "changehub serve did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `changehub token`, as the README runs it, against the hub's database.
pub fn token(dir: &Path, user: &str, groups: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--user", user, "--groups", groups, "--tenant", "default", "--db"])
        .arg(dir.join("hub.db"))
        .output()
        .expect("changehub token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `changehub catalog import FILE`, as an admin.
pub fn import_catalog_file(dir: &Path, base: &str, file: &Path) {
    let admin = token(dir, "root@example.com", "changehub-admins");
    let out = Command::new(BIN)
        .args(["catalog", "import"])
        .arg(file)
        .args(["--url", base])
        .env("CHANGEHUB_TOKEN", admin)
        .output()
        .expect("catalog import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported"), "{}", String::from_utf8_lossy(&out.stdout));
}

pub const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/catalog/acme.yaml");

/// `changehub catalog import` of the sample catalog, as an admin.
pub fn import_catalog(dir: &Path, base: &str) {
    import_catalog_file(dir, base, Path::new(CATALOG));
}

/// Creates the sample change as `alice` (a token) and submits it; its id.
pub async fn create_and_submit(http: &reqwest::Client, base: &str, alice: &str) -> String {
    let created = http.post(format!("{base}/changes")).bearer_auth(alice).json(&sample()).send().await.expect("create");
    assert_eq!(created.status(), 201);
    let change: Value = created.json().await.expect("json");
    let id = change["id"].as_str().expect("id").to_owned();
    let moved = http
        .post(format!("{base}/changes/{id}/transitions"))
        .bearer_auth(alice)
        .json(&json!({"to": "submitted", "version": 1}))
        .send()
        .await
        .expect("transition");
    assert_eq!(moved.status(), 200);
    id
}

pub fn sample() -> Value {
    serde_json::from_str(include_str!("../../../../../events/api/new-change.json")).expect("events/api/new-change.json")
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hub's injected clock: the file `serve --clock-file` (and
/// `escalate --now --clock-file`) read the time from, rewritten whole (a
/// rename) so a reader never sees half an instant.
pub struct TestClock {
    pub path: std::path::PathBuf,
    pub start: chrono::DateTime<chrono::Utc>,
}

impl TestClock {
    /// A clock file in `dir` reading `start`.
    pub fn at(dir: &Path, start: chrono::DateTime<chrono::Utc>) -> TestClock {
        let clock = TestClock { path: dir.join("clock"), start };
        clock.set(start);
        clock
    }

    pub fn set(&self, at: chrono::DateTime<chrono::Utc>) {
        let next = self.path.with_extension("next");
        std::fs::write(&next, at.to_rfc3339()).expect("write the clock file");
        std::fs::rename(&next, &self.path).expect("move the clock file");
    }

    /// Sets the clock `secs` seconds after its start.
    pub fn advance_to(&self, secs: i64) {
        self.set(self.start + chrono::Duration::seconds(secs));
    }
}

/// The notifications file's lines.
pub fn notifications(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (polling, at most 20 s) until `enough` holds of the notifications
/// file's lines, and answers them.
pub fn wait_for_notifications(
    dir: &Path,
    what: &str,
    enough: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = notifications(dir);
        if enough(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "{what}: not in the notifications file within 20s: {lines:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A sample of `events/`, by its path there (`github/pull_request.opened.json`).
pub fn event_sample(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(path);
    serde_json::from_slice(&std::fs::read(&file).expect("the sample")).expect("the sample's JSON")
}

/// `changehub replay --source SOURCE` of `payload`, written to `dir/name`
/// first, signed with the secrets in `env`; it must be taken.
pub fn replay_payload(dir: &Path, base: &str, env: &[(&str, &str)], source: &str, name: &str, payload: &Value) {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec(payload).expect("json")).expect("write the payload");
    let out = Command::new(BIN)
        .args(["replay", "--source", source, "--url", base])
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .expect("changehub replay");
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The sample catalog with `yaml` (keys of a service entry, indented four
/// spaces) added to payments' entry (nothing: the sample as it is), imported as an admin.
pub fn import_catalog_with_payments(dir: &Path, base: &str, yaml: &str) {
    if yaml.is_empty() {
        return import_catalog(dir, base);
    }
    let catalog = std::fs::read_to_string(CATALOG).expect("catalog");
    let anchor = "    mappings:\n      repositories: [acme-corp/checkout-service";
    let edited = catalog.replacen(anchor, &format!("{yaml}{anchor}"), 1);
    assert_ne!(edited, catalog, "the sample catalog's payments mappings moved");
    let file = dir.join("catalog.edited.yaml");
    std::fs::write(&file, edited).expect("write");
    import_catalog_file(dir, base, &file);
}

/// The merge gate of the sample catalog's payments: merges into main,
/// exempting requests labelled `docs`.
pub const PAYMENTS_MERGE_GATE: &str = "    merge_gate:\n      branches: [main]\n      exempt_labels: [docs]\n";

/// The hub's environment for the merge gate on `forge` (a token), redriving dead letters after `redrive_min`.
pub fn merge_gate_env(forge: &changehub_tests::forge::FakeForge, redrive_min: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret".into()),
        ("CHANGEHUB_GITHUB_TOKEN", "ghp_merge_gate".into()),
        ("CHANGEHUB_GITHUB_API_URL", forge.url.clone()),
        ("CHANGEHUB_PUBLIC_URL", "https://changes.example.com".into()),
        ("CHANGEHUB_REDRIVE_MIN", redrive_min.into()),
    ]
}

/// `env` as the pairs `Served` and `Command::envs` take.
pub fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// The sample catalog, its payments service gating merges into main ([`PAYMENTS_MERGE_GATE`]).
pub fn import_gated_catalog(dir: &Path, base: &str) {
    import_catalog_with_payments(dir, base, PAYMENTS_MERGE_GATE);
}

/// The sample pull request, its title naming change `id` (or none), its body none.
pub fn pull_request(id: Option<&str>) -> Value {
    let mut pr = event_sample("github/pull_request.opened.json");
    let title = "Raise checkout-service DB connection pool";
    pr["pull_request"]["title"] = json!(id.map_or_else(|| title.to_owned(), |id| format!("{id}: {title}")));
    // The sample's body names a change of its own.
    pr["pull_request"]["body"] = json!("Raise `DB_POOL_MAX` from 20 to 50 in production.");
    pr
}

/// Replays the sample pull request, its title naming change `id`, signed; its head sha.
pub fn replay_pull_request(dir: &Path, base: &str, env: &[(&'static str, String)], id: &str) -> String {
    let pr = pull_request(Some(id));
    replay_payload(dir, base, &pairs(env), "github", "pull_request.opened.json", &pr);
    pr["pull_request"]["head"]["sha"].as_str().expect("head sha").to_owned()
}

/// `decision` (`approve`, `reject`) on change `id` as `user` of `group`.
pub async fn decide(
    dir: &Path,
    http: &reqwest::Client,
    base: &str,
    id: &str,
    (user, group): (&str, &str),
    decision: &str,
) {
    decide_with(dir, http, base, id, (user, group), json!({"decision": decision})).await;
}

/// `user` of `group` posts the decision `body` (`decision`, and a `comment`) on the change.
pub async fn decide_with(
    dir: &Path,
    http: &reqwest::Client,
    base: &str,
    id: &str,
    (user, group): (&str, &str),
    body: serde_json::Value,
) {
    let who = token(dir, user, group);
    let decided =
        http.post(format!("{base}/changes/{id}/decisions")).bearer_auth(&who).json(&body).send().await.expect("decide");
    assert_eq!(decided.status(), 200, "{body} by {user}");
}

/// Both approval levels of the sample change approve it.
pub async fn approve(dir: &Path, http: &reqwest::Client, base: &str, id: &str) {
    for approver in [("pat@example.com", "payments-leads"), ("carol@example.com", "cab")] {
        decide(dir, http, base, id, approver, "approve").await;
    }
}

/// The fake forge's calls to paths containing `part`, once there are at
/// least `n` of them (within 30 seconds: the hub calls it from a consumer).
pub async fn forge_calls(
    forge: &changehub_tests::forge::FakeForge,
    part: &str,
    n: usize,
) -> Vec<changehub_tests::forge::Call> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let calls = forge.calls_to(part);
        if calls.len() >= n {
            return calls;
        }
        assert!(Instant::now() < deadline, "{n} calls to {part} expected, got {:?}", forge.calls());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `changehub gate --service payments` with `args` against `base`, as a
/// pipeline step runs it: its exit status and the last line of stderr.
pub fn run_gate(base: &str, token: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["gate", "--url", base, "--service", "payments"])
        .args(args)
        .env("CHANGEHUB_TOKEN", token)
        .output()
        .expect("changehub gate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr.lines().last().unwrap_or_default().to_owned())
}

/// The hub's environment for GitHub as the test App (its id and key file) on `forge`.
pub fn github_app_env(forge: &changehub_tests::forge::FakeForge) -> Vec<(&'static str, String)> {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/keys/github-app.test.pem");
    vec![
        ("CHANGEHUB_GITHUB_SECRET", "gh-dev-secret".into()),
        ("CHANGEHUB_GITHUB_APP_ID", changehub_tests::forge::APP_ID.into()),
        ("CHANGEHUB_GITHUB_APP_KEY_FILE", key.to_str().expect("a UTF-8 path").into()),
        ("CHANGEHUB_GITHUB_API_URL", forge.url.clone()),
    ]
}
