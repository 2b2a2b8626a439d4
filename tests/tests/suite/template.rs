//! template.yaml and the code agree: the table the tests create from
//! `TABLE` is the table the stack deploys, and each function is built from a
//! binary of this workspace with the least privilege its code needs.

use changehub::adapters::dynamodb::TABLE;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// template.yaml as JSON; short-form tags become `{"!Tag": value}`.
pub(crate) fn template() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template.yaml is YAML");
    to_json(yaml)
}

fn to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter().map(|(k, v)| (k.as_str().map(str::to_owned).unwrap_or_default(), to_json(v))).collect(),
        ),
        Y::Tagged(t) => json!({ t.tag.to_string(): to_json(t.value) }),
    }
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"].as_object().expect("Resources").iter().filter(|(_, r)| r["Type"] == kind).collect()
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("KeySchema")
        .iter()
        .map(|k| (k["AttributeName"].as_str().unwrap_or("").to_owned(), k["KeyType"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[test]
fn the_deployed_table_matches_the_code_table_definition() {
    let t = template();
    let tables = resources_of_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table (single-table design)");
    let p = &tables[0].1["Properties"];

    let attrs: BTreeSet<(String, String)> = p["AttributeDefinitions"]
        .as_array()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            (a["AttributeName"].as_str().unwrap_or("").to_owned(), a["AttributeType"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let expected: BTreeSet<(String, String)> =
        TABLE.attributes.iter().map(|a| (a.to_string(), "S".to_owned())).collect();
    assert_eq!(attrs, expected, "AttributeDefinitions");

    assert_eq!(
        key_schema(&p["KeySchema"]),
        [(TABLE.partition_key.to_owned(), "HASH".to_owned()), (TABLE.sort_key.to_owned(), "RANGE".to_owned())]
    );
    let gsis = p["GlobalSecondaryIndexes"].as_array().expect("GlobalSecondaryIndexes");
    assert_eq!(gsis.len(), TABLE.global_indexes.len());
    for (gsi, (name, pk, sk)) in gsis.iter().zip(TABLE.global_indexes) {
        assert_eq!(gsi["IndexName"], *name);
        assert_eq!(
            key_schema(&gsi["KeySchema"]),
            [(pk.to_string(), "HASH".to_owned()), (sk.to_string(), "RANGE".to_owned())]
        );
        assert_eq!(gsi["Projection"]["ProjectionType"], "ALL");
    }
    assert_eq!(p["BillingMode"], TABLE.billing_mode);
    assert_eq!(p["TimeToLiveSpecification"], json!({"AttributeName": TABLE.ttl_attribute, "Enabled": true}));
    assert_eq!(p["StreamSpecification"]["StreamViewType"], TABLE.stream_view);
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(tables[0].1["DeletionPolicy"], "Retain", "the table outlives the stack");
}

/// The workspace's function crates' manifests, by binary name.
fn workspace_function_manifests() -> BTreeMap<String, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    std::fs::read_dir(dir)
        .expect("functions/")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("Cargo.toml")).ok())
        .filter_map(|manifest| {
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \"").map(|n| n.trim_end_matches('"').to_owned()))?;
            Some((name, manifest))
        })
        .collect()
}

/// Binaries of the workspace's function crates, from their manifests.
fn workspace_function_binaries() -> BTreeSet<String> {
    workspace_function_manifests().into_keys().collect()
}

#[test]
fn every_function_is_a_workspace_binary_built_for_lambda() {
    let t = template();
    let binaries = workspace_function_binaries();
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    assert!(!functions.is_empty());
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Environment"]["Variables"]["SSL_CERT_FILE"], "/etc/pki/tls/certs/ca-bundle.crt", "cold start");
    assert_eq!(globals["Environment"]["Variables"]["CHANGEHUB_TLS_ROOTS"], json!({"!Ref": "TlsRoots"}), "cold start");
    assert_eq!(t["Parameters"]["TlsRoots"]["Default"], "aws", "cold start");
    for (name, f) in functions {
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().expect("Binary");
        assert!(binaries.contains(binary), "{name} builds `{binary}`, not a crate under functions/ ({binaries:?})");
        assert_eq!(f["Properties"]["Handler"], "bootstrap", "{name}");
    }
}

/// Cold start: every deployed function's crate has the shared build script,
/// which links its release binary as a position-dependent executable (no
/// relative relocations for the dynamic loader to apply at init).
#[test]
fn every_deployed_function_links_through_the_shared_build_script() {
    let t = template();
    let manifests = workspace_function_manifests();
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/build.rs")).expect("build.rs");
    assert!(script.contains("cargo::rustc-link-arg-bins=-no-pie"), "functions/build.rs links without PIE");
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().expect("Binary");
        let manifest = manifests.get(binary).expect("a function crate");
        assert!(
            manifest.lines().any(|l| l.trim() == "build = \"../build.rs\""),
            "{name}: functions/{binary}/Cargo.toml does not name build = \"../build.rs\""
        );
    }
}

