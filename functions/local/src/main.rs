//! `changehub`: the local all-in-one hub and its tools.

mod activity;
mod audit;
mod bench;
mod catalog;
mod changes;
mod escalate;
mod gate;
mod migrate;
mod notifications;
mod plural;
mod replay;
mod table;

use clap::{Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use changehub::adapters::chat::Hook;
use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::file_clock::{ClockFileError, FileClock};
use changehub::app::activity::{ActivityRetention, DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS};
use changehub::domain::TenantId;
use changehub::domain::access::BOOTSTRAP_ADMIN_GROUP;
use changehub::http::{bearer, webhooks};
use changehub::ingest::Origin;
use changehub::local::{self, ChatHooks, Hub, HubClock, HubConfig, ServeLimits};

/// changehub: change management glue for GitHub/GitLab, PagerDuty, Alertmanager and AWS.
///
/// Runs the whole hub on this machine (no AWS account needed) and sends it
/// events. On AWS the same handlers run as Lambda functions.
#[derive(Parser)]
#[command(name = "changehub", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub locally: the HTTP API, webhook ingest, the event bus and the notifier, on an embedded database.
    ///
    /// Writes are durable when answered; Ctrl-C finishes in-flight requests before exiting.
    /// Webhook secrets come from CHANGEHUB_GITHUB_SECRET, CHANGEHUB_GITLAB_TOKEN,
    /// CHANGEHUB_GITLAB_SIGNING_SECRET, CHANGEHUB_PAGERDUTY_SECRET, CHANGEHUB_INCIDENTIO_SECRET,
    /// CHANGEHUB_ALERTMANAGER_TOKEN and CHANGEHUB_ARGOCD_TOKEN (each also as <NAME>_PREVIOUS while
    /// rotating), or from the JSON file CHANGEHUB_SECRETS_FILE ({"tenant": {"source": ["secret"]}}).
    /// A source without a secret refuses its webhooks.
    Serve {
        /// TCP port to listen on.
        #[arg(long, default_value_t = 8080, env = "CHANGEHUB_PORT")]
        port: u16,
        /// Address to bind (loopback by default; use 0.0.0.0 to expose the hub).
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), env = "CHANGEHUB_BIND")]
        bind: IpAddr,
        /// The embedded database file (created if missing).
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
        /// Where the local notifier appends notifications, one JSON object per line.
        #[arg(long, default_value = "./notifications.jsonl", env = "CHANGEHUB_NOTIFICATIONS")]
        notifications: PathBuf,
        /// Members of this group are admins of their tenant whatever its catalog says, so the first
        /// catalog can be imported. Give an empty value for none, once the catalog's roles.admin names
        /// the admins.
        #[arg(long, default_value = BOOTSTRAP_ADMIN_GROUP, env = "CHANGEHUB_BOOTSTRAP_ADMIN_GROUP")]
        bootstrap_admin_group: String,
        /// Seconds a request may take, reading its body included, before it is answered 408.
        #[arg(long, default_value_t = local::DEFAULT_REQUEST_TIMEOUT.as_secs(), env = "CHANGEHUB_REQUEST_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..))]
        request_timeout_secs: u64,
        /// Requests handled at once; more wait for a slot (within the timeout).
        #[arg(long, default_value_t = local::DEFAULT_CONCURRENT_REQUESTS, env = "CHANGEHUB_MAX_REQUESTS")]
        max_requests: usize,
        /// Webhook bodies (up to 25 MiB each) read at once; more deliveries are answered 503.
        #[arg(long, default_value_t = webhooks::DEFAULT_CONCURRENT_BODIES, env = "CHANGEHUB_MAX_WEBHOOK_BODIES")]
        max_webhook_bodies: usize,
        /// Days the activity log (`changehub activity`) keeps each accepted event.
        #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS, env = "CHANGEHUB_ACTIVITY_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RETENTION_DAYS)))]
        activity_retention_days: u32,
        /// How often approvals past their reminders, deadlines and escalations are chased (e.g. 30s, 1m);
        /// 0 or off: never (run `changehub escalate --now` instead).
        #[arg(long, default_value = "30s", env = "CHANGEHUB_ESCALATE_EVERY", value_parser = escalate::every)]
        escalate_every: escalate::Every,
        /// Testing aid, not for real use: read the time from this file (one RFC 3339 instant, read again
        /// whenever the hub needs the time; rewrite it to move time) instead of the system clock;
        /// the hub then also takes an escalation tick on POST /_test/escalation-tick, and answers
        /// GET /_test/settled once nothing is under way.
        #[arg(long, hide = true, value_name = "PATH")]
        clock_file: Option<PathBuf>,
        /// A chat webhook to post every notification to, after the notifications file:
        /// slack=URL (a Slack incoming webhook) or teams=URL (a Microsoft Teams workflow or incoming
        /// webhook), optionally followed by filters on the notification's attributes, each
        /// ;ATTRIBUTE=VALUE[,VALUE...] (e.g. "slack=https://hooks.slack.com/services/...;audience=cab;tenant=acme").
        /// Repeat for more hooks. Without any, the hooks come from CHANGEHUB_WEBHOOKS (separated by
        /// spaces or new lines). Failed deliveries are kept and retried: see `changehub notifications`.
        #[arg(long = "webhook", value_name = "KIND=URL[;ATTR=VALUE,...]", value_parser = notifications::hook)]
        webhooks: Vec<Hook>,
        /// The wait before a failed webhook delivery is tried again (e.g. 30s, 1m); each next wait
        /// doubles, up to an hour.
        #[arg(long, default_value = "30s", env = "CHANGEHUB_WEBHOOK_RETRY_MIN", value_parser = notifications::first_wait)]
        webhook_retry_min: notifications::FirstWait,
        /// The hub's address as its readers reach it (e.g. https://changes.example.com): notifications
        /// link to each change's page under it and write their commands against it. Default:
        /// http://127.0.0.1:PORT (the bound address when it is not 0.0.0.0 or ::).
        #[arg(long, env = "CHANGEHUB_PUBLIC_URL", value_name = "URL", value_parser = public_url)]
        public_url: Option<String>,
    },
    /// List, retry or delete the notifications kept for chat webhooks (`serve --webhook`) that were
    /// not delivered yet: failed ones (retried by `serve` at growing intervals) and refused ones (a
    /// 4xx other than 429: kept until retried or deleted). They sit in the directory `undelivered`
    /// beside the notifications file, one JSON file each; this works while `serve` runs.
    Notifications {
        /// List the kept deliveries (the default).
        #[arg(long)]
        undelivered: bool,
        /// Make these deliveries (ids as listed; none: all) due now, refused ones included: a running
        /// `serve` posts them within seconds, else the next `serve` at its start.
        #[arg(long, value_name = "ID", num_args = 0.., conflicts_with_all = ["undelivered", "delete"])]
        retry: Option<Vec<String>>,
        /// Delete these deliveries (ids as listed, or `all`): they are not posted.
        #[arg(long, value_name = "ID", num_args = 1.., conflicts_with = "undelivered")]
        delete: Option<Vec<String>>,
        /// The hub's notifications file; the kept deliveries are beside it.
        #[arg(long, default_value = "./notifications.jsonl", env = "CHANGEHUB_NOTIFICATIONS")]
        notifications: PathBuf,
        /// Print the kept deliveries as JSON, one a line, instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run one escalation tick against a hub's database (stop the hub first: the file is locked
    /// while it runs) and print each reminder, escalation and breach it took. Their notifications
    /// are appended to --notifications and posted to the chat webhooks (--webhook), as `serve` would.
    /// Deployment protection rule requests due are decided again and answered on GitHub's callback
    /// with the forge credentials `serve` reads (CHANGEHUB_GITHUB_APP_ID and
    /// CHANGEHUB_GITHUB_APP_KEY_FILE, or CHANGEHUB_GITHUB_TOKEN; CHANGEHUB_GITHUB_API_URL);
    /// each is printed, answered or kept.
    Escalate {
        /// Run the tick now (the only mode).
        #[arg(long, required = true)]
        now: bool,
        /// The embedded database file; its key file <db>.key seals the audit entries.
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
        /// Where notifications are appended, one JSON object per line.
        #[arg(long, default_value = "./notifications.jsonl", env = "CHANGEHUB_NOTIFICATIONS")]
        notifications: PathBuf,
        /// Testing aid, not for real use: read the time from this file (one RFC 3339 instant, read again
        /// whenever the tick needs the time; rewrite it to move time) instead of the system clock.
        #[arg(long, hide = true, value_name = "PATH")]
        clock_file: Option<PathBuf>,
        /// A chat webhook to post the tick's notifications to, as `serve --webhook` takes it (repeat
        /// for more; without any, CHANGEHUB_WEBHOOKS). They are posted before the command ends; what a
        /// hook does not take is kept in `undelivered` beside --notifications for the next `serve`.
        #[arg(long = "webhook", value_name = "KIND=URL[;ATTR=VALUE,...]", value_parser = notifications::hook)]
        webhooks: Vec<Hook>,
        /// The hub's address as its readers reach it (see `serve --public-url`); none: no links.
        #[arg(long, env = "CHANGEHUB_PUBLIC_URL", value_name = "URL", value_parser = public_url)]
        public_url: Option<String>,
    },
    /// Send event files to a running hub, in the order given, as their senders would.
    ///
    /// EventBridge-shaped events (with "source", "detail-type", "detail") go to /events.
    /// Webhook bodies under events/<source>/ (or --source) go to /webhooks/<source>, signed with
    /// that source's secret from the environment (the same variables `serve` reads). GitHub and
    /// GitLab name the event type in a header: it is --event, else the X-GitHub-Event or
    /// X-Gitlab-Event line of FILE.headers (the headers captured with the delivery, one
    /// `Name: value` a line), else the file name (deployment_status.success.json →
    /// deployment_status). Delivery ids derive from the file's bytes, so a second replay is a
    /// duplicate.
    ///
    /// Exit status: 0 when every delivery was accepted (a duplicate counts: the hub has it);
    /// 1 when any was refused (4xx/5xx) or could not be sent, or was ignored (an event type the
    /// hub does not use) unless --allow-ignored; 2 when the command line is invalid.
    Replay {
        /// The hub's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CHANGEHUB_URL")]
        url: String,
        /// The tenant to send as.
        #[arg(long, default_value = "default", value_parser = tenant_id)]
        tenant: TenantId,
        /// The webhook source of files outside events/<source>/ (github, gitlab, pagerduty, alertmanager, incidentio).
        #[arg(long, value_parser = webhook_source)]
        source: Option<Origin>,
        /// The event type of GitHub or GitLab files (X-GitHub-Event: push, deployment_status, ...;
        /// X-Gitlab-Event: push, merge_request, pipeline, deployment or "Push Hook", ...). Wins over
        /// FILE.headers and the file name.
        #[arg(long, value_name = "TYPE", value_parser = event_type)]
        event: Option<String>,
        /// Ignored deliveries (event types the hub does not use) do not fail the run; refused ones still do.
        #[arg(long)]
        allow_ignored: bool,
        /// Send every file under a new delivery id instead of one derived from its bytes (the hub
        /// still answers a body it accepted before as a duplicate: it dedupes on the signed body too).
        #[arg(long)]
        fresh_ids: bool,
        /// Bearer token for /events (AWS events); by default one is minted with the key beside --db.
        #[arg(long, env = "CHANGEHUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The local hub's database, whose key signs the /events token when --token is not given.
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
        /// Event files (JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a bearer token for the local hub, signed with the key beside its database.
    ///
    /// The token names the user, their groups and the tenant; the tenant's catalog maps groups to
    /// roles (requester, approver, cab, admin, auditor, ingest). Members of the hub's bootstrap admin
    /// group (`serve --bootstrap-admin-group`, by default changehub-admins) are always admins, so
    /// `--groups changehub-admins` can import the first catalog.
    Token {
        /// The user the token speaks for.
        #[arg(long)]
        user: String,
        /// Comma-separated groups, e.g. payments-leads,cab.
        #[arg(long, default_value = "")]
        groups: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// How long the token is valid (e.g. 30m, 12h, 7d).
        #[arg(long, default_value = "12h")]
        ttl: String,
        /// The hub's database file; its key file is <db>.key.
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
    },
    /// List the hub events the hub accepted (webhooks, AWS events), newest first, as a table.
    ///
    /// Each row: when the event happened, its type, source and external id, the service it was
    /// resolved to (or why none), the change ids it names and the delivery it came in with. Needs a
    /// token of any role that reads changes; the tenant is the token's. A page ends with how to get
    /// the next one (--cursor), or pass --all.
    Activity {
        /// The hub's base URL (the API Gateway URL on AWS).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CHANGEHUB_URL")]
        url: String,
        /// A bearer token (locally: changehub token).
        #[arg(long, env = "CHANGEHUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Only events resolved to this service.
        #[arg(long)]
        service: Option<String>,
        /// Only events from this source: github, gitlab, pagerduty, alertmanager, incidentio, aws.
        #[arg(long)]
        source: Option<String>,
        /// Only events of this type, e.g. "Deployment Status Changed" or deployment-status-changed.
        #[arg(long = "type")]
        detail_type: Option<String>,
        /// Events that happened at or after this time: RFC 3339, or a duration ago (30m, 4h, 2d).
        #[arg(long)]
        since: Option<String>,
        /// Events that happened at or before this time: RFC 3339, or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// Most rows per page (1 to 100; the hub's default is 50).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
        limit: Option<u64>,
        /// The page after the one that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
        /// Print the rows as JSON (as GET /activity answers them) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check or import a service catalog (YAML; see events/catalog/README.md for the format).
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// List the token's tenant's changes as a table: planned in a time range (by default a week back
    /// to a month ahead), filtered; or, with --mine, those waiting for your decision.
    Changes {
        /// The hub's base URL (the API Gateway URL on AWS).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CHANGEHUB_URL")]
        url: String,
        /// A bearer token (any role).
        #[arg(long, env = "CHANGEHUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Only changes naming this service.
        #[arg(long)]
        service: Option<String>,
        /// Only changes in this state (draft, submitted, approved, rejected, scheduled, implementing,
        /// completed, failed, rolled_back, closed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only changes of this type (standard, normal, emergency, recorded).
        #[arg(long = "type", value_name = "TYPE")]
        change_type: Option<String>,
        /// Only changes this user requested; `me` for you.
        #[arg(long)]
        requester: Option<String>,
        /// `me`: only changes waiting for your decision, earliest deadline first.
        #[arg(long, value_parser = ["me"])]
        approver: Option<String>,
        /// The same as --approver me.
        #[arg(long, conflicts_with = "approver")]
        mine: bool,
        /// Start of the time range (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// End of the time range (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Most changes on the page (1 to 100).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100))]
        limit: Option<u16>,
        /// The page after this one, as the previous page printed it.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Check audit trails (each change's and each tenant's governance trail): their hash chains, and
    /// that each head is its last entry.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// After an upgrade: write the index entries a table written by an older hub lacks (today the plannable
    /// index, which drift reads for the approved and scheduled changes that may authorize a configuration
    /// change), in a hub's database (stop the hub first) or with --table in a deployed hub's DynamoDB table.
    ///
    /// One pass over each tenant's changes; idempotent. Prints one line per tenant.
    Migrate {
        /// The embedded database file.
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
        /// The DynamoDB table of a deployed hub (the stack's TableName output); AWS credentials from the
        /// environment. Reads with Query and GetItem only, never Scan, so --tenant is needed.
        #[arg(long, env = "CHANGEHUB_TABLE")]
        table: Option<String>,
        /// Only this tenant's changes (required with --table).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Ask the hub's deployment gate whether a deployment may go ahead now, and wait for the answer: a pipeline step.
    ///
    /// Production (the catalog's correlation.production_environments) is gated: the deployment needs a change of the
    /// service that may implement now (approved, in its planned window, checklist done, no freeze or major incident
    /// holding it). Other environments are recorded only. A pending answer is waited for (a long poll on the local
    /// hub; asked again with backoff where the hub cannot hold one) until --timeout.
    ///
    /// Exit status: 0 allowed, 1 refused, 2 still pending at --timeout, 3 a usage or connection error. The reason is
    /// one line on stderr (`changehub gate: allowed (allowed): ...`).
    #[command(disable_version_flag = true)]
    Gate(gate::GateArgs),
    /// Measure the local hub: deployment gate decisions (rate, p50/p99), API create+get, raw store operations, signed
    /// webhook ingest and its CPU cost per event,
    /// correlation (store calls, items read, latency and rate per correlation, with each history size), and one
    /// escalation tick (items read and time with many changes waiting, few due).
    Bench(bench::BenchPlan),
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Validate a catalog file; errors name the line and the field.
    Check { file: PathBuf },
    /// Validate a catalog file, then replace the token's tenant's catalog with it (admin role).
    Import {
        file: PathBuf,
        /// The hub's base URL (the API Gateway URL on AWS).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CHANGEHUB_URL")]
        url: String,
        /// A bearer token of an admin.
        #[arg(long, env = "CHANGEHUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify audit chains: in a hub's database (stop the hub first: the file is locked while it runs),
    /// or with --table in a deployed hub's DynamoDB table (AWS credentials from the environment).
    ///
    /// Checks hashes, links, gaps, each head (a change record's, a governance trail's) and, with the
    /// audit key, every entry's seal. Prints one line per change and per tenant's governance trail
    /// (`TENANT/governance`; left out with --change), names the first broken entry and what was
    /// checked; exits non-zero if any chain is broken.
    Verify {
        /// The embedded database file; its key file <db>.key gives the audit key.
        #[arg(long, default_value = "./changehub.db", env = "CHANGEHUB_DB")]
        db: PathBuf,
        /// The DynamoDB table of a deployed hub (the stack's TableName output). Reads with Query and
        /// GetItem only, never Scan: a tenant's changes come from its change list, so --tenant is needed.
        #[arg(long, env = "CHANGEHUB_TABLE")]
        table: Option<String>,
        /// The Secrets Manager secret holding the audit key (with --table; the stack's AuditKeySecretArn
        /// output). Without it seals are not checked, and the report says so.
        #[arg(long, env = "CHANGEHUB_AUDIT_KEY_SECRET", requires = "table")]
        audit_key_secret: Option<String>,
        /// Only this tenant's changes (required with --table).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this change.
        #[arg(long)]
        change: Option<String>,
    },
}

/// Logs to stdout, in colour only on a terminal (a log redirected to a file
/// gets no escape codes) and never when NO_COLOR is set.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(colour).init();
}

/// An error and its causes, one per line, each cause said once: a cause
/// whose text an earlier line already holds is skipped.
fn report(e: &dyn std::error::Error) -> String {
    let mut lines = vec![format!("error: {e}")];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !lines.iter().any(|l| l.contains(&text)) {
            lines.push(format!("  caused by: {text}"));
        }
        source = cause.source();
    }
    lines.join("\n")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `changehub gate` keeps exit status 2 for "timed out": its usage errors are 3.
        Err(e) if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("gate") => {
            let _ = e.print();
            return ExitCode::from(gate::FAILED);
        }
        Err(e) => e.exit(),
    };
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve {
            port,
            bind,
            db,
            notifications,
            bootstrap_admin_group,
            request_timeout_secs,
            max_requests,
            max_webhook_bodies,
            activity_retention_days,
            escalate_every,
            clock_file,
            webhooks,
            webhook_retry_min,
            public_url,
        } => {
            init_tracing();
            let limits = ServeLimits {
                request_timeout: std::time::Duration::from_secs(request_timeout_secs),
                concurrent_requests: max_requests,
                webhooks: webhooks::WebhookLimits { concurrent_bodies: max_webhook_bodies },
            };
            let bootstrap = bearer::bootstrap_admin_group(Some(bootstrap_admin_group.trim()))
                .map_err(|e| format!("--bootstrap-admin-group: {e}"));
            let retention =
                ActivityRetention::days(activity_retention_days).map_err(|e| format!("--activity-retention-days: {e}"));
            let hooks = notifications::hooks(webhooks, std::env::var("CHANGEHUB_WEBHOOKS").ok().as_deref())
                .map(|hooks| ChatHooks { hooks, backoff: webhook_retry_min.backoff(), ..ChatHooks::default() });
            match (StaticSecrets::from_env(), bootstrap, retention, hooks, hub_clock(clock_file)) {
                (Ok(secrets), Ok(bootstrap_admin_group), Ok(activity_retention), Ok(chat), Ok(clock)) => {
                    let public_url = Some(public_url.unwrap_or_else(|| default_public_url(bind, port)));
                    let config = HubConfig {
                        db,
                        notifications,
                        secrets,
                        bootstrap_admin_group,
                        limits,
                        activity_retention,
                        public_url,
                    };
                    serve(SocketAddr::new(bind, port), config, escalate_every, clock, chat).await.map_err(Into::into)
                }
                (Err(e), ..) => Err(e.into()),
                (.., Err(e)) => Err(e.into()),
                (_, Err(e), ..) | (_, _, Err(e), ..) | (_, _, _, Err(e), _) => Err(e.into()),
            }
        }
        Command::Replay { url, tenant, source, event, allow_ignored, fresh_ids, token, db, files } => {
            let options = replay::Options { url, tenant, source, event, allow_ignored, fresh_ids, token, db };
            replay::run(&options, &files).await
        }
        Command::Activity { url, token, service, source, detail_type, since, until, limit, cursor, all, json } => {
            let limit = limit.and_then(|l| usize::try_from(l).ok());
            let options =
                activity::Options { url, token, service, source, detail_type, since, until, limit, cursor, all, json };
            activity::run(&options).await.map_err(Into::into)
        }
        Command::Escalate { now: _, db, notifications, clock_file, webhooks, public_url } => {
            let hooks = notifications::hooks(webhooks, std::env::var("CHANGEHUB_WEBHOOKS").ok().as_deref());
            match (hub_clock(clock_file), hooks, StaticSecrets::from_env()) {
                (Ok(clock), Ok(hooks), Ok(secrets)) => {
                    let out = escalate::Output { notifications, hooks, public_url };
                    escalate::now(&db, &out, secrets, clock).await
                }
                (Err(e), ..) => Err(e.into()),
                (_, Err(e), _) => Err(e.into()),
                (.., Err(e)) => Err(e.into()),
            }
        }
        Command::Notifications { undelivered: _, retry, delete, notifications, json } => {
            let action = match (retry, delete) {
                (Some(ids), _) => notifications::Action::Retry(ids),
                (_, Some(ids)) => notifications::Action::Delete(ids),
                _ => notifications::Action::List { json },
            };
            notifications::run(&notifications, action).await
        }
        Command::Token { user, groups, tenant, ttl, db } => catalog::token(&db, &user, &groups, &tenant, &ttl),
        Command::Catalog { command: CatalogCommand::Check { file } } => catalog::check(&file)
            .map(|(_, c)| println!("{}: valid; {}", file.display(), catalog::contents(&c)))
            .map_err(Into::into),
        Command::Catalog { command: CatalogCommand::Import { file, url, token } } => {
            catalog::import(&file, &url, token).await
        }
        Command::Changes {
            url,
            token,
            service,
            state,
            change_type,
            requester,
            approver,
            mine,
            from,
            to,
            limit,
            cursor,
        } => {
            let approver = if mine { Some(changehub::app::changes::ME.to_owned()) } else { approver };
            let query = changes::Query { service, state, change_type, requester, approver, from, to, limit, cursor };
            changes::list(&url, token, &query).await
        }
        Command::Audit { command: AuditCommand::Verify { db, table, audit_key_secret, tenant, change } } => {
            let (tenant, change) = (tenant.as_deref(), change.as_deref());
            match table {
                Some(table) => audit::verify_table(&table, audit_key_secret.as_deref(), tenant, change).await,
                None => audit::verify(&db, tenant, change).await,
            }
        }
        Command::Migrate { db, table, tenant } => match table {
            Some(table) => migrate::table(&table, tenant.as_deref()).await,
            None => migrate::database(&db, tenant.as_deref()).await,
        },
        Command::Bench(plan) => bench::run(plan).await,
        Command::Gate(args) => return gate::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `--public-url`.
fn public_url(s: &str) -> Result<String, String> {
    changehub::config::parse_public_url(s)
}

/// `serve`'s address for readers when `--public-url` is not given: the bound
/// address, or the loopback one when it binds every interface.
fn default_public_url(bind: IpAddr, port: u16) -> String {
    let host = if bind.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { bind };
    format!("http://{}", SocketAddr::new(host, port))
}

/// `--clock-file`: the system clock without one.
fn hub_clock(file: Option<PathBuf>) -> Result<HubClock, ClockFileError> {
    match file {
        Some(path) => Ok(HubClock::File(std::sync::Arc::new(FileClock::open(path)?))),
        None => Ok(HubClock::System),
    }
}

async fn serve(
    addr: SocketAddr,
    config: HubConfig,
    escalate_every: escalate::Every,
    clock: HubClock,
    chat: ChatHooks,
) -> Result<(), local::HubError> {
    let mut hub = Hub::open_with(&config, clock, &chat)?;
    if let escalate::Every(Some(period)) = escalate_every {
        hub.escalate_every(period);
    }
    let listener = local::bind(addr).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        webhook_sources = ?config.secrets.configured("default"),
        db = %config.db.display(),
        notifications = %config.notifications.display(),
        escalate_every = %escalate_every,
        webhooks = ?chat.hooks.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "changehub serving; Ctrl-C to stop"
    );
    hub.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped; every acknowledged write is on disk");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `changehub replay --tenant`.
fn tenant_id(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).map_err(|e| e.message)
}

/// `changehub replay --source`: a webhook source.
fn webhook_source(s: &str) -> Result<Origin, String> {
    Origin::parse(s)
        .filter(|o| *o != Origin::Aws)
        .ok_or_else(|| "expected github, gitlab, pagerduty, alertmanager or incidentio".to_owned())
}

/// `changehub replay --event`: an event type, as a header carries it.
fn event_type(s: &str) -> Result<String, String> {
    let s = s.trim();
    match !s.is_empty() && http::HeaderValue::from_str(s).is_ok() {
        true => Ok(s.to_owned()),
        false => Err("expected an event type such as push or \"Push Hook\"".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Plain(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("{what}: {source}")]
    struct Wrapped {
        what: &'static str,
        source: Chained,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Chained {
        what: &'static str,
        source: Plain,
    }

    #[test]
    fn the_default_public_url_is_the_bound_address_or_loopback() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        assert_eq!(super::default_public_url(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080), "http://127.0.0.1:8080");
        assert_eq!(super::default_public_url(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9000), "http://127.0.0.1:9000");
        assert_eq!(super::default_public_url(IpAddr::V6(Ipv6Addr::LOCALHOST), 80), "http://[::1]:80");
    }

    #[test]
    fn each_cause_is_printed_once() {
        let e = Wrapped {
            what: "cannot reach the hub at http://127.0.0.1:9",
            source: Chained { what: "error sending request", source: Plain("Connection refused (os error 111)") },
        };
        assert_eq!(
            report(&e),
            "error: cannot reach the hub at http://127.0.0.1:9: error sending request\n  \
             caused by: Connection refused (os error 111)"
        );
    }
}
