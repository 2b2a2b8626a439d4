//! The scm Lambda's handling of one hub event from its EventBridge rule,
//! and the shape of its answer (the Lambda's concern, not the use cases').
//!
//! The function hosts the hub's answers to GitHub and GitLab, each a use
//! case of the shared library with a `handle(detail_type, detail)` that
//! takes the events of its own pattern and skips the others: the merge gate
//! ([`MergeGate`]), rollback automation ([`Rollbacks`]) and the deployment
//! protection rule's answers ([`Protection`]). Another is added
//! as one more field of [`Scm`] built in [`Scm::new`], its detail types
//! chained in [`rule_pattern`], one more arm in [`Scm::handle`] and one more
//! variant of [`Failed`].

use changehub::app::activity::ActivityRetention;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::{ChangeStore, Changes};
use changehub::app::merge_gate::{self, Applied, MergeGate, MergeGateError};
use changehub::app::protection::{self, Protection, ProtectionError};
use changehub::app::rollback::{self, RollbackError, Rollbacks};
use changehub::domain::EventPattern;
use changehub::domain::event::{PatternError, SOURCE_PREFIX};
use changehub::ports::{
    ActivityLog, CatalogReader, Clock, Dedupe, Forges, InProductionStore, Notifier, ProtectionCallbacks,
    ProtectionStore, PullLinkStore, SystemClock,
};
use lambda_runtime::Diagnostic;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The use cases the function hosts, on their ports.
pub struct Scm<S, K, F, C, N> {
    pub merge_gate: MergeGate<S, K, F, C>,
    pub rollbacks: Rollbacks<S, K, F, C>,
    pub protection: Protection<S, C, F, N>,
}

