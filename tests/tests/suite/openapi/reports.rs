//! The scenario's part on the approval SLA report (mean time to approve).

use super::*;

/// The report after the approval scenario's decisions (this month, by the
/// server's clock): its rows and bottleneck, its refusals.
pub(super) async fn approval_sla_scenario(api: &Api) {
    let sla = key(&Method::GET, "/reports/approval-sla");
    let alice = api.token(&ALICE);
    let report = api.call(&sla, Req::get("/reports/approval-sla").bearer(&alice)).await;
    report.expect("the approval SLA report", StatusCode::OK, None);
    let levels = report.body["levels"].as_array().cloned().unwrap_or_default();
    assert!(
        levels.iter().any(|l| l["key"] == json!("team-lead") && l["count"].as_u64() >= Some(1)),
        "{}",
        report.brief()
    );
    assert!(report.body["bottleneck"].is_string(), "{}", report.brief());
    let month = report.body["from"].as_str().unwrap_or_default().to_owned();
    let span = api.call(&sla, Req::get(format!("/reports/approval-sla?from={month}&to={month}")).bearer(&alice)).await;
    span.expect("a span of one month", StatusCode::OK, None);
    assert_eq!(span.body, report.body);
    for (query, field) in [
        ("period=2026-13", "period"),
        ("period=november", "period"),
        ("from=2025-01&to=2026-01", "to"),
        ("from=2026-05&to=2026-04", "from"),
        ("from=2026-05", "to"),
        ("period=2026-05&from=2026-05", "period"),
        ("colour=red", "colour"),
    ] {
        let what = format!("approval SLA ?{query}");
        api.call(&sla, Req::get(format!("/reports/approval-sla?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&sla, Req::get("/reports/approval-sla").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("the approval SLA report without a role", "reading reports needs");
}