#[test]
fn the_api_function_gets_exactly_the_table_actions_its_code_uses() {
    let t = template();
    let api = &t["Resources"]["ApiFunction"]["Properties"];
    assert_eq!(api["Environment"]["Variables"]["CHANGEHUB_TABLE"], json!({"!Ref": "ChangeTable"}));
    let statements: Vec<&Value> = api["Policies"]
        .as_array()
        .expect("Policies")
        .iter()
        .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        .collect();
    let actions: BTreeSet<&str> = statements
        .iter()
        .flat_map(|s| s["Action"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    // DynamoStore's ChangeReader, ChangeWriter, TenantDocs, Counters, DueIndex and
    // SecurityLog: get_item, query (table and GSI1), batch_get_item, update_item (a
    // security event), and transact_write_items of Puts, counter Updates and index
    // Deletes (authorized as PutItem, UpdateItem and DeleteItem); the audit key
    // its writes are sealed with.
    let expected = BTreeSet::from([
        "dynamodb:BatchGetItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
    ]);
    assert_eq!(actions, expected);
    let table = json!({"!GetAtt": "ChangeTable.Arn"});
    let index = json!({"!Sub": "${ChangeTable.Arn}/index/GSI1"});
    for s in statements {
        let resources = s["Resource"].as_array().expect("Resource");
        if s["Action"].as_array().into_iter().flatten().any(|a| a.as_str().is_some_and(|a| a.starts_with("dynamodb:")))
        {
            assert!(
                resources.iter().all(|r| *r == table || *r == index),
                "scoped to the table and its due index: {resources:?}"
            );
        } else {
            assert_eq!(resources, &vec![json!({"!Ref": "AuditKey"})], "only the audit key");
        }
    }
    assert_eq!(api["Environment"]["Variables"]["CHANGEHUB_AUDIT_KEY_SECRET"], json!({"!Ref": "AuditKey"}));
}

/// The API needs a bearer token on every route but its open paths (/,
/// /openapi.yaml, /health) and the webhooks, and the api function reads the
/// claims the template names.
#[test]
fn the_http_api_requires_a_jwt_except_on_open_paths_and_webhooks() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"]["Auth"];
    assert_eq!(api["DefaultAuthorizer"], "OidcAuthorizer");
    let jwt = &api["Authorizers"]["OidcAuthorizer"];
    assert_eq!(
        jwt["IdentitySource"], "$request.header.Authorization",
        "the api function reads the groups whole from the token in this header (http::bearer::apigw_claims)"
    );
    assert_eq!(jwt["JwtConfiguration"]["issuer"], json!({"!Ref": "JwtIssuer"}));
    assert_eq!(jwt["JwtConfiguration"]["audience"], json!({"!Ref": "JwtAudience"}));
    let open_routes: BTreeSet<String> = resources_of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .flat_map(|(_, f)| f["Properties"]["Events"].as_object().cloned().unwrap_or_default().into_values())
        .filter(|e| e["Type"] == "HttpApi" && e["Properties"]["Auth"]["Authorizer"] == "NONE")
        .map(|e| {
            format!(
                "{} {}",
                e["Properties"]["Method"].as_str().unwrap_or(""),
                e["Properties"]["Path"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        open_routes,
        BTreeSet::from([
            "GET /".to_owned(),
            "GET /openapi.yaml".to_owned(),
            "GET /health".to_owned(),
            "HEAD /health".to_owned(),
            "POST /tenants/{tenant}/webhooks/{source}".to_owned(),
            "POST /webhooks/{source}".to_owned()
        ])
    );
    let vars = &t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"];
    for (var, parameter) in [
        ("CHANGEHUB_USER_CLAIM", "UserClaim"),
        ("CHANGEHUB_GROUPS_CLAIM", "GroupsClaim"),
        ("CHANGEHUB_TENANT_CLAIM", "TenantClaim"),
        ("CHANGEHUB_DEFAULT_TENANT", "DefaultTenant"),
        ("CHANGEHUB_BOOTSTRAP_ADMIN_GROUP", "BootstrapAdminGroup"),
    ] {
        assert_eq!(vars[var], json!({"!Ref": parameter}), "{var}");
    }
}

pub(crate) fn function<'a>(t: &'a Value, name: &str) -> &'a Value {
    let f = &t["Resources"][name];
    assert!(f.is_object(), "template.yaml has no {name}");
    f
}

/// Asserts the function's policies allow exactly `expected` actions.
#[track_caller]
fn assert_actions(f: &Value, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|a| a.to_string()).collect();
    assert_eq!(actions_of(f), expected);
}

/// An event on a bus, as a rule's pattern sees it.
fn bus_event(source: &str, detail_type: &str) -> Value {
    json!({"source": source, "detail-type": detail_type, "detail": {}})
}

fn actions_of(f: &Value) -> BTreeSet<String> {
    f["Properties"]["Policies"]
        .as_array()
        .expect("Policies")
        .iter()
        .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        .flat_map(|s| s["Action"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_ingest_function_serves_the_webhook_routes_with_least_privilege() {
    let t = template();
    let f = function(&t, "IngestFunction");
    let routes: BTreeSet<(String, String)> = f["Properties"]["Events"]
        .as_object()
        .expect("Events")
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            (
                e["Properties"]["Method"].as_str().unwrap_or("").to_owned(),
                e["Properties"]["Path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> =
        changehub::http::webhooks::WEBHOOK_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routes, expected);
    // Dedupe (PutItem, DeleteItem on release), catalog lookups (GetItem), PutEvents, the secret.
    assert_actions(
        f,
        &[
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "events:PutEvents",
            "secretsmanager:GetSecretValue",
        ],
    );
    let vars = &f["Properties"]["Environment"]["Variables"];
    for var in ["CHANGEHUB_TABLE", "CHANGEHUB_EVENT_BUS", "CHANGEHUB_SECRETS_ID"] {
        assert!(vars[var].is_object(), "IngestFunction sets {var}");
    }
}

/// The EventBridge rules that feed the aws-events function, and the AWS
/// and tool samples (a tool's `Configuration Changed` on the default bus).
#[test]
fn every_aws_rule_matches_its_samples_and_every_used_sample_has_a_rule() {
    let t = template();
    let f = function(&t, "AwsEventsFunction");
    let rules: Vec<(String, changehub::domain::EventPattern)> = f["Properties"]["Events"]
        .as_object()
        .expect("Events")
        .iter()
        .filter(|(_, e)| e["Type"] == "EventBridgeRule")
        .map(|(name, e)| {
            let pattern = changehub::domain::EventPattern::parse(e["Properties"]["Pattern"].clone())
                .unwrap_or_else(|err| panic!("rule {name}: {err}"));
            assert!(e["Properties"]["DeadLetterConfig"].is_object(), "rule {name} has a dead-letter queue");
            assert!(e["Properties"]["RetryPolicy"].is_object(), "rule {name} has a retry policy");
            (name.clone(), pattern)
        })
        .collect();
    assert!(!rules.is_empty());
    let dirs = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../events/aws"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../events/tools"),
    ];
    let mut matched_by_rule = BTreeSet::new();
    let samples = dirs.iter().flat_map(|dir| std::fs::read_dir(dir).expect("events/aws, events/tools"));
    for entry in samples.filter_map(|e| e.ok()) {
        let path = entry.path();
        let bytes = std::fs::read(&path).expect("sample");
        let event: Value = serde_json::from_slice(&bytes).expect("json");
        let used = matches!(changehub::ingest::aws::normalize(&bytes), Ok(changehub::ingest::Normalized::Events(_)));
        let matching: Vec<&String> = rules.iter().filter(|(_, p)| p.matches(&event)).map(|(n, _)| n).collect();
        if used {
            assert!(!matching.is_empty(), "{} is normalized by the hub but no rule delivers it", path.display());
        }
        matched_by_rule.extend(matching.into_iter().cloned());
    }
    for (name, _) in &rules {
        assert!(
            matched_by_rule.contains(name),
            "rule {name} matches none of the samples in events/aws or events/tools"
        );
    }
    let expected: BTreeSet<String> =
        ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "events:PutEvents"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    assert_eq!(actions_of(f), expected);
}

/// The partition key patterns a statement is held to (`dynamodb:LeadingKeys`).
fn leading_keys(s: &Value) -> Vec<String> {
    let keys = s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_array().cloned();
    keys.unwrap_or_default().iter().filter_map(|k| k.as_str().map(str::to_owned)).collect()
}

/// The partition key patterns `action` is allowed on, across `f`'s statements.
fn leading_keys_of(f: &Value, action: &str) -> Vec<String> {
    let allows = |s: &&Value| s["Action"].as_array().is_some_and(|a| a.contains(&json!(action)));
    statements_of(f).into_iter().filter(allows).flat_map(leading_keys).collect()
}

/// Every policy statement of a function, across its policy documents.
fn statements_of(f: &Value) -> Vec<&Value> {
    f["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        .collect()
}

/// Whether an IAM `StringLike` pattern (only a trailing `*` is used here) matches `key`.
/// The ingest functions read only catalogs and dedupe claims: never a
/// change, an audit trail or another tenant document.
#[test]
fn the_ingest_functions_read_only_catalogs_and_claims() {
    use changehub::adapters::keys;
    use changehub::domain::{ChangeId, TenantId};
    use changehub::ports::DocKind;
    let tenant = TenantId::parse("acme").expect("tenant");
    let t = template();
    for name in ["IngestFunction", "AwsEventsFunction"] {
        let reads: Vec<&Value> = statements_of(function(&t, name))
            .into_iter()
            .filter(|s| s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == "dynamodb:GetItem")))
            .collect();
        assert!(!reads.is_empty(), "{name} reads the catalog");
        for s in reads {
            let patterns: Vec<&str> = s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: reads without a LeadingKeys condition"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for key in [keys::doc_pk(&tenant, DocKind::Catalog), keys::idem_pk("github:d")] {
                assert!(patterns.iter().any(|p| like(p, &key)), "{name} cannot read {key}");
            }
            for key in [keys::change_pk(&tenant, &ChangeId::new()), keys::doc_pk(&tenant, DocKind::Incidents)] {
                assert!(!patterns.iter().any(|p| like(p, &key)), "{name} may read {key}");
            }
        }
    }
}

/// The publish function reads the tenant's catalog (for its `routing:`),
/// the changes it publishes and its claims; no other tenant document.
#[test]
fn the_publish_function_reads_the_catalog_for_routing() {
    use changehub::adapters::keys;
    use changehub::domain::{ChangeId, TenantId};
    use changehub::ports::DocKind;
    let tenant = TenantId::parse("acme").expect("tenant");
    let t = template();
    let reads: Vec<&Value> = statements_of(function(&t, "PublishFunction"))
        .into_iter()
        .filter(|s| s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == "dynamodb:GetItem")))
        .collect();
    let patterns: Vec<&str> = reads
        .iter()
        .flat_map(|s| {
            s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_array().into_iter().flatten()
        })
        .filter_map(Value::as_str)
        .collect();
    for key in
        [keys::doc_pk(&tenant, DocKind::Catalog), keys::change_pk(&tenant, &ChangeId::new()), keys::idem_pk("outbox:x")]
    {
        assert!(patterns.iter().any(|p| like(p, &key)), "the publish function cannot read {key}");
    }
    for key in [keys::doc_pk(&tenant, DocKind::Incidents), keys::doc_pk(&tenant, DocKind::Freezes)] {
        assert!(!patterns.iter().any(|p| like(p, &key)), "the publish function may read {key}");
    }
}

