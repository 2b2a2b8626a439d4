//! Whether a change authorizes an observation: a pure decision on the
//! observation's own time and the changes' recorded windows, so a replay a
//! month later gives the same answer.
//!
//! A change authorizes an observation of service S at time t when it
//! covers S (or names the resource changed, by id or ARN: the only way an
//! unmapped resource is authorized), is no mere record of a deployment (`recorded`), and either
//! - it is approved or scheduled (not yet started) and t lies in its planned
//!   window widened by the grace on both sides, or
//! - it started implementing, and t lies from the earlier of its planned and
//!   actual start (less the grace) to its end plus the grace (no end while it
//!   runs): "implementing, or completed within the grace".
//!
//! A deployment pipeline's own principal is authorized only by the second
//! rule's actual window (`started − grace ..= ended + grace`): a pipeline
//! that runs outside an implementation changes production unasked. Changes
//! CloudFormation makes for a stack are judged by the stack's service like
//! anyone's: the stack update is what a change authorizes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::observation::{Actor, Observation};
use crate::domain::{Change, ChangeId, ChangeState, ChangeType};

/// How a change authorized an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizedBy {
    /// Inside the planned window of an approved or scheduled change.
    PlannedWindow,
    /// While the change was implementing (or within the grace of its end).
    Implementation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authorized {
        change_id: ChangeId,
        by: AuthorizedBy,
    },
    /// No change authorizes it; `reason` says why, for people.
    Unauthorized {
        reason: String,
    },
}

/// The decision: the first authorizing change (implementing before planned,
/// then the lowest id, so the order of `changes` never matters), else why none does.
pub fn decide(observation: &Observation, changes: &[Change], grace: Duration) -> Verdict {
    let pipeline = observation.actor.as_ref().is_some_and(|a: &Actor| a.pipeline);
    let t = observation.at;
    let mut found: Option<(AuthorizedBy, ChangeId)> = None;
    for change in changes.iter().filter(|c| covers(c, observation)) {
        let Some(by) = authorizes(change, t, grace, pipeline) else { continue };
        let rank = |b: AuthorizedBy| matches!(b, AuthorizedBy::PlannedWindow);
        let better = match found {
            None => true,
            Some((held, id)) => (rank(by), change.id.to_string()) < (rank(held), id.to_string()),
        };
        if better {
            found = Some((by, change.id));
        }
    }
    if let Some((by, change_id)) = found {
        return Verdict::Authorized { change_id, by };
    }
    let reason = match (&observation.service, pipeline) {
        (None, _) => {
            "the resource maps to no service in the catalog, and no approved change names it at that time".to_owned()
        }
        (Some(service), true) => {
            format!("a deployment pipeline's principal changed {service} while no change for it was implementing")
        }
        (Some(service), false) => format!(
            "no approved change covers {service} or names the resource at that time (its window widened by the grace, or its implementation)"
        ),
    };
    Verdict::Unauthorized { reason }
}

/// Whether `change` covers what `o` changed: it lists its service, or it
/// names one of its resources (by id, ARN, or the ARN's last part).
fn covers(change: &Change, o: &Observation) -> bool {
    o.service.as_ref().is_some_and(|s| change.services.contains(s))
        || o.resources.iter().any(|r| r.names().iter().any(|n| change.resources.iter().any(|named| named == n)))
}

