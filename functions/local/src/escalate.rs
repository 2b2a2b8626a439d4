//! `changehub escalate --now` (one tick against a hub's database) and
//! `serve --escalate-every`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use changehub::adapters::chat::deliver::{Deliverer, Pass};
use changehub::adapters::chat::queue::DeliveryQueue;
use changehub::adapters::chat::{Hook, HookNotifier};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::http_writeback::Retries;
use changehub::adapters::https::Timeouts;
use changehub::adapters::local_bus::LocalBus;
use changehub::adapters::local_notifier::FileNotifier;
use changehub::adapters::scm::{Endpoints, ForgeClient};
use changehub::app::Changes;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::escalation::{Escalator, Tick};
use changehub::app::freeze_starting::{FreezeTick, FreezeTicker};
use changehub::app::protection::{self, Applied, Protection, ProtectionTicker};
use changehub::app::publish::Outbox;
use changehub::domain::catalog::Span;
use changehub::domain::escalation::NudgeKind;
use changehub::http::bearer::LocalKey;
use changehub::local::{ChatHooks, HubClock};
use changehub::ports::AuditSealer;

/// How often `serve` ticks; `None`: never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Option<Duration>);

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => f.write_str(Span::new(d).as_str()),
            None => f.write_str("off"),
        }
    }
}

/// `--escalate-every`: a duration such as 30s or 1m, or 0 / off.
pub fn every(s: &str) -> Result<Every, String> {
    match s.trim() {
        "0" | "off" => Ok(Every(None)),
        text => match Span::parse(text) {
            Ok(span) if span.0 >= Duration::from_secs(1) => Ok(Every(Some(span.0))),
            Ok(_) => Err("at least 1s, or 0 / off for never".to_owned()),
            Err(e) => Err(format!("{e}; or 0 / off for never")),
        },
    }
}

/// Where `escalate --now` sends what its tick took.
pub struct Output {
    /// The notifications file, appended to.
    pub notifications: PathBuf,
    /// The chat webhooks the notifications are posted to, as `serve` posts them.
    pub hooks: Vec<Hook>,
    /// The hub's public address, for links.
    pub public_url: Option<String>,
}