/// The audit key can be read by the api function (which seals) and the
/// configured verifier role only: a resource policy denies everyone else, so
/// access to the table, or broad secrets permissions, cannot forge a seal.
#[test]
fn only_the_sealer_and_the_verifier_read_the_audit_key() {
    let t = template();
    let policies = resources_of_type(&t, "AWS::SecretsManager::ResourcePolicy");
    let (_, policy) = policies
        .iter()
        .find(|(_, p)| p["Properties"]["SecretId"] == json!({"!Ref": "AuditKey"}))
        .expect("a resource policy on the audit key");
    let statements = policy["Properties"]["ResourcePolicy"]["Statement"].as_array().expect("statements");
    let deny = statements
        .iter()
        .find(|s| s["Effect"] == "Deny" && s["Action"] == "secretsmanager:GetSecretValue" && s["Principal"] == "*")
        .expect("a deny of GetSecretValue to everyone else");
    let allowed = deny["Condition"]["StringNotEquals"]["aws:PrincipalArn"].to_string();
    assert!(allowed.contains("ApiFunctionRole") && allowed.contains("AuditVerifierRoleArn"), "{allowed}");
    assert!(allowed.contains("DeploymentsFunctionRole"), "the deployments function seals its writes: {allowed}");
    assert!(allowed.contains("EscalateFunctionRole"), "the escalate function seals its writes: {allowed}");
    assert!(allowed.contains("ScmFunctionRole"), "the scm function seals the rollbacks it records: {allowed}");
    for other in ["IngestFunctionRole", "AwsEventsFunctionRole"] {
        assert!(!allowed.contains(other), "{other} may read the audit key: {allowed}");
    }
}

