//! The scenario's part on the catalog: `PUT /catalog` and `GET /catalog`.

use super::*;

/// `PUT /catalog` and `GET /catalog`: the sample imported as YAML by the
/// bootstrap admin, errors naming their line and field, `If-Match`.
pub(super) async fn catalog_scenario(api: &Api) {
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
    let what = "a catalog with several problems";
    let depends = 1 + yaml_text.lines().position(|l| l.trim() == "depends_on: [ledger]").expect("payments depends");
    let several =
        yaml_text.replacen("tier: 1", "tier: 7", 1).replacen("depends_on: [ledger]", "depends_on: [ledgr]", 1);
    let a = api.call(&put, yaml(&several).bearer(&root)).await;
    a.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, "services[0].tier");
    assert_eq!(
        a.body["error"]["errors"],
        json!([
            {"field": "services[0].tier", "message": format!("line {line}: tier must be 1 to 4; got 7")},
            {"field": "services[0].depends_on[0]",
             "message": format!("line {depends}: service payments depends on ledgr, which the catalog does not list")},
        ]),
        "{what}: every problem, each with its line"
    );
    assert!(a.message().ends_with("(and 1 more problem)"), "{what}: {}", a.brief());
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
    let mut circular = catalog.clone();
    circular["services"][1]["depends_on"] = json!(["payments"]);
    let what = "a JSON catalog whose services depend on each other";
    let a = api.call(&put, as_json(&circular).bearer(&root)).await;
    a.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, "services[1].depends_on[0]");
    assert_eq!(a.message(), "depends_on forms a cycle: payments → ledger → payments", "{what}");
    assert_eq!(a.body["error"]["errors"].as_array().map(Vec::len), Some(1), "{what}: {}", a.brief());
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

    // Write-back settings: left out while no target is on, kept with their defaults once one is.
    assert_eq!(catalog.get("writeback"), None, "no target on: no writeback section");
    let mut writing_back = catalog.clone();
    writing_back["writeback"] = json!({"pagerduty": {"from": "changehub-bot@example.com"},
        "github": {"api_url": "https://ghe.example.com/api/v3"}});
    api.call(&put, as_json(&writing_back).bearer(&root)).await.expect(
        "a catalog with write-back",
        StatusCode::OK,
        None,
    );
    let read = api.call(&get, Req::get("/catalog").bearer(&root)).await;
    read.expect("the catalog with write-back", StatusCode::OK, None);
    assert_eq!(
        read.body["catalog"]["writeback"],
        json!({"pagerduty": {"from": "changehub-bot@example.com", "api_url": "https://api.pagerduty.com"},
            "github": {"api_url": "https://ghe.example.com/api/v3"}})
    );
    let what = "write-back to a plain http API";
    writing_back["writeback"]["github"]["api_url"] = json!("http://ghe.example.com/api/v3");
    api.call(&put, as_json(&writing_back).bearer(&root))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "writeback.github.api_url");
    api.call(&put, as_json(&catalog).bearer(&root)).await.expect(
        "the catalog without write-back",
        StatusCode::OK,
        None,
    );
}
