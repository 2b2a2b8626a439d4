//! Telling people that an incident was tagged change-related: a
//! notification (SNS on AWS, the notifications file locally) and, where the
//! tenant's catalog turns them on (`writeback:`), a note on the PagerDuty
//! incident and a comment on the GitHub pull request or commit.
//!
//! Each delivery is done once per tenant, incident, change and channel
//! ([`once`]), and each routed notification once per recipient, whatever
//! the number of times the tag is told: a retry after one channel (or one
//! recipient) failed redoes only that one. A failed delivery never
//! undoes anything (the tag stays on the incident record): it is logged
//! with its channel and status (never a token) and returned, as an error to
//! retry when a later attempt may succeed (5xx, timeouts, the notifier),
//! else in [`Told`] as refused (a 4xx, no token configured).

use std::collections::BTreeMap;
use std::fmt;

use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use super::routed::{self, Routed, RoutedError, send_each};
use crate::domain::catalog::Catalog;
use crate::domain::ids::ServiceName;
use crate::domain::notice::TagNotice;
use crate::domain::routing::render::Occurrence;
use crate::domain::routing::{Subject, recipients};
use crate::domain::writeback::{Target, WriteBackPolicy};
use crate::ports::{Clock, Dedupe, Fact, Link, Notifier, Post, StoreError, WriteBack, WriteBackError};

/// The notifications' `kind` attribute, as hub events name themselves.
pub const KIND: &str = "Change Related Incident";
/// The notifications' `type` attribute, for SNS filter policies.
pub const TYPE: &str = "change_related_incident";

/// What people read of a tag, whoever they are: the notice's subject and
/// summary for technical readers, the incident's time for the others.
pub fn occurrence_of(notice: &TagNotice, hub: Option<&str>) -> Occurrence {
    let fact = |name: &str, value: String| Fact { name: name.to_owned(), value };
    let (incident, change) = (&notice.incident, &notice.change);
    let mut links: Vec<Link> = notice.links().into_iter().filter_map(web_link).collect();
    if change.link.is_none()
        && let Some(hub) = hub
    {
        let url = format!("{}/changes/{}", hub.trim_end_matches('/'), change.id);
        links.extend(web_link(&url));
    }
    Occurrence {
        event: TYPE.to_owned(),
        headline: notice.subject(),
        reference: change.id.to_string(),
        title: change.title.clone(),
        services: services_of(notice),
        at: incident.started_at,
        window: None,
        facts: vec![
            fact("Incident", format!("{} ({} {})", incident.id, incident.source, incident.external_id)),
            fact("Severity", notice.severity().to_owned()),
            fact("Major", incident.major.to_string()),
            fact("Requester", change.requester.clone()),
        ],
        details: vec![notice.summary()],
        impact: Some(format!(
            "An incident on {} ({}) started after this change; it is suspected of causing it.",
            incident.service,
            notice.severity()
        )),
        links,
        commands: vec![],
    }
}

/// The incident's service first, then the change's others.
fn services_of(notice: &TagNotice) -> Vec<ServiceName> {
    let mut services = vec![notice.incident.service.clone()];
    services.extend(notice.change.services.iter().filter(|s| **s != notice.incident.service).cloned());
    services
}

