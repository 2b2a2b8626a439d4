//! The document lists exactly the routes, and each router serves exactly its
//! documented operations.

use super::*;

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
                doc.validator(&format!("{op} {status}"), doc.response_schema(&format!("{op} {status}"), response));
            }
        }

        // The bearer token is required exactly where the code authenticates
        // with it (the change API but its open paths, and /events), alone;
        // there 401 is the bearer answer, with its WWW-Authenticate header.
        let open = changehub::http::OPEN_PATHS.contains(&op.path.as_str());
        let authenticated = (routes.api.contains(&op) && !open) || routes.local.contains(&op);
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
        if open {
            assert_eq!(*security, json!([]), "{op}: needs no credentials");
        }
        // A caller without the role needed gets 403 from every operation that
        // needs one (all but /me, the open paths and the webhooks).
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
            names(
                &[ChangeType::Standard, ChangeType::Normal, ChangeType::Emergency, ChangeType::Recorded]
                    .map(ChangeType::as_str),
            ),
        ),
        ("Role", names(&Role::ALL.map(Role::as_str))),
        ("RiskLevel", names(&RiskLevel::ALL.map(RiskLevel::as_str))),
        ("Complexity", names(&Complexity::ALL.map(Complexity::as_str))),
        ("Impact/properties/data", names(&DataImpact::ALL.map(DataImpact::as_str))),
        ("Impact/properties/availability", names(&AvailabilityImpact::ALL.map(AvailabilityImpact::as_str))),
        ("FreezeSchedule/oneOf/2/properties/days/items", names(&Weekday::ALL.map(Weekday::as_str))),
        ("ActivityDetailType", names(&changehub::ingest::canonical::DETAIL_TYPES)),
    ] {
        let listed = doc.root.pointer(&format!("/components/schemas/{pointer}/enum"));
        let listed = listed.unwrap_or_else(|| panic!("components.schemas.{pointer} has no enum"));
        assert_eq!(listed, &json!(domain), "components.schemas.{pointer} lists other values than the domain");
    }
}

/// The gate's answers: `GateStatus` and `GateCode` list every variant's
/// `as_str` and nothing else. The variants are serde's own (the list its
/// "unknown variant" error names), so a variant missing from `ALL` fails too.
#[test]
fn gate_statuses_and_codes_are_the_domains() {
    use changehub::domain::gate::{GateCode, GateStatus};
    fn variants<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let Err(e) = serde_json::from_value::<T>(json!("-")) else { panic!("`-` is a variant") };
        let e = e.to_string();
        let listed = e.split_once("expected one of ").map(|(_, l)| l).unwrap_or_else(|| panic!("{e}"));
        let listed = listed.split(" at line").next().unwrap_or(listed);
        listed.split(", ").map(|v| v.trim_matches('`').to_owned()).collect()
    }
    let doc = Doc::load();
    for (name, domain, serde) in [
        ("GateStatus", GateStatus::ALL.map(GateStatus::as_str).to_vec(), variants::<GateStatus>()),
        ("GateCode", GateCode::ALL.map(GateCode::as_str).to_vec(), variants::<GateCode>()),
    ] {
        assert_eq!(domain, serde, "{name}::ALL and as_str are every variant, as serde names it");
        let listed = doc.root.pointer(&format!("/components/schemas/{name}/enum"));
        let listed = listed.unwrap_or_else(|| panic!("components.schemas.{name} has no enum"));
        assert_eq!(listed, &json!(domain), "components.schemas.{name} lists other values than the domain");
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
        (Method::GET, "/index.html"),
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
// The routes the code declares, and the document's paths made concrete

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

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}
