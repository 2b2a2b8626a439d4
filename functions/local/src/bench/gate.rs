//! `changehub bench`'s deployment gate figures: decisions per second and
//! their latency on the embedded store, through the use case (one task) and
//! over HTTP (a pipeline's token, several clients). Every decision is
//! recorded in the activity log: each one includes a durable write.

use super::*;
use changehub::domain::ChangeId;
use changehub::domain::gate::GateRequest;

/// Changes each service has planned around now besides the approved one
/// (drafts later in the day): what a by-service decision reads past.
const OTHERS_PER_SERVICE: usize = 10;
const SERVICES: usize = 20;

fn ask(i: usize, environment: &str, change: Option<ChangeId>) -> GateRequest {
    GateRequest {
        service: format!("svc-{}", i % SERVICES),
        environment: environment.to_owned(),
        version: Some(format!("1.{i}.0")),
        sha: None,
        change: change.map(|c| c.to_string()),
    }
}

/// The approved change of each service (planned from 5 minutes ago to 2
/// hours on), and drafts after it, in `changes`' tenant.
async fn seed(changes: &Changes<EmbeddedStore, SystemClock>, admin: &Caller) -> BoxResult<Vec<ChangeId>> {
    changes.catalog.replace(admin, bench_catalog()?, None, &SystemClock).await?;
    let person = |user: &str, group: &str| Caller {
        tenant: admin.tenant.clone(),
        user: user.into(),
        groups: vec![group.into()],
        granted: Default::default(),
    };
    let (engineer, lead) = (person("bench", "engineers"), person("lead", "leads"));
    let now = Utc::now();
    let mut approved = Vec::with_capacity(SERVICES);
    for s in 0..SERVICES {
        let service = format!("svc-{s}");
        let new = |k: i64| NewChange {
            description: "Roll out the service's next version.".into(),
            ..NewChange::basic(
                format!("Roll out {service} #{k}"),
                &[&service],
                "production",
                now + Duration::hours(3 * k) - Duration::minutes(5),
                now + Duration::hours(3 * k + 2),
            )
        };
        let id = changes.create(&engineer, new(0)).await?.id;
        let submit = TransitionRequest { to: ChangeState::Submitted, version: 1, reason: None, override_reason: None };
        changes.transition(&engineer, &id, submit).await?;
        let approve = DecisionRequest { decision: Verdict::Approve, version: None, comment: None };
        changes.decide(&lead, &id, approve).await?;
        approved.push(id);
        for k in 1..=OTHERS_PER_SERVICE as i64 {
            changes.create(&engineer, new(k % 8)).await?;
        }
    }
    Ok(approved)
}

pub(super) async fn gate(dir: &std::path::Path, requests: usize, concurrency: usize) -> BoxResult<()> {
    let db = dir.join("gate.db");
    let tenant = TenantId::parse("default")?;
    let admin =
        Caller { tenant: tenant.clone(), user: "bench-admin".into(), groups: vec![], granted: [Role::Admin].into() };
    let pipeline = Caller { tenant: tenant.clone(), user: "ci".into(), groups: vec![], granted: [Role::Ingest].into() };
    let approved = {
        let changes = Changes::new(EmbeddedStore::open(&db)?, SystemClock);
        let approved = seed(&changes, &admin).await?;
        println!(
            "\nDeployment gate through the use case (one task, {requests} decisions each; {SERVICES} services, each with an approved change in its window and {OTHERS_PER_SERVICE} more planned; every answer is a durable activity write):"
        );
        let (changes, pipeline, ids) = (&changes, &pipeline, &approved);
        let gate = move |req: GateRequest| changes.gate(pipeline, req, StdDuration::ZERO, None);
        measure("production, by change id", requests, |i| gate(ask(i, "production", Some(ids[i % SERVICES])))).await?;
        measure("production, found by service", requests, |i| gate(ask(i, "production", None))).await?;
        measure("staging (recorded only)", requests, |i| gate(ask(i, "staging", None))).await?;
        approved
    };
    let hub = serve_hub(HubConfig {
        db: db.clone(),
        notifications: dir.join("gate-notifications.jsonl"),
        secrets: Default::default(),
        bootstrap_admin_group: None,
        limits: Default::default(),
        activity_retention: Default::default(),
        public_url: None,
    })
    .await?;
    let key = changehub::http::bearer::LocalKey::for_database(&db)?;
    let token = key.mint_ingest("ci", &tenant, Utc::now(), Duration::hours(1))?;
    let base = hub.base.clone();
    let ([h], secs) = drive(concurrency, requests, move |client, i| {
        let (base, token) = (base.clone(), token.clone());
        let change = (i % 2 == 0).then(|| approved[i % SERVICES]);
        async move {
            let t = Instant::now();
            let answer = client
                .post(format!("{base}/gates/deployments"))
                .bearer_auth(&token)
                .json(&ask(i, "production", change))
                .send()
                .await?;
            if answer.status() != 200 {
                return Err(BenchError::Status { what: "POST /gates/deployments", status: answer.status() });
            }
            let decision: serde_json::Value = answer.json().await?;
            if decision["allowed"] != serde_json::json!(true) {
                return Err(BenchError::Status {
                    what: "a gate decision (not allowed)",
                    status: reqwest::StatusCode::OK,
                });
            }
            Ok([t.elapsed()])
        }
    })
    .await?;
    hub.stop().await?;
    println!("\nDeployment gate over HTTP (loopback, {concurrency} clients, a pipeline's token, half by change id):");
    line("POST /gates/deployments", requests, Some(secs), Some(&h));
    Ok(())
}
