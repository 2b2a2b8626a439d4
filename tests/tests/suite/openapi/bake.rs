//! The scenario's part on bake time: a verifying change an incident made
//! suspect (stored as the tagging consumer leaves it), read, then cleared by
//! the cab with `POST /changes/{id}/clear-suspect`, once.

use super::*;
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::bake::{Bake, Suspect};
use changehub::domain::catalog::Span;
use changehub::domain::{ChangeId, ChangeState, NewChange};
use changehub::ports::ChangeWriter;

pub(super) async fn bake_scenario(api: &Api) {
    let clear = key(&Method::POST, "/changes/{id}/clear-suspect");
    let get = key(&Method::GET, "/changes/{id}");
    let hub = api._hub.as_ref().expect("the local hub");
    let now = chrono::Utc::now();
    let new =
        NewChange::basic("Roll out checkout v3", &["payments"], "production", now, now + chrono::Duration::hours(2));
    let tenant = TenantId::parse(ALICE.tenant).expect("tenant");
    let mut change = new.validate().expect("valid").into_draft(ChangeId::new(), tenant, ALICE.user.into(), now);
    change.state = ChangeState::Verifying;
    let reason = "incident on payments".to_owned();
    let suspect = Suspect { incident_id: "inc-1".into(), started_at: now, reason };
    let time = Span::parse("30m").expect("span");
    change.bake =
        Some(Bake { until: now + chrono::Duration::minutes(30), time, suspect: Some(suspect), cleared: None });
    let (change, entry) = audit::record(None, change, "changehub", AuditAction::Created, None);
    hub.store.insert_change(&change, &entry).await.expect("stored");
    let id = change.id;
    let read = api.call(&get, Req::get(format!("/changes/{id}")).bearer(&api.token(&ALICE))).await;
    read.expect("a suspect change", StatusCode::OK, None);
    assert_eq!(read.body["bake"]["suspect"]["incident_id"], json!("inc-1"));
    let uri = format!("/changes/{id}/clear-suspect");
    let body = json!({"version": change.version, "note": "a card network outage, not this change"});
    let what = "clear-suspect without an owner group or the cab";
    api.call(&clear, Req::post_json(&uri, &body).bearer(&api.token(&ALICE)))
        .await
        .expect_forbidden(what, "owner group");
    let cleared = api.call(&clear, Req::post_json(&uri, &body).bearer(&api.token(&CAROL))).await;
    cleared.expect("clear-suspect", StatusCode::OK, None);
    assert_eq!(cleared.body["bake"]["cleared"]["by"], json!(CAROL.user));
    let again = json!({"version": cleared.body["version"], "note": "again"});
    api.call(&clear, Req::post_json(&uri, &again).bearer(&api.token(&CAROL))).await.expect(
        "clear-suspect twice",
        StatusCode::CONFLICT,
        Some("not_suspect"),
    );
}
