//! GitHub's deployment protection rules, answered by the hub: a request
//! (`deployment_protection_rule`, `requested`) is decided by the deployment
//! gate ([`super::decide`]) and answered on its callback (`approved` or
//! `rejected`, with a comment naming the change and the reason), at once
//! when the gate's answer is settled, later when it is pending.
//!
//! A pending request is kept ([`ProtectionRequest`]): in its change's
//! waiting set ([`ProtectionWaits`], one small item per change, like the
//! merge gate's reverse index), so that the change's decision answers it
//! with one read; and in the due index at the time the gate named (a freeze
//! ends, the window opens), or at its time-out. A request a freeze holds is
//! decided again every [`super::FREEZE_RECHECK`] as well: a freeze lifted
//! early is no change event. GitHub fails a job whose
//! protection rules are not answered within [`GITHUB_LIMIT`]; the hub
//! answers `rejected` [`TIMEOUT_MARGIN`] before, saying it timed out.
//!
//! An answer is written before it is sent ([`ProtectionStatus::Delivering`],
//! a conditional write on the request's version): of two copies of an
//! event, one writes it and sends it, the other does nothing. An answer the
//! forge did not take is sent again from the due index, backing off, until
//! GitHub's limit; then it is [`ProtectionStatus::Undelivered`] and alarmed.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{Decision, GateCode, GateStatus};
use crate::domain::TenantId;
use crate::domain::ids::{ChangeId, ServiceName};

/// How long GitHub waits for a protection rule's answer before it fails the
/// job ("If a job is not approved within 30 days, it will automatically
/// fail": GitHub's "Reviewing deployments"; runs left waiting end after
/// `30d 0h 0m` with "review time expired").
pub const GITHUB_LIMIT: Duration = Duration::days(30);
/// How long before [`GITHUB_LIMIT`] a request still pending is answered
/// `rejected` (timed out), leaving time to deliver that answer.
pub const TIMEOUT_MARGIN: Duration = Duration::hours(6);
/// The most requests listed as waiting on one change, which a change event
/// decides again at once. A request its change's full list cannot take is
/// decided again every [`UNLISTED_RECHECK`] instead.
pub const MAX_WAITING: usize = 50;
/// How soon a request left off its change's full waiting list is decided again.
pub const UNLISTED_RECHECK: Duration = Duration::minutes(5);
/// How long an answer being sent is held before the due index hands it to
/// another attempt (a sender that stopped mid-way).
pub const DELIVERY_LEASE: Duration = Duration::minutes(5);
/// The first wait before an undelivered answer is sent again; it doubles up to [`MAX_RETRY_WAIT`].
pub const FIRST_RETRY_WAIT: Duration = Duration::minutes(1);
pub const MAX_RETRY_WAIT: Duration = Duration::hours(1);
/// GitHub takes comments of at most this many characters.
pub const MAX_COMMENT_CHARS: usize = 1024;

/// The `state` a protection rule is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    Approved,
    Rejected,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Approved => "approved",
            CallbackState::Rejected => "rejected",
        }
    }
}

/// An answer, as the callback posts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackAnswer {
    pub state: CallbackState,
    pub comment: String,
    /// Why, as the gate's code (`timed_out` when the hub gave up waiting).
    pub code: String,
    pub decided_at: DateTime<Utc>,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProtectionStatus {
    /// The gate's answer is pending: kept until the change is decided, the
    /// time the gate named, or the time-out.
    Waiting {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change: Option<ChangeId>,
        code: GateCode,
        reason: String,
    },
    /// Decided; being sent, or sent again from the due index after a failure.
    Delivering {
        answer: CallbackAnswer,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
    },
    /// GitHub took the answer.
    Answered { answer: CallbackAnswer, answered_at: DateTime<Utc> },
    /// GitHub did not take the answer before its limit (or refused it): alarmed.
    Undelivered { answer: CallbackAnswer, attempts: u32, last_error: String },
}