/// IAM's `StringLike`: `*` matches any run of characters (`?` is not used here).
fn like(pattern: &str, key: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = key.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[test]
fn like_matches_as_iam_string_like_does() {
    assert!(like("T#*", "T#acme#CHG#1"));
    assert!(like("T#*#SVC#*", "T#acme#SVC#payments"));
    assert!(!like("T#*#SVC#*", "T#acme#CHG#1"));
    assert!(!like("IDEM#*", "T#acme#SVC#x"));
    assert!(like("exact", "exact") && !like("exact", "exact2"));
}

/// Each function may write (put, update, delete) only items whose partition
/// key starts with the prefixes its code writes, held by IAM's
/// `dynamodb:LeadingKeys`: the api tenant partitions, the ingest functions
/// dedupe claims and activity rows only (deleting only claims). So a
/// compromised ingest function cannot rewrite a change or its audit trail,
/// nor erase the activity log, and the api cannot forge dedupe claims.
#[test]
fn every_function_writes_only_the_partitions_its_code_writes() {
    use changehub::adapters::keys;
    use changehub::domain::{ChangeId, ServiceName, TenantId};
    let tenant = TenantId::parse("acme").expect("tenant");
    let service = ServiceName::parse("payments").expect("service");
    let id = ChangeId::new();
    // Partition keys each function's code writes, from the one key module.
    use changehub::domain::waiting::Awaiting;
    let (group, user) = (Awaiting::Group("Payments Leads".into()), Awaiting::User("ivy@example.com".into()));
    let indexes = [
        keys::service_pk(&tenant, &service),
        keys::plan_pk(&tenant),
        keys::waiting_pk(&tenant, &group),
        keys::waiting_pk(&tenant, &user),
        keys::waiting_pk(&tenant, &Awaiting::Peer),
        keys::implementation_pk(&tenant, &service),
    ];
    let records = [
        keys::change_pk(&tenant, &id),
        keys::tenant_changes_pk(&tenant),
        keys::doc_pk(&tenant, changehub::ports::DocKind::Catalog),
        keys::governance_pk(&tenant),
        keys::security_pk(&tenant),
        // A problem's fix and closing (`POST /problems/{id}/fix`, `/close`).
        keys::problems_pk(&tenant),
    ];
    let api_writes = [indexes.as_slice(), records.as_slice()].concat();
    let claims = keys::idem_pk("github:delivery");
    let ingest_writes = [claims.clone(), keys::activity_pk(&tenant)];
    // What each function deletes: the api only moves index entries (a
    // window moved, an approval level decided), never a record, an audit
    // entry, a document, the governance trail or a security event; the
    // ingest functions only give back dedupe claims, never an activity row.
    let api_deletes = indexes.to_vec();
    let api_never_deletes = records.to_vec();
    let ingest_deletes = [claims.clone()];
    let ingest_never_deletes = [api_writes.as_slice(), &[keys::activity_pk(&tenant)]].concat();
    // The api writes tenant partitions (`T#*`, which holds the activity log
    // too, though it never writes it); it never writes a claim.
    let api_foreign = [claims];
    // (function, writes, never writes, deletes, never deletes)
    type Row<'a> = (&'a str, &'a [String], &'a [String], &'a [String], &'a [String]);
    // The outbox publisher only claims the events it sends.
    let publish_writes = [keys::idem_pk("outbox:acme:event")];
    let publish_never = [api_writes.as_slice(), &[keys::activity_pk(&tenant)]].concat();
    // The deployments consumer writes changes, their indexes and outcome
    // counters, and moves only service, listing and implementation entries.
    let counter = changehub::ports::CounterKey {
        tenant: tenant.clone(),
        service: service.clone(),
        month: "2026-12".into(),
        category: "general".into(),
        change_type: changehub::domain::ChangeType::Recorded,
    };
    let deployments_writes = [
        keys::change_pk(&tenant, &id),
        keys::tenant_changes_pk(&tenant),
        keys::service_pk(&tenant, &service),
        keys::plan_pk(&tenant),
        keys::implementation_pk(&tenant, &service),
        keys::counter_pk(&counter),
    ];
    let deployments_never = [
        keys::doc_pk(&tenant, changehub::ports::DocKind::Catalog),
        keys::governance_pk(&tenant),
        keys::security_pk(&tenant),
        keys::activity_pk(&tenant),
        keys::waiting_pk(&tenant, &Awaiting::Peer),
        keys::idem_pk("github:delivery"),
    ];
    let deployments_deletes =
        [keys::service_pk(&tenant, &service), keys::plan_pk(&tenant), keys::implementation_pk(&tenant, &service)];
    let deployments_never_deletes =
        [deployments_never.as_slice(), &[keys::change_pk(&tenant, &id), keys::tenant_changes_pk(&tenant)]].concat();
    // The correlate function writes incident records, their listings and
    // the open major incidents with their governance trail; it deletes only
    // listing entries that moved.
    let record = keys::incident_pk(
        &tenant,
        &changehub::domain::incident::IncidentId::of(&tenant, changehub::domain::incident::Source::Pagerduty, "Q1"),
    );
    let listings = [keys::incidents_pk(&tenant), keys::service_incidents_pk(&tenant, &service)];
    let hold = [keys::doc_pk(&tenant, changehub::ports::DocKind::Incidents), keys::governance_pk(&tenant)];
    // A tag writes the related change (record and audit entry) and its
    // failure counters, never its indexes or the tenant's change list.
    // Telling of it claims each delivery; problem management writes the
    // incident's counted record, the service's ring and the problems.
    let tagged = [keys::change_pk(&tenant, &id), keys::counter_pk(&counter)];
    let tell_claim = keys::idem_pk("tell:acme:x");
    let problems =
        [keys::counted_key(&tenant, "inc_1").0, keys::recent_key(&tenant, &service).0, keys::problems_pk(&tenant)];
    let correlate_writes =
        [[record.clone(), tell_claim.clone()].as_slice(), &listings, &hold, &tagged, &problems].concat();
    let correlate_never = [indexes.as_slice(), &records[1..3], &[keys::activity_pk(&tenant)]].concat();
    let correlate_deletes = [listings.as_slice(), &[tell_claim]].concat();
    let correlate_never_deletes = [[record].as_slice(), &hold, &api_writes, &tagged, &problems].concat();
    // The escalate function writes a change record and its audit entries
    // (one partition), the month's approval-wait counters, for a bake that
    // ends the outcome counters and its state in the listing, a freezes document with its governance
    // trail entry, and the claims of freeze notices, which are all it deletes.
    let freeze_claim = keys::idem_pk("freeze-starting:acme:close:2026-12-01T00:00:00Z");
    let escalate_writes = [
        keys::change_pk(&tenant, &id),
        keys::waits_pk(&tenant, "2026-12"),
        keys::doc_pk(&tenant, changehub::ports::DocKind::Freezes),
        keys::governance_pk(&tenant),
        keys::counter_pk(&counter),
        keys::plan_pk(&tenant),
        freeze_claim.clone(),
    ];
    let escalate_never =
        [&indexes[..1], &indexes[2..], &records[1..3], &records[4..], &[keys::activity_pk(&tenant)]].concat();
    let escalate_deletes = [freeze_claim];
    let escalate_never_deletes = [escalate_never.as_slice(), &escalate_writes[..6]].concat();
    // The drift function writes findings and its claims, and deletes only
    // claims it gives back; it never writes a change or anything of one.
    let drift_writes = [keys::findings_pk(&tenant), keys::idem_pk("drift:acme:event")];
    let drift_never = [api_writes.as_slice(), &[keys::activity_pk(&tenant), keys::problems_pk(&tenant)]].concat();
    let drift_deletes = [keys::idem_pk("drift:acme:event")];
    let drift_never_deletes = [drift_never.as_slice(), &[keys::findings_pk(&tenant)]].concat();
    // The scm function writes the merge gate's reverse index (a put,
    // conditional on its version), and for a rollback the change's record
    // and audit entries (no index entry: its state does not move) and the
    // claim keyed by the failed deployment, which is all it deletes.
    // For a deployment protection rule it puts the request kept until
    // answered, the requests waiting on a change and the gate's activity row.
    let rollback_claim = keys::idem_pk("rollback:acme:x");
    let scm_writes = [
        keys::pull_links_pk(&tenant, &id),
        keys::change_pk(&tenant, &id),
        rollback_claim.clone(),
        keys::protection_pk(&tenant, "evt_1"),
        keys::protection_waits_pk(&tenant, &id),
        keys::activity_pk(&tenant),
    ];
    let scm_never = [indexes.as_slice(), &records[1..], &[keys::findings_pk(&tenant)]].concat();
    let scm_deletes = [rollback_claim];
    let scm_never_deletes = [scm_never.as_slice(), &scm_writes[..2], &scm_writes[3..]].concat();
    let expected: [Row; 9] = [
        ("ApiFunction", &api_writes, &api_foreign, &api_deletes, &api_never_deletes),
        ("EscalateFunction", &escalate_writes, &escalate_never, &escalate_deletes, &escalate_never_deletes),
        (
            "DeploymentsFunction",
            &deployments_writes,
            &deployments_never,
            &deployments_deletes,
            &deployments_never_deletes,
        ),
        ("CorrelateFunction", &correlate_writes, &correlate_never, &correlate_deletes, &correlate_never_deletes),
        ("DriftFunction", &drift_writes, &drift_never, &drift_deletes, &drift_never_deletes),
        ("ScmFunction", &scm_writes, &scm_never, &scm_deletes, &scm_never_deletes),
        ("IngestFunction", &ingest_writes, &api_writes, &ingest_deletes, &ingest_never_deletes),
        ("AwsEventsFunction", &ingest_writes, &api_writes, &ingest_deletes, &ingest_never_deletes),
        ("PublishFunction", &publish_writes, &publish_never, &publish_writes, &publish_never),
    ];
    let t = template();
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    assert_eq!(functions.len(), expected.len(), "a new function needs its row here");
    const WRITES: [&str; 4] =
        ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"];
    for (name, writes, foreign, deletes, never_deleted) in expected {
        let f = function(&t, name);
        let mut writable: Vec<&str> = vec![];
        for s in statements_of(f) {
            let actions: Vec<&str> = s["Action"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            assert!(!actions.contains(&"dynamodb:Scan"), "{name}: no Scan");
            if !actions.iter().any(|a| WRITES.contains(a)) {
                continue;
            }
            let patterns: Vec<&str> = s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: statement {} writes without a LeadingKeys condition", s["Sid"]))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for key in foreign {
                assert!(!patterns.iter().any(|p| like(p, key)), "{name} may write {key}, which it never writes");
            }
            if actions.contains(&"dynamodb:DeleteItem") || actions.contains(&"dynamodb:BatchWriteItem") {
                for key in deletes {
                    assert!(patterns.iter().any(|p| like(p, key)), "{name} cannot delete {key} ({patterns:?})");
                }
                for key in never_deleted {
                    assert!(!patterns.iter().any(|p| like(p, key)), "{name} may delete {key}, which it never deletes");
                }
            }
            writable.extend(patterns);
        }
        for key in writes {
            assert!(writable.iter().any(|p| like(p, key)), "{name} cannot write {key} ({writable:?})");
        }
    }
}

