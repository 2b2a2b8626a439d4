//! `changehub bench`'s drift figures: unauthorized-change evaluations per
//! second and the items each one reads, with each history size (the
//! correlation's seeded history: one change every 5 minutes over twenty
//! services), on the embedded store. Items read are the store's own count
//! of the items it read and decoded (index entries, records, findings and
//! claims), taken around each evaluation, not derived from the results.

use super::*;
use changehub::adapters::local_notifier::FileNotifier;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::drift::{Drift, Judged};
use changehub::ingest::canonical::{Detail, ServiceResolution};
use changehub::ingest::{Normalized, Origin, aws};

/// The break-glass CloudTrail call every observation is made from: a
/// security group opened by a person, at a random time, on a random service.
const CALL: &[u8] =
    include_bytes!("../../../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.source_identity.json");

/// What judging observations cost with one history size.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftFigures {
    pub stored: usize,
    pub seed_secs: f64,
    pub evaluations: usize,
    /// Of those, how many a change authorized (the rest became or joined findings).
    pub authorized: usize,
    /// Items the store read per evaluation: mean and most.
    pub items: (f64, u64),
    /// Candidate changes per evaluation: mean and most.
    pub changes: (f64, usize),
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_sec: f64,
}

/// The hub event (detail-type, detail) ingest makes of the sample call, as
/// event (and CloudTrail record) `event_id` on `service`, made at `at`.
fn observation(service: &str, event_id: String, at: chrono::DateTime<Utc>) -> BoxResult<(String, serde_json::Value)> {
    let Normalized::Events(mut events) = aws::normalize(CALL)? else { return Err("the sample call is ignored".into()) };
    let c = events.pop().ok_or("the sample call makes no event")?;
    let (detail_type, mut data) = c.fact.split();
    // Another CloudTrail record each time (the consumer counts a record once).
    data["event_id"] = serde_json::json!(event_id);
    let detail = Detail {
        delivery_id: event_id.clone(),
        event_id,
        tenant: "bench".into(),
        origin: Origin::Aws,
        service: Some(service.to_owned()),
        service_resolution: ServiceResolution { key: c.service_key, reason: None },
        environment: None,
        occurred_at: at,
        actor: c.actor,
        external_id: c.external_id,
        url: None,
        data,
    };
    Ok((detail_type, serde_json::to_value(detail)?))
}

/// Seeds `n` changes into a fresh store and judges `runs` observations at
/// random times of the history on random services, one at a time, through
/// the drift consumer's use case (claim, candidates, decision, and the
/// finding and its notification when unauthorized).
async fn drift_figures(dir: &std::path::Path, n: usize, runs: usize) -> BoxResult<DriftFigures> {
    let path = dir.join(format!("drift-{n}.db"));
    let store = EmbeddedStore::open(&path)?;
    let tenant = TenantId::parse("bench")?;
    let base = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.with_timezone(&Utc);
    let seed_secs = seed_history(&store, &tenant, base, n).await?;
    let admin =
        Caller { tenant: tenant.clone(), user: "bench-admin".into(), groups: vec![], granted: [Role::Admin].into() };
    Changes::new(store.clone(), SystemClock).catalog.replace(&admin, bench_catalog()?, None, &SystemClock).await?;
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    let counted = store.clone();
    let drift = Drift::new(store, catalog, SystemClock, FileNotifier::new(dir.join(format!("drift-{n}.jsonl"))));
    let span_seconds = (n as i64 * SEED_SPACING_MINUTES * 60).max(1);
    let mut numbers = Numbers(n as u64 + 7);
    let (mut h, mut items, mut changes) = (histogram(), Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut authorized = 0;
    let started = Instant::now();
    for i in 0..runs {
        let service = format!("svc-{}", numbers.below(BENCH_SERVICES as u64));
        let at = base + Duration::seconds(numbers.below(span_seconds as u64) as i64);
        let (detail_type, detail) = observation(&service, format!("bench-{n}-{i}"), at)?;
        let (read_before, t) = (counted.items_read(), Instant::now());
        let judged = drift.handle(&detail_type, &detail).await?;
        let _ = h.record(t.elapsed().as_micros() as u64);
        items.push(counted.items_read() - read_before);
        match judged {
            Judged::Authorized { changes_read, .. } => {
                authorized += 1;
                changes.push(changes_read);
            }
            Judged::Unauthorized { changes_read, .. } => changes.push(changes_read),
            other => return Err(format!("observation {i} was not judged: {other:?}").into()),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    drop((drift, counted));
    std::fs::remove_file(&path)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let item_counts: Vec<f64> = items.iter().map(|&k| k as f64).collect();
    let change_counts: Vec<f64> = changes.iter().map(|&k| k as f64).collect();
    Ok(DriftFigures {
        stored: n,
        seed_secs,
        evaluations: runs,
        authorized,
        items: (mean(&item_counts), items.iter().copied().max().unwrap_or(0)),
        changes: (mean(&change_counts), changes.iter().copied().max().unwrap_or(0)),
        p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        per_sec: runs as f64 / secs.max(f64::EPSILON),
    })
}

/// Drift evaluation cost with each history size, side by side.
pub(super) async fn drift(dir: &std::path::Path, sizes: &[usize], runs: usize) -> BoxResult<Vec<DriftFigures>> {
    let mut all = Vec::with_capacity(sizes.len());
    for &n in sizes {
        all.push(drift_figures(dir, n, runs).await?);
    }
    println!(
        "\nDrift evaluations on the embedded store ({runs} CloudTrail calls at random times on random services, \
         one at a time: claim, candidates, decision, finding and notification when unauthorized; \
         one change every {SEED_SPACING_MINUTES} min over {BENCH_SERVICES} services):"
    );
    println!(
        "{:>14} {:>9} {:>11} {:>18} {:>18} {:>11} {:>11} {:>14}",
        "stored changes", "seeded", "authorized", "items read/eval", "candidates/eval", "p50", "p99", "evaluations/s"
    );
    for f in &all {
        println!(
            "{:>14} {:>8.1}s {:>11} {:>9.1} (max {:>3}) {:>9.1} (max {:>3}) {:>8.3} ms {:>8.3} ms {:>14.0}",
            f.stored,
            f.seed_secs,
            f.authorized,
            f.items.0,
            f.items.1,
            f.changes.0,
            f.changes.1,
            f.p50_ms,
            f.p99_ms,
            f.per_sec
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke version of the drift figures: with twenty times the
    /// history, an evaluation reads about as many items, counted by the store.
    #[tokio::test]
    async fn drift_reads_do_not_grow_with_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let figures = drift(dir.path(), &[100, 2_000], 60).await.expect("bench");
        let (small, large) = (&figures[0], &figures[1]);
        assert_eq!((small.stored, large.stored), (100, 2_000));
        assert!(small.items.0 > 0.0 && small.authorized > 0 && small.authorized < 60, "{figures:?}");
        assert!(large.items.0 <= small.items.0 * 1.5 + 3.0, "{figures:?}");
        assert!(large.items.1 <= 40, "{figures:?}");
    }
}
