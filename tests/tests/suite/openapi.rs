//! `openapi.yaml` and the routers agree.
//!
//! - The document's operations are exactly `http::ROUTES` (the change API)
//!   plus `webhooks::WEBHOOK_ROUTES` plus `webhooks::LOCAL_ROUTES`, and each
//!   operation says which surfaces serve it: `x-changehub-served-by` (absent
//!   means `[local, api]`), with `x-changehub-local-only: true` on exactly the
//!   local-only routes. The change API is `[local, api]`, the webhooks
//!   `[local, ingest]`, `/events` `[local]`.
//! - Each router serves exactly its operations: the local hub all of them, the
//!   api Lambda's `http::router` only the change API, the ingest Lambda's
//!   router only the webhooks. The local hub answers every other method on a
//!   documented path 405 `method_not_allowed`.
//! - The document requires the bearer token (`bearerAuth`) on exactly the
//!   operations the code authenticates: the change API but `/health`, and
//!   `/events`; webhooks keep their own signature schemes.
//! - A scenario driven through the local hub (tokens, the catalog, the change
//!   API with its approvals, checklists, reviews, freezes and incidents,
//!   signed webhooks from several vendors, AWS events; happy paths and error
//!   cases) gets only status codes the document lists for the operation,
//!   with the documented headers, and bodies that validate against the
//!   documented schemas (JSON Schema 2020-12, formats checked), and gets a
//!   success from every operation.
//! - Request bodies: the schemas accept what the API accepts and refuse what
//!   it refuses, wherever a schema can express the rule.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::{SecretsDocument, StaticSecrets};
use changehub::adapters::local_bus::LocalBus;
use changehub::app::ingest::{Ingest, MAX_WEBHOOK_BYTES, Webhooks};
use changehub::domain::{HubEvent, TenantId};
use changehub::http::bearer::{Authenticator, LocalKey};
use changehub::http::webhooks::{self, LOCAL_ROUTES, WEBHOOK_ROUTES, WebhookLimits};
use changehub::http::{MAX_BODY_BYTES, ROUTES};
use changehub::ingest::{Origin, sign};
use changehub::local::{Hub, HubConfig};
use changehub::ports::{BusError, EventBus, SecretSource, SecretsError, SystemClock};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const DOC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
const LOCAL_ONLY: &str = "x-changehub-local-only";
const SERVED_BY: &str = "x-changehub-served-by";
/// The surfaces that serve operations: the local hub and the two HTTP Lambdas.
const SURFACES: [&str; 3] = ["local", "api", "ingest"];
/// What an operation without `x-changehub-served-by` is served by.
const DEFAULT_SERVED_BY: [&str; 2] = ["local", "api"];
/// The webhook secret of every source but incident.io (a GitLab plain token,
/// an Alertmanager bearer token).
const SECRET: &str = "It's a Secret to Everybody";
/// incident.io's (Standard Webhooks) signing key.
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WEBHOOK_ORIGINS: [Origin; 5] =
    [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio];
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
/// The security scheme of the change API's bearer tokens.
const BEARER: &str = "bearerAuth";

// ---------------------------------------------------------------------------
// The people the scenarios act as

/// A user of a tenant, with the groups their token lists. In tenant `acme`,
/// once the sample catalog (`events/catalog/acme.yaml`) is imported, the
/// groups grant: `engineers` requester, `payments-leads` approver (level 1 of
/// payments), `cab` cab (level 2), `platform` admin, `audit` auditor;
/// `changehub-admins` is always admin.
struct Who {
    tenant: &'static str,
    user: &'static str,
    groups: &'static [&'static str],
}

const ROOT: Who = Who { tenant: "acme", user: "root@example.com", groups: &["changehub-admins"] };
const ALICE: Who = Who { tenant: "acme", user: "alice@example.com", groups: &["engineers"] };
const PAT: Who = Who { tenant: "acme", user: "pat@example.com", groups: &["payments-leads"] };
/// A payments lead who also sits on the CAB.
const SAM: Who = Who { tenant: "acme", user: "sam@example.com", groups: &["payments-leads", "cab"] };
const CAROL: Who = Who { tenant: "acme", user: "carol@example.com", groups: &["cab"] };
/// An engineer who also sits on the CAB.
const RILEY: Who = Who { tenant: "acme", user: "riley@example.com", groups: &["engineers", "cab"] };
const ADA: Who = Who { tenant: "acme", user: "ada@example.com", groups: &["platform"] };
const AVA: Who = Who { tenant: "acme", user: "ava@example.com", groups: &["audit"] };
/// Valid tokens, no role.
const VIC: Who = Who { tenant: "acme", user: "vic@example.com", groups: &["visitors"] };
/// `changehub replay`: its tokens grant the ingest role (see [`mint`]).
const REPLAY: Who = Who { tenant: "acme", user: "replay", groups: &[] };
const DEFAULT_REPLAY: Who = Who { tenant: "default", user: "replay", groups: &[] };
/// An administrator of another tenant, which has no catalog.
const GLOBEX_ROOT: Who = Who { tenant: "globex", user: "root@example.com", groups: &["changehub-admins"] };

/// A token signed with `key` for `who`, valid for an hour from `now`; the
/// `replay` user's grants the ingest role, as `changehub replay`'s does.
fn mint(key: &LocalKey, who: &Who, now: chrono::DateTime<chrono::Utc>) -> String {
    let groups: Vec<String> = who.groups.iter().map(|g| (*g).to_owned()).collect();
    let tenant = TenantId::parse(who.tenant).expect("tenant");
    let ttl = chrono::Duration::hours(1);
    let token = match who.user {
        "replay" => key.mint_ingest(who.user, &tenant, now, ttl),
        _ => key.mint(who.user, &groups, &tenant, now, ttl),
    };
    token.expect("mint a token")
}

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
    _hub: Option<Hub>,
    _dir: tempfile::TempDir,
    router: Router,
    /// The key the router verifies bearer tokens with.
    key: LocalKey,
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

    fn message(&self) -> &str {
        self.body.pointer("/error/message").and_then(Value::as_str).unwrap_or("")
    }

    /// Checks the body of a 202 from an ingest route: `accepted` counts
    /// `events`, each the id of an event from `origin`.
    fn expect_published(&self, what: &str, origin: &str) -> &Self {
        self.expect(what, StatusCode::ACCEPTED, None);
        let events = self.body["events"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert_eq!(self.body["accepted"], json!(events.len()), "{what}: `accepted` counts `events`: {}", self.brief());
        for id in events {
            let id = id.as_str().unwrap_or_default();
            assert!(id.starts_with(&format!("{origin}-")), "{what}: event id {id:?} is not one of {origin}'s");
        }
        self
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

    fn expect_message(&self, what: &str, part: &str) -> &Self {
        assert!(self.message().contains(part), "{what}: expected a message saying {part:?}, got {}", self.brief());
        self
    }

    /// Checks the answer of an authentication failure: 401 `unauthorized`
    /// with `WWW-Authenticate: Bearer`, the message saying `part`.
    fn expect_unauthenticated(&self, what: &str, part: &str) -> &Self {
        self.expect(what, StatusCode::UNAUTHORIZED, Some("unauthorized")).expect_message(what, part);
        let scheme = self.headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
        assert_eq!(scheme, Some("Bearer"), "{what}: WWW-Authenticate");
        self
    }

    /// Checks a 403 `forbidden` whose message says `part`.
    fn expect_forbidden(&self, what: &str, part: &str) -> &Self {
        self.expect(what, StatusCode::FORBIDDEN, Some("forbidden")).expect_message(what, part)
    }

    /// The `ETag` header.
    fn etag(&self) -> &str {
        self.headers.get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The `id` of the change in the body.
    fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_else(|| panic!("no change id in {}", self.brief())).to_owned()
    }

    /// The `version` of the change in the body.
    fn version(&self) -> u64 {
        self.body["version"].as_u64().unwrap_or_else(|| panic!("no version in {}", self.brief()))
    }
}

/// A request to send: method, concrete URI, headers, body.
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
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

    fn put(uri: impl Into<String>, content_type: &str, body: impl Into<Vec<u8>>) -> Req {
        Req::new(Method::PUT, uri).raw(content_type, body.into())
    }

    /// Sends `token` as the bearer token.
    fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn raw(self, content_type: &str, body: Vec<u8>) -> Req {
        self.header("content-type", content_type).body(body)
    }

    /// Sets the body, leaving the headers (no content type unless one was set).
    fn body(self, body: Vec<u8>) -> Req {
        Req { body, ..self }
    }

    /// Sets the header `name`, replacing any value it had.
    fn header(self, name: &str, value: &str) -> Req {
        let mut req = self.without(name);
        req.headers.push((name.to_owned(), value.to_owned()));
        req
    }

    /// Removes the header `name`.
    fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The sample `events/<file>`, POSTed to `uri` with the headers its vendor
    /// sends (event type, delivery id `delivery`), signed with `secret` as
    /// the vendor signs it (unsigned when `None`).
    fn webhook(origin: Origin, uri: &str, file: &str, delivery: &str, secret: Option<&str>) -> Req {
        let body = sample(file);
        let stem = Path::new(file).file_stem().and_then(|s| s.to_str()).expect("sample file name");
        let mut headers = sign::delivery_headers(origin, stem, delivery);
        if let Some(secret) = secret {
            headers.extend(sign::auth_headers(origin, secret, delivery, &body, chrono::Utc::now()));
        }
        Req::with_headers(uri, headers, body)
    }

    /// `body` POSTed to `uri` with `headers`.
    fn with_headers(uri: &str, headers: HeaderMap, body: Vec<u8>) -> Req {
        let mut req = Req::new(Method::POST, uri);
        for (name, value) in &headers {
            req = req.header(name.as_str(), value.to_str().expect("ASCII header"));
        }
        Req { body, ..req }
    }

    /// `body` POSTed to a GitHub webhook `uri` as GitHub would send it for
    /// `event`: the event and delivery headers, signed with `SECRET`.
    fn github(uri: &str, event: &str, delivery: &str, body: &[u8]) -> Req {
        let headers = sign::delivery(Origin::Github, SECRET, event, delivery, body, chrono::Utc::now());
        Req::with_headers(uri, headers, body.to_vec())
    }
}

/// The bytes of `events/<file>`, exactly as committed (signatures are over them).
fn sample(file: &str) -> Vec<u8> {
    let path = Path::new(EVENTS_DIR).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `events/<file>` as JSON.
fn sample_json(file: &str) -> Value {
    serde_json::from_slice(&sample(file)).unwrap_or_else(|e| panic!("events/{file} is not JSON: {e}"))
}

/// Webhook secrets for the tenants `default` and `acme`, every source
/// (`globex` has none).
fn secrets() -> StaticSecrets {
    let mut doc = SecretsDocument::new();
    for tenant in ["default", "acme"] {
        for origin in WEBHOOK_ORIGINS {
            let secret = if origin == Origin::Incidentio { SIGNING_SECRET } else { SECRET };
            doc.entry(tenant.into()).or_default().insert(origin.as_str().into(), vec![secret.into()]);
        }
    }
    StaticSecrets::new(doc)
}

impl Api {
    /// The local hub, with webhook secrets for the tenants `default` and
    /// `acme`; it verifies tokens with the key it created beside its database.
    async fn start() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("hub.db");
        let hub = Hub::open(&HubConfig {
            db: db.clone(),
            notifications: dir.path().join("n.jsonl"),
            secrets: secrets(),
            bootstrap_admin_group: Some("changehub-admins".into()),
            limits: Default::default(),
        })
        .expect("open the local hub");
        let key = LocalKey::for_database(&db).expect("the hub's signing key");
        let router = hub.router();
        Api { _hub: Some(hub), _dir: dir, router, key, doc: Doc::load(), seen: Mutex::new(BTreeMap::new()) }
    }

    /// `router`, checked against the document like the local hub; `dir` holds
    /// its files and `key` verifies its tokens.
    fn with_router(router: Router, dir: tempfile::TempDir, key: LocalKey) -> Api {
        Api { _hub: None, _dir: dir, router, key, doc: Doc::load(), seen: Mutex::new(BTreeMap::new()) }
    }

    /// A token for `who`, valid for an hour, that the router accepts.
    fn token(&self, who: &Who) -> String {
        mint(&self.key, who, chrono::Utc::now())
    }

    /// Imports the sample catalog into tenant `acme`, as its bootstrap admin.
    async fn import_catalog(&self) -> Answer {
        let put = key(&Method::PUT, "/catalog");
        let req = Req::put("/catalog", "application/yaml", sample("catalog/acme.yaml")).bearer(&self.token(&ROOT));
        let a = self.call(&put, req).await;
        a.expect("import the sample catalog", StatusCode::OK, None);
        a
    }

    /// Sends `req` and returns the answer, with the body parsed as JSON
    /// (`null` when empty; a non-JSON body fails the test).
    async fn send(&self, req: Req) -> Answer {
        send(&self.router, req).await
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
        if response.get("content").is_none() {
            assert_eq!(answer.body, Value::Null, "{what}: openapi.yaml documents no body, but the answer has one");
            return;
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

/// Sends `req` to `router` and returns the answer, with the body parsed as
/// JSON (`null` when empty; a non-JSON body fails the test).
async fn send(router: &Router, req: Req) -> Answer {
    let mut builder = Request::builder().method(req.method.clone()).uri(&req.uri);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value);
    }
    let request = builder.body(Body::from(req.body)).expect("request");
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
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

fn documented_routes(doc: &Doc) -> BTreeSet<OpKey> {
    doc.operations().into_keys().collect()
}

/// The routes the code declares, by the surfaces that serve them.
struct CodeRoutes {
    /// `http::ROUTES`, the change API: the local hub and the api Lambda.
    api: BTreeSet<OpKey>,
    /// `webhooks::WEBHOOK_ROUTES`: the local hub and the ingest Lambda.
    webhooks: BTreeSet<OpKey>,
    /// `webhooks::LOCAL_ROUTES`: the local hub only.
    local: BTreeSet<OpKey>,
}

impl CodeRoutes {
    fn load() -> CodeRoutes {
        let set = |routes: &[(Method, &str)]| routes.iter().map(|(m, p)| key(m, p)).collect::<BTreeSet<_>>();
        let routes = CodeRoutes { api: set(ROUTES), webhooks: set(WEBHOOK_ROUTES), local: set(LOCAL_ROUTES) };
        let listed = routes.api.len() + routes.webhooks.len() + routes.local.len();
        assert_eq!(routes.all().len(), listed, "ROUTES, WEBHOOK_ROUTES and LOCAL_ROUTES overlap or repeat a route");
        routes
    }

    fn all(&self) -> BTreeSet<OpKey> {
        self.api.iter().chain(&self.webhooks).chain(&self.local).cloned().collect()
    }

    /// The surfaces that serve `op`, by the list that holds it.
    fn served_by(&self, op: &OpKey) -> BTreeSet<&'static str> {
        let surfaces: &[&'static str] = if self.api.contains(op) {
            &["local", "api"]
        } else if self.webhooks.contains(op) {
            &["local", "ingest"]
        } else if self.local.contains(op) {
            &["local"]
        } else {
            &[]
        };
        surfaces.iter().copied().collect()
    }
}

/// The surfaces the document says serve `op`: its `x-changehub-served-by`
/// (absent: `[local, api]`), checked against its `x-changehub-local-only`.
fn documented_served_by(op: &OpKey, operation: &Value) -> BTreeSet<&'static str> {
    let served_by: BTreeSet<&'static str> = match operation.get(SERVED_BY) {
        None => DEFAULT_SERVED_BY.into_iter().collect(),
        Some(Value::Array(names)) => {
            let mut set = BTreeSet::new();
            for name in names {
                let surface = SURFACES.into_iter().find(|s| Some(*s) == name.as_str());
                let surface =
                    surface.unwrap_or_else(|| panic!("{op}: {SERVED_BY} lists {name}, not one of {SURFACES:?}"));
                assert!(set.insert(surface), "{op}: {SERVED_BY} lists {surface} twice");
            }
            assert!(!set.is_empty(), "{op}: {SERVED_BY} is empty");
            set
        }
        Some(other) => panic!("{op}: {SERVED_BY} must be an array of surfaces, got {other}"),
    };
    let local_only = match operation.get(LOCAL_ONLY) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => panic!("{op}: {LOCAL_ONLY} must be a boolean, got {other}"),
    };
    assert_eq!(
        local_only,
        served_by == BTreeSet::from(["local"]),
        "{op}: {LOCAL_ONLY} is {local_only} but {SERVED_BY} is {served_by:?}; mark an operation \
         `{LOCAL_ONLY}: true` exactly when only the local hub serves it"
    );
    served_by
}

