//! Narrow traits through which the domain and use cases reach the world.
//! Each has an AWS adapter and an embedded one, held to one contract suite.

pub mod activity;
pub mod audit_key;
pub mod bus;
pub mod catalog;
pub mod clock;
pub mod findings;
pub mod implementation;
pub mod incidents;
pub mod notifier;
pub mod problems;
pub mod production;
pub mod protection;
pub mod scm;
pub mod secrets;
pub mod security;
pub mod store;
pub mod writeback;

pub use activity::{Activity, ActivityLog, ActivityQuery, GATE_DETAIL_TYPE, GATE_SOURCE, MAX_EVALUATED};
pub use audit_key::{AuditSealer, seal_entries, seal_entry};
pub use bus::{BusError, EventBus};
pub use catalog::{CatalogReader, DocKind, DueDoc, FreezesDue, StoredDoc, TenantDocs};
pub use clock::{Clock, FixedClock, SystemClock};
pub use findings::{FINDINGS_EVALUATED, FindingQuery, FindingStore};
pub use implementation::{ImplementationQuery, ImplementationReader, Implemented, IndexRestore, ReadCost};
pub use incidents::{IncidentQuery, IncidentStore};
pub use notifier::{Fact, Link, Message, Notification, Notifier, NotifyError};
pub use problems::{
    Counted, IncidentCounterKey, IncidentCounts, IncidentWrite, PROBLEMS_EVALUATED, ProblemQuery, ProblemStore,
    RecurrenceState,
};
pub use production::InProductionStore;
pub use protection::{CallbackPost, ProtectionCallbacks, ProtectionStore};
pub use scm::{CommitStatus, ForgeCredentials, Forges, GithubCredential, PullLinkStore, ScmError};
pub use secrets::{SecretSource, SecretsError};
pub use security::{Refusal, SECURITY_EVENT_TTL, SecurityEvent, SecurityLog, SecurityQuery};
pub use store::{
    BoxError, Bump, ChangeFilter, ChangeQuery, ChangeReader, ChangeUpdate, ChangeWriter, Claim, CounterKey, Counters,
    Counts, Cursor, DUE_SHARDS, Dedupe, DueIndex, DuePartition, EVALUATED_PER_PAGE, InvalidCursor, Listing, MAX_PAGE,
    Page, ServiceWindowQuery, StoreError, VolumeKey, VolumeOf, WAIT_BUCKETS, WaitBump, WaitCounts, WaitDimension,
    WaitKey, WaitingQuery, wait_bucket,
};
pub use writeback::{Post, WriteBack, WriteBackCredentials, WriteBackError};
