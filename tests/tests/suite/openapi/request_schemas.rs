//! Request schemas: accepted by the schema exactly when accepted by the API.

use super::*;

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

    let base = new_change(&["payments"], "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z");
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
        (&create, "20 services".into(), with("services", json!(vec!["payments"; 20]))),
        (&create, "21 services".into(), with("services", json!(vec!["payments"; 21]))),
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
                json!({"kind": "one_off", "start": "2030-12-24T00:00:00Z", "end": "2030-12-27T00:00:00Z"}),
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
            set_at(&window, "/schedule", json!({"kind": "one_off", "start": "2030-12-24T00:00:00Z"})),
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
    // Service names the catalog does not list, in a tenant without a catalog (which takes any).
    let globex = api.token(&GLOBEX_ROOT);
    for (name, services) in [
        ("service of 64", json!(["s".repeat(64)])),
        ("service of 65", json!(["s".repeat(65)])),
        ("20 services", json!((0..20).map(|i| format!("s{i}")).collect::<Vec<_>>())),
    ] {
        let body = with("services", services);
        let answer = api.call(&create, send(&create, "/changes".into(), &body).bearer(&globex)).await;
        disagreements.extend(agreement(&api.doc, &create, name, &body, &answer));
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
