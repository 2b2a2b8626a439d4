//! changehub: the library every function is built from.
//!
//! - [`domain`]: pure types and rules (change lifecycle, audit chain, events).
//! - [`ports`]: the narrow traits through which use cases reach the world.
//! - [`adapters`]: DynamoDB / EventBridge / SNS, and the embedded equivalents.
//! - [`app`]: use cases, generic over the ports they need.
//! - [`http`]: the HTTP router served by the api Lambda and `changehub serve`.

pub mod adapters;
pub mod app;
pub mod config;
#[cfg(all(feature = "embedded", feature = "jwt", feature = "writeback", feature = "chat", feature = "scm"))]
pub mod dead_letters;
pub mod domain;
#[cfg(feature = "http")]
pub mod http;
pub mod ingest;
pub mod json;
#[cfg(all(feature = "embedded", feature = "jwt", feature = "writeback", feature = "chat", feature = "scm"))]
pub mod local;
pub mod ports;
pub mod yaml;

/// An error and its causes, `: ` between them (for logs and kept failures).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}
