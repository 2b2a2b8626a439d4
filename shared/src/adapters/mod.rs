//! Adapters: one module per port implementation.

pub mod keys;
pub mod local_bus;
pub mod local_notifier;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
#[cfg(feature = "aws")]
pub mod sns;