fn refs_of(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

/// Every function: a log group named after it with the stack's retention,
/// and alarms on its errors and its throttles that notify.
#[test]
fn every_function_has_log_retention_and_error_and_throttle_alarms() {
    let t = template();
    assert_eq!(t["Parameters"]["LogRetentionDays"]["Type"], "Number");
    // Log group name → its retention.
    let log_groups: std::collections::BTreeMap<String, Value> = resources_of_type(&t, "AWS::Logs::LogGroup")
        .into_iter()
        .map(|(_, g)| {
            let p = &g["Properties"];
            (p["LogGroupName"]["!Sub"].as_str().unwrap_or("").to_owned(), p["RetentionInDays"].clone())
        })
        .collect();
    let alarms: BTreeSet<(String, String)> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == "AWS/Lambda")
        .filter(|(_, a)| a["Properties"]["AlarmActions"] == json!([{"!Ref": "NotificationTopic"}]))
        .filter_map(|(_, a)| {
            let p = &a["Properties"];
            let dims = p["Dimensions"].as_array()?;
            let function =
                dims.iter().find(|d| d["Name"] == "FunctionName").and_then(|d| refs_of(&d["Value"], "!Ref"))?;
            Some((function, p["MetricName"].as_str()?.to_owned()))
        })
        .collect();
    for (name, _) in resources_of_type(&t, "AWS::Serverless::Function") {
        assert!(
            log_groups.get(&format!("/aws/lambda/${{{name}}}")) == Some(&json!({"!Ref": "LogRetentionDays"})),
            "{name} has a log group /aws/lambda/${{{name}}} with RetentionInDays: !Ref LogRetentionDays"
        );
        for metric in ["Errors", "Throttles"] {
            assert!(alarms.contains(&(name.clone(), metric.to_owned())), "{name} has a notifying {metric} alarm");
        }
    }
}

/// Every function invoked asynchronously (EventBridge rules, schedules)
/// keeps what fails: Lambda retries a failed invocation a bounded number of
/// times, then sends it to the function's failed-events queue, which is also
/// its rules' dead-letter queue and has a notifying alarm on its depth.
#[test]
fn every_asynchronously_invoked_function_sends_failures_to_an_alarmed_queue() {
    let t = template();
    let queue_alarms: BTreeSet<String> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == "AWS/SQS")
        .filter(|(_, a)| a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible")
        .filter(|(_, a)| a["Properties"]["AlarmActions"] == json!([{"!Ref": "NotificationTopic"}]))
        .filter_map(|(_, a)| {
            let queue = a["Properties"]["Dimensions"][0]["Value"]["!GetAtt"].as_str()?;
            Some(queue.strip_suffix(".QueueName")?.to_owned())
        })
        .collect();
    let mut asynchronous = 0;
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let events = f["Properties"]["Events"].as_object().cloned().unwrap_or_default();
        let rules: Vec<(String, Value)> = events
            .into_iter()
            .filter(|(_, e)| matches!(e["Type"].as_str(), Some("EventBridgeRule" | "Schedule" | "ScheduleV2")))
            .collect();
        if rules.is_empty() {
            continue;
        }
        asynchronous += 1;
        let config = &f["Properties"]["EventInvokeConfig"];
        let retries = config["MaximumRetryAttempts"].as_u64().unwrap_or_else(|| panic!("{name}: MaximumRetryAttempts"));
        assert!(retries <= 2, "{name}: MaximumRetryAttempts");
        let age =
            config["MaximumEventAgeInSeconds"].as_u64().unwrap_or_else(|| panic!("{name}: MaximumEventAgeInSeconds"));
        assert!((60..=21600).contains(&age), "{name}: MaximumEventAgeInSeconds");
        let on_failure = &config["DestinationConfig"]["OnFailure"];
        assert_eq!(on_failure["Type"], "SQS", "{name}: on-failure destination is a queue");
        let queue = on_failure["Destination"]["!GetAtt"]
            .as_str()
            .and_then(|q| q.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{name}: on-failure destination is a queue of the stack"));
        assert_eq!(t["Resources"][queue]["Type"], "AWS::SQS::Queue", "{name}: {queue}");
        assert!(queue_alarms.contains(queue), "{name}: {queue} has a notifying depth alarm");
        for (rule, e) in rules {
            assert_eq!(
                e["Properties"]["DeadLetterConfig"]["Arn"],
                json!({"!GetAtt": format!("{queue}.Arn")}),
                "{name}: rule {rule} dead-letters to the same queue"
            );
            assert!(e["Properties"]["RetryPolicy"].is_object(), "{name}: rule {rule} has a retry policy");
        }
    }
    assert!(asynchronous > 0);
}

