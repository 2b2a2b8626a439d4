//! `openapi.yaml` and the router agree.
//!
//! - The document's operations are exactly `http::ROUTES` plus the local hub's
//!   `http::events::LOCAL_ROUTES`, and exactly the latter are marked
//!   `x-changehub-local-only: true`.
//! - The local hub's router serves every documented operation, and answers
//!   every other method on a documented path 405 `method_not_allowed`.
//! - A scenario driven through the router (happy path and error cases) gets
//!   only status codes the document lists for the operation, with the
//!   documented headers, and bodies that validate against the documented
//!   schemas (JSON Schema 2020-12, formats checked).
//! - Request bodies: the schemas accept what the API accepts and refuse what
//!   it refuses, wherever a schema can express the rule.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use changehub::http::{MAX_BODY_BYTES, ROUTES, webhooks::LOCAL_ROUTES};
use changehub::local::{Hub, HubConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tower::ServiceExt;

const DOC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
const LOCAL_ONLY: &str = "x-changehub-local-only";
/// The operation keys of an OpenAPI path item.
const OPERATION_KEYS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
/// The methods probed on every documented path.
const PROBED_METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

// ---------------------------------------------------------------------------
// The document

struct Doc {
    root: Value,
}

/// One documented operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OpKey {
    method: String,
    path: String,
}

impl std::fmt::Display for OpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn key(method: &Method, path: &str) -> OpKey {
    OpKey { method: method.as_str().to_owned(), path: path.to_owned() }
}

impl Doc {
    fn load() -> Doc {
        let text = std::fs::read_to_string(DOC_FILE).unwrap_or_else(|e| panic!("cannot read {DOC_FILE}: {e}"));
        let root: Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("openapi.yaml is not valid YAML/JSON: {e}"));
        assert_eq!(root["openapi"], json!("3.1.0"), "openapi.yaml must declare `openapi: 3.1.0`");
        Doc { root }
    }

    /// Follows local `$ref`s (`#/...`) until a non-reference object.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else { return v };
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("openapi.yaml: only local $refs are supported, got {r:?}"));
            v = self.root.pointer(pointer).unwrap_or_else(|| panic!("openapi.yaml: $ref {r:?} points nowhere"));
        }
        panic!("openapi.yaml: $ref chain too long (a cycle?)")
    }

    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.root["paths"].as_object().expect("openapi.yaml has no `paths` object")
    }

    /// Every (method, path) with its operation object.
    fn operations(&self) -> BTreeMap<OpKey, &Value> {
        let mut ops = BTreeMap::new();
        for (path, item) in self.paths() {
            let item = self.resolve(item);
            for m in OPERATION_KEYS {
                if let Some(op) = item.get(m) {
                    ops.insert(OpKey { method: m.to_uppercase(), path: path.clone() }, op);
                }
            }
        }
        ops
    }

    fn operation(&self, op: &OpKey) -> &Value {
        let item = self.paths().get(&op.path).unwrap_or_else(|| panic!("openapi.yaml documents no path {}", op.path));
        self.resolve(item)
            .get(op.method.to_lowercase())
            .unwrap_or_else(|| panic!("openapi.yaml documents no operation {op}"))
    }

    /// The documented response of `op` for `status`, resolved.
    fn response(&self, op: &OpKey, status: StatusCode) -> Option<&Value> {
        self.operation(op).get("responses")?.get(status.as_str()).map(|r| self.resolve(r))
    }

    fn documented_statuses(&self, op: &OpKey) -> Vec<String> {
        self.operation(op)
            .get("responses")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn component_response(&self, name: &str) -> &Value {
        self.root
            .pointer(&format!("/components/responses/{name}"))
            .unwrap_or_else(|| panic!("openapi.yaml has no components.responses.{name}"))
    }

    /// The JSON schema of a response or request body object (`content.application/json.schema`).
    fn json_schema<'a>(&'a self, what: &str, object: &'a Value) -> &'a Value {
        object
            .pointer("/content/application~1json/schema")
            .unwrap_or_else(|| panic!("openapi.yaml: {what} has no application/json schema"))
    }

    fn request_schema(&self, op: &OpKey) -> &Value {
        let body = self
            .operation(op)
            .get("requestBody")
            .map(|b| self.resolve(b))
            .unwrap_or_else(|| panic!("openapi.yaml: {op} has no requestBody"));
        self.json_schema(&format!("the request body of {op}"), body)
    }

    /// A validator for `schema`, a schema found in the document: one root
    /// schema that embeds the document's `components`, so that its
    /// `#/components/schemas/X` references resolve.
    fn validator(&self, what: &str, schema: &Value) -> jsonschema::Validator {
        let mut root = match schema {
            Value::Object(m) => m.clone(),
            other => panic!("openapi.yaml: the schema of {what} is not an object: {other}"),
        };
        root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        root.insert("components".into(), self.root["components"].clone());
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("openapi.yaml: the schema of {what} is not a valid JSON Schema: {e}"))
    }

    /// The schema's complaints about `instance`, one per line; empty when valid.
    fn violations(&self, what: &str, schema: &Value, instance: &Value) -> Vec<String> {
        self.validator(what, schema)
            .iter_errors(instance)
            .map(|e| shorten(&format!("at {:?}: {e}", e.instance_path().to_string()), 300))
            .collect()
    }
}