/// Why an event failed: the use case's error.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error("merge gate: {}", changehub::error_chain(.0))]
    MergeGate(#[from] MergeGateError),
    #[error("rollback: {}", changehub::error_chain(.0))]
    Rollback(#[from] RollbackError),
    #[error("deployment protection rule: {}", changehub::error_chain(.0))]
    Protection(#[from] ProtectionError),
}

impl Failed {
    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        match self {
            Failed::MergeGate(e) => e.retryable(),
            Failed::Rollback(e) => e.retryable(),
            Failed::Protection(e) => e.retryable(),
        }
    }
}

/// The function's one bus rule: the hub's own events that any use case
/// hosted here handles (template.yaml's `ScmEvents`; a test holds them equal).
pub fn rule_pattern() -> Result<EventPattern, PatternError> {
    let mut detail_types: Vec<&str> = Vec::new();
    let protection = [protection::GATE_REQUESTED, protection::GATE_DUE].into_iter().chain(protection::ALSO_TURNING);
    for detail_type in merge_gate::detail_types().chain([rollback::CHANGE_FAILED]).chain(protection) {
        if !detail_types.contains(&detail_type) {
            detail_types.push(detail_type);
        }
    }
    EventPattern::parse(json!({
        "source": [{"prefix": SOURCE_PREFIX}],
        "detail-type": detail_types,
    }))
}

impl<S: ChangeStore, F: Clone, N> Scm<S, CachedCatalog<S>, F, SystemClock, N> {
    /// The use cases as the function's main builds them: on one store, its
    /// catalogs cached for the warm process (one cache for all), calling the
    /// forges through `forges`, alarming through `notifier`, keeping the
    /// deployment gate's answers in the activity log for `retention`.
    pub fn new(store: S, forges: F, notifier: N, public_url: Option<String>, retention: ActivityRetention) -> Self {
        let changes = Arc::new(Changes::new(store.clone(), SystemClock).with_gate_retention(retention));
        let catalog = changes.catalog.clone();
        let rollbacks =
            Rollbacks { store: store.clone(), catalog: catalog.clone(), forges: forges.clone(), clock: SystemClock };
        let protection = Protection { changes, callbacks: forges.clone(), notifier };
        Self { merge_gate: MergeGate { store, catalog, forges, clock: SystemClock, public_url }, rollbacks, protection }
    }
}

impl<S, K, F, C, N> Scm<S, K, F, C, N>
where
    S: ChangeStore + ActivityLog + Dedupe + InProductionStore + PullLinkStore + ProtectionStore,
    K: CatalogReader,
    F: Forges + ProtectionCallbacks,
    C: Clock,
    N: Notifier,
{
    /// Hands one event to every use case, each answering under its name.
    /// Every failure is an error, so the event is never lost: a retryable
    /// one (a store or forge failure that outlasted the call's own retries)
    /// is retried by Lambda, and one no retry can help (an unreadable
    /// event, a forge refusing the call) fails its retries alike and lands,
    /// with the reason, in the function's on-failure queue (see
    /// [`diagnostic`]). Each use case is idempotent (a status set again is
    /// the same status; the reverse index is written only when it changes),
    /// so a retry or a duplicate delivery does no harm.
    #[tracing::instrument(skip_all, fields(event_id = ?event.get("id"), detail_type = ?event.get("detail-type")))]
    pub async fn handle(&self, event: &Value) -> Result<Value, Failed> {
        let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
        let detail = event.get("detail").unwrap_or(&Value::Null);
        // Every use case sees the event even when one before it failed.
        let mut answers = Answers::default();
        answers.take("merge_gate", self.merge_gate.handle(detail_type, detail).await, merge_gate_answer);
        answers.take("rollback", self.rollbacks.handle(detail_type, detail).await, rollback_answer);
        answers.take("protection", self.protection.handle(detail_type, detail).await, protection_answer);
        answers.finish()
    }
}

/// What each use case did with one event, under its name, and the first failure.
#[derive(Default)]
struct Answers {
    answer: Map<String, Value>,
    failed: Option<Failed>,
}

impl Answers {
    /// Keeps a use case's answer, or logs its failure and keeps the first one for the invocation.
    fn take<T, E: Into<Failed>>(&mut self, name: &str, result: Result<T, E>, render: fn(&T) -> Value) {
        match result {
            Ok(applied) => {
                self.answer.insert(name.to_owned(), render(&applied));
            }
            Err(e) => {
                let e = e.into();
                tracing::error!(error = %e, retryable = e.retryable(), "event failed");
                self.failed.get_or_insert(e);
            }
        }
    }

    fn finish(self) -> Result<Value, Failed> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(Value::Object(self.answer)),
        }
    }
}

/// What the merge gate did with one event.
fn merge_gate_answer(applied: &Applied) -> Value {
    match applied {
        Applied::Set(set) => {
            let statuses: Vec<Value> = set
                .iter()
                .map(|(pull, decision)| {
                    json!({
                        "repository": pull.repository,
                        "number": pull.number,
                        "head_sha": pull.head_sha,
                        "state": decision.state.as_str(),
                        "code": decision.code.as_str(),
                        "change": decision.change,
                    })
                })
                .collect();
            json!({"statuses": statuses})
        }
        Applied::Unlinked => json!({"unlinked": true}),
        Applied::Skipped(why) => json!({"ignored": why}),
    }
}

/// What rollback automation did with one event.
fn rollback_answer(applied: &rollback::Applied) -> Value {
    match applied {
        rollback::Applied::Dispatched(dispatch) => json!({"dispatched": dispatch}),
        rollback::Applied::NotDispatched(why) => json!({"not_dispatched": why}),
        rollback::Applied::Skipped(why) => json!({"ignored": why}),
    }
}

