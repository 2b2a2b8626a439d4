//! A fake GitHub and GitLab API on a loopback port, for the merge gate and
//! the deployment protection rule: it records every request exactly (method,
//! path with query, authorization, body), answers as the real APIs do
//! (installation tokens for a JWT signed by the test App's key, statuses, a
//! request's files, GitLab's external status check responses, protection
//! rule callbacks), and can be told to fail the next requests (502, 429
//! with `Retry-After`).
//!
//! Like GitLab, it keeps each commit status's state per (project, sha,
//! name) and refuses `pending` on a status already pending with GitLab's
//! own 400 ([`GITLAB_ALREADY_PENDING`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub use crate::scripted::{Answer, answer};

/// The test GitHub App's id, and its private key (PKCS#1 PEM: test only).
pub const APP_ID: &str = "424242";
pub const APP_KEY: &str = include_str!("../keys/github-app.test.pem");
const APP_PUBLIC_KEY: &[u8] = include_bytes!("../keys/github-app.test.pub.der");
/// The installation the fake answers for a repository that webhooks did not name one for.
pub const LOOKED_UP_INSTALLATION: u64 = 99;

/// GitLab's answer (400) to a commit status set `pending` when it already is
/// (GitLab finds the pending status and cannot `enqueue` it again).
pub const GITLAB_ALREADY_PENDING: &str = r#"{"message":"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")"}"#;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    /// The path and query, as sent (`/repos/acme/pay/statuses/abc`).
    pub path: String,
    /// `Authorization` (GitHub) or `PRIVATE-TOKEN` (GitLab), as sent.
    pub auth: Option<String>,
    pub body: Value,
}

impl Call {
    /// Whether it was authorized with an App JWT (rather than a token).
    pub fn by_jwt(&self) -> bool {
        self.auth.as_deref().is_some_and(|a| a.starts_with("Bearer ey"))
    }
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    fail_next: VecDeque<Answer>,
    /// How long an issued installation token lives.
    token_ttl: Option<Duration>,
    issued: u32,
    /// The files every request changes.
    files: Vec<String>,
    /// GitLab commit statuses: (project, sha, name) → state.
    gitlab_states: std::collections::HashMap<(String, String, String), String>,
}

/// The fake: its base URL (GitHub's API root; GitLab's root is the same
/// server, under `/api/v4`) and what it received.
#[derive(Clone)]
pub struct FakeForge {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeForge {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner { files: vec!["src/pool.rs".into()], ..Inner::default() }));
        let app = Router::new().fallback(answer_call).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{addr}"), inner }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().expect("lock").calls.clone()
    }

    /// The calls whose path contains `part`.
    pub fn calls_to(&self, part: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.path.contains(part)).collect()
    }

    /// The commit statuses set, in order: (path, state, description).
    pub fn statuses(&self) -> Vec<(String, String, String)> {
        self.calls_to("/statuses/")
            .into_iter()
            .map(|c| {
                let text = |k: &str| c.body[k].as_str().unwrap_or_default().to_owned();
                (c.path.clone(), text("state"), text("description"))
            })
            .collect()
    }

    /// The deployment protection rule callbacks posted, in order: answers and status reports.
    pub fn callbacks(&self) -> Vec<Call> {
        self.calls_to("/deployment_protection_rule")
    }

    /// The answers (`state` set) posted to protection rule callbacks: (path, state, comment).
    pub fn protection_answers(&self) -> Vec<(String, String, String)> {
        self.callbacks()
            .into_iter()
            .filter(|c| c.body.get("state").is_some())
            .map(|c| {
                let text = |k: &str| c.body[k].as_str().unwrap_or_default().to_owned();
                (c.path.clone(), text("state"), text("comment"))
            })
            .collect()
    }

    pub fn forget(&self) {
        self.inner.lock().expect("lock").calls.clear();
    }

    /// The next requests get these answers, whatever they ask.
    pub fn fail_next(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().expect("lock").fail_next.extend(answers);
    }

    /// Installation tokens issued from now on live `ttl` (default an hour).
    pub fn token_ttl(&self, ttl: Duration) {
        self.inner.lock().expect("lock").token_ttl = Some(ttl);
    }

    /// Every request changes `files` from now on.
    pub fn files(&self, files: &[&str]) {
        self.inner.lock().expect("lock").files = files.iter().map(|f| f.to_string()).collect();
    }

    /// Installation tokens issued so far.
    pub fn issued(&self) -> u32 {
        self.inner.lock().expect("lock").issued
    }
}

