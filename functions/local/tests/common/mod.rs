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
