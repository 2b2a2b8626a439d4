//! `changehub bench`: figures for the local hub on the embedded store.
//! Starts a private hub on a temporary database and a loopback port.

use chrono::{Duration, Utc};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::changes::DecisionRequest;
use changehub::app::{Caller, Changes, ListRequest, TransitionRequest};
use changehub::domain::access::BOOTSTRAP_ADMIN_GROUP;
use changehub::domain::approval::Verdict;
use changehub::domain::catalog::Role;
use changehub::domain::{ChangeState, NewChange, TenantId};
use changehub::local::{self, Hub, HubConfig};
use changehub::ports::SystemClock;

mod drift;
mod gate;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what} answered {status}")]
    Status { what: &'static str, status: reqwest::StatusCode },
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn sample_change(i: usize) -> NewChange {
    let start = Utc::now() + Duration::hours((i % 500) as i64);
    let service = format!("svc-{}", i % 20);
    NewChange {
        description: "Rolling restart of the payments API behind the load balancer.".into(),
        ..NewChange::basic(
            format!("Benchmark change {i}"),
            &[&service],
            "production",
            start,
            start + Duration::hours(1),
        )
    }
}

fn body(i: usize) -> serde_json::Value {
    let c = sample_change(i);
    serde_json::json!({
        "title": c.title, "description": c.description, "type": "normal", "services": c.services,
        "environment": c.environment, "planned_start": c.planned_start, "planned_end": c.planned_end,
    })
}

/// One result line: the rate when `secs` is the time these ops alone took,
/// the latency quantiles when each op was timed.
fn line(name: &str, count: usize, secs: Option<f64>, h: Option<&Histogram<u64>>) {
    let rate = secs.map(|s| format!("{:>10.0} ops/s", count as f64 / s)).unwrap_or_else(|| format!("{:>16}", ""));
    let latency = h
        .map(|h| {
            format!(
                "  p50 {:>7.3} ms  p99 {:>7.3} ms",
                h.value_at_quantile(0.50) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    println!("{name:<30} {count:>7} ops  {rate}{latency}");
}

/// What `changehub bench` measures.
#[derive(Debug, clap::Args)]
pub struct BenchPlan {
    /// Create+get pairs to send through the API.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Raw store operations of each kind.
    #[arg(long, default_value_t = 2000)]
    pub store_ops: usize,
    /// Stored changes to correlate incidents against, one fresh store each, side by side. Seeding writes
    /// 10,000 changes per transaction into a file beside the working directory (removed after): 100,000
    /// take minutes, mostly disk writes (about 4 on a debug build on a busy disk).
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    pub correlation_sizes: Vec<usize>,
    /// Incidents to correlate with each size.
    #[arg(long, default_value_t = 1000)]
    pub correlations: usize,
    /// Measure correlation only (and escalation, unless --escalation-changes 0).
    #[arg(long)]
    pub correlation_only: bool,
    /// Changes waiting for approval when one escalation tick is timed (0: skip it); seeded like
    /// the correlation history, in a file removed after.
    #[arg(long, default_value_t = 100_000)]
    pub escalation_changes: usize,
    /// Of those, how many are due: the tick's items read track this number, not the waiting ones.
    #[arg(long, default_value_t = 100)]
    pub escalation_due: usize,
    /// Deployment gate decisions of each kind (through the use case, and over HTTP).
    #[arg(long, default_value_t = 2000)]
    pub gate_decisions: usize,
    /// Measure the deployment gate only.
    #[arg(long, conflicts_with = "correlation_only")]
    pub gate_only: bool,
    /// Stored changes to judge configuration changes against, one fresh store each (seeded like the
    /// correlation history, in a file removed after).
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    pub drift_sizes: Vec<usize>,
    /// Observations (CloudTrail calls) to judge with each size.
    #[arg(long, default_value_t = 1000)]
    pub drift_evaluations: usize,
    /// Measure drift evaluations only.
    #[arg(long, conflicts_with_all = ["correlation_only", "gate_only"])]
    pub drift_only: bool,
}

pub async fn run(plan: BenchPlan) -> BoxResult<()> {
    let BenchPlan { requests, concurrency, store_ops, .. } = plan;
    // Beside the working directory, not in /tmp: /tmp is often a RAM disk,
    // where a durable commit's fsync costs nothing and the figures would flatter.
    let dir = tempfile::tempdir_in(".")?;
    println!(
        "changehub bench: embedded store in {}; {} cores",
        dir.path().display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    if plan.gate_only {
        return gate::gate(dir.path(), plan.gate_decisions.max(1), concurrency.max(1)).await;
    }
    if plan.drift_only {
        return drift::drift(dir.path(), &plan.drift_sizes, plan.drift_evaluations.max(1)).await.map(drop);
    }
    if !plan.correlation_only {
        gate::gate(dir.path(), plan.gate_decisions.max(1), concurrency.max(1)).await?;
        api(dir.path(), requests, concurrency.max(1)).await?;
        store(dir.path(), store_ops).await?;
        ingest(dir.path(), requests, concurrency.max(1)).await?;
        ingest_cpu(store_ops.max(1))?;
    }
    correlation(dir.path(), &plan.correlation_sizes, plan.correlations.max(1)).await?;
    if plan.escalation_changes > 0 {
        escalation(dir.path(), plan.escalation_changes, plan.escalation_due.min(plan.escalation_changes)).await?;
    }
    if !plan.correlation_only {
        drift::drift(dir.path(), &plan.drift_sizes, plan.drift_evaluations.max(1)).await?;
    }
    Ok(())
}

/// A hub serving on a loopback port until stopped.
struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), local::HubError>>,
}

async fn serve_hub(config: HubConfig) -> BoxResult<Running> {
    let hub = Hub::open(&config)?;
    let listener = local::bind("127.0.0.1:0".parse()?).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hub.serve(listener, async {
        let _ = stopped.await;
    }));
    Ok(Running { base, stop, server })
}

impl Running {
    async fn stop(self) -> BoxResult<()> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}

/// Runs operations 0..`requests` over `concurrency` clients. Each operation
/// makes `N` timed requests and returns their latencies; the k-th latency of
/// every operation goes to the k-th histogram. Returns them and the wall time.
async fn drive<const N: usize, F, Fut>(
    concurrency: usize,
    requests: usize,
    op: F,
) -> BoxResult<([Histogram<u64>; N], f64)>
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<[StdDuration; N], BenchError>> + Send,
{
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, op) = (client.clone(), next.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut hs: [Histogram<u64>; N] = std::array::from_fn(|_| histogram());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                for (h, d) in hs.iter_mut().zip(op(client.clone(), i).await?) {
                    let _ = h.record(d.as_micros() as u64);
                }
            }
            Ok::<_, BenchError>(hs)
        }));
    }
    let mut total: [Histogram<u64>; N] = std::array::from_fn(|_| histogram());
    for w in workers {
        for (t, h) in total.iter_mut().zip(w.await??) {
            t.add(h)?;
        }
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

async fn api(dir: &std::path::Path, requests: usize, concurrency: usize) -> BoxResult<()> {
    let hub = serve_hub(HubConfig {
        db: dir.join("api.db"),
        notifications: dir.join("notifications.jsonl"),
        secrets: Default::default(),
        bootstrap_admin_group: Some(BOOTSTRAP_ADMIN_GROUP.into()),
        limits: Default::default(),
        activity_retention: Default::default(),
        public_url: None,
    })
    .await?;
    let base = hub.base.clone();
    let key = changehub::http::bearer::LocalKey::for_database(&dir.join("api.db"))?;
    let token =
        key.mint("bench", &["changehub-admins".into()], &TenantId::parse("default")?, Utc::now(), Duration::hours(1))?;
    let ([create_h, get_h], secs) = drive(concurrency, requests, move |client, i| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let t = Instant::now();
            let created = client.post(format!("{base}/changes")).bearer_auth(&token).json(&body(i)).send().await?;
            if created.status() != 201 {
                return Err(BenchError::Status { what: "POST /changes", status: created.status() });
            }
            let change: serde_json::Value = created.json().await?;
            let create = t.elapsed();
            let id = change["id"].as_str().unwrap_or_default().to_owned();
            let t = Instant::now();
            let got = client.get(format!("{base}/changes/{id}")).bearer_auth(&token).send().await?;
            if got.status() != 200 {
                return Err(BenchError::Status { what: "GET /changes/{id}", status: got.status() });
            }
            got.bytes().await?;
            Ok([create, t.elapsed()])
        }
    })
    .await?;
    hub.stop().await?;
    println!("\nAPI over HTTP (loopback, {concurrency} clients, embedded store, durable commits):");
    line("create+get pairs", requests, Some(secs), None);
    line("requests (create or get)", requests * 2, Some(secs), None);
    line("  POST /changes", requests, None, Some(&create_h));
    line("  GET /changes/{id}", requests, None, Some(&get_h));
    Ok(())
}