/// `s`, cut to about `max` characters.
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max { s.to_owned() } else { format!("{}…({n} characters)", s.chars().take(max).collect::<String>()) }
}

/// A JSON value for a message: strings over 100 characters shortened.
fn brief(v: &Value) -> String {
    fn walk(v: &Value) -> Value {
        match v {
            Value::String(s) if s.chars().count() > 100 => Value::String(shorten(s, 60)),
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), walk(v))).collect()),
            other => other.clone(),
        }
    }
    shorten(&walk(v).to_string(), 600)
}

// ---------------------------------------------------------------------------
// The router

struct Api {
    _hub: Hub,
    _dir: tempfile::TempDir,
    router: Router,
    doc: Doc,
    /// Status codes answered, per documented operation.
    seen: Mutex<BTreeMap<OpKey, BTreeSet<u16>>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// The body for a message: long strings shortened.
    fn brief(&self) -> String {
        brief(&self.body)
    }

    fn code(&self) -> &str {
        self.body.pointer("/error/code").and_then(Value::as_str).unwrap_or("")
    }

    fn field(&self) -> &str {
        self.body.pointer("/error/field").and_then(Value::as_str).unwrap_or("")
    }

    fn expect(&self, what: &str, status: StatusCode, code: Option<&str>) -> &Self {
        assert_eq!(self.status, status, "{what}: expected {status}, got {} {}", self.status, self.brief());
        if let Some(code) = code {
            assert_eq!(self.code(), code, "{what}: expected error code {code:?}, got {}", self.brief());
        }
        self
    }

    fn expect_field(&self, what: &str, field: &str) -> &Self {
        assert_eq!(self.field(), field, "{what}: expected error field {field:?}, got {}", self.brief());
        self
    }
}

/// A request to send: method, concrete URI, headers, body.
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: Method, uri: impl Into<String>) -> Req {
        Req { method, uri: uri.into(), headers: Vec::new(), body: Vec::new() }
    }

    fn get(uri: impl Into<String>) -> Req {
        Req::new(Method::GET, uri)
    }

    fn post_json(uri: impl Into<String>, body: &Value) -> Req {
        Req::new(Method::POST, uri).raw("application/json", body.to_string().into_bytes())
    }

    fn raw(mut self, content_type: &str, body: Vec<u8>) -> Req {
        self.headers.push(("content-type", content_type.to_owned()));
        self.body = body;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.push((name, value.to_owned()));
        self
    }
}

impl Api {
    async fn start() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = Hub::open(&HubConfig {
            db: dir.path().join("hub.db"),
            notifications: dir.path().join("n.jsonl"),
            secrets: Default::default(),
        })
        .expect("open the local hub");
        let router = hub.router();
        Api { _hub: hub, _dir: dir, router, doc: Doc::load(), seen: Mutex::new(BTreeMap::new()) }
    }

    /// Sends `req` and returns the answer, with the body parsed as JSON
    /// (`null` when empty; a non-JSON body fails the test).
    async fn send(&self, req: Req) -> Answer {
        let mut builder = Request::builder().method(req.method.clone()).uri(&req.uri);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(Body::from(req.body)).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("read the answer's body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{} {} answered {status} with a body that is not JSON ({e}): {:?}",
                    req.method,
                    req.uri,
                    shorten(&String::from_utf8_lossy(&bytes), 300)
                )
            })
        };
        Answer { status, headers, body }
    }

    /// Sends `req` to the documented operation `op` (`req.uri` is a concrete
    /// instance of `op.path`) and checks the answer against the document:
    /// status documented, documented headers present and valid, body valid.
    async fn call(&self, op: &OpKey, req: Req) -> Answer {
        let what = format!("{} {} (operation {op})", req.method, req.uri);
        let answer = self.send(req).await;
        self.check_documented(&what, op, &answer);
        answer
    }

    /// Checks that `answer` is one `op` documents: status, headers, body.
    fn check_documented(&self, what: &str, op: &OpKey, answer: &Answer) {
        self.seen.lock().expect("lock").entry(op.clone()).or_default().insert(answer.status.as_u16());
        let Some(response) = self.doc.response(op, answer.status) else {
            panic!(
                "{what} answered {} {}, a status openapi.yaml does not document for {op} (documented: {})",
                answer.status,
                answer.brief(),
                self.doc.documented_statuses(op).join(", ")
            )
        };
        self.check_response(&format!("{what} answering {}", answer.status), response, answer);
    }

    /// Checks an answer against a (resolved) response object of the document.
    fn check_response(&self, what: &str, response: &Value, answer: &Answer) {
        assert!(answer.headers.contains_key("x-request-id"), "{what}: the answer has no x-request-id header");
        let documented_headers = response.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
        assert!(
            documented_headers.keys().any(|h| h.eq_ignore_ascii_case("x-request-id")),
            "openapi.yaml: the response for {what} does not declare the x-request-id header"
        );
        for (name, h) in &documented_headers {
            let h = self.doc.resolve(h);
            let Some(value) = answer.headers.get(name.as_str()) else {
                assert!(
                    h.get("required") != Some(&json!(true)),
                    "{what}: the answer lacks the header {name}, which openapi.yaml declares required"
                );
                continue;
            };
            if let Some(schema) = h.get("schema") {
                let value = json!(value.to_str().expect("header value is ASCII"));
                let errors = self.doc.violations(&format!("header {name} of {what}"), schema, &value);
                assert!(
                    errors.is_empty(),
                    "{what}: header {name} = {value} does not fit its schema:\n{}",
                    errors.join("\n")
                );
            }
        }
        let schema = self.doc.json_schema(what, response);
        let errors = self.doc.violations(what, schema, &answer.body);
        assert!(
            errors.is_empty(),
            "{what}: the body does not fit the schema openapi.yaml declares ({}):\n{}\nbody: {}",
            schema,
            errors.join("\n"),
            answer.brief()
        );
    }
}