/// The notifications people get for a tag, one per recipient the catalog
/// routes `change_related_incident` to (the feed first): attributes
/// `tenant`, `service` (the recipient's; the incident's for the feed),
/// `severity` (the incident's; `unknown` when the source gives none),
/// `type` = `change_related_incident`, `audience`, `notify`, plus, as
/// change notifications carry them, `kind`, `environment` and `services`
/// (the change's), and `major`.
pub fn notifications_for(catalog: &Catalog, notice: &TagNotice, hub: Option<&str>) -> Vec<Routed> {
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_owned(), KIND.to_owned());
    attributes.insert("tenant".to_owned(), notice.tenant.to_string());
    attributes.insert("major".to_owned(), notice.incident.major.to_string());
    attributes.insert("environment".to_owned(), notice.change.environment.clone());
    let services: Vec<&str> = notice.change.services.iter().map(|s| s.as_str()).collect();
    attributes.insert("services".to_owned(), services.join(","));
    let severity = notice.incident.severity.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or("unknown");
    let body = serde_json::json!({
        "event": KIND,
        "summary": notice.summary(),
        "incident": notice.incident,
        "change": notice.change,
        "suspicion": notice.suspicion,
    });
    let subject =
        Subject { requester: Some(notice.change.requester.clone()), ..Subject::about(TYPE, services_of(notice)) };
    let occurrence = occurrence_of(notice, hub);
    routed::notifications(&occurrence, &recipients(catalog, &subject), &attributes, severity, &body)
}

/// A link of the notice people can follow: `http(s)` URLs only.
fn web_link(url: &str) -> Option<Link> {
    let ok = (url.starts_with("https://") || url.starts_with("http://")) && !url.chars().any(char::is_whitespace);
    ok.then(|| Link { label: url.to_owned(), url: url.to_owned() })
}

/// Where people are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Notification,
    WriteBack(Target),
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Notification => "notification",
            Channel::WriteBack(target) => target.as_str(),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Sent before: not again.
    Duplicate,
    /// Not for this tag: why (the target is off, or the incident or change has nothing to post on).
    Skipped(&'static str),
    /// The target refused it, or it cannot be sent as configured; retrying does not help.
    Refused(String),
}

/// What [`Teller::tell`] did, channel by channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Told {
    pub deliveries: Vec<(Channel, Delivery)>,
}

impl Told {
    pub fn delivery(&self, channel: Channel) -> Option<&Delivery> {
        self.deliveries.iter().find(|(c, _)| *c == channel).map(|(_, d)| d)
    }
}

/// Why a delivery is to be retried.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Notify(#[from] RoutedError),
    #[error(transparent)]
    WriteBack(#[from] WriteBackError),
    /// Claiming or marking the delivery failed: it was not done.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another attempt is delivering it")]
    InProgress,
}

/// Deliveries that failed and may succeed later: the consumer returns an
/// error so that the event is retried (the deliveries done are not redone),
/// and dead-lettered at last. What was done is in `told`.
#[derive(Debug, thiserror::Error)]
#[error("incident {incident}, change {change}: {} to retry ({})", .failures.len(), list(.failures))]
pub struct TellError {
    pub incident: String,
    pub change: String,
    pub failures: Vec<(Channel, Failure)>,
    pub told: Told,
}

fn list(failures: &[(Channel, Failure)]) -> String {
    failures.iter().map(|(c, f)| format!("{c}: {f}")).collect::<Vec<_>>().join("; ")
}

/// The use case: notifies and writes back, each once.
pub struct Teller<D, C, N, W> {
    pub dedupe: D,
    pub clock: C,
    pub notifier: N,
    pub writeback: W,
    pub claims: ClaimTimes,
    /// The hub's public address, for the change's link (`CHANGEHUB_PUBLIC_URL`).
    pub public_url: Option<String>,
}

impl<D: Dedupe, C: Clock, N: Notifier, W: WriteBack> Teller<D, C, N, W> {
    pub fn new(dedupe: D, clock: C, notifier: N, writeback: W) -> Self {
        Self { dedupe, clock, notifier, writeback, claims: ClaimTimes::default(), public_url: None }
    }

    pub fn with_public_url(self, public_url: Option<String>) -> Self {
        Self { public_url, ..self }
    }