/// What the deployment protection rule did with one event.
fn protection_answer(applied: &protection::Applied) -> Value {
    use protection::Applied;
    match applied {
        Applied::Answered(state) => json!({"answered": state}),
        Applied::Waiting { change, until } => json!({"waiting": {"change": change, "until": until}}),
        Applied::Retrying { attempts, next_at } => json!({"retrying": {"attempts": attempts, "next_at": next_at}}),
        Applied::Undelivered => json!({"undelivered": true}),
        Applied::Each(each) => {
            json!({"each": each.iter().map(|(id, a)| json!({"request": id, "did": protection_answer(a)})).collect::<Vec<_>>()})
        }
        Applied::Skipped(why) => json!({"ignored": why}),
    }
}

/// The invocation's error as Lambda reports it, and as the on-failure
/// queue's message keeps it (`responsePayload`): `errorType` is `Rejected`
/// when no retry can help (redriving the event is pointless until the
/// event, the forge's permissions or the credentials are fixed), else
/// `Retryable`; `errorMessage` says why, with its causes (never a token).
pub fn diagnostic(e: &Failed) -> Diagnostic {
    let error_type = if e.retryable() { "Retryable" } else { "Rejected" };
    Diagnostic { error_type: error_type.to_owned(), error_message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::adapters::env_secrets::StaticSecrets;
    use changehub::adapters::scm::{Endpoints, ForgeClient, Retries, Timeouts, base_url};

    type Local = Scm<
        EmbeddedStore,
        CachedCatalog<EmbeddedStore>,
        ForgeClient<StaticSecrets>,
        SystemClock,
        changehub::adapters::local_notifier::FileNotifier,
    >;

    fn scm(dir: &std::path::Path) -> Local {
        let store = EmbeddedStore::open(dir.join("hub.db")).expect("open");
        // Nothing listens there: a test that reached a forge would fail.
        let url = base_url("http://127.0.0.1:9").expect("url");
        let endpoints = Endpoints { github_api: url.clone(), gitlab: url };
        let forges = ForgeClient::new(StaticSecrets::default(), endpoints, Timeouts::default(), Retries::default());
        let notifier = changehub::adapters::local_notifier::FileNotifier::new(dir.join("notifications.jsonl"));
        Scm::new(store, forges, notifier, None, ActivityRetention::default())
    }

    #[test]
    fn the_rule_takes_what_the_merge_gate_and_rollback_automation_handle() {
        let pattern = rule_pattern().expect("pattern");
        let event = |source: &str, detail_type: &str| json!({"source": source, "detail-type": detail_type});
        assert!(pattern.matches(&event("changehub.github", "Pull Request Changed")));
        assert!(pattern.matches(&event("changehub.change", "Change Approved")));
        assert!(pattern.matches(&event("changehub.change", "Change Failed")));
        assert!(pattern.matches(&event("changehub.github", "Deployment Gate Requested")));
        assert!(pattern.matches(&event("changehub.gate", "Deployment Gate Due")));
        assert!(pattern.matches(&event("changehub.change", "Checklist Item Done")));
        assert!(!pattern.matches(&event("acme.forged", "Pull Request Changed")), "only the hub's own events");
        assert!(!pattern.matches(&event("changehub.change", "Change Created")));
    }

    #[tokio::test]
    async fn an_unreadable_event_fails_as_rejected_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let event = json!({"id": "1", "detail-type": "Pull Request Changed", "detail": {"tenant": "acme"}});
        let error = scm(dir.path()).handle(&event).await.expect_err("an unreadable event fails the invocation");
        let failure = diagnostic(&error);
        assert_eq!(failure.error_type, "Rejected");
        assert!(failure.error_message.contains("Pull Request Changed"), "{failure:?}");
    }

    #[tokio::test]
    async fn a_change_no_request_is_linked_to_is_answered_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let change = changehub::domain::ChangeId::new();
        let event =
            json!({"id": "1", "detail-type": "Change Approved", "detail": {"tenant": "acme", "change_id": change}});
        let answer = scm(dir.path()).handle(&event).await.expect("ignored");
        assert!(answer["merge_gate"]["ignored"].is_string(), "{answer}");
    }
}