fn documented_routes(doc: &Doc) -> BTreeSet<OpKey> {
    doc.operations().into_keys().collect()
}

fn code_routes() -> (BTreeSet<OpKey>, BTreeSet<OpKey>) {
    let api = ROUTES.iter().map(|(m, p)| key(m, p)).collect();
    let local = LOCAL_ROUTES.iter().map(|(m, p)| key(m, p)).collect();
    (api, local)
}

/// A concrete URI for a path template: each `{param}` becomes a fresh UUID.
fn instance(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e + 1).unwrap_or(rest.len());
        out.push_str(&uuid::Uuid::now_v7().to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// The document lists exactly the routes

#[test]
fn documented_operations_are_exactly_the_routes() {
    let doc = Doc::load();
    let (api, local) = code_routes();
    let all: BTreeSet<OpKey> = api.union(&local).cloned().collect();
    let documented = documented_routes(&doc);

    let missing: Vec<String> = all.difference(&documented).map(ToString::to_string).collect();
    let extra: Vec<String> = documented.difference(&all).map(ToString::to_string).collect();
    assert!(missing.is_empty(), "routes the router serves but openapi.yaml does not document: {missing:?}");
    assert!(extra.is_empty(), "operations openapi.yaml documents but no route serves: {extra:?}");

    let mut operation_ids = BTreeSet::new();
    for (op, operation) in doc.operations() {
        let flag = operation.get(LOCAL_ONLY);
        if local.contains(&op) {
            assert_eq!(flag, Some(&json!(true)), "{op} is local-only (LOCAL_ROUTES): mark it `{LOCAL_ONLY}: true`");
        } else {
            assert!(
                flag.is_none() || flag == Some(&json!(false)),
                "{op} is served by every router (ROUTES) but openapi.yaml marks it {LOCAL_ONLY}: {flag:?}"
            );
        }
        let id = operation.get("operationId").and_then(Value::as_str);
        let id = id.unwrap_or_else(|| panic!("{op} has no operationId"));
        assert!(operation_ids.insert(id.to_owned()), "operationId {id} is used twice");

        // Every path parameter is declared, at path or operation level.
        let item = doc.resolve(&doc.paths()[&op.path]);
        let declared: BTreeSet<String> = [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| doc.resolve(p))
            .filter(|p| p["in"] == json!("path"))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(declared, path_params(&op.path), "{op}: the declared path parameters differ from the template's");

        // Every response declares x-request-id and a JSON body.
        let responses = operation.get("responses").and_then(Value::as_object);
        let responses = responses.unwrap_or_else(|| panic!("{op} documents no responses"));
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{op}: response key {status:?} is not a status code"
            );
            let response = doc.resolve(response);
            let headers = response.get("headers").and_then(Value::as_object);
            assert!(
                headers.is_some_and(|h| h.contains_key("x-request-id")),
                "{op} {status}: the response does not declare the x-request-id header"
            );
            doc.validator(&format!("{op} {status}"), doc.json_schema(&format!("{op} {status}"), response));
        }
    }

    // Every component schema compiles (catches typos such as a bad pattern).
    for (name, schema) in doc.root["components"]["schemas"].as_object().expect("components.schemas") {
        doc.validator(&format!("components.schemas.{name}"), schema);
    }
    for name in ["Change", "ChangeState", "ChangeType", "NewChange", "TransitionRequest", "ChangeList", "AuditEntry"]
        .into_iter()
        .chain(["FieldChange", "AuditTrail", "Error", "Health", "EventEnvelope", "EventAccepted", "EventDuplicate"])
    {
        assert!(doc.root["components"]["schemas"].get(name).is_some(), "components.schemas.{name} is missing");
    }
}

