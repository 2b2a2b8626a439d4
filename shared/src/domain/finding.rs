//! Unauthorized-change findings: a configuration change no approved change
//! covers, naming the actor behind it.
//!
//! - [`observation`]: evidence (AWS Config, CloudTrail, CloudFormation) read
//!   into an observation, the actor resolved from `userIdentity`;
//! - [`authorize`]: whether a change authorizes it (pure, on event times);
//! - this module: the finding record, one per burst (one actor's session on
//!   one service within the storm window) or per resource for evidence
//!   without an actor, its count, severity, status and audited transitions.

pub mod authorize;
pub mod change_evidence;
pub mod observation;
pub mod settings;
pub mod suppression;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::domain::validation::FieldError;
use crate::domain::{ChangeId, ServiceName, TenantId};
use observation::{Actor, Evidence, MAX_RESOURCES, Observation, Resource};

/// Most evidence event ids a finding keeps (a duplicate among them changes
/// nothing; past them the count still grows).
pub const MAX_EVIDENCE: usize = 200;
/// Most "what changed" lines a finding keeps (the first ones).
pub const MAX_CHANGES: usize = 20;
/// Most status transitions a finding keeps.
pub const MAX_HISTORY: usize = 50;

/// `fnd_{YYYYMMDDTHHMM}_{16 hex}`: the start of the finding's storm window,
/// then a digest of the tenant and its grouping key. Derived, so concurrent
/// consumers of one burst write one record; ordered by time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FindingId(String);

const ID_PREFIX: &str = "fnd_";

impl FindingId {
    pub fn of(tenant: &TenantId, key: &str, window_start: DateTime<Utc>) -> FindingId {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{tenant}\n{key}\n{}", window_start.timestamp()).as_bytes());
        FindingId(format!("{ID_PREFIX}{}_{}", window_start.format("%Y%m%dT%H%M"), hex::encode(&digest[..8])))
    }

    /// The smallest id of a window starting at `at`: where a listing by time begins.
    pub fn floor(at: DateTime<Utc>) -> String {
        format!("{ID_PREFIX}{}", at.format("%Y%m%dT%H%M"))
    }

