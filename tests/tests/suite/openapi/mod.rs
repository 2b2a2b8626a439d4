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
//!   operations the code authenticates: the change API but its open paths
//!   (`/`, `/openapi.yaml`, `/health`), and
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

mod activity;
mod audit;
mod auth;
mod bake;
mod catalog;
mod changes;
mod delegations;
mod events;
mod findings;
mod freezes;
mod gates;
mod incidents;
mod ingest;
mod malformed_requests;
mod problems;
mod reports;
mod request_schemas;
mod routes;

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
const WEBHOOK_ORIGINS: [Origin; 6] =
    [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio, Origin::Argocd];
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

    /// The schema of a response's body: JSON, or a text document (`application/yaml`, read as a string).
    fn response_schema<'a>(&'a self, what: &str, response: &'a Value) -> &'a Value {
        match response.pointer("/content/application~1yaml/schema") {
            Some(text) => text,
            None => self.json_schema(what, response),
        }
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
            activity_retention: Default::default(),
            public_url: None,
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
        let schema = self.doc.response_schema(what, response);
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
/// JSON (`null` when empty; a YAML document as a string; any other non-JSON
/// body fails the test).
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
    let yaml = headers.get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/yaml"));
    let body = if bytes.is_empty() {
        Value::Null
    } else if yaml {
        Value::String(String::from_utf8(bytes.to_vec()).expect("a YAML answer is UTF-8"))
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

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    let up = api.call(&health, Req::get("/health")).await;
    up.expect("health", StatusCode::OK, None);
    assert_eq!(up.body["webhooks"], json!({"undelivered": 0, "refused": 0}), "serve reports its webhook backlog");
    webhook_backlog_in_health(&api, &health).await;
    dead_letters_in_health(&api, &health).await;
    let index = api.call(&key(&Method::GET, "/"), Req::get("/")).await;
    index.expect("what answers here", StatusCode::OK, None);
    assert_eq!(index.body["links"], json!({"health": "/health", "openapi": "/openapi.yaml"}));
    let document = api.call(&key(&Method::GET, "/openapi.yaml"), Req::get("/openapi.yaml")).await;
    document.expect("the OpenAPI document", StatusCode::OK, None);
    let served: Value = serde_yaml_ng::from_str(document.body.as_str().unwrap_or_default()).expect("served YAML");
    assert_eq!(served, api.doc.root, "GET /openapi.yaml serves this document");

    auth::authentication_scenario(&api).await;
    catalog::catalog_scenario(&api).await;
    changes::change_scenario(&api).await;
    changes::approval_scenario(&api).await;
    changes::edit_and_rework_scenario(&api).await;
    changes::checklist_and_review_scenario(&api).await;
    changes::template_and_chain_scenario(&api).await;
    incidents::incident_scenario(&api).await;
    incidents::unrelate_scenario(&api).await;
    freezes::freeze_scenario(&api).await;
    delegations::delegation_scenario(&api).await;
    ingest::webhook_scenario(&api).await;
    events::events_scenario(&api).await;
    audit::audit_scenario(&api).await;
    activity::activity_scenario(&api).await;
    gates::gate_scenario(&api).await;
    problems::problem_scenario(&api).await;
    findings::finding_scenario(&api).await;
    bake::bake_scenario(&api).await;
    reports::approval_sla_scenario(&api).await;

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

/// A hook that fails: `GET /health` says how many deliveries wait, since
/// when, and why the oldest failed; none once they are delivered.
async fn webhook_backlog_in_health(api: &Api, health: &OpKey) {
    use changehub::adapters::chat::Hook;
    use changehub::adapters::chat::queue::{DeliveryQueue, HookDelivery};
    let queue = DeliveryQueue::beside(&api._dir.path().join("n.jsonl"));
    let hook = Hook::parse("slack=https://hooks.slack.example/services/T0/B0/x").expect("hook");
    let at = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut failed = HookDelivery::new(&hook, changehub_tests::notifier_contract::sample("Change Approved"), at);
    failed.attempts = 3;
    failed.last_error = Some("answered HTTP status 503 to every attempt (3)".into());
    let mut refused = HookDelivery::new(&hook, changehub_tests::notifier_contract::sample("Change Failed"), at);
    refused.refused = true;
    for d in [&failed, &refused] {
        queue.put(d).await.expect("queued");
    }
    let kept = api.call(health, Req::get("/health")).await;
    kept.expect("health with a backlog", StatusCode::OK, None);
    let oldest = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(
        kept.body["webhooks"],
        json!({"undelivered": 2, "refused": 1, "oldest_queued_at": oldest, "oldest_hook": hook.id(),
               "oldest_last_error": "answered HTTP status 503 to every attempt (3)"})
    );
    for d in [&failed, &refused] {
        queue.remove(&d.id).await.expect("delivered");
    }
    let empty = api.call(health, Req::get("/health")).await;
    assert_eq!(empty.body["webhooks"], json!({"undelivered": 0, "refused": 0}));
}

/// An event a consumer could not apply: `GET /health` says how many letters
/// wait to be redriven, since when and why; none once it is applied.
async fn dead_letters_in_health(api: &Api, health: &OpKey) {
    use changehub::dead_letters::{DeadLetters, Redrive};
    let none = api.call(health, Req::get("/health")).await;
    assert_eq!(none.body["dead_letters"], json!({"waiting": 0, "exhausted": 0}), "serve reports its dead letters");
    let letters = DeadLetters::beside(&api._dir.path().join("n.jsonl"), Redrive::default());
    let event = changehub::domain::HubEvent {
        id: "e-1".into(),
        source: "changehub.github".into(),
        detail_type: "Pull Request Changed".into(),
        time: chrono::Utc::now(),
        resources: Vec::new(),
        detail: json!({"tenant": "default"}),
    };
    // A consumer the hub does not run: the hub leaves the letter alone.
    letters.keep("elsewhere", &event, ("github answered status 502".into(), true, 3)).await;
    let kept = api.call(health, Req::get("/health")).await;
    kept.expect("health with a dead letter", StatusCode::OK, None);
    let backlog = &kept.body["dead_letters"];
    assert_eq!((&backlog["waiting"], &backlog["oldest_consumer"]), (&json!(1), &json!("elsewhere")), "{backlog}");
    assert_eq!(backlog["oldest_last_error"], "github answered status 502");
    for letter in letters.due("elsewhere", true).await {
        letters.redriven(letter, Ok(())).await;
    }
    let empty = api.call(health, Req::get("/health")).await;
    assert_eq!(empty.body["dead_letters"], json!({"waiting": 0, "exhausted": 0}));
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