/// An example value for a path parameter: one the route takes, so that a
/// bare request gets past the path (a change `id` is a fresh UUID).
fn example_param(name: &str) -> String {
    match name {
        "source" => "github".to_owned(),
        "tenant" => "acme".to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// A concrete URI for a path template: each `{param}` becomes its example value.
fn instance(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e + 1).unwrap_or(rest.len());
        out.push_str(&example_param(&rest[start + 1..end - 1]));
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
    let routes = CodeRoutes::load();
    let all = routes.all();
    let documented = documented_routes(&doc);

    let missing: Vec<String> = all.difference(&documented).map(ToString::to_string).collect();
    let extra: Vec<String> = documented.difference(&all).map(ToString::to_string).collect();
    assert!(
        missing.is_empty(),
        "routes in ROUTES, WEBHOOK_ROUTES or LOCAL_ROUTES that openapi.yaml does not document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "operations openapi.yaml documents that are in none of ROUTES, WEBHOOK_ROUTES, LOCAL_ROUTES: {extra:?}"
    );

    let mut operation_ids = BTreeSet::new();
    for (op, operation) in doc.operations() {
        assert_eq!(
            documented_served_by(&op, operation),
            routes.served_by(&op),
            "{op}: openapi.yaml's {SERVED_BY} (absent means {DEFAULT_SERVED_BY:?}) differs from the surfaces \
             that serve it in the code (ROUTES: local, api; WEBHOOK_ROUTES: local, ingest; LOCAL_ROUTES: local)"
        );
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

        // Every response declares x-request-id and a JSON body (a 204 none).
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
            if status == "204" {
                assert!(response.get("content").is_none(), "{op} 204: a 204 has no body");
            } else {
                doc.validator(&format!("{op} {status}"), doc.json_schema(&format!("{op} {status}"), response));
            }
        }

        // The bearer token is required exactly where the code authenticates
        // with it (the change API but /health, and /events), alone; there
        // 401 is the bearer answer, with its WWW-Authenticate header.
        let authenticated = (routes.api.contains(&op) && op.path != "/health") || routes.local.contains(&op);
        let security = operation.get("security").unwrap_or(&doc.root["security"]);
        let schemes: BTreeSet<&str> = security
            .as_array()
            .unwrap_or_else(|| panic!("{op}: security must be a list of requirements, got {security}"))
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|r| r.keys().map(String::as_str))
            .collect();
        if authenticated {
            assert_eq!(
                *security,
                json!([{BEARER: []}]),
                "{op}: the code requires a bearer token; document exactly that"
            );
            assert_eq!(
                operation["responses"]["401"]["$ref"],
                json!("#/components/responses/Unauthorized"),
                "{op}: a bearer-authenticated operation answers 401 with the Unauthorized response"
            );
        } else {
            assert!(!schemes.contains(BEARER), "{op}: the code does not authenticate it with a bearer token");
        }
        if op.path == "/health" {
            assert_eq!(*security, json!([]), "{op}: needs no credentials");
        }
        // A caller without the role needed gets 403 from every operation that
        // needs one (all but /me, /health and the webhooks).
        let needs_role = authenticated && op.path != "/me";
        assert_eq!(
            operation["responses"].get("403").map(|r| &r["$ref"]),
            needs_role.then(|| json!("#/components/responses/Forbidden")).as_ref(),
            "{op}: documents 403 exactly when a role is needed, as the Forbidden response"
        );
    }
    let scheme = &doc.root["components"]["securitySchemes"][BEARER];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("http"), &json!("bearer"), &json!("JWT")),
        "components.securitySchemes.{BEARER}"
    );
    let unauthorized = doc.component_response("Unauthorized");
    assert_eq!(
        doc.resolve(&unauthorized["headers"]["WWW-Authenticate"])["required"],
        json!(true),
        "the bearer 401 declares its WWW-Authenticate header"
    );

    // Every component schema compiles (catches typos such as a bad pattern).
    for (name, schema) in doc.root["components"]["schemas"].as_object().expect("components.schemas") {
        doc.validator(&format!("components.schemas.{name}"), schema);
    }
    for name in ["Change", "ChangeState", "ChangeType", "NewChange", "TransitionRequest", "ChangeList", "AuditEntry"]
        .into_iter()
        .chain(["FieldChange", "AuditTrail", "Error", "ErrorCode", "Health", "EventEnvelope", "WebhookPayload"])
        .chain(["DeliveryAccepted", "DeliveryDuplicate", "DeliveryIgnored", "Me", "Catalog", "CatalogSummary"])
        .chain(["DecisionRequest", "NoteRequest", "FreezeWindow", "FreezeList", "MajorIncident", "IncidentList"])
        .chain(["RiskAssessment", "ApprovalPlan", "ChecklistItem", "Conflict", "PostReview", "Role"])
    {
        assert!(doc.root["components"]["schemas"].get(name).is_some(), "components.schemas.{name} is missing");
    }
    for name in ["Unauthorized", "Forbidden", "WebhookUnauthorized", "BadDelivery", "DeliveryAccepted"]
        .into_iter()
        .chain(["DeliveryNotPublished", "IngestUnavailable"])
    {
        doc.component_response(name);
    }
}

#[test]
fn enumerations_are_the_domains() {
    use changehub::domain::catalog::Role;
    use changehub::domain::freeze::Weekday;
    use changehub::domain::risk::{AvailabilityImpact, Complexity, DataImpact, RiskLevel};
    use changehub::domain::{ChangeState, ChangeType};
    let doc = Doc::load();
    let names = |names: &[&str]| -> Vec<Value> { names.iter().map(|n| json!(n)).collect() };
    for (pointer, domain) in [
        ("ChangeState", names(&ChangeState::ALL.map(ChangeState::as_str))),
        (
            "ChangeType",
            names(&[ChangeType::Standard, ChangeType::Normal, ChangeType::Emergency].map(ChangeType::as_str)),
        ),
        ("Role", names(&Role::ALL.map(Role::as_str))),
        ("RiskLevel", names(&RiskLevel::ALL.map(RiskLevel::as_str))),
        ("Complexity", names(&Complexity::ALL.map(Complexity::as_str))),
        ("Impact/properties/data", names(&DataImpact::ALL.map(DataImpact::as_str))),
        ("Impact/properties/availability", names(&AvailabilityImpact::ALL.map(AvailabilityImpact::as_str))),
        ("FreezeSchedule/oneOf/2/properties/days/items", names(&Weekday::ALL.map(Weekday::as_str))),
    ] {
        let listed = doc.root.pointer(&format!("/components/schemas/{pointer}/enum"));
        let listed = listed.unwrap_or_else(|| panic!("components.schemas.{pointer} has no enum"));
        assert_eq!(listed, &json!(domain), "components.schemas.{pointer} lists other values than the domain");
    }
}

// ---------------------------------------------------------------------------
// The router serves exactly the documented operations

#[tokio::test]
async fn every_route_is_served() {
    let api = Api::start().await;
    for op in &CodeRoutes::load().all() {
        let method = Method::from_bytes(op.method.as_bytes()).expect("method");
        let uri = instance(&op.path);
        let what = format!("{method} {uri} (route {op})");
        let answer = api.send(Req::new(method, uri)).await;
        let (routed, answered) = routed(&answer);
        assert!(routed, "{what}: listed in ROUTES/WEBHOOK_ROUTES/LOCAL_ROUTES but the local hub answers {answered}");
        // Whatever it answers to a bare request, the document lists it.
        api.check_documented(&what, op, &answer);
    }
}

/// Whether a router served the request (it has a route for its path and
/// method), and what it answered, for messages.
fn routed(answer: &Answer) -> (bool, String) {
    let unrouted = answer.status == StatusCode::METHOD_NOT_ALLOWED
        || (answer.status == StatusCode::NOT_FOUND && answer.code() == "route_not_found");
    (!unrouted, format!("{} {}", answer.status, answer.brief()))
}

