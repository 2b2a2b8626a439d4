use super::*;
use crate::domain::ids::TenantId;
use crate::domain::new_change::NewChange;
use chrono::{TimeZone, Utc};

fn payments() -> ServiceName {
    ServiceName::parse("payments").expect("service")
}

fn change(state: ChangeState, services: &[&str]) -> Change {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().expect("time");
    let mut c = NewChange::basic("Raise the pool", services, "production", at, at + chrono::Duration::hours(2))
        .validate()
        .expect("valid")
        .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), at);
    c.state = state;
    c
}

fn decide_one(c: &Change) -> MergeDecision {
    decide(&payments(), &MergeGatePolicy::default(), &[c.id], std::slice::from_ref(c))
}

#[test]
fn a_request_without_a_change_is_pending_and_links_to_where_one_is_opened() {
    let d = decide(&payments(), &MergeGatePolicy::default(), &[], &[]);
    assert_eq!((d.state, d.code, d.change), (CommitState::Pending, GateCode::NoChange, None));
    assert_eq!(d.target_url(Some("https://hub.example.com/")).as_deref(), Some("https://hub.example.com/changes"));
    assert!(d.description.chars().count() <= MAX_DESCRIPTION_CHARS, "{}", d.description);
}

#[test]
fn approved_scheduled_and_implementing_changes_of_the_service_pass() {
    for state in [ChangeState::Approved, ChangeState::Scheduled, ChangeState::Implementing] {
        let c = change(state, &["payments"]);
        let d = decide_one(&c);
        assert_eq!((d.state, d.code, d.change), (CommitState::Success, GateCode::Allowed, Some(c.id)), "{state}");
        assert_eq!(
            d.target_url(Some("https://hub.example.com")),
            Some(format!("https://hub.example.com/changes/{}", c.id))
        );
    }
}

#[test]
fn waiting_ended_or_foreign_changes_are_pending_and_rejected_ones_fail() {
    for (state, expected) in [
        (ChangeState::Draft, CommitState::Pending),
        (ChangeState::Submitted, CommitState::Pending),
        (ChangeState::Completed, CommitState::Pending),
        (ChangeState::Rejected, CommitState::Failure),
        (ChangeState::Cancelled, CommitState::Failure),
    ] {
        assert_eq!(decide_one(&change(state, &["payments"])).state, expected, "{state}");
    }
    let foreign = decide_one(&change(ChangeState::Approved, &["ledger"]));
    assert_eq!((foreign.state, foreign.code), (CommitState::Pending, GateCode::WrongService));
    let missing = decide(&payments(), &MergeGatePolicy::default(), &[ChangeId::new()], &[]);
    assert_eq!((missing.state, missing.code), (CommitState::Pending, GateCode::ChangeNotFound));
}

/// `c` rejected by `by` (for `for_user`, as a delegate) with `comment`.
fn rejected_by(mut c: Change, by: &str, for_user: Option<&str>, comment: Option<&str>) -> Change {
    use crate::domain::approval::{ApprovalPlan, Decision, OnBehalf};
    let on_behalf_of = for_user.map(|u| OnBehalf { user: u.into(), delegation: "d-1".into() });
    let rejected =
        Decision { by: by.into(), group: None, at: c.created_at, comment: comment.map(Into::into), on_behalf_of };
    c.approval = Some(ApprovalPlan { rejected: Some(rejected), ..ApprovalPlan::default() });
    c
}

#[test]
fn a_rejected_change_fails_naming_its_rejecter_with_the_comment_last() {
    let c =
        rejected_by(change(ChangeState::Rejected, &["payments"]), "rita", None, Some("Too risky\n before  the sale"));
    let d = decide_one(&c);
    assert_eq!((d.state, d.code, d.change), (CommitState::Failure, GateCode::ChangeRejected, Some(c.id)));
    assert_eq!(
        d.description,
        format!("Change {} was rejected by rita; open a new change. Reason: Too risky before the sale", c.id)
    );

    // Closed since, and decided by a delegate, without a comment.
    let closed = rejected_by(change(ChangeState::Closed, &["payments"]), "bob", Some("rita"), None);
    let d = decide_one(&closed);
    assert_eq!((d.state, d.code), (CommitState::Failure, GateCode::ChangeRejected));
    assert_eq!(d.description, format!("Change {} was rejected by bob for rita; open a new change", closed.id));

    // A long comment is what the status's limit cuts.
    let long = rejected_by(change(ChangeState::Rejected, &["payments"]), "rita", None, Some(&"why ".repeat(100)));
    let d = decide_one(&long);
    assert_eq!(d.description.chars().count(), MAX_DESCRIPTION_CHARS);
    assert!(
        d.description
            .starts_with(&format!("Change {} was rejected by rita; open a new change. Reason: why why", long.id))
    );
    assert!(d.description.ends_with('…'), "{}", d.description);

    // Rejected with no decision recorded: the plain text.
    let bare = decide_one(&change(ChangeState::Rejected, &["payments"]));
    assert!(bare.description.ends_with("was rejected; open a new change"), "{}", bare.description);
}

