//! `changehub audit verify --table` against a DynamoDB table on the AWS
//! emulator (moto server; `make test` starts it): a tenant's chains are
//! listed without a scan, checked with the audit key from Secrets Manager,
//! and a consistent rewrite of one is named.

use std::process::{Command, Output};
use std::sync::Arc;

use changehub::adapters::keys;
use changehub::adapters::secretsmanager;
use changehub::app::Changes;
use changehub::domain::TenantId;
use changehub::ports::{AuditSealer, ChangeReader, FixedClock};
use changehub_tests::fixtures::{alice, seed, submit_and_approve};
use changehub_tests::{aws, new_change, t0, tamper, unique};

const BIN: &str = env!("CARGO_BIN_EXE_changehub");

/// Runs `changehub audit verify --table ...` against the emulator.
fn verify(args: &[&str]) -> (Output, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .args(args)
        .env("AWS_ENDPOINT_URL", aws::endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("CHANGEHUB_TABLE")
        .env_remove("CHANGEHUB_AUDIT_KEY_SECRET")
        .output()
        .expect("changehub audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

#[tokio::test]
async fn audit_verify_table_checks_a_tenants_chains_and_their_seals() {
    let config = aws::config().await;
    let secrets = secretsmanager::Client::new(&config);
    let secret = unique("audit-key");
    secrets.create_secret().name(&secret).secret_string("k".repeat(64)).send().await.expect("create the audit key");
    let key = secretsmanager::audit_key(&secrets, &secret).await.expect("read the audit key");
    let store = aws::dynamo_store().await.with_sealer(Arc::new(AuditSealer::with_key(key)));
    let table = store.table_name().to_owned();
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = unique("cli");
    seed(&app, &tenant).await;
    let first = app.create(&alice(&tenant), new_change("first", &["payments"], t0(), 1)).await.expect("create");
    submit_and_approve(&app, &tenant, &first.id).await;
    let second = app.create(&alice(&tenant), new_change("second", &["payments"], t0(), 1)).await.expect("create");

    let (ok, out) = verify(&["--table", &table, "--tenant", &tenant, "--audit-key-secret", &secret]);
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        out.contains(&format!(
            "table {table}, tenant {tenant}: 3 audit chains, 6 entries; hashes, links, heads and seals checked; 0 broken"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("ok      {tenant}/governance  1 entry\n")), "the catalog import: {out}");
    assert!(out.contains(&format!("ok      {tenant}/{}  1 entry\n", second.id)), "{out}");

    // A consistent rewrite by someone with table access but not the key.
    let tenant_id = TenantId::parse(&tenant).expect("tenant");
    let mut trail = app.store.audit_trail(&tenant_id, &first.id).await.expect("trail");
    let mut record = app.store.get_change(&tenant_id, &first.id).await.expect("get").expect("record");
    tamper::rewrite_actor(&mut trail, &mut record, 1, "mallory");
    let pk = keys::change_pk(&tenant_id, &first.id);
    for e in &trail[1..] {
        tamper::overwrite_item(&app.store, pk.clone(), keys::audit_sk(e.seq), e).await;
    }
    tamper::overwrite_item(&app.store, pk, keys::META.to_owned(), &record).await;

    let (broken, out) = verify(&["--table", &table, "--tenant", &tenant, "--audit-key-secret", &secret]);
    assert!(!broken.status.success(), "{out}");
    assert!(
        out.contains(&format!("BROKEN  {tenant}/{}  audit entry 2: its seal is not the audit key's", first.id)),
        "{out}"
    );
    assert!(out.contains(&format!("ok      {tenant}/{}", second.id)), "{out}");
    assert!(out.contains("1 broken"), "{out}");

    // Without the key the rewrite is invisible, and the report says what it did not check.
    let (unkeyed, out) = verify(&["--table", &table, "--tenant", &tenant, "--change", &first.id.to_string()]);
    assert!(unkeyed.status.success(), "{out}");
    assert!(out.contains("1 audit chain, 4 entries; hashes, links and heads checked; seals NOT checked"), "{out}");

    let (no_tenant, _) = verify(&["--table", &table]);
    assert!(!no_tenant.status.success());
    assert!(String::from_utf8_lossy(&no_tenant.stderr).contains("--table needs --tenant"));
}
