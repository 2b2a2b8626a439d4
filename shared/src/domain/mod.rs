//! Pure domain types and rules. Nothing here performs I/O or sees an AWS type.

pub mod access;
pub mod approval;
pub mod audit;
pub mod bake;
pub mod catalog;
pub mod change;
pub mod correlation;
pub mod delegation;
pub mod deployment;
pub mod escalation;
pub mod event;
pub mod finding;
pub mod freeze;
pub mod gate;
pub mod ids;
pub mod incident;
pub mod new_change;
pub mod notice;
pub mod problem;
pub mod risk;
pub mod routing;
pub mod slug;
pub mod soon;
pub mod validation;
pub mod waiting;
pub mod writeback;

pub use audit::{AuditAction, AuditEntry, ChainError, FieldChange};
pub use change::{Change, ChangeState, ChangeType, IllegalTransition};
pub use event::{EventPattern, HubEvent};
pub use ids::{ChangeId, ServiceName, TenantId};
pub use new_change::{NewChange, ValidNewChange};
pub use slug::Slug;
pub use validation::{FieldError, FieldErrors, Problems};
