//! `changehub notifications` (the chat webhook deliveries kept because
//! they were not delivered yet) and `serve --webhook`.

use chrono::{SecondsFormat, Utc};
use std::path::Path;
use std::time::Duration;

use changehub::adapters::chat::Hook;
use changehub::adapters::chat::deliver::{Backoff, DEFAULT_MAX_WAIT};
use changehub::adapters::chat::queue::{DeliveryQueue, HookDelivery};
use changehub::domain::catalog::Span;

/// `serve --webhook`: one hook.
pub fn hook(s: &str) -> Result<Hook, String> {
    Hook::parse(s).map_err(|e| e.to_string())
}

/// The hooks given with `--webhook`, else those of `CHANGEHUB_WEBHOOKS`
/// (`env`, separated by white space).
pub fn hooks(given: Vec<Hook>, env: Option<&str>) -> Result<Vec<Hook>, String> {
    if !given.is_empty() {
        return Ok(given);
    }
    let specs = env.unwrap_or_default().split_whitespace();
    specs.map(|spec| hook(spec).map_err(|e| format!("CHANGEHUB_WEBHOOKS: {e}"))).collect()
}

/// `serve --webhook-retry-min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstWait(pub Duration);

impl FirstWait {
    pub fn backoff(self) -> Backoff {
        Backoff { first: self.0, max: DEFAULT_MAX_WAIT.max(self.0) }
    }
}

pub fn first_wait(s: &str) -> Result<FirstWait, String> {
    match Span::parse(s.trim()) {
        Ok(span) if span.0 >= Duration::from_secs(1) => Ok(FirstWait(span.0)),
        Ok(_) => Err("at least 1s".to_owned()),
        Err(e) => Err(e),
    }
}

pub enum Action {
    List {
        json: bool,
    },
    /// These ids; none: all.
    Retry(Vec<String>),
    /// These ids, or `all`.
    Delete(Vec<String>),
}

pub async fn run(notifications: &Path, action: Action) -> Result<(), Box<dyn std::error::Error>> {
    let queue = DeliveryQueue::beside(notifications);
    let kept = queue.list().await?;
    for (path, why) in &kept.unreadable {
        eprintln!("warning: {} is not a delivery ({why}); left alone", path.display());
    }
    match action {
        Action::List { json: true } => {
            for d in &kept.deliveries {
                println!("{}", serde_json::to_string(d)?);
            }
        }
        Action::List { json: false } => print!("{}", list(&kept.deliveries, &queue)),
        Action::Retry(ids) => {
            let chosen = choose(&kept.deliveries, &ids)?;
            let now = Utc::now();
            for mut d in chosen {
                d.retry_now(now);
                queue.put(&d).await?;
            }
            let n = if ids.is_empty() { kept.deliveries.len() } else { ids.len() };
            println!("{} due now; `changehub serve` posts them", crate::plural::count(n, "delivery", "deliveries"));
        }
        Action::Delete(ids) => {
            let all = ids.iter().any(|id| id == "all");
            let chosen = if all { kept.deliveries.clone() } else { choose(&kept.deliveries, &ids)? };
            for d in &chosen {
                queue.remove(&d.id).await?;
            }
            println!("{} deleted", crate::plural::count(chosen.len(), "delivery", "deliveries"));
        }
    }
    Ok(())
}

/// The kept deliveries named by `ids` (all when none is named); an id not kept is an error.
fn choose(kept: &[HookDelivery], ids: &[String]) -> Result<Vec<HookDelivery>, String> {
    if ids.is_empty() {
        return Ok(kept.to_vec());
    }
    ids.iter()
        .map(|id| {
            kept.iter()
                .find(|d| d.id == *id)
                .cloned()
                .ok_or_else(|| format!("no kept delivery {id}; `changehub notifications --undelivered` lists them"))
        })
        .collect()
}

/// The kept deliveries as a table, then a count.
fn list(deliveries: &[HookDelivery], queue: &DeliveryQueue) -> String {
    if deliveries.is_empty() {
        return format!("no undelivered notifications ({} is empty)\n", queue.dir().display());
    }
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            let state = if d.refused { "refused".to_owned() } else { format!("retry at {}", time(d.next_at)) };
            let headline = match d.notification.message.headline.as_str() {
                "" => d.notification.subject.clone(),
                h => h.to_owned(),
            };
            vec![
                d.id.clone(),
                d.hook.clone(),
                time(d.queued_at),
                d.attempts.to_string(),
                state,
                d.last_error.clone().unwrap_or_default(),
                headline,
            ]
        })
        .collect();
    let refused = deliveries.iter().filter(|d| d.refused).count();
    format!(
        "{}{} kept in {}; {refused} refused (retry with --retry ID, or delete with --delete ID)\n",
        crate::table::render(&["ID", "HOOK", "QUEUED", "ATTEMPTS", "STATE", "LAST ERROR", "NOTIFICATION"], &rows),
        crate::plural::count(deliveries.len(), "undelivered notification", "undelivered notifications"),
        queue.dir().display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_come_from_the_flags_else_from_the_environment() {
        let slack = hook("slack=https://hooks.slack.example/a").expect("hook");
        assert_eq!(hooks(vec![slack.clone()], Some("teams=https://x.example/b")), Ok(vec![slack]));
        let from_env = hooks(Vec::new(), Some("slack=https://a.example/1;audience=cab\n  teams=https://b.example/2 "))
            .expect("hooks");
        assert_eq!(from_env.len(), 2);
        assert_eq!(hooks(Vec::new(), None), Ok(Vec::new()));
        let bad = hooks(Vec::new(), Some("slack:https://a.example")).expect_err("bad");
        assert!(bad.starts_with("CHANGEHUB_WEBHOOKS: expected KIND=URL"), "{bad}");
    }

    #[test]
    fn the_first_wait_is_a_duration_of_at_least_a_second() {
        assert_eq!(first_wait("30s"), Ok(FirstWait(Duration::from_secs(30))));
        assert_eq!(first_wait("2m").map(|w| w.backoff().first), Ok(Duration::from_secs(120)));
        assert!(first_wait("0s").is_err());
        assert!(first_wait("soon").is_err());
    }

    #[test]
    fn the_table_prints_each_id_whole_and_never_the_url() {
        let hook = hook("teams=https://x.example/workflows/abc?sig=s3cret").expect("hook");
        let n = changehub::ports::Notification {
            subject: "subject".into(),
            body: serde_json::json!({}),
            attributes: Default::default(),
            message: changehub::ports::Message::headline("Change approved"),
        };
        let mut d = HookDelivery::new(&hook, n, Utc::now());
        d.refused = true;
        d.attempts = 1;
        d.last_error = Some("refused with HTTP status 400".into());
        let out = list(std::slice::from_ref(&d), &DeliveryQueue::new("/tmp/undelivered"));
        assert!(out.contains(&format!("{}  {}", d.id, hook.id())), "{out}");
        assert!(out.contains("refused with HTTP status 400") && out.contains("Change approved"), "{out}");
        assert!(!out.contains("s3cret"), "{out}");
        assert!(out.ends_with("1 undelivered notification kept in /tmp/undelivered; 1 refused (retry with --retry ID, or delete with --delete ID)\n"), "{out}");
    }
}