/// Runs `op` for 0..n, one at a time, and prints its rate and latency.
async fn measure<T, F, Fut>(name: &str, n: usize, mut op: F) -> BoxResult<()>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, changehub::app::ChangeError>>,
{
    let mut h = histogram();
    let t = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        op(i).await?;
        let _ = h.record(s.elapsed().as_micros() as u64);
    }
    line(name, n, Some(t.elapsed().as_secs_f64()), Some(&h));
    Ok(())
}

async fn store(dir: &std::path::Path, n: usize) -> BoxResult<()> {
    let store = EmbeddedStore::open(dir.join("store.db"))?;
    let changes = Changes::new(store, SystemClock);
    let admin = Caller {
        tenant: TenantId::parse("bench")?,
        user: "bench-admin".into(),
        groups: vec![],
        granted: [Role::Admin].into(),
    };
    changes.catalog.replace(&admin, bench_catalog()?, None, &SystemClock).await?;
    let person = |user: &str, group: &str| Caller {
        tenant: admin.tenant.clone(),
        user: user.into(),
        groups: vec![group.into()],
        granted: Default::default(),
    };
    let (caller, lead) = (person("bench", "engineers"), person("lead", "leads"));
    println!("\nEmbedded store through the use cases (one task, {n} ops each):");

    let (changes, caller) = (&changes, &caller);
    let ids = std::cell::RefCell::new(Vec::with_capacity(n));
    let created = &ids;
    measure("create (record+index+audit)", n, move |i| async move {
        let id = changes.create(caller, sample_change(i)).await?.id;
        created.borrow_mut().push(id);
        Ok(())
    })
    .await?;
    let ids = ids.into_inner();
    measure("get", n, |i| changes.get(caller, &ids[i])).await?;
    measure("submit (gates+risk+plan)", n, |i| {
        let req = TransitionRequest { to: ChangeState::Submitted, version: 1, reason: None, override_reason: None };
        changes.transition(caller, &ids[i], req)
    })
    .await?;
    let lead = &lead;
    measure("approve (read+cond. write)", n, |i| {
        let req = DecisionRequest { decision: Verdict::Approve, version: None, comment: None };
        changes.decide(lead, &ids[i], req)
    })
    .await?;
    measure("list service window (24h)", n, |i| {
        let from = Utc::now() + Duration::hours((i % 400) as i64);
        let req = ListRequest {
            service: Some(format!("svc-{}", i % 20)),
            from: Some(from),
            to: Some(from + Duration::hours(24)),
            limit: Some(50),
            ..ListRequest::default()
        };
        changes.list(caller, req)
    })
    .await?;
    Ok(())
}