/// One protection rule request, kept from its arrival until it is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRequest {
    pub tenant: TenantId,
    /// The hub event's id (from the webhook delivery): what makes a copy a copy.
    pub id: String,
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    pub change_ids: Vec<ChangeId>,
    /// `deployment_callback_url`, as GitHub sent it.
    pub callback_url: String,
    /// When GitHub asked (the deployment's time): [`GITHUB_LIMIT`] runs from here.
    pub requested_at: DateTime<Utc>,
    /// 1 for the first write, then one more per write (optimistic locking).
    pub version: u64,
    pub status: ProtectionStatus,
    /// When the due index hands the request back (a recheck, a time-out, a
    /// redelivery); `None`: nothing is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

impl ProtectionRequest {
    /// When a request still pending is answered `rejected` (timed out).
    pub fn timeout_at(&self) -> DateTime<Utc> {
        self.requested_at + GITHUB_LIMIT - TIMEOUT_MARGIN
    }

    /// When GitHub stops waiting: an answer not delivered by then is alarmed.
    pub fn deadline(&self) -> DateTime<Utc> {
        self.requested_at + GITHUB_LIMIT
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.status, ProtectionStatus::Waiting { .. })
    }

    /// The change it waits on, while it waits.
    pub fn waiting_on(&self) -> Option<ChangeId> {
        match &self.status {
            ProtectionStatus::Waiting { change, .. } => *change,
            _ => None,
        }
    }

    /// `self` moved to `status`, due at `due_at`, one version on.
    pub fn next(&self, status: ProtectionStatus, due_at: Option<DateTime<Utc>>) -> Self {
        Self { version: self.version + 1, status, due_at, ..self.clone() }
    }
}

/// What to do with a request after the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Answer(CallbackAnswer),
    /// Keep it, on `change`, handed back at `until` (the gate's recheck time, or the time-out).
    Wait {
        change: ChangeId,
        code: GateCode,
        reason: String,
        until: DateTime<Utc>,
    },
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `text` cut to GitHub's comment limit.
pub fn comment(text: String) -> String {
    if text.chars().count() <= MAX_COMMENT_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_COMMENT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// What `decision` means for `request` at `now`: an answer, or a wait.
/// A pending answer waits only on a change, only while the time it would
/// turn comes before the time-out; otherwise it is `rejected` now.
pub fn next(request: &ProtectionRequest, decision: &Decision, now: DateTime<Utc>) -> Next {
    let on = decision.change.as_ref().map(|c| format!("change {} ({})", c.id, c.title));
    let answer = |state: CallbackState, code: &str, text: String| {
        Next::Answer(CallbackAnswer { state, comment: comment(text), code: code.to_owned(), decided_at: now })
    };
    match decision.status {
        GateStatus::Allowed => {
            let what = on.map_or_else(String::new, |on| format!(" on {on}"));
            answer(
                CallbackState::Approved,
                decision.code.as_str(),
                format!("changehub approved{what}: {}", decision.reason),
            )
        }
        GateStatus::Refused => {
            answer(CallbackState::Rejected, decision.code.as_str(), format!("changehub rejected: {}", decision.reason))
        }
        GateStatus::Pending => {
            let timeout = request.timeout_at();
            let Some(change) = decision.change.as_ref() else {
                let text = format!(
                    "changehub rejected: {}. Name the change in the branch or ref (chg/<id>) or the deployment's description, then re-run the job",
                    decision.reason
                );
                return answer(CallbackState::Rejected, decision.code.as_str(), text);
            };
            if now >= timeout {
                let text = format!(
                    "changehub rejected: timed out waiting since {} (GitHub waits at most {} days): {}. Re-run the job once the change may implement",
                    secs(request.requested_at),
                    GITHUB_LIMIT.num_days(),
                    decision.reason
                );
                return answer(CallbackState::Rejected, "timed_out", text);
            }
            match decision.recheck_at {
                Some(at) if at >= timeout => {
                    let text = format!(
                        "changehub rejected: {}; that is after GitHub stops waiting ({}). Re-run the job then",
                        decision.reason,
                        secs(request.deadline())
                    );
                    answer(CallbackState::Rejected, decision.code.as_str(), text)
                }
                at => {
                    let until = at.map_or(timeout, |at| at.min(timeout));
                    let until = match decision.code {
                        GateCode::FreezeWindow => until.min(now + super::FREEZE_RECHECK),
                        _ => until,
                    };
                    Next::Wait { change: change.id, code: decision.code, reason: decision.reason.clone(), until }
                }
            }
        }
    }
}

/// The wait before attempt `attempts + 1` at sending an answer.
pub fn retry_wait(attempts: u32) -> Duration {
    let doubled = FIRST_RETRY_WAIT * 2i32.saturating_pow(attempts.min(10));
    doubled.min(MAX_RETRY_WAIT)
}

/// One request waiting on a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRequest {
    pub id: String,
    pub since: DateTime<Utc>,
}