/// Each surface's router serves exactly the routes of the surface: the local
/// hub all of them, the api Lambda's `http::router` only `ROUTES`, the ingest
/// Lambda's router only `WEBHOOK_ROUTES`. (The ingest router is assembled here
/// as functions/ingest assembles it, on the embedded adapters.)
#[tokio::test]
async fn each_router_serves_exactly_its_routes() {
    use changehub::app::Changes;
    let local = Api::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("lambdas.db")).expect("open store");
    let api_lambda = changehub::http::router(
        Arc::new(Changes::new(store.clone(), SystemClock)),
        changehub::http::bearer::Authenticator::Upstream(Default::default()),
    );
    let ingest = Ingest::new(
        store.clone(),
        LocalBus::new(),
        changehub::app::catalog::CachedCatalog::new(store, changehub::app::catalog::DEFAULT_CACHE_TTL),
        SystemClock,
    );
    let ingest_lambda = changehub::http::finish(webhooks::webhook_routes(
        Arc::new(Webhooks { ingest, secrets: secrets() }),
        WebhookLimits::default(),
    ));
    let routers = [("local", &local.router), ("api", &api_lambda), ("ingest", &ingest_lambda)];

    let routes = CodeRoutes::load();
    for op in &routes.all() {
        let served_by = routes.served_by(op);
        for (surface, router) in routers {
            let method = Method::from_bytes(op.method.as_bytes()).expect("method");
            let uri = instance(&op.path);
            let answer = send(router, Req::new(method.clone(), uri.clone())).await;
            let (routed, answered) = routed(&answer);
            let expected = served_by.contains(surface);
            assert_eq!(
                routed,
                expected,
                "{op} ({method} {uri}): the {surface} router {} it, but it is served by {served_by:?} \
                 (ROUTES: local, api; WEBHOOK_ROUTES: local, ingest; LOCAL_ROUTES: local); it answered {answered}",
                if routed { "serves" } else { "does not serve" },
            );
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

/// `base` with the members of the object `edit` set.
fn merged(base: &Value, edit: Value) -> Value {
    let mut v = base.clone();
    if let (Some(object), Value::Object(edit)) = (v.as_object_mut(), edit) {
        object.extend(edit);
    }
    v
}

impl Api {
    /// Opens the change `body` as `token`'s user.
    async fn open(&self, token: &str, body: &Value) -> Answer {
        let a = self.call(&key(&Method::POST, "/changes"), Req::post_json("/changes", body).bearer(token)).await;
        a.expect("open a change", StatusCode::CREATED, None);
        a
    }

    /// Asks, as `token`'s user, for the transition `body` of change `id`.
    async fn transition(&self, token: &str, id: &str, body: &Value) -> Answer {
        let op = key(&Method::POST, "/changes/{id}/transitions");
        self.call(&op, Req::post_json(format!("/changes/{id}/transitions"), body).bearer(token)).await
    }

    /// Moves change `id` from `version` to `to` as `token`'s user, which must succeed.
    async fn move_to(&self, token: &str, id: &str, to: &str, version: u64) -> Answer {
        let a = self.transition(token, id, &json!({"to": to, "version": version})).await;
        a.expect(&format!("move {id} to {to}"), StatusCode::OK, None);
        a
    }

    /// The actions of change `id`'s audit trail.
    async fn actions(&self, token: &str, id: &str) -> Vec<Value> {
        let op = key(&Method::GET, "/changes/{id}/audit");
        let a = self.call(&op, Req::get(format!("/changes/{id}/audit")).bearer(token)).await;
        a.expect("audit", StatusCode::OK, None);
        a.body["entries"].as_array().map(|e| e.iter().map(|e| e["action"].clone()).collect()).unwrap_or_default()
    }
}

#[tokio::test]
async fn responses_match_the_documented_schemas() {
    let api = Api::start().await;
    let health = key(&Method::GET, "/health");
    api.call(&health, Req::get("/health")).await.expect("health", StatusCode::OK, None);

    authentication_scenario(&api).await;
    catalog_scenario(&api).await;
    change_scenario(&api).await;
    approval_scenario(&api).await;
    checklist_and_review_scenario(&api).await;
    template_and_chain_scenario(&api).await;
    incident_scenario(&api).await;
    freeze_scenario(&api).await;
    webhook_scenario(&api).await;
    events_scenario(&api).await;

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

/// Tokens: every way of not authenticating is a 401 with `WWW-Authenticate:
/// Bearer` and a message saying what is wrong; a valid token whose groups
/// grant no role is a 403 naming the role needed. (Before the catalog is
/// imported, only `changehub-admins` members hold a role.)
async fn authentication_scenario(api: &Api) {
    let me = key(&Method::GET, "/me");
    let create = key(&Method::POST, "/changes");
    let events = key(&Method::POST, "/events");
    let now = chrono::Utc::now();
    let forged = mint(&LocalKey::from_secret(vec![7; 32]), &ALICE, now);
    let expired = mint(&api.key, &ALICE, now - chrono::Duration::hours(2));
    let body = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let alarm = || Req::new(Method::POST, "/events").body(sample("aws/cloudwatch.alarm_state_change.json"));
    for (what, op, req, says) in [
        ("no Authorization header", &me, Req::get("/me"), "needs a bearer token"),
        ("a Basic credential", &me, Req::get("/me").header("authorization", "Basic YWxpY2U6cw=="), "`Bearer <token>`"),
        ("a bearer that is not a JWT", &me, Req::get("/me").bearer("not-a-jwt"), "not a valid JWT"),
        ("a token signed with another key", &me, Req::get("/me").bearer(&forged), "signature does not verify"),
        ("an expired token", &me, Req::get("/me").bearer(&expired), "expired"),
        ("no token on a write", &create, Req::post_json("/changes", &body), "needs a bearer token"),
        ("no token on an event", &events, alarm(), "needs a bearer token"),
        ("an expired token on an event", &events, alarm().bearer(&expired), "expired"),
    ] {
        api.call(op, req).await.expect_unauthenticated(what, says);
    }

    for (who, roles) in [(&ALICE, json!([])), (&ROOT, json!(["admin"]))] {
        let a = api.call(&me, Req::get("/me").bearer(&api.token(who))).await;
        a.expect(who.user, StatusCode::OK, None);
        let expected = json!({"user": who.user, "tenant": who.tenant, "groups": who.groups, "roles": roles});
        assert_eq!(a.body, expected, "GET /me as {} before the catalog", who.user);
    }
    api.call(&create, Req::post_json("/changes", &body).bearer(&api.token(&ALICE)))
        .await
        .expect_forbidden("opening a change without a role", "needs the requester or cab or admin role")
        .expect_message("opening a change without a role", "your groups (engineers) grant no role");
    // Any valid token is not enough for /events: it needs the admin or ingest role.
    api.call(&events, alarm().bearer(&api.token(&ALICE))).await.expect_forbidden(
        "an AWS event without the admin or ingest role",
        "sending AWS events needs the admin or ingest role",
    );
    let replay = api.call(&me, Req::get("/me").bearer(&api.token(&REPLAY))).await;
    assert_eq!(replay.body["roles"], json!(["ingest"]), "changehub replay's token grants the ingest role only");
    api.call(&key(&Method::GET, "/changes"), Req::get("/changes?service=payments").bearer(&api.token(&REPLAY)))
        .await
        .expect_forbidden(
            "listing changes with an ingest token",
            "needs the requester or approver or cab or admin or auditor role",
        );
}

/// `PUT /catalog` and `GET /catalog`: the sample imported as YAML by the
/// bootstrap admin, errors naming their line and field, `If-Match`.
async fn catalog_scenario(api: &Api) {
    let get = key(&Method::GET, "/catalog");
    let put = key(&Method::PUT, "/catalog");
    let me = key(&Method::GET, "/me");
    let (root, alice) = (api.token(&ROOT), api.token(&ALICE));
    let yaml_text = String::from_utf8(sample("catalog/acme.yaml")).expect("the sample catalog is UTF-8");
    let yaml = |text: &str| Req::put("/catalog", "application/yaml", text.as_bytes().to_vec());
    let as_json = |catalog: &Value| Req::put("/catalog", "application/json", catalog.to_string().into_bytes());

    // Before the import: the empty catalog at version 0, for admins only.
    let empty = api.call(&get, Req::get("/catalog").bearer(&root)).await;
    empty.expect("the catalog before the import", StatusCode::OK, None);
    assert_eq!((empty.etag(), &empty.body["version"]), ("\"0\"", &json!(0)), "{}", empty.brief());
    assert_eq!(empty.body["catalog"]["services"], json!([]));
    api.call(&get, Req::get("/catalog").bearer(&alice))
        .await
        .expect_forbidden("reading the catalog without a role", "needs the requester or approver or cab or admin");
    api.call(&put, yaml(&yaml_text).bearer(&alice))
        .await
        .expect_forbidden("importing the catalog without the admin role", "needs the admin role");

    // YAML errors name the field, and the line at the start of the message.
    let line = 1 + yaml_text.lines().position(|l| l.trim() == "tier: 1").expect("payments has tier: 1");
    let what = "a catalog with tier 7";
    let a = api.call(&put, yaml(&yaml_text.replacen("tier: 1", "tier: 7", 1)).bearer(&root)).await;
    a.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, "services[0].tier");
    assert!(
        a.message().starts_with(&format!("line {line}: ")),
        "{what}: the message starts with the line: {}",
        a.brief()
    );
    let what = "YAML that is not well-formed";
    let a = api.call(&put, yaml("roles:\n  admin: [platform\n").bearer(&root)).await;
    a.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, "body");
    assert!(a.message().starts_with("line "), "{what}: {}", a.brief());
    api.call(&put, Req::put("/catalog", "text/plain", yaml_text.as_bytes().to_vec()).bearer(&root)).await.expect(
        "a catalog sent as text/plain",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Some("unsupported_media_type"),
    );

    // The import.
    let imported = api.import_catalog().await;
    assert_eq!(imported.body, json!({"version": 1, "services": 3, "templates": 1, "categories": 2}));
    assert_eq!(imported.etag(), "\"1\"");

    // Any role reads it; sent back as JSON with its ETag, it is replaced.
    let current = api.call(&get, Req::get("/catalog").bearer(&alice)).await;
    current.expect("the catalog, read by a requester", StatusCode::OK, None);
    assert_eq!((current.etag(), &current.body["version"]), ("\"1\"", &json!(1)));
    let catalog = current.body["catalog"].clone();
    let what = "a stale If-Match";
    api.call(&put, as_json(&catalog).bearer(&root).header("if-match", "\"0\""))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "if-match");
    let what = "an If-Match that is not a version";
    api.call(&put, as_json(&catalog).bearer(&root).header("if-match", "yesterday"))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "if-match");
    let mut dangling = catalog.clone();
    dangling["services"][1]["depends_on"] = json!(["nowhere"]);
    let what = "a JSON catalog with a dangling dependency";
    api.call(&put, as_json(&dangling).bearer(&root))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "services[1].depends_on[0]");
    let replaced = api.call(&put, as_json(&catalog).bearer(&root).header("if-match", current.etag())).await;
    replaced.expect("the catalog sent back as JSON", StatusCode::OK, None);
    assert_eq!((replaced.etag(), &replaced.body["version"]), ("\"2\"", &json!(2)));
    let again = api.call(&get, Req::get("/catalog").bearer(&alice)).await;
    again.expect("the catalog again", StatusCode::OK, None);
    assert_eq!(again.body["catalog"], catalog, "the JSON round trip keeps the catalog as it was");

    // The roles its groups grant.
    for (who, roles) in [
        (&ALICE, json!(["requester"])),
        (&PAT, json!(["approver"])),
        (&SAM, json!(["approver", "cab"])),
        (&ADA, json!(["admin"])),
        (&AVA, json!(["auditor"])),
        (&VIC, json!([])),
    ] {
        let a = api.call(&me, Req::get("/me").bearer(&api.token(who))).await;
        a.expect(who.user, StatusCode::OK, None);
        assert_eq!(a.body["roles"], roles, "the roles of {}", who.user);
    }
}

