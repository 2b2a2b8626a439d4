//! Adapters: one module per port implementation.

pub mod env_secrets;
pub mod keys;
pub mod local_bus;
pub mod local_notifier;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "sdk-config")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "secretsmanager")]
pub mod secretsmanager;
#[cfg(feature = "sns")]
pub mod sns;