#[test]
fn the_best_of_several_referenced_changes_wins() {
    let rejected = change(ChangeState::Rejected, &["payments"]);
    let approved = change(ChangeState::Approved, &["payments"]);
    let both = [rejected.clone(), approved.clone()];
    let d = decide(&payments(), &MergeGatePolicy::default(), &[rejected.id, approved.id], &both);
    assert_eq!((d.state, d.change), (CommitState::Success, Some(approved.id)));
}

#[test]
fn a_standard_change_covers_a_merge_only_where_the_policy_allows() {
    let mut c = change(ChangeState::Approved, &["payments"]);
    c.change_type = ChangeType::Standard;
    assert_eq!(decide_one(&c).state, CommitState::Success);
    let strict = MergeGatePolicy { standard_changes: false, ..MergeGatePolicy::default() };
    assert_eq!(decide(&payments(), &strict, &[c.id], std::slice::from_ref(&c)).state, CommitState::Pending);
}

#[test]
fn base_branches_exempt_labels_and_exempt_paths_follow_the_policy() {
    let policy = MergeGatePolicy {
        branches: vec!["main".into(), "release/*".into()],
        exempt_paths: vec!["docs/**".into(), "*.md".into()],
        exempt_labels: vec!["docs".into()],
        standard_changes: true,
        gitlab: None,
    };
    assert!(policy.gates("main") && policy.gates("release/1.4"));
    assert!(!policy.gates("develop") && !policy.gates("release/1.4/hotfix"));
    let files = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(policy.exemption(&["Docs".into()], None).is_some(), "labels compare without case");
    assert!(policy.exemption(&[], Some(&files(&["docs/a/b.png", "src/README.md"]))).is_some());
    assert!(policy.exemption(&[], Some(&files(&["docs/a.md", "src/main.rs"]))).is_none());
    assert!(policy.exemption(&[], None).is_none(), "unknown files are not exempt");
    assert!(policy.exemption(&[], Some(&[])).is_none(), "no files is not exempt");
}

#[test]
fn globs_keep_single_stars_within_a_segment() {
    assert!(path_matches("docs/**", "docs/x/y.md"));
    assert!(path_matches("docs/*.md", "docs/y.md"));
    assert!(!path_matches("docs/*.md", "docs/x/y.md"));
    assert!(path_matches("**/*.md", "a/b/c.md"));
    assert!(path_matches("*.md", "a/b/c.md"));
    assert!(path_matches("src/?.rs", "src/a.rs"));
    assert!(!path_matches("src/?.rs", "src/ab.rs"));
}

#[test]
fn long_descriptions_are_cut_to_what_github_keeps() {
    let mut c = change(ChangeState::Approved, &["payments"]);
    c.title = "é".repeat(300);
    let d = decide_one(&c);
    assert_eq!(d.description.chars().count(), MAX_DESCRIPTION_CHARS);
    assert!(d.description.ends_with('…'));
}

#[test]
fn a_gitlab_external_status_check_is_named_by_its_positive_id() {
    let policy: MergeGatePolicy =
        serde_json::from_value(serde_json::json!({"gitlab": {"status_check_id": 42}})).expect("policy");
    assert_eq!(policy.gitlab, Some(GitlabMergeGate { status_check_id: 42 }));
    let mut p = Problems::default();
    policy.check(&mut p, "services[0].merge_gate");
    assert!(p.finish().is_ok());
    let zero: MergeGatePolicy =
        serde_json::from_value(serde_json::json!({"gitlab": {"status_check_id": 0}})).expect("policy");
    let mut p = Problems::default();
    zero.check(&mut p, "services[0].merge_gate");
    let e = p.finish().expect_err("0 is no check");
    assert_eq!(e.first().field, "services[0].merge_gate.gitlab.status_check_id");
    let unknown = serde_json::from_value::<MergeGatePolicy>(serde_json::json!({"gitlab": {"check": 1}}));
    assert!(unknown.is_err(), "unknown fields are refused");
}