/// Opening, reading, listing and moving changes; their audit trail; bad input.
async fn change_scenario(api: &Api) {
    let create = key(&Method::POST, "/changes");
    let list = key(&Method::GET, "/changes");
    let get = key(&Method::GET, "/changes/{id}");
    let transition = key(&Method::POST, "/changes/{id}/transitions");
    let audit = key(&Method::GET, "/changes/{id}/audit");
    let (alice, pat, vic) = (api.token(&ALICE), api.token(&PAT), api.token(&VIC));

    // Create two changes on payments.
    let body = new_change(&["payments", "ledger"], "2026-12-01T22:00:00Z", "2026-12-01T23:30:00Z");
    let created = api.open(&alice, &body).await;
    let id = created.id();
    let location = created.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
    assert_eq!(location, Some(format!("/changes/{id}").as_str()), "create: Location header");
    assert_eq!(created.body["state"], json!("draft"));
    assert_eq!(created.body["version"], json!(1));
    assert_eq!(created.body["tenant"], json!("acme"));
    assert_eq!(created.body["requester"], json!(ALICE.user));
    assert_eq!((&created.body["category"], &created.body["complexity"]), (&json!("general"), &json!("medium")));
    assert!(created.body["risk"]["level"].is_string(), "risk is scored at creation: {}", created.brief());
    let body2 = new_change(&["payments"], "2026-12-02T22:00:00Z", "2026-12-02T23:00:00Z");
    api.open(&alice, &body2).await;

    // Read it; another tenant does not see it; a valid token without a role may not read.
    let got = api.call(&get, Req::get(format!("/changes/{id}")).bearer(&alice)).await;
    got.expect("get", StatusCode::OK, None);
    assert_eq!(got.body, created.body, "get returns the created change");
    let globex = api.token(&GLOBEX_ROOT);
    api.call(&get, Req::get(format!("/changes/{id}")).bearer(&globex)).await.expect(
        "get, another tenant's admin",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&get, Req::get(format!("/changes/{id}")).bearer(&vic))
        .await
        .expect_forbidden("get, no role", "reading changes needs");

    // List, one page at a time.
    let range = "from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z";
    let page1 = api.call(&list, Req::get(format!("/changes?service=payments&{range}&limit=1")).bearer(&alice)).await;
    page1.expect("list page 1", StatusCode::OK, None);
    assert_eq!(page1.body["changes"].as_array().map(Vec::len), Some(1), "list page 1: {}", page1.body);
    let cursor = page1.body["next_cursor"].as_str().expect("list page 1 has a next_cursor").to_owned();
    let cursor = percent_encode(&cursor);
    let uri = format!("/changes?service=payments&{range}&limit=1&cursor={cursor}");
    let page2 = api.call(&list, Req::get(uri).bearer(&alice)).await;
    page2.expect("list page 2", StatusCode::OK, None);
    let mut listed: Vec<Value> = page1.body["changes"].as_array().cloned().unwrap_or_default();
    listed.extend(page2.body["changes"].as_array().cloned().unwrap_or_default());
    assert!(listed.iter().any(|c| c["id"] == json!(id)), "the created change is listed: {listed:?}");
    let all = api.call(&list, Req::get(format!("/changes?service=ledger&{range}")).bearer(&alice)).await;
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
        ("service=payments&limit=1&limit=2", "limit"),
    ] {
        let what = format!("list ?{query}");
        api.call(&list, Req::get(format!("/changes?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // Transition, then refused ones: not the requester, illegal, stale, by decision only.
    let submit = json!({"to": "submitted", "version": 1, "reason": "ready for review"});
    api.transition(&pat, &id, &submit).await.expect_forbidden(
        "an approver moving someone else's change",
        "needs the requester role and to be the change's requester",
    );
    api.transition(&vic, &id, &submit)
        .await
        .expect_forbidden("moving a change without a role", "moving a change needs");
    let moved = api.transition(&alice, &id, &submit).await;
    moved.expect("transition", StatusCode::OK, None);
    assert_eq!((&moved.body["state"], &moved.body["version"]), (&json!("submitted"), &json!(2)));
    assert!(moved.body["approval"]["steps"].is_array(), "a submitted normal change has its plan: {}", moved.brief());
    for (what, body, code, field) in [
        ("illegal transition", json!({"to": "implementing", "version": 2}), "illegal_transition", "to"),
        ("stale transition", json!({"to": "cancelled", "version": 1}), "version_conflict", "version"),
        ("approving by transition", json!({"to": "approved", "version": 2}), "decision_required", "to"),
    ] {
        api.transition(&alice, &id, &body)
            .await
            .expect(what, StatusCode::CONFLICT, Some(code))
            .expect_field(what, field);
    }
    for field in ["reason", "override_reason"] {
        let what = format!("a long {field}");
        api.transition(&alice, &id, &json!({"to": "cancelled", "version": 2, field: "x".repeat(2001)}))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // Audit trail, readable by an auditor.
    let trail = api.call(&audit, Req::get(format!("/changes/{id}/audit")).bearer(&api.token(&AVA))).await;
    trail.expect("audit", StatusCode::OK, None);
    assert_eq!(trail.body["change_id"], json!(id));
    assert_eq!(trail.body["entries"].as_array().map(Vec::len), Some(2), "audit: {}", trail.body);
    assert_eq!(trail.body["entries"][1]["reason"], json!("ready for review"));

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7();
    for (op, req) in [
        (&get, Req::get(format!("/changes/{unknown}"))),
        (&audit, Req::get(format!("/changes/{unknown}/audit"))),
        (&transition, Req::post_json(format!("/changes/{unknown}/transitions"), &submit)),
    ] {
        let what = format!("{op} with an unknown id");
        api.call(op, req.bearer(&alice)).await.expect(&what, StatusCode::NOT_FOUND, Some("not_found"));
    }
    for (op, req) in [
        (&get, Req::get("/changes/not-a-uuid")),
        (&audit, Req::get("/changes/not-a-uuid/audit")),
        (&transition, Req::post_json("/changes/not-a-uuid/transitions", &submit)),
    ] {
        let what = format!("{op} with a bad id");
        api.call(op, req.bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }

    // Bodies: malformed, wrong type, unknown field, too large.
    let oversized = {
        let mut b = br#"{"title": ""#.to_vec();
        b.resize(MAX_BODY_BYTES + 1, b'x');
        b
    };
    for (op, uri) in [(&create, "/changes".to_owned()), (&transition, format!("/changes/{id}/transitions"))] {
        let what = |w: &str| format!("{w} body on {op}");
        let post = || Req::new(Method::POST, uri.clone()).bearer(&alice);
        api.call(op, post().raw("application/json", b"{not json".to_vec())).await.expect(
            &what("malformed"),
            StatusCode::BAD_REQUEST,
            Some("malformed_json"),
        );
        api.call(op, post().raw("text/plain", b"{}".to_vec())).await.expect(
            &what("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, post()).await.expect(
            &what("untyped"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, post().raw("application/json", oversized.clone())).await.expect(
            &what("oversized"),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
        );
        api.call(op, post().raw("application/json; charset=utf-8", b"[]".to_vec()))
            .await
            .expect(&what("array"), StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what("array"), "body");
    }
    for (what, edit, field) in [
        ("unknown field", json!({"colour": "red"}), "colour"),
        ("bad service", json!({"services": ["payments", "Not#Ok"]}), "services[1]"),
        ("unknown category", json!({"category": "no-such-category"}), "category"),
        ("a standard change without a template", json!({"type": "standard"}), "template"),
        ("a normal change with a template", json!({"template": "rotate-tls-cert"}), "template"),
        ("unknown template", json!({"type": "standard", "template": "no-such-template"}), "template"),
        ("unknown data impact", json!({"impact": {"data": "everything"}}), "impact.data"),
        ("unknown complexity", json!({"complexity": "extreme"}), "complexity"),
    ] {
        api.call(&create, Req::post_json("/changes", &merged(&body, edit)).bearer(&alice))
            .await
            .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(what, field);
    }
    let mut no_title = body.clone();
    no_title.as_object_mut().expect("object").remove("title");
    api.call(&create, Req::post_json("/changes", &no_title).bearer(&alice))
        .await
        .expect("missing title", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("missing title", "title");
}

/// A normal change on payments climbs its two levels (team-lead, then cab)
/// under dual control; another is rejected.
async fn approval_scenario(api: &Api) {
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let (alice, pat, sam, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&SAM), api.token(&CAROL));
    let approve = |token: &str, uri: &str| Req::post_json(uri, &json!({"decision": "approve"})).bearer(token);
    let id = api.open(&alice, &new_change(&["payments"], "2026-12-07T22:00:00Z", "2026-12-07T23:00:00Z")).await.id();
    let uri = format!("/changes/{id}/decisions");

    api.call(&decide, approve(&pat, &uri)).await.expect(
        "deciding a draft",
        StatusCode::CONFLICT,
        Some("no_pending_approval"),
    );
    let submitted = api.move_to(&alice, &id, "submitted", 1).await;
    let steps = submitted.body["approval"]["steps"].as_array().cloned().unwrap_or_default();
    let names: Vec<&Value> = steps.iter().map(|s| &s["name"]).collect();
    assert_eq!(names, [&json!("team-lead"), &json!("cab")], "the payments chain: {}", submitted.brief());
    assert!(steps[0]["due_at"].is_string() && steps[1].get("due_at").is_none(), "only level 1 runs: {steps:?}");

    // Refused: the requester (even in the group), the wrong level's group, no deciding role, no role.
    let alice_lead = api.token(&Who { groups: &["engineers", "payments-leads"], ..ALICE });
    for (what, token, says) in [
        ("the requester", &alice_lead, "dual control: alice@example.com requested this change"),
        (
            "the cab before level 1",
            &carol,
            "level 1 (team-lead of service payments) needs a member of any of: payments-leads",
        ),
        ("an auditor", &api.token(&AVA), "needs the approver, cab or admin role"),
        ("a token without a role", &api.token(&VIC), "deciding an approval needs"),
    ] {
        api.call(&decide, approve(token, &uri)).await.expect_forbidden(what, says);
    }
    let what = "a stale decision";
    api.call(&decide, Req::post_json(&uri, &json!({"decision": "approve", "version": 1})).bearer(&sam))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let what = "an unknown decision";
    api.call(&decide, Req::post_json(&uri, &json!({"decision": "maybe"})).bearer(&sam))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "decision");
    let unknown = format!("/changes/{}/decisions", uuid::Uuid::now_v7());
    api.call(&decide, approve(&sam, &unknown)).await.expect(
        "deciding an unknown change",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );

    // Level 1 by Sam, who may not approve level 2 too; level 2 by Carol.
    let body = json!({"decision": "approve", "version": 2, "comment": "rollback plan reviewed"});
    let level1 = api.call(&decide, Req::post_json(&uri, &body).bearer(&sam)).await;
    level1.expect("level 1", StatusCode::OK, None);
    assert_eq!((&level1.body["state"], level1.version()), (&json!("submitted"), 3));
    let approval = &level1.body["approval"]["steps"][0]["approvals"][0];
    assert_eq!(
        (&approval["by"], &approval["group"]),
        (&json!(SAM.user), &json!("payments-leads")),
        "{}",
        level1.brief()
    );
    api.call(&decide, approve(&sam, &uri))
        .await
        .expect_forbidden("one person at two levels", "already approved level 1 (team-lead)");
    let level2 = api.call(&decide, approve(&carol, &uri)).await;
    level2.expect("level 2", StatusCode::OK, None);
    assert_eq!((&level2.body["state"], level2.version()), (&json!("approved"), 4));
    api.call(&decide, approve(&carol, &uri)).await.expect(
        "deciding an approved change",
        StatusCode::CONFLICT,
        Some("no_pending_approval"),
    );
    assert_eq!(
        api.actions(&alice, &id).await,
        [json!("created"), json!("transitioned"), json!("decided"), json!("decided")]
    );

    // A rejection at level 1 closes the plan.
    let rejected =
        api.open(&alice, &new_change(&["payments"], "2026-12-08T22:00:00Z", "2026-12-08T23:00:00Z")).await.id();
    api.move_to(&alice, &rejected, "submitted", 1).await;
    let body = json!({"decision": "reject", "comment": "no rollback plan", "version": null});
    let a = api.call(&decide, Req::post_json(format!("/changes/{rejected}/decisions"), &body).bearer(&pat)).await;
    a.expect("a rejection", StatusCode::OK, None);
    assert_eq!(a.body["state"], json!("rejected"));
    assert_eq!(a.body["approval"]["rejected"]["by"], json!(PAT.user), "{}", a.brief());
}

/// An emergency schema migration: checklist items done with evidence,
/// approved on submission, its post-implementation review due, reported,
/// then recorded under dual control.
async fn checklist_and_review_scenario(api: &Api) {
    let item = key(&Method::POST, "/changes/{id}/checklist/{item}");
    let review = key(&Method::POST, "/changes/{id}/review");
    let pending = key(&Method::GET, "/reports/pending-reviews");
    let (riley, alice, pat, carol) = (api.token(&RILEY), api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let note = |version: u64| json!({"version": version, "note": "restored last night's backup to staging"});
    let emergency = merged(
        &new_change(&["search"], "2026-12-04T01:00:00Z", "2026-12-04T02:00:00Z"),
        json!({"type": "emergency", "category": "database_schema", "complexity": "high",
               "impact": {"data": "write", "availability": "degraded"}}),
    );
    let created = api.open(&riley, &emergency).await;
    let id = created.id();
    let ids: Vec<&Value> =
        created.body["checklist"].as_array().map(|c| c.iter().map(|i| &i["id"]).collect()).unwrap_or_default();
    assert_eq!(ids, [&json!("backup_verified"), &json!("rollback_script")], "{}", created.brief());
    let item_uri = |name: &str| format!("/changes/{id}/checklist/{name}");
    let review_uri = format!("/changes/{id}/review");

    // The checklist: refusals, then the first item.
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(1)).bearer(&pat))
        .await
        .expect_forbidden("an approver completing someone else's checklist", "completing a checklist item needs");
    api.call(&item, Req::post_json(item_uri("coffee"), &note(1)).bearer(&riley))
        .await
        .expect("an unknown item", StatusCode::NOT_FOUND, Some("not_found"))
        .expect_message("an unknown item", "backup_verified, rollback_script");
    let what = "a stale checklist item";
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(9)).bearer(&riley))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let what = "a blank note";
    api.call(&item, Req::post_json(item_uri("backup_verified"), &json!({"version": 1, "note": " "})).bearer(&riley))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "note");
    let done = api.call(&item, Req::post_json(item_uri("backup_verified"), &note(1)).bearer(&riley)).await;
    done.expect("a checklist item", StatusCode::OK, None);
    assert_eq!((done.version(), &done.body["checklist"][0]["done"]["by"]), (2, &json!(RILEY.user)));
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(2)).bearer(&riley)).await.expect(
        "an item done twice",
        StatusCode::CONFLICT,
        Some("already_done"),
    );
    api.call(&review, Req::post_json(&review_uri, &note(2)).bearer(&carol)).await.expect(
        "reviewing a draft",
        StatusCode::CONFLICT,
        Some("no_review_due"),
    );

    // Submitted, an emergency waits for one approval by the cab, never its requester's; then its review falls due.
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let submitted = api.move_to(&riley, &id, "submitted", 2).await;
    assert_eq!((&submitted.body["state"], submitted.version()), (&json!("submitted"), 3), "{}", submitted.brief());
    assert_eq!(submitted.body["approval"]["steps"][0]["name"], json!("emergency"), "{}", submitted.brief());
    let approve = json!({"decision": "approve", "version": 3});
    api.call(&decide, Req::post_json(format!("/changes/{id}/decisions"), &approve).bearer(&riley))
        .await
        .expect_forbidden("the requester approving their own emergency", "dual control");
    let approved = api.call(&decide, Req::post_json(format!("/changes/{id}/decisions"), &approve).bearer(&carol)).await;
    approved.expect("the cab approving an emergency", StatusCode::OK, None);
    assert_eq!((&approved.body["state"], approved.version()), (&json!("approved"), 4), "{}", approved.brief());
    assert!(approved.body["review"]["due_at"].is_string());
    let reports = api.call(&pending, Req::get("/reports/pending-reviews").bearer(&alice)).await;
    reports.expect("pending reviews", StatusCode::OK, None);
    assert!(reports.body["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == json!(id))));

    // Implementation waits for the checklist; then the checklist is closed.
    api.move_to(&riley, &id, "scheduled", 4).await;
    let what = "implementing with an open checklist";
    api.transition(&riley, &id, &json!({"to": "implementing", "version": 5}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("checklist_incomplete"))
        .expect_field(what, "checklist")
        .expect_message(what, "rollback_script");
    api.call(&item, Req::post_json(item_uri("rollback_script"), &note(5)).bearer(&riley)).await.expect(
        "the second item",
        StatusCode::OK,
        None,
    );
    // Its window lies ahead: only as an approved emergency, with a reason, does it start now.
    let what = "implementing outside the planned window";
    api.transition(&riley, &id, &json!({"to": "implementing", "version": 6}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("outside_window"))
        .expect_field(what, "planned_start")
        .expect_message(what, "2026-12-04T01:00:00Z to 2026-12-04T02:00:00Z");
    let early = json!({"to": "implementing", "version": 6, "override_reason": "the migration fixes the outage"});
    api.transition(&riley, &id, &early).await.expect("an approved emergency starting early", StatusCode::OK, None);
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(7)).bearer(&riley)).await.expect(
        "a checklist item during implementation",
        StatusCode::CONFLICT,
        Some("checklist_closed"),
    );

    // The review: after implementation, by a cab member who did not request it.
    api.call(&review, Req::post_json(&review_uri, &note(7)).bearer(&carol)).await.expect(
        "a review during implementation",
        StatusCode::CONFLICT,
        Some("not_implemented"),
    );
    api.move_to(&riley, &id, "completed", 7).await;
    api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&riley))
        .await
        .expect_forbidden("the requester reviewing", "dual control");
    api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&alice))
        .await
        .expect_forbidden("a requester reviewing", "needs the cab or admin role");
    let what = "a stale review";
    api.call(&review, Req::post_json(&review_uri, &note(7)).bearer(&carol))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let reviewed = api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&carol)).await;
    reviewed.expect("the review", StatusCode::OK, None);
    assert_eq!((reviewed.version(), &reviewed.body["review"]["done"]["by"]), (9, &json!(CAROL.user)));
    api.call(&review, Req::post_json(&review_uri, &note(9)).bearer(&carol)).await.expect(
        "a second review",
        StatusCode::CONFLICT,
        Some("already_done"),
    );
    let actions = api.actions(&alice, &id).await;
    for action in ["checklist_item_done", "reviewed"] {
        assert!(actions.contains(&json!(action)), "the audit trail records {action}: {actions:?}");
    }

    // The report: the reviewed change has left it; two others, one page each.
    for day in ["05", "06"] {
        let body = merged(
            &new_change(&["search"], &format!("2026-12-{day}T01:00:00Z"), &format!("2026-12-{day}T02:00:00Z")),
            json!({"type": "emergency"}),
        );
        let other = api.open(&riley, &body).await.id();
        api.move_to(&riley, &other, "submitted", 1).await;
        let uri = format!("/changes/{other}/decisions");
        let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
        a.expect("the cab approving an emergency", StatusCode::OK, None);
    }
    let page1 = api.call(&pending, Req::get("/reports/pending-reviews?limit=1").bearer(&alice)).await;
    page1.expect("pending reviews, page 1", StatusCode::OK, None);
    let cursor = page1.body["next_cursor"].as_str().map(percent_encode).expect("a next page");
    let page2 =
        api.call(&pending, Req::get(format!("/reports/pending-reviews?limit=1&cursor={cursor}")).bearer(&alice)).await;
    page2.expect("pending reviews, page 2", StatusCode::OK, None);
    assert_eq!(page2.body["next_cursor"], Value::Null, "{}", page2.brief());
    let listed: Vec<&Value> =
        [&page1, &page2].iter().flat_map(|p| p.body["changes"].as_array().into_iter().flatten()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|c| c["id"] != json!(id)), "the reviewed change is no longer pending");
    assert!(listed[0]["review"]["due_at"].as_str() <= listed[1]["review"]["due_at"].as_str(), "earliest due first");
    for (query, field) in
        [("limit=0", "limit"), ("limit=many", "limit"), ("colour=red", "colour"), ("cursor=a&cursor=b", "cursor")]
    {
        let what = format!("pending reviews ?{query}");
        api.call(&pending, Req::get(format!("/reports/pending-reviews?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&pending, Req::get("/reports/pending-reviews").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("reports without a role", "reading reports needs");
}

/// Standard changes from the catalog's templates, and normal changes on a
/// service without an approval chain.
async fn template_and_chain_scenario(api: &Api) {
    let alice = api.token(&ALICE);
    let cert = json!({"type": "standard", "template": "rotate-tls-cert", "category": "certificate"});
    let standard = merged(&new_change(&["payments"], "2026-12-09T22:00:00Z", "2026-12-09T23:00:00Z"), cert);
    let created = api.open(&alice, &standard).await;
    assert_eq!(created.body["template"], json!("rotate-tls-cert"));
    let id = created.id();
    let approved = api.move_to(&alice, &id, "submitted", 1).await;
    assert_eq!((&approved.body["state"], approved.version()), (&json!("approved"), 3), "{}", approved.brief());

    // The template is for certificates, not the default category.
    let outside = merged(&standard, json!({"category": null}));
    let id = api.open(&alice, &outside).await.id();
    let what = "a standard change outside its template's category";
    api.transition(&alice, &id, &json!({"to": "submitted", "version": 1}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("template_mismatch"))
        .expect_field(what, "category");

    // A normal change needs each service's approval chain from the catalog.
    let id = api.open(&alice, &new_change(&["billing"], "2026-12-09T22:00:00Z", "2026-12-09T23:00:00Z")).await.id();
    let what = "a normal change on a service the catalog does not list";
    api.transition(&alice, &id, &json!({"to": "submitted", "version": 1}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("no_approval_chain"))
        .expect_field(what, "services")
        .expect_message(what, "billing");
}

/// A major incident on payments: while it is open, only its commander may
/// schedule a critical change there, with a reason.
async fn incident_scenario(api: &Api) {
    let list = key(&Method::GET, "/incidents");
    let declare = key(&Method::POST, "/incidents");
    let resolve = key(&Method::POST, "/incidents/{id}/resolve");
    let (alice, pat, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let incident = json!({"id": "PD-Q2ZX9K", "title": "Card payments failing", "services": ["payments"],
                          "commander": CAROL.user});

    let a = api.call(&list, Req::get("/incidents").bearer(&alice)).await;
    a.expect("no incidents", StatusCode::OK, None);
    assert_eq!(a.body, json!({"open": [], "log": []}));
    api.call(&declare, Req::post_json("/incidents", &incident).bearer(&alice))
        .await
        .expect_forbidden("a requester declaring an incident", "needs the admin or cab or approver role");
    let what = "an incident without services";
    api.call(&declare, Req::post_json("/incidents", &merged(&incident, json!({"services": []}))).bearer(&pat))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "services");
    let declared = api.call(&declare, Req::post_json("/incidents", &incident).bearer(&pat)).await;
    declared.expect("declare an incident", StatusCode::CREATED, None);
    assert_eq!(declared.body["declared_by"], json!(PAT.user));
    let a = api.call(&list, Req::get("/incidents").bearer(&alice)).await;
    a.expect("the open incident", StatusCode::OK, None);
    assert_eq!(a.body["open"], json!([declared.body]));
    // Declaring the same id again would take it over (its commander): refused.
    let what = "declaring an open incident's id again";
    api.call(
        &declare,
        Req::post_json("/incidents", &merged(&incident, json!({"commander": SAM.user}))).bearer(&api.token(&SAM)),
    )
    .await
    .expect(what, StatusCode::CONFLICT, Some("incident_exists"))
    .expect_field(what, "id")
    .expect_message(what, "commander carol@example.com");

    // A critical emergency change on payments, approved by the cab.
    let critical = merged(
        &new_change(&["payments"], "2026-12-05T10:00:00Z", "2026-12-05T11:00:00Z"),
        json!({"type": "emergency", "complexity": "high", "impact": {"data": "destructive", "availability": "outage"}}),
    );
    let id = api.open(&alice, &critical).await.id();
    let submitted = api.move_to(&alice, &id, "submitted", 1).await;
    assert_eq!(submitted.body["risk"]["level"], json!("critical"), "{}", submitted.brief());
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let uri = format!("/changes/{id}/decisions");
    let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
    a.expect("the cab approving an emergency", StatusCode::OK, None);
    let schedule = json!({"to": "scheduled", "version": 3});
    for (what, token) in [("the requester scheduling", &alice), ("the commander without a reason", &carol)] {
        api.transition(token, &id, &schedule)
            .await
            .expect(what, StatusCode::CONFLICT, Some("major_incident"))
            .expect_field(what, "override_reason")
            .expect_message(what, "PD-Q2ZX9K");
    }
    let authorized = merged(&schedule, json!({"override_reason": "the fix for the incident itself"}));
    let scheduled = api.transition(&carol, &id, &authorized).await;
    scheduled.expect("the commander scheduling with a reason", StatusCode::OK, None);
    assert_eq!(scheduled.body["state"], json!("scheduled"));

    let uri = "/incidents/PD-Q2ZX9K/resolve";
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&alice)).await.expect_forbidden(
        "a requester resolving an incident",
        "needs its commander (carol@example.com) or the cab or admin role",
    );
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&pat))
        .await
        .expect_forbidden("an approver resolving another's incident", "needs its commander (carol@example.com)");
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&carol)).await.expect(
        "the commander resolves the incident",
        StatusCode::NO_CONTENT,
        None,
    );
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&carol)).await.expect(
        "resolve it again",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let a = api.call(&list, Req::get("/incidents").bearer(&alice)).await;
    a.expect("no open incidents", StatusCode::OK, None);
    assert_eq!(a.body["open"], json!([]));
    let log: Vec<_> = a.body["log"]
        .as_array()
        .map(|l| l.iter().map(|e| (e["action"].clone(), e["by"].clone(), e["incident"]["id"].clone())).collect())
        .unwrap_or_default();
    assert_eq!(
        log,
        [
            (json!("declared"), json!(PAT.user), json!("PD-Q2ZX9K")),
            (json!("resolved"), json!(CAROL.user), json!("PD-Q2ZX9K"))
        ],
        "{}",
        a.body
    );
}