/// Twenty services with a one-level approval chain each.
fn bench_catalog() -> BoxResult<changehub::domain::catalog::Catalog> {
    let services: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({"name": format!("svc-{i}"), "owner_group": "owners", "tier": 1 + i % 4,
                "depends_on": if i > 0 { vec![format!("svc-{}", i - 1)] } else { vec![] },
                "approval": [{"name": "lead", "groups": ["leads"], "sla": "4h", "escalate_to": "managers"}]})
        })
        .collect();
    Ok(serde_json::from_value(serde_json::json!({
        "roles": {"requester": ["engineers"], "approver": ["leads"]},
        "services": services,
    }))?)
}

/// The signed GitHub `deployment_status` sample (about 10 KB).
const DEPLOYMENT_STATUS: &[u8] = include_bytes!("../../../events/github/deployment_status.success.json");
const BENCH_SECRET: &str = "bench-secret";

fn signed_headers(delivery: &str, body: &[u8]) -> http::HeaderMap {
    use changehub::ingest::{Origin, sign};
    sign::delivery(Origin::Github, BENCH_SECRET, "deployment_status", delivery, body, Utc::now())
}

/// The sample with its status id set to `i`.
fn distinct_body(i: usize) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(DEPLOYMENT_STATUS).unwrap_or_default();
    value["deployment_status"]["id"] = serde_json::Value::from(i);
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Signed webhooks over HTTP: verify, normalize, dedupe, publish and keep the activity row (durable writes).
async fn ingest(dir: &std::path::Path, requests: usize, concurrency: usize) -> BoxResult<()> {
    use changehub::adapters::env_secrets::{SecretsDocument, StaticSecrets};
    let mut doc = SecretsDocument::new();
    doc.entry("default".into()).or_default().insert("github".into(), vec![BENCH_SECRET.into()]);
    let hub = serve_hub(HubConfig {
        db: dir.join("ingest.db"),
        notifications: dir.join("ingest-notifications.jsonl"),
        secrets: StaticSecrets::new(doc),
        bootstrap_admin_group: None,
        // Every concurrent delivery the benchmark sends is read, none answered busy.
        limits: changehub::local::ServeLimits {
            webhooks: changehub::http::webhooks::WebhookLimits { concurrent_bodies: concurrency.max(1) },
            ..Default::default()
        },
        activity_retention: Default::default(),
        public_url: None,
    })
    .await?;
    let url = format!("{}/webhooks/github", hub.base);
    let ([h], secs) = drive(concurrency, requests, move |client, i| {
        let url = url.clone();
        async move {
            // Each request is a distinct delivery: the hub dedupes on the signed body too.
            let body = distinct_body(i);
            let headers = signed_headers(&format!("bench-delivery-{i}"), &body);
            let t = Instant::now();
            let mut req = client.post(&url).body(body);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_bytes());
            }
            let res = req.send().await?;
            if res.status() != 202 {
                return Err(BenchError::Status { what: "POST /webhooks/github", status: res.status() });
            }
            res.bytes().await?;
            Ok([t.elapsed()])
        }
    })
    .await?;
    hub.stop().await?;
    println!(
        "\nWebhook ingest over HTTP (signed GitHub deployment_status, {} bytes, {concurrency} clients):",
        DEPLOYMENT_STATUS.len()
    );
    line("POST /webhooks/github", requests, Some(secs), Some(&h));
    Ok(())
}