    pub fn parse(s: &str) -> Result<FindingId, FieldError> {
        let ok = s.strip_prefix(ID_PREFIX).and_then(|rest| rest.split_once('_')).is_some_and(|(time, hex)| {
            time.len() == 13
                && chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M").is_ok()
                && hex.len() == 16
                && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(FindingId(s.to_owned()))
        } else {
            Err(FieldError::new("id", format!("{s:?} is not a finding id (fnd_YYYYMMDDTHHMM_ and 16 hex digits)")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FindingId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        FindingId::parse(&s)
    }
}

impl From<FindingId> for String {
    fn from(id: FindingId) -> String {
        id.0
    }
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The start of the storm window holding `at`.
pub fn window_start(at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let secs = window.num_seconds().max(60);
    let start = at.timestamp().div_euclid(secs) * secs;
    DateTime::from_timestamp(start, 0).unwrap_or(at)
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    UnauthorizedChange,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::UnauthorizedChange => "unauthorized_change",
        }
    }

    pub fn parse(s: &str) -> Result<FindingKind, FieldError> {
        match s {
            "unauthorized_change" => Ok(FindingKind::UnauthorizedChange),
            _ => Err(FieldError::new("kind", format!("{s:?} is not a finding kind; known: unauthorized_change"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Open,
    Acknowledged,
    /// A retroactive emergency change now covers it.
    Resolved,
    /// Not an unauthorized change after all (the reason is kept).
    FalsePositive,
    /// Inside a bulk-change suppression window: recorded and counted, nobody paged.
    Suppressed,
}

impl FindingStatus {
    pub const ALL: [FindingStatus; 5] = [
        FindingStatus::Open,
        FindingStatus::Acknowledged,
        FindingStatus::Resolved,
        FindingStatus::FalsePositive,
        FindingStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Acknowledged => "acknowledged",
            FindingStatus::Resolved => "resolved",
            FindingStatus::FalsePositive => "false_positive",
            FindingStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Result<FindingStatus, FieldError> {
        FindingStatus::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            FieldError::new(
                "status",
                format!(
                    "{s:?} is not a finding status; known: open, acknowledged, resolved, false_positive, suppressed"
                ),
            )
        })
    }

    /// Still to be dealt with.
    pub fn is_active(self) -> bool {
        matches!(self, FindingStatus::Open | FindingStatus::Acknowledged)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// From the service's tier (1 most critical; `None`: unknown service)
    /// and whether the resource is security-relevant: a security-relevant
    /// change is at least high, critical on a tier-1 service.
    pub fn of(tier: Option<u8>, security_relevant: bool) -> Severity {
        match (tier, security_relevant) {
            (Some(1), true) => Severity::Critical,
            (_, true) | (Some(1), false) => Severity::High,
            (Some(2) | None, false) => Severity::Medium,
            (Some(_), false) => Severity::Low,
        }
    }
}

/// One piece of evidence of a finding, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub event_id: String,
    pub evidence: Evidence,
    pub at: DateTime<Utc>,
    pub what: String,
}

/// A status transition, as the finding keeps it (its audit trail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub by: String,
    pub from: FindingStatus,
    pub to: FindingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<ChangeId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: FindingId,
    pub tenant: TenantId,
    pub kind: FindingKind,
    /// 1 when first stored; one more with every write, each conditional on the one before.
    pub version: u64,
    /// `None`: the resource maps to no service.
    pub service: Option<ServiceName>,
    pub account: String,
    pub region: String,
    /// The earliest and the latest evidence, by the events' own times.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Who, resolved; `None` until an API call names them.
    pub actor: Option<Actor>,
    pub resources: Vec<Resource>,
    /// What changed, the first [`MAX_CHANGES`] pieces of evidence.
    pub changes: Vec<Observed>,
    /// The evidence counted, by the observations' identities (hub event
    /// ids, CloudTrail `eventID`s; the first [`MAX_EVIDENCE`]).
    pub evidence: Vec<String>,
    /// Pieces of evidence gathered: a burst is one finding with a count.
    pub count: u64,
    pub severity: Severity,
    pub security_relevant: bool,
    /// Why no change authorizes it.
    pub reason: String,
    pub status: FindingStatus,
    /// The retroactive emergency change it was linked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_change: Option<ChangeId>,
    /// The bulk-change suppression window it was recorded in (status `suppressed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
    /// Every status transition, oldest first (the first [`MAX_HISTORY`]).
    #[serde(default)]
    pub history: Vec<Transition>,
    /// What groups evidence into it: the actor's session and the service, or the resource.
    pub group: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The grouping key of an observation: one actor's session on one service,
/// or, without an actor (AWS Config), the resource.
pub fn group_of(o: &Observation) -> String {
    match &o.actor {
        Some(actor) => {
            let service = o.service.as_ref().map_or("~", |s| s.as_str());
            format!("actor:{}:{}:{service}", o.account, actor.storm_key())
        }
        None => {
            let resource = o.resources.first().map_or("~", |r| r.id.as_str());
            format!("resource:{}:{resource}", o.account)
        }
    }
}

impl Finding {
    /// A new finding of one observation.
    pub fn open(id: FindingId, o: &Observation, severity: Severity, reason: String, now: DateTime<Utc>) -> Finding {
        Finding {
            id,
            tenant: o.tenant.clone(),
            kind: FindingKind::UnauthorizedChange,
            version: 1,
            service: o.service.clone(),
            account: o.account.clone(),
            region: o.region.clone(),
            first_seen: o.at,
            last_seen: o.at,
            actor: o.actor.clone(),
            resources: o.resources.iter().take(MAX_RESOURCES).cloned().collect(),
            changes: vec![observed(o)],
            evidence: vec![o.event_id.clone()],
            count: 1,
            severity,
            security_relevant: o.security_relevant(),
            reason,
            status: FindingStatus::Open,
            linked_change: None,
            suppressed_by: None,
            history: Vec::new(),
            group: group_of(o),
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the finding already counts this evidence.
    pub fn holds(&self, event_id: &str) -> bool {
        self.evidence.iter().any(|e| e == event_id)
    }

    /// Adds an observation: counted once (`false`, nothing changed, when it
    /// is held already), the times widened, the actor learned when the
    /// finding had none (a Config item joined by its API call), the
    /// resources and what changed added, the severity the higher.
    pub fn absorb(&mut self, o: &Observation, severity: Severity, now: DateTime<Utc>) -> bool {
        if self.holds(&o.event_id) {
            return false;
        }
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(o.event_id.clone());
        }
        self.count += 1;
        self.first_seen = self.first_seen.min(o.at);
        self.last_seen = self.last_seen.max(o.at);
        if self.actor.is_none() {
            self.actor = o.actor.clone();
        }
        if self.service.is_none() {
            self.service = o.service.clone();
        }
        for r in &o.resources {
            if self.resources.len() < MAX_RESOURCES && !self.resources.iter().any(|held| held.same_as(r)) {
                self.resources.push(r.clone());
            }
        }
        if self.changes.len() < MAX_CHANGES {
            self.changes.push(observed(o));
            self.changes.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
        }
        self.severity = self.severity.max(severity);
        self.security_relevant |= o.security_relevant();
        self.updated_at = now;
        true
    }

    /// Whether an observation of the same resources, `join` apart at most,
    /// completes this finding: a Config item (no actor) joins a finding of
    /// an API call on that resource, an API call joins a finding made of
    /// Config items (or compliance results) alone, and a resource turning
    /// non-compliant joins any finding on it that has no such result yet.
    pub fn joins(&self, o: &Observation, join: Duration) -> bool {
        let near = o.at >= self.first_seen - join && o.at <= self.last_seen + join;
        let has_its_kind = self.changes.iter().any(|c| c.evidence == o.evidence);
        let completes = match &o.actor {
            // A rule's finding of non-compliance completes any finding on its resource.
            None if o.evidence == Evidence::ComplianceChange => !has_its_kind,
            None => self.actor.is_some() && !has_its_kind,
            Some(_) => self.actor.is_none(),
        };
        near && completes && self.status.is_active() && o.touches_same(&self.account, &self.resources)
    }

    /// The one-line summary people read: who changed what, where, and why it is a finding.
    pub fn summary(&self) -> String {
        let who =
            self.actor.as_ref().map_or_else(|| "an unknown actor (no API call seen yet)".to_owned(), Actor::chain);
        let what = self.resources.first().map_or("a resource".to_owned(), |r| match &r.resource_type {
            Some(t) => format!("{t} {}", r.id),
            None => r.id.clone(),
        });
        let service = self.service.as_ref().map_or("an unmapped resource".to_owned(), |s| format!("service {s}"));
        let more = if self.count > 1 { format!(" ({} changes)", self.count) } else { String::new() };
        format!(
            "Unauthorized change by {who}: {what} on {service} in account {} {}{more} at {}; {}",
            self.account,
            self.region,
            self.first_seen.format("%Y-%m-%d %H:%M:%S UTC"),
            self.reason
        )
    }

    fn move_to(
        &mut self,
        to: FindingStatus,
        by: &str,
        at: DateTime<Utc>,
        note: Option<String>,
        change_id: Option<ChangeId>,
    ) -> Result<(), FindingTransitionError> {
        let from = self.status;
        let allowed = match to {
            FindingStatus::Acknowledged => from == FindingStatus::Open,
            // A suppressed finding may still be closed: linked, or dismissed.
            FindingStatus::Resolved | FindingStatus::FalsePositive => {
                from.is_active() || from == FindingStatus::Suppressed
            }
            FindingStatus::Open | FindingStatus::Suppressed => false,
        };
        if !allowed {
            return Err(FindingTransitionError { from, to });
        }
        if self.history.len() < MAX_HISTORY {
            self.history.push(Transition { at, by: by.to_owned(), from, to, note, change_id });
        }
        self.status = to;
        self.updated_at = at;
        Ok(())
    }

    /// A new finding inside suppression window `window`: suppressed, nobody told.
    pub fn suppress(&mut self, window: &str) {
        self.status = FindingStatus::Suppressed;
        self.suppressed_by = Some(window.to_owned());
    }

    /// Open → acknowledged.
    pub fn acknowledge(
        &mut self,
        by: &str,
        at: DateTime<Utc>,
        note: Option<String>,
    ) -> Result<(), FindingTransitionError> {
        self.move_to(FindingStatus::Acknowledged, by, at, note, None)
    }

    /// Open or acknowledged → resolved by a retroactive emergency change.
    pub fn link(&mut self, change_id: ChangeId, by: &str, at: DateTime<Utc>) -> Result<(), FindingTransitionError> {
        self.move_to(FindingStatus::Resolved, by, at, None, Some(change_id))?;
        self.linked_change = Some(change_id);
        Ok(())
    }

    /// Open or acknowledged → false positive, with its reason.
    pub fn dismiss(&mut self, reason: String, by: &str, at: DateTime<Utc>) -> Result<(), FindingTransitionError> {
        self.move_to(FindingStatus::FalsePositive, by, at, Some(reason), None)
    }
}

fn observed(o: &Observation) -> Observed {
    Observed { event_id: o.event_id.clone(), evidence: o.evidence, at: o.at, what: o.what.clone() }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a finding that is {} cannot become {}", .from.as_str(), .to.as_str())]
pub struct FindingTransitionError {
    pub from: FindingStatus,
    pub to: FindingStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use observation::Actor;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 14, 14, 0, 0).single().unwrap_or_default() + Duration::seconds(seconds)
    }

    fn sg() -> Resource {
        Resource { id: "sg-1".into(), arn: None, resource_type: Some("AWS::EC2::SecurityGroup".into()) }
    }

    fn person() -> Actor {
        Actor {
            name: "maria".into(),
            kind: "AssumedRole".into(),
            principal: Some("arn:aws:iam::1:role/ops".into()),
            session: Some("arn:aws:sts::1:assumed-role/ops/maria".into()),
            session_name: Some("maria".into()),
            source_identity: None,
            on_behalf_of: None,
            user_name: None,
            invoked_by: None,
            vendor: false,
            pipeline: false,
        }
    }

    fn observation(event_id: &str, at: i64, actor: Option<Actor>) -> Observation {
        let evidence = if actor.is_some() { Evidence::ApiCall } else { Evidence::ConfigurationItem };
        Observation {
            tenant: TenantId::parse("acme").expect("tenant"),
            event_id: event_id.into(),
            evidence,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            at: t(at),
            resources: vec![sg()],
            service: Some(ServiceName::parse("payments").expect("service")),
            what: format!("change {event_id}"),
            action: actor.is_some().then(|| "ec2:AuthorizeSecurityGroupIngress".to_owned()),
            actor,
        }
    }

    fn opened(o: &Observation) -> Finding {
        let id = FindingId::of(&o.tenant, &group_of(o), window_start(o.at, Duration::minutes(10)));
        Finding::open(id, o, Severity::High, "no change".into(), t(0))
    }

    #[test]
    fn ids_begin_with_their_window_and_parse_back() {
        let id =
            FindingId::of(&TenantId::parse("acme").expect("tenant"), "k", window_start(t(125), Duration::minutes(10)));
        assert!(id.as_str().starts_with("fnd_20260914T1400_"), "{id}");
        assert_eq!(FindingId::parse(id.as_str()), Ok(id.clone()));
        for bad in [
            "fnd_x",
            "inc_20260914T1400_0123456789abcdef",
            "fnd_20261399T1400_0123456789abcdef",
            "fnd_20260914T1400_0123",
        ] {
            assert!(FindingId::parse(bad).is_err(), "{bad}");
        }
        assert!(FindingId::floor(t(0)).as_str() < id.as_str());
    }

    #[test]
    fn a_burst_is_counted_once_per_piece_of_evidence() {
        let mut f = opened(&observation("e1", 0, Some(person())));
        assert!(f.absorb(&observation("e2", 30, Some(person())), Severity::Critical, t(40)));
        assert!(!f.absorb(&observation("e2", 30, Some(person())), Severity::Critical, t(50)), "a duplicate");
        assert!(f.absorb(&observation("e0", -20, Some(person())), Severity::Low, t(60)));
        assert_eq!(f.count, 3);
        assert_eq!((f.first_seen, f.last_seen), (t(-20), t(30)));
        assert_eq!(f.severity, Severity::Critical, "the highest");
        assert_eq!(f.changes.iter().map(|c| c.event_id.as_str()).collect::<Vec<_>>(), ["e0", "e1", "e2"]);
        assert_eq!(f.resources.len(), 1, "one group, named once");
    }

    #[test]
    fn a_config_item_and_its_api_call_complete_each_other_in_either_order() {
        let join = Duration::minutes(5);
        let config = observation("config", 60, None);
        let call = observation("call", 0, Some(person()));
        // The call first: the Config item joins it.
        let f = opened(&call);
        assert!(f.joins(&config, join));
        assert!(!f.joins(&observation("call2", 10, Some(person())), join), "a call does not join a call's finding");
        assert!(!f.joins(&observation("late", 60 * 30, None), join), "too far apart");
        // The Config item first: the call joins it and names the actor.
        let mut f = opened(&config);
        assert!(f.joins(&call, join));
        f.absorb(&call, Severity::High, t(70));
        assert_eq!(f.actor, Some(person()));
        assert!(
            f.summary().starts_with("Unauthorized change by maria, via role arn:aws:iam::1:role/ops"),
            "{}",
            f.summary()
        );
        assert!(!f.joins(&observation("config2", 61, None), join), "it has its Config item");
    }

    #[test]
    fn a_non_compliance_result_joins_the_finding_on_its_resource_once() {
        let join = Duration::minutes(5);
        let compliance =
            |id: &str, at: i64| Observation { evidence: Evidence::ComplianceChange, ..observation(id, at, None) };
        let mut by_call = opened(&observation("call", 0, Some(person())));
        let by_config = opened(&observation("config", 0, None));
        assert!(by_call.joins(&compliance("rule", 120), join));
        assert!(by_config.joins(&compliance("rule", 120), join), "a Config item's finding too");
        by_call.absorb(&compliance("rule", 120), Severity::High, t(130));
        assert!(!by_call.joins(&compliance("rule2", 125), join), "it has its result");
        assert_eq!(by_call.kind, FindingKind::UnauthorizedChange);
        let mut by_rule = opened(&compliance("rule", 0));
        assert!(by_rule.joins(&observation("call", 60, Some(person())), join));
        by_rule.absorb(&observation("call", 60, Some(person())), Severity::High, t(70));
        assert_eq!(by_rule.actor, Some(person()), "the call names who made the resource non-compliant");
    }

    #[test]
    fn status_moves_are_kept_and_illegal_ones_refused() {
        let mut f = opened(&observation("e1", 0, Some(person())));
        f.acknowledge("sam", t(100), None).expect("acknowledge");
        assert!(f.acknowledge("sam", t(101), None).is_err(), "twice");
        let change = ChangeId::new();
        f.link(change, "cab-lead", t(200)).expect("link");
        assert_eq!((f.status, f.linked_change), (FindingStatus::Resolved, Some(change)));
        let err = f.dismiss("noise".into(), "sam", t(300)).expect_err("resolved already");
        assert_eq!(err.to_string(), "a finding that is resolved cannot become false_positive");
        let moves: Vec<(FindingStatus, FindingStatus)> = f.history.iter().map(|h| (h.from, h.to)).collect();
        assert_eq!(
            moves,
            [
                (FindingStatus::Open, FindingStatus::Acknowledged),
                (FindingStatus::Acknowledged, FindingStatus::Resolved)
            ]
        );
    }

    #[test]
    fn severity_follows_tier_and_security_relevance() {
        assert_eq!(Severity::of(Some(1), true), Severity::Critical);
        assert_eq!(Severity::of(Some(4), true), Severity::High);
        assert_eq!(Severity::of(None, true), Severity::High);
        assert_eq!(Severity::of(Some(1), false), Severity::High);
        assert_eq!(Severity::of(Some(2), false), Severity::Medium);
        assert_eq!(Severity::of(None, false), Severity::Medium);
        assert_eq!(Severity::of(Some(3), false), Severity::Low);
    }

    #[test]
    fn storm_windows_are_aligned_and_group_by_session_and_service() {
        let w = Duration::minutes(10);
        assert_eq!(window_start(t(599), w), t(0));
        assert_eq!(window_start(t(600), w), t(600));
        let a = observation("a", 0, Some(person()));
        let mut b = observation("b", 0, Some(person()));
        assert_eq!(group_of(&a), group_of(&b));
        b.service = None;
        assert_ne!(group_of(&a), group_of(&b));
        assert_eq!(group_of(&observation("c", 0, None)), "resource:123456789012:sg-1");
    }
}