    /// Tells people about `notice`: the notifications `catalog` routes it
    /// to (each once), and the write-backs its `writeback:` turns on. Every
    /// channel is tried, whatever another did.
    pub async fn tell(&self, catalog: &Catalog, notice: &TagNotice) -> Result<Told, TellError> {
        let settings = &catalog.writeback;
        let mut told = Told::default();
        let mut failures = Vec::new();
        let routed = notifications_for(catalog, notice, self.public_url.as_deref());
        let base = self.key(notice, Channel::Notification);
        let notify = async {
            Box::pin(send_each(&self.dedupe, &self.clock, self.claims, &self.notifier, &base, &routed)).await?;
            Ok::<_, Failure>(())
        };
        self.deliver(notice, Channel::Notification, notify, &mut told, &mut failures).await;
        for target in Target::ALL {
            let channel = Channel::WriteBack(target);
            match post_for(settings, notice, target) {
                Err(why) => told.deliveries.push((channel, Delivery::Skipped(why))),
                Ok(post) => {
                    let work = async { self.writeback.post(&notice.tenant, &post).await.map_err(Failure::from) };
                    self.deliver(notice, channel, work, &mut told, &mut failures).await;
                }
            }
        }
        if failures.is_empty() {
            Ok(told)
        } else {
            Err(TellError {
                incident: notice.incident.id.clone(),
                change: notice.change.id.to_string(),
                failures,
                told,
            })
        }
    }

    /// What tells a channel's delivery for `notice` apart.
    fn key(&self, notice: &TagNotice, channel: Channel) -> String {
        format!("tell:{}:{}:{}:{channel}", notice.tenant, notice.incident.id, notice.change.id)
    }

    /// Does `work` once for the channel, recording what happened.
    async fn deliver(
        &self,
        notice: &TagNotice,
        channel: Channel,
        work: impl Future<Output = Result<(), Failure>>,
        told: &mut Told,
        failures: &mut Vec<(Channel, Failure)>,
    ) {
        let key = self.key(notice, channel);
        let failure = match once(&self.dedupe, &self.clock, self.claims, &[key], work).await {
            Ok(Once::Done(())) => return told.deliveries.push((channel, Delivery::Sent)),
            Ok(Once::Duplicate) => return told.deliveries.push((channel, Delivery::Duplicate)),
            Ok(Once::InProgress) => Failure::InProgress,
            Err(OnceError::Store(e)) => Failure::Store(e),
            Err(OnceError::Work(e)) => e,
        };
        let (incident, change) = (&notice.incident.id, &notice.change.id);
        let status = match &failure {
            Failure::WriteBack(e) => e.status(),
            _ => None,
        };
        match failure {
            Failure::WriteBack(e) if !e.is_retryable() => {
                tracing::error!(%channel, status, %incident, %change, error = %e, "write-back refused; not retried");
                told.deliveries.push((channel, Delivery::Refused(e.to_string())));
            }
            failure => {
                tracing::warn!(%channel, status, %incident, %change, error = %failure, "delivery failed; to retry");
                failures.push((channel, failure));
            }
        }
    }
}