/// CPU per event of what ingest does before any I/O: verify the signature,
/// parse and normalize. One thread, so wall time here is CPU time.
fn ingest_cpu(n: usize) -> BoxResult<()> {
    use changehub::ingest::{self, Origin, signature};
    let secrets = vec![BENCH_SECRET.to_owned()];
    let headers = signed_headers("bench-cpu", DEPLOYMENT_STATUS);
    let now = Utc::now();
    let mut h = histogram();
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        signature::verify(Origin::Github, &secrets, &headers, DEPLOYMENT_STATUS, now)?;
        let normalized = ingest::normalize(Origin::Github, &headers, DEPLOYMENT_STATUS)?;
        std::hint::black_box(normalized);
        let _ = h.record(t.elapsed().as_nanos() as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("\nIngest CPU per event (verify + parse + normalize, one thread, {n} events):");
    println!(
        "{:<30} {n:>7} ops  {:>10.0} ops/s  mean {:>6.1} µs  p50 {:>6.1} µs  p99 {:>6.1} µs",
        "github deployment_status",
        n as f64 / secs,
        secs * 1e6 / n as f64,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(())
}

/// What correlating incidents cost with one history size.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationFigures {
    pub stored: usize,
    pub seed_secs: f64,
    pub correlations: usize,
    /// Store calls per correlation: mean and most.
    pub calls: (f64, usize),
    /// Items read per correlation: mean and most.
    pub items: (f64, usize),
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_sec: f64,
}

/// A deterministic stream of numbers (splitmix64), so two runs correlate the same incidents.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One change every 5 minutes, so a longer history is a longer time, as in use.
const SEED_SPACING_MINUTES: i64 = 5;
const BENCH_SERVICES: usize = 20;

/// The `i`-th change of a seeded history starting at `base`: on one of the
/// twenty services (one in ten on two), mostly minutes long, one in fifty
/// six hours, one in five hundred three days; one in five in staging, one
/// in seventeen failed; the last twenty still implementing.
fn seeded_change(
    tenant: &TenantId,
    base: chrono::DateTime<Utc>,
    i: usize,
    n: usize,
) -> BoxResult<(changehub::domain::Change, changehub::domain::AuditEntry)> {
    use changehub::domain::audit::{self, AuditAction};
    use changehub::domain::correlation::{Implementation, Outcome};
    let start = base + Duration::minutes(i as i64 * SEED_SPACING_MINUTES);
    let k = i % BENCH_SERVICES;
    let mut services = vec![format!("svc-{k}")];
    if i % 10 == 3 {
        services.push(format!("svc-{}", (k + 1) % BENCH_SERVICES));
    }
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let environment = if i % 5 == 4 { "staging" } else { "production" };
    let length = match i {
        i if i % 500 == 7 => Duration::days(3),
        i if i.is_multiple_of(50) => Duration::hours(6),
        i => Duration::minutes(5 + (i % 40) as i64),
    };
    let outcome = if i.is_multiple_of(17) { Outcome::Failed } else { Outcome::Succeeded };
    let mut change = NewChange::basic(format!("Seeded change {i}"), &services, environment, start, start + length)
        .validate()?
        .into_draft(changehub::domain::ChangeId::new(), tenant.clone(), "bench".into(), start - Duration::days(1));
    (change.state, change.implementation) = if i + 20 >= n {
        (ChangeState::Implementing, Some(Implementation::Ongoing { started_at: start }))
    } else {
        let ended_at = start + length;
        let state = if outcome == Outcome::Failed { ChangeState::Failed } else { ChangeState::Completed };
        (state, Some(Implementation::Finished { started_at: start, ended_at, outcome }))
    };
    Ok(audit::record(None, change, "bench", AuditAction::Created, None))
}

/// Seeds the history of `n` changes from `base` ([`seeded_change`]), 10,000
/// per write transaction; the seconds it took.
async fn seed_history(
    store: &EmbeddedStore,
    tenant: &TenantId,
    base: chrono::DateTime<Utc>,
    n: usize,
) -> BoxResult<f64> {
    let seeding = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let changes = chunk.iter().map(|&i| seeded_change(tenant, base, i, n)).collect::<BoxResult<Vec<_>>>()?;
        store.insert_many(changes).await?;
    }
    Ok(seeding.elapsed().as_secs_f64())
}

