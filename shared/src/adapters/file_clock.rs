//! A clock read from a file: the local hub's injected clock for tests
//! (`changehub serve --clock-file`, hidden). The file holds one RFC 3339
//! instant; it is read again on every `now()`, so a test moves time by
//! rewriting the file (a few dozen bytes: cheap beside the work a reading
//! use case does). Time stands still between rewrites, so what is due is
//! decided by the test, not by how loaded the machine is.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::ports::Clock;

#[derive(Debug, thiserror::Error)]
pub enum ClockFileError {
    #[error("cannot read the clock file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the clock file {path} must hold one RFC 3339 instant such as 2026-12-01T09:00:00Z, not {text:?}")]
    Instant { path: PathBuf, text: String },
}

/// The instant in the file at `path`, read again on each `now()`. A read
/// that fails (the file rewritten mid-read, or removed) keeps the last
/// instant read, with a warning: time never jumps back to the wall clock.
#[derive(Debug)]
pub struct FileClock {
    path: PathBuf,
    last: Mutex<DateTime<Utc>>,
}

impl FileClock {
    /// The clock of the file at `path`, which must hold an instant now.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ClockFileError> {
        let path = path.into();
        let at = read(&path)?;
        Ok(Self { path, last: Mutex::new(at) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read(path: &Path) -> Result<DateTime<Utc>, ClockFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClockFileError::Read { path: path.into(), source })?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ClockFileError::Instant { path: path.into(), text: text.trim().chars().take(64).collect() })
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match read(&self.path) {
            Ok(at) => *last = at,
            Err(e) => tracing::warn!(error = %e, kept = %*last, "clock file unreadable; keeping its last instant"),
        }
        *last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_file_and_keeps_its_last_instant_when_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("now");
        std::fs::write(&path, "2026-12-01T09:00:00Z\n").expect("write");
        let clock = FileClock::open(&path).expect("open");
        assert_eq!(clock.now().to_rfc3339(), "2026-12-01T09:00:00+00:00");
        std::fs::write(&path, "2026-12-01T10:30:00+01:00").expect("write");
        assert_eq!(clock.now().to_rfc3339(), "2026-12-01T09:30:00+00:00", "any offset, read as UTC");
        std::fs::write(&path, "soon").expect("write");
        assert_eq!(clock.now().to_rfc3339(), "2026-12-01T09:30:00+00:00", "kept");
        let err = FileClock::open(&path).expect_err("not an instant");
        assert!(err.to_string().contains("must hold one RFC 3339 instant"), "{err}");
        assert!(matches!(FileClock::open(dir.path().join("none")), Err(ClockFileError::Read { .. })));
    }
}