/// Whether a request is on its change's waiting list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Listed now.
    Added,
    /// Listed already.
    Listed,
    /// Not listed: the list is full.
    Full,
}

/// The requests waiting on one change, versioned (optimistic locking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionWaits {
    pub tenant: TenantId,
    pub change: ChangeId,
    /// 1 for the first write, then one more per write.
    pub version: u64,
    pub requests: Vec<WaitingRequest>,
}

impl ProtectionWaits {
    pub fn new(tenant: TenantId, change: ChangeId) -> Self {
        Self { tenant, change, version: 0, requests: Vec::new() }
    }

    /// Lists request `id`, unless the list already holds [`MAX_WAITING`]
    /// others: a listed request is never dropped for a newer one.
    pub fn add(&mut self, id: &str, since: DateTime<Utc>) -> Listing {
        if self.requests.iter().any(|r| r.id == id) {
            return Listing::Listed;
        }
        if self.requests.len() >= MAX_WAITING {
            return Listing::Full;
        }
        self.requests.push(WaitingRequest { id: id.to_owned(), since });
        Listing::Added
    }

    /// Removes request `id`. Whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.requests.len();
        self.requests.retain(|r| r.id != id);
        self.requests.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::{ChangeState, ChangeType};
    use crate::domain::gate::ChangeRef;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, day, hour, 0, 0).single().expect("time")
    }

    fn request() -> ProtectionRequest {
        ProtectionRequest {
            tenant: TenantId::parse("acme").expect("tenant"),
            id: "github-d1-0".into(),
            repository: "acme/pay".into(),
            installation: Some(7),
            environment: "production".into(),
            service: None,
            git_ref: None,
            sha: None,
            change_ids: vec![],
            callback_url: "https://api.github.com/repos/acme/pay/actions/runs/1/deployment_protection_rule".into(),
            requested_at: at(1, 0),
            version: 1,
            status: ProtectionStatus::Waiting { change: None, code: GateCode::NotApproved, reason: String::new() },
            due_at: None,
        }
    }

    fn decision(code: GateCode, change: bool, recheck_at: Option<DateTime<Utc>>) -> Decision {
        let status = code.status();
        Decision {
            allowed: status == GateStatus::Allowed,
            status,
            code,
            reason: "why".into(),
            gated: true,
            change: change.then(|| ChangeRef {
                id: ChangeId::new(),
                title: "Pool size".into(),
                state: ChangeState::Submitted,
                change_type: ChangeType::Normal,
                environment: "production".into(),
                planned_start: at(1, 0),
                planned_end: at(2, 0),
            }),
            recheck_at,
        }
    }

    #[test]
    fn a_settled_decision_is_answered_at_once_naming_the_change() {
        let Next::Answer(a) = next(&request(), &decision(GateCode::Allowed, true, None), at(1, 1)) else { panic!() };
        assert_eq!(a.state, CallbackState::Approved);
        assert!(a.comment.contains("Pool size") && a.comment.contains("why"), "{}", a.comment);
        let Next::Answer(r) = next(&request(), &decision(GateCode::ChangeRejected, true, None), at(1, 1)) else {
            panic!()
        };
        assert_eq!((r.state, r.code.as_str()), (CallbackState::Rejected, "change_rejected"));
    }

    #[test]
    fn a_pending_decision_waits_on_its_change_until_the_recheck_or_the_time_out() {
        let r = request();
        let Next::Wait { until, .. } = next(&r, &decision(GateCode::NotApproved, true, None), at(1, 1)) else {
            panic!()
        };
        assert_eq!(until, r.timeout_at());
        let soon = at(1, 1) + Duration::minutes(10);
        let Next::Wait { until, .. } = next(&r, &decision(GateCode::FreezeWindow, true, Some(soon)), at(1, 1)) else {
            panic!()
        };
        assert_eq!(until, soon, "a freeze ending before the recheck: decided at its end");
    }

    #[test]
    fn a_request_held_by_a_long_freeze_is_decided_again_every_freeze_recheck() {
        let r = request();
        let Next::Wait { until, .. } = next(&r, &decision(GateCode::FreezeWindow, true, Some(at(3, 0))), at(1, 1))
        else {
            panic!()
        };
        assert_eq!(until, at(1, 1) + crate::domain::gate::FREEZE_RECHECK, "a freeze lifted early is seen soon");
    }

    #[test]
    fn a_freeze_ending_after_github_stops_waiting_is_rejected_now() {
        let r = request();
        let late = r.deadline() + Duration::days(1);
        let Next::Answer(a) = next(&r, &decision(GateCode::FreezeWindow, true, Some(late)), at(1, 1)) else { panic!() };
        assert_eq!((a.state, a.code.as_str()), (CallbackState::Rejected, "freeze_window"));
    }

    #[test]
    fn a_request_still_pending_at_its_time_out_is_rejected_as_timed_out() {
        let r = request();
        let Next::Answer(a) = next(&r, &decision(GateCode::NotApproved, true, None), r.timeout_at()) else { panic!() };
        assert_eq!((a.state, a.code.as_str()), (CallbackState::Rejected, "timed_out"));
        assert!(a.comment.contains("timed out"), "{}", a.comment);
    }

    #[test]
    fn a_pending_decision_without_a_change_is_rejected_with_how_to_name_one() {
        let Next::Answer(a) = next(&request(), &decision(GateCode::NoChange, false, None), at(1, 1)) else { panic!() };
        assert_eq!(a.state, CallbackState::Rejected);
        assert!(a.comment.contains("chg/<id>"), "{}", a.comment);
    }

    #[test]
    fn comments_are_cut_to_githubs_limit_and_retries_back_off_to_a_ceiling() {
        assert_eq!(comment("x".repeat(5000)).chars().count(), MAX_COMMENT_CHARS);
        assert_eq!(retry_wait(0), FIRST_RETRY_WAIT);
        assert_eq!(retry_wait(1), FIRST_RETRY_WAIT * 2);
        assert_eq!(retry_wait(30), MAX_RETRY_WAIT);
    }

    #[test]
    fn a_change_lists_its_waiting_requests_once_each_up_to_the_limit_and_never_drops_one() {
        let mut waits = ProtectionWaits::new(TenantId::parse("acme").expect("tenant"), ChangeId::new());
        assert_eq!(waits.add("a", at(1, 0)), Listing::Added);
        assert_eq!(waits.add("a", at(1, 1)), Listing::Listed);
        for n in 1..MAX_WAITING {
            assert_eq!(waits.add(&format!("r{n}"), at(2, 0) + Duration::minutes(n as i64)), Listing::Added);
        }
        assert_eq!(waits.add("late", at(3, 0)), Listing::Full);
        assert_eq!(waits.requests.len(), MAX_WAITING);
        assert!(waits.requests.iter().any(|r| r.id == "a"), "the oldest stays listed");
        assert!(!waits.requests.iter().any(|r| r.id == "late"));
        assert!(waits.remove("r1") && !waits.remove("r1"));
        assert_eq!(waits.add("late", at(3, 1)), Listing::Added, "listed once there is room");
    }
}