/// Freeze windows of each kind; a normal change planned into one is refused,
/// an emergency overrides it with a reason; lifted, it refuses nothing.
async fn freeze_scenario(api: &Api) {
    let list = key(&Method::GET, "/freezes");
    let put = key(&Method::POST, "/freezes");
    let delete = key(&Method::DELETE, "/freezes/{id}");
    let (alice, ada, carol, pat) = (api.token(&ALICE), api.token(&ADA), api.token(&CAROL), api.token(&PAT));
    let migration = json!({
        "id": "payments-migration",
        "name": "Payments migration",
        "services": ["payments"],
        "schedule": {"kind": "one_off", "start": "2026-12-10T00:00:00Z", "end": "2026-12-11T00:00:00Z"},
        "reason": "ledger cut-over",
    });
    let a = api.call(&list, Req::get("/freezes").bearer(&alice)).await;
    a.expect("no freezes", StatusCode::OK, None);
    assert_eq!(a.body, json!({"freezes": []}));
    api.call(&put, Req::post_json("/freezes", &migration).bearer(&alice))
        .await
        .expect_forbidden("a requester declaring a freeze", "needs the admin or cab role");
    let backwards = set_at(&migration, "/schedule/end", json!("2026-12-09T00:00:00Z"));
    let what = "a freeze ending before it starts";
    api.call(&put, Req::post_json("/freezes", &backwards).bearer(&ada))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "schedule.end");
    let stored = api.call(&put, Req::post_json("/freezes", &migration).bearer(&ada)).await;
    stored.expect("a one-off freeze", StatusCode::CREATED, None);
    assert_eq!(stored.body, migration);
    for (window, stored_schedule) in [
        (
            json!({"id": "month-end", "name": "Month-end close", "services": ["reporting"],
                   "schedule": {"kind": "month_end", "business_days": 2}}),
            json!({"kind": "month_end", "business_days": 2}),
        ),
        (
            json!({"id": "weekends", "name": "Weekends", "services": ["reporting"],
                   "schedule": {"kind": "weekly", "days": ["sat", "sun"]}}),
            json!({"kind": "weekly", "days": ["sat", "sun"], "start": "00:00", "end": "24:00"}),
        ),
    ] {
        let a = api.call(&put, Req::post_json("/freezes", &window).bearer(&carol)).await;
        a.expect(&format!("the freeze {}", window["id"]), StatusCode::CREATED, None);
        assert_eq!((&a.body["schedule"], &a.body["reason"]), (&stored_schedule, &json!("")), "{}", a.brief());
    }
    let a = api.call(&list, Req::get("/freezes").bearer(&alice)).await;
    a.expect("the freezes", StatusCode::OK, None);
    let freezes = a.body["freezes"].as_array().cloned().unwrap_or_default();
    assert_eq!(freezes.len(), 3, "{}", a.brief());
    for f in &freezes[1..] {
        assert!(f["next_occurrence"]["start"].is_string(), "a recurring freeze has a next occurrence: {f}");
    }

    // Planned into the freeze: a normal change is refused, an emergency passes with a reason.
    let frozen = new_change(&["payments"], "2026-12-10T10:00:00Z", "2026-12-10T11:00:00Z");
    let normal = api.open(&alice, &frozen).await.id();
    let submit = json!({"to": "submitted", "version": 1});
    let what = "submitting into a freeze";
    api.transition(&alice, &normal, &submit)
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "planned_start")
        .expect_message(what, "payments-migration");
    let emergency = api.open(&alice, &merged(&frozen, json!({"type": "emergency"}))).await.id();
    let what = "an emergency into a freeze without a reason";
    api.transition(&alice, &emergency, &submit)
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "override_reason");
    let overridden = merged(&submit, json!({"override_reason": "card payments are failing"}));
    let a = api.transition(&alice, &emergency, &overridden).await;
    a.expect("an emergency into a freeze with a reason", StatusCode::OK, None);
    assert_eq!(a.body["state"], json!("submitted"), "the override holds once another person approves");
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let uri = format!("/changes/{emergency}/decisions");
    let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
    a.expect("the cab approving an emergency", StatusCode::OK, None);
    assert_eq!((&a.body["state"], a.version()), (&json!("approved"), 3));

    // Rescheduled within the freeze: the gate applies again, and the approved emergency's override holds.
    let reschedule = key(&Method::POST, "/changes/{id}/reschedule");
    let uri = format!("/changes/{emergency}/reschedule");
    let later = json!({"version": 3, "planned_start": "2026-12-10T14:00:00Z", "planned_end": "2026-12-10T15:00:00Z",
                       "reason": "the vendor asked for the afternoon"});
    let what = "rescheduling into a freeze without a reason";
    api.call(&reschedule, Req::post_json(&uri, &later).bearer(&alice))
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "override_reason");
    let what = "rescheduling with the window backwards";
    let backwards = merged(&later, json!({"planned_end": "2026-12-10T13:00:00Z"}));
    api.call(&reschedule, Req::post_json(&uri, &backwards).bearer(&alice))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "planned_end");
    api.call(&reschedule, Req::post_json(&uri, &later).bearer(&pat))
        .await
        .expect_forbidden("an approver rescheduling someone else's change", "rescheduling a change needs");
    let with_reason = merged(&later, json!({"override_reason": "card payments are still failing"}));
    let a = api.call(&reschedule, Req::post_json(&uri, &with_reason).bearer(&alice)).await;
    a.expect("an approved emergency rescheduled into a freeze with a reason", StatusCode::OK, None);
    assert_eq!((&a.body["planned_start"], a.version()), (&json!("2026-12-10T14:00:00Z"), 4));
    let what = "a stale reschedule";
    api.call(&reschedule, Req::post_json(&uri, &with_reason).bearer(&alice))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    assert!(api.actions(&alice, &emergency).await.contains(&json!("rescheduled")));

    // Lifted.
    let uri = "/freezes/payments-migration";
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&alice))
        .await
        .expect_forbidden("a requester lifting a freeze", "lifting a freeze window needs");
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&ada)).await.expect("lift", StatusCode::NO_CONTENT, None);
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&ada)).await.expect(
        "lift again",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.move_to(&alice, &normal, "submitted", 1).await;
}