/// Seeds `n` changes into a fresh store (10,000 per write transaction) and
/// correlates `runs` incidents at random times on random services that have
/// a dependency (one hop: two services in scope).
async fn correlation_figures(dir: &std::path::Path, n: usize, runs: usize) -> BoxResult<CorrelationFigures> {
    use changehub::app::correlate::Correlator;
    use changehub::domain::ServiceName;
    use changehub::domain::correlation::IncidentFacts;
    let path = dir.join(format!("correlate-{n}.db"));
    let store = EmbeddedStore::open(&path)?;
    let tenant = TenantId::parse("bench")?;
    let base = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.with_timezone(&Utc);
    let seed_secs = seed_history(&store, &tenant, base, n).await?;
    let catalog = bench_catalog()?;
    let correlator = Correlator::new(store);
    let span_minutes = (n as i64 * SEED_SPACING_MINUTES).max(1);
    let mut numbers = Numbers(n as u64);
    let (mut h, mut calls, mut items) = (histogram(), Vec::with_capacity(runs), Vec::with_capacity(runs));
    let started = Instant::now();
    for _ in 0..runs {
        let service = ServiceName::parse(&format!("svc-{}", 1 + numbers.below(BENCH_SERVICES as u64 - 1)))?;
        let at = base + Duration::seconds(numbers.below(span_minutes as u64 * 60) as i64);
        let incident = IncidentFacts { service, started_at: at, environment: None, resources: vec![] };
        let t = Instant::now();
        let (correlation, cost) = correlator.correlate(&tenant, &catalog, &incident).await?;
        let _ = h.record(t.elapsed().as_micros() as u64);
        std::hint::black_box(correlation);
        calls.push(cost.calls);
        items.push(cost.items);
    }
    let secs = started.elapsed().as_secs_f64();
    drop(correlator);
    std::fs::remove_file(&path)?;
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    let most = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
    Ok(CorrelationFigures {
        stored: n,
        seed_secs,
        correlations: runs,
        calls: (mean(&calls), most(&calls)),
        items: (mean(&items), most(&items)),
        p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        per_sec: runs as f64 / secs.max(f64::EPSILON),
    })
}

