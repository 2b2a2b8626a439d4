//! The sample payloads in events/ and the secrets the tests sign them with.

use changehub::ingest::Origin;
use std::path::{Path, PathBuf};

/// The repository root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// GitHub's published example secret, used for every HMAC and token scheme.
pub const SECRET: &str = "It's a Secret to Everybody";
/// The Standard Webhooks example key (incident.io signs with such keys).
pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const WEBHOOK_ORIGINS: [Origin; 6] =
    [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio, Origin::Argocd];

/// The secret the tests configure for `origin`.
pub fn secret_for(origin: Origin) -> &'static str {
    if origin == Origin::Incidentio { SIGNING_SECRET } else { SECRET }
}

/// The sample files of `origin`, sorted; there is at least one.
pub fn samples(origin: Origin) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("events").join(origin.as_str()))
        .expect("events/<source>")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no samples for {}", origin.as_str());
    files
}