/// The part of the scenario on the webhook routes: signed deliveries of real
/// samples from every source.
async fn webhook_scenario(api: &Api) {
    let default_route = key(&Method::POST, "/webhooks/{source}");
    let tenant_route = key(&Method::POST, "/tenants/{tenant}/webhooks/{source}");

    // Per source, on both routes: an unsigned delivery and one signed with
    // another secret are refused, naming the check that failed; the signed
    // delivery is published; the same delivery again is a duplicate.
    for (origin, file, credential) in [
        (Origin::Github, "github/deployment_status.success.json", "X-Hub-Signature-256"),
        (Origin::Gitlab, "gitlab/merge_request.merge.json", "X-Gitlab-Token"),
        (Origin::Pagerduty, "pagerduty/incident.triggered.json", "X-PagerDuty-Signature"),
        (Origin::Alertmanager, "alertmanager/firing.json", "Authorization"),
        (Origin::Incidentio, "incidentio/public_incident.incident_created_v2.json", "webhook-timestamp"),
    ] {
        let source = origin.as_str();
        let secret = if origin == Origin::Incidentio { SIGNING_SECRET } else { SECRET };
        let delivery = uuid::Uuid::now_v7().to_string();
        for (op, uri) in [
            (&default_route, format!("/webhooks/{source}")),
            (&tenant_route, format!("/tenants/acme/webhooks/{source}")),
        ] {
            let what = |w: &str| format!("{w} {file} to {uri}");
            let unsigned = api.call(op, Req::webhook(origin, &uri, file, &delivery, None)).await;
            unsigned.expect(&what("unsigned"), StatusCode::UNAUTHORIZED, Some("unauthorized"));
            assert!(
                unsigned.message().to_ascii_lowercase().contains(&credential.to_ascii_lowercase()),
                "{}: the message names the failed check ({credential}): {}",
                what("unsigned"),
                unsigned.brief()
            );
            let forged = api.call(op, Req::webhook(origin, &uri, file, &delivery, Some("not the secret"))).await;
            forged.expect(&what("wrongly signed"), StatusCode::UNAUTHORIZED, Some("unauthorized"));
            assert!(!forged.brief().contains(SECRET), "{}: the answer shows a secret", what("wrongly signed"));

            api.call(op, Req::webhook(origin, &uri, file, &delivery, Some(secret)))
                .await
                .expect_published(&what("signed"), source);
            let again = api.call(op, Req::webhook(origin, &uri, file, &delivery, Some(secret))).await;
            again.expect(&what("the same delivery again:"), StatusCode::OK, None);
            assert_eq!(again.body, json!({"duplicate": true}), "{}", what("the same delivery again:"));
        }
    }

    // A tenant with no secret for a source refuses its deliveries.
    let globex = "/tenants/globex/webhooks/github";
    let file = "github/pull_request.opened.json";
    let refused = api.call(&tenant_route, Req::webhook(Origin::Github, globex, file, "d-globex", Some(SECRET))).await;
    refused.expect("a delivery to a tenant without secrets", StatusCode::UNAUTHORIZED, Some("unauthorized"));
    assert!(refused.message().contains("no secret"), "{}", refused.brief());

    // Valid deliveries of kinds the hub does not use.
    for (file, kind) in [("github/star.created.json", "star"), ("github/ping.json", "ping")] {
        let a =
            api.call(&default_route, Req::webhook(Origin::Github, "/webhooks/github", file, file, Some(SECRET))).await;
        a.expect(file, StatusCode::OK, None);
        assert_eq!(a.body, json!({"ignored": kind}), "{file}");
    }

    // The content type is not checked. (Two different deliveries: the same
    // signed body under another delivery id would be a replay.)
    let webhook =
        |file: &str, delivery: &str| Req::webhook(Origin::Github, "/webhooks/github", file, delivery, Some(SECRET));
    api.call(&default_route, webhook(file, "d-text").header("content-type", "text/plain"))
        .await
        .expect_published("a delivery sent as text/plain", "github");
    api.call(&default_route, webhook("github/pull_request.synchronize.json", "d-untyped").without("content-type"))
        .await
        .expect_published("a delivery without a content type", "github");

    // The path: unknown sources, invalid tenants.
    for (op, uri) in [(&default_route, "/webhooks/bitbucket"), (&tenant_route, "/tenants/acme/webhooks/bitbucket")] {
        api.call(op, Req::new(Method::POST, uri).body(b"{}".to_vec())).await.expect(
            uri,
            StatusCode::NOT_FOUND,
            Some("not_found"),
        );
    }
    for tenant in ["Acme", "-acme", "a%20b", &"t".repeat(65)] {
        let uri = format!("/tenants/{tenant}/webhooks/github");
        api.call(&tenant_route, Req::webhook(Origin::Github, &uri, file, "d-tenant", Some(SECRET)))
            .await
            .expect(&uri, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&uri, "tenant");
    }

    // Signed deliveries the hub cannot read.
    let push = |body: &[u8]| Req::github("/webhooks/github", "push", "d-unreadable", body);
    api.call(&default_route, push(b"{not json")).await.expect(
        "a webhook that is not JSON",
        StatusCode::BAD_REQUEST,
        Some("malformed_json"),
    );
    api.call(&default_route, push(b"[]"))
        .await
        .expect("a webhook that is not an object", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a webhook that is not an object", "body");
    let a = api.call(&default_route, Req::github("/webhooks/github", "pull_request", "d-empty", b"{}")).await;
    a.expect("a pull_request webhook of {}", StatusCode::BAD_REQUEST, Some("invalid_request"));
    assert!(!a.field().is_empty(), "a pull_request webhook of {{}}: the field at fault is named: {}", a.brief());
    for (origin, file, header) in [
        (Origin::Github, "github/push.default_branch.json", "X-GitHub-Event"),
        (Origin::Github, "github/push.default_branch.json", "X-GitHub-Delivery"),
        (Origin::Pagerduty, "pagerduty/incident.resolved.json", "X-Webhook-Id"),
    ] {
        let what = format!("{file} without {header}");
        let uri = format!("/webhooks/{}", origin.as_str());
        api.call(&default_route, Req::webhook(origin, &uri, file, "d-headers", Some(SECRET)).without(header))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, header);
    }

    // Too large.
    let oversized = vec![b' '; MAX_WEBHOOK_BYTES + 1];
    api.call(&default_route, Req::github("/webhooks/github", "push", "d-large", &oversized)).await.expect(
        "a webhook over 25 MiB",
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
    );
}

/// The part of the scenario on `POST /events`: AWS samples as EventBridge
/// delivers them, for the tenant of the bearer token (any valid token).
async fn events_scenario(api: &Api) {
    let events = key(&Method::POST, "/events");
    let default_token = api.token(&DEFAULT_REPLAY);
    let post =
        |body: &Value| Req::new(Method::POST, "/events").body(body.to_string().into_bytes()).bearer(&default_token);
    let acme_token = api.token(&REPLAY);
    let acme = |r: Req| r.bearer(&acme_token);

    // A real sample, byte for byte, without a content type: published once
    // per tenant.
    let alarm_bytes = sample("aws/cloudwatch.alarm_state_change.json");
    let alarm = Req::new(Method::POST, "/events").body(alarm_bytes.clone());
    api.call(&events, acme(alarm)).await.expect_published("the alarm sample", "aws");
    let again = api.call(&events, acme(Req::new(Method::POST, "/events").body(alarm_bytes.clone()))).await;
    again.expect("the alarm sample again", StatusCode::OK, None);
    assert_eq!(again.body, json!({"duplicate": true}), "the alarm sample again");
    api.call(&events, Req::new(Method::POST, "/events").body(alarm_bytes).bearer(&default_token))
        .await
        .expect_published("the alarm sample for the default tenant", "aws");
    let stack = Req::new(Method::POST, "/events")
        .raw("text/plain", sample("aws/cloudformation.stack_status_change.json"))
        .bearer(&default_token);
    api.call(&events, stack).await.expect_published("a sample sent as text/plain", "aws");

    // Events the hub does not use.
    let pipeline = json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "source": "aws.codepipeline",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "time": "2026-12-01T22:05:00Z",
        "detail": {"pipeline": "payments", "state": "STARTED"},
    });
    let a = api.call(&events, post(&pipeline)).await;
    a.expect("a CodePipeline event", StatusCode::OK, None);
    assert_eq!(a.body, json!({"ignored": "aws.codepipeline CodePipeline Pipeline Execution State Change"}));
    let mut read_only = sample_json("aws/cloudtrail.iam_put_role_policy.json");
    read_only["id"] = json!("read-only-call");
    read_only["detail"]["eventName"] = json!("GetRolePolicy");
    read_only["detail"]["readOnly"] = json!(true);
    let a = api.call(&events, post(&read_only)).await;
    a.expect("a read-only CloudTrail call", StatusCode::OK, None);
    assert_eq!(a.body, json!({"ignored": "read-only API call"}));

    // Envelopes the hub cannot read.
    api.call(&events, Req::new(Method::POST, "/events").body(b"{not json".to_vec()).bearer(&default_token))
        .await
        .expect("an event that is not JSON", StatusCode::BAD_REQUEST, Some("malformed_json"));
    let alarm = sample_json("aws/cloudwatch.alarm_state_change.json");
    let config = sample_json("aws/config.configuration_item_change.json");
    for (what, body, field) in [
        ("an array", json!([alarm.clone()]), "body"),
        ("no id", remove_at(&alarm, "/id"), "id"),
        ("a blank id", set_at(&alarm, "/id", json!("  ")), "id"),
        ("an alarm at no time", set_at(&alarm, "/time", json!("yesterday")), "time"),
        ("an alarm with a text detail", set_at(&alarm, "/detail", json!("a string")), "detail"),
        ("an alarm without a name", remove_at(&alarm, "/detail/alarmName"), "detail.alarmName"),
        (
            "a configuration change without an item",
            remove_at(&config, "/detail/configurationItem"),
            "detail.configurationItem",
        ),
    ] {
        let what = format!("an event with {what}");
        api.call(&events, post(&body))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&events, post(&pipeline).without("authorization"))
        .await
        .expect_unauthenticated("an event without a token", "needs a bearer token");
    let oversized = vec![b' '; MAX_WEBHOOK_BYTES + 1];
    api.call(&events, Req::new(Method::POST, "/events").body(oversized).bearer(&default_token)).await.expect(
        "an event over 25 MiB",
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
    );
}

/// `v` with the member at the JSON pointer `at` set to `value` (added if
/// absent; its parent must be an object).
fn set_at(v: &Value, at: &str, value: Value) -> Value {
    let mut v = v.clone();
    let (parent, name) = at.rsplit_once('/').expect("a pointer");
    let object = v.pointer_mut(parent).and_then(Value::as_object_mut);
    object.unwrap_or_else(|| panic!("{parent} is not an object of the sample")).insert(name.to_owned(), value);
    v
}

/// `v` without the member at the JSON pointer `at`.
fn remove_at(v: &Value, at: &str) -> Value {
    let mut v = v.clone();
    let (parent, name) = at.rsplit_once('/').expect("a pointer");
    let removed = v.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|o| o.remove(name));
    assert!(removed.is_some(), "{at} is not in the sample");
    v
}

// ---------------------------------------------------------------------------
// Request schemas: accepted by the schema exactly when accepted by the API