/// One tick against the database at `db` by `clock`: every step due is
/// taken, its notifications appended to the notifications file and posted
/// to the chat webhooks (what a hook does not take is kept in the queue
/// beside the file, for the next `serve`), and each is printed. Then the
/// deployment protection rule requests due are decided again and answered
/// on GitHub's callback with `secrets`, as `serve`'s ticker and consumer do,
/// and each is printed.
pub async fn now(
    db: &Path,
    out: &Output,
    secrets: StaticSecrets,
    clock: HubClock,
) -> Result<(), Box<dyn std::error::Error>> {
    let key = LocalKey::existing(db).map_err(|e| format!("{e}; is {} a hub's database?", db.display()))?;
    let store = EmbeddedStore::open(db)
        .map_err(|e| format!("cannot open {} ({e}); stop the hub first: it locks the file", db.display()))?
        .with_sealer(Arc::new(AuditSealer::with_key(key.audit_key()?)));
    let mut committed = store.stream();
    let escalator = Escalator {
        store: store.clone(),
        catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL),
        clock: clock.clone(),
    };
    let tick = escalator.tick().await?;
    // What `serve`'s publisher and deliverer do with each committed write.
    let chat = ChatHooks { hooks: out.hooks.clone(), ..ChatHooks::default() };
    let queue = DeliveryQueue::beside(&out.notifications);
    let deliverer = Deliverer::new(&chat.hooks, queue.clone(), Timeouts::default(), chat.retries, chat.backoff);
    let file = FileNotifier::new(&out.notifications);
    let notifier = HookNotifier::new(file, chat.hooks.clone().into(), queue, deliverer.waker());
    // Freezes about to start: told by the tick itself (no outbox).
    let freezes =
        FreezeTicker::new(store.clone(), escalator.catalog.clone(), clock.clone(), LocalBus::new(), notifier.clone())
            .tick()
            .await?;
    let outbox =
        Outbox::new(store.clone(), LocalBus::new(), notifier.clone(), clock.clone(), escalator.catalog.clone())
            .with_public_url(out.public_url.clone());
    while let Ok(c) = committed.try_recv() {
        outbox.publish(&c.change, &c.entry).await?;
    }
    print!("{}", summary(&tick, &freezes));
    // Protection rule requests due: the ticker's events, consumed here as `serve`'s consumer does.
    let bus = LocalBus::new();
    let mut due = bus.add_rule("protection", protection::rule_pattern()?);
    let taken = ProtectionTicker { store: store.clone(), bus, clock: clock.clone() }.tick().await?;
    let forges = ForgeClient::new(secrets, Endpoints::from_env()?, Timeouts::default(), Retries::default());
    let protection = Protection { changes: Arc::new(Changes::new(store, clock)), callbacks: forges, notifier };
    let mut failed = None;
    while let Ok(event) = due.try_recv() {
        let request = event.detail["request_id"].as_str().unwrap_or_default().to_owned();
        match protection.handle(&event.detail_type, &event.detail).await {
            Ok(applied) => print!("{}", answered(&request, &applied)),
            Err(e) => {
                println!("protection rule request {request}: failed: {}", changehub::error_chain(&e));
                failed.get_or_insert(e);
            }
        }
    }
    println!("{} due", crate::plural::count(taken.due.len(), "protection rule request", "protection rule requests"));
    if !chat.hooks.is_empty() {
        let pass = deliverer.pass(false).await;
        print!("{}", posted(&pass, &out.notifications));
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// One line for what protection rule request `request` came to.
fn answered(request: &str, applied: &Applied) -> String {
    let secs = |at: &chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let what = match applied {
        Applied::Answered(state) => format!("answered {}", state.as_str()),
        Applied::Waiting { change, until } => format!("kept, waiting on change {change} until {}", secs(until)),
        Applied::Retrying { attempts, next_at } => {
            format!("not delivered ({attempts} attempts), sent again at {}", secs(next_at))
        }
        Applied::Undelivered => "not delivered before GitHub's limit: alarmed".to_owned(),
        Applied::Each(each) => return each.iter().map(|(id, applied)| answered(id, applied)).collect(),
        Applied::Skipped(why) => format!("nothing to do ({why})"),
    };
    format!("protection rule request {request}: {what}\n")
}

/// What the webhooks took, and where what they did not is kept.
fn posted(pass: &Pass, notifications: &Path) -> String {
    let delivered = crate::plural::count(pass.delivered, "notification", "notifications");
    let kept = pass.failed + pass.refused;
    if kept == 0 {
        return format!("{delivered} posted to the webhooks\n");
    }
    let queue = DeliveryQueue::beside(notifications);
    format!(
        "{delivered} posted to the webhooks; {} kept in {} (the next `changehub serve` posts them; \
         `changehub notifications` lists them)\n",
        crate::plural::count(kept, "delivery", "deliveries"),
        queue.dir().display()
    )
}

/// One line per step, reminder and freeze notice taken, then what the tick read.
fn summary(tick: &Tick, freezes: &FreezeTick) -> String {
    let mut out = String::new();
    for t in &tick.taken {
        let what = match t.kind {
            NudgeKind::Reminder => format!("reminder {}", t.number),
            NudgeKind::Escalation => format!("escalation {}", t.number),
            NudgeKind::Breach => "SLA breached".to_owned(),
        };
        let due = t.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push_str(&format!("{}/{} {}: {what} (due {due}) to {}\n", t.tenant, t.change_id, t.step, t.to));
    }
    for r in &tick.starting_soon {
        let start = r.planned_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let late = if r.late { ", late: not started yet" } else { "" };
        out.push_str(&format!("{}/{}: starting soon (planned start {start}{late})\n", r.tenant, r.change_id));
    }
    for f in &freezes.told {
        let start = f.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let what = if f.late { "started already: not told (late)" } else { "freeze starting" };
        out.push_str(&format!("{}/freeze {}: {what} (starts {start})\n", f.tenant, f.window));
    }
    let deferred = tick.deferred + freezes.deferred;
    out.push_str(&format!(
        "{} taken, {} and {} sent; {} due items read{}\n",
        crate::plural::count(tick.taken.len(), "step", "steps"),
        crate::plural::count(tick.starting_soon.len(), "starting-soon reminder", "starting-soon reminders"),
        crate::plural::count(freezes.sent(), "freeze-starting notice", "freeze-starting notices"),
        tick.read + freezes.read,
        if deferred > 0 { format!("; {deferred} left to the next tick (busy)") } else { String::new() }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_duration_or_off() {
        assert_eq!(every("30s"), Ok(Every(Some(Duration::from_secs(30)))));
        assert_eq!(every("1m"), Ok(Every(Some(Duration::from_secs(60)))));
        assert_eq!(every("0"), Ok(Every(None)));
        assert_eq!(every("off"), Ok(Every(None)));
        assert!(every("soon").is_err());
        assert!(every("500ms").expect_err("too often").contains("at least 1s"));
        assert_eq!(Every(Some(Duration::from_secs(30))).to_string(), "30s");
    }
}