/// Every function fed by the table's stream keeps what fails and keeps the
/// order: partial batch responses (retry from the first failed record), a
/// bounded number of retries, then the failed records' queue, alarmed; and
/// an alarm when it falls behind the stream.
#[test]
fn every_stream_consumer_reports_partial_failures_and_keeps_what_fails() {
    let t = template();
    let mut consumers = 0;
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let events = f["Properties"]["Events"].as_object().cloned().unwrap_or_default();
        for (event, e) in events.into_iter().filter(|(_, e)| e["Type"] == "DynamoDB") {
            consumers += 1;
            let p = &e["Properties"];
            assert_eq!(p["Stream"], json!({"!GetAtt": "ChangeTable.StreamArn"}), "{name}.{event}");
            assert_eq!(p["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]), "{name}.{event}");
            assert_eq!(p["BisectBatchOnFunctionError"], true, "{name}.{event}");
            let retries = p["MaximumRetryAttempts"].as_u64().unwrap_or_else(|| panic!("{name}.{event}: retries"));
            assert!((1..=100).contains(&retries), "{name}.{event}: a bounded number of retries");
            let queue = p["DestinationConfig"]["OnFailure"]["Destination"]["!GetAtt"]
                .as_str()
                .and_then(|q| q.strip_suffix(".Arn"))
                .unwrap_or_else(|| panic!("{name}.{event}: an on-failure queue of the stack"));
            assert_eq!(t["Resources"][queue]["Type"], "AWS::SQS::Queue");
            let alarmed = |metric: &str, dimension: Value| {
                resources_of_type(&t, "AWS::CloudWatch::Alarm").into_iter().any(|(_, a)| {
                    a["Properties"]["MetricName"] == metric
                        && a["Properties"]["Dimensions"][0]["Value"] == dimension
                        && a["Properties"]["AlarmActions"] == json!([{"!Ref": "NotificationTopic"}])
                })
            };
            assert!(
                alarmed("ApproximateNumberOfMessagesVisible", json!({"!GetAtt": format!("{queue}.QueueName")})),
                "{name}: {queue} has a notifying depth alarm"
            );
            assert!(alarmed("IteratorAge", json!({"!Ref": name})), "{name}: an alarm when it falls behind");
            let timeout = f["Properties"]["Timeout"].as_u64().unwrap_or(10);
            let lease: u64 = f["Properties"]["Environment"]["Variables"]["CHANGEHUB_DEDUPE_LEASE_SECS"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            assert!(timeout > lease, "{name}: a record a dead attempt leased is retried within one invocation");
        }
    }
    assert!(consumers > 0);
}

/// The CloudTrail rule does not feed the hub its own functions' calls, and
/// still takes calls made without a role session (IAM users, root).
#[test]
fn the_cloudtrail_rule_leaves_out_the_hubs_own_roles() {
    let t = template();
    let f = function(&t, "AwsEventsFunction");
    let pattern = changehub::domain::EventPattern::parse(
        f["Properties"]["Events"]["MutatingApiCalls"]["Properties"]["Pattern"].clone(),
    )
    .expect("pattern");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/aws/cloudtrail.iam_put_role_policy.json");
    let event: Value = serde_json::from_slice(&std::fs::read(sample).expect("sample")).expect("json");
    assert!(pattern.matches(&event), "a person's change is delivered");
    for (name, _) in resources_of_type(&t, "AWS::Serverless::Function") {
        let mut own = event.clone();
        // The role ARN as the template names it; CloudFormation resolves both sides alike.
        own["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] =
            json!({"!GetAtt": format!("{name}Role.Arn")});
        assert!(!pattern.matches(&own), "calls by {name}'s role are left out");
    }
    let mut user = event.clone();
    user["detail"]["userIdentity"] = json!({"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"});
    assert!(pattern.matches(&user), "an IAM user's call (no session issuer) is delivered");
}

/// The activity log's retention is one stack parameter that both ingest
/// functions read (default and bounds as the code's), and the api, which
/// serves `GET /activity`, may query the activity partitions.
#[test]
fn the_activity_retention_is_a_parameter_and_the_api_reads_the_log() {
    use changehub::app::activity::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, RETENTION_VARIABLE};
    let t = template();
    let parameter = &t["Parameters"]["ActivityRetentionDays"];
    assert_eq!(
        (&parameter["Type"], &parameter["Default"], &parameter["MinValue"], &parameter["MaxValue"]),
        (&json!("Number"), &json!(DEFAULT_RETENTION_DAYS), &json!(1), &json!(MAX_RETENTION_DAYS))
    );
    for name in ["IngestFunction", "AwsEventsFunction"] {
        let vars = &function(&t, name)["Properties"]["Environment"]["Variables"];
        assert_eq!(vars[RETENTION_VARIABLE], json!({"!Ref": "ActivityRetentionDays"}), "{name}");
    }
    let tenant = changehub::domain::TenantId::parse("acme").expect("tenant");
    let log = changehub::adapters::keys::activity_pk(&tenant);
    let queries: Vec<&Value> = statements_of(function(&t, "ApiFunction"))
        .into_iter()
        .filter(|s| s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == "dynamodb:Query")))
        .collect();
    assert!(
        queries.iter().any(|s| {
            let leading = &s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
            s["Resource"].as_array().is_some_and(|r| r.contains(&json!({"!GetAtt": "ChangeTable.Arn"})))
                && (leading.is_null()
                    || leading.as_array().into_iter().flatten().any(|p| like(p.as_str().unwrap_or(""), &log)))
        }),
        "the api may query {log}"
    );
}

/// The deployments function takes the canonical deployment events, and only
/// them, from the hub bus, with the table actions its store calls make.
#[test]
fn the_deployments_rule_takes_the_deployment_events_from_the_hub_bus() {
    use changehub::ingest::Origin;
    let t = template();
    let f = function(&t, "DeploymentsFunction");
    let rule = &f["Properties"]["Events"]["Deployments"]["Properties"];
    assert_eq!(rule["EventBusName"], json!({"!Ref": "HubEventBus"}));
    assert_eq!(rule["Pattern"], changehub::app::deployments::event_pattern(), "as changehub serve's rule");
    let pattern = changehub::domain::EventPattern::parse(rule["Pattern"].clone()).expect("pattern");
    let event = |origin: Origin, detail_type: &str| bus_event(&origin.source(), detail_type);
    for detail_type in changehub::app::deployments::DETAIL_TYPES {
        for origin in [Origin::Github, Origin::Gitlab, Origin::Argocd] {
            assert!(pattern.matches(&event(origin, detail_type)), "{detail_type} from {origin:?}");
        }
    }
    assert!(!pattern.matches(&event(Origin::Github, "Pull Request Changed")));
    assert!(!pattern.matches(&bus_event("changehub.change", "Change Completed")));
    assert_actions(
        f,
        &[
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "secretsmanager:GetSecretValue",
        ],
    );
}

