//! What the real-binary tests share: a `changehub serve` process, tokens
//! minted against its database, a catalog imported into it.

// Each test binary uses its part.
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
    serde_json::from_str(include_str!("../../../../events/api/new-change.json")).expect("events/api/new-change.json")
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