/// Correlation cost with each history size, side by side.
async fn correlation(dir: &std::path::Path, sizes: &[usize], runs: usize) -> BoxResult<Vec<CorrelationFigures>> {
    let mut all = Vec::with_capacity(sizes.len());
    for &n in sizes {
        all.push(correlation_figures(dir, n, runs).await?);
    }
    println!(
        "\nCorrelation on the embedded store ({runs} incidents at random times on a service with a dependency; \
         4h window, one hop: two services in scope; one change every {SEED_SPACING_MINUTES} min over {BENCH_SERVICES} services):"
    );
    println!(
        "{:>14} {:>9} {:>18} {:>18} {:>11} {:>11} {:>15}",
        "stored changes", "seeded", "store calls/corr", "items read/corr", "p50", "p99", "correlations/s"
    );
    for f in &all {
        println!(
            "{:>14} {:>8.1}s {:>9.1} (max {:>2}) {:>9.1} (max {:>3}) {:>8.3} ms {:>8.3} ms {:>15.0}",
            f.stored, f.seed_secs, f.calls.0, f.calls.1, f.items.0, f.items.1, f.p50_ms, f.p99_ms, f.per_sec
        );
    }
    Ok(all)
}

/// What one escalation tick cost.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationFigures {
    pub waiting: usize,
    pub due: usize,
    pub seed_secs: f64,
    /// Changes the tick read from the due index.
    pub read: usize,
    /// Approval steps and "starting soon" reminders taken.
    pub taken: usize,
    pub tick_ms: f64,
}

