//! The activity log contract: every case runs against the embedded and the DynamoDB store.

use changehub::domain::TenantId;
use changehub::ports::{Activity, ActivityLog, ActivityQuery, Cursor, MAX_EVALUATED, Page, StoreError};
use chrono::{DateTime, Duration, Utc};

use crate::t0;

/// A tenant of its own for this run (the DynamoDB table is shared by test runs).
fn tenant() -> TenantId {
    TenantId::parse(&crate::unique("acme")).expect("tenant")
}

/// An accepted event `id` that happened at `at`, from `source` about `service`.
pub fn row(id: &str, at: DateTime<Utc>, source: &str, detail_type: &str, service: Option<&str>) -> Activity {
    Activity {
        event_id: id.to_owned(),
        detail_type: detail_type.to_owned(),
        source: format!("changehub.{source}"),
        external_id: format!("ext-{id}"),
        service: service.map(str::to_owned),
        service_reason: service.is_none().then(|| "the event names no service".to_owned()),
        change_ids: vec![],
        occurred_at: at,
        received_at: t0(),
        delivery_id: format!("delivery-{id}"),
        expires_at: t0() + Duration::days(30),
        decision: None,
    }
}

/// Everything of `tenant`'s log, unfiltered, as of `t0`.
fn everything(tenant: &TenantId, limit: usize) -> ActivityQuery {
    ActivityQuery {
        tenant: tenant.clone(),
        since: None,
        until: None,
        service: None,
        source: None,
        detail_type: None,
        now: t0(),
        limit,
        after: None,
    }
}

/// Every page of `q`, following the cursors; each page no longer than `q.limit`.
async fn pages<S: ActivityLog>(store: &S, q: &ActivityQuery) -> Vec<Page<Activity>> {
    let mut q = q.clone();
    let mut pages = Vec::new();
    loop {
        let page = store.activity(&q).await.expect("a page");
        assert!(page.items.len() <= q.limit, "{} rows on a page of {}", page.items.len(), q.limit);
        q.after = page.next.clone();
        pages.push(page);
        if q.after.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the cursors never end");
    }
}

fn ids(rows: impl IntoIterator<Item = Activity>) -> Vec<String> {
    rows.into_iter().map(|r| r.event_id).collect()
}

async fn listed<S: ActivityLog>(store: &S, q: &ActivityQuery) -> Vec<String> {
    ids(pages(store, q).await.into_iter().flat_map(|p| p.items))
}

pub async fn activity_is_listed_newest_first_within_since_and_until<S: ActivityLog>(store: S) {
    let (acme, other) = (tenant(), tenant());
    let h = Duration::hours;
    let rows = [
        row("github-a-0", t0() - h(3), "github", "Deployment Created", Some("payments")),
        row("github-b-0", t0(), "github", "Deployment Created", Some("payments")),
        row("github-b-1", t0(), "github", "Deployment Created", Some("payments")),
        row("pagerduty-c-0", t0() - h(1), "pagerduty", "Incident Triggered", None),
        row("aws-d-0", t0() - h(2), "aws", "Alarm State Changed", Some("search")),
    ];
    store.record(&acme, &rows).await.expect("record");
    store.record(&other, &[row("github-z-0", t0(), "github", "Deployment Created", None)]).await.expect("record");

    let page = store.activity(&everything(&acme, 10)).await.expect("list");
    assert_eq!(ids(page.items.clone()), ["github-b-1", "github-b-0", "pagerduty-c-0", "aws-d-0", "github-a-0"]);
    assert_eq!(page.next, None);
    assert_eq!(page.items[2], rows[3], "a row reads back as written");

    let window = ActivityQuery { since: Some(t0() - h(2)), until: Some(t0() - h(1)), ..everything(&acme, 10) };
    assert_eq!(listed(&store, &window).await, ["pagerduty-c-0", "aws-d-0"], "since and until are inclusive");

    let two = pages(&store, &everything(&acme, 2)).await;
    assert_eq!(two[0].items.len(), 2);
    assert_eq!(
        ids(two.into_iter().flat_map(|p| p.items)),
        ["github-b-1", "github-b-0", "pagerduty-c-0", "aws-d-0", "github-a-0"]
    );
    assert_eq!(listed(&store, &everything(&other, 10)).await, ["github-z-0"], "tenants never share a log");
}

