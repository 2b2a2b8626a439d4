//! Narrow traits through which the domain and use cases reach the world.
//! Each has an AWS adapter and an embedded one, held to one contract suite.

pub mod bus;
pub mod clock;
pub mod notifier;
pub mod store;

pub use bus::{BusError, EventBus};
pub use clock::{Clock, FixedClock, SystemClock};
pub use notifier::{Notification, Notifier, NotifyError};
pub use store::{
    BoxError, ChangeReader, ChangeWriter, Claim, Dedupe, MAX_PAGE, Page, ServiceWindowQuery, Store, StoreError,
};