#[test]
fn change_states_and_types_are_the_domains() {
    use changehub::domain::{ChangeState, ChangeType};
    let doc = Doc::load();
    let enum_of = |name: &str| -> Vec<Value> {
        doc.root["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("components.schemas.{name} has no enum"))
            .clone()
    };
    let states: Vec<Value> = ChangeState::ALL.iter().map(|s| json!(s.as_str())).collect();
    assert_eq!(enum_of("ChangeState"), states, "components.schemas.ChangeState lists other states than the domain");
    let types: Vec<Value> =
        [ChangeType::Standard, ChangeType::Normal, ChangeType::Emergency].iter().map(|t| json!(t.as_str())).collect();
    assert_eq!(enum_of("ChangeType"), types, "components.schemas.ChangeType lists other types than the domain");
}

// ---------------------------------------------------------------------------
// The router serves exactly the documented operations

#[tokio::test]
async fn every_route_is_served() {
    let api = Api::start().await;
    let (routes, local_routes) = code_routes();
    for op in routes.union(&local_routes) {
        let method = Method::from_bytes(op.method.as_bytes()).expect("method");
        let uri = instance(&op.path);
        let what = format!("{method} {uri} (route {op})");
        let answer = api.send(Req::new(method, uri)).await;
        assert!(
            !(answer.status == StatusCode::NOT_FOUND && answer.code() == "route_not_found"),
            "{what}: listed in ROUTES/LOCAL_ROUTES but the router has no route for it: {}",
            answer.brief()
        );
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{what}: listed in ROUTES/LOCAL_ROUTES but the router refuses the method: {}",
            answer.brief()
        );
        // Whatever it answers to a bare request, the document lists it.
        api.check_documented(&what, op, &answer);
    }
}

/// The api Lambda's router serves `ROUTES` and not the local-only routes.
#[tokio::test]
async fn the_lambda_router_serves_no_local_only_route() {
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::app::Changes;
    use changehub::ports::SystemClock;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("api.db")).expect("open store");
    let router = changehub::http::router(std::sync::Arc::new(Changes::new(store, SystemClock)));
    let (routes, local_routes) = code_routes();
    for op in routes.iter().chain(&local_routes) {
        let method = Method::from_bytes(op.method.as_bytes()).expect("method");
        let request = Request::builder().method(method).uri(instance(&op.path)).body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let code =
            serde_json::from_slice::<Value>(&bytes).ok().and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED || code.as_deref() == Some("route_not_found");
        if local_routes.contains(op) {
            assert!(unrouted, "{op} is local-only (LOCAL_ROUTES) but the api Lambda's router serves it: {status}");
        } else {
            assert!(!unrouted, "{op} is in ROUTES but the api Lambda's router does not serve it: {status} {code:?}");
        }
    }
}

#[tokio::test]
async fn undocumented_methods_are_method_not_allowed() {
    let api = Api::start().await;
    let method_not_allowed = api.doc.component_response("MethodNotAllowed");
    let ops = documented_routes(&api.doc);
    for path in api.doc.paths().keys() {
        let documented: BTreeSet<&str> = ops.iter().filter(|o| &o.path == path).map(|o| o.method.as_str()).collect();
        for method in PROBED_METHODS {
            if documented.contains(method.as_str()) {
                continue;
            }
            let uri = instance(path);
            let what = format!("{method} {uri} (path {path}, documented: {documented:?})");
            let answer = api.send(Req::new(method.clone(), uri)).await;
            if method == Method::HEAD && documented.contains("GET") {
                // HEAD is served wherever GET is (RFC 9110 §9.3.2).
                assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{what}: HEAD must be served like GET");
                assert_ne!(answer.code(), "route_not_found", "{what}: HEAD must be served like GET");
                continue;
            }
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{what}: a method openapi.yaml does not document must be answered 405; got {} {}",
                answer.status,
                answer.brief()
            );
            if method != Method::HEAD {
                assert_eq!(answer.code(), "method_not_allowed", "{what}: {}", answer.brief());
                api.check_response(&what, method_not_allowed, &answer);
            }
        }
    }
}

#[tokio::test]
async fn unknown_paths_are_route_not_found() {
    let api = Api::start().await;
    let route_not_found = api.doc.component_response("RouteNotFound");
    for (method, uri) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/changes/x/y/z"),
        (Method::GET, "/changes/"),
        (Method::DELETE, "/healthz"),
    ] {
        let what = format!("{method} {uri}");
        let answer = api.send(Req::new(method, uri)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}: {}", answer.brief());
        assert_eq!(answer.code(), "route_not_found", "{what}: {}", answer.brief());
        api.check_response(&what, route_not_found, &answer);
    }
}