/// How `change` authorizes something at `t`, if it does.
fn authorizes(change: &Change, t: DateTime<Utc>, grace: Duration, pipeline: bool) -> Option<AuthorizedBy> {
    if change.change_type == ChangeType::Recorded {
        return None;
    }
    match &change.implementation {
        Some(implementation) => {
            let started = implementation.started_at();
            let from = if pipeline { started } else { started.min(change.planned_start) };
            let inside = from - grace <= t && implementation.ended_at().is_none_or(|end| t <= end + grace);
            inside.then_some(AuthorizedBy::Implementation)
        }
        None if pipeline => None,
        None => {
            let approved =
                matches!(change.state, ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing);
            let inside = change.planned_start - grace <= t && t <= change.planned_end + grace;
            (approved && inside).then_some(AuthorizedBy::PlannedWindow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::correlation::{Implementation, Outcome};
    use crate::domain::finding::observation::{Evidence, Resource};
    use crate::domain::{NewChange, ServiceName, TenantId};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 14, 10, 0, 0).single().unwrap_or_default() + Duration::minutes(minutes)
    }

    const GRACE: i64 = 15;

    fn grace() -> Duration {
        Duration::minutes(GRACE)
    }

    /// A change on payments planned from `start` to `end` (minutes after t(0)), in `state`.
    fn change(start: i64, end: i64, state: ChangeState) -> Change {
        let mut c = NewChange::basic("x", &["payments"], "production", t(start), t(end))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), t(start - 600));
        c.state = state;
        c
    }

    fn implemented(start: i64, end: i64, ran: (i64, Option<i64>)) -> Change {
        let mut c = change(start, end, ChangeState::Implementing);
        c.implementation = Some(match ran.1 {
            None => Implementation::Ongoing { started_at: t(ran.0) },
            Some(e) => {
                c.state = ChangeState::Completed;
                Implementation::Finished { started_at: t(ran.0), ended_at: t(e), outcome: Outcome::Succeeded }
            }
        });
        c
    }

    fn observation(at: i64, pipeline: bool) -> Observation {
        let actor = crate::domain::finding::observation::Actor {
            pipeline,
            ..crate::domain::finding::observation::Actor::cloudformation("arn:aws:cloudformation:us-east-1:1:stack/s/u")
        };
        Observation {
            tenant: TenantId::parse("acme").expect("tenant"),
            event_id: "e".into(),
            evidence: Evidence::ApiCall,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            at: t(at),
            resources: vec![Resource { id: "sg-1".into(), arn: None, resource_type: None }],
            service: Some(ServiceName::parse("payments").expect("service")),
            what: "x".into(),
            action: None,
            actor: Some(actor),
        }
    }

    fn authorized(v: &Verdict) -> bool {
        matches!(v, Verdict::Authorized { .. })
    }

    #[test]
    fn a_scheduled_change_authorizes_inside_its_window_and_grace_only() {
        let scheduled = [change(0, 60, ChangeState::Scheduled)];
        for (at, expected) in [(-16, false), (-15, true), (30, true), (75, true), (76, false)] {
            assert_eq!(authorized(&decide(&observation(at, false), &scheduled, grace())), expected, "at {at}");
        }
    }

    #[test]
    fn changes_not_approved_or_of_other_services_authorize_nothing() {
        for state in [ChangeState::Draft, ChangeState::Submitted, ChangeState::Rejected, ChangeState::Cancelled] {
            let v = decide(&observation(30, false), &[change(0, 60, state)], grace());
            assert!(!authorized(&v), "{state}");
        }
        let mut elsewhere = change(0, 60, ChangeState::Scheduled);
        elsewhere.services = vec![ServiceName::parse("search").expect("service")];
        assert!(!authorized(&decide(&observation(30, false), &[elsewhere], grace())));
        let mut recorded = change(0, 60, ChangeState::Scheduled);
        recorded.change_type = ChangeType::Recorded;
        assert!(!authorized(&decide(&observation(30, false), &[recorded], grace())));
    }

    #[test]
    fn an_implementation_authorizes_from_its_start_to_its_end_plus_grace() {
        // Planned 0..60, ran 50..130: the overrun is covered, then the grace.
        let ran = [implemented(0, 60, (50, Some(130)))];
        for (at, expected) in [(-16, false), (-15, true), (100, true), (145, true), (146, false)] {
            let v = decide(&observation(at, false), &ran, grace());
            assert_eq!(authorized(&v), expected, "at {at}");
        }
        // Completed early: its planned window's rest is no longer covered.
        let early = [implemented(0, 120, (0, Some(20)))];
        assert!(authorized(&decide(&observation(35, false), &early, grace())));
        assert!(!authorized(&decide(&observation(36, false), &early, grace())));
        // Still running: covered however long.
        let running = [implemented(0, 60, (10, None))];
        assert!(authorized(&decide(&observation(600, false), &running, grace())));
    }

    #[test]
    fn a_pipeline_principal_needs_an_implementing_change() {
        let scheduled = [change(0, 60, ChangeState::Scheduled)];
        let v = decide(&observation(30, true), &scheduled, grace());
        let Verdict::Unauthorized { reason } = v else { panic!("a plan does not authorize a pipeline") };
        assert!(reason.contains("pipeline"), "{reason}");
        let running = [implemented(0, 60, (20, None))];
        assert!(authorized(&decide(&observation(30, true), &running, grace())));
        assert!(!authorized(&decide(&observation(4, true), &running, grace())), "before the grace of its actual start");
        assert!(authorized(&decide(&observation(5, true), &running, grace())));
    }

    #[test]
    fn an_unmapped_resource_is_authorized_only_by_a_change_naming_it() {
        let mut o = observation(30, false);
        o.service = None;
        let Verdict::Unauthorized { reason } = decide(&o, &[change(0, 60, ChangeState::Scheduled)], grace()) else {
            panic!("a change of a service does not cover a resource of none")
        };
        assert!(reason.contains("no service"), "{reason}");
        let mut naming = change(0, 60, ChangeState::Scheduled);
        naming.resources = vec!["sg-1".into()];
        assert!(authorized(&decide(&o, std::slice::from_ref(&naming), grace())));
        // Only inside its window and grace, and only while approved.
        o.at = t(76);
        assert!(!authorized(&decide(&o, std::slice::from_ref(&naming), grace())));
        o.at = t(30);
        naming.state = ChangeState::Submitted;
        assert!(!authorized(&decide(&o, &[naming], grace())));
    }

    #[test]
    fn a_change_naming_the_resource_covers_it_on_another_service_by_id_arn_or_arn_tail() {
        let mut o = observation(30, false);
        o.resources = vec![Resource {
            id: "AROAEXAMPLE".into(),
            arn: Some("arn:aws:iam::123456789012:role/checkout-task".into()),
            resource_type: None,
        }];
        for named in ["AROAEXAMPLE", "arn:aws:iam::123456789012:role/checkout-task", "checkout-task"] {
            let mut elsewhere = change(0, 60, ChangeState::Scheduled);
            elsewhere.services = vec![ServiceName::parse("search").expect("service")];
            elsewhere.resources = vec![named.into()];
            assert!(authorized(&decide(&o, &[elsewhere], grace())), "{named}");
        }
        let mut other = change(0, 60, ChangeState::Scheduled);
        other.services = vec![ServiceName::parse("search").expect("service")];
        other.resources = vec!["sg-2".into(), "checkout".into()];
        assert!(!authorized(&decide(&o, &[other], grace())), "another resource, or a prefix, names nothing");
    }

    #[test]
    fn implementing_changes_are_preferred_to_plans() {
        let plan = change(0, 60, ChangeState::Scheduled);
        let ran = implemented(0, 60, (0, None));
        for changes in [vec![plan.clone(), ran.clone()], vec![ran.clone(), plan.clone()]] {
            let v = decide(&observation(30, false), &changes, grace());
            assert_eq!(v, Verdict::Authorized { change_id: ran.id, by: AuthorizedBy::Implementation });
        }
    }

    fn any_change() -> impl Strategy<Value = Change> {
        (-300i64..300, 1i64..240, 0usize..4, proptest::option::of((-300i64..300, proptest::option::of(0i64..300))))
            .prop_map(|(start, len, state, ran)| {
                let states =
                    [ChangeState::Approved, ChangeState::Scheduled, ChangeState::Submitted, ChangeState::Cancelled];
                match ran {
                    Some((s, e)) => implemented(start, start + len, (s, e.map(|e| s + e))),
                    None => change(start, start + len, states[state]),
                }
            })
    }

    proptest! {
        #[test]
        fn shifting_every_time_by_one_offset_changes_nothing(
            changes in proptest::collection::vec(any_change(), 0..6),
            at in -400i64..400,
            pipeline: bool,
            shift in -100_000i64..100_000,
        ) {
            let before = decide(&observation(at, pipeline), &changes, grace());
            let d = Duration::minutes(shift);
            let moved: Vec<Change> = changes.iter().cloned().map(|mut c| {
                c.planned_start += d;
                c.planned_end += d;
                c.implementation = c.implementation.map(|i| match i {
                    Implementation::Ongoing { started_at } => Implementation::Ongoing { started_at: started_at + d },
                    Implementation::Finished { started_at, ended_at, outcome } => {
                        Implementation::Finished { started_at: started_at + d, ended_at: ended_at + d, outcome }
                    }
                });
                c
            }).collect();
            let mut o = observation(at, pipeline);
            o.at += d;
            prop_assert_eq!(decide(&o, &moved, grace()), before);
        }

        #[test]
        fn a_longer_grace_never_takes_an_authorization_away_nor_does_the_order(
            mut changes in proptest::collection::vec(any_change(), 0..6),
            at in -400i64..400,
            pipeline: bool,
            more in 0i64..120,
        ) {
            let o = observation(at, pipeline);
            let v = decide(&o, &changes, grace());
            if authorized(&v) {
                prop_assert!(authorized(&decide(&o, &changes, grace() + Duration::minutes(more))));
            }
            changes.reverse();
            prop_assert_eq!(decide(&o, &changes, grace()), v);
            // A pipeline is never authorized where a person is not.
            if pipeline {
                let person = Observation { actor: None, ..o.clone() };
                if authorized(&decide(&o, &changes, grace())) {
                    prop_assert!(authorized(&decide(&person, &changes, grace())));
                }
            }
        }
    }
}