/// What to post to `target` for `notice`, or why nothing is.
fn post_for(settings: &WriteBackPolicy, notice: &TagNotice, target: Target) -> Result<Post, &'static str> {
    match target {
        Target::Pagerduty => {
            let pd = settings.pagerduty.as_ref().ok_or("off in the catalog")?;
            let incident = notice.pagerduty_incident().ok_or("the incident is not from PagerDuty")?;
            Ok(Post::PagerdutyNote {
                api_url: pd.api_url.clone(),
                incident: incident.to_owned(),
                from: pd.from.clone(),
                content: notice.pagerduty_note(),
            })
        }
        Target::Github => {
            let gh = settings.github.as_ref().ok_or("off in the catalog")?;
            let (repository, thread) =
                notice.github_thread().ok_or("the change has no GitHub repository with a pull request or commit")?;
            Ok(Post::GithubComment {
                api_url: gh.api_url.clone(),
                repository: repository.to_owned(),
                thread,
                body: notice.github_comment(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notice::tests::notice;
    use crate::domain::notice::{GithubThread, NoticeOrigin};
    use crate::domain::writeback::{GithubWriteBack, PagerdutyWriteBack};

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "roles": {"cab": ["cab"]},
            "services": [{"name": "payments", "owner_group": "payments-team", "tier": 1}]
        }))
        .expect("catalog")
    }

    #[test]
    fn the_notifications_carry_the_filter_attributes_and_the_summary() {
        let routed = notifications_for(&catalog(), &notice(), None);
        let who: Vec<&str> = routed.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            who,
            ["feed", "owners:payments-team", format!("requester:{}", notice().change.requester).as_str(), "cab:cab"]
        );
        let n = &routed[0].notification;
        let attributes: Vec<(&str, &str)> = n.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            attributes,
            [
                ("audience", "feed"),
                ("environment", "production"),
                ("kind", "Change Related Incident"),
                ("major", "false"),
                ("service", "payments"),
                ("services", "payments"),
                ("severity", "P1"),
                ("tenant", "acme"),
                ("type", "change_related_incident"),
            ]
        );
        assert_eq!(n.subject, "Change-related incident on payments (P1): Checkout errors");
        assert_eq!(n.message.lines, [notice().summary()]);
        assert_eq!(n.body["summary"], notice().summary());
        assert_eq!(n.body["change"]["id"], notice().change.id.to_string());
        assert_eq!(n.body["suspicion"]["reasons"], serde_json::json!(["same_service", "failed_deployment"]));
        let owners = &routed[1].notification;
        assert_eq!(
            (owners.attributes["audience"].as_str(), owners.attributes["notify"].as_str()),
            ("owners", "payments-team")
        );
        assert_eq!(owners.subject, "Change-related incident on payments (P1): Checkout errors (to payments-team)");
        let cab = &routed[3].notification;
        assert_eq!(cab.message.lines, Vec::<String>::new(), "the cab reads one line");
        let mut unknown = notice();
        unknown.incident.severity = None;
        assert!(
            notifications_for(&catalog(), &unknown, None)
                .iter()
                .all(|r| r.notification.attributes["severity"] == "unknown")
        );
        let linked = notifications_for(&catalog(), &notice(), Some("https://hub.example.com/"));
        let url = format!("https://hub.example.com/changes/{}", notice().change.id);
        assert!(linked[0].notification.message.links.iter().any(|l| l.url == url), "the hub's page of the change");
    }

    #[test]
    fn write_backs_go_where_the_catalog_turns_them_on_and_the_notice_allows() {
        let off = WriteBackPolicy::default();
        assert_eq!(post_for(&off, &notice(), Target::Pagerduty), Err("off in the catalog"));
        let on = WriteBackPolicy {
            pagerduty: Some(PagerdutyWriteBack {
                from: "bot@example.com".into(),
                api_url: "http://127.0.0.1:1".into(),
            }),
            github: Some(GithubWriteBack { api_url: "https://ghe.example.com/api/v3".into() }),
        };
        assert_eq!(
            post_for(&on, &notice(), Target::Pagerduty),
            Ok(Post::PagerdutyNote {
                api_url: "http://127.0.0.1:1".into(),
                incident: "PT4KHLK".into(),
                from: "bot@example.com".into(),
                content: notice().pagerduty_note(),
            })
        );
        assert!(post_for(&on, &notice(), Target::Github).is_err(), "no origin: nothing to comment on");
        let mut deployed = notice();
        deployed.change.origin = Some(NoticeOrigin {
            repository: Some("acme/pay".into()),
            pull_request: Some(7),
            ..NoticeOrigin::default()
        });
        assert_eq!(
            post_for(&on, &deployed, Target::Github),
            Ok(Post::GithubComment {
                api_url: "https://ghe.example.com/api/v3".into(),
                repository: "acme/pay".into(),
                thread: GithubThread::PullRequest(7),
                body: deployed.github_comment(),
            })
        );
    }
}