// ---------------------------------------------------------------------------
// A scenario: every answer fits the document

fn new_change(services: &[&str], start: &str, end: &str) -> Value {
    json!({
        "title": "Upgrade payments DB",
        "description": "rolling, replicas first",
        "type": "normal",
        "services": services,
        "environment": "production",
        "planned_start": start,
        "planned_end": end,
    })
}

#[tokio::test]
async fn responses_match_the_documented_schemas() {
    let api = Api::start().await;
    let health = key(&Method::GET, "/health");
    let create = key(&Method::POST, "/changes");
    let list = key(&Method::GET, "/changes");
    let get = key(&Method::GET, "/changes/{id}");
    let transition = key(&Method::POST, "/changes/{id}/transitions");
    let audit = key(&Method::GET, "/changes/{id}/audit");
    let events = key(&Method::POST, "/events");
    let acme = |r: Req| r.header("x-changehub-tenant", "acme").header("x-changehub-user", "alice");

    // Health.
    let a = api.call(&health, Req::get("/health")).await;
    a.expect("health", StatusCode::OK, None);

    // Create two changes on payments.
    let body = new_change(&["payments", "ledger"], "2026-12-01T22:00:00Z", "2026-12-01T23:30:00Z");
    let created = api.call(&create, acme(Req::post_json("/changes", &body))).await;
    created.expect("create", StatusCode::CREATED, None);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let location = created.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
    assert_eq!(location, Some(format!("/changes/{id}").as_str()), "create: Location header");
    assert_eq!(created.body["state"], json!("draft"));
    assert_eq!(created.body["version"], json!(1));
    assert_eq!(created.body["tenant"], json!("acme"));
    assert_eq!(created.body["requester"], json!("alice"));
    let body2 = new_change(&["payments"], "2026-12-02T22:00:00Z", "2026-12-02T23:00:00Z");
    api.call(&create, acme(Req::post_json("/changes", &body2))).await.expect("create 2", StatusCode::CREATED, None);

    // Read it; another tenant does not see it.
    let got = api.call(&get, acme(Req::get(format!("/changes/{id}")))).await;
    got.expect("get", StatusCode::OK, None);
    assert_eq!(got.body, created.body, "get returns the created change");
    api.call(&get, Req::get(format!("/changes/{id}"))).await.expect(
        "get, default tenant",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );

    // List, one page at a time.
    let range = "from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z";
    let page1 = api.call(&list, acme(Req::get(format!("/changes?service=payments&{range}&limit=1")))).await;
    page1.expect("list page 1", StatusCode::OK, None);
    assert_eq!(page1.body["changes"].as_array().map(Vec::len), Some(1), "list page 1: {}", page1.body);
    let cursor = page1.body["next_cursor"].as_str().expect("list page 1 has a next_cursor").to_owned();
    let cursor = percent_encode(&cursor);
    let page2 =
        api.call(&list, acme(Req::get(format!("/changes?service=payments&{range}&limit=1&cursor={cursor}")))).await;
    page2.expect("list page 2", StatusCode::OK, None);
    let mut listed: Vec<Value> = page1.body["changes"].as_array().cloned().unwrap_or_default();
    listed.extend(page2.body["changes"].as_array().cloned().unwrap_or_default());
    assert!(listed.iter().any(|c| c["id"] == json!(id)), "the created change is listed: {listed:?}");
    let all = api.call(&list, acme(Req::get(format!("/changes?service=ledger&{range}")))).await;
    all.expect("list ledger", StatusCode::OK, None);
    assert_eq!(all.body["next_cursor"], Value::Null, "a last page has next_cursor null");
    for (query, field) in [
        ("", "service"),
        ("service=Payments!", "service"),
        ("service=payments&limit=0", "limit"),
        ("service=payments&limit=101", "limit"),
        ("service=payments&limit=ten", "limit"),
        ("service=payments&from=yesterday", "from"),
        ("service=payments&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
        ("service=payments&cursor=bogus", "cursor"),
        ("service=payments&colour=red", "colour"),
    ] {
        let what = format!("list ?{query}");
        api.call(&list, Req::get(format!("/changes?{query}")))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // Transition, then an illegal one and a stale one.
    let submit = json!({"to": "submitted", "version": 1, "reason": "ready for review"});
    let moved = api.call(&transition, acme(Req::post_json(format!("/changes/{id}/transitions"), &submit))).await;
    moved.expect("transition", StatusCode::OK, None);
    assert_eq!((&moved.body["state"], &moved.body["version"]), (&json!("submitted"), &json!(2)));
    let illegal = json!({"to": "implementing", "version": 2});
    api.call(&transition, acme(Req::post_json(format!("/changes/{id}/transitions"), &illegal)))
        .await
        .expect("illegal transition", StatusCode::CONFLICT, Some("illegal_transition"))
        .expect_field("illegal transition", "to");
    let stale = json!({"to": "approved", "version": 1});
    api.call(&transition, acme(Req::post_json(format!("/changes/{id}/transitions"), &stale)))
        .await
        .expect("stale transition", StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field("stale transition", "version");
    let long_reason = json!({"to": "approved", "version": 2, "reason": "x".repeat(2001)});
    api.call(&transition, acme(Req::post_json(format!("/changes/{id}/transitions"), &long_reason)))
        .await
        .expect("long reason", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("long reason", "reason");

    // Audit trail.
    let trail = api.call(&audit, acme(Req::get(format!("/changes/{id}/audit")))).await;
    trail.expect("audit", StatusCode::OK, None);
    assert_eq!(trail.body["change_id"], json!(id));
    assert_eq!(trail.body["entries"].as_array().map(Vec::len), Some(2), "audit: {}", trail.body);
    assert_eq!(trail.body["entries"][1]["reason"], json!("ready for review"));

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7();
    api.call(&get, Req::get(format!("/changes/{unknown}"))).await.expect(
        "get unknown",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&audit, Req::get(format!("/changes/{unknown}/audit"))).await.expect(
        "audit unknown",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&transition, Req::post_json(format!("/changes/{unknown}/transitions"), &submit)).await.expect(
        "transition unknown",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    for (op, req) in [
        (&get, Req::get("/changes/not-a-uuid")),
        (&audit, Req::get("/changes/not-a-uuid/audit")),
        (&transition, Req::post_json("/changes/not-a-uuid/transitions", &submit)),
    ] {
        let what = format!("{op} with a bad id");
        api.call(op, req)
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }

    // Caller headers.
    api.call(&get, Req::get(format!("/changes/{id}")).header("x-changehub-tenant", "Not A Slug"))
        .await
        .expect("bad tenant", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("bad tenant", "x-changehub-tenant");
    api.call(&create, Req::post_json("/changes", &body).header("x-changehub-user", &"u".repeat(257)))
        .await
        .expect("bad user", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("bad user", "x-changehub-user");

    // Bodies: malformed, wrong type, unknown field, too large.
    let oversized = {
        let mut b = br#"{"title": ""#.to_vec();
        b.resize(MAX_BODY_BYTES + 1, b'x');
        b
    };
    for (op, uri) in [
        (&create, "/changes".to_owned()),
        (&transition, format!("/changes/{id}/transitions")),
        (&events, "/events".to_owned()),
    ] {
        let what = |w: &str| format!("{w} body on {op}");
        api.call(op, Req::new(Method::POST, uri.clone()).raw("application/json", b"{not json".to_vec())).await.expect(
            &what("malformed"),
            StatusCode::BAD_REQUEST,
            Some("malformed_json"),
        );
        api.call(op, Req::new(Method::POST, uri.clone()).raw("text/plain", b"{}".to_vec())).await.expect(
            &what("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, Req::new(Method::POST, uri.clone())).await.expect(
            &what("untyped"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, Req::new(Method::POST, uri.clone()).raw("application/json", oversized.clone())).await.expect(
            &what("oversized"),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
        );
        api.call(op, Req::new(Method::POST, uri.clone()).raw("application/json; charset=utf-8", b"[]".to_vec()))
            .await
            .expect(&what("array"), StatusCode::BAD_REQUEST, Some("invalid_request"));
    }
    let mut typo = body.clone();
    typo["colour"] = json!("red");
    api.call(&create, Req::post_json("/changes", &typo))
        .await
        .expect("unknown field", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("unknown field", "colour");
    let mut bad_service = body.clone();
    bad_service["services"] = json!(["payments", "Not#Ok"]);
    api.call(&create, Req::post_json("/changes", &bad_service))
        .await
        .expect("bad service", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("bad service", "services[1]");
    let mut no_title = body.clone();
    no_title.as_object_mut().expect("object").remove("title");
    api.call(&create, Req::post_json("/changes", &no_title))
        .await
        .expect("missing title", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("missing title", "title");

    // Events: accepted, then a duplicate, then invalid.
    let event = json!({
        "version": "0",
        "id": "evt-1",
        "source": "aws.codepipeline",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "time": "2026-12-01T22:05:00Z",
        "resources": ["arn:aws:codepipeline:eu-west-1:123456789012:payments"],
        "detail": {"pipeline": "payments", "state": "STARTED"},
    });
    let first = api.call(&events, Req::post_json("/events", &event)).await;
    first.expect("event", StatusCode::ACCEPTED, None);
    assert_eq!(first.body, json!({"accepted": true, "id": "evt-1"}));
    let again = api.call(&events, Req::post_json("/events", &event)).await;
    again.expect("duplicate event", StatusCode::OK, None);
    assert_eq!(again.body, json!({"duplicate": true, "id": "evt-1"}));
    for (change, field) in [
        (json!({"detail": "a string"}), "detail"),
        (json!({"id": "  "}), "id"),
        (json!({"source": "s".repeat(257)}), "source"),
        (json!({"time": "yesterday"}), "time"),
    ] {
        let mut bad = event.clone();
        for (k, v) in change.as_object().expect("object") {
            bad[k] = v.clone();
        }
        let what = format!("event with {change}");
        api.call(&events, Req::post_json("/events", &bad))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // The scenario exercised every documented operation with a success.
    let seen = api.seen.lock().expect("lock").clone();
    for op in documented_routes(&api.doc) {
        let statuses = seen.get(&op).cloned().unwrap_or_default();
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "the scenario never got a success from {op}: {statuses:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Request schemas: accepted by the schema exactly when accepted by the API

/// For each body: does the API accept it (2xx), and does the documented
/// request schema? They must agree. Only rules a schema can express are
/// probed here (the API also checks e.g. that planned_end follows planned_start).
#[tokio::test]
async fn request_schemas_accept_what_the_api_accepts() {
    let api = Api::start().await;
    let create = key(&Method::POST, "/changes");
    let transition = key(&Method::POST, "/changes/{id}/transitions");
    let events = key(&Method::POST, "/events");

    let base = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().expect("object").remove(k);
        b
    };
    let mut cases: Vec<(&OpKey, String, Value)> = vec![
        (&create, "valid".into(), base.clone()),
        (&create, "no description".into(), without("description")),
        (&create, "unknown field".into(), with("colour", json!("red"))),
        (&create, "no title".into(), without("title")),
        (&create, "no type".into(), without("type")),
        (&create, "no services".into(), without("services")),
        (&create, "no environment".into(), without("environment")),
        (&create, "no planned_start".into(), without("planned_start")),
        (&create, "title of 200".into(), with("title", json!("t".repeat(200)))),
        (&create, "title of 201".into(), with("title", json!("t".repeat(201)))),
        (&create, "blank title".into(), with("title", json!("   "))),
        (&create, "null title".into(), with("title", Value::Null)),
        (&create, "description of 20000".into(), with("description", json!("d".repeat(20_000)))),
        (&create, "description of 20001".into(), with("description", json!("d".repeat(20_001)))),
        (&create, "unknown type".into(), with("type", json!("urgent"))),
        (&create, "no service".into(), with("services", json!([]))),
        (&create, "20 services".into(), with("services", json!((0..20).map(|i| format!("s{i}")).collect::<Vec<_>>()))),
        (&create, "21 services".into(), with("services", json!((0..21).map(|i| format!("s{i}")).collect::<Vec<_>>()))),
        (&create, "service of 64".into(), with("services", json!(["s".repeat(64)]))),
        (&create, "service of 65".into(), with("services", json!(["s".repeat(65)]))),
        (&create, "uppercase service".into(), with("services", json!(["Payments"]))),
        (&create, "service starting with -".into(), with("services", json!(["-payments"]))),
        (&create, "environment of 64".into(), with("environment", json!("e".repeat(64)))),
        (&create, "environment of 65".into(), with("environment", json!("e".repeat(65)))),
        (&create, "blank environment".into(), with("environment", json!(" "))),
        (&create, "non-time planned_start".into(), with("planned_start", json!("tomorrow"))),
        (&create, "numeric planned_end".into(), with("planned_end", json!(1_800_000_000))),
        (&create, "not an object".into(), json!(["title"])),
    ];

    // Each transition case gets a fresh draft so that a valid one can succeed.
    let transition_cases: Vec<(String, Value)> = vec![
        ("valid".into(), json!({"to": "submitted", "version": 1})),
        ("null reason".into(), json!({"to": "submitted", "version": 1, "reason": null})),
        ("reason of 2000".into(), json!({"to": "cancelled", "version": 1, "reason": "r".repeat(2000)})),
        ("reason of 2001".into(), json!({"to": "submitted", "version": 1, "reason": "r".repeat(2001)})),
        ("unknown field".into(), json!({"to": "submitted", "version": 1, "force": true})),
        ("unknown state".into(), json!({"to": "done", "version": 1})),
        ("no version".into(), json!({"to": "submitted"})),
        ("no to".into(), json!({"version": 1})),
        ("negative version".into(), json!({"to": "submitted", "version": -1})),
        ("string version".into(), json!({"to": "submitted", "version": "1"})),
    ];

    let event = json!({
        "id": "e", "source": "s", "detail-type": "t", "time": "2026-12-01T22:05:00Z", "detail": {},
    });
    let ev = |k: &str, v: Option<Value>| {
        let mut b = event.clone();
        match v {
            Some(v) => b[k] = v,
            None => {
                b.as_object_mut().expect("object").remove(k);
            }
        }
        b
    };
    let event_cases: Vec<(String, Value)> = vec![
        ("minimal".into(), event.clone()),
        ("extra envelope fields".into(), ev("account", Some(json!("123456789012")))),
        ("resources".into(), ev("resources", Some(json!(["arn:x"])))),
        ("no id".into(), ev("id", None)),
        ("no source".into(), ev("source", None)),
        ("no detail-type".into(), ev("detail-type", None)),
        ("no time".into(), ev("time", None)),
        ("no detail".into(), ev("detail", None)),
        ("blank id".into(), ev("id", Some(json!(" ")))),
        ("id of 256".into(), ev("id", Some(json!("i".repeat(256))))),
        ("id of 257".into(), ev("id", Some(json!("i".repeat(257))))),
        ("array detail".into(), ev("detail", Some(json!([1])))),
        ("null detail".into(), ev("detail", Some(Value::Null))),
        ("numeric resources".into(), ev("resources", Some(json!([1])))),
        ("bad time".into(), ev("time", Some(json!("2026-13-01T00:00:00Z")))),
    ];
    for (i, (name, mut body)) in event_cases.into_iter().enumerate() {
        if body.get("id").and_then(Value::as_str) == Some("e") {
            body["id"] = json!(format!("e{i}"));
        }
        cases.push((&events, name, body));
    }

    let mut disagreements = Vec::new();
    for (op, name, body) in &cases {
        let uri = op.path.clone();
        let answer = api.call(op, Req::post_json(uri, body)).await;
        disagreements.extend(agreement(&api.doc, op, name, body, &answer));
    }
    for (name, body) in &transition_cases {
        let draft = api.call(&create, Req::post_json("/changes", &base)).await;
        draft.expect("create a draft", StatusCode::CREATED, None);
        let uri = format!("/changes/{}/transitions", draft.body["id"].as_str().expect("id"));
        let answer = api.call(&transition, Req::post_json(uri, body)).await;
        disagreements.extend(agreement(&api.doc, &transition, name, body, &answer));
    }
    assert!(
        disagreements.is_empty(),
        "openapi.yaml's request schemas and the API disagree:\n{}",
        disagreements.join("\n")
    );
}

/// A disagreement between the API's answer to `body` and the request schema, if any.
fn agreement(doc: &Doc, op: &OpKey, name: &str, body: &Value, answer: &Answer) -> Option<String> {
    let api_accepts = answer.status.is_success();
    if !api_accepts {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{op} {name}: unexpected answer {}", answer.brief());
    }
    let schema = doc.request_schema(op);
    let violations = doc.violations(&format!("the request body of {op}"), schema, body);
    let schema_accepts = violations.is_empty();
    (api_accepts != schema_accepts).then(|| {
        format!(
            "{op}, {name}: the API {} it ({} {}), the schema {}",
            if api_accepts { "accepts" } else { "refuses" },
            answer.status,
            answer.brief(),
            if schema_accepts { "accepts it".to_owned() } else { format!("refuses it: {}", violations.join("; ")) },
        )
    })
}

// ---------------------------------------------------------------------------
// Disagreements once found between the code and the document, kept as tests.

/// A path `{id}` that does not percent-decode to UTF-8 gets the documented
/// JSON error naming `id` (not axum's own text/plain rejection).
#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_json_invalid_request() {
    let api = Api::start().await;
    let submit = json!({"to": "submitted", "version": 1});
    for (op, req) in [
        (key(&Method::GET, "/changes/{id}"), Req::get("/changes/%FF")),
        (key(&Method::GET, "/changes/{id}/audit"), Req::get("/changes/%FF/audit")),
        (key(&Method::POST, "/changes/{id}/transitions"), Req::post_json("/changes/%FF/transitions", &submit)),
    ] {
        let what = format!("{op} with id %FF");
        api.call(&op, req)
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }
}

/// serde's derived `Deserialize` would also accept a struct as a JSON array of
/// its fields in declaration order; the API refuses anything but an object.
#[tokio::test]
async fn request_bodies_must_be_objects() {
    let api = Api::start().await;
    let create = key(&Method::POST, "/changes");
    let body = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let draft = api.call(&create, Req::post_json("/changes", &body)).await;
    draft.expect("create a draft", StatusCode::CREATED, None);
    let id = draft.body["id"].as_str().expect("id").to_owned();
    let positional_change =
        json!(["t", "", "normal", ["payments"], "production", "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z"]);
    for (op, uri, positional) in [
        (create.clone(), "/changes".to_owned(), positional_change),
        (
            key(&Method::POST, "/changes/{id}/transitions"),
            format!("/changes/{id}/transitions"),
            json!(["submitted", 1, null]),
        ),
        (
            key(&Method::POST, "/events"),
            "/events".to_owned(),
            json!(["e1", "src", "dt", "2026-12-01T22:05:00Z", [], {}]),
        ),
    ] {
        let what = format!("{op} with the array body {positional}");
        api.call(&op, Req::post_json(uri, &positional)).await.expect(
            &what,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        );
    }
}