/// A redelivery or a retried batch records the same events again: each
/// stays one row, as last written.
pub async fn recording_an_event_again_replaces_its_row<S: ActivityLog>(store: S) {
    let acme = tenant();
    let first = row("github-a-0", t0(), "github", "Deployment Created", Some("payments"));
    store.record(&acme, std::slice::from_ref(&first)).await.expect("record");
    let again = Activity { delivery_id: "redelivery".into(), received_at: t0() + Duration::minutes(5), ..first };
    let other = row("github-a-1", t0(), "github", "Deployment Created", Some("payments"));
    store.record(&acme, &[again.clone(), other]).await.expect("record again");
    let page = store.activity(&everything(&acme, 10)).await.expect("list");
    assert_eq!(ids(page.items.clone()), ["github-a-1", "github-a-0"]);
    assert_eq!(page.items[1], again);
}

/// A filtered page reads at most [`MAX_EVALUATED`] rows: when they hold no
/// match it comes back empty with a cursor, and the match is on a later page.
pub async fn a_filtered_page_reads_a_bounded_number_of_rows_and_hands_back_a_cursor<S: ActivityLog>(store: S) {
    let acme = tenant();
    let minutes = |m: usize| t0() - Duration::minutes(i64::try_from(m).expect("small"));
    let mut rows: Vec<Activity> = (0..MAX_EVALUATED + 3)
        .map(|m| row(&format!("pagerduty-{m}-0"), minutes(m), "pagerduty", "Incident Triggered", Some("search")))
        .collect();
    for m in [MAX_EVALUATED + 3, MAX_EVALUATED + 4] {
        rows.push(row(&format!("github-{m}-0"), minutes(m), "github", "Deployment Created", Some("payments")));
    }
    store.record(&acme, &rows).await.expect("record");

    let payments = ActivityQuery { service: Some("payments".into()), ..everything(&acme, 10) };
    let first = store.activity(&payments).await.expect("page 1");
    assert!(first.items.is_empty(), "the newest {MAX_EVALUATED} rows are all search's");
    assert!(first.next.is_some(), "a short page still says where to resume");
    let found = listed(&store, &payments).await;
    assert_eq!(found, [format!("github-{}-0", MAX_EVALUATED + 3), format!("github-{}-0", MAX_EVALUATED + 4)]);

    // More matches than a page holds: the next page resumes after the last one shown.
    let incidents = ActivityQuery {
        source: Some("changehub.pagerduty".into()),
        detail_type: Some("Incident Triggered".into()),
        ..everything(&acme, 3)
    };
    let first = store.activity(&incidents).await.expect("page 1");
    assert_eq!(ids(first.items), ["pagerduty-0-0", "pagerduty-1-0", "pagerduty-2-0"]);
    let second = store.activity(&ActivityQuery { after: first.next, ..incidents.clone() }).await.expect("page 2");
    assert_eq!(ids(second.items), ["pagerduty-3-0", "pagerduty-4-0", "pagerduty-5-0"]);
    let all = listed(&store, &incidents).await;
    assert_eq!(all.len(), MAX_EVALUATED + 3);
    let none = ActivityQuery { source: Some("changehub.gitlab".into()), ..everything(&acme, 10) };
    assert!(listed(&store, &none).await.is_empty());
}

/// A row past its TTL is not listed, whether or not the store deleted it yet.
pub async fn expired_activity_is_not_listed<S: ActivityLog>(store: S) {
    let acme = tenant();
    let expired = Activity {
        expires_at: t0() - Duration::seconds(1),
        ..row("github-old-0", t0() - Duration::days(31), "github", "Deployment Created", None)
    };
    let kept = row("github-new-0", t0() - Duration::days(1), "github", "Deployment Created", None);
    store.record(&acme, &[expired, kept]).await.expect("record");
    assert_eq!(listed(&store, &everything(&acme, 10)).await, ["github-new-0"]);
}

pub async fn foreign_activity_cursors_are_refused<S: ActivityLog>(store: S) {
    let q =
        ActivityQuery { after: Some(Cursor::parse("CHG#bogus").expect("well formed")), ..everything(&tenant(), 10) };
    match store.activity(&q).await {
        Err(StoreError::InvalidCursor(_)) => {}
        other => panic!("the activity log refuses a foreign cursor, got {other:?}"),
    }
}