/// For each body: does the API accept it (2xx), and does the documented
/// request schema? They must agree. Only rules a schema can express are
/// probed here (the API also checks e.g. that planned_end follows
/// planned_start, or that a category is in the catalog). Every body is sent
/// by the tenant's bootstrap admin, who may do anything but decide.
#[tokio::test]
async fn request_schemas_accept_what_the_api_accepts() {
    let api = Api::start().await;
    api.import_catalog().await;
    let root = api.token(&ROOT);
    let create = key(&Method::POST, "/changes");
    let transition = key(&Method::POST, "/changes/{id}/transitions");
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let item = key(&Method::POST, "/changes/{id}/checklist/{item}");
    let events = key(&Method::POST, "/events");
    let freeze = key(&Method::POST, "/freezes");
    let incident = key(&Method::POST, "/incidents");
    let catalog = key(&Method::PUT, "/catalog");

    let base = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let standard = json!({"type": "standard", "template": "rotate-tls-cert", "category": "certificate"});
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
        (&create, "a category".into(), with("category", json!("database_schema"))),
        (&create, "null category".into(), with("category", Value::Null)),
        (&create, "category not a slug".into(), with("category", json!("Database Schema"))),
        (&create, "numeric category".into(), with("category", json!(1))),
        (&create, "standard with its template".into(), merged(&base, standard.clone())),
        (&create, "standard without a template".into(), merged(&base, json!({"type": "standard"}))),
        (&create, "standard with a null template".into(), merged(&base, json!({"type": "standard", "template": null}))),
        (&create, "normal with a template".into(), with("template", json!("rotate-tls-cert"))),
        (&create, "normal with a null template".into(), with("template", Value::Null)),
        (&create, "emergency with a template".into(), merged(&base, json!({"type": "emergency", "template": "x"}))),
        (
            &create,
            "full impact".into(),
            with("impact", json!({"data": "destructive", "availability": "outage", "compliance": true})),
        ),
        (&create, "empty impact".into(), with("impact", json!({}))),
        (&create, "null impact".into(), with("impact", Value::Null)),
        (&create, "unknown data impact".into(), with("impact", json!({"data": "everything"}))),
        (&create, "unknown impact field".into(), with("impact", json!({"reputation": "high"}))),
        (&create, "text compliance".into(), with("impact", json!({"compliance": "yes"}))),
        (&create, "high complexity".into(), with("complexity", json!("high"))),
        (&create, "unknown complexity".into(), with("complexity", json!("extreme"))),
        (&create, "null complexity".into(), with("complexity", Value::Null)),
        (
            &create,
            "privileged access".into(),
            merged(&base, json!({"privileged_access": true, "cryptographic_keys": true})),
        ),
        (&create, "text privileged access".into(), with("privileged_access", json!("yes"))),
        (&create, "null cryptographic keys".into(), with("cryptographic_keys", Value::Null)),
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
        ("override reason".into(), json!({"to": "submitted", "version": 1, "override_reason": "outage"})),
        ("null override reason".into(), json!({"to": "submitted", "version": 1, "override_reason": null})),
        (
            "override reason of 2001".into(),
            json!({"to": "submitted", "version": 1, "override_reason": "r".repeat(2001)}),
        ),
        ("numeric override reason".into(), json!({"to": "submitted", "version": 1, "override_reason": 1})),
    ];

    // Each decision case gets a freshly submitted change (version 2), decided by a payments lead.
    let decision_cases: Vec<(&str, Value)> = vec![
        ("approve", json!({"decision": "approve"})),
        ("reject with a comment", json!({"decision": "reject", "comment": "no rollback plan"})),
        ("at version 2", json!({"decision": "approve", "version": 2})),
        ("null version and comment", json!({"decision": "approve", "version": null, "comment": null})),
        ("comment of 2000", json!({"decision": "approve", "comment": "c".repeat(2000)})),
        ("comment of 2001", json!({"decision": "approve", "comment": "c".repeat(2001)})),
        ("unknown decision", json!({"decision": "abstain"})),
        ("no decision", json!({"comment": "fine"})),
        ("unknown field", json!({"decision": "approve", "level": 1})),
        ("negative version", json!({"decision": "approve", "version": -1})),
        ("string version", json!({"decision": "approve", "version": "2"})),
    ];

    // Each checklist case gets a fresh draft with the database_schema checklist.
    let note_cases: Vec<(&str, Value)> = vec![
        ("valid", json!({"version": 1, "note": "restored in staging"})),
        ("note of 2000", json!({"version": 1, "note": "n".repeat(2000)})),
        ("note of 2001", json!({"version": 1, "note": "n".repeat(2001)})),
        ("blank note", json!({"version": 1, "note": "  "})),
        ("null note", json!({"version": 1, "note": null})),
        ("no note", json!({"version": 1})),
        ("no version", json!({"note": "restored"})),
        ("unknown field", json!({"version": 1, "note": "restored", "by": "me"})),
    ];

    // Events: real samples of every type the hub normalizes, then variations.
    // A sample's id is replaced by one per case, so that no case is a duplicate.
    const SAMPLE_ID: &str = "the sample's id";
    let aws = |file: &str| set_at(&sample_json(&format!("aws/{file}.json")), "/id", json!(SAMPLE_ID));
    let alarm = aws("cloudwatch.alarm_state_change");
    let config = aws("config.configuration_item_change");
    let compliance = aws("config.rules_compliance_change");
    let drift = aws("cloudformation.drift_detection_status_change");
    let stack = aws("cloudformation.stack_status_change");
    let resource = aws("cloudformation.resource_status_change");
    let trail = aws("cloudtrail.iam_put_role_policy");
    let pipeline = json!({"id": SAMPLE_ID, "source": "aws.codepipeline", "detail-type": "CodePipeline Pipeline Execution State Change"});
    let summary_only = {
        let item = config["detail"]["configurationItem"].clone();
        set_at(&remove_at(&config, "/detail/configurationItem"), "/detail/configurationItemSummary", item)
    };
    let event_cases: Vec<(&str, Value)> = vec![
        ("alarm sample", alarm.clone()),
        ("configuration item sample", config.clone()),
        ("compliance sample", compliance.clone()),
        ("drift sample", drift.clone()),
        ("stack status sample", stack.clone()),
        ("resource status sample", resource.clone()),
        ("CloudTrail sample", trail.clone()),
        ("another type, only id, source and detail-type", pipeline.clone()),
        (
            "another type, with odd other fields",
            json!({
                "id": SAMPLE_ID, "source": "aws.codepipeline", "detail-type": "Other",
                "time": "yesterday", "resources": [1], "detail": "text",
            }),
        ),
        ("not an object", json!([alarm.clone()])),
        ("no id", remove_at(&alarm, "/id")),
        ("blank id", set_at(&alarm, "/id", json!(" "))),
        ("numeric id", set_at(&alarm, "/id", json!(7))),
        ("no source", remove_at(&alarm, "/source")),
        ("numeric source", set_at(&pipeline, "/source", json!(1))),
        ("no detail-type", remove_at(&alarm, "/detail-type")),
        ("extra envelope fields", set_at(&alarm, "/version", json!({"any": "thing"}))),
        ("alarm without account", remove_at(&alarm, "/account")),
        ("alarm without region", remove_at(&alarm, "/region")),
        ("alarm without time", remove_at(&alarm, "/time")),
        ("alarm at a bad time", set_at(&alarm, "/time", json!("2026-13-01T00:00:00Z"))),
        ("alarm without detail", remove_at(&alarm, "/detail")),
        ("alarm with an array detail", set_at(&alarm, "/detail", json!([1]))),
        ("alarm with a null detail", set_at(&alarm, "/detail", Value::Null)),
        ("alarm without resources", remove_at(&alarm, "/resources")),
        ("alarm with numeric resources", set_at(&alarm, "/resources", json!([1]))),
        ("alarm with null resources", set_at(&alarm, "/resources", Value::Null)),
        ("alarm without a name", remove_at(&alarm, "/detail/alarmName")),
        ("alarm with a numeric state", set_at(&alarm, "/detail/state/value", json!(1))),
        ("alarm with a null previous state", set_at(&alarm, "/detail/previousState", Value::Null)),
        ("alarm with a numeric tag", set_at(&alarm, "/detail/alarmTags", json!({"changehub:service": 1}))),
        ("alarm with a tag", set_at(&alarm, "/detail/alarmTags", json!({"changehub:service": "checkout"}))),
        ("configuration change without an item", remove_at(&config, "/detail/configurationItem")),
        ("configuration change with a summary only", summary_only),
        ("configuration item without a resource id", remove_at(&config, "/detail/configurationItem/resourceId")),
        (
            "configuration item with null related events",
            set_at(&config, "/detail/configurationItem/relatedEvents", Value::Null),
        ),
        ("compliance change without a new result", remove_at(&compliance, "/detail/newEvaluationResult")),
        ("drift without a stack id", remove_at(&drift, "/detail/stack-id")),
        ("stack status without a status", remove_at(&stack, "/detail/status-details/status")),
        ("CloudTrail call without an event id", remove_at(&trail, "/detail/eventID")),
        ("CloudTrail call of another source", set_at(&trail, "/source", json!("aws.iam.custom"))),
        (
            "CloudTrail call, read-only",
            set_at(&set_at(&trail, "/detail/readOnly", json!(true)), "/detail/eventName", json!("GetRolePolicy")),
        ),
        ("CloudTrail call with a text readOnly", set_at(&trail, "/detail/readOnly", json!("no"))),
        ("CloudTrail call at a bad eventTime", set_at(&trail, "/detail/eventTime", json!("yesterday"))),
    ];
    for (i, (name, mut body)) in event_cases.into_iter().enumerate() {
        if body.get("id") == Some(&json!(SAMPLE_ID)) {
            body["id"] = json!(format!("case-{i}"));
        }
        cases.push((&events, name.to_owned(), body));
    }

    // Freeze windows (on a service no other case uses), incidents, and last
    // the catalog: each case replaces it, which the other cases do not need.
    let window = json!({"id": "month-end", "name": "Month-end close", "services": ["reporting"],
                        "schedule": {"kind": "month_end", "business_days": 2}, "reason": "closing the books"});
    let weekly = |schedule: Value| set_at(&window, "/schedule", merged(&json!({"kind": "weekly"}), schedule));
    for (name, body) in [
        ("valid month-end", window.clone()),
        (
            "valid one-off",
            set_at(
                &window,
                "/schedule",
                json!({"kind": "one_off", "start": "2026-12-24T00:00:00Z", "end": "2026-12-27T00:00:00Z"}),
            ),
        ),
        ("valid weekly", weekly(json!({"days": ["sat", "sun"], "start": "18:00", "end": "24:00"}))),
        ("weekly, whole days", weekly(json!({"days": ["fri"]}))),
        ("weekly, no days", weekly(json!({"days": []}))),
        ("weekly, a day twice", weekly(json!({"days": ["sat", "sat"]}))),
        ("weekly, an unknown day", weekly(json!({"days": ["saturday"]}))),
        ("weekly, starting at 24:00", weekly(json!({"days": ["sat"], "start": "24:00"}))),
        ("weekly, at 7:00", weekly(json!({"days": ["sat"], "start": "7:00"}))),
        ("weekly, at 07:60", weekly(json!({"days": ["sat"], "start": "07:60"}))),
        (
            "one-off without end",
            set_at(&window, "/schedule", json!({"kind": "one_off", "start": "2026-12-24T00:00:00Z"})),
        ),
        (
            "one-off at no time",
            set_at(&window, "/schedule", json!({"kind": "one_off", "start": "soon", "end": "later"})),
        ),
        ("month-end of 10 days", set_at(&window, "/schedule/business_days", json!(10))),
        ("month-end of 11 days", set_at(&window, "/schedule/business_days", json!(11))),
        ("month-end of 0 days", set_at(&window, "/schedule/business_days", json!(0))),
        ("an unknown kind", set_at(&window, "/schedule/kind", json!("yearly"))),
        ("an unknown schedule field", set_at(&window, "/schedule/days", json!(["sat"]))),
        ("no schedule", remove_at(&window, "/schedule")),
        ("no services", remove_at(&window, "/services")),
        ("null services", set_at(&window, "/services", Value::Null)),
        ("a service twice", set_at(&window, "/services", json!(["reporting", "reporting"]))),
        ("id with a dot", set_at(&window, "/id", json!("month.end"))),
        ("uppercase id", set_at(&window, "/id", json!("Month-End"))),
        ("id of 64", set_at(&window, "/id", json!("m".repeat(64)))),
        ("id of 65", set_at(&window, "/id", json!("m".repeat(65)))),
        ("blank name", set_at(&window, "/name", json!(" "))),
        ("reason of 2000", set_at(&window, "/reason", json!("r".repeat(2000)))),
        ("reason of 2001", set_at(&window, "/reason", json!("r".repeat(2001)))),
        ("no reason", remove_at(&window, "/reason")),
        ("unknown field", set_at(&window, "/until", json!("never"))),
    ] {
        cases.push((&freeze, name.to_owned(), body));
    }
    let major = json!({"id": "PD-1", "title": "Card payments failing", "services": ["payments"], "commander": "ivy"});
    for (name, body) in [
        ("valid", major.clone()),
        (
            "declared_by and declared_at, set by the hub",
            merged(&major, json!({"declared_by": "me", "declared_at": null})),
        ),
        ("numeric declared_by", set_at(&major, "/declared_by", json!(5))),
        ("no commander", remove_at(&major, "/commander")),
        ("blank commander", set_at(&major, "/commander", json!(" "))),
        ("no services", set_at(&major, "/services", json!([]))),
        ("51 services", set_at(&major, "/services", json!((0..51).map(|i| format!("s{i}")).collect::<Vec<_>>()))),
        ("a bad service", set_at(&major, "/services", json!(["Payments"]))),
        ("blank title", set_at(&major, "/title", json!(" "))),
        ("title of 201", set_at(&major, "/title", json!("t".repeat(201)))),
        ("id of 128", set_at(&major, "/id", json!("i".repeat(128)))),
        ("id of 129", set_at(&major, "/id", json!("i".repeat(129)))),
        ("blank id", set_at(&major, "/id", json!(" "))),
        ("unknown field", set_at(&major, "/severity", json!(1))),
    ] {
        cases.push((&incident, name.to_owned(), body));
    }
    let sample_catalog = {
        let get = key(&Method::GET, "/catalog");
        let a = api.call(&get, Req::get("/catalog").bearer(&root)).await;
        a.expect("the sample catalog", StatusCode::OK, None);
        a.body["catalog"].clone()
    };
    for (name, body) in [
        ("the sample", sample_catalog.clone()),
        ("tier 4", set_at(&sample_catalog, "/services/0/tier", json!(4))),
        ("tier 5", set_at(&sample_catalog, "/services/0/tier", json!(5))),
        ("tier 0", set_at(&sample_catalog, "/services/0/tier", json!(0))),
        ("a misspelt service field", set_at(&sample_catalog, "/services/0/teir", json!(1))),
        ("an sla of soon", set_at(&sample_catalog, "/services/0/approval/0/sla", json!("soon"))),
        ("an sla of 90m", set_at(&sample_catalog, "/services/0/approval/0/sla", json!("90m"))),
        ("an unknown rule", set_at(&sample_catalog, "/services/0/approval/0/rule", json!("most_of"))),
        ("a level without groups", set_at(&sample_catalog, "/services/0/approval/0/groups", json!([]))),
        (
            "an ARN prefix that is not one",
            set_at(&sample_catalog, "/services/0/mappings/aws_arn_prefixes", json!(["rds:"])),
        ),
        ("an unknown role", set_at(&sample_catalog, "/roles/superuser", json!(["root"]))),
        ("a group with a space", set_at(&sample_catalog, "/roles/admin", json!(["platform team"]))),
        ("null roles", set_at(&sample_catalog, "/roles", Value::Null)),
        ("a category that is not a slug", set_at(&sample_catalog, "/categories/Database Schema", json!({}))),
        (
            "a checklist item without text",
            set_at(&sample_catalog, "/categories/certificate", json!({"checklist": [{"id": "a"}]})),
        ),
        ("three tier points", set_at(&sample_catalog, "/risk/tier_points", json!([8, 5, 3]))),
        ("points over 1000", set_at(&sample_catalog, "/risk/compliance_points", json!(1001))),
        ("a complexity of 99%", set_at(&sample_catalog, "/risk/complexity_percent/low", json!(99))),
        ("a period of 13 months", set_at(&sample_catalog, "/risk/period_months", json!(13))),
        ("an unknown risk rule", set_at(&sample_catalog, "/risk/weights", json!({}))),
        ("an unknown emergency field", set_at(&sample_catalog, "/emergency/review_by", json!("72h"))),
        ("an unknown section", set_at(&sample_catalog, "/owners", json!([]))),
        ("the empty catalog", json!({})),
    ] {
        cases.push((&catalog, name.to_owned(), body));
    }

    let mut disagreements = Vec::new();
    let send = |op: &OpKey, uri: String, body: &Value| {
        let method = Method::from_bytes(op.method.as_bytes()).expect("method");
        Req::new(method, uri).raw("application/json", body.to_string().into_bytes()).bearer(&root)
    };
    for (name, body) in &transition_cases {
        let id = api.open(&root, &base).await.id();
        let answer = api.call(&transition, send(&transition, format!("/changes/{id}/transitions"), body)).await;
        disagreements.extend(agreement(&api.doc, &transition, name, body, &answer));
    }
    let sam = api.token(&SAM);
    for (name, body) in &decision_cases {
        let id = api.open(&root, &base).await.id();
        api.move_to(&root, &id, "submitted", 1).await;
        let req = send(&decide, format!("/changes/{id}/decisions"), body).bearer(&sam);
        let answer = api.call(&decide, req).await;
        disagreements.extend(agreement(&api.doc, &decide, name, body, &answer));
    }
    for (name, body) in &note_cases {
        let id = api.open(&root, &with("category", json!("database_schema"))).await.id();
        let answer = api.call(&item, send(&item, format!("/changes/{id}/checklist/backup_verified"), body)).await;
        disagreements.extend(agreement(&api.doc, &item, name, body, &answer));
    }
    for (op, name, body) in &cases {
        let answer = api.call(op, send(op, op.path.clone(), body)).await;
        disagreements.extend(agreement(&api.doc, op, name, body, &answer));
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
    let token = api.token(&ALICE);
    let submit = json!({"to": "submitted", "version": 1});
    let note = json!({"version": 1, "note": "done"});
    for (op, req) in [
        (key(&Method::GET, "/changes/{id}"), Req::get("/changes/%FF")),
        (key(&Method::GET, "/changes/{id}/audit"), Req::get("/changes/%FF/audit")),
        (key(&Method::POST, "/changes/{id}/transitions"), Req::post_json("/changes/%FF/transitions", &submit)),
        (
            key(&Method::POST, "/changes/{id}/decisions"),
            Req::post_json("/changes/%FF/decisions", &json!({"decision": "approve"})),
        ),
        (key(&Method::POST, "/changes/{id}/review"), Req::post_json("/changes/%FF/review", &note)),
        (
            key(&Method::POST, "/changes/{id}/reschedule"),
            Req::post_json(
                "/changes/%FF/reschedule",
                &json!({"version": 1, "planned_start": "2026-12-01T22:00:00Z",
                        "planned_end": "2026-12-01T23:00:00Z", "reason": "later"}),
            ),
        ),
    ] {
        let what = format!("{op} with id %FF");
        api.call(&op, req.bearer(&token))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }
}