/// The App id a JWT was signed for, if it verifies with the test App's public key.
pub fn verified_app(jwt: &str) -> Option<String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let key = DecodingKey::from_rsa_der(APP_PUBLIC_KEY);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation).ok()?.claims;
    let (iat, exp) = (claims["iat"].as_i64()?, claims["exp"].as_i64()?);
    // GitHub refuses a JWT valid for more than 10 minutes.
    (exp - iat <= 600).then(|| claims["iss"].as_str().map(str::to_owned)).flatten()
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn answer_call(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let auth = header("authorization").or_else(|| header("private-token"));
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut inner = inner.lock().expect("lock");
    inner.calls.push(Call { method: method.clone(), path: path.clone(), auth: auth.clone(), body });
    if let Some(next) = inner.fail_next.pop_front() {
        let mut response = (next.status, "{\"message\":\"scripted\"}").into_response();
        if let Some(after) = next.retry_after {
            response.headers_mut().insert("retry-after", after.parse().expect("header"));
        }
        return response;
    }
    let jwt_app = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).and_then(verified_app);
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["app", "installations", id, "access_tokens"]) => {
            if jwt_app.as_deref() != Some(APP_ID) {
                return json_answer(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "A JSON web token could not be decoded"}),
                );
            }
            inner.issued += 1;
            let ttl = inner.token_ttl.unwrap_or(Duration::hours(1));
            let token = format!("ghs_{id}_{}", inner.issued);
            json_answer(StatusCode::CREATED, json!({"token": token, "expires_at": Utc::now() + ttl}))
        }
        (Method::GET, ["repos", _, _, "installation"]) => match jwt_app {
            Some(_) => json_answer(StatusCode::OK, json!({"id": LOOKED_UP_INSTALLATION})),
            None => json_answer(StatusCode::UNAUTHORIZED, json!({"message": "needs a JWT"})),
        },
        (_, ["repos", _, _, ..]) | (_, ["api", "v4", ..]) if auth.is_none() || jwt_app.is_some() => {
            json_answer(StatusCode::UNAUTHORIZED, json!({"message": "Bad credentials"}))
        }
        (Method::POST, ["repos", _, _, "statuses", _]) => json_answer(StatusCode::CREATED, json!({"id": 1})),
        (Method::POST, ["api", "v4", "projects", project, "statuses", sha]) => {
            let call = inner.calls.last().cloned().expect("recorded");
            let text = |k: &str| call.body[k].as_str().unwrap_or_default().to_owned();
            let key = (project.to_string(), sha.to_string(), text("name"));
            let state = text("state");
            if state == "pending" && inner.gitlab_states.get(&key).map(String::as_str) == Some("pending") {
                return (StatusCode::BAD_REQUEST, [("content-type", "application/json")], GITLAB_ALREADY_PENDING)
                    .into_response();
            }
            inner.gitlab_states.insert(key, state.clone());
            json_answer(StatusCode::CREATED, json!({"id": 1, "sha": sha, "status": state}))
        }
        (Method::POST, ["api", "v4", "projects", _, "merge_requests", _, "status_check_responses"]) => {
            let call = inner.calls.last().cloned().expect("recorded");
            let known = ["passed", "failed", "pending"].contains(&call.body["status"].as_str().unwrap_or_default());
            match (known, call.body["external_status_check_id"].as_u64(), call.body["sha"].as_str()) {
                (true, Some(check), Some(sha)) => json_answer(
                    StatusCode::CREATED,
                    json!({"id": 1, "merge_request": {}, "external_status_check": {"id": check}, "sha": sha}),
                ),
                _ => json_answer(StatusCode::BAD_REQUEST, json!({"message": "400 Bad request"})),
            }
        }
        (Method::POST, ["repos", _, _, "actions", "workflows", _, "dispatches"]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, ["api", "v4", "projects", _, "pipeline"]) => {
            json_answer(StatusCode::CREATED, json!({"id": 4711, "status": "created"}))
        }
        // GitHub answers a protection rule's answer, or a status report, with 204 and no body.
        (Method::POST, ["repos", _, _, "actions", "runs", _, "deployment_protection_rule"]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["repos", _, _, "pulls", _, "files"]) => {
            let files: Vec<Value> = inner.files.iter().map(|f| json!({"filename": f, "status": "modified"})).collect();
            json_answer(StatusCode::OK, Value::Array(files))
        }
        (Method::GET, ["api", "v4", "projects", _, "merge_requests", _, "diffs"]) => {
            let files: Vec<Value> = inner.files.iter().map(|f| json!({"old_path": f, "new_path": f})).collect();
            json_answer(StatusCode::OK, Value::Array(files))
        }
        _ => json_answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    }
}