/// `waiting` changes on the bench catalog's services: every other one
/// submitted (a 4h level), the rest scheduled two days ahead with a one-hour
/// "starting soon" lead. Of the first `due`, the submitted ones opened five
/// hours before now (their first escalation is due) and the scheduled ones
/// start in 30 minutes (their reminder is due); the rest are due later.
async fn escalation_figures(dir: &std::path::Path, waiting: usize, due: usize) -> BoxResult<EscalationFigures> {
    use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
    use changehub::app::escalation::Escalator;
    use changehub::domain::ServiceName;
    use changehub::domain::approval::ApprovalPlan;
    use changehub::domain::audit::{self, AuditAction};
    use changehub::domain::catalog::CatalogView;
    let path = dir.join(format!("escalate-{waiting}.db"));
    let store = EmbeddedStore::open(&path)?;
    let tenant = TenantId::parse("bench")?;
    let view = CatalogView::new(1, bench_catalog()?);
    let now = Utc::now();
    let seeding = Instant::now();
    for chunk in (0..waiting).collect::<Vec<_>>().chunks(10_000) {
        let mut changes = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let opened = if i < due { now - Duration::hours(5) } else { now };
            let service = format!("svc-{}", i % BENCH_SERVICES);
            let scheduled = i % 2 == 1;
            let start = if scheduled && i < due { now + Duration::minutes(30) } else { now + Duration::days(2) };
            let mut change = NewChange::basic(
                format!("Waiting change {i}"),
                &[&service],
                "production",
                start,
                start + Duration::hours(1),
            )
            .validate()?
            .into_draft(changehub::domain::ChangeId::new(), tenant.clone(), "bench".into(), opened);
            if scheduled {
                change.state = ChangeState::Scheduled;
                change.arm_starting_soon(&view.catalog.changes.starting_soon);
            } else {
                change.state = ChangeState::Submitted;
                change.approval = Some(ApprovalPlan::build(&view, &[ServiceName::parse(&service)?], false, opened)?);
            }
            changes.push(audit::record(None, change, "bench", AuditAction::Created, None));
        }
        store.insert_many(changes).await?;
    }
    let seed_secs = seeding.elapsed().as_secs_f64();
    let escalator =
        Escalator { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
    // The tick's freeze part: the freezes shards of the due index, empty here.
    let notifications = changehub::adapters::local_notifier::FileNotifier::new(dir.join("bench-notifications.jsonl"));
    let freezes = changehub::app::freeze_starting::FreezeTicker::new(
        escalator.store.clone(),
        escalator.catalog.clone(),
        SystemClock,
        changehub::adapters::local_bus::LocalBus::new(),
        notifications,
    );
    let started = Instant::now();
    let tick = escalator.tick().await?;
    let frozen = freezes.tick().await?;
    let tick_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop((escalator, freezes));
    std::fs::remove_file(&path)?;
    let taken = tick.taken.len() + tick.starting_soon.len() + frozen.told.len();
    Ok(EscalationFigures { waiting, due, seed_secs, read: tick.read + frozen.read, taken, tick_ms })
}

/// One escalation tick over many waiting changes, few of them due.
async fn escalation(dir: &std::path::Path, waiting: usize, due: usize) -> BoxResult<EscalationFigures> {
    let f = escalation_figures(dir, waiting, due).await?;
    println!(
        "\nEscalation tick on the embedded store (the sharded due index, {} shards):",
        changehub::ports::DUE_SHARDS
    );
    println!(
        "{:>15} {:>6} {:>9} {:>16} {:>12} {:>12}",
        "waiting changes", "due", "seeded", "items read/tick", "steps taken", "tick"
    );
    println!(
        "{:>15} {:>6} {:>8.1}s {:>16} {:>12} {:>9.1} ms",
        f.waiting, f.due, f.seed_secs, f.read, f.taken, f.tick_ms
    );
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke version of the escalation figure: a tick reads the due
    /// changes only, however many wait.
    #[tokio::test]
    async fn an_escalation_tick_reads_only_what_is_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = escalation(dir.path(), 3_000, 10).await.expect("bench");
        assert_eq!((f.read, f.taken), (10, 10), "{f:?}");
    }

    /// The smoke version of the correlation figures: with a hundred times the
    /// history, a correlation makes the same store calls and reads about as many items.
    #[tokio::test]
    async fn correlation_cost_does_not_grow_with_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let figures = correlation(dir.path(), &[100, 3_000], 100).await.expect("bench");
        let (small, large) = (&figures[0], &figures[1]);
        assert_eq!((small.stored, large.stored), (100, 3_000));
        assert!(small.calls.1 <= 11 && large.calls.1 <= 11, "{figures:?}");
        assert!(large.items.0 <= small.items.0 * 1.5 + 2.0, "{figures:?}");
        assert!(large.items.1 <= 60, "{figures:?}");
    }
}
