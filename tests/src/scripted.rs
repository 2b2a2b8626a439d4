//! A local HTTP server that answers as scripted and records each request:
//! the stand-in for PagerDuty, GitHub, Slack and Teams in tests.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// How the server answers one request.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<&'static str>,
    pub delay: Duration,
}

pub fn answer(status: u16) -> Answer {
    Answer { status: StatusCode::from_u16(status).expect("status"), retry_after: None, delay: Duration::ZERO }
}

#[derive(Clone, Default)]
pub struct Script {
    received: Arc<Mutex<Vec<Received>>>,
    /// The answers, in order; once used up, 201.
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

impl Script {
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn answer_next(&self, answers: impl IntoIterator<Item = Answer>) {
        self.answers.lock().expect("lock").extend(answers);
    }

    /// Forgets the answers left: from now on every request gets 201.
    pub fn recover(&self) {
        self.answers.lock().expect("lock").clear();
    }
}

async fn record(State(script): State<Script>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    script.received.lock().expect("lock").push(Received { method, path: uri.to_string(), headers, body });
    let next = script.answers.lock().expect("lock").pop_front().unwrap_or_else(|| answer(201));
    tokio::time::sleep(next.delay).await;
    let mut response = (next.status, "{}").into_response();
    if let Some(after) = next.retry_after {
        response.headers_mut().insert("retry-after", after.parse().expect("header"));
    }
    response
}

/// A local HTTP server answering as scripted: its base URL and the script.
pub async fn server(answers: impl IntoIterator<Item = Answer>) -> (String, Script) {
    let script = Script::default();
    script.answer_next(answers);
    let app = Router::new().fallback(record).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), script)
}
