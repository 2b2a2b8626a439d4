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

/// When a claim or lease taken at `now` for `d` runs out (saturating a year ahead).
#[cfg(any(feature = "embedded", feature = "dynamodb"))]
fn expiry(now: chrono::DateTime<chrono::Utc>, d: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365))
}