/// Path parameters that do not percent-decode to UTF-8 get the JSON error a
/// wrong value gets: 400 naming `id` for a change id, 404 for an item, a
/// freeze or an incident that cannot exist.
#[tokio::test]
async fn other_path_parameters_that_are_not_utf8_get_a_json_error() {
    let api = Api::start().await;
    let token = api.token(&ROOT);
    let note = json!({"version": 1, "note": "done"});
    let item = key(&Method::POST, "/changes/{id}/checklist/{item}");
    let change = uuid::Uuid::now_v7();
    for (op, req, status, code, field) in [
        (
            item.clone(),
            Req::post_json("/changes/%FF/checklist/backup_verified", &note),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "id",
        ),
        (
            item,
            Req::post_json(format!("/changes/{change}/checklist/%FF"), &note),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
        (
            key(&Method::DELETE, "/freezes/{id}"),
            Req::new(Method::DELETE, "/freezes/%FF"),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
        (
            key(&Method::POST, "/incidents/{id}/resolve"),
            Req::new(Method::POST, "/incidents/%FF/resolve"),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
    ] {
        let what = format!("{op}: {}", req.uri);
        api.call(&op, req.bearer(&token)).await.expect(&what, status, Some(code)).expect_field(&what, field);
    }
}

/// serde's derived `Deserialize` reads a struct from an array of its fields
/// too; the API refuses that at every depth (naming the struct's path), and
/// a YAML catalog must be a mapping: a sequence (which would replace the
/// catalog with an empty one) or a scalar is refused, naming the body.
#[tokio::test]
async fn structs_inside_bodies_must_be_objects() {
    let api = Api::start().await;
    api.import_catalog().await;
    let root = api.token(&ROOT);
    let create = key(&Method::POST, "/changes");
    let freeze = key(&Method::POST, "/freezes");
    let catalog = key(&Method::PUT, "/catalog");
    let change = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let services = json!({"services": [["billing", "", "billing-team", 2]]});
    let yaml_service = "services:\n  - [billing, '', billing-team, 2]\n";
    for (op, what, req, field) in [
        (
            &create,
            "an impact as an array",
            Req::post_json("/changes", &merged(&change, json!({"impact": ["write", "outage", true]}))),
            "impact",
        ),
        (
            &freeze,
            "a schedule as an array",
            Req::post_json("/freezes", &json!({"id": "f", "name": "F", "schedule": ["month_end", 2]})),
            "schedule",
        ),
        (
            &catalog,
            "a service as an array",
            Req::put("/catalog", "application/json", services.to_string()),
            "services[0]",
        ),
        (
            &catalog,
            "a YAML service as a sequence",
            Req::put("/catalog", "application/yaml", yaml_service),
            "services[0]",
        ),
        (&catalog, "a YAML catalog that is a sequence", Req::put("/catalog", "application/yaml", "- {}\n"), "body"),
        (&catalog, "a YAML catalog that is a scalar", Req::put("/catalog", "application/yaml", "hello\n"), "body"),
    ] {
        let answer = api.call(op, req.bearer(&root)).await;
        answer.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, field);
        if what == "a YAML service as a sequence" {
            assert!(answer.message().starts_with("line 2: "), "{what}: the line is named: {}", answer.brief());
        }
    }
    let get = key(&Method::GET, "/catalog");
    let kept = api.call(&get, Req::get("/catalog").bearer(&root)).await;
    assert_eq!(kept.body["version"], json!(1), "nothing was stored: {}", kept.brief());
}

/// serde's derived `Deserialize` would also accept a struct as a JSON array of
/// its fields in declaration order; the API refuses anything but an object.
#[tokio::test]
async fn request_bodies_must_be_objects() {
    let api = Api::start().await;
    api.import_catalog().await;
    let token = api.token(&ROOT);
    let body = new_change(&["payments"], "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    let id = api.open(&token, &body).await.id();
    let positional_change =
        json!(["t", "", "normal", ["payments"], "production", "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z"]);
    let post = |path: &str, uri: String, positional: Value| (key(&Method::POST, path), uri, positional, Method::POST);
    for (op, uri, positional, method) in [
        post("/changes", "/changes".to_owned(), positional_change),
        post("/changes/{id}/transitions", format!("/changes/{id}/transitions"), json!(["submitted", 1, null])),
        post("/changes/{id}/decisions", format!("/changes/{id}/decisions"), json!(["approve", 1, null])),
        post("/changes/{id}/review", format!("/changes/{id}/review"), json!([1, "fine"])),
        post(
            "/changes/{id}/reschedule",
            format!("/changes/{id}/reschedule"),
            json!([1, "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z", "later", null]),
        ),
        post("/changes/{id}/checklist/{item}", format!("/changes/{id}/checklist/x"), json!([1, "done"])),
        post("/freezes", "/freezes".to_owned(), json!(["f", "F", [], {"kind": "month_end", "business_days": 1}, ""])),
        post("/incidents", "/incidents".to_owned(), json!(["i", "I", ["payments"], "ivy", "", null])),
        (key(&Method::PUT, "/catalog"), "/catalog".to_owned(), json!([{}, [], {}, [], {}, {}]), Method::PUT),
        post("/events", "/events".to_owned(), json!(["e1", "src", "dt", "2026-12-01T22:05:00Z", [], {}])),
    ] {
        let what = format!("{op} with the array body {positional}");
        let req = Req::new(method, uri).raw("application/json", positional.to_string().into_bytes());
        api.call(&op, req.bearer(&token))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "body");
    }
    // A webhook too, properly signed.
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let positional_push = json!(["refs/heads/main", "abc", "def"]).to_string();
    api.call(&webhook, Req::github("/webhooks/github", "push", "d-array", positional_push.as_bytes()))
        .await
        .expect("a GitHub push with an array body", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a GitHub push with an array body", "body");
}

// ---------------------------------------------------------------------------
// Ingest failures: the 503 answers fit the document

/// A bus that refuses every publish.
#[derive(Clone)]
struct DownBus;

impl EventBus for DownBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        Err(BusError::Rejected { failed: events.iter().map(|e| (e.id.clone(), "InternalFailure".into())).collect() })
    }
}

/// A secrets backend that cannot be read.
struct SecretsDown;

impl SecretSource for SecretsDown {
    async fn secrets(&self, _tenant: &TenantId, _origin: Origin) -> Result<Vec<String>, SecretsError> {
        Err(SecretsError::Invalid("the secrets document cannot be read".into()))
    }
}

#[tokio::test]
async fn ingest_failures_are_documented_503s() {
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let events = key(&Method::POST, "/events");
    let delivery = || {
        Req::webhook(Origin::Pagerduty, "/webhooks/pagerduty", "pagerduty/incident.triggered.json", "d", Some(SECRET))
    };
    let alarm = || Req::new(Method::POST, "/events").body(sample("aws/cloudwatch.alarm_state_change.json"));

    // The bus refuses: publish_failed, and the delivery is not remembered.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open store");
    let catalog =
        changehub::app::catalog::CachedCatalog::new(store.clone(), changehub::app::catalog::DEFAULT_CACHE_TTL);
    let ingest = || Ingest::new(store.clone(), DownBus, catalog.clone(), SystemClock);
    let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: secrets() });
    let key = LocalKey::from_secret(vec![9; 32]);
    let auth = Authenticator::Local(Arc::new(LocalKey::from_secret(vec![9; 32])), Default::default());
    let token = mint(&key, &REPLAY, chrono::Utc::now());
    let alarm = || alarm().bearer(&token);
    let router = changehub::http::finish(
        webhooks::webhook_routes(webhooks, WebhookLimits::default())
            .merge(webhooks::local_routes(Arc::new(ingest()), auth)),
    );
    let api = Api::with_router(router, dir, key);
    for _attempt in 0..2 {
        api.call(&webhook, delivery()).await.expect(
            "a webhook while the bus is down",
            StatusCode::SERVICE_UNAVAILABLE,
            Some("publish_failed"),
        );
        api.call(&events, alarm()).await.expect(
            "an AWS event while the bus is down",
            StatusCode::SERVICE_UNAVAILABLE,
            Some("publish_failed"),
        );
    }

    // The secrets cannot be read: unavailable.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("ingest.db")).expect("open store");
    let ingest = Ingest::new(
        store.clone(),
        LocalBus::new(),
        changehub::app::catalog::CachedCatalog::new(store, changehub::app::catalog::DEFAULT_CACHE_TTL),
        SystemClock,
    );
    let api = Api::with_router(
        changehub::http::finish(webhooks::webhook_routes(
            Arc::new(Webhooks { ingest, secrets: SecretsDown }),
            WebhookLimits::default(),
        )),
        dir,
        LocalKey::from_secret(vec![9; 32]),
    );
    api.call(&webhook, delivery()).await.expect(
        "a webhook while the secrets are unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        Some("unavailable"),
    );
}

/// Path parameters that do not percent-decode to UTF-8 get the documented
/// JSON error, as a change `id` does (see
/// `an_id_that_is_not_utf8_is_a_json_invalid_request`).
#[tokio::test]
async fn webhook_path_parameters_that_are_not_utf8_get_a_json_error() {
    let api = Api::start().await;
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let tenant_webhook = key(&Method::POST, "/tenants/{tenant}/webhooks/{source}");
    let file = "github/star.created.json";
    for (op, uri, status, code, field) in [
        (&tenant_webhook, "/tenants/%FF/webhooks/github", StatusCode::BAD_REQUEST, "invalid_request", "tenant"),
        (&tenant_webhook, "/tenants/acme/webhooks/%FF", StatusCode::NOT_FOUND, "not_found", ""),
        (&webhook, "/webhooks/%FF", StatusCode::NOT_FOUND, "not_found", ""),
    ] {
        api.call(op, Req::webhook(Origin::Github, uri, file, "d", Some(SECRET)))
            .await
            .expect(uri, status, Some(code))
            .expect_field(uri, field);
    }
}