/// The correlate function's rule on the hub bus is the consumer's own
/// pattern (`changehub serve` uses the same): it matches the events ingest
/// publishes for incidents, alerts and alarms and the change events that set
/// or move an implementation, and nothing else; and the function may read
/// what a change event re-checks (the exposed services' incident indexes).
#[test]
fn the_correlate_rule_is_the_correlate_consumers_pattern() {
    let t = template();
    let f = function(&t, "CorrelateFunction");
    let rule = &f["Properties"]["Events"]["CorrelateEvents"]["Properties"];
    assert_eq!(rule["EventBusName"], json!({"!Ref": "HubEventBus"}));
    let pattern = changehub::app::tagging::rule_pattern().expect("pattern");
    assert_eq!(&rule["Pattern"], pattern.as_json());
    assert!(pattern.matches(&bus_event("changehub.pagerduty", "Incident Triggered")));
    assert!(!pattern.matches(&bus_event("changehub.github", "Deployment Created")));
    for detail_type in changehub::app::recheck::DETAIL_TYPES {
        assert!(pattern.matches(&bus_event("changehub.change", detail_type)), "{detail_type}");
    }
    for detail_type in ["Change Created", "Change Approved", "Change Incident Related", "Change Closed"] {
        assert!(!pattern.matches(&bus_event("changehub.change", detail_type)), "{detail_type}");
    }
    let tenant = changehub::domain::TenantId::parse("acme").expect("tenant");
    let service = changehub::domain::ServiceName::parse("payments").expect("service");
    let index = changehub::adapters::keys::service_incidents_pk(&tenant, &service);
    let may_query = statements_of(f).into_iter().any(|s| {
        let actions = s["Action"].as_array().cloned().unwrap_or_default();
        let leading = s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_array().cloned();
        actions.contains(&json!("dynamodb:Query"))
            && leading.unwrap_or_default().iter().any(|p| like(p.as_str().unwrap_or(""), &index))
    });
    assert!(may_query, "the correlate function may query {index}");
}

/// The drift function's rule on the hub bus is the consumer's own pattern
/// (`changehub serve` uses the same): the configuration-change evidence of
/// every source, and nothing else.
#[test]
fn the_drift_rule_is_the_drift_consumers_pattern() {
    let t = template();
    let f = function(&t, "DriftFunction");
    let rule = &f["Properties"]["Events"]["DriftEvents"]["Properties"];
    assert_eq!(rule["EventBusName"], json!({"!Ref": "HubEventBus"}));
    let pattern = changehub::app::drift::rule_pattern().expect("pattern");
    assert_eq!(&rule["Pattern"], pattern.as_json());
    for detail_type in changehub::domain::finding::observation::DETAIL_TYPES {
        assert!(pattern.matches(&bus_event("changehub.aws", detail_type)), "{detail_type}");
    }
    assert!(!pattern.matches(&bus_event("changehub.aws", "Alarm State Changed")));
    assert!(!pattern.matches(&bus_event("acme.tool", "Configuration Changed")), "only what ingest published");
    assert_actions(
        f,
        &[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "sns:Publish",
        ],
    );
    // It writes evidence beside a change, never the change itself.
    let tenant = changehub::domain::TenantId::parse("acme").expect("tenant");
    let change = changehub::domain::ChangeId::new();
    let writes = leading_keys_of(f, "dynamodb:UpdateItem");
    let evidence = changehub::adapters::keys::change_evidence_pk(&tenant, &change);
    assert!(writes.iter().any(|p| like(p, &evidence)), "{writes:?}");
    assert!(!writes.iter().any(|p| like(p, &changehub::adapters::keys::change_pk(&tenant, &change))), "{writes:?}");
}

/// The scm function's rule on the hub bus is the union of its use cases'
/// patterns (today the merge gate's, which `changehub serve` uses too): pull
/// and merge requests and the change events that may turn their statuses,
/// from the hub only. It may read the catalog and changes by id, read and
/// put the reverse index, read its one secret (the forge credentials), and
/// nothing else; the forges' URLs are parameters defaulting to the public
/// services.
#[test]
fn the_scm_rule_is_its_use_cases_patterns_with_least_privilege() {
    use changehub::adapters::keys;
    let t = template();
    let f = function(&t, "ScmFunction");
    let rule = &f["Properties"]["Events"]["ScmEvents"]["Properties"];
    assert_eq!(rule["EventBusName"], json!({"!Ref": "HubEventBus"}));
    let pattern = scm::rule_pattern().expect("pattern");
    assert_eq!(&rule["Pattern"], pattern.as_json());
    assert!(pattern.matches(&bus_event("changehub.change", changehub::app::rollback::CHANGE_FAILED)));
    use changehub::app::protection;
    assert!(pattern.matches(&bus_event("changehub.github", protection::GATE_REQUESTED)));
    assert!(pattern.matches(&bus_event(protection::DUE_SOURCE, protection::GATE_DUE)));
    for detail_type in protection::ALSO_TURNING {
        assert!(pattern.matches(&bus_event("changehub.change", detail_type)), "{detail_type}");
    }
    assert!(pattern.matches(&bus_event("changehub.github", "Pull Request Changed")));
    assert!(pattern.matches(&bus_event("changehub.gitlab", "Pull Request Changed")));
    for detail_type in changehub::domain::gate::merge::TURNING_EVENTS {
        assert!(pattern.matches(&bus_event("changehub.change", detail_type)), "{detail_type}");
    }
    assert!(!pattern.matches(&bus_event("changehub.change", "Change Created")));
    assert!(!pattern.matches(&bus_event("acme.tool", "Pull Request Changed")), "only what the hub published");

    assert_actions(
        f,
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "secretsmanager:GetSecretValue",
            "sns:Publish",
        ],
    );
    let tenant = changehub::domain::TenantId::parse("acme").expect("tenant");
    let change = changehub::domain::ChangeId::new();
    let readable = leading_keys_of(f, "dynamodb:GetItem");
    for pk in [
        keys::doc_pk(&tenant, changehub::ports::DocKind::Catalog),
        keys::change_pk(&tenant, &change),
        keys::pull_links_pk(&tenant, &change),
        keys::in_production_pk(&tenant, &changehub::domain::ServiceName::parse("payments").expect("service")),
        keys::doc_pk(&tenant, changehub::ports::DocKind::Freezes),
        keys::doc_pk(&tenant, changehub::ports::DocKind::Incidents),
        keys::protection_pk(&tenant, "evt_1"),
        keys::protection_waits_pk(&tenant, &change),
    ] {
        assert!(readable.iter().any(|p| like(p, &pk)), "the scm function reads {pk}: {readable:?}");
    }
    let secrets: BTreeSet<String> = statements_of(f)
        .into_iter()
        .filter(|s| s["Action"].as_array().is_some_and(|a| a.contains(&json!("secretsmanager:GetSecretValue"))))
        .map(|s| s["Resource"].to_string())
        .collect();
    let expected: BTreeSet<String> =
        [json!([{"!Ref": "ForgeCredentials"}]), json!([{"!Ref": "AuditKey"}])].iter().map(Value::to_string).collect();
    assert_eq!(secrets, expected, "its two secrets: the forges' credentials and the audit key it seals with");
    assert_eq!(t["Resources"]["ForgeCredentials"]["Type"], "AWS::SecretsManager::Secret");

    let env = &f["Properties"]["Environment"]["Variables"];
    assert_eq!(env["CHANGEHUB_FORGE_SECRET"], json!({"!Ref": "ForgeCredentials"}));
    assert_eq!(env["CHANGEHUB_AUDIT_KEY_SECRET"], json!({"!Ref": "AuditKey"}));
    assert_eq!(env["CHANGEHUB_TOPIC_ARN"], json!({"!Ref": "NotificationTopic"}), "a protection rule's alarm");
    for (variable, parameter, default) in [
        ("CHANGEHUB_GITHUB_API_URL", "GithubApiUrl", changehub::domain::writeback::GITHUB_API),
        ("CHANGEHUB_GITLAB_URL", "GitlabUrl", changehub::adapters::scm::GITLAB_URL),
    ] {
        assert_eq!(env[variable], json!({"!Ref": parameter}), "{variable}");
        assert_eq!(t["Parameters"][parameter]["Default"], default, "{parameter}");
    }
}

/// The escalate function runs on an EventBridge Scheduler schedule at the
/// stack's rate (1 minute by default), and may only query the due index's
/// approvals, starting-soon and freeze-starting partitions, read change items and the tenant's catalog,
/// delegations, freezes and trail head, conditionally put change items (records and audit entries)
/// and freezes documents (with their trail entries), add to the approval-wait counters, claim its
/// notices, publish `Freeze Starting` on the hub bus and its notifications on the topic, and read the
/// audit key that seals them; a failed invocation lands in its queue, whoever failed it.
#[test]
fn the_escalate_function_runs_on_a_schedule_with_least_privilege() {
    use changehub::adapters::keys;
    let t = template();
    let rate = &t["Parameters"]["EscalateRate"];
    assert_eq!(rate["Default"], "1 minute");
    let f = function(&t, "EscalateFunction");
    let schedule = &f["Properties"]["Events"]["Tick"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    assert_eq!(schedule["Properties"]["ScheduleExpression"], json!({"!Sub": "rate(${EscalateRate})"}));
    let input: escalate::Scheduled = serde_json::from_str(schedule["Properties"]["Input"].as_str().expect("Input"))
        .expect("the schedule's input is what the handler reads");
    assert_eq!(input.execution_id.as_deref(), Some("<aws.scheduler.execution-id>"));
    assert_actions(
        f,
        &[
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "events:PutEvents",
            "sns:Publish",
            "secretsmanager:GetSecretValue",
        ],
    );
    let env = &f["Properties"]["Environment"]["Variables"];
    assert_eq!(
        (&env["CHANGEHUB_EVENT_BUS"], &env["CHANGEHUB_TOPIC_ARN"]),
        (&json!({"!Ref": "HubEventBus"}), &json!({"!Ref": "NotificationTopic"})),
        "freeze notices are published and told by the tick"
    );
    let query =
        statements_of(f).into_iter().find(|s| s["Action"] == json!(["dynamodb:Query"])).expect("a Query statement");
    assert_eq!(query["Resource"], json!([{"!Sub": "${ChangeTable.Arn}/index/GSI1"}]), "the due index only");
    let may = |patterns: &[String], key: &str| patterns.iter().any(|p| like(p, key));
    let due = leading_keys(query);
    let tenant = changehub::domain::TenantId::parse("acme").expect("tenant");
    for partition in changehub::ports::DuePartition::ticked() {
        let pk = keys::due_pk(&partition);
        assert!(may(&due, &pk), "the tick queries {pk}: {due:?}");
    }
    for shard in 0..changehub::ports::DUE_SHARDS {
        for pk in [keys::freezes_due_pk(shard), keys::protection_due_pk(shard)] {
            assert!(may(&due, &pk), "the tick queries {pk}: {due:?}");
        }
    }
    let reviews = keys::due_pk(&changehub::ports::DuePartition::Reviews { tenant: tenant.clone() });
    assert!(!may(&due, &reviews), "the due index's other partitions stay closed: {due:?}");
    let get = statements_of(f).into_iter().find(|s| s["Action"] == json!(["dynamodb:GetItem"])).expect("GetItem");
    let docs = |kind| keys::doc_pk(&tenant, kind);
    let reads = leading_keys(get);
    for pk in [
        docs(changehub::ports::DocKind::Catalog),
        docs(changehub::ports::DocKind::Delegations),
        docs(changehub::ports::DocKind::Freezes),
        keys::governance_pk(&tenant),
    ] {
        assert!(may(&reads, &pk), "the tick reads {pk}: {reads:?}");
    }
    assert!(!may(&reads, &docs(changehub::ports::DocKind::Incidents)), "{reads:?}");
    // The schedule names no role: SAM makes one that may invoke the function
    // and send to the schedule's dead-letter queue (the queue of the
    // function's failed invocations, whose role SAM lets send to it too).
    let queue = json!({"!GetAtt": "EscalateDeadLetterQueue.Arn"});
    assert_eq!(schedule["Properties"]["RoleArn"], Value::Null, "SAM's role carries sqs:SendMessage to the queue");
    assert_eq!(schedule["Properties"]["DeadLetterConfig"], json!({"Arn": queue}));
    let on_failure = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
    assert_eq!((&on_failure["Type"], &on_failure["Destination"]), (&json!("SQS"), &queue));
}

/// The hub's public address is one stack parameter (`PublicUrl`, empty by
/// default: no links), set as `CHANGEHUB_PUBLIC_URL` on exactly the
/// functions whose code reads it (those that render notification texts).
#[test]
fn the_public_url_is_a_parameter_passed_to_the_functions_that_render_notifications() {
    let t = template();
    let parameter = &t["Parameters"]["PublicUrl"];
    assert_eq!((&parameter["Type"], &parameter["Default"]), (&json!("String"), &json!("")));
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    let mut linked = BTreeSet::new();
    for (name, f) in functions {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        let main = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/");
        let code = std::fs::read_to_string(format!("{main}{binary}/src/main.rs")).unwrap_or_default();
        let reads = code.contains("config::public_url()");
        let var = &f["Properties"]["Environment"]["Variables"]["CHANGEHUB_PUBLIC_URL"];
        if reads {
            assert_eq!(var, &json!({"!Ref": "PublicUrl"}), "{name} renders notifications: it needs the address");
            linked.insert(binary.to_owned());
        } else {
            assert!(var.is_null(), "{name} does not read CHANGEHUB_PUBLIC_URL");
        }
    }
    let expected = ["correlate", "drift", "publish", "scm"].map(str::to_owned);
    assert_eq!(linked, BTreeSet::from(expected), "the merge gate's statuses and the findings link too");
}
